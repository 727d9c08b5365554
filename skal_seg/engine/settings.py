"""The settings of a run and their checks: strategies, budgets, stage-1 sizes, what a resume may change.

Only settings live here, no features and no models: the command line builds
its options (and their defaults) from :class:`ExperimentConfig` without
importing torch or scikit-learn.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from skal_seg._checks import check_non_negative, check_positive_or_word
from skal_seg.data import CAMVID_CLASSES

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
#: Noisy-draw strategies that score every candidate, so keep every row of an image they forward.
SCORE_EVERY_CANDIDATE = ("bald", "edald")


#: Strategies whose round 0 (no classifier yet) picks at random, all from the same random state.
RANDOM_FIRST_ROUND = ("random", "entropy", "margin", "bald", "edald")


#: Strategies built on :class:`~skal_seg.query.TwoStageQuery` (round 0: its stage 1).
HERDING = ("maxherding", "two_stage", "uherding", "two_stage_uherding")


#: Herding strategies whose stage 1 keeps every local pick (no global stage after round 0).
_KEEPS_EVERY_LOCAL_PICK = ("maxherding", "uherding")


#: Where candidate pixels are drawn: see :func:`candidate_pixels`.
CANDIDATES = ("valid", "all")
#: The per-pixel features (:func:`~skal_seg.engine.features.fitted_featurizer`): the diffusion model's, the
#: filter bank's, or both side by side.
FEATURES = ("diffusion", "filters", "diffusion+filters")
#: The segmentation head (:func:`~skal_seg.engine.rounds.make_head`).
HEADS = ("mlp", "forest")
#: Which noisy-draw rows a run keeps when it forwards an image (see ExperimentConfig.noisy_rows).
NOISY_ROWS = ("stage2", "all")


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
    noisy_rows : {"stage2", "all"}
        Which rows of an image's noisy draws are kept when its noisy
        forwards run (bald, edald and the stage-2 strategies): ``"stage2"``
        the rows stage 2 reads or may read next (the image's local picks),
        so the storage stays near ``K x local picks`` rows, but an image
        whose local picks change (it received a label) is forwarded again
        later; ``"all"`` every candidate row, ``K`` times the pool
        features' storage, and no image is forwarded twice. Speed and
        storage only: the values, and so the picks, are the same.
    features : {"diffusion", "filters", "diffusion+filters"}
        The per-pixel features: the diffusion model's (``featurizer``), the
        filter bank's (``filter_bank``), or both side by side. The filter
        bank has no noisy draws, so ``bald``, ``edald`` and ``two_stage``
        need the diffusion features (alone or combined).
    featurizer : dict
        :class:`~skal_seg.featurizer.DiffusionFeaturizer` parameters.
    filter_bank : dict
        :class:`~skal_seg.filter_bank.FilterBankFeaturizer` parameters.
    head : {"mlp", "forest"}
        The segmentation head: the paper's MLP
        (:class:`~skal_seg.classifier.TorchMLPClassifier`) or scikit-learn's
        random forest (the filter-bank users' usual one, 100 trees).
    classifier : dict
        Parameters of the head (``random_state`` is set per round from
        ``seed``; the MLP's ``ignore_index`` is 255, and a forest never sees
        ignore pixels, so they never become a class).
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
    noisy_rows: str = "stage2"
    features: str = "diffusion"
    featurizer: dict = field(default_factory=lambda: {"model": "embedded", "timesteps": [50, 150, 250]})
    filter_bank: dict = field(default_factory=dict)
    head: str = "mlp"
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
            positive number, unknown ``candidates``, ``noisy_rows`` or ``mi``, a bad
            Uncertainty Herding temperature or bandwidth, unknown ``features``
            or ``head``, the filter bank alone with a strategy that needs
            noisy draws, or ``filter_bank`` settings that are bad or come
            without the filter bank in ``features``.
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
        if self.noisy_rows not in NOISY_ROWS:
            raise ValueError(f"unknown noisy_rows {self.noisy_rows!r}; choose from {NOISY_ROWS}")
        if self.features not in FEATURES:
            raise ValueError(f"unknown features {self.features!r}; choose from {FEATURES}")
        if self.features == "filters" and self.strategy in NEEDS_NOISY:
            raise ValueError(f"{self.strategy} needs noisy diffusion draws (its BALD term), which the filter bank "
                             f"does not have; use features 'diffusion+filters' (--features embedded+filters), or a strategy without them "
                             f"(random, entropy, margin, maxherding, uherding, two_stage_uherding)")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose from {HEADS}")
        if self.filter_bank:
            if self.features == "diffusion":
                raise ValueError("filter bank settings (filter_bank, --filter-* and --line-lengths) need features "
                                 "'filters' or 'diffusion+filters' (--features filters or embedded+filters)")
            from skal_seg.filter_bank import FilterBankFeaturizer  # numpy, scipy and scikit-learn only

            try:
                FilterBankFeaturizer(**self.filter_bank)._check_params()
            except TypeError as err:
                raise ValueError(f"filter_bank: {err}") from None
        # Deferred: the samplers import torch and scikit-learn, which building the command line must not.
        from skal_seg.uncertainty import check_mi

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
        from skal_seg.query import TwoStageQuery  # deferred, as in validate

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


#: Settings a resumed run may change: the number of rounds, and two that change speed and storage only.
RESUME_MAY_CHANGE = ("rounds", "herding_memory_mb", "noisy_rows")


def settings_differences(saved: dict, new: dict, exempt: Sequence[str] = RESUME_MAY_CHANGE) -> list[str]:
    """The settings in which two ``ExperimentConfig.to_dict()`` differ, as readable lines.

    Parameters
    ----------
    saved, new : dict
        Settings of the saved run and of this one (nested dicts are compared
        key by key, e.g. ``featurizer.timesteps``).
    exempt : sequence of str, default=RESUME_MAY_CHANGE
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


def features_and_model(features: str | None, model: str) -> tuple[str, str]:
    """``(ExperimentConfig.features, diffusion model)`` from the command line's ``--features`` and ``--model``.

    ``--features`` says ``embedded``, ``filters``, ``embedded+filters``, a
    model (folder or hub id) or ``MODEL+filters``; without it the features
    are the diffusion model ``--model`` names.

    Raises
    ------
    ValueError
        ``--features`` names a model other than ``--model`` (when that is not the default).
    """
    if features is None:
        return "diffusion", model
    if features == "filters":
        return "filters", model
    kind, named = ("diffusion+filters", features[: -len("+filters")]) if features.endswith("+filters") else \
        ("diffusion", features)
    if not named:
        raise ValueError(f"--features {features}: name the diffusion model before '+filters' (embedded or a folder)")
    if model != "embedded" and named != model:
        raise ValueError(f"--features {features} and --model {model} name two diffusion models; give one")
    return kind, named
