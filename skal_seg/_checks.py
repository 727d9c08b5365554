"""Checks of scalar settings (budgets, weights, ``"auto"``-or-number options).

Kept apart from :mod:`skal_seg._validation` (arrays, which needs torch and
scikit-learn) so that settings and the command line can check their values
without importing either.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_positive_or_word(value, name: str, words: tuple[str, ...] = ("auto",)) -> str | float:
    """A setting that is one of ``words`` or a positive, finite number.

    Parameters
    ----------
    value : object
    name : str
        Used in the error message.
    words : tuple of str, default=("auto",)

    Returns
    -------
    str (one of ``words``) or float

    Raises
    ------
    ValueError
        Anything else (other strings, booleans, zero, negative, NaN, inf).
    """
    if isinstance(value, str) and value in words:
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value < np.inf:
        return float(value)
    choices = "".join(f"'{w}' or " for w in words)
    raise ValueError(f"{name} must be {choices}a positive number, got {value!r}")


def check_auto_or_positive_int(value, name: str) -> str | int:
    """A size setting: ``"auto"`` or an integer >= 1 (booleans excluded).

    Parameters
    ----------
    value : object
    name : str
        Used in the error message.

    Returns
    -------
    "auto" or int

    Raises
    ------
    ValueError
        Anything else.
    """
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise ValueError(f"{name} must be 'auto' or a positive integer, got {value!r}")


def check_non_negative(value, name: str) -> float:
    """A non-negative, finite number (a weight).

    Parameters
    ----------
    value : object
    name : str
        Used in the error message.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Not a real number, negative, NaN or inf.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value < np.inf:
        return float(value)
    raise ValueError(f"{name} must be a non-negative number, got {value!r}")


def check_budget(n: int, name: str = "n_instances", available: int | None = None, what: str = "rows") -> int:
    """Validate a non-negative integer budget, at most ``available`` when given.

    Parameters
    ----------
    n : int
        The budget; any integral type except ``bool``.
    name : str, default="n_instances"
        Name used in error messages.
    available : int, optional
        How many items there are to pick from: a larger budget is an error,
        never silently cut (a caller that asked for B must get B).
    what : str, default="rows"
        What ``available`` counts, for the message.

    Returns
    -------
    int
        ``n`` as a Python int.

    Raises
    ------
    ValueError
        ``n`` is not an integer (``bool`` and floats included), is negative,
        or exceeds ``available``.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    if n < 0:
        raise ValueError(f"{name} must be non-negative, got {n}")
    if available is not None and n > available:
        raise ValueError(f"{name}={n} exceeds the {available} {what} available; ask for at most {available}")
    return int(n)
