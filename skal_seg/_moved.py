"""Aliases for modules that moved: the old import path keeps working for one release, with a DeprecationWarning."""

from __future__ import annotations

import warnings
from importlib import import_module
from typing import Any, Callable


def moved_module(old: str, *new: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the module ``old`` whose contents now live in ``new`` (PEP 562).

    Each name taken from the old module comes from the first new module that
    has it and warns (``DeprecationWarning``, pointing at the line that took
    it); importing the old module alone neither warns nor imports the new ones.

    Parameters
    ----------
    old : str
        Dotted name of the old module.
    *new : str
        Dotted names of the modules its contents went to.

    Returns
    -------
    (callable, callable)
        Assign them to the old module's ``__getattr__`` and ``__dir__``.
    """

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # module machinery (__path__, __file__ lookups): not an alias
            raise AttributeError(name)
        for module in map(import_module, new):
            if hasattr(module, name):
                warnings.warn(f"{old} moved: import {name} from {module.__name__} (the old path goes in the next "
                              f"release)", DeprecationWarning, stacklevel=2)
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({n for module in map(import_module, new) for n in dir(module) if not n.startswith("__")})

    return __getattr__, __dir__
