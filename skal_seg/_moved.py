"""Aliases for modules that moved: the old import path keeps working for one release, with a DeprecationWarning."""

from __future__ import annotations

import warnings
from importlib import import_module
from typing import Any, Callable


def moved_module(old: str, new: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the module ``old`` whose contents now live in ``new`` (PEP 562).

    Each name taken from the old module comes from the new one and warns
    (``DeprecationWarning``, pointing at the line that took it); importing the
    old module alone neither warns nor imports the new one.

    Parameters
    ----------
    old, new : str
        Dotted module names.

    Returns
    -------
    (callable, callable)
        Assign them to the old module's ``__getattr__`` and ``__dir__``.
    """

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # module machinery (__path__, __file__ lookups): not an alias
            raise AttributeError(name)
        value = getattr(import_module(new), name)
        warnings.warn(f"{old} moved to {new}: import {name} from {new} (the old path goes in the next release)",
                      DeprecationWarning, stacklevel=2)
        return value

    def __dir__() -> list[str]:
        return dir(import_module(new))

    return __getattr__, __dir__
