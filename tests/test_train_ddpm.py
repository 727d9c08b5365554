"""The embedded model's training script: trains, checkpoints, resumes, exports a loadable model."""

import importlib.util
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from skal_seg.data import sample_dataset_dir
from skal_seg.diffusion.embedded import UNET_ARCHITECTURES
from skal_seg.diffusion.models import load_diffusion_model
from skal_seg.diffusion.train_ddpm import (
    PROGRESS_INTERVAL,
    _Progress,
    ema_decay_at,
    export_model,
    lr_at,
    main,
    pack_split,
    parameter_count,
    training_batch,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_data(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "data" / "train").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "data" / "train" / f"im{i}.png")
        Image.fromarray(np.zeros((40, 40), dtype=np.uint8)).save(tmp_path / "data" / "train" / f"im{i}_label.png")
    return tmp_path / "data"


def _args(data, workdir, *more):
    return ["--data", str(data), "--workdir", str(workdir), "--size", "32", "--crop", "16", "--batch", "2",
            "--save-every", "1", "--log-every", "1", "--threads", "1", "--progress", "none", *more]


def test_train_resume_export(tiny_data, tmp_path):
    common = _args(tiny_data, tmp_path / "work")
    main(common + ["--max-steps", "2"])
    state = torch.load(tmp_path / "work" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 2
    main(common + ["--max-steps", "3", "--export", str(tmp_path / "export")])
    assert torch.load(tmp_path / "work" / "checkpoint.pt", weights_only=False)["step"] == 3
    log = (tmp_path / "work" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["1", "2", "3"]  # resumed, not restarted
    card = json.loads((tmp_path / "export" / "training.json").read_text())
    assert card["steps"] == 3 and card["arch"] == "embedded"
    unet, scheduler = load_diffusion_model(str(tmp_path / "export"), device="cpu", dtype=torch.float32)
    assert unet.dtype == torch.float32 and scheduler.config.num_train_timesteps == 1000
    ema = state["ema"]  # exported weights are the EMA (float16-rounded)
    key = next(k for k in ema if k.endswith("weight"))
    assert unet.state_dict()[key].shape == ema[key].shape


def test_lr_schedule_values():
    assert [lr_at(s, 1.0, warmup_steps=4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_at(0, 2e-4) == 2e-4  # no warm-up
    cos = [lr_at(s, 1.0, 2, "cosine", 10, 0.1) for s in range(12)]
    assert cos[:3] == [0.5, 1.0, 1.0]
    assert cos[6] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert cos[10] == pytest.approx(0.1) and cos[11] == pytest.approx(0.1)  # flat after the end
    assert all(a >= b for a, b in zip(cos[2:], cos[3:]))
    with pytest.raises(ValueError, match="schedule-steps"):
        lr_at(5, 1.0, 2, "cosine", None)
    with pytest.raises(ValueError, match="unknown lr schedule"):
        lr_at(5, 1.0, 2, "linear")


def test_ema_warmup_values():
    assert ema_decay_at(1, 0.999) == pytest.approx(2 / 11)  # early: forget the random init fast
    assert ema_decay_at(90, 0.999) == pytest.approx(91 / 100)
    assert ema_decay_at(100_000, 0.999) == 0.999  # late: the configured decay
    # the horizon 1 / (1 - decay) grows like step / 9 until it reaches 1 / (1 - ema_decay)
    assert 1 / (1 - ema_decay_at(900, 0.999)) == pytest.approx(910 / 9)


def test_resume_gives_the_same_run(tiny_data, tmp_path):
    """N steps in one go == N/2 + resume N/2: same weights, EMA, optimizer state and learning rates.

    Warm-started (--init-from a 5-step export), so the schedule's origin (step 5) must come back from
    the checkpoint for the resumed half to get the same learning rates.
    """
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(1)
    export_model(UNet2DModel(**UNET_ARCHITECTURES["embedded"]), DDPMScheduler(), tmp_path / "init",
                 {"steps": 5, "wall_minutes": 0.0})
    sched = ["--warmup-steps", "2", "--lr-schedule", "cosine", "--schedule-steps", "4", "--full-prob", "0.5",
             "--init-from", str(tmp_path / "init")]
    main(_args(tiny_data, tmp_path / "straight", *sched, "--max-steps", "9"))
    main(_args(tiny_data, tmp_path / "resumed", *sched, "--max-steps", "7"))
    main(_args(tiny_data, tmp_path / "resumed", *sched, "--max-steps", "9"))
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 9
    for part in ("unet", "ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    expected = [f"{lr_at(s, 2e-4, 2, 'cosine', 4, 0.1):.4e}" for s in range(4)]
    lrs = lambda d: [row.split(",")[3] for row in (tmp_path / d / "log.csv").read_text().splitlines()[1:]]  # noqa: E731
    assert lrs("straight") == lrs("resumed") == expected
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"] == lr_at(3, 2e-4, 2, "cosine", 4, 0.1)


def test_crop_and_full_batches():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    assert training_batch(images, 4, 5, gen).shape == (5, 3, 4, 4)
    full = training_batch(images, None, 6, gen)
    assert full.shape == (6, 3, 8, 8)
    for x in full:  # every whole image is a source image, flipped or not
        assert any(torch.equal(x, im) or torch.equal(x, im.flip(-1)) for im in images)
    shapes = {training_batch(images, 4, 2, gen, full_prob=0.5).shape[-1] for _ in range(40)}
    assert shapes == {4, 8}
    flipped = sum(not torch.equal(training_batch(images[:1], None, 1, gen)[0], images[0]) for _ in range(40))
    assert 5 < flipped < 35  # about half the batches are flipped


def test_crop_option_validation(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="larger than the images"):
        main(_args(tiny_data, tmp_path / "w", "--crop", "64", "--max-steps", "1"))
    with pytest.raises(ValueError, match="positive integer or 'full'"):
        main(_args(tiny_data, tmp_path / "w", "--crop", "half", "--max-steps", "1"))
    main(_args(tiny_data, tmp_path / "w", "--crop", "full", "--max-steps", "1"))  # whole 32 x 32 images


def test_wide_arch_is_larger_and_fits_40_mb():
    n_embedded, n_wide = parameter_count("embedded"), parameter_count("wide")
    assert n_wide > 3 * n_embedded
    assert 2 * n_wide <= 40e6  # float16 weights at most 40 MB
    assert set(UNET_ARCHITECTURES) == {"embedded", "wide"}


def test_init_from_another_architecture_is_refused(tiny_data, tmp_path):
    from diffusers import DDPMScheduler, UNet2DModel

    export_model(UNet2DModel(**UNET_ARCHITECTURES["embedded"]), DDPMScheduler(), tmp_path / "small", {"steps": 0, "wall_minutes": 0})
    with pytest.raises(ValueError, match=r"another architecture than --arch wide.*pass the --arch it was trained with"):
        main(_args(tiny_data, tmp_path / "w", "--arch", "wide", "--init-from", str(tmp_path / "small"), "--max-steps", "1"))
    main(_args(tiny_data, tmp_path / "w2", "--max-steps", "1"))
    with pytest.raises(ValueError, match="checkpoint .* another architecture"):  # resuming with another --arch
        main(_args(tiny_data, tmp_path / "w2", "--arch", "wide", "--max-steps", "2"))


def test_progress_bar_shows_loss_and_rate(tiny_data, tmp_path, capsys):
    main(_args(tiny_data, tmp_path / "w", "--progress", "bar", "--max-steps", "3") + ["--size", "16", "--crop", "8"])
    err = capsys.readouterr().err
    assert ("step/s" in err or "s/step" in err) and "loss=" in err and "3/3" in err


def test_progress_output_is_bounded(capsys):
    steps = 3000
    t0 = time.monotonic()
    progress = _Progress("bar", 0, steps, log_every=50)
    for step in range(1, steps + 1):  # far faster than a training step: the bar must throttle itself
        progress.update(step, loss=0.1, lr=1e-4, wall=0.0)
    progress.close()
    elapsed = time.monotonic() - t0
    refreshes = capsys.readouterr().err.count("\r")
    assert refreshes <= elapsed / PROGRESS_INTERVAL + 3, (refreshes, elapsed)
    lines = _Progress("lines", 0, steps, log_every=50)
    for step in range(1, 201):
        lines.update(step, loss=0.1, lr=1e-4, wall=0.0)
    assert len(capsys.readouterr().out.splitlines()) == 4  # one line every log_every steps


def _gpu_script():
    spec = importlib.util.spec_from_file_location("gpu_train_embedded", REPO / "benchmarks" / "gpu_train_embedded.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_script_end_to_end_on_cpu(tmp_path):
    """The GPU script's Python entry with a tiny budget on the shipped sample: packs, trains, probes val, exports."""
    packed = pack_split(sample_dataset_dir(), "train", 128, tmp_path / "sample.npz")
    results = _gpu_script().main([
        "run", "--data", str(packed), "--out", str(tmp_path / "out"), "--minutes", "0.2", "--max-steps", "2",
        "--arch", "embedded", "--batch", "2", "--crop", "16", "--threads", "1", "--probe-pixels", "10",
        "--probe-train-images", "2", "--probe-eval-images", "1", "--probe-variants", "embedded",
        "--probe-min-steps", "20",
    ])
    assert results["training"]["step"] == 2 and results["training"]["device"] == "cpu"
    probe = results["probe_val"]
    assert probe["_protocol"]["eval_split"] == "val" and probe["_protocol"]["eval_images"] == 1
    assert 0 <= probe["new"]["miou"] <= 1 and 0 <= probe["shipped"]["miou"] <= 1
    assert not math.isnan(probe["new"]["denoising_loss"])
    assert json.loads((tmp_path / "out" / "results.json").read_text())["arch"] == "embedded"
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"unet", "scheduler", "training.json", "log.csv"}
    load_diffusion_model(str(tmp_path / "out"))  # the exported folder loads
