"""Every example script runs in ``--smoke`` mode (tiny sizes, seconds) and prints what it should."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_example(name, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"{name} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_toy_quickstart():
    out = run_example("toy_quickstart.py")
    assert "round 0: stage 1 global picked" in out
    assert "round 1: stage 2 (eDALD) picked" in out


def test_toy_samplers_writes_png(tmp_path):
    png = tmp_path / "sub" / "toy.png"
    out = run_example("toy_samplers.py", "--smoke", "--out", str(png))
    assert "MaxHerding: bandwidth" in out and "eDALD: classifier accuracy" in out and "two-stage:" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pipeline_smoke():
    out = run_example("pipeline.py", "--smoke")
    assert sum(line.startswith("  cv mIoU") for line in out.splitlines()) == 2  # one line per grid point
    assert "best: {'torchmlpclassifier__hidden_layer_sizes'" in out
    assert "test mIoU" in out and "predicted label maps: (1, 64, 64)" in out


def test_modal_loop_smoke():
    out = run_example("modal_loop.py", "--smoke")
    rounds = [line for line in out.splitlines() if line.startswith("round ")]
    assert len(rounds) == 3, out
    assert "(MaxHerding only)" in rounds[0] and "(MaxHerding + eDALD)" in rounds[-1]
    labeled = [int(line.split()[3]) for line in rounds]
    assert labeled == [6, 12, 18]
    for line in rounds:
        miou = float(line.split("mIoU")[1].split()[0])
        assert 0.0 <= miou <= 1.0

