"""Shared by the benchmark scripts: peak-memory measurement and paths."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (REPO / ".." / "shared" / "data" / "camvid").resolve()
RESULT_PREFIX = "@@RESULT@@ "


def run_worker(argv: list[str], what: str, env: dict | None = None) -> dict:
    """Run ``python *argv`` from the repository root; the JSON its ``RESULT_PREFIX`` line holds.

    Raises RuntimeError (naming ``what``, with the end of stderr) when no such line was printed.
    """
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise RuntimeError(f"{what} worker failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _maxrss_kb() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r  # bytes on macOS, kB on Linux


class PeakRSS:
    """Peak resident memory (MB) of the ``with`` body above the RSS at its start."""

    def __enter__(self):
        self.base_kb = _status_kb("VmRSS") or _maxrss_kb()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
            self.hwm = True
        except OSError:
            self.hwm = False
        return self

    def __exit__(self, *exc):
        peak_kb = (_status_kb("VmHWM") if self.hwm else None) or _maxrss_kb()
        self.mb = max(0, peak_kb - self.base_kb) / 1024
        return False


# ----------------------------------------------------------------------------- data
def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    """(n, d) float32 rows drawn from a standard normal and scaled to unit L2 norm."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


# ----------------------------------------------------------------------------- model
def load_model():
    """(model for DiffusionFeaturizer, label): the embedded DDPM, else a random-init UNet of its architecture."""
    import torch
    from diffusers import UNet2DModel

    from skal_seg.diffusion.embedded import EMBEDDED_UNET_CONFIG
    from skal_seg.diffusion.models import ModelNotAvailableError, default_scheduler, load_diffusion_model

    try:
        return load_diffusion_model("embedded"), "embedded DDPM (trained weights)"
    except ModelNotAvailableError:
        torch.manual_seed(0)
        unet = UNet2DModel(**EMBEDDED_UNET_CONFIG).eval().requires_grad_(False)
        return (unet, default_scheduler()), (
            "UNTRAINED random-init UNet2DModel(**EMBEDDED_UNET_CONFIG) -- embedded weights not exported "
            "yet (same architecture, so same speed)"
        )
