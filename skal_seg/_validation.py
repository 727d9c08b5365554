"""Input checks shared by the samplers, the classifier and the featurizer."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_array

from skal_seg._memory import mapped_file, release, row_blocks


def check_features(X, name: str = "X", allow_empty: bool = False) -> np.ndarray:
    """Validate a feature matrix: 2-D, numeric, finite.

    float16, float32 and float64 are kept (float16 pools halve memory; the
    computations widen them a block at a time); other dtypes become float32.

    Parameters
    ----------
    X : array-like of shape (n, D)
        Feature matrix (dense).
    name : str, default="X"
        Name used in error messages.
    allow_empty : bool, default=False
        Accept ``n = 0`` rows.

    Returns
    -------
    ndarray of shape (n, D), float16, float32 or float64
        ``X`` as a validated array.

    Raises
    ------
    ValueError
        Wrong ndim, non-numeric or complex values, NaN or inf values, or no
        rows (unless ``allow_empty``).
    TypeError
        ``X`` is a scipy sparse matrix.
    """
    X = check_array(
        X,
        dtype=(np.float32, np.float64, np.float16),
        ensure_all_finite=False,
        ensure_2d=True,
        ensure_min_samples=0 if allow_empty else 1,
        input_name=name,
    )
    if not _all_finite_bounded(X):
        kind = "NaN" if any(np.isnan(X[a:b]).any() for a, b in row_blocks(len(X), _scan_rows(X))) else "infinity"
        raise ValueError(f"Input {name} contains {kind}.")
    return X


def _scan_rows(X: np.ndarray) -> int:
    """Rows of ``X`` read per block by a scan of a memory-mapped matrix (about 64 MB)."""
    return max(1, (64 * 2**20) // max(1, X[:1].nbytes))


def _all_finite_bounded(X: np.ndarray) -> bool:
    """:func:`all_finite`, a block at a time for a memory-mapped ``X`` (pages released after each block)."""
    if mapped_file(X) is None:
        return all_finite(X)
    for a, b in row_blocks(len(X), _scan_rows(X)):
        ok = all_finite(X[a:b])
        release(X)
        if not ok:
            return False
    return True


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
    choices = " or ".join(f"'{w}'" for w in words)
    raise ValueError(f"{name} must be {choices} or a positive number, got {value!r}")


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


def readonly_tensor(X: np.ndarray) -> torch.Tensor:
    """A torch view of ``X`` (no copy) for reading, even when ``X`` is a read-only memmap.

    Parameters
    ----------
    X : ndarray with non-negative strides

    Returns
    -------
    Tensor sharing ``X``'s memory; it must not be written to.
    """
    with warnings.catch_warnings():  # torch warns about read-only arrays; the view is only read
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(X)


def all_finite(X: np.ndarray) -> bool:
    """Whether every value of a float array is finite, in one fast reduction.

    torch's min/max propagate NaN and keep infinities, so the array is finite
    exactly when its smallest and largest values are. The pools checked each
    round hold ~10^9 float16 values, where numpy's element-wise test costs
    seconds and this about a quarter of a second.

    Parameters
    ----------
    X : ndarray of float16, float32 or float64

    Returns
    -------
    bool
    """
    if X.size == 0:
        return True
    if any(st < 0 for st in X.strides):  # torch cannot view negative strides
        return bool(np.isfinite(X).all())
    low, high = torch.aminmax(readonly_tensor(X))
    return bool(torch.isfinite(low) and torch.isfinite(high))


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


def check_probabilities(proba, name: str = "proba", ndim: int = 2) -> np.ndarray:
    """Validate class probabilities: ``ndim``-D, finite, in [0, 1], rows summing to 1.

    Parameters
    ----------
    proba : array-like of shape (..., n, n_classes)
        Class probabilities; ``ndim`` axes, classes on the last one.
    name : str, default="proba"
        Name used in error messages.
    ndim : int, default=2
        Required number of axes.

    Returns
    -------
    ndarray of shape (..., n, n_classes), float64
        ``proba`` as float64.

    Raises
    ------
    ValueError
        Wrong ndim, NaN or inf values, values outside [0, 1] (tolerance
        1e-6), or rows not summing to 1 over the last axis (tolerance 1e-3).
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D (..., n, n_classes), got shape {proba.shape}")
    if not np.all(np.isfinite(proba)):
        raise ValueError(f"{name} contains NaN or inf")
    if proba.size and (proba.min() < -1e-6 or proba.max() > 1 + 1e-6):
        raise ValueError(f"{name} values must lie in [0, 1]")
    if proba.size and not np.allclose(proba.sum(-1), 1.0, atol=1e-3):
        raise ValueError(f"{name} rows must sum to 1 over the last axis")
    return proba


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
