"""The two-stage query: MaxHerding for diversity, then eDALD (or Uncertainty Herding) for uncertainty."""

from __future__ import annotations

import hashlib
import time

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from tqdm.auto import tqdm

from skal_seg._memory import read_rows
from skal_seg._checks import check_budget
from skal_seg._validation import check_features, is_fitted
from skal_seg.herding import MaxHerdingSampler, labeled_or_training
from skal_seg.uncertainty import EDALDSampler, NoisyViews, check_noisy_views, top_k
from skal_seg.uncertainty_herding import UncertaintyHerdingSampler


def _seeded_herding(herding: MaxHerdingSampler | None, seed: int) -> MaxHerdingSampler:
    """A clone of ``herding`` (default ``MaxHerdingSampler()``) seeded with ``seed``."""
    return clone(MaxHerdingSampler() if herding is None else herding).set_params(random_state=seed)


def _seeded_select(herding: MaxHerdingSampler | None, seed: int, X: np.ndarray, k: int) -> np.ndarray:
    """``k`` local picks among the rows ``X`` of one image (run here or on a Ray worker)."""
    return _seeded_herding(herding, seed).select(X, k)


class TwoStageQuery(BaseEstimator):
    """The paper's query: per-image and global MaxHerding, then eDALD ranking.

    Stage 1 local: MaxHerding picks ``local_budget`` rows inside each image
    (group). Stage 1 global: MaxHerding over the union of the local picks,
    conditioned on the labeled rows, keeps ``max(1, round(keep_global * n_local))``
    of them. Stage 2: eDALD ranks that pool and the top ``n_instances`` are
    returned, or (``uncertainty=UncertaintyHerdingSampler()``) Uncertainty
    Herding picks ``n_instances`` of that pool. When the classifier is not
    fitted yet (round 0) stage 2 is skipped and the global stage picks
    ``n_instances`` directly.

    Stage 1 bounds what a call can return: at most the local picks
    (``sum over images of min(local_budget, rows of the image)``) in round 0,
    at most :meth:`global_keep` of them once the classifier is fitted. Asking
    for more raises ``ValueError`` (before any herding) rather than returning
    fewer rows: an active-learning loop pays for ``n_instances`` labels per
    round, and a short answer (or a warning, easily lost in a loop) would
    silently shrink every later round's budget. Ask for fewer rows, or raise
    ``local_budget`` or ``keep_global``.

    Parameters
    ----------
    local_budget : int, default=50
        Rows MaxHerding keeps per image (all rows of an image with fewer).
    keep_global : float in (0, 1], default=0.5
        Fraction of the local picks the global stage keeps for stage 2; 1
        skips the global stage once the classifier is fitted (every local
        pick goes to stage 2).
    herding : MaxHerdingSampler, optional
        Stage-1 sampler (cloned per call); default ``MaxHerdingSampler()``.
    uncertainty : EDALDSampler or UncertaintyHerdingSampler, optional
        Stage-2 sampler; default ``EDALDSampler()``. An
        :class:`~skal_seg.uncertainty_herding.UncertaintyHerdingSampler`
        needs no noisy draws; it is conditioned on the labeled rows.
    random_state : int, RandomState or None, default=None
        Seeds the herding bandwidth subsamples. With an int, an image whose
        candidate rows are unchanged since an earlier call gets the same local
        picks, which are then reused instead of recomputed (across
        active-learning rounds only the images just labeled change).
    progress : bool, default=False
        Show a progress bar over images in the local stage.
    executor : RayExecutor or None, default=None
        Runs the local stage's per-image herding as tasks on Ray workers
        (:class:`skal_seg.distributed.RayExecutor`); the picks are the
        single process's (same seeds, same rows). None = in this process.

    Attributes
    ----------
    local_picks_ : ndarray of int
        Rows of ``X_pool`` kept by the local stage in the last call.
    candidate_pool_ : ndarray of int
        Rows kept by the global stage (the eDALD pool, or the answer in round 0).
    scores_ : ndarray of float or None
        Stage-2 scores of ``candidate_pool_``: eDALD, or the uncertainty
        weights of Uncertainty Herding (None in round 0).
    timings_ : dict
        Seconds spent in ``"stage1"`` (local + global MaxHerding) and
        ``"stage2"`` (eDALD, including any noisy features computed on demand).
    """

    def __init__(
        self,
        local_budget: int = 50,
        keep_global: float = 0.5,
        herding: MaxHerdingSampler | None = None,
        uncertainty: EDALDSampler | None = None,
        random_state=None,
        progress: bool = False,
        executor=None,
    ):
        self.local_budget = local_budget
        self.keep_global = keep_global
        self.herding = herding
        self.uncertainty = uncertainty
        self.random_state = random_state
        self.progress = progress
        self.executor = executor

    def global_keep(self, n_local: int) -> int:
        """Rows the global stage keeps for eDALD out of ``n_local`` local picks (rounds after the first).

        Parameters
        ----------
        n_local : int
            Local picks of the call.

        Returns
        -------
        int
            ``max(1, round(keep_global * n_local))``.
        """
        return max(1, int(round(self.keep_global * n_local)))

    def _local_budget(self) -> int:
        budget = check_budget(self.local_budget, "local_budget")
        if budget == 0:
            raise ValueError("local_budget must be a positive integer, got 0")
        return budget

    def _herding(self, seed: int) -> MaxHerdingSampler:
        return _seeded_herding(self.herding, seed)

    def local_stage(self, X: np.ndarray, groups: np.ndarray, rng, rows=None) -> np.ndarray:
        """Stage 1 local: MaxHerding inside each image.

        Streams over the images: only one image's rows are read from ``X``
        (and widened to float32 by the sampler) at a time, and the pages a
        memory-mapped ``X`` has read are released after each image.

        Parameters
        ----------
        X : ndarray of shape (n_rows, D)
        groups : ndarray of shape (n_rows,) or (len(rows),)
            Image of each row (of each of ``rows`` when given).
        rng : RandomState
            Draws one herding seed per image (in sorted image order).
        rows : ndarray of int, optional
            Herd only these rows of ``X`` (sorted); default: all.

        Returns
        -------
        ndarray of int64
            Sorted rows of ``X``: ``min(local_budget, rows of the image)`` per image.
        """
        budget = self._local_budget()
        picks = []
        names, inverse = np.unique(groups, return_inverse=True)
        seeds = rng.randint(0, 2**31 - 1, size=len(names))
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(names) + 1))
        if not hasattr(self, "_local_cache"):
            self._local_cache: dict[str, np.ndarray] = {}
        herding_params = repr(sorted((MaxHerdingSampler() if self.herding is None else self.herding).get_params().items()))
        todo = []  # (key, seed, image rows, k) of the images not herded before
        for g in range(len(names)):
            image_rows = order[bounds[g] : bounds[g + 1]]
            if rows is not None:
                image_rows = rows[image_rows]
            k = min(budget, len(image_rows))
            X_g = np.ascontiguousarray(read_rows(X, image_rows))
            # An image whose candidates, seed and settings are unchanged gets the same picks:
            # across active-learning rounds only the images that were just labeled need herding again.
            key = hashlib.sha1(repr((int(seeds[g]), k, herding_params, X_g.dtype.str, X_g.shape)).encode()
                               + hashlib.sha1(X_g).digest()).hexdigest()
            picks.append((image_rows, key))
            if key not in self._local_cache:
                todo.append((key, int(seeds[g]), image_rows, k))
        # Each image's rows are read again when herded, so no more than a few images' copies exist at once.
        args = ((seed, np.ascontiguousarray(read_rows(X, image_rows)), k) for _, seed, image_rows, k in todo)
        if self.executor is not None and len(todo) > 1:
            found = self.executor.imap(_seeded_select, args, total=len(todo), shared=(self.herding,),
                                       progress=self.progress, desc="stage 1 local", unit="image")
        else:
            found = (_seeded_select(self.herding, *a) for a in
                     tqdm(args, total=len(todo), desc="stage 1 local", disable=not self.progress, leave=False))
        for (key, *_), local in zip(todo, found):
            self._local_cache[key] = local
        picks = [image_rows[self._local_cache[key]] for image_rows, key in picks]
        return np.sort(np.concatenate(picks)) if picks else np.empty(0, dtype=np.int64)

    def local_picks_memo(self) -> dict[str, np.ndarray]:
        """The memoised local picks, to save with a run's state (see :meth:`remember_local_picks`).

        Returns
        -------
        dict
            ``{key: picks}``: a hex digest of an image's herding inputs (seed,
            budget, sampler settings, candidate features) and the positions
            picked among its rows. A copy.
        """
        return dict(getattr(self, "_local_cache", {}))

    def remember_local_picks(self, memo: dict[str, np.ndarray]) -> "TwoStageQuery":
        """Reuse local picks saved from :meth:`local_picks_memo` (a resumed run herds only what changed since).

        The keys name every herding input, so a memo from other settings or
        features is never used: its entries just match no image.

        Parameters
        ----------
        memo : dict
            From :meth:`local_picks_memo`.

        Returns
        -------
        TwoStageQuery
            ``self``.
        """
        if not hasattr(self, "_local_cache"):
            self._local_cache = {}
        self._local_cache.update({str(k): np.asarray(v, dtype=np.int64) for k, v in memo.items()})
        return self

    def query(
        self,
        classifier,
        X_pool,
        n_instances: int = 1,
        groups=None,
        X_noisy: NoisyViews = None,
        X_labeled=None,
        y_labeled=None,
        rows=None,
    ) -> np.ndarray:
        """Indices into ``X_pool`` of the rows to label next (at most ``n_instances``, unique).

        Parameters
        ----------
        classifier : estimator, modAL learner or None
            Used for stage 2 when fitted; a modAL learner's ``X_training``
            conditions the global stage when ``X_labeled`` is not given.
        X_pool : array-like of shape (n_pool, D)
            Fixed-noise features of the unlabeled candidate rows.
        n_instances : int, default=1
        groups : array-like of shape (n_pool,), optional
            Image of each row; default: all rows form one image.
        X_noisy : ndarray (K, n_pool, D) or callable, optional
            Noisy draws for eDALD (see :meth:`EDALDSampler.scores`); required
            once the classifier is fitted, unless stage 2 is Uncertainty Herding.
            Only the stage-2 pool's rows are asked for. A callable with an
            ``also_keep(rows)`` method (a cache such as
            :class:`~skal_seg.engine.noisy.CachedNoisyViews`) is first told the
            local picks, which later rounds' pools come from.
        X_labeled : array-like of shape (n_labeled, D), optional
            Labeled rows the global stage (and Uncertainty Herding) is conditioned on.
        y_labeled : array-like of shape (n_labeled,), optional
            Their labels, for Uncertainty Herding's ``temperature="auto"``.
        rows : array-like of int, optional
            The rows of ``X_pool`` that may be picked (strictly increasing;
            default: all). ``groups`` and ``X_noisy`` still index ``X_pool``.
            Lets a caller pass all of its (memory-mapped) features with the
            unlabeled rows named here instead of copying them: the answer is
            the same as for ``X_pool[rows]`` (mapped back through ``rows``).

        Returns
        -------
        ndarray of int64, ``n_instances`` unique rows of ``X_pool``
            In stage-2 order (highest eDALD first, or Uncertainty Herding's
            greedy order), or in MaxHerding order in round 0.

        Raises
        ------
        ValueError
            Bad features, ``groups`` of the wrong length, negative budgets,
            ``keep_global`` outside (0, 1], missing or misaligned ``X_noisy``,
            bad ``rows``, or ``n_instances`` larger than stage 1 keeps (see the class notes).
        """
        X = check_features(X_pool, "X_pool")
        n_instances = check_budget(n_instances)
        if not (isinstance(self.keep_global, (int, float)) and 0 < self.keep_global <= 1):
            raise ValueError(f"keep_global must be in (0, 1], got {self.keep_global!r}")
        groups = np.zeros(len(X), dtype=np.int64) if groups is None else np.asarray(groups)
        if groups.ndim != 1 or len(groups) != len(X):
            raise ValueError(f"groups must have shape ({len(X)},) to match X_pool, got {groups.shape}")
        if rows is not None:
            rows = np.asarray(rows)
            if rows.ndim != 1 or (rows.size and (rows.dtype.kind not in "iu" or rows[0] < 0 or rows[-1] >= len(X)
                                                  or np.any(np.diff(rows) <= 0))):
                raise ValueError(f"rows must be strictly increasing integers in [0, {len(X)}), got {rows!r}")
            rows = rows.astype(np.int64, copy=False)
        candidate_groups = groups if rows is None else groups[rows]
        X_labeled, y_labeled = labeled_or_training(classifier, X_labeled, y_labeled)
        fitted = is_fitted(classifier)
        sampler = EDALDSampler() if self.uncertainty is None else self.uncertainty
        herding_stage2 = isinstance(sampler, UncertaintyHerdingSampler)
        if fitted and not herding_stage2:  # fail before the expensive stage 1, not after
            check_noisy_views(X_noisy, len(X), X.shape[1])
        if n_instances > 0:
            self._check_stage1_keeps(n_instances, candidate_groups, fitted)
        rng = check_random_state(self.random_state)
        self.scores_ = None
        self.timings_ = {"stage1": 0.0}
        start = time.perf_counter()
        if n_instances == 0:
            self.local_picks_ = self.candidate_pool_ = np.empty(0, dtype=np.int64)
            return np.empty(0, dtype=np.int64)

        local = self.local_stage(X, candidate_groups, rng, rows=rows)
        self.local_picks_ = local
        herding = self._herding(int(rng.randint(0, 2**31 - 1)))
        X_local = read_rows(X, local)  # the only rows read again (the stage-2 pool comes from them)
        if not fitted:
            picked = local[herding.select(X_local, n_instances, X_labeled=X_labeled)]
            self.candidate_pool_ = picked
            self.timings_["stage1"] = time.perf_counter() - start
            return picked

        keep = self.global_keep(len(local))
        # Keeping every local pick needs no global herding (stage 2 re-orders the pool anyway).
        kept = None if keep >= len(local) else herding.select(X_local, keep, X_labeled=X_labeled)
        pool = local if kept is None else local[kept]
        X_stage2 = X_local if kept is None else X_local[kept]
        del X_local
        self.candidate_pool_ = pool
        self.timings_["stage1"] = time.perf_counter() - start
        start = time.perf_counter()
        if herding_stage2:
            picked = pool[sampler.query(classifier, X_stage2, n_instances, X_labeled=X_labeled, y_labeled=y_labeled)]
            self.scores_ = sampler.uncertainty_ if sampler.uncertainty_ is not None else np.ones(len(pool))
        else:
            # X_noisy indexes X_pool: the stage-2 rows are renumbered 0..len(pool)-1 for the sampler
            if callable(getattr(X_noisy, "also_keep", None)):  # a cache: later rounds read other local picks
                X_noisy.also_keep(local)
            noisy_views = X_noisy if callable(X_noisy) else np.asarray(X_noisy)[:, pool]
            noisy_of = (lambda i: noisy_views(pool[i])) if callable(X_noisy) else noisy_views
            self.scores_ = sampler.scores(classifier, X_stage2, noisy_of)
            picked = pool[top_k(self.scores_, n_instances)]
        self.timings_["stage2"] = time.perf_counter() - start
        return picked

    def _check_stage1_keeps(self, n_instances: int, groups: np.ndarray, fitted: bool) -> None:
        """ValueError when stage 1 would keep fewer than ``n_instances`` rows (counted before any herding)."""
        budget = self._local_budget()
        sizes = np.unique(groups, return_counts=True)[1]
        n_local = int(np.minimum(sizes, budget).sum())
        kept = self.global_keep(n_local) if fitted else n_local
        if n_instances <= kept:
            return
        how = f"local_budget={budget} per image over {len(sizes)} images (fewer where an image has fewer rows)"
        if fitted:
            how = f"keep_global={self.keep_global} x {n_local} local picks: {how}"
        raise ValueError(
            f"n_instances={n_instances} exceeds the {kept} rows stage 1 keeps ({how}); "
            f"ask for at most {kept}, or raise local_budget{' or keep_global' if fitted else ''}"
        )

    def __call__(self, classifier, X_pool, n_instances: int = 1, **kwargs):
        """modAL strategy: ``(indices, metrics)``, metrics being the stage-2 scores
        of the picks (or NaN in round 0), as modAL's ``ActiveLearner.query`` expects.
        """
        idx = self.query(classifier, X_pool, n_instances, **kwargs)
        if self.scores_ is None:
            return idx, np.full(len(idx), np.nan)
        pos = {row: i for i, row in enumerate(self.candidate_pool_)}
        return idx, self.scores_[[pos[r] for r in idx]]
