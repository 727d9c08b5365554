"""Stage 1 of the method: MaxHerding, greedy maximisation of generalized coverage.

For candidate rows ``x_1..x_N`` and a kernel ``k``, the generalized coverage of
a selection ``S`` (together with already-labeled rows ``L``) is::

    C(S) = mean_i max_{j in S or L} k(x_i, x_j)

a facility-location function, monotone and submodular. MaxHerding adds one
row at a time, the one with the largest gain ``C(S + j) - C(S)``; the picks
are exactly the plain greedy's, computed two ways, both keeping every gain
exact by updating it only from the rows whose coverage the last pick raised
(many rows at first, few once the data are covered), where the plain greedy
re-reads the whole kernel at every step:

* When the ``N x N`` kernel fits in ``max_memory_mb`` it is computed once
  (one triangle of tiles, the kernel being symmetric) and kept.
* Otherwise (N = 148,750 rows, the paper's global stage, is 89 GB in
  float32) the kernel rows of the changed rows are recomputed in blocks
  within the budget, and rows whose *live* entries (those still above the
  row's coverage: coverage only grows, so the others never count again) are
  few are stored sparsely and served from memory from then on. Gains updated
  by subtraction carry a rounding bound; the candidates that could win within
  it are re-scored exactly from their kernel columns, as a lazy greedy does.

Why one module (about 900 lines): the sampler, its two greedy paths and the
sparse store of live kernel rows share one invariant (every gain exact, ties
to the lowest row), which each part's comments state against the others;
split across modules, a change to one path could no longer be read beside
the one it must stay identical to.
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

from skal_seg._threads import LARGE_OP_ELEMENTS, small_op_threads, torch_threads
from skal_seg._checks import check_budget, check_positive_or_word
from skal_seg._memory import available_memory_bytes
from skal_seg._validation import check_features

KernelLike = Union[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]

_KERNELS = ("rbf",)

# Temporaries of one gathered stored entry (positions, owner row, value, column, drop, mask):
# the budget of MaxHerdingSampler._plan allows this much per entry gathered at once.
_GATHER_BYTES_PER_ENTRY = 64
# max_memory_mb="auto": this fraction of the memory available when the selection starts.
_AUTO_FRACTION = 0.5


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
    # One (n, m) allocation, every later step in place: this is the hot loop of MaxHerding.
    K = torch.addmm((B * B).sum(1)[None, :], A, B.T, alpha=-2.0)
    K.add_((A * A).sum(1)[:, None]).clamp_(min=0.0)
    return K.mul_(-1.0 / bandwidth**2).exp_()


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
    max_memory_mb : float or "auto", default=2048
        Memory for kernel computations, in MB (2**20 bytes); ``"auto"``: half
        the memory available when the call starts (``MemAvailable`` on
        Linux). What is kept: the whole ``N x N`` kernel when it fits beside
        three working tiles and more than one row is picked. Otherwise half the
        budget holds blocks of kernel rows (each against all ``N`` rows) and
        tiles, the other half the sparse store of live kernel entries (a value
        and an int32 column each) of the rows that have few. Not counted: the
        rows ``X`` (a float32 copy when given in float16 or another type) and
        about 100 bytes per row of per-row vectors. A warning says when a long
        selection without the cached kernel will be slow.
    lazy_batch : int, default=32
        Without the cached kernel: after the candidate with the best gain
        bound, how many candidates whose bound could still win are re-scored
        together; doubles each time the bounds say more must be re-scored.
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
    memory_budget_mb_ : float
        The budget of the last call in MB (``"auto"`` resolved).
    n_kernel_evaluations_ : int
        Kernel entries computed by the last call (``N^2 / 2`` for one
        symmetric pass over the kernel).

    Notes
    -----
    Picks equal the plain dense greedy's (largest gain; ties to the lowest
    index) up to the floating-point precision of the kernel: gains that agree
    to within a few 1e-6 relative (float32 input) or ~1e-12 (float64) can fall
    either way. With the kernel cached, gains are updated from the rows each
    pick changes and recomputed exactly whenever they have shrunk 16 fold, so
    rounding does not accumulate across picks. Without it, the candidates whose
    gain could win within its rounding bound are re-scored exactly first. The
    picks do not depend on ``max_memory_mb`` beyond that precision
    (``tests/test_herding.py``).

    Cost without the cached kernel: one symmetric pass (``N^2 / 2`` kernel
    entries of ``D`` multiply-adds), then each pick recomputes the kernel rows
    of the rows it covers better that are not stored; on nearly equidistant
    data (every gain alike, the worst case) the ``t``-th pick changes about
    ``N / t`` rows, until rows have few enough live entries to be stored
    (about ``N^2 / (4 C)`` picks for a store of ``C`` entries), so about
    ``N^2 (1/2 + ln(N^2 / 4C))`` entries in all (``docs/performance.md``).
    """

    def __init__(
        self,
        kernel: KernelLike = "rbf",
        bandwidth: Union[str, float] = "auto",
        max_memory_mb: Union[float, str] = 2048,
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
    def _kernel_fn(self, X: np.ndarray, X_labeled: np.ndarray | None = None) -> Callable:
        """The kernel on torch tensors, setting ``bandwidth_``; ``X_labeled`` (checked) is for
        subclasses whose bandwidth depends on the labeled rows."""
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
        bw = check_positive_or_word(self.bandwidth, "bandwidth")
        if bw == "auto":
            bw = auto_bandwidth(X, self.random_state)
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
            How many rows to pick, at most ``n_samples``; 0 returns an empty array.
        X_labeled : array-like of shape (n_labeled, n_features), optional
            Already-labeled rows: each candidate's coverage starts at its
            largest kernel value to them, so their neighbourhoods are not re-picked.

        Returns
        -------
        ndarray of shape (n_instances,), int64
            Row indices of ``X`` in selection order, unique.

        Raises
        ------
        ValueError
            Non-finite or non-2-D input, mismatched feature counts, a negative
            budget or one larger than ``n_samples``, an unknown kernel or a
            bad bandwidth; a ``max_memory_mb`` that cannot hold one block of
            kernel rows (``2 N (itemsize + 1)`` bytes).
        """
        X = check_features(X, "X")
        n_instances = check_budget(n_instances, available=len(X))
        return self._herd(X, n_instances, X_labeled, weights=None)

    def _check_settings(self) -> None:
        if isinstance(self.lazy_batch, bool) or not isinstance(self.lazy_batch, numbers.Integral) or self.lazy_batch < 1:
            raise ValueError(f"lazy_batch must be a positive integer, got {self.lazy_batch!r}")
        if self.max_memory_mb != "auto" and (
            isinstance(self.max_memory_mb, bool) or not isinstance(self.max_memory_mb, numbers.Real)
            or not self.max_memory_mb > 0
        ):
            raise ValueError(f"max_memory_mb must be a positive number of MB or 'auto', got {self.max_memory_mb!r}")

    def _check_labeled(self, X: np.ndarray, X_labeled) -> np.ndarray | None:
        if X_labeled is None:
            return None
        X_labeled = check_features(X_labeled, "X_labeled", allow_empty=True)
        if X_labeled.shape[1] != X.shape[1]:
            raise ValueError(f"X_labeled has {X_labeled.shape[1]} features but X has {X.shape[1]}")
        return X_labeled

    def _herd(self, X: np.ndarray, n_instances: int, X_labeled, weights: np.ndarray | None) -> np.ndarray:
        """The greedy shared by the herding samplers: maximise ``mean_i w_i max_{j in S or L} k(x_i, x_j)``.

        ``weights`` None is MaxHerding (every ``w_i = 1``, computed without
        the multiplications); the kernel is :meth:`_kernel_fn` on ``X`` and the
        checked ``X_labeled``. Sets ``gains_`` and returns the picks, as :meth:`select` documents.
        """
        self._check_settings()
        X_labeled = self._check_labeled(X, X_labeled)
        kernel = self._kernel_fn(X, X_labeled)
        if n_instances == 0:
            self.gains_ = np.empty(0)
            self.n_kernel_evaluations_ = 0
            return np.empty(0, dtype=np.int64)
        # The greedy is a loop of many small torch ops: on a CPU shared with another busy
        # process, several intra-op threads wait at every op's barrier for a descheduled one
        # (skal_seg/_threads.py); they run on one thread, large kernel blocks on the caller's.
        evaluations = [0]

        def counted(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
            evaluations[0] += len(A) * len(B)
            return kernel(A, B)

        with small_op_threads() as caller:
            picks, gains = self._greedy(X, n_instances, X_labeled, weights, _threaded_large(counted, caller))
        self.gains_ = gains
        self.n_kernel_evaluations_ = evaluations[0]
        return picks

    def _greedy(self, X: np.ndarray, n_instances: int, X_labeled, weights, kernel: Callable) -> tuple:
        """The greedy of :meth:`_herd` on checked input: (picks, gains)."""
        dtype = torch.float64 if X.dtype == np.float64 else torch.float32
        Xt = torch.as_tensor(X, dtype=dtype, device=self.device)
        w = None if weights is None else torch.as_tensor(weights, dtype=dtype, device=self.device)
        itemsize = Xt.element_size()
        n = len(X)
        budget = self._budget_bytes()
        plan = self._plan(n, itemsize, budget)  # raises when the budget cannot hold one block
        coverage = torch.zeros(n, dtype=dtype, device=self.device)
        if X_labeled is not None and len(X_labeled):
            Lt = torch.as_tensor(X_labeled, dtype=dtype, device=self.device)
            for start in range(0, len(Lt), plan.block):
                coverage = torch.maximum(coverage, kernel(Xt, Lt[start : start + plan.block]).max(1).values)
        # Cache the whole kernel when it fits beside a working tile: every gain update then reads
        # stored entries only. Otherwise kernel rows are recomputed (and the live ones stored).
        cache_bytes = n * n * itemsize
        beside = budget - cache_bytes  # what is left for working tiles
        tile = self._tile(n, itemsize, beside if beside > 0 else budget)
        cache_full = n_instances > 1 and 3 * tile * tile * itemsize <= beside
        reads = n_instances * (self.lazy_batch + 1)
        if not cache_full and n_instances > 1 and reads >= 4 * n:  # one pick is one pass: nothing to cache
            warnings.warn(
                f"{type(self).__name__}: picking {n_instances} of {n} rows without caching the {cache_bytes / 2**30:.2f} GiB "
                f"kernel (max_memory_mb={self.max_memory_mb}) recomputes kernel rows while picking, which is "
                "slow; raise max_memory_mb to cache it",
                UserWarning,
                stacklevel=4,  # _greedy <- _herd <- select <- the caller
            )
        symmetric = not callable(self.kernel)
        if cache_full:
            K = torch.empty((n, n), dtype=dtype, device=self.device)
            gains0 = _first_pass(Xt, kernel, coverage, tile, K, symmetric, w)
            picks, gains = _cached_greedy(K, coverage, gains0, n_instances, min(plan.block, 128), symmetric, w)
            del K
        else:
            picks, gains = _blocked_greedy(Xt, kernel, coverage, n_instances, plan, self.lazy_batch, symmetric, w)
        return picks, gains

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

    def _budget_bytes(self) -> float:
        """``max_memory_mb`` in bytes, resolving ``"auto"``; sets ``memory_budget_mb_``."""
        if self.max_memory_mb == "auto":
            budget = available_memory_bytes() * _AUTO_FRACTION
        else:
            budget = self.max_memory_mb * 2**20
        self.memory_budget_mb_ = budget / 2**20
        return budget

    def _plan(self, n: int, itemsize: int, budget: float) -> _Plan:
        """Split ``budget`` bytes for an ``n``-row selection: half for the live-row store, half
        for kernel blocks, tiles and gathered entries (the O(n) vectors come on top).

        Raises
        ------
        ValueError
            When the budget cannot hold one kernel row block.
        """
        per_block_row = n * (itemsize + 1)  # a kernel row and a mask against n rows, updated in place
        rest = budget
        block = int(rest / 2 // per_block_row)
        if block < 1:
            need = 2 * per_block_row / 2**20
            raise ValueError(
                f"max_memory_mb={self.max_memory_mb} ({budget / 2**20:.3g} MB) cannot hold one kernel row block "
                f"for {n} rows; raise it to at least {need:.3g}"
            )
        return _Plan(
            block=min(n, block),
            tile=self._tile(n, itemsize, rest / 2),
            capacity=int(rest / 2 // (itemsize + 4)),  # a value and an int32 column per entry
            chunk=max(1, int(rest / 2 // _GATHER_BYTES_PER_ENTRY)),
        )

    @staticmethod
    def _tile(n: int, itemsize: int, budget_bytes: float) -> int:
        # Square kernel tiles of the first exact pass: a tile and two temporaries within budget;
        # 512 x 512 float32 tiles (1 MiB) stay in cache through the in-place steps (N = 10,000:
        # first pass 0.35 s vs 0.66 s with 4096 x 4096 tiles).
        t = int(np.sqrt(max(budget_bytes, 0) / (3 * itemsize)))
        return max(1, min(n, t, 512))


def training_rows(classifier) -> np.ndarray | None:
    """Labeled rows a modAL learner holds.

    Parameters
    ----------
    classifier : object
        A modAL learner (read through its ``X_training`` attribute), a plain
        estimator, or None.

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


def labeled_or_training(classifier, X_labeled, y_labeled) -> tuple:
    """The labeled rows a query is conditioned on: those given, else a modAL learner's.

    Parameters
    ----------
    classifier : object
        A modAL learner, a plain estimator, or None.
    X_labeled : array-like of shape (n_labeled, D) or None
    y_labeled : array-like of shape (n_labeled,) or None

    Returns
    -------
    (X_labeled, y_labeled) : tuple
        As given when ``X_labeled`` is not None. Otherwise
        :func:`training_rows` of ``classifier``, and (unless ``y_labeled``
        is given) its ``y_training`` when those rows exist.
    """
    if X_labeled is None:
        X_labeled = training_rows(classifier)
        if y_labeled is None and X_labeled is not None:
            y_labeled = getattr(classifier, "y_training", None)
    return X_labeled, y_labeled


def _threaded_large(kernel: Callable, threads: int) -> Callable:
    """``kernel`` computing blocks of at least ``LARGE_OP_ELEMENTS`` entries with ``threads`` threads."""

    def fn(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        if len(A) * len(B) < LARGE_OP_ELEMENTS:
            return kernel(A, B)
        with torch_threads(threads):
            return kernel(A, B)

    return fn


def _sum_rows(T: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """``sum_i w_i T[i, :]`` (plain column sums when ``w`` is None: MaxHerding's exact operations)."""
    return T.sum(0) if w is None else torch.mv(T.T, w)


def _sum_cols(T: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """``sum_j w_j T[:, j]`` (plain row sums when ``w`` is None)."""
    return T.sum(1) if w is None else torch.mv(T, w)


def coverage_gains(K_cols: torch.Tensor, coverage: torch.Tensor, chunk: int = 4096,
                   weights: torch.Tensor | None = None) -> torch.Tensor:
    """Coverage gain of adding each candidate: ``mean_i w_i max(0, K[i, j] - coverage[i])``.

    Parameters
    ----------
    K_cols : Tensor of shape (n_rows, n_candidates)
        Kernel columns of the candidates against every row.
    coverage : Tensor of shape (n_rows,)
        Current coverage ``max_{j in S} k(x_i, x_j)`` of each row (dtype of ``K_cols``).
    chunk : int, default=4096
        Rows reduced together: sums per chunk in the kernel's dtype,
        accumulated across chunks in float64.
    weights : Tensor of shape (n_rows,), optional
        Non-negative weight ``w_i`` of each row (dtype of ``K_cols``); all 1 when
        None (MaxHerding's generalized coverage).

    Returns
    -------
    Tensor of shape (n_candidates,), float64
    """
    n = len(K_cols)
    sums = torch.zeros(K_cols.shape[1], dtype=torch.float64, device=K_cols.device)
    for s in range(0, n, chunk):
        w = None if weights is None else weights[s : s + chunk]
        sums += _sum_rows((K_cols[s : s + chunk] - coverage[s : s + chunk, None]).clamp_(min=0.0), w).double()
    return sums / n


def _tolerance(dtype: torch.dtype) -> float:
    # Gains that agree to this relative precision are ties (lowest index wins), as in exact arithmetic.
    return 1e-12 if dtype == torch.float64 else 2e-7


def _lowest_best(values: torch.Tensor, rows: torch.Tensor, tol: float) -> int:
    """Row of the largest value; among values within ``tol`` (relative) of it, the lowest row."""
    best = float(values.max())
    return int(rows[values >= best - tol * max(abs(best), 1e-30)].min())


def _first_pass(Xt, kernel, coverage, tile, cached, symmetric, weights=None) -> torch.Tensor:
    """Exact gains (float64) of every candidate for the starting coverage, filling ``cached``
    with the kernel matrix when given. A symmetric kernel is computed on the tiles of one
    triangle only, each tile serving both its rows and its columns. ``weights``: per-row
    weights of the coverage (None: all 1)."""
    n = len(Xt)
    sums = torch.zeros(n, dtype=torch.float64, device=Xt.device)
    covered = bool((coverage > 0).any())
    for a in range(0, n, tile):
        A, ca, ra = Xt[a : a + tile], coverage[a : a + tile], slice(a, min(a + tile, n))
        wa = None if weights is None else weights[ra]
        for b in range(a if symmetric else 0, n, tile):
            K = kernel(A, Xt[b : b + tile])  # rows ra, columns rb
            rb = slice(b, min(b + tile, n))
            wb = None if weights is None else weights[rb]
            mirror = symmetric and b != a
            if cached is not None:
                cached[ra, rb] = K
                if mirror:
                    cached[rb, ra] = K.T
            # Float32 sums per tile, float64 across tiles: float64 reductions cost ~10x more here.
            if covered:
                cb = coverage[b : b + tile]
                if mirror:  # candidates ra gain over rows rb (before K is modified in place)
                    sums[ra] += _sum_cols((K - cb[None, :]).clamp_(min=0.0), wb).double()
                sums[rb] += _sum_rows(K.sub_(ca[:, None]).clamp_(min=0.0), wa).double()
            else:  # zero coverage: the gain is the plain (weighted) kernel mean
                if mirror:
                    sums[ra] += _sum_cols(K, wb).double()
                sums[rb] += _sum_rows(K, wa).double()
    return sums / n


def _cached_greedy(K, coverage, gains, n_pick, chunk, symmetric, weights=None, refresh_ratio=1 / 16):
    """Greedy with the kernel ``K`` (rows: covered rows, columns: candidates) in memory.

    A pick raises the coverage of the rows it covers better; only those rows' terms of
    the gains change, so gains are updated from those rows alone (most rows, early on;
    few, once the data are covered) instead of being recomputed.

    Updating is subtraction, so a gain carries the float32 rounding of the larger value
    it was computed from: after the first pick gains fall from ~1 to ~1e-2, and an
    updated 1e-4 gain would be off by ~2e-4 of itself, enough to reorder real
    differences. Gains are therefore recomputed from scratch whenever the best gain
    has fallen below ``refresh_ratio`` of the best at the last recomputation (and
    instead of updating when most rows changed, which costs as much): the error stays
    within a few 1e-6 of the best gain, the precision of the float32 kernel itself.
    ``weights``: per-row weights of the coverage (None: all 1).
    """
    n = len(K)
    tol = _tolerance(K.dtype)
    gains = gains.clone()
    everyone = torch.arange(n, device=K.device)
    buffer = torch.empty((chunk, K.shape[1]), dtype=K.dtype, device=K.device)
    picked = torch.zeros(K.shape[1], dtype=torch.bool, device=K.device)
    base = float(gains.max())
    picks, picked_gains = [], []
    for _ in range(n_pick):
        j = _lowest_best(gains, everyone, tol)
        picks.append(j)
        picked_gains.append(float(gains[j]))
        picked[j] = True
        column = K[j] if symmetric else K[:, j]
        changed = torch.nonzero(column > coverage).squeeze(1)
        old = coverage[changed, None]
        rise = column[changed, None] - old
        coverage = torch.maximum(coverage, column)
        fresh = 2 * len(changed) >= n
        if fresh:
            gains = coverage_gains(K, coverage, chunk, weights)
        elif len(changed):
            drop = torch.zeros(K.shape[1], dtype=torch.float64, device=K.device)
            # Chunks of rows small enough to stay in the CPU cache between the passes over them.
            for s in range(0, len(changed), chunk):
                rows = changed[s : s + chunk]
                # Changed row i takes clamp(K_ic - old_i, 0, new_i - old_i) off candidate c's gain
                # (scalar clamp + minimum: clamp with tensor bounds is ~4x slower in torch).
                T = torch.index_select(K, 0, rows, out=buffer[: len(rows)]).sub_(old[s : s + chunk])
                T = torch.minimum(T.clamp_(min=0.0), rise[s : s + chunk], out=T)
                drop += _sum_rows(T, None if weights is None else weights[rows]).double()
            gains -= drop / n
        if not fresh and float(gains.max()) < refresh_ratio * base:
            gains = coverage_gains(K, coverage, chunk, weights)
            fresh = True
        gains[picked] = float("-inf")
        if fresh:
            base = float(gains.max())
    return np.asarray(picks, dtype=np.int64), np.asarray(picked_gains)


class _Plan:
    """How an uncached selection splits its memory budget (see :meth:`MaxHerdingSampler._plan`)."""

    def __init__(self, block: int, tile: int, capacity: int, chunk: int):
        self.block = block  # kernel rows (or columns) computed together against all N rows
        self.tile = tile  # side of the square tiles of a symmetric exact pass
        self.capacity = capacity  # kernel entries the live-row store may hold
        self.chunk = chunk  # stored entries gathered together


class _LiveRows:
    """The kernel entries that can still change a gain, stored row by row.

    Row ``i`` adds ``w_i max(0, K[i, c] - coverage_i)`` to candidate ``c``'s gain,
    and coverage only grows: once ``K[i, c] <= coverage_i`` the entry never
    counts again. A stored row holds every entry of its row that was above the
    row's coverage when stored (its *live* entries; the others are exactly
    zero terms from then on), so a rise of its coverage is applied to every
    gain from those entries without recomputing the kernel row. As coverage
    rises, rows have fewer live entries (about N / picks each on spread-out
    data) and more of them fit.

    A row is stored when its kernel row has been computed anyway and its live
    entries are few (at most ``row_limit``, a few times its share of
    ``capacity``) and fit. Entries live in one buffer of ``capacity``
    (column, value) pairs, one segment per stored row; segments are pruned in
    place when their row's coverage rises and packed to the front when the
    buffer's end is reached.
    """

    def __init__(self, n: int, capacity: int, chunk: int, dtype: torch.dtype, device):
        self.capacity = max(0, int(capacity))
        self.chunk = max(1, int(chunk))
        self.row_limit = min(self.chunk, 4 * self.capacity // max(n, 1))
        self.device = device
        index_dtype = torch.int32 if n < 2**31 else torch.int64
        self.cols = torch.empty(self.capacity, dtype=index_dtype, device=device)
        self.vals = torch.empty(self.capacity, dtype=dtype, device=device)
        self.start = torch.full((n,), -1, dtype=torch.int64, device=device)  # -1: row not stored
        self.length = torch.zeros(n, dtype=torch.int64, device=device)
        self.end = 0  # first free position of the buffer
        self.stored = 0  # entries held in segments

    def is_stored(self, rows: torch.Tensor) -> torch.Tensor:
        return self.start[rows] >= 0

    def _parts(self, rows: torch.Tensor):
        """(a, b) slices of ``rows`` holding at most ``chunk`` stored entries each (one row at least)."""
        ends = torch.cumsum(self.length[rows], 0)
        a = 0
        while a < len(rows):
            before = int(ends[a - 1]) if a else 0
            b = max(a + 1, int(torch.searchsorted(ends, before + self.chunk, right=True)))
            yield a, b
            a = b

    def _gather(self, rows: torch.Tensor) -> tuple:
        """(owner, values, columns) of every stored entry of ``rows``; owner: position in ``rows``."""
        lens = self.length[rows]
        owner = torch.repeat_interleave(torch.arange(len(rows), device=self.device), lens)
        first = torch.cumsum(lens, 0) - lens
        idx = self.start[rows][owner] + (torch.arange(len(owner), device=self.device) - first[owner])
        return owner, self.vals[idx], self.cols[idx]

    def _write(self, rows, owner, keep, values, cols, dest) -> None:
        """Store the kept entries of ``rows`` (gathered by :meth:`_gather`) from positions ``dest`` on,
        one per row; every destination is at or before the entry's old position."""
        sel = torch.nonzero(keep).squeeze(1)
        own = owner[sel]
        kept = torch.bincount(own, minlength=len(rows))
        # Entry k of the kept ones goes to its row's destination + its rank within the row.
        pos = torch.arange(len(sel), device=self.device) + (dest - (torch.cumsum(kept, 0) - kept))[own]
        self.vals[pos] = values[sel]
        self.cols[pos] = cols[sel]
        self.stored += int(kept.sum()) - int(self.length[rows].sum())
        self.start[rows] = dest
        self.length[rows] = kept

    def add_drops(self, rows, old, new, weights, drop) -> None:
        """``drop[c] += w_i clamp(K[i, c] - old_i, 0, new_i - old_i)`` over stored ``rows``, whose
        coverage rose from ``old`` to ``new``; entries no longer above ``new`` are pruned."""
        for a, b in self._parts(rows):
            sub = rows[a:b]
            owner, v, c = self._gather(sub)
            o, nw = old[a:b][owner], new[a:b][owner]
            d = torch.minimum((v - o).clamp_(min=0.0), nw - o)
            if weights is not None:
                d.mul_(weights[sub][owner])
            drop.index_add_(0, c.long(), d.double())
            self._write(sub, owner, v > nw, v, c, self.start[sub])

    def add_gains(self, rows, coverage, weights, sums) -> None:
        """``sums[c] += w_i max(0, K[i, c] - coverage_i)`` over stored ``rows`` (pruning dead entries)."""
        for a, b in self._parts(rows):
            sub = rows[a:b]
            owner, v, c = self._gather(sub)
            cov = coverage[sub][owner]
            d = (v - cov).clamp_(min=0.0)
            if weights is not None:
                d.mul_(weights[sub][owner])
            sums.index_add_(0, c.long(), d.double())
            self._write(sub, owner, v > cov, v, c, self.start[sub])

    def admit(self, rows: torch.Tensor, K: torch.Tensor, coverage_rows: torch.Tensor) -> None:
        """Store the rows among ``rows`` (not stored yet; kernel rows ``K``, coverage ``coverage_rows``)
        whose live entries are at most ``row_limit`` and fit, in order, up to ``chunk`` entries."""
        if self.row_limit < 1:
            return
        live = K > coverage_rows[:, None]
        # Live counts estimated on a few hundred columns first: exact counts of every row would
        # make an int64 copy of the mask, and early on no row qualifies.
        stride = max(1, K.shape[1] // 256)
        estimate = live[:, ::stride].sum(1) * stride
        cand = torch.nonzero(estimate <= 2 * self.row_limit + stride).squeeze(1)
        cand = cand[: max(1, self.chunk // (4 * self.row_limit))]  # bounds the entries gathered below
        if not len(cand):
            return
        r, c = torch.nonzero(live[cand], as_tuple=True)  # row-major: grouped by row, rows in order
        counts = torch.bincount(r, minlength=len(cand))
        ok = torch.nonzero(counts <= self.row_limit).squeeze(1)
        room = min(self.capacity - self.stored, self.chunk)
        ok = ok[: int(torch.searchsorted(torch.cumsum(counts[ok], 0), room, right=True))]
        if not len(ok):
            return
        lens = counts[ok]
        need = int(lens.sum())
        if self.end + need > self.capacity:
            if self.end - self.stored < self.capacity // 8:  # little pruned space: not worth a pack
                return
            self.pack()
        chosen = torch.zeros(len(cand), dtype=torch.bool, device=self.device)
        chosen[ok] = True
        keep = chosen[r]
        r, c = r[keep], c[keep]
        self.vals[self.end : self.end + need] = K[cand[r], c]
        self.cols[self.end : self.end + need] = c.to(self.cols.dtype)
        ok = cand[ok]
        self.start[rows[ok]] = self.end + torch.cumsum(lens, 0) - lens
        self.length[rows[ok]] = lens
        self.end += need
        self.stored += need

    def pack(self) -> None:
        """Move every segment to the front of the buffer, in buffer order (freeing pruned space)."""
        rows = torch.nonzero(self.start >= 0).squeeze(1)
        rows = rows[torch.argsort(self.start[rows], stable=True)]
        pointer = 0
        # In buffer order every destination precedes the old positions of the later parts.
        for a, b in self._parts(rows):
            sub = rows[a:b]
            _, v, c = self._gather(sub)
            lens = self.length[sub]
            self.vals[pointer : pointer + len(v)] = v
            self.cols[pointer : pointer + len(v)] = c
            self.start[sub] = pointer + torch.cumsum(lens, 0) - lens
            pointer += len(v)
        self.end = pointer


# Relative error bound of a gain updated by subtraction since its last exact computation, as a
# multiple of the tie tolerance: float32 tile sums and updates are off by ~1e-7 of the gain
# they started from (measured), 50 x 2e-7 leaves two orders of magnitude to spare.
_ERROR_BOUND_FACTOR = 50


def _blocked_greedy(Xt, kernel, coverage, n_pick, plan: _Plan, lazy_batch, symmetric, weights=None,
                    refresh_ratio=1 / 16):
    """Exact greedy without the ``N x N`` kernel in memory.

    Every gain is kept exact up to a known rounding bound: a pick raises the
    coverage of some rows, and the gains lose those rows' old terms. Rows in
    the live-row store (:class:`_LiveRows`) give their terms from stored
    entries; the others have their kernel rows recomputed, in blocks of
    ``plan.block`` rows, and are stored when few of their entries are live.
    When most rows changed (the first pick, with nothing labeled) all gains are
    recomputed by a symmetric tiled pass instead (half the kernel).

    Updating is subtraction, so a gain carries the rounding of the larger gain it
    started from (see :func:`_cached_greedy`): each gain has an error bound, and
    a step re-scores exactly (its kernel column) every candidate whose bound
    reaches the best re-scored gain: the best bound first, then ``lazy_batch``
    at a time, doubling, as a lazy greedy does; ties go to the lowest index. When that is many
    candidates and gains have shrunk ``1 / refresh_ratio`` fold since the last
    full computation, all gains are recomputed first. ``weights``: per-row
    weights of the coverage (None: all 1).
    """
    n = len(Xt)
    device = Xt.device
    tol = _tolerance(Xt.dtype)
    slack = _ERROR_BOUND_FACTOR * tol
    store = _LiveRows(n, plan.capacity, plan.chunk, Xt.dtype, device)
    picked = torch.zeros(n, dtype=torch.bool, device=device)
    neg_inf = float("-inf")

    def columns(idx: torch.Tensor) -> torch.Tensor:
        """Kernel columns idx as rows: (len(idx), n)."""
        return kernel(Xt[idx], Xt) if symmetric else kernel(Xt, Xt[idx]).T

    def rescore(idx: torch.Tensor) -> torch.Tensor:
        out = []
        for s in range(0, len(idx), plan.block):
            T = columns(idx[s : s + plan.block]).sub_(coverage[None, :]).clamp_(min=0.0)
            # MaxHerding keeps a float32 mean (weights None), as the lazy greedy did.
            out.append(T.mean(1).double() if weights is None else _sum_cols(T, weights).double() / n)
            del T  # before the next block is computed
        return torch.cat(out)

    def exact_gains() -> torch.Tensor:
        unstored = torch.nonzero(store.start < 0).squeeze(1)
        if 2 * len(unstored) >= n:  # one triangle of tiles costs half the rows' kernel
            sums = _first_pass(Xt, kernel, coverage, plan.tile, None, symmetric, weights) * n
        else:
            sums = torch.zeros(n, dtype=torch.float64, device=device)
            store.add_gains(torch.nonzero(store.start >= 0).squeeze(1), coverage, weights, sums)
            for s in range(0, len(unstored), plan.block):
                rows = unstored[s : s + plan.block]
                K = kernel(Xt[rows], Xt)
                store.admit(rows, K, coverage[rows])
                w = None if weights is None else weights[rows]
                sums += _sum_rows(K.sub_(coverage[rows, None]).clamp_(min=0.0), w).double()
                del K  # before the next block is computed
        g = sums / n
        g[picked] = neg_inf
        return g

    # err: rounding bound of each gain, slack x the gain it was last computed exactly as (scale);
    # zero right after an exact computation, which is as exact as the cached greedy's gains.
    gains = exact_gains()
    scale, err = gains.abs(), torch.zeros(n, dtype=torch.float64, device=device)
    base = float(gains.max())
    everyone = torch.arange(n, device=device)
    picks, picked_gains = [], []
    for step in range(n_pick):
        verified = (err == 0) & ~picked
        # The best bound alone first: with tight bounds it is the pick, and one kernel column is
        # all the step costs (32 of them per pick, N x D each, dominated long selections).
        batch, refreshed = 1, False
        while True:
            best = float(gains[verified].max()) if verified.any() else neg_inf
            done = verified | picked
            bound = gains + err
            bound[done] = neg_inf
            reach = (bound >= best - tol * max(abs(best), 1e-30)) & ~done
            n_reach = int(reach.sum())
            if n_reach == 0:
                break
            if (not refreshed and n_reach > max(4 * lazy_batch, n // 64)
                    and float(gains.max()) < refresh_ratio * base):  # bounds too loose: recompute all
                gains = exact_gains()
                scale, err = torch.where(picked, 0.0, gains.abs()), torch.zeros_like(err)
                base = float(gains.max())
                verified = ~picked
                refreshed = True
                continue
            k = min(batch, n_reach)
            idx = torch.topk(torch.where(reach, bound, neg_inf), k).indices
            gains[idx] = rescore(idx)
            scale[idx], err[idx] = gains[idx].abs(), 0.0
            verified[idx] = True
            batch = lazy_batch if batch < lazy_batch else 2 * batch
        j = _lowest_best(gains[verified], everyone[verified], tol)
        picks.append(j)
        picked_gains.append(float(gains[j]))
        picked[j] = True
        gains[j] = neg_inf
        if step == n_pick - 1:
            break
        column = columns(torch.tensor([j], device=device))[0]
        changed = torch.nonzero(column > coverage).squeeze(1)
        old, new = coverage[changed], column[changed]
        coverage = torch.maximum(coverage, column)
        in_store = store.is_stored(changed)
        fresh_rows = changed[~in_store]
        if 2 * len(fresh_rows) >= n:
            gains = exact_gains()
            scale, err = torch.where(picked, 0.0, gains.abs()), torch.zeros_like(err)
            base = float(gains.max())
            continue
        drop = torch.zeros(n, dtype=torch.float64, device=device)
        store.add_drops(changed[in_store], old[in_store], new[in_store], weights, drop)
        old_f, new_f = old[~in_store], new[~in_store]
        for s in range(0, len(fresh_rows), plan.block):
            rows = fresh_rows[s : s + plan.block]
            K = kernel(Xt[rows], Xt)
            store.admit(rows, K, new_f[s : s + plan.block])
            o = old_f[s : s + plan.block, None]
            T = torch.minimum(K.sub_(o).clamp_(min=0.0), new_f[s : s + plan.block, None] - o, out=K)
            drop += _sum_rows(T, None if weights is None else weights[rows]).double()
            del K, T  # before the next block is computed: one block at a time in the budget
        gains -= drop / n
        gains[picked] = neg_inf
        err = slack * scale
    return np.asarray(picks, dtype=np.int64), np.asarray(picked_gains)
