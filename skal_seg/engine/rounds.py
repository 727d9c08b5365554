"""One round of active learning: train the head on the answers, query pixels with a named strategy, evaluate.

Both loops run their rounds through these functions: the benchmark runner
(:mod:`skal_seg.benchmark.runner`, where the ground truth answers) and the
labeling project (:mod:`skal_seg.labeling`, where a person does).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from modAL.uncertainty import classifier_entropy, classifier_margin
from modAL.utils.selection import multi_argmax, multi_argmin

from skal_seg._atomic import atomic_path
from skal_seg._memory import read_rows, release, row_blocks
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier

from skal_seg.classifier import TorchMLPClassifier
from skal_seg.data import IGNORE_INDEX, SegmentationSplit
from skal_seg.engine.features import FeatureCache, _evaluation_key, block_rows
from skal_seg.engine.settings import HERDING, SCORE_EVERY_CANDIDATE, ExperimentConfig
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.herding import MaxHerdingSampler
from skal_seg.metrics import confusion_matrix
from skal_seg.query import TwoStageQuery
from skal_seg.uncertainty import EDALDSampler, top_k
from skal_seg.uncertainty_herding import UncertaintyHerdingSampler, fit_temperature


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


def _predict_chunk_rows(classifier) -> int:
    """Rows per ``predict_proba`` chunk of a TorchMLPClassifier (1 for others): score blocks are multiples of it,
    so every row is predicted in the same chunk as in one call over all rows (bit-identical scores)."""
    rows = getattr(classifier, "_predict_rows", None)
    device = getattr(classifier, "_inference_device", None)
    return int(rows(device())) if callable(rows) and callable(device) else 1


def make_head(config: ExperimentConfig, random_state: int, progress: bool = False, template=None):
    """A new, unfitted segmentation head for one round.

    Parameters
    ----------
    config : ExperimentConfig
        ``head`` (``"mlp"`` or ``"forest"``) and its ``classifier`` parameters.
    random_state : int
    progress : bool, default=False
        The MLP's training bar.
    template : classifier, optional
        Any scikit-learn classifier with ``predict_proba``, used instead of
        ``config.head``: a clone of it, with ``random_state`` set when it has one.

    Returns
    -------
    classifier
    """
    if template is not None:
        head = clone(template)
        return head.set_params(random_state=random_state) if "random_state" in head.get_params() else head
    if config.head == "forest":
        # n_jobs=1: the runner's processes run side by side, one thread each; 100 trees as the filter-bank users' tools
        return RandomForestClassifier(**{"n_estimators": 100, "n_jobs": 1, **config.classifier},
                                      random_state=random_state)
    # An ignore pixel costs budget but teaches nothing: the MLP drops it.
    return TorchMLPClassifier(**{"progress": progress, **config.classifier, "ignore_index": IGNORE_INDEX,
                                 "random_state": random_state})


def train_classifier(config, X, y, labeled, r, times, progress=False, template=None):
    """The run's classifier after round ``r``, trained from scratch on the labeled rows.

    Parameters
    ----------
    config : ExperimentConfig
        ``head`` and ``classifier`` settings; ``random_state = config.seed * 1000 + r``.
    X : ndarray of shape (n_rows, D)
    y : ndarray of shape (n_rows,), uint8
        Labels; :data:`~skal_seg.data.IGNORE_INDEX` rows teach nothing.
    labeled : sequence of int
        Rows of ``X`` to train on.
    r : int
        The round whose labels it has last seen (seeds it).
    times : dict
        ``times["train"]`` grows by the seconds spent.
    progress : bool, default=False
    template : classifier, optional
        A scikit-learn classifier to clone instead of ``config.head`` (see :func:`make_head`).

    Returns
    -------
    classifier or None
        None when no labeled row carries a class.
    """
    t = time.perf_counter()
    rows = np.asarray(labeled, dtype=np.int64)
    if not np.any(y[rows] != IGNORE_INDEX):  # no labeled pixel carries a class: nothing to train
        return None
    clf = make_head(config, config.seed * 1000 + r, progress, template)
    if not isinstance(clf, TorchMLPClassifier):  # the MLP drops ignore rows itself; other heads never see them
        rows = rows[y[rows] != IGNORE_INDEX]
    clf.fit(read_rows(X, rows, np.float32), y[rows])
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


def query_pixels(config, query, classifier, X, y, groups, labeled, budget, noisy, rng, times) -> np.ndarray:
    """Rows of X to label this round (never already-labeled ones).

    ``rng`` depends on the seed and the round only, not on the strategy: every
    strategy that picks at random in round 0 picks the same pixels.

    No copy of the unlabeled rows is made: the samplers read ``X`` (possibly
    memory-mapped) one image or one block at a time, so memory does not grow
    with the pool.
    """
    labeled = np.asarray(labeled, dtype=np.int64)
    unl = np.setdiff1d(np.arange(len(X)), labeled)
    s = config.strategy
    t = time.perf_counter()
    noisy_before = noisy.seconds if noisy is not None else 0.0
    if noisy is not None and (config.noisy_rows == "all" or s in SCORE_EVERY_CANDIDATE):
        # Every row of a forwarded image: "all" so that none is forwarded twice; bald and edald score every
        # candidate, and the rows one seed labeled (never asked for) are candidates of the next seed sharing the cache.
        noisy.also_keep(np.arange(len(X)))
    X_lab = read_rows(X, labeled, np.float32) if len(labeled) else None
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
    elif s in SCORE_EVERY_CANDIDATE:
        sampler = EDALDSampler(entropy_weight=0.0 if s == "bald" else config.entropy_weight, mi=config.mi)
        picked = unl[top_k(sampler.scores(classifier, X, noisy, indices=unl), budget)]
        times["stage2"] = time.perf_counter() - t
    elif s in ("uherding", "two_stage_uherding"):
        if config.uherding_temperature == "auto":  # the paper's rule, on the pixels that carry a class
            t_fit = time.perf_counter()
            rows = np.asarray(labeled, dtype=np.int64)
            rows = rows[y[rows] != IGNORE_INDEX]
            query.uncertainty.set_params(temperature=fit_temperature(  # seeds its split and the copy's training
                make_head(config, 0), read_rows(X, rows, np.float32),
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


def save_local_picks(query: TwoStageQuery, path: Path) -> None:
    """Write the query's memoised local picks to ``path`` (``.npz``, atomically), for a resumed run or round.

    Parameters
    ----------
    query : TwoStageQuery
    path : Path
    """
    memo = query.local_picks_memo()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **memo)


def load_local_picks(query: TwoStageQuery, path: Path) -> None:
    """Give ``query`` the local picks saved at ``path`` by :func:`save_local_picks` (nothing when it is missing).

    Parameters
    ----------
    query : TwoStageQuery
    path : Path
    """
    if path.is_file():
        with np.load(path) as saved:
            query.remember_local_picks({key: saved[key] for key in saved.files})
