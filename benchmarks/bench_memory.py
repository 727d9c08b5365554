"""Benchmark: peak resident memory of a whole run against the pool's size, at the paper's D = 6144.

Run (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_memory.py                       # 40, 160, 367 images
    OMP_NUM_THREADS=1 python benchmarks/bench_memory.py --sizes 40 367 --candidates 200 --rounds 2
    OMP_NUM_THREADS=1 python benchmarks/bench_memory.py --adm-forward        # one ADM forward: D and its RSS

Each pool size runs :func:`skal_seg.benchmark.runner.run_experiment` in a fresh
subprocess (``two_stage`` by default, ``--strategy`` for others) on synthetic
``--size`` x ``--size`` images with an on-disk feature cache in a temporary
folder, and prints per phase the peak RSS (all of it), the peak anonymous
memory (``RssAnon``: heap, numpy and torch buffers) and the peak file-backed
memory (``RssFile``: pages of memory-mapped cache files), sampled every 5 ms
from ``/proc/self/status``, then the child's ``ru_maxrss``.

Features: the paper's ADM network (``blocks="paper"``, D = 6144) costs
several seconds per 256 x 256 sample on this CPU, so hundreds of pool images
cannot be featurized here in benchmark time. The pool runs therefore use
:class:`StubFeaturizer`, a :class:`~skal_seg.featurizer.DiffusionFeaturizer`
whose ``transform`` / ``noisy_view_fn`` return pseudo-random unit rows of
the same shape and dtype (D = 6144, float16) without a network: everything
else in the run (cache, herding, classifier, eDALD, evaluation) is the real
code. ``--adm-forward`` builds the random-initialised ADM 256 x 256
architecture (:mod:`skal_seg.diffusion.adm`), checks that ``blocks="paper"`` gives
D = 6144 and reports the peak RSS of featurizing one image: a constant that
adds to every pool size (the network's weights and one forward's
activations).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time

import numpy as np
from _common import RESULT_PREFIX, run_worker


def _status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(line.split()[1]) / 1024
    return out


class PhaseSampler:
    """Samples /proc/self/status every ``interval`` s in a thread; keeps per-phase maxima (MB)."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.phase = "setup"
        self.peaks: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _record(self):
        s = _status()
        rss, anon, file = s.get("VmRSS", 0), s.get("RssAnon", 0), s.get("RssFile", 0) + s.get("RssShmem", 0)
        p = self.peaks.setdefault(self.phase, {"rss": 0.0, "anon": 0.0, "file": 0.0})
        p["rss"], p["anon"], p["file"] = max(p["rss"], rss), max(p["anon"], anon), max(p["file"], file)

    def _loop(self):
        while not self._stop.is_set():
            self._record()
            time.sleep(self.interval)

    def set(self, phase: str):
        self._record()
        self.phase = phase
        self._record()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._record()


def stub_featurizer_class():
    from skal_seg.featurizer import DiffusionFeaturizer

    class StubFeaturizer(DiffusionFeaturizer):
        """The featurizer's output (unit rows, D columns, float16) without a network.

        A row depends only on its image's bytes, its pixel and the noise draw,
        so any batching gives the same values, like the real featurizer.
        """

        def __init__(self, model="stub", timesteps=(50, 150, 250), blocks="paper", output_dtype="float16",
                     progress=False, n_features=6144):
            self.model = model
            self.timesteps = timesteps
            self.blocks = blocks
            self.output_dtype = output_dtype
            self.progress = progress
            self.n_features = n_features

        def fit(self, images=None, y=None):
            self.unet_ = None
            self.n_features_out_ = self.feature_dim_ = int(self.n_features)
            self.timesteps_ = tuple(self.timesteps)
            return self

        def _rows(self, image, pixels, draw):
            seed = int(np.frombuffer(image.tobytes()[:4096], dtype=np.uint8).sum()) + 7919 * len(image.tobytes())
            out = np.empty((len(pixels), self.n_features_out_), dtype=np.float16)
            # pixel-level seeds: the same pixel gets the same row in any request
            base = np.random.default_rng([seed, draw]).standard_normal(self.n_features_out_, dtype=np.float32)
            for i, p in enumerate(pixels):
                r = np.random.default_rng([seed, int(p), draw]).standard_normal(self.n_features_out_, dtype=np.float32)
                r += base
                out[i] = r / np.linalg.norm(r)
            return out

        def transform(self, images, pixels=None):
            images = list(images)
            if pixels is None:
                pixels = [np.arange(img.shape[0] * img.shape[1]) for img in images]
            n = sum(len(p) for p in pixels)
            out = np.empty((n, self.n_features_out_), dtype=np.float16)
            row = 0
            for img, pix in zip(images, pixels):
                out[row : row + len(pix)] = self._rows(img, pix, 0)
                row += len(pix)
            return out

        def noisy_view_fn(self, images, pixels=None, n_draws=5, random_state=None):
            stub = self
            offsets = np.concatenate([[0], np.cumsum([len(p) for p in pixels])]).astype(np.int64)

            class Views:
                def __init__(self):
                    self.n_draws = n_draws
                    self.n_rows = int(offsets[-1])

                def __call__(self, indices):
                    indices = np.asarray(indices, dtype=np.int64)
                    out = np.empty((n_draws, len(indices), stub.n_features_out_), dtype=np.float16)
                    img_of = np.searchsorted(offsets, indices, side="right") - 1
                    for j, (i, row) in enumerate(zip(img_of, indices)):
                        pix = [pixels[i][row - offsets[i]]]
                        for k in range(n_draws):
                            out[k, j] = stub._rows(images[i], pix, 1 + k)[0]
                    return out

            return Views()

    return StubFeaturizer


def synthetic(n: int, size: int, seed: int):
    from skal_seg.data import SegmentationSplit

    rng = np.random.default_rng(seed)
    labels = np.zeros((n, size, size), dtype=np.uint8)
    labels[:, :, size // 2 :] = 1
    for i in range(n):
        y0, x0 = rng.integers(0, size // 2, size=2)
        labels[i, y0 : y0 + size // 3, x0 : x0 + size // 3] = 2 + i % 9
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    return SegmentationSplit(images, labels, tuple(f"s{seed}_{i}" for i in range(n)))


def worker(args) -> dict:
    import torch

    torch.set_num_threads(1)
    from skal_seg.benchmark.runner import run_experiment
    from skal_seg.engine.settings import ExperimentConfig

    pool, test = synthetic(args.images, args.size, 0), synthetic(args.test_images, args.size, 1)
    featurizer = stub_featurizer_class()().fit()
    config = ExperimentConfig(
        strategy=args.strategy, rounds=args.rounds, candidates_per_image=args.candidates,
        budget_per_round=args.budget, local_budget=args.local_budget, n_draws=args.draws,
        eval_stride=args.eval_stride, classifier={"max_epochs": 2, "min_steps": 20},
    )
    sampler = PhaseSampler()

    def phased(name, fn):
        def wrapped(*a, **k):
            sampler.set(name)
            try:
                return fn(*a, **k)
            finally:
                sampler.set("other")
        return wrapped

    for name, attr in (("features", "pool_features"), ("query", "_query"), ("train", "train_classifier"),
                       ("evaluate", "evaluate")):
        setattr(exp, attr, phased(name, getattr(exp, attr)))
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp, sampler:
        records = run_experiment(config, pool, test, os.path.join(tmp, "out"), featurizer=featurizer,
                                     cache_dir=os.path.join(tmp, "cache"), progress=False, log=lambda s: None)
        cache_mb = sum(os.path.getsize(os.path.join(tmp, "cache", f)) for f in os.listdir(os.path.join(tmp, "cache")))
    labeled = json.loads(json.dumps([r["labeled_pixels"] for r in records]))
    return {
        "images": args.images, "rows": args.images * args.candidates, "seconds": time.perf_counter() - t,
        "phases": sampler.peaks, "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cache_mb_apparent": cache_mb / 2**20, "labeled": labeled, "miou": [r["miou"] for r in records],
    }


def adm_forward(args) -> dict:
    import torch
    from diffusers import UNet2DModel

    from skal_seg.diffusion.adm import AdmArchitecture, adm_scheduler
    from skal_seg.featurizer import DiffusionFeaturizer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    before = _status()["VmRSS"]
    arch = AdmArchitecture(  # guided-diffusion's 256x256 unconditional model, random weights
        in_channels=3, out_channels=6, model_channels=256, channel_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
        attention_levels=(False, False, False, True, True, True), use_scale_shift_norm=True, resblock_updown=True,
        num_classes=None, num_head_channels=64, attention_order="legacy", image_size=256)
    unet = UNet2DModel(**arch.diffusers_config()).eval().requires_grad_(False)
    feat = DiffusionFeaturizer(model=(unet, adm_scheduler()), blocks="paper", output_dtype="float16",
                               batch_size=1, progress=False).fit()
    model_mb = _status()["VmRSS"] - before
    img = synthetic(1, 256, 0).images
    pix = [np.sort(np.random.default_rng(0).choice(256 * 256, args.candidates, replace=False))]
    t = time.perf_counter()
    X = feat.transform(img, pixels=pix)
    return {"D": int(feat.n_features_out_), "rows": int(X.shape[0]), "params_M": sum(p.numel() for p in unet.parameters()) / 1e6,
            "model_rss_mb": model_mb, "seconds_per_image": time.perf_counter() - t,
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[40, 160, 367], help="pool images per run")
    p.add_argument("--size", type=int, default=64, help="image side (px)")
    p.add_argument("--candidates", type=int, default=200, help="candidate pixels per image")
    p.add_argument("--test-images", type=int, default=8)
    p.add_argument("--eval-stride", type=int, default=4)
    p.add_argument("--strategy", default="two_stage")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--budget", type=int, default=20, help="pixels per round (the same for every pool size)")
    p.add_argument("--local-budget", type=int, default=10)
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--tmp", default=None, help="where the temporary feature cache goes")
    p.add_argument("--adm-forward", action="store_true", help="one random-init ADM forward instead of pool runs")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--images", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(RESULT_PREFIX + json.dumps(adm_forward(args) if args.adm_forward else worker(args)), flush=True)
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", ".")}
    base = [__file__, "--worker", "--size", str(args.size), "--candidates", str(args.candidates),
            "--test-images", str(args.test_images), "--eval-stride", str(args.eval_stride), "--strategy", args.strategy,
            "--rounds", str(args.rounds), "--budget", str(args.budget), "--local-budget", str(args.local_budget),
            "--draws", str(args.draws)] + (["--tmp", args.tmp] if args.tmp else [])
    if args.adm_forward:
        print(json.dumps(run_worker(base + ["--adm-forward"], "adm forward", env), indent=1))
        return
    print(f"{args.strategy}, {args.rounds} rounds, {args.candidates} candidates/image, D = 6144 (stub features), "
          f"{args.size}x{args.size} images, {args.test_images} test images, eval stride {args.eval_stride}")
    print("images | rows | feature MB | phase: peak RSS / anon / file MB ... | ru_maxrss MB | s")
    for n in args.sizes:
        r = run_worker(base + ["--images", str(n)], f"{n} images", env)
        phases = "  ".join(f"{k}: {v['rss']:.0f}/{v['anon']:.0f}/{v['file']:.0f}" for k, v in r["phases"].items())
        print(f"{n} | {r['rows']} | {r['rows'] * 6144 * 2 / 2**20:.0f} | {phases} | {r['ru_maxrss_mb']:.0f} | "
              f"{r['seconds']:.0f}", flush=True)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
