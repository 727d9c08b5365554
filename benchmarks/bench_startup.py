"""How long the command line takes to answer, against ``python -c "import torch"`` in the same run.

Each command runs ``--repeat`` times in a fresh process (after one untimed
warm-up run of every command, so the page cache holds the files for all of
them alike); the table gives the median and the fastest wall time and each
median's ratio to ``import torch``'s. ``status`` reads a labeling project made
once with ``skal-seg init`` on the shipped sample images.

    python benchmarks/bench_startup.py            # prints a markdown table
    python benchmarks/bench_startup.py --json     # one JSON object instead
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_startup.py   # another commit's code

Issue 24's target: ``skal-seg --help`` in less than half the time of ``import torch``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _skal_seg(*args: str) -> list[str]:
    # The installed console script does what `python -m skal_seg.cli` does plus its entry-point lookup.
    return [sys.executable, "-c", "import sys; from skal_seg.cli import main; sys.exit(main())", *args]


def commands(project: Path) -> dict[str, list[str]]:
    return {
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        "skal-seg --help": _skal_seg("--help"),
        "skal-seg --version": _skal_seg("--version"),
        "skal-seg run --help": _skal_seg("run", "--help"),
        "skal-seg status PROJECT": _skal_seg("status", str(project)),
        'python -c "import skal_seg"': [sys.executable, "-c", "import skal_seg"],
    }


def seconds(cmd: list[str], env: dict, cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=cwd)
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=7, help="timed runs per command")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        sample = REPO / "skal_seg" / "assets" / "camvid_sample" / "train"
        # Run from the temporary folder: `python -c` puts the working directory first on sys.path, so from the
        # repository root it would import this checkout whatever PYTHONPATH names (which selects the code).
        subprocess.run(_skal_seg("init", str(project), "--images", str(sample), "--classes", "sky,road",
                                 "--exclude", "*_label.png"), check=True, stdout=subprocess.DEVNULL, env=env, cwd=tmp)
        cmds = commands(project)
        for cmd in cmds.values():  # warm-up: the same page cache for every command
            seconds(cmd, env, tmp)
        times = {name: [seconds(cmd, env, tmp) for _ in range(args.repeat)] for name, cmd in cmds.items()}
    torch_median = statistics.median(times['python -c "import torch"'])
    result = {name: {"median_s": statistics.median(t), "min_s": min(t),
                     "vs_import_torch": statistics.median(t) / torch_median} for name, t in times.items()}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print("| command | median s | fastest s | median / import torch |\n| --- | --- | --- | --- |")
    for name, r in result.items():
        print(f"| `{name}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['vs_import_torch']:.2f} |")
    print(f"\n{args.repeat} runs each, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
