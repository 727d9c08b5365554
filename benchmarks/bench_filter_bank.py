"""Seconds to featurize one DRIVE image (565 x 584) with FilterBankFeaturizer, per configuration.

Times ``transform`` of every pixel (and of one pixel: the filters run on the
whole image either way) of ``training/images/21_training.tif``, the median of
``--repeats`` calls after one warm-up, on the threads the environment allows
(run with ``OMP_NUM_THREADS=1``; scipy.ndimage itself is single-threaded).

    OMP_NUM_THREADS=1 python benchmarks/bench_filter_bank.py
    OMP_NUM_THREADS=1 python benchmarks/bench_filter_bank.py --configs default ilastik rgb
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from probe_filter_bank import CONFIGS, REPO
from skal_seg.filter_bank import FilterBankFeaturizer


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=(REPO / ".." / "shared" / "data" / "drive").resolve())
    ap.add_argument("--configs", nargs="+", default=["default"], choices=sorted(CONFIGS))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    image = np.asarray(Image.open(args.data / "training" / "images" / "21_training.tif").convert("RGB"))[None]
    for name in args.configs:
        fb = FilterBankFeaturizer(progress=False, **CONFIGS[name]).fit()
        print(json.dumps({
            "config": name, "n_features": fb.n_features_out_, "image": list(image.shape[1:3]),
            "all_pixels_s": round(median_seconds(lambda: fb.transform(image), args.repeats), 3),
            "one_pixel_s": round(median_seconds(lambda: fb.transform(image, pixels=[[0]]), args.repeats), 3),
        }), flush=True)


if __name__ == "__main__":
    main()
