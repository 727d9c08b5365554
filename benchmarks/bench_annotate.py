"""Benchmark: what labeling through a project adds to a benchmark run (record the picks, answer, read back).

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_annotate.py
    .venv/bin/python benchmarks/bench_annotate.py --images 367 --rounds 10 --budget 37 --repeat 3

A pool of ``--images`` random 128 x 128 images with random labels (the cost
does not depend on the pixel values), ``--candidates`` candidate pixels per
image, in a project under a temporary folder (``--dir`` to put it on another
disk: SQLite waits for the disk on every commit).

What it prints
--------------
For each repeat: the seconds to create the project
(:meth:`GroundTruthAnnotator.open`, images hashed and recorded) and the
seconds of ``--rounds`` rounds of :meth:`GroundTruthAnnotator.ask` (the
round's queries in one transaction, the ground truth's answers in one import)
plus :meth:`GroundTruthAnnotator.revealed` (the labels read back), the
slowest round, and whether the labels read back equal the ground truth.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from skal_seg.benchmark.simulate import GroundTruthAnnotator
from skal_seg.data import CAMVID_CLASSES, SegmentationSplit
from skal_seg.engine.features import candidate_pixels
from skal_seg.engine.settings import ExperimentConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=367, help="pool images (CamVid train: 367)")
    ap.add_argument("--candidates", type=int, default=2500, help="candidate pixels per image")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=37, help="pixels per round (0.1 per image: 37)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", help="where the temporary project folders go")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    shape = (args.images, 128, 128)
    pool = SegmentationSplit(rng.integers(0, 256, (*shape, 3), dtype=np.uint8),
                             rng.integers(0, len(CAMVID_CLASSES), shape).astype(np.uint8),
                             tuple(f"image{i:04d}" for i in range(args.images)))
    pixels = candidate_pixels(pool, args.candidates, 0, "all")
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pixels])]).astype(np.int64)
    truth = np.concatenate([pool.labels[i].reshape(-1)[p] for i, p in enumerate(pixels)])
    config = ExperimentConfig(candidates="all", candidates_per_image=args.candidates)
    print(f"{args.images} images x {args.candidates} candidates, {args.rounds} rounds x {args.budget} pixels")
    for rep in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            t = time.perf_counter()
            annotator = GroundTruthAnnotator.open(Path(tmp) / "run", pool, pixels, offsets, CAMVID_CLASSES, config,
                                                  {"data": "bench"}, resume=False)
            created = time.perf_counter() - t
            picks = rng.permutation(len(truth))[: args.rounds * args.budget]
            rounds = []
            for r in range(args.rounds):
                t = time.perf_counter()
                annotator.ask(r, picks[r * args.budget : (r + 1) * args.budget], "random", args.budget, seconds=0.0)
                y = annotator.revealed(len(truth))
                rounds.append(time.perf_counter() - t)
            same = bool(np.array_equal(y[picks], truth[picks]))
        print(f"repeat {rep}: create {created:.3f} s, {args.rounds} rounds {sum(rounds):.3f} s "
              f"(slowest {max(rounds):.3f} s), labels read back equal the ground truth: {same}")


if __name__ == "__main__":
    main()
