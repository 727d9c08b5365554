"""Benchmark: stage 1 (local and global MaxHerding) on real CamVid pool features, as the runner runs it.

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_stage1.py --features CACHE/pool-XXXX.npy
    .venv/bin/python benchmarks/bench_stage1.py --features CACHE/pool-XXXX.npy --impl OTHER/herding.py

``--features`` is a pool feature matrix the runner cached (``skal-seg run
--cache CACHE`` writes ``CACHE/pool-*.npy``: one row per candidate pixel,
image-major, ``--candidates-per-image`` rows per image, float16). Without it,
features of ``--images`` CamVid train images are computed with the embedded
model first (a few minutes).

What it prints
--------------
1. Local stage: MaxHerding picks ``--local-budget`` (50) of each image's
   candidates, for ``--images`` (40) images: seconds per image.
2. Global stage of ``two_stage`` after round 0: MaxHerding keeps
   ``--keep-global`` (0.5) of the union of the local picks of ``--global-images``
   (330) images, conditioned on ``--labeled`` (33) already-labeled rows:
   seconds and peak memory (RSS above the start, MB).
3. The same global stage picking only ``--budget`` (33) rows (``maxherding``'s
   per-round query, and round 0 of ``two_stage``).

``--impl PATH`` loads ``MaxHerdingSampler`` from another ``herding.py`` (an
older version from git history, say) instead of ``skal_seg.herding``, to
compare implementations on identical inputs; the picks are printed as a
SHA-1 digest so identical selections can be checked across runs.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
import time

import numpy as np
from _common import DEFAULT_DATA, PeakRSS


def load_sampler_class(impl: str | None):
    if impl is None:
        from skal_seg.herding import MaxHerdingSampler

        return MaxHerdingSampler
    spec = importlib.util.spec_from_file_location("herding_under_test", impl)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MaxHerdingSampler


def pool_matrix(args) -> np.ndarray:
    if args.features:
        return np.load(args.features, mmap_mode="r")
    from skal_seg.data import load_split
    from skal_seg.engine.features import candidate_pixels
    from skal_seg.featurizer import DiffusionFeaturizer

    n = max(args.images, args.global_images)
    split = load_split(args.data, "train", size=128, limit=n)
    pixels = candidate_pixels(split, args.candidates_per_image, seed=0)
    feat = DiffusionFeaturizer(output_dtype="float16").fit()
    return feat.transform(split.images, pixels=pixels)


def digest(idx: np.ndarray) -> str:
    return hashlib.sha1(np.asarray(idx, dtype=np.int64).tobytes()).hexdigest()[:12]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", help="pool feature matrix (.npy) cached by skal-seg run --cache")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="CamVid folder, when --features is not given")
    p.add_argument("--candidates-per-image", type=int, default=2500)
    p.add_argument("--local-budget", type=int, default=50)
    p.add_argument("--keep-global", type=float, default=0.5)
    p.add_argument("--images", type=int, default=40, help="images of the local-stage timing")
    p.add_argument("--global-images", type=int, default=330, help="images whose local picks form the global stage")
    p.add_argument("--labeled", type=int, default=33, help="labeled rows the global stage is conditioned on")
    p.add_argument("--budget", type=int, default=33, help="rows of the short global selection")
    p.add_argument("--impl", help="herding.py to take MaxHerdingSampler from (default: skal_seg.herding)")
    p.add_argument("--skip-long", action="store_true", help="skip the keep-global selection")
    args = p.parse_args(argv)

    import torch

    Sampler = load_sampler_class(args.impl)
    X = pool_matrix(args)
    per = args.candidates_per_image
    n_images = len(X) // per
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()} "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), cpu cores {os.cpu_count()}; "
          f"herding from {args.impl or 'skal_seg.herding'}")
    print(f"pool: {n_images} images x {per} candidates, D={X.shape[1]}, {X.dtype}")

    # 1. local stage
    n_local = min(args.images, n_images)
    rows = [np.asarray(X[i * per : (i + 1) * per], dtype=np.float32) for i in range(n_local)]
    Sampler(random_state=0).select(rows[0][:300], 5)  # warm-up
    t = time.perf_counter()
    local = [Sampler(random_state=i).select(r, args.local_budget) for i, r in enumerate(rows)]
    dt = time.perf_counter() - t
    print(f"local: {args.local_budget} of {per} rows, {n_local} images: {dt:.2f} s, {dt / n_local:.3f} s/image, "
          f"picks {digest(np.concatenate(local))}")

    # 2./3. global stage over the union of the local picks of --global-images images
    n_global = min(args.global_images, n_images)
    rng = np.random.default_rng(0)
    picks = []
    for i in range(n_global):
        # Local picks for the timed images, a seeded random stand-in elsewhere (the global
        # stage's cost depends on its size, not on how its rows were chosen).
        sel = local[i] if i < n_local else rng.choice(per, size=args.local_budget, replace=False)
        picks.append(i * per + np.sort(sel))
    union = np.concatenate(picks)
    G = np.asarray(X[union], dtype=np.float32)
    rest = np.setdiff1d(np.arange(len(X)), union)
    L = np.asarray(X[rng.choice(rest, size=args.labeled, replace=False)], dtype=np.float32)
    cases = [("short", args.budget)] + ([] if args.skip_long else [("keep_global", int(round(args.keep_global * len(G))))])
    for name, k in cases:
        s = Sampler(random_state=0)
        with PeakRSS() as mem:
            t = time.perf_counter()
            idx = s.select(G, k, X_labeled=L)
            dt = time.perf_counter() - t
        print(f"global/{name}: {k} of {len(G)} rows | {len(L)} labeled: {dt:.2f} s, peak +{mem.mb:.0f} MB, "
              f"picks {digest(idx)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
