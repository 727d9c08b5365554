"""The feature store: candidate pixels, their fixed-noise features and noisy draws, computed once and kept on disk.

Keys name everything the values depend on (the featurizer's parameters, the
images' contents, the candidate pixels, the noise seeds), so strategies,
seeds, resumed runs and labeling projects share what they can and never
reuse stale features.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted


from skal_seg._atomic import atomic_path
from skal_seg.data import IGNORE_INDEX, SegmentationSplit
from skal_seg.engine.settings import CANDIDATES, NEEDS_NOISY, SCORE_EVERY_CANDIDATE, ExperimentConfig
from skal_seg.concat import ConcatFeaturizer, make_concat
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.filter_bank import FilterBankFeaturizer


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


def featurizer_key(featurizer) -> dict:
    """What identifies a featurizer's output, for cache keys.

    Parameters
    ----------
    featurizer : DiffusionFeaturizer, FilterBankFeaturizer or ConcatFeaturizer

    Returns
    -------
    dict
        Its parameters except those that do not change the features
        (``progress``, ``batch_size``, ``device``, ``executor``, also as a
        part's ``name__progress``...; ``pad`` when 0, ``input_size`` when None,
        ``line_lengths`` when empty); a model instance is named by its type
        and ``id`` (so it is cached per process only). A featurizer other
        than the diffusion one also names its type and a digest of what
        ``fit`` learned (the filter bank's column statistics come from the
        pool: other pool images, other features).
    """
    params = {k: v for k, v in featurizer.get_params().items()
              if k.rsplit("__", 1)[-1] not in ("progress", "batch_size", "device", "executor")
              and k != "featurizers"}  # a composition's parts: their nested parameters name them fully
    defaults = {"pad": lambda v: v == 0, "input_size": lambda v: v is None, "line_lengths": lambda v: len(v) == 0}
    for k in [k for k, v in params.items() if defaults.get(k.rsplit("__", 1)[-1], lambda v: False)(v)]:
        del params[k]  # features at the defaults keep the keys they had before these options existed
    for k, v in params.items():
        if k.rsplit("__", 1)[-1] == "model" and not isinstance(v, (str, os.PathLike)):
            params[k] = f"{type(v).__name__}@{id(v)}"
    if not isinstance(featurizer, DiffusionFeaturizer):  # keeps the diffusion features' keys as they were
        params["type"] = type(featurizer).__name__
        params["fitted"] = cache_key(*_fitted_arrays(featurizer))
    return params


def _fitted_arrays(featurizer) -> list:
    """The arrays ``fit`` set on a featurizer and on the parts of a composition, in a fixed order."""
    arrays = [v for k, v in sorted(vars(featurizer).items()) if k.endswith("_") and isinstance(v, np.ndarray)]
    for _, part in getattr(featurizer, "featurizers", None) or []:
        if not isinstance(part, DiffusionFeaturizer):
            arrays += _fitted_arrays(part)
    return arrays


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
        Keep the optional arrays in ``directory`` too. False keeps them in
        memory while they fit ``memory_limit_mb`` (dense evaluation
        features, ``H x W x D`` float16 per image, are GBs for a full
        dataset) and writes only those that do not fit to ``directory``.

    Notes
    -----
    One cache serves every run of an invocation (``skal-seg run`` hands the
    same one to each strategy and seed), so the evaluation features of a test
    split are computed once, whatever the number of runs.
    """

    def __init__(self, directory: str | Path | None, memory_limit_mb: float = 1024, persist_optional: bool = True):
        self.directory = None if directory is None else Path(directory)
        self.memory_limit_mb = memory_limit_mb
        self.persist_optional = persist_optional
        self._memory: dict[str, np.ndarray] = {}
        self._held = 0

    def get(self, key: str, compute: Callable[[], np.ndarray], in_memory: bool = True) -> np.ndarray:
        """The array stored under ``key``, computed by ``compute()`` the first time.

        Arrays with ``in_memory=False`` (dense test features, say) are kept
        in memory while the cache holds under ``memory_limit_mb`` in all
        when there is no directory or ``persist_optional`` is False; beyond
        that they go to the directory, or, without one, are recomputed on
        each use.

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
        path = None if self.directory is None else self.directory / f"{key}.npy"
        if not in_memory and (path is None or not self.persist_optional) and not (path is not None and path.exists()):
            arr = compute()
            if self._held + arr.nbytes <= self.memory_limit_mb * 2**20:
                self._memory[key] = arr
                self._held += arr.nbytes
                return arr
            if path is None:
                return arr
            compute = lambda: arr  # noqa: E731 -- too large for memory: to the directory below
        if path is not None:
            if path.exists():
                arr = np.load(path, mmap_mode="r")
            else:
                arr = compute()
                self.directory.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp, open(tmp, "wb") as f:
                    np.save(f, arr)
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
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
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
            arr = np.load(path, mmap_mode="r")
        self._memory[key] = arr
        return arr


def _check_rows(rows: int, shape: tuple, key: str) -> None:
    if rows != shape[0]:
        raise ValueError(f"the blocks of {key} do not form a {shape[0]} x {shape[1]} matrix")


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

    Pixels outside a split's region of interest (:attr:`SegmentationSplit.roi`)
    are never candidates: ``"valid"`` excludes them through their labels
    (:data:`~skal_seg.data.IGNORE_INDEX` outside the region), ``"all"``
    draws only among :attr:`SegmentationSplit.roi_mask` pixels. A split
    without one draws exactly what it drew before regions existed.

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
        image: ``n_per_image`` each for ``"all"`` (``min(n_per_image, pixels
        inside the region of interest)`` with one), ``min(n_per_image, valid
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
        if split.roi is None:  # the draw of every split before regions of interest existed: keys unchanged
            return [np.sort(rng.choice(h * w, size=n_per_image, replace=False)) for _ in range(len(split))]
        return [_draw(np.flatnonzero(roi.reshape(-1)), n_per_image, rng) for roi in split.roi]
    return [_draw(np.flatnonzero(labels.reshape(-1) != IGNORE_INDEX), n_per_image, rng) for labels in split.labels]


def _draw(allowed: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct pixels of ``allowed`` (all of them when there are no more), sorted, int64."""
    pick = allowed if len(allowed) <= n else rng.choice(allowed, size=n, replace=False)
    return np.sort(pick).astype(np.int64)


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


def fitted_featurizer(config: "ExperimentConfig", featurizer, progress: bool, executor=None, images=None):
    """The run's featurizer, fitted.

    Parameters
    ----------
    config : ExperimentConfig
    featurizer : featurizer or None
        None builds the one ``config.features`` names, with float16 output:
        ``DiffusionFeaturizer(**config.featurizer)``,
        ``FilterBankFeaturizer(**config.filter_bank)``, or both side by side
        (:func:`~skal_seg.concat.make_concat`).
    progress : bool
    executor : RayExecutor or None, default=None
        When given, a shallow copy of the featurizer (same model, the
        caller's object unchanged) whose diffusion forwards run on it.
    images : ndarray of shape (n, H, W, 3), optional
        The pool's images: a filter bank learns its column statistics on
        them when it is fitted here.

    Returns
    -------
    featurizer
        Fitted (``fit`` is called only when it is not).
    """
    if featurizer is None:
        # float16 rows: half the memory of the (n_candidates x D) pool matrix.
        diffusion = DiffusionFeaturizer(**{"output_dtype": "float16", **config.featurizer}, progress=progress)
        filters = FilterBankFeaturizer(**{"output_dtype": "float16", **config.filter_bank}, progress=progress)
        featurizer = {"diffusion": diffusion, "filters": filters,
                      "diffusion+filters": make_concat(diffusion, filters)}[config.features]
    try:
        check_is_fitted(featurizer)
    except NotFittedError:
        featurizer.fit(images)
    if executor is not None:
        if isinstance(featurizer, DiffusionFeaturizer):
            featurizer = copy.copy(featurizer).set_params(executor=executor)
        elif isinstance(featurizer, ConcatFeaturizer):  # the diffusion part's forwards; the filters run here
            featurizer = copy.deepcopy(featurizer)
            for _, part in featurizer.featurizers:
                if isinstance(part, DiffusionFeaturizer):
                    part.set_params(executor=executor)
    return featurizer


def diffusion_part(featurizer) -> DiffusionFeaturizer | None:
    """The diffusion featurizer in ``featurizer`` (itself, or a composition's part), None for a filter bank alone."""
    if isinstance(featurizer, DiffusionFeaturizer):
        return featurizer
    return next((p for _, p in getattr(featurizer, "featurizers", None) or [] if isinstance(p, DiffusionFeaturizer)),
                None)


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
    """Folder name of a pool's noisy draws in a cache folder (:class:`~skal_seg.engine.noisy.CachedNoisyViews`):
    shared by every strategy and seed (and by a labeling project's rounds) with the same features, images,
    candidates, ``n_draws`` and ``feature_seed``."""
    return "noisy-" + cache_key(featurizer_key(featurizer), pool.names, pool.images, np.concatenate(pixels),
                                config.n_draws, config.feature_seed, config.candidates)


def noisy_rows_bound(config: ExperimentConfig, candidate_counts: Sequence[int]) -> int:
    """Most pool rows whose noisy draws a run keeps (:class:`~skal_seg.engine.noisy.CachedNoisyViews`).

    ``bald`` and ``edald`` score every candidate, and ``noisy_rows="all"``
    keeps every candidate row of a forwarded image. The stage-2 strategies read
    the local picks: ``min(local_budget, candidates)`` per image in round 1,
    and each labeled pixel can change one image's local picks for later
    rounds (at most ``local_budget`` new rows), so at most ``(rounds - 2) x
    budget x local_budget`` more; plus one row per image that shares a UNet
    batch with a forwarded image and has none to keep.

    Parameters
    ----------
    config : ExperimentConfig
    candidate_counts : sequence of int
        Candidates of each pool image.

    Returns
    -------
    int
    """
    counts = np.asarray(candidate_counts, dtype=np.int64)
    n_rows = int(counts.sum())
    if config.strategy in SCORE_EVERY_CANDIDATE or config.noisy_rows == "all":
        return n_rows
    first = int(np.minimum(counts, config.local_budget).sum()) + int(np.count_nonzero(counts))
    later = max(0, config.rounds - 2) * config.budget(len(counts)) * config.local_budget
    return min(n_rows, first + later)


def _evaluation_key(featurizer, part: SegmentationSplit, stride: int) -> str:
    if stride == 1:
        return "dense-" + cache_key(featurizer_key(featurizer), part.names, part.images)
    return "grid-" + cache_key(featurizer_key(featurizer), part.names, part.images, stride)


def cache_needs(config: ExperimentConfig, featurizer: DiffusionFeaturizer, pool: SegmentationSplit, pixels: list,
                test: SegmentationSplit, cache_dir: str | Path, cache_evaluation: bool = True,
                batch_images: int = 16, memory_limit_mb: float = 1024) -> dict[str, int]:
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
        False: the evaluation features stay in memory while they fit
        ``memory_limit_mb``, and only the batches beyond it count.
    batch_images : int, default=16
        As in :func:`evaluate`.
    memory_limit_mb : float, default=1024
        The feature cache's memory budget (:class:`FeatureCache`).

    Returns
    -------
    dict
        ``{"pool": ..., "noisy": ..., "evaluation": ...}`` in bytes, float16
        features: ``rows x D x 2`` for the pool; ``K x rows x D x 2`` for the
        noisy draws of the rows stage 2 may read, less what the cache folder
        holds already (:func:`noisy_rows_bound`); ``evaluated pixels x D x 2``
        for the test images.
    """
    directory = Path(cache_dir)
    row = 2 * int(featurizer.n_features_out_)
    n_rows = sum(len(p) for p in pixels)

    def missing(stem: str, nbytes: int) -> int:
        return 0 if (directory / f"{stem}.npy").exists() else int(nbytes)

    needs = {"pool": missing(pool_cache_key(featurizer, pool, pixels, config.candidates), n_rows * row), "noisy": 0,
             "evaluation": 0}
    if config.strategy in NEEDS_NOISY:
        folder = directory / noisy_cache_key(config, featurizer, pool, pixels)
        held = sum(f.stat().st_size for f in folder.glob("chunk-*.npy")) if folder.is_dir() else 0
        bound = config.n_draws * noisy_rows_bound(config, [len(p) for p in pixels]) * row
        needs["noisy"] = max(0, bound - held)
    h, w = test.labels.shape[1:]
    per_image = len(range(0, h, config.eval_stride)) * len(range(0, w, config.eval_stride)) * row
    held = 0  # in memory (FeatureCache with persist_optional=False), in evaluation order
    for start in range(0, len(test), batch_images):
        part = test.subset(np.arange(start, min(start + batch_images, len(test))))
        nbytes = len(part) * per_image
        if not cache_evaluation and held + nbytes <= memory_limit_mb * 2**20:
            held += nbytes
            continue
        needs["evaluation"] += missing(_evaluation_key(featurizer, part, config.eval_stride), nbytes)
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
