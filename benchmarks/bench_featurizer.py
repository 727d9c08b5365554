"""Benchmark: DiffusionFeaturizer throughput and memory, and its overhead over bare UNet forwards.

Run (from the repository root; one thread is much faster on a busy CPU)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_featurizer.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_featurizer.py --n-images 32 --batch-size 8 --threads 1
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_featurizer.py --quick     # smoke run, about a minute

What it prints
--------------
A header with the model used (the embedded DDPM, or -- when its weights are not
exported yet to ``skal_seg/assets/embedded_ddpm/unet`` -- a random-init
``UNet2DModel(**EMBEDDED_UNET_CONFIG)`` labeled UNTRAINED; the speed is the
same, the features are not meaningful), the images (the first ``--n-images``
CamVid train images at ``--size`` 128 x 128, or random uint8 images when the
data folder is absent), the torch thread count, device, timesteps and batch
size. Then one row per mode:

* ``transform/all``: ``transform(images)``, every pixel of the 128 x 128 grid;
* ``transform/subset``: ``transform(images, pixels=...)`` with
  ``--pixels-per-image`` (2500) random pixels per image;
* ``noisy_views/subset``: ``noisy_views(images, n_draws=--n-draws (5), pixels=...)``.

Columns: rows x D of the output, featurizer seconds, images per second, peak
memory (MB, see below), size of the returned array (MB), seconds of the bare
UNet forwards alone and the ratio featurizer / bare. The bare forwards use the
same inputs (same scaling and resizing, same noise tensors, same timesteps,
same batching: ``--batch-size`` images x len(timesteps) samples per forward,
one forward per noise draw) under ``torch.no_grad()``, without hooks and
without any feature sampling or output writing; the ratio is the cost of the
featurizer's feature extraction on top of the network itself.

Memory: each mode runs in a fresh Python subprocess (model loaded, images
loaded, one warm-up call); the peak is the resident-set high-water mark during
the featurizer call minus the RSS just before it (reset through
/proc/self/clear_refs on Linux; elsewhere ru_maxrss, which can overstate it).
It includes the returned array. torch CPU tensors are invisible to
tracemalloc, hence RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from _common import DEFAULT_DATA, PeakRSS, load_model, run_worker
from _common import RESULT_PREFIX as _RESULT
MODES = ("transform/all", "transform/subset", "noisy_views/subset")


def load_images(args) -> tuple[np.ndarray, str]:
    from skal_seg.data import load_split

    root = Path(args.data)
    if (root / "train").is_dir():
        split = load_split(root, "train", size=args.size, limit=args.n_images)
        if len(split) >= args.n_images:
            return split.images, f"first {len(split)} CamVid train images of {root} at {args.size}x{args.size}"
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (args.n_images, args.size, args.size, 3), dtype=np.uint8)
    return imgs, f"{args.n_images} RANDOM uint8 images at {args.size}x{args.size} ({root} absent or too small)"


def bare_forwards(feat, images: np.ndarray, noises) -> None:
    """The UNet forwards the featurizer runs, alone: same inputs, timesteps and batching; no hooks."""
    import torch
    import torch.nn.functional as F

    unet, sched = feat.unet_, feat.scheduler_
    device, dtype = feat.device_, feat.dtype_
    n_t = len(feat.timesteps_)
    t_all = torch.tensor(feat.timesteps_, dtype=torch.int64, device=device)
    with torch.no_grad():
        for a in range(0, len(images), feat.batch_size_):
            xs = []
            for img in images[a : a + feat.batch_size_]:
                x = torch.from_numpy(np.ascontiguousarray(img)).float().div(127.5).sub(1.0).permute(2, 0, 1)
                x = x.to(device)
                if tuple(x.shape[-2:]) != feat.input_size_:
                    x = F.interpolate(x[None], size=feat.input_size_, mode="bilinear", align_corners=False)[0]
                xs.append(x)
            b = len(xs)
            x0 = torch.stack(xs).repeat(n_t, 1, 1, 1)
            t = t_all.repeat_interleave(b)
            for noise in noises:
                xt = sched.add_noise(x0, noise.to(device).expand_as(x0), t).to(dtype)
                unet(xt, t)


# ----------------------------------------------------------------------------- worker


def worker(job: dict) -> dict:
    import torch

    from skal_seg.featurizer import DiffusionFeaturizer

    args = argparse.Namespace(**job["args"])
    if args.threads:
        torch.set_num_threads(args.threads)
    model, model_label = load_model()
    images, data_label = load_images(args)
    kw = {} if args.timesteps is None else {"timesteps": tuple(args.timesteps)}
    feat = DiffusionFeaturizer(
        model=model, batch_size=args.batch_size, device=args.device, dtype=args.dtype, progress=False, **kw
    ).fit()
    h, w = images.shape[1:3]
    rng = np.random.default_rng(0)
    pixels = [rng.choice(h * w, min(args.pixels_per_image, h * w), replace=False) for _ in images]

    mode = job["mode"]
    if mode == "transform/all":
        call = lambda: feat.transform(images)  # noqa: E731
        noises = feat.noise_[None]
    elif mode == "transform/subset":
        call = lambda: feat.transform(images, pixels=pixels)  # noqa: E731
        noises = feat.noise_[None]
    else:
        call = lambda: feat.noisy_views(images, n_draws=args.n_draws, pixels=pixels, random_state=0)  # noqa: E731
        noises = feat._noises(args.n_draws, 0)  # the draws noisy_views uses for random_state=0

    feat.transform(images[:1], pixels=[pixels[0][:10]])  # warm-up: thread pools, kernels, allocator
    times = []
    with PeakRSS() as mem:
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = call()
            times.append(time.perf_counter() - t0)
    shape, out_mb = list(out.shape), out.nbytes / 2**20
    del out
    bare = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        bare_forwards(feat, images, noises)
        bare.append(time.perf_counter() - t0)
    return {
        "time": min(times),
        "bare": min(bare),
        "mem_mb": mem.mb,
        "out_mb": out_mb,
        "shape": shape,
        "threads": torch.get_num_threads(),
        "model": model_label,
        "data": data_label,
        "device": str(feat.device_),
        "timesteps": list(feat.timesteps_),
        "D": feat.n_features_out_,
        "batch_size": feat.batch_size_,
        "n_images": len(images),
    }


def measure(mode: str, args) -> dict:
    job = {"mode": mode, "args": {k: v for k, v in vars(args).items() if k != "_worker"}}
    return run_worker([__file__, "--_worker", json.dumps(job)], mode)


# ----------------------------------------------------------------------------- driver


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-images", type=int, default=16, help="images per measurement")
    p.add_argument("--batch-size", type=lambda v: v if v == "auto" else int(v), default="auto",
                   help="DiffusionFeaturizer(batch_size=) and bare batching: 'auto' or images per forward")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in the workers (default: torch's)")
    p.add_argument("--pixels-per-image", type=int, default=2500, help="candidate pixels per image for the subsets")
    p.add_argument("--n-draws", type=int, default=5, help="K of noisy_views")
    p.add_argument("--size", type=int, default=128, help="image (and output grid) size")
    p.add_argument("--timesteps", type=int, nargs="+", default=None, help="default: the featurizer's (50 150 250)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--repeat", type=int, default=1, help="timed runs per measurement (min is reported)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="CamVid folder (train/, test/)")
    p.add_argument("--quick", action="store_true", help="2 images, small subset, K=2: a smoke run")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._worker:
        print(_RESULT + json.dumps(worker(json.loads(args._worker))), flush=True)
        return
    if args.quick:  # new defaults; options given explicitly still win
        p.set_defaults(n_images=2, batch_size=2, pixels_per_image=500, n_draws=2)
        args = p.parse_args(argv)

    results = {}
    for mode in args.modes:
        results[mode] = r = measure(mode, args)
        if len(results) == 1:
            print(f"model: {r['model']}")
            print(f"images: {r['data']}")
            print(
                f"torch threads {r['threads']} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
                f"--threads {args.threads}), cpu cores {os.cpu_count()}, device {r['device']}, dtype {args.dtype}, "
                f"timesteps {r['timesteps']}, D={r['D']}, batch_size {r['batch_size']} images "
                f"({r['batch_size'] * len(r['timesteps'])} samples per forward, --batch-size {args.batch_size}), "
                f"{args.pixels_per_image} px/image for subsets, K={args.n_draws}"
            )
            print("each mode in a fresh subprocess; MB = peak RSS above the RSS before the call (includes output)")
            head = (
                f"{'mode':<19} {'images':>6} {'rows x D':>16} {'feat_s':>8} {'img/s':>7} {'peak_MB':>8} "
                f"{'out_MB':>7} {'bare_s':>8} {'feat/bare':>9}"
            )
            print(head)
            print("-" * len(head))
        rows = " x ".join(str(s) for s in r["shape"])
        print(
            f"{mode:<19} {r['n_images']:>6} {rows:>16} {r['time']:>8.2f} {r['n_images'] / r['time']:>7.2f} "
            f"{r['mem_mb']:>8.0f} {r['out_mb']:>7.0f} {r['bare']:>8.2f} {r['time'] / r['bare']:>9.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
