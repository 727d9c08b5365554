"""Picks and mIoU of every strategy on the shipped sample: a fingerprint to compare two commits.

Runs ``skal-seg run`` (only its command line, which every commit since the
runner existed understands) for all strategies, 3 rounds, one torch thread,
then prints one JSON object: per strategy, the labeled pixels (image name,
flat pixel) and the mIoU of every round. Run it on two commits and compare:

    PYTHONPATH=/path/to/old python benchmarks/strategy_fingerprint.py --out /tmp/old > old.json
    PYTHONPATH=/path/to/new python benchmarks/strategy_fingerprint.py --out /tmp/new > new.json
    python benchmarks/strategy_fingerprint.py --compare old.json new.json

Restructuring commits must leave the fingerprint unchanged (issue 24).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

STRATEGIES = ("random", "entropy", "margin", "bald", "maxherding", "edald", "two_stage", "uherding",
              "two_stage_uherding")
RUN_FLAGS = ["--data", "sample", "--rounds", "3", "--budget-per-image", "2", "--candidates-per-image", "500",
             "--local-budget", "20", "--val-fraction", "0", "--quiet"]


def fingerprint(out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "skal_seg.cli", "run", *RUN_FLAGS, "--strategies", *STRATEGIES, "--out", str(out)]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    result = {}
    for s in STRATEGIES:
        state = json.loads((out / s / "seed0" / "state.json").read_text())
        result[s] = {"labeled_pixels": state["labeled_pixels"], "miou": [r["miou"] for r in state["records"]]}
    return result


def compare(a: dict, b: dict) -> list[str]:
    lines = []
    for s in STRATEGIES:
        same_picks = a[s]["labeled_pixels"] == b[s]["labeled_pixels"]
        same_miou = a[s]["miou"] == b[s]["miou"]
        lines.append(f"{s:20s} picks {'identical' if same_picks else 'DIFFER'}  "
                     f"mIoU {'identical' if same_miou else 'DIFFER'}  {a[s]['miou']} vs {b[s]['miou']}")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="results folder for the runs (must not exist)")
    p.add_argument("--compare", nargs=2, type=Path, metavar="JSON", help="compare two fingerprints")
    args = p.parse_args()
    if args.compare:
        a, b = (json.loads(f.read_text()) for f in args.compare)
        lines = compare(a, b)
        print("\n".join(lines))
        return 0 if all("DIFFER" not in line for line in lines) else 1
    if args.out is None:
        p.error("--out is required")
    print(json.dumps(fingerprint(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
