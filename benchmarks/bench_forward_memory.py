"""Peak memory of one UNet forward against the input size: the figure behind DiffusionFeaturizer's memory check.

For each ``--sizes`` value a fresh process fits the embedded model's
featurizer at that input size (batch 1, one timestep: one sample per
forward), featurizes one image and prints the growth of its peak resident
memory over the fitted state, per input pixel, and in maps of the last
decoder stage's input (the first two stages' channels, float32), the unit
of ``skal_seg.featurizer._FORWARD_MAPS``.

    OMP_NUM_THREADS=1 python benchmarks/bench_forward_memory.py --sizes 256 512 1024
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import numpy as np


def one(size: int) -> dict:
    from skal_seg.featurizer import DiffusionFeaturizer

    f = DiffusionFeaturizer(input_size=size, progress=False, batch_size=1, timesteps=[50],
                            output_dtype="float16").fit()
    image = np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    f.transform(image, pixels=[np.arange(10)])
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    map_bytes = 4 * sum(f.unet_.config.block_out_channels[:2]) * size * size
    return {"input_size": size, "peak_growth_mb": round(growth / 1e6), "bytes_per_pixel": round(growth / size**2),
            "maps": round(growth / map_bytes, 2)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one)))
        return
    for size in args.sizes:  # a process each: the peak resident size only grows
        out = subprocess.run([sys.executable, __file__, "--one", str(size)], capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
