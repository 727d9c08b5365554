"""Input checks shared by the samplers, the classifier and the featurizer.

Every estimator module imports this one, so it is where modAL is made quiet
(:func:`skal_seg._modal_compat.patch_modal`): whichever estimator a user
imports first, from ``skal_seg`` or from its module, modAL's learners get the
renaming ``check_X_y`` before the first ``teach``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_array, check_is_fitted

from skal_seg._memory import mapped_file, release, row_blocks
from skal_seg._modal_compat import patch_modal

patch_modal()


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


def learner_estimator(classifier):
    """The estimator inside a modAL learner, or ``classifier`` itself.

    A modAL learner is told by its ``X_training`` attribute, not by an
    ``estimator`` attribute: scikit-learn ensembles (``RandomForestClassifier``)
    have an ``estimator`` too, their unfitted template.

    Parameters
    ----------
    classifier : object

    Returns
    -------
    object
    """
    return classifier.estimator if hasattr(classifier, "X_training") else classifier


def is_fitted(classifier) -> bool:
    """Whether ``classifier`` (an estimator or a modAL learner) can predict yet.

    Parameters
    ----------
    classifier : object or None
        A scikit-learn estimator, a modAL learner (its ``estimator`` is
        checked), any other object, or None.

    Returns
    -------
    bool
        False for None, a modAL learner never taught, or an unfitted
        scikit-learn estimator; True otherwise (objects that are not
        scikit-learn estimators are trusted).
    """
    if classifier is None:
        return False
    estimator = learner_estimator(classifier)
    if getattr(classifier, "X_training", 0) is None:  # modAL learner never taught
        return False
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    except TypeError:  # not a scikit-learn estimator: trust it
        return True
    return True


