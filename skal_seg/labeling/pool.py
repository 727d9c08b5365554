"""A labeling project's images as the engine's pool: working-size images, candidate features, answers as rows.

Coordinates: images keep their own size; features are computed at a square
working size ``S`` (the project's ``working_size``). A working pixel
``(v, u)`` stands for the original pixel at its centre,
``y = floor((v + 0.5) * H / S)``; an original pixel maps back to the working
pixel it falls in, ``v = floor((y + 0.5) * S / H)``. Queries, answers and
masks are in original-resolution pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from skal_seg.data import IGNORE_INDEX, SegmentationSplit
from skal_seg.engine.features import (
    FeatureCache,
    PoolFeatures,
    cache_key,
    featurizer_key,
    fitted_featurizer,
    noisy_cache_key,
    pool_features,
)
from skal_seg.engine.noisy import CachedNoisyViews
from skal_seg.engine.rounds import (
    load_local_picks,
    query_pixels,
    save_local_picks,
    train_classifier,
    two_stage_query,
)
from skal_seg.engine.settings import HERDING, NEEDS_NOISY, ExperimentConfig
from skal_seg.image_io import read_image, read_roi
from skal_seg.metrics import confusion_matrix


#: The project's memoised local MaxHerding picks, in its cache folder.
LOCAL_PICKS_FILE = "local-picks.npz"


def to_original(v: np.ndarray, working: int, original: int) -> np.ndarray:
    """Original coordinate of the centre of working pixel row/column ``v``."""
    return np.minimum(original - 1, np.floor((np.asarray(v) + 0.5) * original / working)).astype(np.int64)


def to_working(y: np.ndarray, original: int, working: int) -> np.ndarray:
    """Working pixel row/column that original coordinate ``y`` falls in."""
    return np.minimum(working - 1, np.floor((np.asarray(y) + 0.5) * working / original)).astype(np.int64)


def working_roi(roi: np.ndarray, size: int) -> np.ndarray:
    """A region of interest at the working size: a working pixel is inside when the original pixel it stands for is.

    Parameters
    ----------
    roi : ndarray of shape (H, W), bool
        At the image's own size.
    size : int

    Returns
    -------
    ndarray of shape (size, size), bool
    """
    h, w = roi.shape
    v = np.arange(size)
    return roi[np.ix_(to_original(v, size, h), to_original(v, size, w))]


def original_pixels(flat, size: int, image: dict) -> tuple[np.ndarray, np.ndarray]:
    """Original ``(y, x)`` of flat working pixels ``flat = v * size + u`` of an image record."""
    flat = np.asarray(flat)
    return to_original(flat // size, size, image["height"]), to_original(flat % size, size, image["width"])


def upsampled_argmax(scores: np.ndarray, size: tuple[int, int], classes_per_pass: int = 4) -> np.ndarray:
    """Index of the largest of ``scores`` after a bilinear enlargement to ``size``.

    Parameters
    ----------
    scores : ndarray of shape (C, h, w), float32
        One map per class (probabilities at the working size).
    size : (int, int)
        Output (H, W).
    classes_per_pass : int, default=4
        Classes enlarged at once: memory stays ``(classes_per_pass + 2) * H * W`` floats whatever ``C``.

    Returns
    -------
    ndarray of shape (H, W), int64
        ``argmax`` over classes of ``F.interpolate(scores, size, mode="bilinear", align_corners=False)``; ties go to
        the lower class.
    """
    t = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32))
    best_value = torch.full(tuple(size), -torch.inf)
    best = torch.zeros(tuple(size), dtype=torch.int64)
    for a in range(0, len(t), classes_per_pass):
        up = F.interpolate(t[None, a : a + classes_per_pass], size=tuple(size), mode="bilinear", align_corners=False)[0]
        value, index = up.max(dim=0)  # the first of equal values, as argmax
        better = value > best_value
        best_value = torch.where(better, value, best_value)
        best = torch.where(better, index + a, best)
    return best.numpy()


@dataclass
class ProjectPool:
    """Everything derived from a project's images (recomputable; features cached on disk).

    Attributes
    ----------
    config : ExperimentConfig
        The project's settings.
    size : int
        Working size (pixels per side).
    featurizer : DiffusionFeaturizer, fitted
    split : SegmentationSplit
        The images at the working size (labels all ignore: none is known).
    feats : PoolFeatures
        Candidate pixels and their features.
    cache : FeatureCache
    image_rows : list of dict
        The project's image records, in ``split`` order.
    """

    config: ExperimentConfig
    size: int
    featurizer: object
    split: SegmentationSplit
    feats: PoolFeatures
    cache: FeatureCache
    image_rows: list

    @classmethod
    def build(cls, config: ExperimentConfig, size: int, image_rows: Sequence[dict], paths: Sequence[Path],
              cache_dir: Path, progress: bool = False, executor=None,
              rois: Sequence[Path | None] | None = None) -> "ProjectPool":
        """Read the images at the working size and featurize their candidate pixels (cached in ``cache_dir``).

        Parameters
        ----------
        config : ExperimentConfig
        size : int
        image_rows : sequence of dict
            Image records (``id``, ``path``, ``sha256``, ``width``, ``height``).
        paths : sequence of Path
            The image files, in the order of ``image_rows``.
        cache_dir : Path
        progress : bool, default=False
        executor : RayExecutor or None, default=None
        rois : sequence of (Path or None), optional
            Each image's region-of-interest file (None: the whole image):
            candidates are drawn only among the working pixels whose
            original pixel (the one a query asks about) lies inside.

        Returns
        -------
        ProjectPool

        Raises
        ------
        ValueError
            A region of interest that covers no working pixel's original pixel.
        """
        images = np.stack([read_image(p, (size, size)) for p in paths])
        roi = None
        if rois is not None and any(r is not None for r in rois):
            roi = np.stack([np.ones((size, size), dtype=bool) if r is None else working_roi(read_roi(r), size)
                            for r in rois])
            empty = [image_rows[i]["path"] for i in np.flatnonzero(~roi.any(axis=(1, 2)))]
            if empty:
                raise ValueError(f"the region of interest of {', '.join(empty[:5])} holds no pixel that a "
                                 f"{size}x{size} working pixel stands for; raise the working size")
        # Names carry the content hash, so an edited image file never reuses stale features.
        split = SegmentationSplit(images, np.full(images.shape[:3], IGNORE_INDEX, dtype=np.uint8),
                                  tuple(f"{r['path']}@{r['sha256'][:16]}" for r in image_rows), roi)
        featurizer = fitted_featurizer(config, None, progress, executor, images=images)
        cache = FeatureCache(cache_dir)
        # No label exists before a person answers: every pixel (inside the region of interest) is a candidate,
        # and the annotator may answer void.
        feats = pool_features(featurizer, split, config.candidates_per_image, config.feature_seed, cache,
                              candidates="all")
        return cls(config, size, featurizer, split, feats, cache, list(image_rows))

    def taken_rows(self, answered: set, asked: set) -> np.ndarray:
        """Candidate rows whose original pixel has been queried or answered.

        Parameters
        ----------
        answered, asked : set of (image_id, y, x)

        Returns
        -------
        ndarray of int64, sorted
        """
        taken_pixels = answered | asked
        feats, taken = self.feats, []
        for i, im in enumerate(self.image_rows):
            p = feats.pixels[i]
            ys, xs = original_pixels(p, self.size, im)
            taken += [feats.offsets[i] + j for j in range(len(p)) if (im["id"], ys[j], xs[j]) in taken_pixels]
        return np.asarray(sorted(taken), dtype=np.int64)

    def answer_features(self, image_id: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Features of answered original pixels: candidate rows where they are candidates, else featurized (cached).

        Parameters
        ----------
        image_id, y, x : ndarray of int64
            Where each answer is (original-resolution pixel).

        Returns
        -------
        ndarray of shape (n_answers, D), float32
        """
        size, feats = self.size, self.feats
        index = {r["id"]: i for i, r in enumerate(self.image_rows)}
        # candidate row of each (image position, working flat pixel)
        row_of = [dict(zip(p.tolist(), range(feats.offsets[i], feats.offsets[i + 1])))
                  for i, p in enumerate(feats.pixels)]
        X_rows, extra = [], {}  # extra: image position -> working pixels that are no candidates
        for image, ay, ax in zip(image_id, y, x):
            i = index[image]
            im = self.image_rows[i]
            flat = int(to_working(ay, im["height"], size) * size + to_working(ax, im["width"], size))
            row = row_of[i].get(flat)
            if row is None:
                extra.setdefault(i, []).append(flat)
                X_rows.append(("extra", i, flat))
            else:
                X_rows.append(("pool", row, None))
        extra_X = {}
        if extra:
            order = sorted(extra)
            pixels = [np.unique(extra[i]) for i in order]
            key = "extra-" + cache_key(featurizer_key(self.featurizer), [self.split.names[i] for i in order],
                                       np.concatenate(pixels))
            Xe = self.cache.get(key, lambda: self.featurizer.transform(
                self.split.images[order], pixels=pixels).astype(np.float16, copy=False))
            start = 0
            for i, p in zip(order, pixels):
                for j, flat in enumerate(p.tolist()):
                    extra_X[(i, flat)] = start + j
                start += len(p)
        X = np.empty((len(X_rows), feats.X.shape[1]), dtype=np.float32)
        for n, (kind, a, b) in enumerate(X_rows):
            X[n] = feats.X[a] if kind == "pool" else Xe[extra_X[(a, b)]]
        return X

    def classifier(self, X: np.ndarray, y: np.ndarray, n_rounds: int):
        """The head trained from scratch on answers ``(X, y)`` (None when none carries a class).

        Seeded like the benchmark runner's head after round ``n_rounds - 1``
        (the round whose answers it has last seen), so a simulated annotator
        gets the runner's queries.
        """
        if not len(y):
            return None
        # seconds of training: no progress bar
        return train_classifier(self.config, X, y, np.arange(len(y)), max(0, n_rounds - 1), {})

    def query(self, classifier, taken: np.ndarray, budget: int, progress: bool = False, executor=None, *,
              strategy: str | None = None, labels: np.ndarray | None = None, round_id: int = 0
              ) -> tuple[list[tuple], str]:
        """One round's picks with a named strategy, as the benchmark runner makes them.

        Parameters
        ----------
        classifier : fitted classifier or None
        taken : ndarray of int64
            Candidate rows already queried or answered (never picked again).
        budget : int
            Pixels to pick, at most the rows not taken.
        progress : bool, default=False
        executor : RayExecutor or None, default=None
        strategy : str, optional
            One of :data:`~skal_seg.engine.settings.STRATEGIES` (default: the project's).
        labels : ndarray of shape (n_rows,), uint8, optional
            The answered class of each candidate row (:meth:`row_labels`; Uncertainty Herding's
            fitted temperature reads it).
        round_id : int, default=0
            Seeds the random picks (as the runner's round).

        Returns
        -------
        picks : list of (image_id, y, x, score)
            Distinct original pixels in picking order (``score`` None where the strategy gives none).
        strategy : str
            What picked them: the strategy, or in round 0 (no classifier) what it falls back to,
            ``"maxherding"`` (stage 1) or ``"random"``.
        """
        config = self.config if strategy is None else dataclasses.replace(self.config, strategy=strategy)
        config.validate()
        feats = self.feats
        query = two_stage_query(config, progress, executor)
        memo = self.cache.directory / LOCAL_PICKS_FILE
        load_local_picks(query, memo)  # this round herds only the images whose candidates changed
        noisy = None
        if classifier is not None and config.strategy in NEEDS_NOISY:
            view_fn = self.featurizer.noisy_view_fn(self.split.images, feats.pixels, n_draws=config.n_draws,
                                                    random_state=config.feature_seed)
            key = noisy_cache_key(config, self.featurizer, self.split, feats.pixels)
            noisy = CachedNoisyViews(view_fn, feats.offsets, feats.X.shape[1], directory=self.cache.directory,
                                     path=self.cache.directory / key)
        y = np.full(len(feats.X), IGNORE_INDEX, dtype=np.uint8) if labels is None else labels
        rng = np.random.default_rng([config.seed, round_id])  # the runner's round-r random state
        # As the runner does: the rows not taken are named, not copied; picks are rows of feats.X.
        idx = query_pixels(config, query, classifier, feats.X, y, feats.groups, taken, budget, noisy, rng, {})
        save_local_picks(query, memo)
        scores = {}
        if classifier is not None and config.strategy in HERDING and getattr(query, "scores_", None) is not None:
            position = {int(r): n for n, r in enumerate(query.candidate_pool_)}
            scores = {int(i): float(query.scores_[position[int(i)]]) for i in idx}
        picks, seen = [], set()
        for i in idx:
            row = int(i)
            g = int(feats.groups[row])
            im = self.image_rows[g]
            flat = int(feats.pixels[g][row - feats.offsets[g]])
            y_, x_ = (int(c) for c in original_pixels(flat, self.size, im))
            if (im["id"], y_, x_) not in seen:  # images smaller than the working size: one pixel, several rows
                seen.add((im["id"], y_, x_))
                picks.append((im["id"], y_, x_, scores.get(row)))
        if classifier is None and config.strategy in HERDING:
            return picks, "maxherding"
        return picks, config.strategy if classifier is not None else "random"

    def row_labels(self, image_id: np.ndarray, y: np.ndarray, x: np.ndarray, label: np.ndarray) -> np.ndarray:
        """The answered class of every candidate row (:data:`~skal_seg.data.IGNORE_INDEX` where none).

        Parameters
        ----------
        image_id, y, x : ndarray of int64
            Where each answer is (original-resolution pixel).
        label : ndarray of uint8
            Its class id (IGNORE_INDEX for void).

        Returns
        -------
        ndarray of shape (n_rows,), uint8
        """
        out = np.full(len(self.feats.X), IGNORE_INDEX, dtype=np.uint8)
        index = {r["id"]: i for i, r in enumerate(self.image_rows)}
        for image, ay, ax, lab in zip(image_id, y, x, label):
            i = index[image]
            im = self.image_rows[i]
            flat = int(to_working(ay, im["height"], self.size) * self.size + to_working(ax, im["width"], self.size))
            j = np.searchsorted(self.feats.pixels[i], flat)
            if j < len(self.feats.pixels[i]) and self.feats.pixels[i][j] == flat:
                out[self.feats.offsets[i] + j] = lab
        return out

    def predict_labels(self, classifier, image: np.ndarray) -> np.ndarray:
        """Class ids of every pixel of one image, at the image's own size.

        The head's class probabilities at the working size are enlarged
        bilinearly to the image's size and the most probable class taken
        there, so a mask's edges follow the probabilities rather than the
        working grid's blocks (nearest-neighbour enlarging of the class map
        gives ``H / size`` x ``W / size`` blocks).

        Parameters
        ----------
        classifier : fitted classifier with ``predict_proba`` and ``classes_``
        image : ndarray of shape (H, W, 3), uint8
            At its original size.

        Returns
        -------
        ndarray of shape (H, W), uint8
        """
        h, w = image.shape[:2]
        # read_image's bilinear resize, from the decoded original rather than a second read of the file
        small = np.asarray(Image.fromarray(image).resize((self.size, self.size), Image.BILINEAR))
        # np.array: a writable copy for torch; float16 rows, as the head's training rows are
        X = self.featurizer.transform(np.array(small[None])).astype(np.float16, copy=False)
        proba = np.asarray(classifier.predict_proba(X), dtype=np.float32)
        best = upsampled_argmax(proba.T.reshape(-1, self.size, self.size), (h, w))
        return np.asarray(classifier.classes_, dtype=np.uint8)[best]

    def evaluate(self, classifier, splits: Sequence[SegmentationSplit], n_classes: int) -> np.ndarray:
        """Confusion matrix of ``classifier`` on labeled images at their own size, as ``predict_labels`` masks them.

        Each image's class probabilities at the working size are enlarged to
        its size before the most probable class is taken (what ``skal-seg
        predict`` writes), so the score is on the person's own labels, not on
        labels shrunk to the working grid. The features are not cached: the
        dense working-size features of one image (16,384 rows x 1,056 float16
        columns at 128 px, 35 MB) would outgrow the project's cache quickly.

        Parameters
        ----------
        classifier : fitted classifier with ``predict_proba`` and ``classes_``
        splits : sequence of SegmentationSplit
            Images (H, W, 3) and labels (H, W, project class ids or
            :data:`~skal_seg.data.IGNORE_INDEX`) at their own size, as
            :func:`~skal_seg.datasets.load_evaluation_splits` reads them.
        n_classes : int

        Returns
        -------
        ndarray of shape (n_classes, n_classes), int64
            Rows: true class, columns: predicted class; ignored pixels excluded.
        """
        cm = np.zeros((n_classes, n_classes), dtype=np.int64)
        for split in splits:
            for image, labels in zip(split.images, split.labels):
                cm += confusion_matrix(labels, self.predict_labels(classifier, image), n_classes)
        return cm
