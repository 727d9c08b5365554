"""The active-learning loop on a segmentation dataset: query, reveal, train, evaluate, repeat.

One run = one strategy and one seed. All strategies and seeds share the same
candidate pixels and noisy diffusion draws (drawn from ``feature_seed``), the
same fixed-noise diffusion features (computed once and cached on disk), the
same classifier and the same test evaluation, so only the choice of pixels
differs; ``seed`` varies the queries and the classifier's training.

Round ``r`` (0-based) queries ``budget`` pixels, the ground truth answers them
as a simulated annotator through a labeling project in the results folder
(:class:`~skal_seg.labeling.simulate.GroundTruthAnnotator`: the code path of
a person's answers; a pixel labeled ``ignore`` is answered "void", costs
budget but teaches nothing), the
classifier is trained from scratch on every answered pixel so far and
evaluated (mIoU on the test split at the working size). Round 0 has no
classifier: the herding strategies (``maxherding``, ``two_stage``,
``uherding``, ``two_stage_uherding``) use stage 1 (MaxHerding), the other
strategies pick at random, from the same random state for a given ``seed``
(so their round 0 labels the same pixels). The run's state is written atomically after each
round, so ``resume=True`` continues an interrupted run with exactly the same
labeled pixels, or extends a finished one to more ``rounds`` (the round-``r``
picks depend on ``seed`` and ``r``, never on the number of rounds).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from modAL.uncertainty import classifier_entropy, classifier_margin
from modAL.utils.selection import multi_argmax, multi_argmin

from skal_seg._memory import read_rows, release, row_blocks
from skal_seg._checks import check_non_negative, check_positive_or_word
from skal_seg.classifier import TorchMLPClassifier
from skal_seg.data import CAMVID_CLASSES, IGNORE_INDEX, SegmentationSplit
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.herding import MaxHerdingSampler
from skal_seg.labeling.simulate import GroundTruthAnnotator
from skal_seg.metrics import confusion_matrix, iou_per_class, mean_iou
from skal_seg.query import TwoStageQuery
from skal_seg.uncertainty import EDALDSampler, check_mi, top_k
from skal_seg.uncertainty_herding import UncertaintyHerdingSampler, fit_temperature

#: Query strategies, each with what it does per round (round 0 in brackets).
STRATEGIES: dict[str, str] = {
    "random": "uniformly random candidate pixels",
    "entropy": "highest predictive entropy, modAL entropy_sampling [round 0: random]",
    "margin": "smallest top-2 probability margin, modAL margin_sampling [round 0: random]",
    "bald": "highest BALD mutual information over noisy diffusion draws [round 0: random]",
    "maxherding": "stage 1 only: local + global MaxHerding conditioned on labeled pixels",
    "edald": "highest eDALD over all candidate pixels, no stage 1 [round 0: random]",
    "two_stage": "the method: MaxHerding (local, global) then eDALD [round 0: stage 1]",
    "uherding": "Uncertainty Herding over every local MaxHerding pick (no global stage) [round 0: stage 1]",
    "two_stage_uherding": "MaxHerding (local, global) then Uncertainty Herding instead of eDALD [round 0: stage 1]",
}
NEEDS_NOISY = ("bald", "edald", "two_stage")
#: Strategies whose round 0 (no classifier yet) picks at random, all from the same random state.
RANDOM_FIRST_ROUND = ("random", "entropy", "margin", "bald", "edald")
#: Strategies built on :class:`~skal_seg.query.TwoStageQuery` (round 0: its stage 1).
HERDING = ("maxherding", "two_stage", "uherding", "two_stage_uherding")
#: Herding strategies whose stage 1 keeps every local pick (no global stage after round 0).
_KEEPS_EVERY_LOCAL_PICK = ("maxherding", "uherding")
#: Where candidate pixels are drawn: see :func:`candidate_pixels`.
CANDIDATES = ("valid", "all")


@dataclass
class ExperimentConfig:
    """Settings of one run (defaults: the paper's protocol scaled to a 2-core CPU).

    Parameters
    ----------
    strategy : str
        One of :data:`STRATEGIES`.
    seed : int
        Seeds the queries (random picks, herding subsamples) and classifier
        training: what varies between the repeats of an experiment.
    feature_seed : int
        Seeds the pool's random candidate pixels and the K noisy diffusion
        draws. Like the featurizer's fixed noise, these define the features
        of a dataset, so they are shared by every strategy and seed by
        default: features are computed once per dataset, not once per run.
    rounds : int
        Query rounds (paper: 10).
    candidates_per_image : int
        Random candidate pixels per pool image (paper: 10,000 of 65,536 at
        256 x 256; 2,500 of 16,384 keeps that fraction at 128 x 128).
    candidates : {"valid", "all"}
        ``"valid"`` (the paper's protocol): candidates only among pixels
        whose label is not ignore; ``"all"``: among all pixels, as in a real
        labeling session where no label exists yet. See :func:`candidate_pixels`.
    budget_per_image : float
        Labeled pixels per round per pool image (paper: 0.1, i.e. 37 per
        round for 367 images).
    budget_per_round : int or None
        Labeled pixels per round, whatever the pool's size; when set it
        replaces ``budget_per_image`` (None: use the per-image rate).
    local_budget, keep_global : int, float
        :class:`~skal_seg.query.TwoStageQuery` settings (paper: 50, 0.5).
    n_draws : int
        Noisy diffusion draws K for BALD / eDALD (paper: 5).
    entropy_weight : float
        eDALD entropy weight.
    mi : {"paper", "paper_code"}
        eDALD's BALD term (:class:`~skal_seg.uncertainty.EDALDSampler`).
    uherding_temperature : "auto" or float
        Uncertainty Herding's temperature; ``"auto"`` fits it each round on
        the labeled pixels (:func:`~skal_seg.uncertainty_herding.fit_temperature`,
        the paper's rule and the sampler's default). The runner's default,
        0.5, was chosen on CamVid's validation split (docs/benchmarks.md,
        "Tuning on validation"): the fitted temperature is at least 1 and,
        with a few hundred labels, flattens the uncertainties.
    uherding_bandwidth : "labeled", "auto" or float
        Uncertainty Herding's RBF bandwidth
        (:class:`~skal_seg.uncertainty_herding.UncertaintyHerdingSampler`).
    eval_stride : int
        1 evaluates every pixel of the evaluation images; ``s`` evaluates the
        regular grid of every ``s``-th pixel in both directions of every image
        (``1/s^2`` of the cost, for quick runs on a small CPU).
    bandwidth : "auto" or float
        MaxHerding RBF bandwidth.
    herding_memory_mb : "auto" or float
        Memory for MaxHerding's (and Uncertainty Herding's) kernel per
        selection (``max_memory_mb`` of
        :class:`~skal_seg.herding.MaxHerdingSampler`); ``"auto"``: half of
        the memory available when a selection starts. A kernel that does
        not fit is recomputed while picking, which is much slower (a global
        stage of 33,000 rows at ``local_budget=100`` took over 30 minutes a
        round under 2048 MB). Speed only: a resumed run may change it.
    featurizer : dict
        :class:`~skal_seg.featurizer.DiffusionFeaturizer` parameters.
    classifier : dict
        :class:`~skal_seg.classifier.TorchMLPClassifier` parameters
        (``random_state`` is set per round from ``seed``; ``ignore_index``
        is 255, so ignore pixels never become a class).
    """

    strategy: str = "two_stage"
    seed: int = 0
    feature_seed: int = 0
    rounds: int = 10
    candidates_per_image: int = 2500
    candidates: str = "valid"
    budget_per_image: float = 0.1
    budget_per_round: int | None = None
    local_budget: int = 50
    keep_global: float = 0.5
    n_draws: int = 5
    entropy_weight: float = 1.0
    mi: str = "paper"
    uherding_temperature: Any = 0.5
    uherding_bandwidth: Any = "labeled"
    eval_stride: int = 1
    bandwidth: Any = "auto"
    herding_memory_mb: Any = "auto"
    featurizer: dict = field(default_factory=lambda: {"model": "embedded", "timesteps": [50, 150, 250]})
    classifier: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Check the settings.

        Raises
        ------
        ValueError
            An unknown strategy, a negative or non-integer seed, a count
            (rounds, candidates, local budget, draws, eval stride) below 1,
            a non-positive budget (per image or per round), ``keep_global`` outside (0, 1], a negative
            ``entropy_weight`` or a ``bandwidth`` other than "auto" or a
            positive number, unknown ``candidates`` or ``mi``, a bad
            Uncertainty Herding temperature or bandwidth.
        """
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose from {sorted(STRATEGIES)}")
        for name in ("seed", "feature_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        for name in ("rounds", "candidates_per_image", "local_budget", "n_draws", "eval_stride"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (0 < self.budget_per_image):
            raise ValueError(f"budget_per_image must be positive, got {self.budget_per_image!r}")
        b = self.budget_per_round
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
            raise ValueError(f"budget_per_round must be None or a positive integer, got {b!r}")
        if not (0 < self.keep_global <= 1):
            raise ValueError(f"keep_global must be in (0, 1], got {self.keep_global!r}")
        check_non_negative(self.entropy_weight, "entropy_weight")
        check_positive_or_word(self.bandwidth, "bandwidth")
        check_positive_or_word(self.herding_memory_mb, "herding_memory_mb")
        if self.candidates not in CANDIDATES:
            raise ValueError(f"unknown candidates {self.candidates!r}; choose from {CANDIDATES}")
        check_mi(self.mi)
        check_positive_or_word(self.uherding_temperature, "uherding_temperature")
        check_positive_or_word(self.uherding_bandwidth, "uherding_bandwidth", ("labeled", "auto"))

    def validate_for_pool(self, n_pool_images: int, candidate_counts: Sequence[int] | None = None) -> None:
        """Check the settings, and that every round can query its full budget from this pool.

        Cheap (no features needed): call it as soon as the pool size is known,
        before any work; :func:`run_experiment` calls it first. Every round
        ``r`` queries ``budget`` pixels from the candidates not labeled yet;
        the herding strategies (``maxherding``, ``two_stage``, ``uherding``,
        ``two_stage_uherding``) query them through stage 1 of
        :class:`~skal_seg.query.TwoStageQuery`, which keeps only

        * the local picks: ``min(local_budget, candidates left)`` per image,
          in round 0 and in every ``maxherding`` round;
        * :meth:`~skal_seg.query.TwoStageQuery.global_keep` of them in
          ``two_stage`` rounds 1 and later.

        The candidates left per image depend on where earlier rounds labeled,
        so the check takes the worst case: the ``r * budget`` pixels labeled
        before round ``r`` crowded into as few images as stage 1 allows (at
        most ``min(local_budget, candidates_per_image)`` per image per round).
        A setting that passes can never come up short in any round.

        Parameters
        ----------
        n_pool_images : int
            Images in the pool.
        candidate_counts : sequence of int, optional
            Candidates actually drawn per image (:func:`candidate_pixels`;
            with ``candidates="valid"`` an image may have fewer than
            ``candidates_per_image``, or none). Without it every image has
            ``candidates_per_image``. With it the check counts the real total
            and takes, for stage 1, the images that have candidates, each at
            the smallest count among them (a safe bound).

        Raises
        ------
        ValueError
            What :meth:`validate` raises; an empty pool; more pixels over all
            rounds than candidates; or a round where stage 1 could keep fewer
            candidates than the budget. The message names the round and the
            values of ``budget_per_image``, ``local_budget``, ``keep_global``
            or ``rounds`` that would fit.
        """
        self.validate()
        n = n_pool_images
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"the pool must hold at least one image, got {n_pool_images!r}")
        budget, n_candidates = self.budget(n), self.candidates_per_image * n
        per_image = self.candidates_per_image
        if candidate_counts is not None:
            counts = np.asarray(candidate_counts, dtype=np.int64)
            if counts.shape != (n,):
                raise ValueError(f"candidate_counts must hold one count per pool image ({n}), got shape {counts.shape}")
            n_candidates = int(counts.sum())
            if n_candidates == 0:
                raise ValueError(f"no candidate pixel in the pool (candidates={self.candidates!r}: every pixel of "
                                 f"every pool image is ignore); use candidates='all' or other images")
            n, per_image = int(np.count_nonzero(counts)), int(counts[counts > 0].min())
        if budget * self.rounds > n_candidates:
            fixes = ["raise candidates_per_image"]
            if n_candidates >= self.rounds:
                fixes.insert(0, f"lower budget_per_image to {self._per_image(n_candidates // self.rounds, n)} or less")
            fit = n_candidates // budget
            if fit:
                fixes.append(f"run at most {fit} round{'s' if fit > 1 else ''}")
            raise ValueError(
                f"{self.rounds} rounds x {budget} pixels exceed the {n_candidates} candidate pixels of the pool "
                f"({'at most ' if candidate_counts is not None else ''}{self.candidates_per_image} per image x "
                f"{len(candidate_counts) if candidate_counts is not None else n} images); {_either(fixes)}"
            )
        if self.strategy not in HERDING:
            return
        short = self._first_short_round(n, budget, self.local_budget, self.keep_global, per_image)
        if short is None:
            return
        r, kept, n_local = short
        stage = f"{n_local} local picks" if r == 0 or self.strategy in _KEEPS_EVERY_LOCAL_PICK else \
            f"keep_global {self.keep_global} x {n_local} local picks"
        stage += f", local_budget {self.local_budget} per image on {n} images"
        if n_local < n * min(self.local_budget, per_image):
            stage += f", fewer where the {r * budget} pixels labeled before could leave fewer candidates"
        fixes = []
        low, high = 1, budget  # the largest budget that fits every round (fitting is monotone in the budget)
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if self._first_short_round(
                n, mid, self.local_budget, self.keep_global, per_image) is None else (low, mid - 1)
        fixes.append(f"lower budget_per_round to {low} or less" if self.budget_per_round is not None else
                     f"lower budget_per_image to {self._per_image(low, n_pool_images)} or less "
                     f"({low} pixels per round)")
        local = next((b for b in range(self.local_budget + 1, per_image + 1)
                      if self._first_short_round(n, budget, b, self.keep_global, per_image) is None), None)
        if local is not None:
            fixes.append(f"raise local_budget to {local}")
        if self.strategy not in _KEEPS_EVERY_LOCAL_PICK and r > 0:
            keep = next((k / 100 for k in range(int(round(self.keep_global * 100)) + 1, 101)
                         if self._first_short_round(n, budget, self.local_budget, k / 100, per_image) is None), None)
            if keep is not None:
                fixes.append(f"raise keep_global to {keep:g}")
        if r > 0:
            fixes.append(f"run at most {r} round{'s' if r > 1 else ''}")
        raise ValueError(
            f"{self.strategy} cannot query {budget} pixels in round {r}: stage 1 may keep only {kept} candidates "
            f"then ({stage}); {_either(fixes)}"
        )

    @staticmethod
    def _per_image(pixels: int, n: int) -> str:
        """Shortest ``budget_per_image`` text that :meth:`budget` turns into ``pixels`` per round."""
        for digits in range(2, 10):
            text = f"{pixels / n:.{digits}g}"
            if max(1, int(round(float(text) * n))) == pixels:
                return text
        return repr(pixels / n)

    def _first_short_round(self, n: int, budget: int, local_budget: int, keep_global: float,
                           C: int) -> tuple | None:
        """First round whose stage 1 may keep fewer than ``budget`` candidates, as (round, kept, local picks).

        Local picks of round ``r`` in the worst case: ``min(local_budget, C)`` per image
        less what labels took from them. An image loses local picks only once it has more
        than ``C - min(local_budget, C)`` labels (``C`` candidates per image), and it gains
        at most ``min(local_budget, C)`` labels per round (the picks of a round are local
        picks), so the ``r * budget`` labels do the most harm crowded into as few images as
        possible, each filled up to ``min(C, r * min(local_budget, C))``.
        """
        per_image = min(local_budget, C)
        free = C - per_image  # labels an image takes before its local picks shrink
        query = TwoStageQuery(local_budget, keep_global)
        for r in range(self.rounds):
            labeled = r * budget
            cap = min(C, r * per_image)  # most labels one image can hold before round r
            lost = 0
            if cap > free:
                full = min(n, labeled // cap)
                rest = labeled - full * cap if full < n else 0
                lost = full * (cap - free) + max(0, min(rest, cap) - free)
            n_local = n * per_image - lost
            kept = n_local if (r == 0 or self.strategy in _KEEPS_EVERY_LOCAL_PICK) else query.global_keep(n_local)
            if budget > kept:
                return r, kept, n_local
        return None

    def budget(self, n_pool_images: int) -> int:
        """Pixels queried per round.

        Parameters
        ----------
        n_pool_images : int

        Returns
        -------
        int
            ``budget_per_round`` when set, else
            ``max(1, round(budget_per_image * n_pool_images))``.
        """
        if self.budget_per_round is not None:
            return int(self.budget_per_round)
        return max(1, int(round(self.budget_per_image * n_pool_images)))

    def to_dict(self) -> dict:
        """The settings as results files record them.

        Returns
        -------
        dict
            JSON-compatible (tuples become lists).
        """
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _either(options: list[str]) -> str:
    """'a, b or c'."""
    return ", ".join(options[:-1]) + (" or " if len(options) > 1 else "") + options[-1]


# --------------------------------------------------------------------------- features


def cache_key(*parts: Any) -> str:
    """Short content hash of ``parts``, for :class:`FeatureCache` keys and feature file names.

    Parameters
    ----------
    *parts
        Arrays (hashed with their dtype, shape and bytes) and JSON-able values.

    Returns
    -------
    str
        16 hex digits.
    """
    h = hashlib.sha1()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(f"{p.dtype}{p.shape}".encode())
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def featurizer_key(featurizer: DiffusionFeaturizer) -> dict:
    """What identifies a featurizer's output, for cache keys.

    Parameters
    ----------
    featurizer : DiffusionFeaturizer

    Returns
    -------
    dict
        Its parameters except those that do not change the features
        (``progress``, ``batch_size``, ``device``, ``executor``); a model instance is
        named by its type and ``id`` (so it is cached per process only).
    """
    params = {k: v for k, v in featurizer.get_params().items()
              if k not in ("progress", "batch_size", "device", "executor")}
    if not isinstance(params["model"], (str, os.PathLike)):
        params["model"] = f"{type(params['model']).__name__}@{id(params['model'])}"
    return params


class FeatureCache:
    """Feature matrices computed once and kept as ``.npy`` files (memory-mapped on reuse).

    Parameters
    ----------
    directory : path or None
        Where to keep them; None keeps them in memory for this process only.
    memory_limit_mb : float, default=1024
        In-memory budget for the optional arrays (``in_memory=False``) that
        are not kept on disk.
    persist_optional : bool, default=True
        Keep the optional arrays in ``directory`` too. False keeps only the
        others on disk (pool features: what a resumed run needs) and treats
        the optional ones (dense evaluation features, ``H x W x D`` float16
        per image: GBs for a full dataset) as without a directory.
    """

    def __init__(self, directory: str | Path | None, memory_limit_mb: float = 1024, persist_optional: bool = True):
        self.directory = None if directory is None else Path(directory)
        self.memory_limit_mb = memory_limit_mb
        self.persist_optional = persist_optional
        self._memory: dict[str, np.ndarray] = {}
        self._held = 0

    def get(self, key: str, compute: Callable[[], np.ndarray], in_memory: bool = True) -> np.ndarray:
        """The array stored under ``key``, computed by ``compute()`` the first time.

        Without a directory (or with ``persist_optional=False``), arrays with
        ``in_memory=False`` (dense test features, say) are kept only while
        the cache holds under ``memory_limit_mb`` in all; larger ones are
        recomputed on each use.

        Parameters
        ----------
        key : str
            File name stem; must change whenever the values would.
        compute : callable
            ``() -> ndarray``, called on a miss.
        in_memory : bool, default=True
            Without a directory: keep the array whatever its size.

        Returns
        -------
        ndarray
            Memory-mapped read-only from ``<directory>/<key>.npy`` with a
            directory, in memory otherwise.
        """
        if key in self._memory:
            return self._memory[key]
        if not in_memory and (self.directory is None or not self.persist_optional):
            arr = compute()
            if self._held + arr.nbytes <= self.memory_limit_mb * 2**20:
                self._memory[key] = arr
                self._held += arr.nbytes
            return arr
        if self.directory is not None:
            path = self.directory / f"{key}.npy"
            if path.exists():
                arr = np.load(path, mmap_mode="r")
            else:
                arr = compute()
                self.directory.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npy")
                np.save(tmp, arr)
                os.replace(tmp, path)
                arr = np.load(path, mmap_mode="r")
        else:
            arr = compute()
        self._memory[key] = arr
        return arr

    def get_streamed(self, key: str, shape: tuple[int, int], dtype, blocks: Callable[[], Iterable[np.ndarray]]
                     ) -> np.ndarray:
        """Like :meth:`get`, for a matrix computed as consecutive blocks of rows, never whole in memory.

        With a directory the blocks are written one after the other to
        ``<directory>/<key>.npy`` (through the file, not a memory map, so
        they do not stay resident) and the file is then memory-mapped;
        without one they fill an array in memory.

        Parameters
        ----------
        key : str
        shape : (int, int)
            Shape of the whole matrix.
        dtype : numpy dtype
        blocks : callable
            ``() -> iterable of ndarray``: row blocks in order, called on a miss.

        Returns
        -------
        ndarray of shape ``shape``

        Raises
        ------
        ValueError
            The blocks do not add up to ``shape`` (the file is not kept).
        """
        if key in self._memory:
            return self._memory[key]
        dtype = np.dtype(dtype)
        path = None if self.directory is None else self.directory / f"{key}.npy"
        if path is not None and path.exists():
            arr = np.load(path, mmap_mode="r")
        elif path is None:
            arr = np.empty(shape, dtype=dtype)
            row = 0
            for block in blocks():
                arr[row : row + len(block)] = block
                row += len(block)
            _check_rows(row, shape, key)
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            try:
                with open(tmp, "wb") as f:
                    np.lib.format.write_array_header_1_0(
                        f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)})
                    row = 0
                    for block in blocks():
                        block = np.ascontiguousarray(block, dtype=dtype)
                        if block.ndim != 2 or block.shape[1] != shape[1] or row + len(block) > shape[0]:
                            _check_rows(-1, shape, key)
                        f.write(block.data)
                        row += len(block)
                    _check_rows(row, shape, key)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            arr = np.load(path, mmap_mode="r")
        self._memory[key] = arr
        return arr


def _check_rows(rows: int, shape: tuple, key: str) -> None:
    if rows != shape[0]:
        raise ValueError(f"the blocks of {key} do not form a {shape[0]} x {shape[1]} matrix")


class CachedNoisyViews:
    """``X_noisy`` callable over pool rows that computes each image's candidate pixels once.

    The diffusion forward pass costs the same for one pixel as for all of an
    image's candidates, so a request computes every candidate pixel of the
    images involved and keeps them for later rounds.

    Parameters
    ----------
    view_fn : NoisyViewFunction
        From :meth:`DiffusionFeaturizer.noisy_view_fn` over the pool's candidate pixels.
    offsets : ndarray of shape (n_images + 1,)
        First pool row of each image.
    n_features : int
    dtype : numpy dtype, default=float16
    memory_limit_mb : float, default=1024
        Above this size the values live in a memory-mapped file (evictable
        page cache rather than pinned memory): K x n_rows x D can be many GB.
    directory : path, optional
        Where that file goes (a temporary folder, removed with this object;
        default: the system's temporary folder).
    images_per_call : int, default=8
        Images featurized together, bounding the transient memory. Which
        images go together changes the values only by float rounding (see
        :meth:`~skal_seg.featurizer.DiffusionFeaturizer.noisy_view_fn`).
    path : path, optional
        Keep the values in this ``.npy`` file, with the list of images already
        computed beside it (``<path>.done.npy``, written atomically after each
        group of images): later runs on the same pool and noise draws (other
        strategies, other seeds, a resumed run) reuse them, and an
        interrupted run loses at most the images in progress. The caller
        names the file after everything the values depend on (see
        :func:`run_experiment`); one process should fill a file at a time.
    """

    def __init__(self, view_fn, offsets: np.ndarray, n_features: int, dtype=np.float16,
                 memory_limit_mb: float = 1024, directory: str | Path | None = None, images_per_call: int = 8,
                 path: str | Path | None = None):
        self.view_fn = view_fn
        self.offsets = offsets
        self.images_per_call = images_per_call
        shape = (view_fn.n_draws, int(offsets[-1]), n_features)
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        self.seconds = 0.0
        self._done_path = None
        self.done = np.zeros(len(offsets) - 1, dtype=bool)
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._done_path = path.with_name(path.name + ".done.npy")
            if path.exists() and self._done_path.exists():
                self.values = np.load(path, mmap_mode="r+")
                done = np.load(self._done_path)
                if self.values.shape != shape or self.values.dtype != np.dtype(dtype) or done.shape != self.done.shape:
                    raise ValueError(f"{path} holds noisy views of another shape or dtype; delete it to recompute")
                self.done = done
            else:
                self.values = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
                self._save_done()
        elif nbytes > memory_limit_mb * 2**20:
            if directory is not None:
                Path(directory).mkdir(parents=True, exist_ok=True)
            self._tmp = tempfile.TemporaryDirectory(prefix="skal_seg_noisy_", dir=directory)
            self.values = np.lib.format.open_memmap(Path(self._tmp.name) / "noisy.npy", mode="w+", dtype=dtype, shape=shape)
        else:
            self.values = np.zeros(shape, dtype=dtype)

    def _save_done(self) -> None:
        if self._done_path is None:
            return
        if isinstance(self.values, np.memmap):
            self.values.flush()  # values on disk before the images are marked done
        tmp = self._done_path.with_name(self._done_path.name + ".tmp.npy")
        np.save(tmp, self.done)
        os.replace(tmp, self._done_path)

    def __call__(self, indices) -> np.ndarray:
        """Noisy features (K, len(indices), D) of pool rows ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        images = np.unique(np.searchsorted(self.offsets, indices, side="right") - 1)
        missing = images[~self.done[images]]
        t0 = time.perf_counter()
        for start in range(0, len(missing), self.images_per_call):
            part = missing[start : start + self.images_per_call]
            rows = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in part])
            self.values[:, rows] = self.view_fn(rows)
            self.done[part] = True
            self._save_done()
            release(self.values)  # written pages live on in the page cache (and the file), not in this process
        self.seconds += time.perf_counter() - t0
        out = np.empty((self.values.shape[0], len(indices), self.values.shape[2]), dtype=self.values.dtype)
        for k in range(len(out)):  # from the file, not through the mapping (see skal_seg._memory.read_rows)
            out[k] = read_rows(self.values[k], indices)
        return out


# --------------------------------------------------------------------------- the run


def candidate_pixels(split: SegmentationSplit, n_per_image: int, seed: int, candidates: str = "valid") -> list[np.ndarray]:
    """Fixed random candidate pixels of every image, from ``seed`` (and the labels, for ``"valid"``).

    Two protocols, both kept because they answer different questions:

    * ``"valid"`` (the paper's, and the benchmark default): candidates only
      among pixels whose label is not :data:`~skal_seg.data.IGNORE_INDEX`.
      The official code reads the label map to do this, so no strategy
      spends budget on void pixels; an image with fewer valid pixels than
      ``n_per_image`` contributes all of them (none: the image has no row).
    * ``"all"``: candidates among all pixels, as in a real labeling session
      where no label exists yet and the annotator may answer "void": a
      queried ignore pixel costs budget and teaches nothing.

    Parameters
    ----------
    split : SegmentationSplit
    n_per_image : int
    seed : int
    candidates : {"valid", "all"}, default="valid"

    Returns
    -------
    list of ndarray of int64
        Flat pixel indices ``y * W + x``, sorted, distinct, one array per
        image: ``n_per_image`` each for ``"all"``, ``min(n_per_image, valid
        pixels of the image)`` for ``"valid"``.

    Raises
    ------
    ValueError
        More candidates than an image has pixels, an unknown ``candidates``.
    """
    if candidates not in CANDIDATES:
        raise ValueError(f"unknown candidates {candidates!r}; choose from {CANDIDATES}")
    h, w = split.labels.shape[1:]
    if n_per_image > h * w:
        raise ValueError(f"candidates_per_image={n_per_image} exceeds the {h * w} pixels of an image")
    rng = np.random.default_rng([seed, 7])
    if candidates == "all":
        return [np.sort(rng.choice(h * w, size=n_per_image, replace=False)) for _ in range(len(split))]
    out = []
    for labels in split.labels:
        valid = np.flatnonzero(labels.reshape(-1) != IGNORE_INDEX)
        pick = valid if len(valid) <= n_per_image else rng.choice(valid, size=n_per_image, replace=False)
        out.append(np.sort(pick).astype(np.int64))
    return out


@dataclass
class PoolFeatures:
    """The candidate pixels of a pool and their fixed-noise features.

    Attributes
    ----------
    X : ndarray of shape (n_rows, D), float16
        Features of every candidate pixel, image-major (possibly memory-mapped).
    y : ndarray of shape (n_rows,), uint8
        Their labels (revealed only when queried).
    groups : ndarray of shape (n_rows,), int
        Pool image of each row.
    pixels : list of ndarray
        Candidate pixels (flat ``y * W + x``) of each image.
    offsets : ndarray of shape (n_images + 1,)
        First row of each image.
    seconds : float
        Time to compute (or load) ``X``.
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    pixels: list
    offsets: np.ndarray
    seconds: float


def pool_features(
    featurizer: DiffusionFeaturizer, pool: SegmentationSplit, n_per_image: int, seed: int, cache: FeatureCache,
    candidates: str = "valid", *, pixels: list | None = None,
) -> PoolFeatures:
    """Draw the candidate pixels of ``pool`` and featurize them once (cached).

    Parameters
    ----------
    featurizer : DiffusionFeaturizer, fitted
    pool : SegmentationSplit
    n_per_image : int
        Candidate pixels per image.
    seed : int
        Seeds the candidates (:func:`candidate_pixels`).
    cache : FeatureCache
    candidates : {"valid", "all"}, default="valid"
        Where candidates are drawn (:func:`candidate_pixels`).
    pixels : list of ndarray, optional
        ``candidate_pixels(pool, n_per_image, seed, candidates)`` when the
        caller has drawn them already (not drawn again).

    Returns
    -------
    PoolFeatures
    """
    t0 = time.perf_counter()
    if pixels is None:
        pixels = candidate_pixels(pool, n_per_image, seed, candidates)
    key = pool_cache_key(featurizer, pool, pixels, candidates)
    sizes = [len(p) for p in pixels]

    def blocks():  # a few images at a time: the pool's matrix is never whole in memory (with a cache directory)
        for a, b in pool_image_blocks(featurizer, sizes):
            yield featurizer.transform(pool.images[a:b], pixels=pixels[a:b]).astype(np.float16, copy=False)

    X = cache.get_streamed(key, (sum(sizes), featurizer.n_features_out_), np.float16, blocks)
    return PoolFeatures(
        X=X,
        y=np.concatenate([pool.labels[i].reshape(-1)[p] for i, p in enumerate(pixels)]),
        groups=np.repeat(np.arange(len(pool)), sizes),
        pixels=pixels,
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        seconds=time.perf_counter() - t0,
    )


#: Bytes of float16 pool features computed or scored per block: what bounds a run's memory
#: whatever the pool's size (see :func:`block_rows`).
BLOCK_BYTES = 64 * 2**20


def block_rows(n_features: int) -> int:
    """Feature rows per block: :data:`BLOCK_BYTES` of float16 rows of ``n_features`` columns (at least 1).

    Parameters
    ----------
    n_features : int

    Returns
    -------
    int
    """
    return max(1, BLOCK_BYTES // (2 * max(1, int(n_features))))


def pool_image_blocks(featurizer: DiffusionFeaturizer, sizes: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive pool images ``[a, b)`` featurized together, about :func:`block_rows` rows each.

    Each block holds a whole number of the featurizer's UNet batches
    (``batch_size_`` images with candidates), counted as ``transform`` of the
    whole pool would count them (images without candidates are skipped), so
    every UNet forward sees the same images as in one call and the features
    are bit-identical.

    Parameters
    ----------
    featurizer : DiffusionFeaturizer, fitted
    sizes : sequence of int
        Candidate rows of each image.

    Returns
    -------
    list of (int, int)
        Covering ``range(len(sizes))`` in order.
    """
    batch = max(1, int(getattr(featurizer, "batch_size_", 1)))
    per_batch = max(1, max(sizes, default=1)) * batch
    batches_per_block = max(1, block_rows(featurizer.n_features_out_) // per_batch)
    bounds, filled, a = [], 0, 0
    for i, n in enumerate(sizes):
        if n > 0:
            filled += 1
            if filled == batch * batches_per_block:
                bounds.append((a, i + 1))
                a, filled = i + 1, 0
    if a < len(sizes):
        bounds.append((a, len(sizes)))
    return bounds


def fitted_featurizer(config: "ExperimentConfig", featurizer, progress: bool, executor=None) -> DiffusionFeaturizer:
    """The run's featurizer, fitted.

    Parameters
    ----------
    config : ExperimentConfig
    featurizer : DiffusionFeaturizer or None
        None builds ``DiffusionFeaturizer(**config.featurizer)`` with float16 output.
    progress : bool
    executor : RayExecutor or None, default=None
        When given, a shallow copy of the featurizer (same model, the
        caller's object unchanged) that runs its forwards on it.

    Returns
    -------
    DiffusionFeaturizer
        Fitted (``fit`` is called only when it is not).
    """
    if featurizer is None:
        # float16 rows: half the memory of the (n_candidates x D) pool matrix.
        featurizer = DiffusionFeaturizer(**{"output_dtype": "float16", **config.featurizer}, progress=progress)
    if not hasattr(featurizer, "unet_"):
        featurizer.fit()
    if executor is not None:
        featurizer = copy.copy(featurizer).set_params(executor=executor)
    return featurizer


def seconds_per_unet_sample(featurizer: DiffusionFeaturizer, image: np.ndarray) -> float:
    """Wall seconds per UNet sample (one image at one timestep), timed on this machine.

    One warm-up forward of ``image`` (the first forward pays one-off
    allocations), then one timed forward of a full batch
    (``featurizer.batch_size_`` copies), as feature extraction runs them.
    Costs about ``batch_size_ + 1`` images' worth of features.

    Parameters
    ----------
    featurizer : DiffusionFeaturizer, fitted
    image : ndarray of shape (H, W, 3)
        A working-size image (the UNet input size is the model's, whatever H, W).

    Returns
    -------
    float
        Seconds per sample, for estimates of ``samples x seconds``; noisy
        draws and evaluation cost the same per sample.
    """
    one_pixel = np.zeros(1, dtype=np.int64)
    progress = featurizer.progress
    featurizer.progress = False  # no bar for a timing probe
    try:
        featurizer.transform(image[None], pixels=[one_pixel])
        batch = featurizer.batch_size_
        t = time.perf_counter()
        featurizer.transform(np.repeat(image[None], batch, axis=0), pixels=[one_pixel] * batch)
        return (time.perf_counter() - t) / (batch * len(featurizer.timesteps_))
    finally:
        featurizer.progress = progress


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def pool_cache_key(featurizer: DiffusionFeaturizer, pool: SegmentationSplit, pixels: list, candidates: str) -> str:
    """File stem of a pool's fixed-noise features in a :class:`FeatureCache`.

    The images' contents are part of the key: an image edited under the same
    name must not reuse stale features.

    Parameters
    ----------
    featurizer : DiffusionFeaturizer
    pool : SegmentationSplit
    pixels : list of ndarray
        Candidate pixels of each image.
    candidates : str

    Returns
    -------
    str
    """
    return "pool-" + cache_key(featurizer_key(featurizer), pool.names, pool.images, np.concatenate(pixels), candidates)


def noisy_cache_key(config: ExperimentConfig, featurizer, pool: SegmentationSplit, pixels: list) -> str:
    """File stem of a pool's noisy draws in a cache folder: shared by every strategy and seed (and by
    a labeling project's rounds) with the same features, images, candidates, ``n_draws`` and ``feature_seed``."""
    return "noisy-" + cache_key(featurizer_key(featurizer), pool.names, pool.images, np.concatenate(pixels),
                                config.n_draws, config.feature_seed, config.candidates)


def _evaluation_key(featurizer, part: SegmentationSplit, stride: int) -> str:
    if stride == 1:
        return "dense-" + cache_key(featurizer_key(featurizer), part.names, part.images)
    return "grid-" + cache_key(featurizer_key(featurizer), part.names, part.images, stride)


def cache_needs(config: ExperimentConfig, featurizer: DiffusionFeaturizer, pool: SegmentationSplit, pixels: list,
                test: SegmentationSplit, cache_dir: str | Path, cache_evaluation: bool = True,
                batch_images: int = 16) -> dict[str, int]:
    """Bytes a run may still write to its feature cache, per kind of file (files already there count 0).

    Parameters
    ----------
    config : ExperimentConfig
    featurizer : DiffusionFeaturizer, fitted
    pool : SegmentationSplit
    pixels : list of ndarray
        Candidate pixels of each pool image.
    test : SegmentationSplit
    cache_dir : path
    cache_evaluation : bool, default=True
    batch_images : int, default=16
        As in :func:`evaluate`.

    Returns
    -------
    dict
        ``{"pool": ..., "noisy": ..., "evaluation": ...}`` in bytes, float16
        features: ``rows x D x 2`` for the pool, ``K x rows x D x 2`` for the
        noisy draws (strategies that need them; an upper bound: the file is
        sparse and only images with rows in a stage-2 pool are written),
        ``evaluated pixels x D x 2`` for the test images.
    """
    directory = Path(cache_dir)
    row = 2 * int(featurizer.n_features_out_)
    n_rows = sum(len(p) for p in pixels)

    def missing(stem: str, nbytes: int) -> int:
        return 0 if (directory / f"{stem}.npy").exists() else int(nbytes)

    needs = {"pool": missing(pool_cache_key(featurizer, pool, pixels, config.candidates), n_rows * row), "noisy": 0,
             "evaluation": 0}
    if config.strategy in NEEDS_NOISY:
        needs["noisy"] = missing(noisy_cache_key(config, featurizer, pool, pixels), config.n_draws * n_rows * row)
    if cache_evaluation:
        h, w = test.labels.shape[1:]
        per_image = len(range(0, h, config.eval_stride)) * len(range(0, w, config.eval_stride)) * row
        for start in range(0, len(test), batch_images):
            part = test.subset(np.arange(start, min(start + batch_images, len(test))))
            needs["evaluation"] += missing(_evaluation_key(featurizer, part, config.eval_stride), len(part) * per_image)
    return needs


def check_cache_space(cache_dir: str | Path, needs: dict[str, int], log: Callable[[str], None] = print) -> None:
    """Print what the feature cache will take, and refuse when its disk cannot hold it.

    Parameters
    ----------
    cache_dir : path
        The cache folder (or, when it does not exist yet, the nearest existing parent is measured).
    needs : dict
        Bytes per kind of file, from :func:`cache_needs`.
    log : callable

    Raises
    ------
    ValueError
        The disk holding ``cache_dir`` has less free space than ``needs`` adds up to.
    """
    where = Path(cache_dir).absolute()
    while not where.exists() and where.parent != where:
        where = where.parent
    free = shutil.disk_usage(where).free
    total = sum(needs.values())
    parts = ", ".join(f"{k} {v / 1e9:.2f}" for k, v in needs.items() if v)
    log(f"feature cache {cache_dir}: {total / 1e9:.2f} GB to write ({parts or 'all cached'}), "
        f"{free / 1e9:.2f} GB free")
    if total > free:
        raise ValueError(f"the feature cache needs up to {total / 1e9:.2f} GB ({parts}) but {where} has "
                         f"{free / 1e9:.2f} GB free; free disk space, pass a cache directory on a larger disk, "
                         f"or lower candidates_per_image")


def evaluate(
    classifier, featurizer: DiffusionFeaturizer, split: SegmentationSplit, cache: FeatureCache, n_classes: int,
    batch_images: int = 16, stride: int = 1,
) -> np.ndarray:
    """Confusion matrix of ``classifier`` on the pixels of ``split`` (one matrix over the split).

    Parameters
    ----------
    classifier : fitted classifier with ``predict``
    featurizer : DiffusionFeaturizer, fitted
    split : SegmentationSplit
    cache : FeatureCache
        Keeps the evaluation features (dense ones can be many GB: give it a directory).
    n_classes : int
    batch_images : int, default=16
        Images featurized and predicted together.
    stride : int, default=1
        1 scores every pixel; ``s`` scores the regular grid of pixels ``(s*i, s*j)``
        of every image (``1/s^2`` of the pixels and of the cost, every image kept).

    Returns
    -------
    ndarray of shape (n_classes, n_classes), int64
        Rows: true class, columns: predicted class; ignore pixels excluded.
    """
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    h, w = split.labels.shape[1:]
    grid = (np.arange(0, h, stride)[:, None] * w + np.arange(0, w, stride)[None, :]).reshape(-1)
    for start in range(0, len(split), batch_images):
        part = split.subset(np.arange(start, min(start + batch_images, len(split))))
        key = _evaluation_key(featurizer, part, stride)
        if stride == 1:
            compute = lambda: featurizer.transform(part.images).astype(np.float16, copy=False)  # noqa: E731
        else:
            compute = lambda: featurizer.transform(part.images, pixels=[grid] * len(part)).astype(  # noqa: E731
                np.float16, copy=False)
        X = cache.get(key, compute, in_memory=False)
        labels = part.labels.reshape(len(part), -1)[:, grid]
        cm += confusion_matrix(labels.reshape(-1), classifier.predict(X), n_classes)
        release(X)  # features kept on disk are read again next round, not kept resident
    return cm


def run_experiment(
    config: ExperimentConfig,
    pool: SegmentationSplit,
    test: SegmentationSplit,
    out_dir: str | Path,
    *,
    featurizer: DiffusionFeaturizer | None = None,
    cache_dir: str | Path | None = None,
    resume: bool = False,
    n_classes: int = len(CAMVID_CLASSES),
    class_names: Sequence[str] | None = None,
    cache_evaluation: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
    executor=None,
) -> list[dict]:
    """Run (or resume) one active-learning run and write its results folder.

    Parameters
    ----------
    config : ExperimentConfig
    pool, test : SegmentationSplit
        Images the learner queries from / is evaluated on, at the working size.
    out_dir : path
        Results of this run: ``rounds.csv``, ``rounds.json``, ``state.json``
        and ``project.sqlite`` (the run's labeling project: its queries and
        the ground truth's answers, see
        :class:`~skal_seg.labeling.simulate.GroundTruthAnnotator`).
    featurizer : DiffusionFeaturizer, optional
        Defaults to ``DiffusionFeaturizer(**config.featurizer)``; fitted here if needed.
    cache_dir : path, optional
        Where features are kept between runs (default: in memory, for this
        run only): the fixed-noise pool and test features, and the noisy
        draws of the pool (filled on demand, shared by every strategy and
        seed with the same ``feature_seed``). Keys include the images'
        contents, so edited images are featurized again. With a cache the
        run's memory does not grow with the pool (features are read from it
        a block at a time); its size is printed before the run starts.
    resume : bool, default=False
        Continue from ``out_dir/state.json``: the same settings except
        ``rounds``, which may grow (a finished run is extended and picks
        what a run started with the larger ``rounds`` would have picked).
        A folder without ``project.sqlite`` (written before runs kept one)
        gets one, its finished rounds recorded and answered. Without
        ``resume`` a project of an earlier run in ``out_dir`` is replaced.
    n_classes : int, default=11
    class_names : sequence of str, optional
        Names of the ``n_classes`` classes, for the per-class columns of
        ``rounds.csv`` and ``state.json`` (default: CamVid's for 11 classes,
        ``class0``, ``class1``, ... otherwise).
    cache_evaluation : bool, default=True
        Keep the evaluation features in ``cache_dir`` too (dense ones are
        ``H x W x D`` float16 per image); False keeps them in memory up to
        1 GB (recomputed each round beyond that) and only the pool and
        noisy features on disk.
    progress : bool, default=True
    log : callable
        Receives one line per round.
    executor : RayExecutor or None, default=None
        Runs the featurizing (pool, noisy-view and evaluation features) and
        the per-image local MaxHerding as tasks on Ray workers
        (:class:`skal_seg.distributed.RayExecutor`); the same records as
        without it (see :mod:`skal_seg.distributed` for the conditions).

    Returns
    -------
    list of dict
        One record per round (see ``rounds.json``).

    Raises
    ------
    ValueError
        Bad config, a per-round budget that does not fit the pool (see
        :meth:`ExperimentConfig.validate_for_pool`), a resume whose saved
        settings differ (each differing setting is named with its saved and
        its new value), an ``out_dir`` holding a labeling project that no
        run made, or a feature cache larger than the free space of its disk
        (:func:`check_cache_space`, checked before any feature is computed).
    """
    # Before any work: a budget that cannot fit fails now, not in round r. The candidates are cheap to
    # draw (no features), and with candidates="valid" an image may have fewer than candidates_per_image.
    pixels = candidate_pixels(pool, config.candidates_per_image, config.feature_seed, config.candidates)
    config.validate_for_pool(len(pool), [len(p) for p in pixels])
    names = class_names_for(n_classes, class_names)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "state.json"
    settings = config.to_dict()
    budget = config.budget(len(pool))

    records: list[dict] = []
    labeled: list[int] = []
    data_id = cache_key(pool.names, test.names, pool.images.shape, test.images.shape)
    if resume and state_path.exists():
        state = json.loads(state_path.read_text())
        differences = settings_differences(state["config"], settings)
        if state.get("classes", list(names)) != list(names):
            differences.append(f"classes {state['classes']} (saved) vs {list(names)} (now)")
        if differences:
            raise ValueError(f"cannot resume {out_dir}: its saved settings differ: {'; '.join(differences)}; "
                             f"rerun with the saved values or write to another folder")
        if state["data"] != data_id:
            raise ValueError(f"cannot resume {out_dir}: it was run on other pool/test images")
        records, labeled = state["records"], state["labeled"]
        if len(records) >= config.rounds:
            log(f"{out_dir} already has {len(records)} rounds (asked for {config.rounds})")
            return records
        log(f"resuming {out_dir} after round {len(records) - 1}, up to round {config.rounds - 1}")

    featurizer = fitted_featurizer(config, featurizer, progress, executor)
    if cache_dir is not None:  # before any feature is computed: a cache that cannot fit fails now
        check_cache_space(cache_dir, cache_needs(config, featurizer, pool, pixels, test, cache_dir, cache_evaluation),
                          log)
    cache = FeatureCache(cache_dir, persist_optional=cache_evaluation)
    feats = pool_features(featurizer, pool, config.candidates_per_image, config.feature_seed, cache, config.candidates,
                          pixels=pixels)  # the candidates validated above, not drawn again
    X, groups, pixels, offsets = feats.X, feats.groups, feats.pixels, feats.offsets
    # Labels come from a labeling project in out_dir, answered by the ground truth through the import path
    # a person's answers take; y holds the answers read back (ignore where a row is not answered).
    annotator = GroundTruthAnnotator.open(
        out_dir, pool, pixels, offsets, names, config, {"data": data_id}, resume=resume,
        finished=[labeled[k * budget : (k + 1) * budget] for k in range(len(records))])
    y = annotator.revealed(len(X))
    noisy = None
    if config.strategy in NEEDS_NOISY:
        view_fn = featurizer.noisy_view_fn(pool.images, pixels, n_draws=config.n_draws,
                                           random_state=config.feature_seed)
        # shared by every strategy and seed on this pool
        path = None if cache_dir is None else Path(cache_dir) / f"{noisy_cache_key(config, featurizer, pool, pixels)}.npy"
        per_call = 8 if executor is None else executor.images_per_call(featurizer, 8)  # every worker busy
        noisy = CachedNoisyViews(view_fn, offsets, X.shape[1], directory=cache_dir, path=path,
                                 images_per_call=per_call)

    # The classifier trained at the end of round r-1 (same seed: identical after a resume).
    classifier = train_classifier(config, X, y, labeled, len(records) - 1, {}, progress) if labeled else None
    query = two_stage_query(config, progress, executor)
    first_round = len(records)
    for r in range(first_round, config.rounds):
        times = {"featurize": feats.seconds if r == first_round else 0.0}  # paid once per run
        rng = np.random.default_rng([config.seed, r])
        picked = _query(config, query, classifier, X, y, groups, labeled, budget, noisy, rng, times)
        if len(set(picked.tolist()) & set(labeled)) or len(picked) != budget:
            raise RuntimeError(f"strategy {config.strategy} returned an invalid query in round {r}")
        t = time.perf_counter()
        annotator.ask(r, picked, config.strategy, budget, seconds=sum(times.values()))
        y = annotator.revealed(len(X))
        times["annotate"] = time.perf_counter() - t
        labeled.extend(int(i) for i in picked)
        classifier = train_classifier(config, X, y, labeled, r, times, progress)
        t = time.perf_counter()
        if classifier is None:  # every labeled pixel was 'ignore': nothing to predict with
            log(f"round {r}: no labeled pixel carries a class yet; mIoU is undefined (NaN)")
            miou, iou = float("nan"), np.full(n_classes, np.nan)
        else:
            cm = evaluate(classifier, featurizer, test, cache, n_classes, stride=config.eval_stride)
            miou, iou = mean_iou(cm), iou_per_class(cm)
        times["evaluate"] = time.perf_counter() - t
        taught = int(np.sum(y[labeled] != IGNORE_INDEX))
        record = {
            "round": r, "labeled_pixels": len(labeled), "taught_pixels": taught,
            "miou": miou, "iou": [None if np.isnan(v) else float(v) for v in iou],
            "seconds": times, "strategy": config.strategy, "seed": config.seed, "settings": settings,
        }
        if config.strategy in ("uherding", "two_stage_uherding"):  # the temperature its stage 2 used (nan: round 0)
            record["temperature"] = float(getattr(query.uncertainty, "temperature_", float("nan")))
        records.append(record)
        state = {"config": settings, "data": data_id, "budget": budget, "records": records, "labeled": labeled,
                 "labeled_pixels": _row_to_pixel(labeled, groups, pixels, offsets, pool.names),
                 "classes": list(names)}
        _atomic_write(state_path, json.dumps(state))
        write_round_tables(records, out_dir, n_classes, names)
        log(f"round {r:2d}  labeled {len(labeled):5d}  mIoU {record['miou']:.4f}  {sum(times.values()):6.1f} s")
    annotator.close()
    return records


def _predict_chunk_rows(classifier) -> int:
    """Rows per ``predict_proba`` chunk of a TorchMLPClassifier (1 for others): score blocks are multiples of it,
    so every row is predicted in the same chunk as in one call over all rows (bit-identical scores)."""
    rows = getattr(classifier, "_predict_rows", None)
    device = getattr(classifier, "_inference_device", None)
    return int(rows(device())) if callable(rows) and callable(device) else 1


def _row_to_pixel(rows, groups, pixels, offsets, names) -> list[list]:
    """[image name, y*W+x] of labeled rows, so a results folder says which pixels were labeled."""
    return [[names[groups[i]], int(pixels[groups[i]][i - offsets[groups[i]]])] for i in rows]


def train_classifier(config, X, y, labeled, r, times, progress=False) -> TorchMLPClassifier | None:
    """The run's classifier after round ``r``, trained from scratch on the labeled rows.

    Parameters
    ----------
    config : ExperimentConfig
        ``classifier`` settings; ``random_state = config.seed * 1000 + r``.
    X : ndarray of shape (n_rows, D)
    y : ndarray of shape (n_rows,), uint8
        Labels; :data:`~skal_seg.data.IGNORE_INDEX` rows are dropped by the classifier.
    labeled : sequence of int
        Rows of ``X`` to train on.
    r : int
        The round whose labels it has last seen (seeds it).
    times : dict
        ``times["train"]`` grows by the seconds spent.
    progress : bool, default=False

    Returns
    -------
    TorchMLPClassifier or None
        None when no labeled row carries a class.
    """
    t = time.perf_counter()
    rows = np.asarray(labeled, dtype=np.int64)
    if not np.any(y[rows] != IGNORE_INDEX):  # no labeled pixel carries a class: nothing to train
        return None
    # An ignore pixel costs budget but teaches nothing: the classifier drops it.
    params = {"progress": progress, **config.classifier, "ignore_index": IGNORE_INDEX,
              "random_state": config.seed * 1000 + r}
    clf = TorchMLPClassifier(**params).fit(read_rows(X, rows, np.float32), y[rows])
    times["train"] = times.get("train", 0.0) + time.perf_counter() - t
    return clf


def two_stage_query(config: ExperimentConfig, progress: bool = False, executor=None) -> TwoStageQuery:
    """The run's :class:`TwoStageQuery` (also stage 1 of ``maxherding``; for
    ``uherding`` and ``two_stage_uherding`` its stage 2 is Uncertainty Herding,
    and ``uherding`` keeps every local pick: ``keep_global=1``).

    One per run: its per-image local picks are memoised, so a round re-runs
    local MaxHerding only on images whose candidates changed (those just labeled).

    Parameters
    ----------
    config : ExperimentConfig
    progress : bool, default=False
    executor : RayExecutor or None, default=None
        Runs the local stage's per-image herding on Ray workers.

    Returns
    -------
    TwoStageQuery
    """
    if config.strategy in ("uherding", "two_stage_uherding"):
        temperature = 1.0 if config.uherding_temperature == "auto" else config.uherding_temperature  # set per round
        stage2 = UncertaintyHerdingSampler(temperature=temperature, bandwidth=config.uherding_bandwidth,
                                           max_memory_mb=config.herding_memory_mb, random_state=config.seed)
    else:
        stage2 = EDALDSampler(entropy_weight=config.entropy_weight, mi=config.mi)
    keep = 1.0 if config.strategy == "uherding" else config.keep_global
    herding = MaxHerdingSampler(bandwidth=config.bandwidth, max_memory_mb=config.herding_memory_mb)
    return TwoStageQuery(
        config.local_budget, keep, herding=herding, uncertainty=stage2, random_state=config.seed,
        progress=progress, executor=executor,
    )


def _query(config, query, classifier, X, y, groups, labeled, budget, noisy, rng, times) -> np.ndarray:
    """Rows of X to label this round (never already-labeled ones).

    ``rng`` depends on the seed and the round only, not on the strategy: every
    strategy that picks at random in round 0 picks the same pixels.

    No copy of the unlabeled rows is made: the samplers read ``X`` (possibly
    memory-mapped) one image or one block at a time, so memory does not grow
    with the pool.
    """
    unl = np.setdiff1d(np.arange(len(X)), np.asarray(labeled, dtype=np.int64))
    s = config.strategy
    t = time.perf_counter()
    noisy_before = noisy.seconds if noisy is not None else 0.0
    X_lab = read_rows(X, labeled, np.float32) if labeled else None
    random_pick = s == "random" or (classifier is None and s not in HERDING)
    if s in HERDING and (classifier is None or s == "maxherding"):
        picked = query.query(None, X, budget, groups=groups, X_labeled=X_lab, rows=unl)
        times.update(query.timings_)
    elif random_pick:
        picked = rng.choice(unl, size=budget, replace=False)
        times["select"] = time.perf_counter() - t
    elif s in ("entropy", "margin"):
        # modAL's own scores, a block of rows at a time, then its own selection over all of them
        score = classifier_entropy if s == "entropy" else classifier_margin
        step = _predict_chunk_rows(classifier)
        values = np.concatenate([score(classifier, read_rows(X, unl[a:b]))
                                 for a, b in row_blocks(len(unl), block_rows(X.shape[1]), multiple_of=step)])
        idx, _ = multi_argmax(values, budget) if s == "entropy" else multi_argmin(values, budget)
        picked = unl[np.asarray(idx)]
        times["select"] = time.perf_counter() - t
    elif s in ("bald", "edald"):
        sampler = EDALDSampler(entropy_weight=0.0 if s == "bald" else config.entropy_weight, mi=config.mi)
        picked = unl[top_k(sampler.scores(classifier, X, noisy, indices=unl), budget)]
        times["stage2"] = time.perf_counter() - t
    elif s in ("uherding", "two_stage_uherding"):
        if config.uherding_temperature == "auto":  # the paper's rule, on the pixels that carry a class
            t_fit = time.perf_counter()
            rows = np.asarray(labeled, dtype=np.int64)
            rows = rows[y[rows] != IGNORE_INDEX]
            query.uncertainty.set_params(temperature=fit_temperature(  # seeds its split and the copy's training
                TorchMLPClassifier(**{**config.classifier, "progress": False}), read_rows(X, rows, np.float32),
                y[rows], random_state=config.seed * 1000 + len(labeled)))
            times["temperature_fit"] = time.perf_counter() - t_fit
        picked = query.query(classifier, X, budget, groups=groups, X_labeled=X_lab, rows=unl)
        times.update(query.timings_)
    else:  # two_stage with a classifier
        picked = query.query(classifier, X, budget, groups=groups, X_noisy=noisy, X_labeled=X_lab, rows=unl)
        times.update(query.timings_)
    if noisy is not None:  # report on-demand featurizing apart from the eDALD scoring around it
        times["noisy_features"] = noisy.seconds - noisy_before
        if "stage2" in times:
            times["stage2"] -= times["noisy_features"]
    return np.asarray(picked, dtype=np.int64)


def class_names_for(n_classes: int, class_names: Sequence[str] | None = None) -> tuple[str, ...]:
    """Names of ``n_classes`` classes: the given ones, CamVid's for 11, else ``class0``, ``class1``, ...

    Parameters
    ----------
    n_classes : int
    class_names : sequence of str, optional

    Returns
    -------
    tuple of str

    Raises
    ------
    ValueError
        ``class_names`` of another length than ``n_classes``.
    """
    if class_names is not None:
        if len(class_names) != n_classes:
            raise ValueError(f"{len(class_names)} class names for n_classes={n_classes}")
        return tuple(class_names)
    return CAMVID_CLASSES if n_classes == len(CAMVID_CLASSES) else tuple(f"class{i}" for i in range(n_classes))


#: What runs saved before a setting existed did, where that differs from today's default.
_SETTINGS_BEFORE_THEY_EXISTED = {"candidates": "all"}


def settings_differences(saved: dict, new: dict, exempt: Sequence[str] = ("rounds", "herding_memory_mb")) -> list[str]:
    """The settings in which two ``ExperimentConfig.to_dict()`` differ, as readable lines.

    Parameters
    ----------
    saved, new : dict
        Settings of the saved run and of this one (nested dicts are compared
        key by key, e.g. ``featurizer.timesteps``).
    exempt : sequence of str, default=("rounds", "herding_memory_mb")
        Settings a resumed run may change.

    Returns
    -------
    list of str
        ``"name OLD (saved) vs NEW (now)"`` per differing setting, sorted
        by name; empty when the runs are the same. Settings older results
        folders lack count as what the code did before they existed (their
        default, except ``candidates``: ``"all"``).
    """
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    defaults = flat(ExperimentConfig().to_dict())
    a, b = {**defaults, **_SETTINGS_BEFORE_THEY_EXISTED, **flat(saved)}, {**defaults, **flat(new)}
    missing = "(unset)"
    return [f"{k} {a.get(k, missing)!r} (saved) vs {b.get(k, missing)!r} (now)"
            for k in sorted(set(a) | set(b)) if k not in exempt and a.get(k, missing) != b.get(k, missing)]


def write_round_tables(records: list[dict], out_dir: Path, n_classes: int,
                       class_names: Sequence[str] | None = None) -> None:
    """Write ``rounds.json`` (everything) and ``rounds.csv`` (one flat row per round), atomically.

    Parameters
    ----------
    records : list of dict
        Round records of :func:`run_experiment`.
    out_dir : Path
    n_classes : int
    class_names : sequence of str, optional
        Names the per-class IoU columns ``iou_NAME`` (see :func:`class_names_for`).
    """
    _atomic_write(out_dir / "rounds.json", json.dumps(records, indent=1))
    names = class_names_for(n_classes, class_names)
    phases = sorted({k for rec in records for k in rec["seconds"]})
    header = ["strategy", "seed", "round", "labeled_pixels", "taught_pixels", "miou"]
    header += [f"iou_{n}" for n in names] + [f"seconds_{p}" for p in phases]
    lines = [",".join(header)]
    for rec in records:
        row = [rec["strategy"], rec["seed"], rec["round"], rec["labeled_pixels"], rec["taught_pixels"], f"{rec['miou']:.6f}"]
        row += ["" if v is None else f"{v:.6f}" for v in rec["iou"]]
        row += [f"{rec['seconds'].get(p, 0.0):.3f}" for p in phases]
        lines.append(",".join(str(v) for v in row))
    _atomic_write(out_dir / "rounds.csv", "\n".join(lines) + "\n")


def run_full_supervision(
    config: ExperimentConfig,
    pool: SegmentationSplit,
    test: SegmentationSplit,
    out_json: str | Path,
    *,
    featurizer: DiffusionFeaturizer | None = None,
    cache_dir: str | Path | None = None,
    n_classes: int = len(CAMVID_CLASSES),
    cache_evaluation: bool = True,
    progress: bool = True,
    executor=None,
) -> dict:
    """The ceiling: the same classifier trained on every candidate pixel of the pool.

    Parameters
    ----------
    config : ExperimentConfig
        Its candidates, features, classifier, seed and ``eval_stride`` are used.
    pool, test : SegmentationSplit
    out_json : path
        Where the result is written (atomically).
    featurizer, cache_dir, n_classes, cache_evaluation, progress, executor
        As in :func:`run_experiment`.

    Returns
    -------
    dict
        ``{"miou", "iou", "taught_pixels", "seconds", "seed", "settings"}``.

    Raises
    ------
    ValueError
        Bad config, or no candidate pixel carries a class.
    """
    config.validate()
    featurizer = fitted_featurizer(config, featurizer, progress, executor)
    cache = FeatureCache(cache_dir, persist_optional=cache_evaluation)
    feats = pool_features(featurizer, pool, config.candidates_per_image, config.feature_seed, cache, config.candidates)
    X, y = feats.X, feats.y
    t = time.perf_counter()
    # Every candidate pixel that carries a class: passing the ignore ones too would make the
    # classifier copy the (many GB) feature rows to drop them.
    clf = train_classifier(config, X, y, np.flatnonzero(y != IGNORE_INDEX), 0, {}, progress)
    if clf is None:
        why = f"all {len(y)} candidates are labeled" if len(y) else "no candidates: every pixel is labeled"
        raise ValueError(f"no candidate pixel of the pool carries a class ({why} {IGNORE_INDEX} = ignore): "
                         "full supervision has nothing to train on")
    cm = evaluate(clf, featurizer, test, cache, n_classes, stride=config.eval_stride)
    iou = iou_per_class(cm)
    result = {
        "miou": mean_iou(cm), "iou": [None if np.isnan(v) else float(v) for v in iou],
        "taught_pixels": int(np.sum(y != IGNORE_INDEX)), "seconds": time.perf_counter() - t,
        "seed": config.seed, "settings": config.to_dict(),
    }
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_json, json.dumps(result, indent=1))
    return result
