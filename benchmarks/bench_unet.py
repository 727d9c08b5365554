"""Benchmark: the embedded UNet's forward pass on this machine -- the floor under every featurizing cost.

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_unet.py
    .venv/bin/python benchmarks/bench_unet.py --samples 3 6 24 --threads 1 2 --variants plain channels_last compile

What it prints
--------------
1. The work of one 128 x 128 sample: parameters and GFLOP of one forward
   (``torch.utils.flop_counter``; a multiply-add counts 2), split by operator.
2. For every thread count x samples per forward x variant: the best of
   ``--repeat`` timings of ``--calls`` forwards under ``torch.inference_mode``,
   as seconds per sample and achieved GFLOP/s. Variants: ``plain`` (the
   featurizer's way), ``channels_last`` (model and input in NHWC memory
   format), ``compile`` (``torch.compile`` with the default inductor backend;
   its compile seconds are printed; needs a C++ compiler, takes minutes).
3. What a full CamVid ``two_stage`` run needs from the network at the default
   settings -- 330 pool images x 3 timesteps, 330 x 3 x 5 noisy draws and
   233 test images x 3 timesteps, 6,639 samples -- at the fastest plain
   timing.
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import load_model

FULL_RUN_SAMPLES = 330 * 3 + 330 * 3 * 5 + 233 * 3


def load_unet():
    """(UNet, label): a fresh copy of the benchmarks' model (variants convert or compile their own)."""
    (unet, _), label = load_model()
    return unet.eval().requires_grad_(False), label


def flops_per_sample(unet, size: int) -> tuple[float, dict]:
    from torch.utils.flop_counter import FlopCounterMode

    x, t = torch.randn(1, 3, size, size), torch.tensor([50])
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        unet(x, t)
    per_op = {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}
    return float(counter.get_total_flops()), per_op


def time_forward(fn, x, t, calls: int, repeat: int) -> float:
    """Best seconds per sample over ``repeat`` timings of ``calls`` forwards (after 2 warm-up calls)."""
    with torch.inference_mode():
        for _ in range(2):
            fn(x, t)
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn(x, t)
            best = min(best, (time.perf_counter() - t0) / (calls * len(x)))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--samples", type=int, nargs="+", default=[6], help="samples per forward")
    ap.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    ap.add_argument("--variants", nargs="+", default=["plain", "channels_last"],
                    choices=["plain", "channels_last", "compile"])
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    unet, label = load_unet()
    print(f"model: {label}")
    n_params = sum(p.numel() for p in unet.parameters())
    flops, per_op = flops_per_sample(unet, args.size)
    print(f"embedded UNet: {n_params / 1e6:.2f}M parameters, {flops / 1e9:.2f} GFLOP per "
          f"{args.size} x {args.size} sample (" + ", ".join(f"{k} {v / 1e9:.2f}" for k, v in per_op.items()) + ")")

    best_plain = float("inf")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for n in args.samples:
            x = torch.randn(n, 3, args.size, args.size)
            t = torch.tensor([50, 150, 250] * (n // 3 + 1))[:n]
            for variant in args.variants:
                model, xv, note = unet, x, ""
                if variant == "channels_last":
                    model = load_unet()[0].to(memory_format=torch.channels_last)
                    xv = x.contiguous(memory_format=torch.channels_last)
                elif variant == "compile":
                    model = torch.compile(load_unet()[0])
                    t0 = time.perf_counter()
                    with torch.inference_mode():
                        model(xv, t)
                    note = f"  (compile {time.perf_counter() - t0:.1f} s)"
                sec = time_forward(model, xv, t, args.calls, args.repeat)
                if variant == "plain":
                    best_plain = min(best_plain, sec)
                print(f"threads {threads}  samples/forward {n:3d}  {variant:13s}  {sec:.4f} s/sample  "
                      f"{flops / sec / 1e9:6.1f} GFLOP/s{note}")

    if best_plain < float("inf"):
        print(f"full CamVid two_stage run at the defaults: {FULL_RUN_SAMPLES:,} samples x {best_plain:.4f} s = "
              f"{FULL_RUN_SAMPLES * best_plain / 60:.1f} min of bare forwards "
              f"({FULL_RUN_SAMPLES * flops / 1e12:.1f} TFLOP)")


if __name__ == "__main__":
    main()
