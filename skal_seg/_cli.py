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


def add_filter_bank_arguments(group) -> None:
    """The filter bank's options (``--filter-*`` and ``--line-lengths``), shared by ``run`` and ``init``.

    No argparse choices: the filter and channel names live with
    :class:`~skal_seg.filter_bank.FilterBankFeaturizer` (scipy, not imported
    by parsers), whose checks the settings run before any work, naming the
    valid values. :func:`filter_bank_options` turns the parsed values into
    its parameters.

    Parameters
    ----------
    group : argparse parser or argument group
    """
    with_filters = "with --features filters or embedded+filters"
    group.add_argument("--filter-sigmas", nargs="+", type=float, default=None, metavar="S",
                       help=f"the filter bank's Gaussian scales in pixels ({with_filters}; docs/features.md); "
                            "default 1.0 1.6 3.5 5.0")
    group.add_argument("--filters", nargs="+", default=None, metavar="NAME",
                       help="the filter bank's filters, from gaussian laplacian gradient_magnitude dog "
                            "structure_tensor hessian (default: all)")
    group.add_argument("--filter-channels", nargs="+", default=None, metavar="CHANNEL",
                       help="channels the filters run on: gray, rgb, or any of red green blue (default gray; "
                            "'green' for retinal images)")
    group.add_argument("--filter-raw-channels", nargs="+", default=None, metavar="CHANNEL",
                       help="channels whose raw values are columns too, as --filter-channels, or 'none' "
                            "(default rgb)")
    group.add_argument("--line-lengths", nargs="+", type=int, default=None, metavar="L",
                       help="add a line detector to the filter bank at these segment lengths in pixels (odd), e.g. "
                            f"5 9 13 17 for thin vessels or membranes; {with_filters} (docs/features.md)")


def filter_bank_options(args: argparse.Namespace) -> dict:
    """:class:`~skal_seg.filter_bank.FilterBankFeaturizer` parameters from :func:`add_filter_bank_arguments`'s options.

    Only the options given: a bank at its defaults is ``{}``, so its
    settings and cache keys stay those of a run without these options.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    dict
    """
    def channels(values):  # one word may name several channels ("rgb"); several are a list
        return values[0] if len(values) == 1 else list(values)

    options = {
        "sigmas": args.filter_sigmas,
        "filters": args.filters,
        "channels": None if args.filter_channels is None else channels(args.filter_channels),
        "line_lengths": args.line_lengths,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if args.filter_raw_channels is not None:
        raw = args.filter_raw_channels
        if "none" in raw and len(raw) > 1:
            raise fail(f"--filter-raw-channels none stands alone (no raw columns), got {' '.join(raw)}")
        options["raw_channels"] = None if raw == ["none"] else channels(raw)
    return options
