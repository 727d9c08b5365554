"""Checks of settings and of the index arrays featurizers take, with numpy alone.

Scalar settings (budgets, weights, ``"auto"``-or-number options), pixel
lists, output dtypes and row indices. Kept apart from
:mod:`skal_seg._validation` (feature matrices, which needs torch and
scikit-learn) so that settings, the command line and the featurizers that
need no torch (the filter bank) check their inputs without importing it.
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


def check_pixels(pixels, grids: list[tuple[int, int]]) -> list[np.ndarray]:
    """One 1-D int64 array of flat indices (y * W + x) per image, each within its output grid.

    Shared by the featurizers' ``transform(images, pixels=...)``.

    Parameters
    ----------
    pixels : sequence of 1-D int array-likes
        One array per image (empty arrays allowed).
    grids : list of (int, int)
        Each image's output grid (H, W).

    Returns
    -------
    list of ndarray of shape (n_i,), int64

    Raises
    ------
    ValueError
        Not a sequence, wrong count, not 1-D integer, or indices outside ``[0, H * W)``.
    """
    if isinstance(pixels, (str, bytes)) or not hasattr(pixels, "__len__"):
        raise ValueError("pixels must be a sequence with one 1-D integer array per image")
    if len(pixels) != len(grids):
        raise ValueError(f"pixels must hold one array per image: got {len(pixels)} arrays for {len(grids)} images")
    out = []
    for i, (p, (h, w)) in enumerate(zip(pixels, grids)):
        p = np.asarray(p)
        if p.size == 0:
            out.append(np.zeros(0, dtype=np.int64))
            continue
        if p.ndim != 1:
            raise ValueError(f"pixels[{i}] must be 1-D (flat indices y * W + x), got shape {p.shape}")
        if p.dtype.kind not in "iu":
            raise ValueError(f"pixels[{i}] must hold integers, got dtype {p.dtype}")
        if p.min() < 0 or p.max() >= h * w:
            raise ValueError(
                f"pixels[{i}] holds indices outside [0, {h * w}) (output grid {h} x {w} of image {i})"
            )
        out.append(p.astype(np.int64, copy=False))
    return out


def check_output_dtype(value) -> np.dtype:
    """A featurizer's ``output_dtype``: ``"float32"`` or ``"float16"`` (float16 halves the feature memory).

    Parameters
    ----------
    value : object

    Returns
    -------
    numpy.dtype

    Raises
    ------
    ValueError
        Anything else.
    """
    if not isinstance(value, str) or value not in ("float32", "float16"):
        raise ValueError(f"output_dtype must be one of ['float16', 'float32'], got {value!r}")
    return np.dtype(value)


def check_row_indices(indices, n_rows: int) -> np.ndarray:
    """Row indices into a pool of ``n_rows`` rows (what a noisy-view callable is asked for).

    Parameters
    ----------
    indices : 1-D int array-like
        Repeats allowed; empty is fine.
    n_rows : int

    Returns
    -------
    ndarray of shape (n,), integer

    Raises
    ------
    ValueError
        Non-integer, not 1-D, or outside ``[0, n_rows)``.
    """
    idx = np.asarray(indices)
    if idx.size == 0:
        idx = idx.reshape(0).astype(np.int64)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise ValueError(f"indices must be a 1-D integer array, got shape {idx.shape} dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= n_rows):
        raise ValueError(f"indices must lie in [0, {n_rows})")
    return idx
