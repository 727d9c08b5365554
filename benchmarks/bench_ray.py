"""Benchmark: featurizing the CamVid sample in one process against N local Ray workers.

Run (from the repository root; needs ``pip install -e ".[ray]"``)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ray.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ray.py --workers 2 --candidates 500 --size 128

What it prints
--------------
The 16 images of the shipped CamVid sample (12 train + 4 test, at
``--size``), ``--candidates`` random pixels each, featurized with the
embedded model:

1. in this process with ``--threads`` torch threads;
2. on a local Ray cluster of ``--workers`` one-CPU workers with
   ``--threads`` torch threads each: the start (``ray.init`` plus the first
   call, which starts the workers, ships the model and imports torch and
   diffusers in each worker) and then a second, warm call, timed apart;

and whether the Ray features equal the single process's bit for bit. A
cluster is started once per run, so the start is paid once; the warm call
is what every later featurizing call of a run costs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from skal_seg.data import load_split, sample_dataset_dir
from skal_seg.distributed import RayExecutor
from skal_seg.featurizer import DiffusionFeaturizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads of this process and of each worker")
    p.add_argument("--candidates", type=int, default=500, help="candidate pixels per image")
    p.add_argument("--size", type=int, default=128)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    root = sample_dataset_dir()
    images = np.concatenate([load_split(root, s, size=args.size).images for s in ("train", "test")])
    rng = np.random.default_rng(0)
    pixels = [np.sort(rng.choice(args.size * args.size, args.candidates, replace=False)) for _ in images]
    featurizer = DiffusionFeaturizer(output_dtype="float16", progress=False).fit()
    featurizer.transform(images[:1], pixels=pixels[:1])  # warm-up: one-off allocations
    t = time.perf_counter()
    single = featurizer.transform(images, pixels=pixels)
    t_single = time.perf_counter() - t
    print(f"{len(images)} images x {args.candidates} pixels at {args.size} px, batch {featurizer.batch_size_} images")
    print(f"single process, {args.threads} torch thread(s): {t_single:.1f} s")

    ex = RayExecutor(num_workers=args.workers, torch_threads=args.threads,
                     init_options=dict(log_to_driver=False, object_store_memory=200 * 2**20))
    on_ray = featurizer.set_params(executor=ex)
    t = time.perf_counter()
    first = on_ray.transform(images, pixels=pixels)
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    warm = on_ray.transform(images, pixels=pixels)
    t_warm = time.perf_counter() - t
    ex.shutdown()
    print(f"Ray, {args.workers} workers x {args.threads} torch thread(s): start + first call {t_first:.1f} s, "
          f"warm call {t_warm:.1f} s ({t_single / t_warm:.2f}x the single process)")
    print(f"identical to the single process: first {np.array_equal(first, single)}, "
          f"warm {np.array_equal(warm, single)}")


if __name__ == "__main__":
    main()
