"""Benchmark: segmentation-head prediction over many pixel rows (the runner's evaluation and eDALD scoring).

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_predict.py
    .venv/bin/python benchmarks/bench_predict.py --features CACHE/dense-XXXX.npy --chunks auto 65536 2048

``--features`` is any cached feature matrix of the runner (``dense-*.npy``:
every pixel of 16 test images, ``pool-*.npy``: candidate pixels), float16; it
is read into memory first so that the disk is not timed. Without it,
``--rows`` random unit rows of ``--dim`` features are used.

What it prints
--------------
For each ``predict_batch_size`` in ``--chunks``: the best of ``--repeat``
seconds of ``TorchMLPClassifier.predict`` over all rows (a head with the
default architecture fitted on 330 random rows with random labels: weights
do not change the cost), rows per second, the resolved rows per chunk, and
whether the predictions equal those of the first setting.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import unit_rows

from skal_seg.classifier import TorchMLPClassifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", help="a cached float16 feature matrix (.npy)")
    ap.add_argument("--rows", type=int, default=262_144)
    ap.add_argument("--dim", type=int, default=1056)
    ap.add_argument("--chunks", nargs="+", default=["auto", "65536"],
                    help="predict_batch_size values ('auto' or ints)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    if args.features:
        X = np.ascontiguousarray(np.load(args.features, mmap_mode="r"))
    else:
        X = unit_rows(args.rows, args.dim, seed=0).astype(np.float16)
    rows = rng.choice(len(X), 330, replace=False)
    clf = TorchMLPClassifier(device="cpu", random_state=0).fit(
        X[rows].astype(np.float32), rng.integers(0, 11, len(rows)))
    print(f"{len(X):,} rows x {X.shape[1]} features ({X.dtype}), {torch.get_num_threads()} threads")

    reference = None
    for chunk in args.chunks:
        clf.set_params(predict_batch_size=chunk if chunk == "auto" else int(chunk))
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            pred = clf.predict(X)
            best = min(best, time.perf_counter() - t0)
        same = "reference" if reference is None else ("identical" if np.array_equal(pred, reference) else "DIFFERENT")
        reference = pred if reference is None else reference
        print(f"predict_batch_size={chunk:>6} ({clf._predict_rows(torch.device('cpu')):>5} rows/chunk): "
              f"{best:7.3f} s, {len(X) / best:12,.0f} rows/s, {same}")


if __name__ == "__main__":
    main()
