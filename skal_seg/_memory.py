"""Memory: what the machine has available, and bounded resident memory over memory-mapped feature files.

:func:`available_memory_bytes` and :func:`check_images_fit` turn sizes the
machine cannot hold into errors before anything is allocated (a process
that exhausts memory is killed by the kernel without a message).

A pool's features at the paper's scale (10,000 candidates x D = 6144 x 2
bytes per image) are many GB, kept in ``.npy`` files read through
``np.load(mmap_mode="r")``. Every page of a mapping that is read stays
resident in the process (``RssFile``) until the mapping goes away, so a loop
that reads each image's rows once would end with the whole file resident.
:func:`release` drops the pages a block of work has read: they stay in the
kernel's page cache (a later read is a cheap minor fault, or a disk read
under memory pressure) but no longer count against the process.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

__all__ = ["available_memory_bytes", "check_images_fit", "mapped_file", "read_rows", "release", "row_blocks"]


def available_memory_bytes() -> int:
    """Memory the system can give a new allocation without swapping, in bytes.

    ``MemAvailable`` of ``/proc/meminfo`` on Linux; elsewhere the physical
    memory (``os.sysconf``), which overstates what is free.

    Raises
    ------
    OSError
        When neither source exists on this platform.
    """
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_images_fit(n_images: int, height: int, width: int, where: str) -> None:
    """Raise unless ``n_images`` 8-bit RGB images of ``height`` x ``width`` fit in the memory available now.

    A lower bound of what reading them at that size costs, checked before
    the first image is resized (one resize of an absurd ``--size`` alone can
    exceed the machine, and the kernel then kills the process without a
    word).

    Parameters
    ----------
    n_images, height, width : int
        How many images, and their size in pixels once resized.
    where : str
        What they are, for the message (e.g. ``"pool"``).

    Raises
    ------
    ValueError
        Naming the size, the bytes needed and available, and the fix.
    """
    needed, available = n_images * height * width * 3, available_memory_bytes()
    if needed > available:
        raise ValueError(f"{where}: {n_images} images at {height} x {width} px take {needed / 1e9:.1f} GB as 8-bit "
                         f"RGB, more than the {available / 1e9:.1f} GB of memory available; choose a smaller size "
                         "(--size)")


def mapped_file(X) -> mmap.mmap | None:
    """The memory map behind ``X`` (a ``np.memmap`` or a view of one), or None.

    Parameters
    ----------
    X : object

    Returns
    -------
    mmap.mmap or None
    """
    obj, seen = X, 0
    while obj is not None and seen < 16:  # views of views: follow .base
        if isinstance(obj, mmap.mmap):
            return obj
        m = getattr(obj, "_mmap", None)
        if isinstance(m, mmap.mmap):
            return m
        obj, seen = getattr(obj, "base", None), seen + 1
    return None


def release(X) -> None:
    """Drop the pages of ``X``'s memory map from this process's resident set (no-op for other arrays).

    Only for mappings of files (``np.memmap``, ``np.load(mmap_mode=...)``):
    their contents live in the page cache, written pages included, so nothing
    is lost. Safe to call on any object.

    Parameters
    ----------
    X : object
    """
    m = mapped_file(X)
    if m is None or not hasattr(m, "madvise") or m.closed:
        return
    try:
        m.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # not supported here: memory stays as before
        pass


def _file_region(X) -> tuple[str, int] | None:
    """(file name, byte offset of ``X[0, 0]`` in it) when ``X`` is a C-contiguous 2-D view of a file's np.memmap."""
    if not isinstance(X, np.ndarray) or X.ndim != 2 or not X.flags.c_contiguous:
        return None
    obj, root = X, None
    for _ in range(16):  # the memmap that owns the mapping: its data pointer is the file's ``offset``
        if obj is None:
            break
        if isinstance(obj, np.memmap) and isinstance(obj.base, mmap.mmap):
            root = obj
            break
        obj = getattr(obj, "base", None)
    if root is None or getattr(root, "filename", None) is None:
        return None
    return root.filename, X.__array_interface__["data"][0] - root.__array_interface__["data"][0] + root.offset


def read_rows(X, rows, dtype=None) -> np.ndarray:
    """A copy of rows ``rows`` of ``X``, read without leaving ``X``'s pages resident.

    For a view of a file's memory map the rows are read from the file
    (``os.preadv``, one call per run of consecutive rows): a read through
    the mapping would map whole page-cache folios around each row, up to
    the whole file for rows spread over it. Other arrays are indexed as
    usual.

    Parameters
    ----------
    X : ndarray of shape (n_rows, D)
    rows : array-like of int
        In ``[-n_rows, n_rows)``, any order, repeats allowed.
    dtype : numpy dtype, optional
        Of the copy (default: ``X``'s).

    Returns
    -------
    ndarray of shape (len(rows), D)

    Raises
    ------
    IndexError
        A row outside ``X``.
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    region = _file_region(X)
    if region is None:
        out = np.asarray(X[rows], dtype=dtype)
        release(X)
        return out
    n = len(X)
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise IndexError(f"row index out of range for {n} rows")
    rows = np.where(rows < 0, rows + n, rows)
    out = np.empty((len(rows), X.shape[1]), dtype=X.dtype)
    if out.size == 0:
        return out if dtype is None else out.astype(dtype)
    row_bytes = X.shape[1] * X.dtype.itemsize
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    filename, offset = region
    with open(filename, "rb", buffering=0) as f:
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            view = memoryview(out[a:b]).cast("B")
            at, done = offset + int(rows[a]) * row_bytes, 0
            while done < len(view):
                got = os.preadv(f.fileno(), [view[done:]], at + done)
                if got <= 0:
                    raise OSError(f"{filename} ended before row {int(rows[a])}")
                done += got
    return out if dtype is None else out.astype(dtype, copy=False)


def row_blocks(n_rows: int, block_rows: int, multiple_of: int = 1):
    """``(start, stop)`` of consecutive row blocks covering ``range(n_rows)``.

    Parameters
    ----------
    n_rows : int
    block_rows : int
        Rows per block (at least 1), rounded up to a multiple of ``multiple_of``.
    multiple_of : int, default=1
        Block boundaries fall on multiples of it (so a consumer that chunks
        its input in steps of ``multiple_of`` sees the same chunks as over
        the whole range).

    Yields
    ------
    tuple of int
    """
    step = max(1, int(multiple_of))
    block = max(step, -(-int(block_rows) // step) * step)
    for start in range(0, n_rows, block):
        yield start, min(start + block, n_rows)
