"""What a labeling project keeps in its feature cache, round by round.

Creates a project over the first ``--images`` images of a CamVid-style split
(``NAME.png`` beside ``NAME_label.png``), asks ``--budget`` pixels a round and
answers them from the label maps (the simulated annotator), then prints the
cache's size per kind of file and the seconds of each query:

    python benchmarks/bench_project_cache.py --data ../shared/data/camvid/test --images 30 --rounds 3

Issue 27's target: a 30-image project at the 128 px working size keeps at most 150 MB.
Run it with ``PYTHONPATH`` on another checkout to measure that commit's code.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from skal_seg.labeling import LabelingProject

try:
    from skal_seg.benchmark.simulate import answer_from_label_maps
except ImportError:  # a checkout from before the benchmark package
    from skal_seg.labeling.simulate import answer_from_label_maps


def cache_bytes(folder: Path) -> dict[str, int]:
    """Bytes of the cache's files by kind (the file name's prefix: pool, noisy, grid, dense, extra, ...)."""
    sizes: dict[str, int] = defaultdict(int)
    for f in (folder / "cache").rglob("*"):
        if f.is_file():
            top = f.relative_to(folder / "cache").parts[0]
            sizes[top.split("-")[0].split(".")[0]] += f.stat().st_size
    return dict(sizes)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a folder of NAME.png beside NAME_label.png")
    p.add_argument("--images", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--budget", type=int, default=30)
    p.add_argument("--size", type=int, default=128, help="working size")
    args = p.parse_args()
    names = sorted(f.name for f in args.data.glob("*.png") if not f.stem.endswith("_label"))[: args.images]
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        for name in names:
            (images / name).symlink_to((args.data / name).resolve())
        classes = [f"class{i}" for i in range(11)]
        project = LabelingProject.init(Path(tmp) / "project", images, classes, working_size=args.size)
        rows = []
        for r in range(args.rounds):
            t = time.perf_counter()
            project.query(args.budget)
            seconds = time.perf_counter() - t
            answer_from_label_maps(project, lambda path: np.asarray(Image.open(args.data / (Path(path).stem + "_label.png"))))
            sizes = cache_bytes(project.folder)
            rows.append({"round": r, "query_s": round(seconds, 1), "cache_mb": round(sum(sizes.values()) / 1e6, 1),
                         **{f"{k}_mb": round(v / 1e6, 1) for k, v in sorted(sizes.items())}})
            print(json.dumps(rows[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
