"""Benchmark: MaxHerdingSampler (lazy greedy, blocked kernel) against a dense textbook greedy.

Run (from the repository root; one torch/BLAS thread is much faster on a busy CPU)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_herding.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_herding.py --real      # + real CamVid features
    .venv/bin/python benchmarks/bench_herding.py --real-features CACHE/pool-XXXX.npy  # the runner's cached pool
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_herding.py --quick     # smoke run, under a minute

What it prints
--------------
1. A table "select --n-select of N" for N in ``--sizes`` (default 2000 5000
   10000 20000) on D = ``--dim`` (256) float32 random unit vectors: wall time of
   ``MaxHerdingSampler(bandwidth=bw).select`` and of the dense reference, their
   ratio (reference / sampler, > 1 means the sampler is faster), the peak
   memory of each (MB), whether the two selections are identical, and the
   relative difference of the total coverage gain of the two selections.
2. The same for the "global stage": ``--global-n`` (20000) candidates
   conditioned on ``--global-labeled`` (5000) labeled rows (``X_labeled``).
3. With ``--real``: the table of 1. on real diffusion features (D = the
   featurizer's dimension, 1056 by default) of candidate pixels of a few
   CamVid train images. When the embedded model is not exported yet
   (``skal_seg/assets/embedded_ddpm/unet``), a random-init UNet with
   ``EMBEDDED_UNET_CONFIG`` is used instead and labeled UNTRAINED.

The bandwidth ``bw`` is fixed: :func:`skal_seg.herding.auto_bandwidth` computed
once per data set (on its largest N, ``random_state=0``) and given to both
methods, so both optimise the same objective.

Dense reference: the full N x N RBF kernel ``exp(-(||x - y|| / bw)^2)`` in
numpy float32, then at every step the gain of every candidate is recomputed as
the mean over rows of ``max(coverage, kernel column)`` (accumulated in float64;
the max is taken over row blocks of <= 64 MB so that only one N x N array is
held), argmax, lowest index on ties. It is skipped where the N x N float32
kernel exceeds ``--max-reference-gb`` (default 4).

Memory: every measurement runs in a fresh Python subprocess. Its peak memory
is the resident-set high-water mark during the measured call minus the RSS
after imports, data creation and a warm-up call (the high-water mark is reset
through /proc/self/clear_refs on Linux; elsewhere ru_maxrss is used, which can
overstate the peak when the set-up peaked higher). This sees torch CPU
allocations, which tracemalloc does not. Timings are a single run unless
``--repeat`` is given (then the minimum).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import DEFAULT_DATA, PeakRSS, run_worker, unit_rows
from _common import RESULT_PREFIX as _RESULT


def load_data(spec: dict) -> tuple[np.ndarray, np.ndarray | None]:
    if spec["source"] == "random":
        X = unit_rows(spec["n"], spec["dim"], spec["seed"])
        L = unit_rows(spec["n_labeled"], spec["dim"], spec["seed"] + 1) if spec.get("n_labeled") else None
    else:
        X = np.ascontiguousarray(np.load(spec["path"])[: spec["n"]], dtype=np.float32)
        L = None
    return X, L


# ----------------------------------------------------------------------------- reference


def dense_rbf(A: np.ndarray, B: np.ndarray, bw: float) -> np.ndarray:
    """exp(-(||a - b|| / bw)^2), float32, built in place in one (len(A), len(B)) array."""
    K = A @ B.T
    K *= -2.0
    K += (A * A).sum(1)[:, None]
    K += (B * B).sum(1)[None, :]
    np.maximum(K, 0.0, out=K)
    K *= np.float32(-1.0 / bw**2)
    np.exp(K, out=K)
    return K


def reference_greedy(X, n_pick, bw, X_labeled=None):
    """Textbook dense greedy for generalized coverage; returns (picks, gains)."""
    n = len(X)
    K = dense_rbf(X, X, bw)
    cov = np.zeros(n, dtype=np.float32)
    if X_labeled is not None and len(X_labeled):
        for a in range(0, len(X_labeled), 1024):
            cov = np.maximum(cov, dense_rbf(X, X_labeled[a : a + 1024], bw).max(1))
    rows = max(1, (64 << 20) // (4 * n))  # row block of the max: <= 64 MB temporary
    chosen = np.zeros(n, dtype=bool)
    picks, gains = [], []
    for _ in range(n_pick):
        score = np.zeros(n, dtype=np.float64)
        for a in range(0, n, rows):
            score += np.maximum(K[a : a + rows], cov[a : a + rows, None]).sum(0, dtype=np.float64)
        score /= n
        score[chosen] = -np.inf
        j = int(np.argmax(score))  # first maximum = lowest index on ties
        gains.append(float(score[j] - cov.mean(dtype=np.float64)))
        picks.append(j)
        chosen[j] = True
        cov = np.maximum(cov, K[:, j])
    return np.asarray(picks), np.asarray(gains)


# ----------------------------------------------------------------------------- worker


def worker(job: dict) -> dict:
    """One measurement in this (fresh) process: set up, warm up, then time + peak memory."""
    X, L = load_data(job["data"])
    bw, k = job["bandwidth"], job["n_select"]
    if job["role"] == "sampler":
        import torch

        from skal_seg.herding import MaxHerdingSampler

        kw = dict(bandwidth=bw, max_memory_mb=job["max_memory_mb"], device=job["device"])
        MaxHerdingSampler(**kw).select(X[: min(len(X), 256)], 2)  # warm-up (thread pools, kernels)
        threads = torch.get_num_threads()

        def run():
            s = MaxHerdingSampler(**kw)
            return s.select(X, k, X_labeled=L), s.gains_

    else:
        reference_greedy(X[: min(len(X), 256)], 2, bw)  # warm-up
        threads = None

        def run():
            return reference_greedy(X, k, bw, X_labeled=L)

    times = []
    with PeakRSS() as mem:
        for _ in range(job["repeat"]):
            t0 = time.perf_counter()
            picks, gains = run()
            times.append(time.perf_counter() - t0)
    return {
        "time": min(times),
        "mem_mb": mem.mb,
        "picks": [int(p) for p in picks],
        "gains": [float(g) for g in gains],
        "torch_threads": threads,
    }


def measure(role: str, data: dict, args, bw: float) -> dict:
    job = {
        "role": role,
        "data": data,
        "bandwidth": bw,
        "n_select": args.n_select,
        "max_memory_mb": args.max_memory_mb,
        "device": args.device,
        "repeat": args.repeat,
    }
    return run_worker([__file__, "--_worker", json.dumps(job)], role)


# ----------------------------------------------------------------------------- driver


def compare(s: dict, r: dict | None) -> str:
    if r is None:
        return ""
    if s["picks"] == r["picks"]:
        return "yes"
    first = next(i for i, (a, b) in enumerate(zip(s["picks"], r["picks"])) if a != b)
    return f"no (from pick {first})"


def table_rows(title: str, cases, args, bw: float) -> None:
    """cases: list of (label, n, data_spec)."""
    print(f"\n{title}")
    head = (
        f"{'N':>7} {'labeled':>7} {'sampler_s':>10} {'ref_s':>9} {'ref/samp':>9} "
        f"{'sampler_MB':>11} {'ref_MB':>9}  {'identical':<18} {'gain_sum_rel_diff':>17}"
    )
    print(head)
    print("-" * len(head))
    for n, n_lab, data in cases:
        s = measure("sampler", data, args, bw)
        ref_gb = n * n * 4 / 2**30
        r = measure("reference", data, args, bw) if ref_gb <= args.max_reference_gb else None
        if r is None:
            ref_s, ratio, ref_mb = "skipped", "-", f"(>{args.max_reference_gb:g}GB)"
            same, rel = f"(N x N = {ref_gb:.1f} GB)", ""
        else:
            ref_s, ratio, ref_mb = f"{r['time']:.3f}", f"{r['time'] / s['time']:.1f}x", f"{r['mem_mb']:.0f}"
            same = compare(s, r)
            gs, gr = sum(s["gains"]), sum(r["gains"])
            rel = f"{abs(gs - gr) / max(abs(gr), 1e-300):.1e}"
        print(
            f"{n:>7} {n_lab:>7} {s['time']:>10.3f} {ref_s:>9} {ratio:>9} "
            f"{s['mem_mb']:>11.0f} {ref_mb:>9}  {same:<18} {rel:>17}",
            flush=True,
        )


def real_features(args, n_rows: int) -> tuple[np.ndarray, str]:
    """Diffusion features of random candidate pixels of the first --real-images CamVid train images."""
    import torch
    from diffusers import UNet2DModel

    from skal_seg.data import load_split, sample_dataset_dir
    from skal_seg.diffusion.embedded import EMBEDDED_UNET_CONFIG
    from skal_seg.featurizer import DiffusionFeaturizer
    from skal_seg.diffusion.models import ModelNotAvailableError, default_scheduler, load_diffusion_model

    try:
        model = load_diffusion_model("embedded")
        label = "embedded DDPM (trained)"
    except ModelNotAvailableError:
        torch.manual_seed(0)
        model = (UNet2DModel(**EMBEDDED_UNET_CONFIG).eval().requires_grad_(False), default_scheduler())
        label = "UNTRAINED random-init UNet (EMBEDDED_UNET_CONFIG; embedded weights not exported yet)"
    root = Path(args.data)
    if not (root / "train").is_dir():
        root = sample_dataset_dir()
        label += f"; {args.data} missing, using the packaged sample"
    split = load_split(root, "train", size=args.real_size, limit=args.real_images)
    n_img = len(split)
    per_image = min(args.real_size**2, math.ceil(n_rows / n_img))
    rng = np.random.default_rng(0)
    pixels = [rng.choice(args.real_size**2, per_image, replace=False) for _ in range(n_img)]
    feat = DiffusionFeaturizer(model=model, device=args.device, progress=False).fit()
    t0 = time.perf_counter()
    F = feat.transform(split.images, pixels=pixels)
    label += (
        f"; {n_img} images at {args.real_size}px root={root}, {per_image} px/image, "
        f"D={F.shape[1]}, features in {time.perf_counter() - t0:.1f} s"
    )
    return F[rng.permutation(len(F))], label


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000, 20000], help="candidate counts N")
    p.add_argument("--n-select", type=int, default=50, help="rows to select")
    p.add_argument("--dim", type=int, default=256, help="feature dimension D of the random data")
    p.add_argument("--global-n", type=int, default=20000, help="candidates in the global-stage run (0 = skip)")
    p.add_argument("--global-labeled", type=int, default=5000, help="labeled rows in the global-stage run")
    p.add_argument("--max-reference-gb", type=float, default=4.0, help="skip the reference above this N x N size")
    p.add_argument("--max-memory-mb", type=float, default=2048, help="MaxHerdingSampler(max_memory_mb=), its default")
    p.add_argument("--device", default="cpu", help="torch device of the sampler (and featurizer with --real)")
    p.add_argument("--repeat", type=int, default=1, help="timed runs per measurement (min is reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--real", action="store_true", help="also benchmark on real CamVid diffusion features")
    p.add_argument("--real-features", help="real features from a pool matrix (.npy) the runner cached, instead of --real")
    p.add_argument("--real-images", type=int, default=8, help="train images the real candidates come from")
    p.add_argument("--real-size", type=int, default=128, help="working image size for --real")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="CamVid folder (train/, test/)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of a few tens of seconds")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._worker:
        print(_RESULT + json.dumps(worker(json.loads(args._worker))), flush=True)
        return
    if args.quick:  # new defaults; options given explicitly still win
        p.set_defaults(
            sizes=[500, 1500], n_select=10, global_n=2000, global_labeled=500, real_images=2, real_size=64
        )
        args = p.parse_args(argv)

    import torch

    from skal_seg.herding import auto_bandwidth

    print(
        f"python {sys.version.split()[0]}, torch {torch.__version__}, torch threads {torch.get_num_threads()} "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), numpy {np.__version__}, "
        f"cpu cores {os.cpu_count()}, sampler device {args.device}, max_memory_mb {args.max_memory_mb:g}"
    )
    print(
        "times: wall seconds of one select() (min of --repeat); MB: peak RSS above the post-setup RSS, "
        "each in a fresh subprocess; ref/samp > 1 = sampler faster"
    )

    # 1. random unit vectors
    big = max(args.sizes + [args.global_n])
    bw = auto_bandwidth(unit_rows(big, args.dim, args.seed), random_state=0)
    print(f"\nrandom unit vectors: D={args.dim}, bandwidth={bw:.4f} (auto_bandwidth of N={big}, fixed for all runs)")
    cases = [
        (n, 0, {"source": "random", "n": n, "dim": args.dim, "seed": args.seed})
        for n in args.sizes
        if n >= args.n_select
    ]
    table_rows(f"select {args.n_select} of N (random, D={args.dim})", cases, args, bw)

    # 2. global stage: conditioned on labeled rows
    if args.global_n > 0:
        data = {
            "source": "random", "n": args.global_n, "dim": args.dim, "seed": args.seed,
            "n_labeled": args.global_labeled,
        }
        table_rows(
            f"global stage: select {args.n_select} of N={args.global_n} given X_labeled of "
            f"{args.global_labeled} rows (random, D={args.dim})",
            [(args.global_n, args.global_labeled, data)],
            args,
            bw,
        )

    # 3. real features
    if args.real or args.real_features:
        if args.real_features:  # a pool matrix cached by skal-seg run --cache (image-major rows)
            F = np.ascontiguousarray(np.load(args.real_features, mmap_mode="r")[: max(args.sizes)], dtype=np.float32)
            label = f"first {len(F)} rows of {args.real_features}"
        else:
            F, label = real_features(args, max(args.sizes))
        print(f"\nreal features: {label}")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "features.npy")
            np.save(path, F)
            bw_real = auto_bandwidth(F, random_state=0)
            print(f"bandwidth={bw_real:.4f} (auto_bandwidth of all {len(F)} rows, fixed)")
            sizes = sorted({min(n, len(F)) for n in args.sizes if n >= args.n_select})
            cases = [(n, 0, {"source": "file", "path": path, "n": n}) for n in sizes]
            table_rows(f"select {args.n_select} of N (real, D={F.shape[1]})", cases, args, bw_real)


if __name__ == "__main__":
    main()
