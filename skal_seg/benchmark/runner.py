"""The benchmark loop on a labeled dataset: query, reveal, train, evaluate, repeat; its results folders.

One run = one strategy and one seed. All strategies and seeds share the same
candidate pixels and noisy diffusion draws (drawn from ``feature_seed``), the
same fixed-noise diffusion features (computed once and cached on disk), the
same classifier and the same test evaluation, so only the choice of pixels
differs; ``seed`` varies the queries and the classifier's training.

Round ``r`` (0-based) queries ``budget`` pixels, the ground truth answers them
as a simulated annotator through a labeling project in the results folder
(:class:`~skal_seg.benchmark.simulate.GroundTruthAnnotator`: the code path of
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

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from skal_seg._atomic import atomic_path
from skal_seg.benchmark.simulate import GroundTruthAnnotator
from skal_seg.data import CAMVID_CLASSES, IGNORE_INDEX, SegmentationSplit
from skal_seg.engine.features import (
    FeatureCache, cache_key, cache_needs, candidate_pixels, check_cache_space, fitted_featurizer,
    noisy_cache_key, pool_features,
)
from skal_seg.engine.noisy import CachedNoisyViews
from skal_seg.engine.rounds import (
    evaluate, load_local_picks, query_pixels, save_local_picks, train_classifier, two_stage_query,
)
from skal_seg.engine.settings import (
    HERDING, NEEDS_NOISY, RESUME_MAY_CHANGE, ExperimentConfig, class_names_for, settings_differences,
)
from skal_seg.label_map import LabelMap
from skal_seg.metrics import classes_present, iou_per_class, mean_iou

#: A run's memoised local MaxHerding picks, saved each round beside ``state.json`` (see :func:`run_experiment`).
LOCAL_PICKS_FILE = "local_picks.npz"


def _atomic_write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def run_experiment(
    config: ExperimentConfig,
    pool: SegmentationSplit,
    test: SegmentationSplit,
    out_dir: str | Path,
    *,
    featurizer=None,
    head=None,
    cache_dir: str | Path | None = None,
    resume: bool = False,
    n_classes: int = len(CAMVID_CLASSES),
    class_names: Sequence[str] | None = None,
    cache_evaluation: bool = True,
    feature_cache: FeatureCache | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    executor=None,
    label_map: LabelMap | None = None,
) -> list[dict]:
    """Run (or resume) one active-learning run and write its results folder.

    Parameters
    ----------
    config : ExperimentConfig
    pool, test : SegmentationSplit
        Images the learner queries from / is evaluated on, at the working size.
    out_dir : path
        Results of this run: ``rounds.csv``, ``rounds.json``, ``state.json``,
        ``local_picks.npz`` (the herding strategies' local picks, so that a
        resumed round herds only the images labeled since, as an uninterrupted
        one does) and ``project.sqlite`` (the run's labeling project: its queries and
        the ground truth's answers, see
        :class:`~skal_seg.benchmark.simulate.GroundTruthAnnotator`).
    featurizer : featurizer, optional
        Defaults to the one ``config.features`` names
        (:func:`~skal_seg.engine.features.fitted_featurizer`); fitted here
        (on the pool's images) if it is not.
    head : classifier, optional
        Any scikit-learn classifier with ``predict_proba``, cloned and
        trained each round instead of ``config.head`` (see
        :func:`~skal_seg.engine.rounds.make_head`); a results folder records
        ``config.head``, so give resumed runs the same one.
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
    feature_cache : FeatureCache, optional
        The cache to keep features in (default: a new one on ``cache_dir``
        with ``cache_evaluation``, which it then replaces): hand every run of
        an invocation the same one and a test split is featurized once for
        all of them.
    progress : bool, default=True
    log : callable
        Receives one line per round.
    executor : RayExecutor or None, default=None
        Runs the featurizing (pool, noisy-view and evaluation features) and
        the per-image local MaxHerding as tasks on Ray workers
        (:class:`skal_seg.distributed.RayExecutor`); the same records as
        without it (see :mod:`skal_seg.distributed` for the conditions).
    label_map : LabelMap, optional
        How the label files were read (:class:`~skal_seg.label_map.LabelMap`):
        part of the run's identity, so that a resume with another mapping of
        the same images is refused; recorded in ``state.json``.

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
    data_id = run_data_id(pool, test, label_map)
    if resume and state_path.exists():
        state = json.loads(state_path.read_text())
        differences = settings_differences(state["config"], settings)
        if state.get("classes", list(names)) != list(names):
            differences.append(f"classes {state['classes']} (saved) vs {list(names)} (now)")
        if differences:
            raise ValueError(f"cannot resume {out_dir}: its saved settings differ: {'; '.join(differences)}; "
                             f"rerun with the saved values or write to another folder")
        if state["data"] != data_id:
            saved_map, map_now = state.get("label_map"), _label_map_record(label_map)
            if saved_map is not None and saved_map != map_now:
                raise ValueError(f"cannot resume {out_dir}: it was run with the label map {_shown_map(saved_map)}, "
                                 f"now {_shown_map(map_now)}; rerun with the saved one or write to another folder")
            raise ValueError(f"cannot resume {out_dir}: it was run on other pool/test images (or regions of "
                             f"interest, or label values read otherwise)")
        records, labeled = state["records"], state["labeled"]
        if len(records) >= config.rounds:
            log(f"{out_dir} already has {len(records)} rounds (asked for {config.rounds})")
            return records
        log(f"resuming {out_dir} after round {len(records) - 1}, up to round {config.rounds - 1}")

    featurizer = fitted_featurizer(config, featurizer, progress, executor, images=pool.images)
    cache = FeatureCache(cache_dir, persist_optional=cache_evaluation) if feature_cache is None else feature_cache
    if cache_dir is not None:  # before any feature is computed: a cache that cannot fit fails now
        check_cache_space(cache_dir, cache_needs(config, featurizer, pool, pixels, test, cache_dir,
                                                 cache.persist_optional, memory_limit_mb=cache.memory_limit_mb), log)
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
        path = None if cache_dir is None else Path(cache_dir) / noisy_cache_key(config, featurizer, pool, pixels)
        per_call = 8 if executor is None else executor.images_per_call(featurizer, 8)  # every worker busy
        noisy = CachedNoisyViews(view_fn, offsets, X.shape[1], directory=cache_dir, path=path,
                                 images_per_call=per_call)

    # The classifier trained at the end of round r-1 (same seed: identical after a resume).
    classifier = train_classifier(config, X, y, labeled, len(records) - 1, {}, progress, head) if labeled else None
    query = two_stage_query(config, progress, executor)
    memo_path = out_dir / LOCAL_PICKS_FILE
    if config.strategy in HERDING:
        if resume:  # the local picks of the rounds done: a resumed round herds only the images labeled since
            load_local_picks(query, memo_path)
        else:
            memo_path.unlink(missing_ok=True)
    # the classes the evaluation labels hold: what the tables say mIoU is taken over
    evaluated = [n for n, p in zip(names, classes_present(test.labels, n_classes)) if p]
    first_round = len(records)
    for r in range(first_round, config.rounds):
        times = {"featurize": feats.seconds if r == first_round else 0.0}  # paid once per run
        rng = np.random.default_rng([config.seed, r])
        picked = query_pixels(config, query, classifier, X, y, groups, labeled, budget, noisy, rng, times)
        if len(set(picked.tolist()) & set(labeled)) or len(picked) != budget:
            raise RuntimeError(f"strategy {config.strategy} returned an invalid query in round {r}")
        t = time.perf_counter()
        annotator.ask(r, picked, config.strategy, budget, seconds=sum(times.values()))
        y = annotator.revealed(len(X))
        times["annotate"] = time.perf_counter() - t
        labeled.extend(int(i) for i in picked)
        classifier = train_classifier(config, X, y, labeled, r, times, progress, head)
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
        if config.strategy in HERDING:
            save_local_picks(query, memo_path)
        state = {"config": settings, "data": data_id, "budget": budget, "records": records, "labeled": labeled,
                 "labeled_pixels": _row_to_pixel(labeled, groups, pixels, offsets, pool.names),
                 "classes": list(names), "eval_classes": evaluated,
                 **({"label_map": _label_map_record(label_map)} if label_map is not None else {})}
        _atomic_write(state_path, json.dumps(state))
        write_round_tables(records, out_dir, n_classes, names)
        log(f"round {r:2d}  labeled {len(labeled):5d}  mIoU {record['miou']:.4f}  {sum(times.values()):6.1f} s")
    annotator.close()
    return records


def _plain_identity(label_map: LabelMap) -> bool:
    """The package's own reading: value i is class i, 255 means "no label" (runs before label maps existed)."""
    return (not label_map.colours and label_map.ignore == (IGNORE_INDEX,)
            and label_map.values == tuple((i, i) for i in range(label_map.n_classes)))


def _label_map_record(label_map: LabelMap | None) -> dict | None:
    """The label map as ``state.json`` keeps it."""
    if label_map is None:
        return None
    return {"map": label_map.to_text(), "ignore": [label_map.value_name(v) for v in label_map.ignore]}


def _shown_map(record: dict | None) -> str:
    if record is None:
        return "value i = class i, 255 ignored"
    return f"{record['map']} (ignore: {', '.join(record['ignore']) or 'none'})"


def run_data_id(pool: SegmentationSplit, test: SegmentationSplit, label_map: LabelMap | None = None) -> str:
    """The identity of a run's data, kept in ``state.json``: a resume on other data is refused.

    The pool and test image names and shapes; the label map unless it is
    the package's own reading (value ``i`` = class ``i``, 255 ignored), so
    results folders written before label maps existed still resume; the
    regions of interest, where there are any.

    Parameters
    ----------
    pool, test : SegmentationSplit
    label_map : LabelMap, optional

    Returns
    -------
    str
        16 hex digits.
    """
    parts = [pool.names, test.names, pool.images.shape, test.images.shape]
    if label_map is not None and not _plain_identity(label_map):
        parts.append(_label_map_record(label_map))
    parts += [split.roi for split in (pool, test) if split.roi is not None]
    return cache_key(*parts)


def _row_to_pixel(rows, groups, pixels, offsets, names) -> list[list]:
    """[image name, y*W+x] of labeled rows, so a results folder says which pixels were labeled."""
    return [[names[groups[i]], int(pixels[groups[i]][i - offsets[groups[i]]])] for i in rows]


def write_round_tables(records: list[dict], out_dir: Path, n_classes: int,
                       class_names: Sequence[str] | None = None) -> None:
    """Write ``rounds.json`` (everything) and ``rounds.csv`` (one flat row per round), atomically.

    ``rounds.csv``'s ``miou_over`` column names the classes a round's mIoU
    averages (``;``-separated): those with an IoU, i.e. in the evaluation
    labels or predicted (see :func:`~skal_seg.metrics.mean_iou`).

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
    header = ["strategy", "seed", "round", "labeled_pixels", "taught_pixels", "miou", "miou_over"]
    header += [f"iou_{n}" for n in names] + [f"seconds_{p}" for p in phases]
    lines = [",".join(header)]
    for rec in records:
        row = [rec["strategy"], rec["seed"], rec["round"], rec["labeled_pixels"], rec["taught_pixels"], f"{rec['miou']:.6f}"]
        row.append(_csv_cell(";".join(n for n, v in zip(names, rec["iou"]) if v is not None)))
        row += ["" if v is None else f"{v:.6f}" for v in rec["iou"]]
        row += [f"{rec['seconds'].get(p, 0.0):.3f}" for p in phases]
        lines.append(",".join(str(v) for v in row))
    _atomic_write(out_dir / "rounds.csv", "\n".join(lines) + "\n")


def _csv_cell(text: str) -> str:
    """A CSV field: quoted when it holds a comma or a quote (class names may)."""
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


#: Settings that change what a run queries but not the full-supervision ceiling (trained on every candidate).
QUERY_ONLY_SETTINGS = (*RESUME_MAY_CHANGE, "strategy", "budget_per_image", "budget_per_round", "local_budget",
                       "keep_global", "n_draws", "entropy_weight", "mi", "uherding_temperature", "uherding_bandwidth",
                       "bandwidth")


def run_full_supervision(
    config: ExperimentConfig,
    pool: SegmentationSplit,
    test: SegmentationSplit,
    out_json: str | Path,
    *,
    featurizer=None,
    head=None,
    cache_dir: str | Path | None = None,
    n_classes: int = len(CAMVID_CLASSES),
    cache_evaluation: bool = True,
    feature_cache: FeatureCache | None = None,
    progress: bool = True,
    executor=None,
    label_map: LabelMap | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """The ceiling: the same classifier trained on every candidate pixel of the pool.

    Parameters
    ----------
    config : ExperimentConfig
        Its candidates, features, classifier, seed and ``eval_stride`` are used.
    pool, test : SegmentationSplit
    out_json : path
        Where the result is written (atomically).
    featurizer, head, cache_dir, n_classes, cache_evaluation, feature_cache, progress, executor, label_map, log
        As in :func:`run_experiment`.
    resume : bool, default=False
        Return the result ``out_json`` already holds when it was computed
        on the same data with the same settings (the query-only ones,
        :data:`QUERY_ONLY_SETTINGS`, aside) instead of computing it again.

    Returns
    -------
    dict
        ``{"miou", "iou", "taught_pixels", "seconds", "seed", "settings", "data"}``.

    Raises
    ------
    ValueError
        Bad config, or no candidate pixel carries a class.
    """
    config.validate()
    out_json = Path(out_json)
    data_id = run_data_id(pool, test, label_map)
    if resume and out_json.is_file():
        saved = json.loads(out_json.read_text())
        if saved.get("data") == data_id and "settings" in saved and not settings_differences(
                saved["settings"], config.to_dict(), exempt=QUERY_ONLY_SETTINGS):
            log(f"{out_json}: computed before with the same data and settings; not computed again")
            return saved
    featurizer = fitted_featurizer(config, featurizer, progress, executor, images=pool.images)
    cache = FeatureCache(cache_dir, persist_optional=cache_evaluation) if feature_cache is None else feature_cache
    feats = pool_features(featurizer, pool, config.candidates_per_image, config.feature_seed, cache, config.candidates)
    X, y = feats.X, feats.y
    t = time.perf_counter()
    # Every candidate pixel that carries a class: passing the ignore ones too would make the
    # classifier copy the (many GB) feature rows to drop them.
    clf = train_classifier(config, X, y, np.flatnonzero(y != IGNORE_INDEX), 0, {}, progress, head)
    if clf is None:
        why = f"all {len(y)} candidates are labeled" if len(y) else "no candidates: every pixel is labeled"
        raise ValueError(f"no candidate pixel of the pool carries a class ({why} {IGNORE_INDEX} = ignore): "
                         "full supervision has nothing to train on")
    cm = evaluate(clf, featurizer, test, cache, n_classes, stride=config.eval_stride)
    iou = iou_per_class(cm)
    result = {
        "miou": mean_iou(cm), "iou": [None if np.isnan(v) else float(v) for v in iou],
        "taught_pixels": int(np.sum(y != IGNORE_INDEX)), "seconds": time.perf_counter() - t,
        "seed": config.seed, "settings": config.to_dict(), "data": data_id,
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_json, json.dumps(result, indent=1))
    return result
