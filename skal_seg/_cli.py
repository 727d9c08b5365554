"""What every ``skal-seg`` subcommand shares: the help format, the exit for user errors, option types.

Only the standard library: parsers are built before any subcommand runs, so
``skal-seg --help`` stays fast.
"""

from __future__ import annotations

import argparse

from skal_seg._checks import check_positive_or_word


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default after its help (lists space-separated, as typed); none for flags and None."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "%(default)" in text or default is None or default is False
                or default is argparse.SUPPRESS):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def fail(message) -> SystemExit:
    """The exit of every user-fixable error: one line on stderr, status 1."""
    return SystemExit(f"skal-seg: {message}")


def positive_or(*words: str):
    """An argparse type: one of ``words`` (none: a positive number only) or a positive number."""
    def parse(text: str) -> str | float:
        try:
            return check_positive_or_word(text if text in words else float(text), "value", words)
        except ValueError:
            choices = "".join(f"{w!r} or " for w in words)
            raise argparse.ArgumentTypeError(f"expected {choices}a positive number, got {text!r}") from None
    return parse


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value
