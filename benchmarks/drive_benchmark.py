"""The DRIVE benchmark (issue 26): feature sets x heads x strategies, validation first, then test.

DRIVE as distributed (``../shared/data/drive``), at native resolution
(``--size 565``: 584 x 565), evaluated inside the field of view on every
second pixel in both directions (``--eval-stride 2``), 10 rounds of 20
labeled pixels, 2,500 candidates per image, 3 seeds, with the full-supervision
ceiling (every candidate pixel: 50,000 on the 20 training images). Each cell
of the grid is one ``skal-seg run`` into ``OUT/STAGE/FEATURES-HEAD``; all of
them share one feature cache (``OUT/cache``) and resume (``--resume``), so
rerunning the command after an interruption continues.

* ``val``: the 20 training images split 15 / 5 (``--val-fraction 0.25
  --eval-split val``, the same 5 for every run): chooses the features and
  the head, never reading the test images.
* ``test``: the 20 training images as the pool, the 20 test images
  scored against the first observer.

    python benchmarks/drive_benchmark.py val --out /work/drive --features filters --heads mlp forest
    python benchmarks/drive_benchmark.py test --out /work/drive --features filters --heads forest \\
        --strategies random maxherding uherding
    python benchmarks/drive_benchmark.py table --out /work/drive     # every finished cell's summary

``--adapted DIR`` names the model folder of ``skal-seg adapt`` for the
``adapted`` and ``adapted+filters`` feature sets; arguments after ``--`` go to
every run unchanged (e.g. ``-- --tile 128``).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

DRIVE = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "drive").resolve()
DATA_FLAGS = [
    "--images", "training/images/{id}_training.tif", "--labels", "training/1st_manual/{id}_manual1.gif",
    "--roi", "training/mask/{id}_training_mask.gif",
    "--test-images", "testing/images/{id}_test.tif", "--test-labels", "testing/1st_manual/{id}_manual1.gif",
    "--test-roi", "testing/mask/{id}_test_mask.gif", "--label-map", "0:background,255:vessel",
]
PROTOCOL = ["--size", "565", "--rounds", "10", "--budget", "20", "--candidates-per-image", "2500",
            "--eval-stride", "2", "--full-supervision", "--quiet", "--resume"]
STAGES = {"val": ["--val-fraction", "0.25", "--eval-split", "val"], "test": ["--val-fraction", "0"]}
FEATURE_SETS = ("embedded", "adapted", "filters", "embedded+filters", "adapted+filters")
#: Strategies that need noisy diffusion draws, which the filter bank alone does not have.
NEEDS_NOISY = ("bald", "edald", "two_stage")


def features_flag(name: str, adapted: str | None) -> list[str]:
    if name.startswith("adapted"):
        if adapted is None:
            raise SystemExit(f"--features {name} needs --adapted MODEL_DIR")
        return ["--features", name.replace("adapted", adapted)]
    return ["--features", name]


def commands(args) -> list[list[str]]:
    out = []
    for features in args.features:
        strategies = [s for s in args.strategies if not (features == "filters" and s in NEEDS_NOISY)]
        for head in args.heads:
            cell = Path(args.out) / args.stage / f"{features}-{head}"
            out.append(["skal-seg", "run", "--data", str(args.data), *DATA_FLAGS, *PROTOCOL, *STAGES[args.stage],
                        *features_flag(features, args.adapted), "--classifier", head,
                        "--strategies", *strategies, "--seeds", *map(str, args.seeds),
                        "--cache", str(Path(args.out) / "cache"), "--out", str(cell), *args.extra])
    return out


def main() -> int:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=[*STAGES, "table"])
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=str(DRIVE))
    p.add_argument("--features", nargs="+", default=list(FEATURE_SETS), choices=FEATURE_SETS)
    p.add_argument("--heads", nargs="+", default=["mlp", "forest"], choices=["mlp", "forest"])
    p.add_argument("--strategies", nargs="+", default=["random", "uherding"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--adapted", default=None, help="model folder written by skal-seg adapt")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    args.extra = extra
    if args.stage == "table":
        for summary in sorted(Path(args.out).glob("*/*/summary.md")):
            print(f"## {summary.parent.relative_to(args.out)}\n\n{summary.read_text()}")
        return 0
    for cmd in commands(args):
        print("$ " + shlex.join(cmd), flush=True)
        if not args.dry_run:
            subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
