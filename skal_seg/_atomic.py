"""Files that appear whole or not at all, whoever else writes the same name.

Feature caches, run states and checkpoints are written to a temporary file
beside their final name and moved there in one ``os.replace``, so an
interrupted write leaves the previous file (or none), never half of one.
The temporary name belongs to one writer: two runs sharing a cache folder
may compute the same file at once, and with one shared temporary name one
of them would truncate or move the other's file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A private temporary path to write ``path``'s new contents to; it replaces ``path`` when the block ends.

    The temporary name starts with a dot and ends in ``.tmp``, so that glob
    patterns for the final files (``pool-*.npy``, ``chunk-*``) never match a
    file still being written. If the block raises, ``path`` is left as it was
    and the temporary file is removed.

    Parameters
    ----------
    path : path-like
        The final file.

    Yields
    ------
    Path
        The temporary file, in ``path``'s folder. Write it (and close it)
        inside the block. Writers that add a suffix to a name (``np.save`` on
        a name without ``.npy``) must be given an open file instead.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
