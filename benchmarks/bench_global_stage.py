"""Benchmark: the global stage of TwoStageQuery (MaxHerding over every local pick) as the pool grows.

Run (from the repository root; one torch thread, as on the shared CPU)::

    OMP_NUM_THREADS=1 python benchmarks/bench_global_stage.py --sizes 20000 50000
    OMP_NUM_THREADS=1 python benchmarks/bench_global_stage.py --sizes 150000 --pick-fraction 0.001
    OMP_NUM_THREADS=1 python benchmarks/bench_global_stage.py --sizes 20000 --pick-fraction 0.5  # keep_global

At the paper's scale the global stage herds 50 local picks x 2,975 images =
148,750 rows. Each size runs ``MaxHerdingSampler(bandwidth="auto",
max_memory_mb=...).select(X, k, X_labeled=L)`` once in a fresh subprocess on
``N`` float32 random unit rows of ``--dim`` (256) features, conditioned on
``--labeled`` (330: ten rounds of 33 pixels) labeled rows, picking ``k =
round(--pick-fraction x N)`` rows (default 1%; ``TwoStageQuery``'s
``keep_global`` is 0.5). Random unit rows in 256-D are nearly equidistant:
every gain is about the same, the worst case of the lazy/stored shortcuts, so
these times are an upper bound for the same sizes on real features.

Printed per size: wall time of the call, peak RSS of the child
(``ru_maxrss``, whole process) and its RSS just before the call (Python,
torch, the data), the memory budget, the kernel entries evaluated (in units
of ``N^2``), and a hash of the picks (equal hashes: identical picks, e.g.
across budgets).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import time

from _common import RESULT_PREFIX, run_worker, unit_rows


def worker(job: dict) -> dict:
    import torch

    from skal_seg.herding import MaxHerdingSampler

    X = unit_rows(job["n"], job["dim"], 0)
    L = unit_rows(job["labeled"], job["dim"], 1) if job["labeled"] else None
    k = max(1, round(job["fraction"] * job["n"]))
    budget = job["max_memory_mb"] if job["max_memory_mb"] == "auto" else float(job["max_memory_mb"])
    with open("/proc/self/status") as f:
        rss_before = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    s = MaxHerdingSampler(max_memory_mb=budget, random_state=0)
    t0 = time.perf_counter()
    picks = s.select(X, k, X_labeled=L)
    elapsed = time.perf_counter() - t0
    return {
        "n": job["n"], "k": k, "time_s": elapsed, "threads": torch.get_num_threads(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before, "budget_mb": s.memory_budget_mb_,
        "kernel_evals_per_n2": s.n_kernel_evaluations_ / job["n"] ** 2,
        "cached": job["n"] ** 2 * 4 <= s.memory_budget_mb_ * 2**20,
        "bandwidth": s.bandwidth_, "picks_sha1": hashlib.sha1(picks.tobytes()).hexdigest()[:12],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[20000, 50000])
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--labeled", type=int, default=330)
    p.add_argument("--pick-fraction", type=float, default=0.01)
    p.add_argument("--max-memory-mb", default="2048", help="MB, or 'auto' (half the available memory)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(RESULT_PREFIX + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    load = os.getloadavg()[0]
    print(f"global stage, D={args.dim}, {args.labeled} labeled rows, pick {args.pick_fraction:g} of N, "
          f"max_memory_mb={args.max_memory_mb}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load average {load:.2f} at start")
    print("| N | picks | time | peak RSS | RSS before | budget | kernel entries / N^2 | N x N cached | picks sha1 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in args.sizes:
        job = {"n": n, "dim": args.dim, "labeled": args.labeled, "fraction": args.pick_fraction,
               "max_memory_mb": args.max_memory_mb}
        r = run_worker([__file__, "--worker", json.dumps(job)], f"N={n}")
        print(f"| {n:,} | {r['k']:,} | {r['time_s']:.1f} s | {r['peak_rss_mb']:,.0f} MB | {r['rss_before_mb']:,.0f} MB "
              f"| {r['budget_mb']:,.0f} MB | {r['kernel_evals_per_n2']:.2f} | {'yes' if r['cached'] else 'no'} "
              f"| {r['picks_sha1']} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end", file=sys.stderr)


if __name__ == "__main__":
    main()
