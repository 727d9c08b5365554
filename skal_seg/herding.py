"""Stage 1 of the method: MaxHerding, greedy maximisation of generalized coverage.

For candidate rows ``x_1..x_N`` and a kernel ``k``, the generalized coverage of
a selection ``S`` (together with already-labeled rows ``L``) is::

    C(S) = mean_i max_{j in S or L} k(x_i, x_j)

a facility-location function, monotone and submodular. MaxHerding adds one
row at a time, the one with the largest gain ``C(S + j) - C(S)``. Because
gains can only shrink as ``S`` grows, stale gains are upper bounds: the
greedy is evaluated lazily (only candidates whose bound could still win are
re-scored), which gives exactly the plain greedy's picks at a fraction of the
cost. Kernel columns are computed in blocks, so memory stays bounded for tens
of thousands of rows; when the whole ``N x N`` kernel fits in
``max_memory_mb`` it is cached instead of recomputed.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Callable, Union

import numpy as np
import torch
from scipy.spatial.distance import pdist
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from skal_seg._validation import check_budget, check_features

KernelLike = Union[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]

_KERNELS = ("rbf",)


def auto_bandwidth(X: np.ndarray, random_state=None, factor: float = 2.0) -> float:
    """The paper's RBF bandwidth: ``factor`` x the median non-zero pairwise distance.

    Distances are taken over a random subsample of ``max(10, 1% of rows)``
    rows (all rows when fewer), drawn with ``random_state``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    random_state : int, RandomState or None
    factor : float, default=2.0

    Returns
    -------
    float
        The bandwidth (same units as the Euclidean distance between rows);
        1.0 when all sampled rows coincide (every kernel value is then 1).
    """
    rng = check_random_state(random_state)
    n = len(X)
    m = min(n, max(10, int(np.ceil(0.01 * n))))
    rows = rng.choice(n, size=m, replace=False) if m < n else np.arange(n)
    d = pdist(np.asarray(X[rows], dtype=np.float64))
    d = d[d > 0]
    if d.size == 0:
        return 1.0
    return float(factor * np.median(d))


def rbf_kernel(A: torch.Tensor, B: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """RBF kernel matrix ``exp(-(||a - b|| / bandwidth)^2)`` between rows.

    Parameters
    ----------
    A : Tensor of shape (n, D)
    B : Tensor of shape (m, D), same dtype and device as ``A``
    bandwidth : float
        Positive, in the units of the Euclidean distance between rows.

    Returns
    -------
    Tensor of shape (n, m), dtype of ``A``, values in (0, 1]
    """
    sq = (A * A).sum(1, keepdim=True) + (B * B).sum(1) - 2.0 * (A @ B.T)
    return torch.exp(sq.clamp_(min=0.0).div_(-(bandwidth**2)))


class MaxHerdingSampler(BaseEstimator):
    """Select diverse, representative rows by greedy generalized-coverage maximisation.

    Parameters
    ----------
    kernel : "rbf" or callable, default="rbf"
        ``"rbf"`` is ``k(x, y) = exp(-(||x - y|| / bandwidth)^2)``. A callable
        ``kernel(A, B) -> ndarray (len(A), len(B))`` on float arrays is used as is
        (``bandwidth`` is then ignored); it should be symmetric with values in [0, 1].
    bandwidth : "auto" or float, default="auto"
        RBF bandwidth. ``"auto"``: 2 x the median non-zero pairwise distance of
        a random subsample of ``max(10, 1%)`` of the rows (see
        :func:`auto_bandwidth`), recomputed on each call's ``X``.
    max_memory_mb : float, default=1024
        Memory for kernel blocks. The full ``N x N`` kernel is cached when it
        fits; otherwise columns are recomputed in blocks that fit.
    lazy_batch : int, default=32
        How many stale candidates are re-scored together first in a lazy
        step; doubles each time the bounds say more must be re-scored.
    device : str, default="cpu"
        Torch device for the kernel computations.
    random_state : int, RandomState or None, default=None
        Seeds the bandwidth subsample.

    Attributes
    ----------
    bandwidth_ : float
        Bandwidth used by the last call (``nan`` for a callable kernel).
    gains_ : ndarray of shape (n_selected,)
        Coverage gain of each pick of the last call, in selection order.

    Notes
    -----
    Picks equal the plain dense greedy's (largest gain; ties to the lowest
    index) up to floating-point rounding of gains that agree to ~1e-6
    relative (float32) or ~1e-12 (float64).
    """

    def __init__(
        self,
        kernel: KernelLike = "rbf",
        bandwidth: Union[str, float] = "auto",
        max_memory_mb: float = 1024,
        lazy_batch: int = 32,
        device: str = "cpu",
        random_state=None,
    ):
        self.kernel = kernel
        self.bandwidth = bandwidth
        self.max_memory_mb = max_memory_mb
        self.lazy_batch = lazy_batch
        self.device = device
        self.random_state = random_state

    # -- parameter checks ------------------------------------------------
    def _kernel_fn(self, X: np.ndarray) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        if callable(self.kernel):
            user_kernel = self.kernel
            self.bandwidth_ = float("nan")

            def fn(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
                K = np.asarray(user_kernel(A.cpu().numpy(), B.cpu().numpy()))
                if K.shape != (len(A), len(B)):
                    raise ValueError(f"kernel(A, B) returned shape {K.shape}, expected {(len(A), len(B))}")
                if not np.all(np.isfinite(K)):
                    raise ValueError("kernel(A, B) returned NaN or inf")
                return torch.as_tensor(K, dtype=A.dtype, device=A.device)

            return fn
        if self.kernel not in _KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; use one of {_KERNELS} or a callable")
        if isinstance(self.bandwidth, str):
            if self.bandwidth != "auto":
                raise ValueError(f"bandwidth must be 'auto' or a positive float, got {self.bandwidth!r}")
            bw = auto_bandwidth(X, self.random_state)
        elif isinstance(self.bandwidth, numbers.Real) and np.isfinite(self.bandwidth) and self.bandwidth > 0:
            bw = float(self.bandwidth)
        else:
            raise ValueError(f"bandwidth must be 'auto' or a positive float, got {self.bandwidth!r}")
        self.bandwidth_ = bw
        return lambda A, B: rbf_kernel(A, B, bw)

    # -- public API --------------------------------------------------------
    def select(self, X, n_instances: int, X_labeled=None) -> np.ndarray:
        """Greedily pick ``n_instances`` rows of ``X`` maximising coverage.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Candidate rows; coverage is measured over these rows.
        n_instances : int
            How many rows to pick. More than ``n_samples`` returns every row
            (in greedy order) with a warning; 0 returns an empty array.
        X_labeled : array-like of shape (n_labeled, n_features), optional
            Already-labeled rows: each candidate's coverage starts at its
            largest kernel value to them, so their neighbourhoods are not re-picked.

        Returns
        -------
        ndarray of shape (min(n_instances, n_samples),), int64
            Row indices of ``X`` in selection order, unique.

        Raises
        ------
        ValueError
            Non-finite or non-2-D input, mismatched feature counts, a negative
            budget, an unknown kernel or a bad bandwidth.
        """
        X = check_features(X, "X")
        n_instances = check_budget(n_instances)
        if isinstance(self.lazy_batch, bool) or not isinstance(self.lazy_batch, numbers.Integral) or self.lazy_batch < 1:
            raise ValueError(f"lazy_batch must be a positive integer, got {self.lazy_batch!r}")
        if not isinstance(self.max_memory_mb, numbers.Real) or not self.max_memory_mb > 0:
            raise ValueError(f"max_memory_mb must be positive, got {self.max_memory_mb!r}")
        kernel = self._kernel_fn(X)
        if n_instances > len(X):
            warnings.warn(
                f"n_instances={n_instances} exceeds the {len(X)} rows available; returning all rows",
                UserWarning,
                stacklevel=2,
            )
            n_instances = len(X)
        if X_labeled is not None:
            X_labeled = check_features(X_labeled, "X_labeled", allow_empty=True)
            if X_labeled.shape[1] != X.shape[1]:
                raise ValueError(
                    f"X_labeled has {X_labeled.shape[1]} features but X has {X.shape[1]}"
                )
        if n_instances == 0:
            self.gains_ = np.empty(0)
            return np.empty(0, dtype=np.int64)
        dtype = torch.float64 if X.dtype == np.float64 else torch.float32
        Xt = torch.as_tensor(X, dtype=dtype, device=self.device)
        coverage = torch.zeros(len(X), dtype=dtype, device=self.device)
        block = self._block_columns(len(X), Xt.element_size())
        if X_labeled is not None and len(X_labeled):
            Lt = torch.as_tensor(X_labeled, dtype=dtype, device=self.device)
            for start in range(0, len(Lt), block):
                coverage = torch.maximum(coverage, kernel(Xt, Lt[start : start + block]).max(1).values)
        # Cache the whole kernel only when it and a working block fit the budget together.
        cache_full = len(X) ** 2 * Xt.element_size() * 2 <= self.max_memory_mb * 2**20
        picks, gains = _lazy_greedy(Xt, kernel, coverage, n_instances, block, cache_full, self.lazy_batch)
        self.gains_ = gains
        return picks

    def __call__(self, classifier, X_pool, n_instances: int = 1, X_labeled=None, **kwargs):
        """modAL query strategy: MaxHerding over ``X_pool``.

        When ``X_labeled`` is not given and ``classifier`` is a modAL learner
        holding training data (``X_training``), coverage is conditioned on it.

        Returns
        -------
        (indices, gains) : tuple of ndarrays
            modAL's strategy contract (``ActiveLearner.query`` unpacks a pair).
        """
        if X_labeled is None:
            X_labeled = training_rows(classifier)
        idx = self.select(X_pool, n_instances, X_labeled=X_labeled)
        return idx, self.gains_

    def _block_columns(self, n_rows: int, itemsize: int) -> int:
        # A block holds an (n_rows x b) kernel slice plus one temporary of that size.
        b = int(self.max_memory_mb * 2**20 // (2 * itemsize * max(n_rows, 1)))
        return max(1, min(n_rows, b))


def training_rows(classifier) -> np.ndarray | None:
    """Labeled rows a modAL learner holds.

    Returns
    -------
    ndarray of shape (n_labeled, D) or None
        ``classifier.X_training`` when it is a non-empty 2-D array; None for
        anything else (a plain estimator, an untaught learner).
    """
    X = getattr(classifier, "X_training", None)
    if X is None:
        return None
    X = np.asarray(X)
    return X if X.ndim == 2 and len(X) else None


def coverage_gains(K_cols: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Coverage gain of adding each candidate: ``mean_i max(0, K[i, j] - coverage[i])``.

    Parameters
    ----------
    K_cols : Tensor of shape (n_rows, n_candidates)
        Kernel columns of the candidates against every row.
    coverage : Tensor of shape (n_rows,)
        Current coverage ``max_{j in S} k(x_i, x_j)`` of each row.

    Returns
    -------
    Tensor of shape (n_candidates,)
    """
    return (K_cols - coverage[:, None]).clamp_(min=0.0).mean(0)


def _lazy_greedy(Xt, kernel, coverage, n_pick, block, cache_full, lazy_batch):
    """Exact lazy greedy for the facility-location gain; returns (indices, gains)."""
    n = len(Xt)
    tol = (1e-12 if Xt.dtype == torch.float64 else 1e-6)
    # Cached transposed (row j = kernel column j): gathering rows is ~10x faster than columns.
    cached_t = torch.empty((n, n), dtype=Xt.dtype, device=Xt.device) if cache_full else None
    # Exact gains of every candidate for the starting coverage (upper bounds from then on).
    upper = torch.empty(n, dtype=torch.float64, device=Xt.device)
    for start in range(0, n, block):
        cols = kernel(Xt, Xt[start : start + block])
        if cached_t is not None:
            cached_t[start : start + block] = cols.T
        upper[start : start + block] = coverage_gains(cols, coverage).double()
    available = torch.ones(n, dtype=torch.bool, device=Xt.device)
    fresh_step = torch.full((n,), 0, dtype=torch.long, device=Xt.device)  # step at which upper is exact
    picks, gains = [], []
    neg_inf = torch.tensor(-np.inf, dtype=torch.float64, device=Xt.device)

    def columns(idx: torch.Tensor) -> torch.Tensor:
        return cached_t[idx].T if cached_t is not None else kernel(Xt, Xt[idx])

    for step in range(1, n_pick + 1):
        batch = lazy_batch
        while True:
            is_fresh = available & (fresh_step == step)
            stale = available & (fresh_step != step)
            best_fresh = torch.where(is_fresh, upper, neg_inf).max()
            best_stale = torch.where(stale, upper, neg_inf).max()
            threshold = best_fresh - tol * max(abs(best_fresh.item()), 1e-30)
            if step == 1 or best_stale < threshold:
                # Among exact gains within rounding of the best, the lowest index wins.
                exact = is_fresh if step > 1 else available
                top = torch.where(exact, upper, neg_inf)
                best = top.max()
                ties = exact & (upper >= best - tol * max(abs(best.item()), 1e-30))
                j = int(torch.nonzero(ties)[0])
                break
            # Re-score the stale candidates whose bound could still win.
            stale_idx = torch.nonzero(stale).squeeze(1)
            order = torch.argsort(upper[stale_idx], descending=True, stable=True)
            idx = stale_idx[order[:batch]]
            for s in range(0, len(idx), block):
                sub = idx[s : s + block]
                upper[sub] = coverage_gains(columns(sub), coverage).double()
            fresh_step[idx] = step
            batch *= 2  # when bounds are flat (near-equal gains) few rounds still cover them
        picks.append(j)
        gains.append(float(upper[j]))
        available[j] = False
        coverage = torch.maximum(coverage, columns(torch.tensor([j], device=Xt.device))[:, 0])
        fresh_step[available] = 0  # every remaining gain is only an upper bound now
    return np.asarray(picks, dtype=np.int64), np.asarray(gains)
