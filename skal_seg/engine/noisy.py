"""The noisy diffusion draws of a pool, computed for the rows stage 2 reads and kept for later rounds.

eDALD reads K noisy views of the rows stage 1 kept (``local_budget`` per
image, then ``keep_global`` of them), about 1/200 of the candidate pixels at
the paper's settings, while a UNet forward computes an image's every pixel at
once. :class:`CachedNoisyViews` runs an image's noisy forwards when a row of
it is first asked for and keeps only the rows asked for, plus those the
caller names as likely next (the image's local picks, see
:meth:`CachedNoisyViews.also_keep`): the storage is that of the rows stage 2
can read, not of the pool.

Values never depend on what else was asked with a row: images are forwarded
in the batches a :meth:`~skal_seg.featurizer.DiffusionFeaturizer.noisy_views`
call over the whole pool would use (``batch_size_`` consecutive images that
have candidates), so a row computed in any round, alone or with others, is
bit-identical to that call's.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from skal_seg._atomic import atomic_path
from skal_seg._memory import read_rows, release

#: A persisted store holds chunks ``chunk-ID.npy`` (K, m, D) beside their pool rows ``chunk-ID.rows.npy``; the
#: ID names the process and the time, so two runs sharing a cache folder never write the same file.
_CHUNK = "chunk-{}-{}"


class CachedNoisyViews:
    """``X_noisy`` callable over pool rows that computes each asked-for row's noisy features once.

    Parameters
    ----------
    view_fn : NoisyViewFunction
        From :meth:`DiffusionFeaturizer.noisy_view_fn` over the pool's candidate pixels.
    offsets : ndarray of shape (n_images + 1,)
        First pool row of each image.
    n_features : int
    dtype : numpy dtype, default=float16
    memory_limit_mb : float, default=1024
        Without ``path``: kept rows beyond this size go to files in a
        temporary folder (memory-mapped, evictable page cache rather than
        pinned memory); ``bald`` and ``edald`` ask for every candidate row.
    directory : path, optional
        Where that temporary folder goes (removed with this object; default:
        the system's temporary folder).
    images_per_call : int, default=8
        Images featurized per call of ``view_fn`` (rounded to whole UNet
        batches), bounding the transient memory.
    path : path, optional
        A folder keeping the rows across runs (other strategies, other
        seeds, a resumed run, a labeling project's next round): one chunk of
        rows per call, each written atomically, so an interrupted run loses at
        most the call in progress. The caller names the folder after
        everything the values depend on (see
        :func:`~skal_seg.engine.features.noisy_cache_key`); one process should
        fill a folder at a time.

    Attributes
    ----------
    seconds : float
        Time spent computing (not reading) noisy features.
    n_kept : int
        Pool rows whose values are kept.

    Raises
    ------
    ValueError
        ``path`` holds chunks of another shape or dtype.
    """

    def __init__(self, view_fn, offsets: np.ndarray, n_features: int, dtype=np.float16,
                 memory_limit_mb: float = 1024, directory: str | Path | None = None, images_per_call: int = 8,
                 path: str | Path | None = None):
        self.view_fn = view_fn
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.n_features = int(n_features)
        self.dtype = np.dtype(dtype)
        self.memory_limit_mb = memory_limit_mb
        self.images_per_call = max(1, int(images_per_call))
        self.directory = directory
        self.seconds = 0.0
        n_rows, n_images = int(self.offsets[-1]), len(self.offsets) - 1
        # The whole-pool batches: images with candidates, batch_size_ at a time (see the module notes).
        sizes = np.diff(self.offsets)
        batch = max(1, int(getattr(getattr(view_fn, "featurizer", None), "batch_size_", 1)))
        self._batch_of = np.full(n_images, -1, dtype=np.int64)
        self._batch_of[sizes > 0] = np.arange(int(np.sum(sizes > 0))) // batch
        self._chunk_of = np.full(n_rows, -1, dtype=np.int32)
        self._position = np.zeros(n_rows, dtype=np.int64)
        self._chunks: list[np.ndarray] = []
        self._hinted = np.zeros(n_rows, dtype=bool)
        self._held = 0
        self._tmp = None
        self._folder = None if path is None else Path(path)
        if self._folder is not None:
            self._folder.mkdir(parents=True, exist_ok=True)
            self._load()

    @property
    def n_kept(self) -> int:
        return int(np.sum(self._chunk_of >= 0))

    def _load(self) -> None:
        for rows_file in sorted(self._folder.glob("chunk-*.rows.npy")):  # a chunk counts once its rows are written
            values = np.load(rows_file.with_name(rows_file.name[: -len(".rows.npy")] + ".npy"), mmap_mode="r")
            rows = np.load(rows_file)
            expected = (self.view_fn.n_draws, len(rows), self.n_features)
            if values.shape != expected or values.dtype != self.dtype or (rows.size and rows.max() >= len(self._chunk_of)):
                raise ValueError(f"{self._folder} holds noisy views of another shape or dtype ({values.shape} "
                                 f"{values.dtype}, expected {expected} {self.dtype}); delete it to recompute")
            self._add(rows, values)

    def _add(self, rows: np.ndarray, values: np.ndarray) -> None:
        self._chunk_of[rows] = len(self._chunks)
        self._position[rows] = np.arange(len(rows))
        self._chunks.append(values)

    def _store(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Keep ``values`` (K, len(rows), D) of pool ``rows``: in the folder, in memory or in a temporary file."""
        values = np.ascontiguousarray(values, dtype=self.dtype)
        folder = self._folder
        if folder is None and self._held + values.nbytes > self.memory_limit_mb * 2**20:
            if self._tmp is None:
                if self.directory is not None:
                    Path(self.directory).mkdir(parents=True, exist_ok=True)
                self._tmp = tempfile.TemporaryDirectory(prefix="skal_seg_noisy_", dir=self.directory)
            folder = Path(self._tmp.name)
        if folder is None:
            self._held += values.nbytes
            self._add(rows, values)
            return
        stem = _CHUNK.format(os.getpid(), time.time_ns())
        for suffix, array in ((".npy", values), (".rows.npy", rows)):  # values first: the rows file commits the chunk
            with atomic_path(folder / f"{stem}{suffix}") as tmp, open(tmp, "wb") as f:
                np.save(f, array)
        self._add(rows, np.load(folder / f"{stem}.npy", mmap_mode="r"))

    def also_keep(self, rows) -> None:
        """Name pool rows worth keeping when their image's noisy forwards run (e.g. the local picks).

        Stage 2 reads a subset of the local picks each round, a different one
        as labels accumulate; keeping an image's local picks when it is first
        forwarded spares forwarding it again for them.

        Parameters
        ----------
        rows : array-like of int
            Pool rows.
        """
        self._hinted[np.asarray(rows, dtype=np.int64)] = True

    def __call__(self, indices) -> np.ndarray:
        """Noisy features (K, len(indices), D) of pool rows ``indices``."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        missing = np.unique(indices[self._chunk_of[indices] < 0])
        if missing.size:
            t0 = time.perf_counter()
            self._compute(missing)
            self.seconds += time.perf_counter() - t0
        K = self.view_fn.n_draws
        out = np.empty((K, len(indices), self.n_features), dtype=self.dtype)
        chunk = self._chunk_of[indices]
        for c in np.unique(chunk):
            sel = np.flatnonzero(chunk == c)
            values, pos = self._chunks[c], self._position[indices[sel]]
            for k in range(K):  # from the file, not through the mapping (see skal_seg._memory.read_rows)
                out[k, sel] = read_rows(values[k], pos)
        return out

    def _compute(self, missing: np.ndarray) -> None:
        """Forward the whole batches of the images holding ``missing`` rows; keep asked-for and hinted rows."""
        image_of = np.searchsorted(self.offsets, missing, side="right") - 1
        batches = np.unique(self._batch_of[np.unique(image_of)])
        asked = np.zeros(len(self._chunk_of), dtype=bool)
        asked[missing] = True
        per_batch = np.bincount(self._batch_of[self._batch_of >= 0])
        groups, group, filled = [], [], 0  # whole batches, about images_per_call images a call
        for b in batches:
            group.append(b)
            filled += per_batch[b]
            if filled >= self.images_per_call:
                groups.append(group)
                group, filled = [], 0
        if group:
            groups.append(group)
        for group in groups:
            images = np.flatnonzero(np.isin(self._batch_of, group))
            rows = []
            for i in images:
                a, b = self.offsets[i], self.offsets[i + 1]
                want = a + np.flatnonzero((asked[a:b] | self._hinted[a:b]) & (self._chunk_of[a:b] < 0))
                # Every image of a batch goes into the forward, or the batch would differ: one row at least.
                rows.append(want if want.size else np.array([a], dtype=np.int64))
            rows = np.concatenate(rows)
            fresh = rows[self._chunk_of[rows] < 0]
            values = self.view_fn(rows)
            keep = np.isin(rows, fresh)
            self._store(rows[keep], values[:, keep])
            release(values)

    def __del__(self):
        if getattr(self, "_tmp", None) is not None:
            self._tmp.cleanup()
