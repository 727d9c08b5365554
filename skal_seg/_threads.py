"""Torch intra-op thread counts per phase of work, restored on exit.

Why: torch runs an elementwise op or a reduction of more than a few
thousand elements on all its intra-op (OpenMP) threads, and each op ends at a
barrier where those threads wait for one another. When another CPU-heavy
process shares the cores, one of the threads is often descheduled, and the
others wait for it a whole scheduler time slice (milliseconds) at every
barrier. A loop of many small ops (the herding greedy: hundreds of ops of
~0.1 ms each per pick) then slows down 10-50 fold, where one thread per op
only shares the cores (measured in ``benchmarks/bench_contention.py``; see
``docs/performance.md``). Such loops run under :func:`small_op_threads`;
products large enough that a lost time slice is small against them keep the
caller's threads through :func:`torch_threads`.

The policy is read at each call from the environment variable
``SKAL_SEG_SMALL_OP_THREADS``: unset means 1 thread; a positive integer caps
small-op phases at that many threads; ``off`` leaves the caller's setting
alone (the behaviour before the policy existed).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch

ENV_VAR = "SKAL_SEG_SMALL_OP_THREADS"

# Kernel blocks of at least this many entries (16 MiB in float32) run with the caller's
# threads: a GEMM this size takes tens of ms, so a lost scheduler slice costs little.
LARGE_OP_ELEMENTS = 1 << 22


def small_op_thread_cap() -> int | None:
    """The thread cap for small-op phases: ``SKAL_SEG_SMALL_OP_THREADS`` (default 1), None for ``off``.

    Raises
    ------
    ValueError
        When the variable is neither ``off`` nor a positive integer.
    """
    raw = os.environ.get(ENV_VAR, "1").strip().lower()
    if raw == "off":
        return None
    try:
        cap = int(raw)
    except ValueError:
        cap = 0
    if cap < 1:
        raise ValueError(f"{ENV_VAR}={raw!r} is not valid; set it to a positive integer or 'off'")
    return cap


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(n)``; the caller's count is restored on exit.

    Restored also when the body raises, and in the thread that changed it.
    ``n`` None, or equal to the current count, changes nothing. Torch's
    count is process state, partly per OS thread: while the body runs, other
    Python threads may see ``n`` too; calls from worker threads, also
    overlapping ones, leave the main thread's count as it was
    (``tests/test_threads.py``).

    Parameters
    ----------
    n : int or None
        Intra-op threads for the body (positive).
    """
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def small_op_threads() -> Iterator[int]:
    """Run a loop of many small torch ops with at most :func:`small_op_thread_cap` threads.

    Never raises the caller's count; restores it on exit (also on
    exceptions), as :func:`torch_threads` does.

    Yields
    ------
    int
        The caller's thread count, for the large products inside the body
        (``with torch_threads(caller): ...``).
    """
    caller = torch.get_num_threads()
    cap = small_op_thread_cap()
    with torch_threads(None if cap is None else min(cap, caller)):
        yield caller
