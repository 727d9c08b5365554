"""Griffe extension for the API reference: render the few reStructuredText idioms in docstrings.

The docstrings are numpy style, read by Sphinx-minded editors and by
``help()``; some use Sphinx roles (``:func:`name```) and ``::`` literal-block
markers, which Markdown would show verbatim. This turns a role into inline
code (``~pkg.mod.name`` -> ``name``) and ``text::`` into ``text:`` (the
indented block after it is already a Markdown code block). Docstrings
themselves are left unchanged; only the rendered site is affected.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc|const):`(~?)([^`]+)`")
_LITERAL = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)  # "is::" -> "is:"
_BARE_LITERAL = re.compile(r"^([ \t]*)::[ \t]*$", re.MULTILINE)  # a line holding only "::" -> blank


def _role(match: re.Match) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def rst_to_markdown(text: str) -> str:
    """Sphinx roles -> inline code, ``::`` markers -> ``:``."""
    text = _ROLE.sub(_role, text)
    text = _LITERAL.sub(r"\1:", text)
    return _BARE_LITERAL.sub(r"\1", text)


class RstRoles(Extension):
    """Rewrite each object's docstring text before mkdocstrings parses it."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
