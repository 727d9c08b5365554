"""Input checks shared by the samplers, the classifier and the featurizer."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import check_array


def check_features(X, name: str = "X", allow_empty: bool = False) -> np.ndarray:
    """Validate a feature matrix: 2-D, numeric, finite.

    float16, float32 and float64 are kept (float16 pools halve memory; the
    computations widen them a block at a time); other dtypes become float32.

    Raises
    ------
    ValueError
        Wrong ndim, NaN or inf values, or no rows (unless ``allow_empty``).
    """
    X = check_array(
        X,
        dtype=(np.float32, np.float64, np.float16),
        ensure_all_finite=True,
        ensure_2d=True,
        ensure_min_samples=0 if allow_empty else 1,
        input_name=name,
    )
    return X


def check_budget(n: int, name: str = "n_instances") -> int:
    """A non-negative integer budget."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    if n < 0:
        raise ValueError(f"{name} must be non-negative, got {n}")
    return int(n)


def check_probabilities(proba, name: str = "proba", ndim: int = 2) -> np.ndarray:
    """Class probabilities: ``ndim``-D, finite, in [0, 1], rows summing to 1 (tolerance 1e-3)."""
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
