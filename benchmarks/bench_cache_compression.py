"""How far would lossless compression take a labeling project's feature cache (issue 27's 150 MB for 30 images)?

A project keeps float16 rows of its candidate pixels (2,500 per image at
128 px, D = 1,056 for the embedded model: 5.3 MB per image, 158.4 MB for
30). This script featurizes ``--images`` CamVid training images as a
project does (the embedded model, 128 x 128, 2,500 random candidates per
image, float16), then compresses the rows with zlib at ``--levels``, as
they are and byte-shuffled (all low bytes, then all high bytes: the high
bytes of unit-norm features repeat a lot), and prints the compressed share,
the compression and decompression speed (1 thread, best of ``--repeats``)
and the projected cache of a 30-image project. Nothing is changed in the
library: compressed rows cannot be memory-mapped, which the cache relies on
to bound a large project's memory.

    OMP_NUM_THREADS=1 python benchmarks/bench_cache_compression.py --images 10
"""

from __future__ import annotations

import argparse
import json
import time
import zlib

import numpy as np

from _common import DEFAULT_DATA
from skal_seg.datasets import dataset_spec, load_dataset
from skal_seg.engine.features import candidate_pixels
from skal_seg.featurizer import DiffusionFeaturizer

CANDIDATES = 2500
PROJECT_IMAGES = 30


def best_seconds(fn, repeats: int) -> float:
    """Shortest wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--levels", nargs="+", type=int, default=[1, 6])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    pool = load_dataset(args.data, dataset_spec(args.data), size=128, pool_limit=args.images).pool
    pixels = candidate_pixels(pool, CANDIDATES, seed=0, candidates="all")  # a project has no labels
    X = DiffusionFeaturizer(output_dtype="float16", progress=False).fit().transform(pool.images, pixels=pixels)
    per_image = X.nbytes / len(pool.images)
    print(f"{len(pool.images)} images, rows {X.shape}, {X.dtype}: {X.nbytes / 1e6:.1f} MB, "
          f"{per_image / 1e6:.2f} MB per image, {PROJECT_IMAGES} images {PROJECT_IMAGES * per_image / 1e6:.1f} MB")
    layouts = {"as stored": X.tobytes(), "byte-shuffled": X.view(np.uint8).reshape(-1, 2).T.tobytes()}
    for name, raw in layouts.items():
        for level in args.levels:
            packed = zlib.compress(raw, level)
            share = len(packed) / len(raw)
            pack_s = best_seconds(lambda: zlib.compress(raw, level), args.repeats)
            unpack_s = best_seconds(lambda: zlib.decompress(packed), args.repeats)
            projected = share * PROJECT_IMAGES * per_image
            print(json.dumps({"layout": name, "zlib_level": level, "share": round(share, 4),
                              "compress_mb_s": round(len(raw) / pack_s / 1e6, 1),
                              "decompress_mb_s": round(len(raw) / unpack_s / 1e6, 1),
                              f"project_{PROJECT_IMAGES}_images_mb": round(projected / 1e6, 1)}), flush=True)


if __name__ == "__main__":
    main()
