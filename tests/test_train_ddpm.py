"""The embedded model's training script: trains, checkpoints, resumes, exports a loadable model."""

import json

import numpy as np
import torch
from PIL import Image

from skal_seg.models import load_diffusion_model
from skal_seg.train_ddpm import main


def test_train_resume_export(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "data" / "train").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "data" / "train" / f"im{i}.png")
        Image.fromarray(np.zeros((40, 40), dtype=np.uint8)).save(tmp_path / "data" / "train" / f"im{i}_label.png")
    common = ["--data", str(tmp_path / "data"), "--workdir", str(tmp_path / "work"), "--size", "32",
              "--crop", "16", "--batch", "2", "--save-every", "1", "--log-every", "1", "--threads", "1"]
    main(common + ["--max-steps", "2"])
    state = torch.load(tmp_path / "work" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 2
    main(common + ["--max-steps", "3", "--export", str(tmp_path / "export")])
    assert torch.load(tmp_path / "work" / "checkpoint.pt", weights_only=False)["step"] == 3
    log = (tmp_path / "work" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["1", "2", "3"]  # resumed, not restarted
    card = json.loads((tmp_path / "export" / "training.json").read_text())
    assert card["steps"] == 3
    unet, scheduler = load_diffusion_model(str(tmp_path / "export"), device="cpu", dtype=torch.float32)
    assert unet.dtype == torch.float32 and scheduler.config.num_train_timesteps == 1000
    ema = state["ema"]  # exported weights are the EMA (float16-rounded)
    key = next(k for k in ema if k.endswith("weight"))
    assert unet.state_dict()[key].shape == ema[key].shape
