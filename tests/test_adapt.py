"""Adapting the diffusion model to a pool's own images: adapt_model and ``skal-seg adapt``."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from skal_seg.cli import main as cli_main
from skal_seg.diffusion import train_ddpm
from skal_seg.diffusion.adapt import adapt_model, pool_image_files, working_images
from skal_seg.featurizer import DiffusionFeaturizer

# Tiny runs: 16 x 16 crops, 2 per step, 1 thread.
TINY = {"crop": 16, "batch": 2, "threads": 1, "quiet": True}


@pytest.fixture
def pool():
    return np.random.default_rng(0).integers(0, 255, (3, 24, 20, 3), dtype=np.uint8)


def _checkpoint(workdir):
    return torch.load(workdir / "checkpoint.pt", weights_only=False)


def test_the_folder_loads_and_its_features_differ_from_the_start(pool, tmp_path):
    out = tmp_path / "adapted"
    summary = adapt_model(pool, out, size=128, max_steps=3, lr=1e-3, warmup_steps=0, **TINY)
    assert summary["step"] == 3 and summary["workdir"] == str(tmp_path / "adapted.work")
    card = json.loads((out / "training.json").read_text())
    assert card["adapted_from"] == "embedded" and card["steps"] == 3 and card["images"] == 3
    assert card["from_card"]["data"].startswith("../shared/data/camvid")
    image = pool[0]
    adapted = DiffusionFeaturizer(model=str(out), device="cpu", progress=False).fit()
    embedded = DiffusionFeaturizer(device="cpu", progress=False).fit()
    assert adapted.input_size_ == embedded.input_size_ == (128, 128)
    a, e = adapted.transform([image]), embedded.transform([image])
    assert a.shape == e.shape and np.isfinite(a).all()
    assert np.abs(a - e).max() > 1e-3  # the weights moved


def test_the_model_input_size_is_the_working_size(pool, tmp_path):
    adapt_model(pool, tmp_path / "m", size=32, max_steps=1, **TINY)
    assert DiffusionFeaturizer(model=str(tmp_path / "m"), device="cpu", progress=False).fit().input_size_ == (32, 32)


def test_an_interrupted_run_resumes_to_the_same_weights(pool, tmp_path, monkeypatch, capsys):
    """4 steps in one go == 2 steps, Ctrl-C, then the same call again: same weights, EMA and exported model."""
    adapt_model(pool, tmp_path / "straight", size=32, max_steps=4, **TINY)

    update = train_ddpm._Progress.update

    def interrupt_at_2(self, step, *args):
        update(self, step, *args)
        if step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_ddpm._Progress, "update", interrupt_at_2)
    with pytest.raises(KeyboardInterrupt):
        adapt_model(pool, tmp_path / "resumed", size=32, max_steps=4, **{**TINY, "quiet": False})
    said = capsys.readouterr().out
    assert "interrupted at step 2" in said and "run the same command again to continue" in said
    assert _checkpoint(tmp_path / "resumed.work")["step"] == 2 and not (tmp_path / "resumed").exists()
    monkeypatch.setattr(train_ddpm._Progress, "update", update)
    summary = adapt_model(pool, tmp_path / "resumed", size=32, max_steps=4, **TINY)
    assert summary["session_steps"] == 2
    a, b = _checkpoint(tmp_path / "straight.work"), _checkpoint(tmp_path / "resumed.work")
    assert a["step"] == b["step"] == 4
    for part in ("unet", "ema", ):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    exported = [(tmp_path / d / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() for d in ("straight", "resumed")]
    assert exported[0] == exported[1]


def test_a_work_folder_of_other_settings_is_refused(pool, tmp_path):
    adapt_model(pool, tmp_path / "m", size=32, max_steps=1, **TINY)
    with pytest.raises(ValueError, match=r"other settings \(size 32 there, 16 now\).*delete"):
        adapt_model(pool, tmp_path / "m", size=16, max_steps=2, **TINY)
    with pytest.raises(ValueError, match=r"other settings \(other images\)"):
        adapt_model(pool[::-1], tmp_path / "m", size=32, max_steps=2, **TINY)


def test_the_budget_is_total_training_time(pool, tmp_path):
    """A rerun of a finished budget trains no more and says so; more minutes continue."""
    first = adapt_model(pool, tmp_path / "m", size=16, minutes=0.001, **TINY)
    assert first["step"] >= 1
    again = adapt_model(pool, tmp_path / "m", size=16, minutes=0.001, **TINY)
    assert again["session_steps"] == 0 and again["step"] == first["step"]
    more = adapt_model(pool, tmp_path / "m", size=16, minutes=10, max_steps=first["step"] + 1, **TINY)
    assert more["step"] == first["step"] + 1


def test_bad_options_are_refused(pool, tmp_path):
    with pytest.raises(ValueError, match="larger than the working size"):
        adapt_model(pool, tmp_path / "m", size=16, crop=32)
    with pytest.raises(ValueError, match="minutes must be a positive number"):
        adapt_model(pool, tmp_path / "m", minutes=0)
    with pytest.raises(ValueError, match="multiples of 8"):
        adapt_model(pool, tmp_path / "m", size=20, crop=16)
    with pytest.raises(ValueError, match="no images"):
        adapt_model([], tmp_path / "m")
    with pytest.raises(TypeError, match="single path"):
        adapt_model(str(tmp_path), tmp_path / "m")
    # 3 images of 2**20 px squared are 9.9 TB: refused before the first resize would try to allocate 3.3 TB
    with pytest.raises(ValueError, match=r"adapting: 3 images at 1048576 x 1048576 px take 9895.6 GB .* memory available"):
        adapt_model(pool, tmp_path / "m", size=2**20)
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.work").exists()


def test_working_images_takes_files_and_arrays_of_any_size(tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    gray = rng.integers(0, 255, (12, 9), dtype=np.uint8)
    floats = rng.random((20, 20, 3))
    out = working_images([tmp_path / "a.png", gray, floats], 16)
    assert out.shape == (3, 16, 16, 3) and out.dtype == np.uint8
    assert (out[1, ..., 0] == out[1, ..., 2]).all()  # grayscale replicated


def _package_layout(root):
    rng = np.random.default_rng(2)
    for split, n in (("train", 3), ("test", 2)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / split / f"im{i}.jpg")
            Image.fromarray(np.zeros((20, 20), dtype=np.uint8)).save(root / split / f"im{i}_label.png")
    return root


def test_pool_files_are_train_images_only(tmp_path):
    root = _package_layout(tmp_path / "data")
    assert [p.name for p in pool_image_files(root)] == ["im0.jpg", "im1.jpg", "im2.jpg"]
    assert [p.name for p in pool_image_files(root, "train/{id}.jpg")] == ["im0.jpg", "im1.jpg", "im2.jpg"]
    assert all(p.parent.name == "train" for p in pool_image_files("sample"))
    with pytest.raises(FileNotFoundError, match="give --images"):
        pool_image_files(tmp_path / "data" / "train")


def test_cli_adapts_the_pool(tmp_path):
    root = _package_layout(tmp_path / "data")
    out = tmp_path / "model"
    assert cli_main(["adapt", "--data", str(root), "--out", str(out), "--size", "16", "--max-steps", "2",
                     "--threads", "1", "--quiet"]) == 0
    card = json.loads((out / "training.json").read_text())
    assert card["steps"] == 2 and card["images"] == 3 and card["data"] == str(root / "train")  # test/ never read
    assert card["resolution"] == 16 and card["crop"] == 16
    DiffusionFeaturizer(model=str(out), device="cpu", progress=False).fit()


def test_cli_takes_a_file_pattern_and_fails_in_one_line(tmp_path):
    root = tmp_path / "drive"
    (root / "training" / "images").mkdir(parents=True)
    for i in (21, 22):
        Image.fromarray(np.full((24, 24, 3), i, dtype=np.uint8)).save(root / "training" / "images" / f"{i}_training.tif")
    out = tmp_path / "m"
    assert cli_main(["adapt", "--data", str(root), "--images", "training/images/{id}_training.tif", "--out", str(out),
                     "--size", "16", "--max-steps", "1", "--threads", "1", "--quiet"]) == 0
    assert json.loads((out / "training.json").read_text())["images"] == 2
    with pytest.raises(SystemExit, match=r"^skal-seg: .*train not found: give --images"):
        cli_main(["adapt", "--data", str(root), "--out", str(out), "--quiet"])
    with pytest.raises(SystemExit, match=r"^skal-seg: .*must hold \{id\}"):
        cli_main(["adapt", "--data", str(root), "--images", "training/images/x.tif", "--out", str(out)])


def test_cli_interrupt_exits_130_with_the_command_to_rerun(tmp_path, monkeypatch, capsys):
    import skal_seg.diffusion.commands as commands

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "adapt_model", interrupted)
    argv = ["adapt", "--data", "sample", "--out", str(tmp_path / "m"), "--minutes", "5"]
    assert cli_main(argv) == 130
    assert f"run again: skal-seg adapt --data sample --out {tmp_path / 'm'} --minutes 5" in capsys.readouterr().err


def test_adapt_help_imports_no_torch():
    code = ("import sys\nsys.argv = ['skal-seg', 'adapt', '--help']\nfrom skal_seg.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in ('torch', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--minutes" in out.stdout and "LOADED []" in out.stdout
