"""Stage 2 of the method: eDALD uncertainty (entropy + BALD over diffusion noise).

The classifier's prediction on the fixed-noise features gives the entropy
term; its predictions on ``K`` feature draws with fresh diffusion noise give
the BALD mutual-information term (epistemic disagreement across draws)::

    eDALD(x) = w * H[p(x)] + max(0, H[mean_k p_k(x)] - mean_k H[p_k(x)])

natural logarithms throughout, so scores are in nats.

``mi="paper_code"`` reproduces the official code's BALD term instead
(:func:`paper_code_bald_score`): it passes softmax probabilities where
log-probabilities are expected, so its "mutual information" is computed on
``exp(p)``. See ``docs/method.md``.
"""

from __future__ import annotations

from typing import Callable, Union

import numpy as np
from sklearn.base import BaseEstimator

from skal_seg._memory import read_rows
from skal_seg._checks import check_budget, check_non_negative
from skal_seg._validation import all_finite, check_features, check_probabilities

NoisyViews = Union[np.ndarray, Callable[[np.ndarray], np.ndarray]]


def _entropy(proba: np.ndarray) -> np.ndarray:
    # 0 * log 0 = 0: clip only inside the log.
    return -(proba * np.log(np.clip(proba, 1e-300, None))).sum(-1)


def entropy_score(proba) -> np.ndarray:
    """Predictive entropy in nats.

    Parameters
    ----------
    proba : array-like of shape (n, n_classes)
        Class probabilities (rows sum to 1).

    Returns
    -------
    ndarray of shape (n,), float64, in [0, log(n_classes)]
    """
    return _entropy(check_probabilities(proba, "proba", ndim=2))


def bald_score(proba_draws) -> np.ndarray:
    """BALD mutual information across noise draws, in nats, floored at 0.

    Parameters
    ----------
    proba_draws : array-like of shape (K, n, n_classes)
        Predictions on ``K`` noisy feature draws of the same ``n`` rows.

    Returns
    -------
    ndarray of shape (n,), float64
        ``H[mean_k p_k] - mean_k H[p_k]``.
    """
    return _jensen_gap(_check_draws(proba_draws))


def paper_code_bald_score(proba_draws) -> np.ndarray:
    """The BALD term as the official code computes it for ``entropy_dald``, floored at 0.

    The official code (jn-kim/two-stage-edald) hands softmax probabilities
    ``p_k`` to a mutual-information function written for log-probabilities,
    which exponentiates them first. With ``q_k = exp(p_k)`` (elementwise, not
    a distribution: every entry lies in [1, e]) and
    ``H~(q) = -sum_c q_c log q_c``, the score is::

        H~(mean_k q_k) - mean_k H~(q_k)

    Parameters
    ----------
    proba_draws : array-like of shape (K, n, n_classes)
        Predictions (probabilities) on ``K`` noisy feature draws.

    Returns
    -------
    ndarray of shape (n,), float64
        A Jensen gap like the mutual information (non-negative, 0 when the
        draws agree) but of ``exp(p)``: to second order it is
        ``sum_c exp(p_c) Var_k(p_kc) / 2`` where the mutual information is
        ``sum_c Var_k(p_kc) / (2 p_c)``, so it is smaller and does not
        up-weight disagreement on unlikely classes. The official code
        floors at 1e-9, this function at 0 (the same order of rows).
    """
    # H~ is _entropy's formula (its clip is a no-op on q >= 1).
    return _jensen_gap(np.exp(_check_draws(proba_draws)))


def _check_draws(proba_draws) -> np.ndarray:
    proba_draws = check_probabilities(proba_draws, "proba_draws", ndim=3)
    if proba_draws.shape[0] < 1:
        raise ValueError("proba_draws needs at least one draw (K >= 1)")
    return proba_draws


def _jensen_gap(draws: np.ndarray) -> np.ndarray:
    """``H(mean_k d_k) - mean_k H(d_k)`` over axis 0 of (K, n, n_classes), floored at 0."""
    return np.maximum(_entropy(draws.mean(0)) - _entropy(draws).mean(0), 0.0)


_MI = {"paper": bald_score, "paper_code": paper_code_bald_score}
#: Choices of eDALD's BALD term (``mi``).
MI_OPTIONS = tuple(_MI)


def edald_score(proba, proba_draws, entropy_weight: float = 1.0, mi: str = "paper") -> np.ndarray:
    """eDALD: ``entropy_weight * entropy_score(proba) + bald_score(proba_draws)``.

    Parameters
    ----------
    proba : array-like of shape (n, n_classes)
        Prediction on the fixed-noise (deterministic) features.
    proba_draws : array-like of shape (K, n, n_classes)
        Predictions on ``K`` fresh-noise feature draws of the same rows.
    entropy_weight : float, default=1.0
    mi : {"paper", "paper_code"}, default="paper"
        The BALD term: the paper's mutual information (:func:`bald_score`)
        or the official code's computation on ``exp(p)``
        (:func:`paper_code_bald_score`).

    Returns
    -------
    ndarray of shape (n,), float64, in nats

    Raises
    ------
    ValueError
        Shapes that disagree, probabilities that are not distributions, an
        unknown ``mi``.
    """
    mi_score = check_mi(mi)
    proba = check_probabilities(proba, "proba", ndim=2)
    proba_draws = check_probabilities(proba_draws, "proba_draws", ndim=3)
    if proba_draws.shape[1:] != proba.shape:
        raise ValueError(
            f"proba_draws has shape {proba_draws.shape}; expected (K, {proba.shape[0]}, {proba.shape[1]})"
        )
    return entropy_weight * _entropy(proba) + mi_score(proba_draws)


def check_mi(mi) -> Callable[[np.ndarray], np.ndarray]:
    """The BALD mutual-information function named by ``mi`` (one of :data:`MI_OPTIONS`).

    Raises
    ------
    ValueError
        ``mi`` is not one of :data:`MI_OPTIONS`.
    """
    if not isinstance(mi, str) or mi not in _MI:
        raise ValueError(f"unknown mi {mi!r}; use one of {sorted(_MI)}")
    return _MI[mi]


def top_k(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest scores, highest first; ties to the lowest index.

    Parameters
    ----------
    scores : ndarray of shape (n_rows,)
    n : int
        At most ``len(scores)`` indices are returned.

    Returns
    -------
    ndarray of shape (min(n, n_rows),), int64
    """
    return np.argsort(-scores, kind="stable")[: min(n, len(scores))].astype(np.int64)


class EDALDSampler(BaseEstimator):
    """Rank rows by eDALD and query the most uncertain ones (a modAL strategy).

    Parameters
    ----------
    entropy_weight : float, default=1.0
        Weight of the entropy term; 0 gives pure BALD over diffusion noise.
    batch_size : int, default=65536
        Pool rows scored at a time: their noisy draws are fetched (or
        computed) and predicted together, which bounds memory on large pools.
    mi : {"paper", "paper_code"}, default="paper"
        The BALD term: ``"paper"`` is the mutual information of the paper's
        formula; ``"paper_code"`` what the official code computes for
        ``entropy_dald`` (the same function on ``exp(p)``, see
        :func:`paper_code_bald_score`), to reproduce its rankings.

    Examples
    --------
    >>> sampler = EDALDSampler()
    >>> idx, scores = sampler(classifier, X_pool, n_instances=10, X_noisy=views)  # doctest: +SKIP
    """

    def __init__(self, entropy_weight: float = 1.0, batch_size: int = 65536, mi: str = "paper"):
        self.entropy_weight = entropy_weight
        self.batch_size = batch_size
        self.mi = mi

    def _predict(self, classifier, X: np.ndarray) -> np.ndarray:
        parts = [classifier.predict_proba(X[s : s + self.batch_size]) for s in range(0, len(X), self.batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, 0))

    def scores(self, classifier, X, X_noisy: NoisyViews, indices=None) -> np.ndarray:
        """eDALD score of rows of ``X``.

        Parameters
        ----------
        classifier : fitted classifier with ``predict_proba``
        X : array-like of shape (n, D)
            Fixed-noise features.
        X_noisy : ndarray of shape (K, n, D) or callable
            Noisy draws aligned with ``X``'s rows, or ``f(indices) -> (K, len(indices), D)``
            computing them for the requested rows only.
        indices : array-like of int, optional
            Score only these rows of ``X`` (default: all).

        Returns
        -------
        ndarray of shape (len(indices),), float64
        """
        check_non_negative(self.entropy_weight, "entropy_weight")
        mi_score = check_mi(self.mi)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        X = check_features(X, "X_pool")
        indices = np.arange(len(X)) if indices is None else np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(X)):
            raise ValueError("indices outside X_pool")
        if indices.size == 0:
            noisy_rows(X_noisy, indices, n_pool=len(X), n_features=X.shape[1])  # still validate
            return np.empty(0)
        # Chunks of rows bound memory: K noisy copies of a large pool would not fit at once.
        scores = []
        for start in range(0, len(indices), self.batch_size):
            chunk = indices[start : start + self.batch_size]
            noisy = noisy_rows(X_noisy, chunk, n_pool=len(X), n_features=X.shape[1])
            K = noisy.shape[0]
            proba_draws = self._predict(classifier, noisy.reshape(K * len(chunk), -1)).reshape(K, len(chunk), -1)
            if self.entropy_weight == 0:  # BALD alone: the fixed-noise prediction would only be multiplied by 0
                scores.append(mi_score(proba_draws))
                continue
            proba = self._predict(classifier, read_rows(X, chunk))  # a memory-mapped X: one chunk resident
            scores.append(edald_score(proba, proba_draws, self.entropy_weight, self.mi))
        return np.concatenate(scores)

    def query(self, classifier, X_pool, n_instances: int = 1, X_noisy: NoisyViews = None) -> np.ndarray:
        """Indices of the ``n_instances`` highest-eDALD rows of ``X_pool``, highest first.

        Parameters
        ----------
        classifier : fitted classifier with ``predict_proba``
        X_pool : array-like of shape (n_pool, D)
        n_instances : int, default=1
        X_noisy : ndarray of shape (K, n_pool, D) or callable
            See :meth:`scores`.

        Returns
        -------
        ndarray of shape (n_instances,), int64
            Ties go to the lowest index. All scores are kept in ``scores_``.

        Raises
        ------
        ValueError
            A negative budget or one larger than ``n_pool``, bad features,
            missing or misaligned ``X_noisy``.
        """
        n_instances = check_budget(n_instances, available=len(X_pool))
        scores = self.scores(classifier, X_pool, X_noisy)
        self.scores_ = scores
        return top_k(scores, n_instances)

    def __call__(self, classifier, X_pool, n_instances: int = 1, X_noisy: NoisyViews = None, **kwargs):
        """modAL strategy: returns ``(indices, scores of those indices)``."""
        idx = self.query(classifier, X_pool, n_instances, X_noisy=X_noisy)
        return idx, self.scores_[idx]


def check_noisy_views(X_noisy: NoisyViews, n_pool: int, n_features: int) -> None:
    """Check what can be checked of ``X_noisy`` without computing any draw.

    A callable is accepted as is; its output is checked by :func:`noisy_rows`.

    Parameters
    ----------
    X_noisy : array-like of shape (K, n_pool, n_features) or callable or None
        Noisy feature draws of every pool row, or a callable mapping 1-D int
        row indices to draws of shape (K, len(indices), n_features).
    n_pool : int
        Number of pool rows.
    n_features : int
        Number of feature columns ``D``.

    Raises
    ------
    ValueError
        ``X_noisy`` missing, or an array that is not (K>=1, n_pool, n_features).
    """
    if X_noisy is None:
        raise ValueError(
            "X_noisy is required: noisy diffusion-feature draws (K, n_pool, D) or a callable "
            "indices -> (K, len(indices), D), e.g. DiffusionFeaturizer.noisy_view_fn(...)"
        )
    if callable(X_noisy):
        return
    shape = np.shape(X_noisy)
    if len(shape) != 3 or shape[0] < 1 or shape[1] != n_pool or shape[2] != n_features:
        raise ValueError(
            f"X_noisy must have shape (K>=1, {n_pool}, {n_features}) aligned with X_pool, got {shape}"
        )


def noisy_rows(X_noisy: NoisyViews, indices: np.ndarray, n_pool: int, n_features: int) -> np.ndarray:
    """The noisy draws (K, len(indices), D) of pool rows ``indices``, validated.

    Parameters
    ----------
    X_noisy : array-like of shape (K, n_pool, n_features) or callable or None
        Noisy feature draws of every pool row, or a callable mapping
        ``indices`` to draws of shape (K, len(indices), n_features).
    indices : ndarray of shape (n,), int
        Pool rows, in ``[0, n_pool)``.
    n_pool : int
        Number of pool rows.
    n_features : int
        Number of feature columns ``D``.

    Returns
    -------
    ndarray of shape (K, n, n_features)
        Draws of the requested rows, in the order of ``indices``; dtype as
        given by ``X_noisy`` (not converted).

    Raises
    ------
    ValueError
        ``X_noisy`` missing, misaligned with the pool's rows or features, a
        callable returning the wrong shape, or NaN/inf values.
    """
    check_noisy_views(X_noisy, n_pool, n_features)
    noisy = np.asarray(X_noisy(indices)) if callable(X_noisy) else np.asarray(X_noisy)[:, indices]
    if noisy.ndim != 3 or noisy.shape[0] < 1 or noisy.shape[1:] != (len(indices), n_features):
        raise ValueError(
            f"X_noisy gave shape {noisy.shape} for {len(indices)} rows; expected (K>=1, {len(indices)}, {n_features})"
        )
    if not all_finite(noisy):
        raise ValueError("X_noisy contains NaN or inf")
    return noisy
