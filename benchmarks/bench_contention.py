"""Benchmark: herding alone and beside a busy CPU-heavy process, with and without the thread policy.

Run (from the repository root; 2-4 minutes on a 2-core CPU, more with --classifier)::

    .venv/bin/python benchmarks/bench_contention.py
    .venv/bin/python benchmarks/bench_contention.py --stage1            # + local/global stage 1 at D = 1056
    .venv/bin/python benchmarks/bench_contention.py --classifier       # + the segmentation head's fit and predict
    .venv/bin/python benchmarks/bench_contention.py --threads-policy off   # only the code before the fix

Check ``uptime`` first: other work on the machine makes "alone" not alone.

What it prints
--------------
One line per case and thread policy: the best of ``--repeat`` calls alone,
the best of ``--repeat`` calls while a busy process runs, their ratio (the
target: at most 3), and a digest of the picks (identical across policies and
conditions).

Cases:

* ``control``: a pure-Python loop on one thread (no torch, no barriers):
  its ratio is what losing CPU share alone costs a single-threaded call
  under the conditions of the run (other users of the machine included),
  the floor for the ratios of the other cases.
* ``herding``: ``MaxHerdingSampler.select`` of ``--n-select`` (50) of ``--n``
  (10,000) random unit rows of D = ``--dim`` (256), float32, fixed bandwidth.
* with ``--stage1`` (random unit rows of D = 1056, the featurizer's default):
  ``local``, 50 of 2,500 candidates (the runner's per-image local stage, 4
  images per call) and ``global``, 100 of 8,000 rows conditioned on 33
  labeled rows.

* with ``--classifier``: ``fit``, ``TorchMLPClassifier(max_epochs=20)`` on
  2,000 rows of D = 1056 with 11 classes (a loop of ~500 small optimizer
  steps), and ``predict``, ``predict_proba`` of 100,000 rows (cache-sized
  chunks); their "picks" are the predicted classes (on a different thread
  count the classes may differ in a few rows: reductions round differently).

Thread policy: ``on`` is the library's default (small-op phases of herding
and of the classifier's fit and predict on one torch thread, see
``skal_seg/_threads.py``); ``off`` sets
``SKAL_SEG_SMALL_OP_THREADS=off`` in the measuring process, which runs every
op on the caller's torch threads (the code before the fix). The measuring
process keeps torch's default thread count (the number of cores) unless
``--threads`` is given.

Busy process: a child Python process, started and stopped by this script
(killed after ``--busy-max-s`` seconds in any case), running a torch loop on
``--busy-threads`` (2) threads: ``elementwise`` (default) is exp and sum over
1M floats, the kind of work another skal_seg run or training loop does;
``matmul`` is 512 x 512 matrix products (MKL).

Each policy is measured in a fresh subprocess: data, a warm-up call, the
calls alone, then the busy process, one second of settling, and the calls
beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

from _common import run_worker, unit_rows
from _common import RESULT_PREFIX as _RESULT

BUSY_LOOPS = {
    "elementwise": "a = torch.randn(1 << 20)\nwhile time.time() < end:\n    (a * 1.0001).exp_().sum()\n",
    "matmul": "a = torch.randn(512, 512)\nwhile time.time() < end:\n    a @ a\n",
}


def busy_code(kind: str, threads: int, max_s: float) -> str:
    return f"import time, torch\ntorch.set_num_threads({threads})\nend = time.time() + {max_s}\n" + BUSY_LOOPS[kind]


def cases(args) -> dict:
    """name -> (call, description); each call returns the picks."""
    import numpy as np

    from skal_seg.herding import MaxHerdingSampler, auto_bandwidth

    def control():  # one thread of plain Python: what a CPU share alone does to a single-threaded call
        return [sum(i * i for i in range(3_000_000)) % 7]

    out = {"control": (control, "pure-Python loop, one thread, no torch")}
    X = unit_rows(args.n, args.dim, 0)
    bw = auto_bandwidth(X, 0)
    out["herding"] = (lambda: MaxHerdingSampler(bandwidth=bw).select(X, args.n_select),
                      f"{args.n_select} of {args.n}, D={args.dim}")
    if args.stage1:
        D = 1056
        images = [unit_rows(2500, D, 10 + i) for i in range(4)]
        bw_local = auto_bandwidth(images[0], 0)

        def local():
            return np.concatenate([MaxHerdingSampler(bandwidth=bw_local).select(x, 50) for x in images])

        G, L = unit_rows(8000, D, 20), unit_rows(33, D, 21)
        bw_global = auto_bandwidth(G, 0)
        out["local"] = (local, f"50 of 2,500 x 4 images, D={D}")
        out["global"] = (lambda: MaxHerdingSampler(bandwidth=bw_global).select(G, 100, X_labeled=L),
                         f"100 of 8,000 | 33 labeled, D={D}")
    if args.classifier:
        from skal_seg.classifier import TorchMLPClassifier

        D = 1056
        Xc, yc = unit_rows(2000, D, 30), np.random.default_rng(31).integers(0, 11, 2000)
        P = unit_rows(100_000, D, 32)
        fitted = TorchMLPClassifier(max_epochs=2, random_state=0).fit(Xc, yc)
        out["fit"] = (lambda: TorchMLPClassifier(max_epochs=20, random_state=0).fit(Xc, yc).predict(Xc),
                      f"TorchMLPClassifier.fit, 2,000 rows, 20 epochs, D={D}")
        out["predict"] = (lambda: fitted.predict_proba(P).argmax(1), f"predict_proba, 100,000 rows, D={D}")
    return out


def best_of(call, repeat: int) -> tuple[float, str]:
    """Best time of ``repeat`` calls and a digest of the last call's picks."""
    times, picks = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        picks = call()
        times.append(time.perf_counter() - t0)
    return min(times), hashlib.sha1(json.dumps([int(p) for p in picks]).encode()).hexdigest()[:12]


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def worker(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    todo = cases(args)
    for call, _ in todo.values():  # warm-up: thread pools, allocator
        call()
    result = {"threads": torch.get_num_threads(), "cases": {}}
    for name, (call, _) in todo.items():
        t, digest = best_of(call, args.repeat)
        result["cases"][name] = {"alone": t, "digest": digest}
    busy = subprocess.Popen([sys.executable, "-c", busy_code(args.busy, args.busy_threads, args.busy_max_s)])
    try:
        time.sleep(1.0)  # let the busy process start its loop
        for name, (call, _) in todo.items():
            t, digest = best_of(call, args.repeat)
            result["cases"][name].update(busy=t, same_picks=digest == result["cases"][name]["digest"])
        result["busy_alive"] = busy.poll() is None  # False: the busy process ended before the timing did
    finally:
        busy.kill()
        busy.wait()
    print(_RESULT + json.dumps(result), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--n-select", type=int, default=50)
    ap.add_argument("--stage1", action="store_true", help="also the local and global stage at D = 1056")
    ap.add_argument("--classifier", action="store_true",
                    help="also TorchMLPClassifier.fit (2,000 rows, 20 epochs) and predict_proba (100,000 rows)")
    ap.add_argument("--repeat", type=int, default=3, help="calls per condition; the best is reported")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the measuring process")
    ap.add_argument("--threads-policy", choices=("on", "off", "both"), default="both")
    ap.add_argument("--busy", choices=sorted(BUSY_LOOPS), default="elementwise")
    ap.add_argument("--busy-threads", type=int, default=2)
    ap.add_argument("--busy-max-s", type=float, default=600.0, help="the busy process stops after this long anyway")
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        worker(args)
        return

    load = load_average()
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average at start {load}; "
          f"busy: {args.busy} loop on {args.busy_threads} threads; best of {args.repeat}")
    policies = ("off", "on") if args.threads_policy == "both" else (args.threads_policy,)
    forwarded = [f"--n={args.n}", f"--dim={args.dim}", f"--n-select={args.n_select}", f"--repeat={args.repeat}",
                 f"--busy={args.busy}", f"--busy-threads={args.busy_threads}", f"--busy-max-s={args.busy_max_s}"]
    forwarded += ["--stage1"] * args.stage1 + ["--classifier"] * args.classifier + [f"--threads={args.threads}"] * bool(args.threads)
    header = f"{'case':<8} {'policy':<6} {'threads':>7} {'alone_s':>8} {'busy_s':>8} {'ratio':>6}  {'picks':<12} same"
    print(header)
    print("-" * len(header))
    for policy in policies:
        env = dict(os.environ)
        if policy == "off":
            env["SKAL_SEG_SMALL_OP_THREADS"] = "off"
        else:
            env.pop("SKAL_SEG_SMALL_OP_THREADS", None)
        res = run_worker([__file__, "--_worker", *forwarded], f"policy {policy}", env=env)
        for name, r in res["cases"].items():
            print(f"{name:<8} {policy:<6} {res['threads']:>7} {r['alone']:>8.2f} {r['busy']:>8.2f} "
                  f"{r['busy'] / r['alone']:>6.1f}  {r['digest']:<12} {'yes' if r['same_picks'] else 'NO'}", flush=True)
        if not res["busy_alive"]:
            print("warning: the busy process stopped before the timing ended (raise --busy-max-s)")
    print(f"load average at end {load_average()}")


if __name__ == "__main__":
    main()
