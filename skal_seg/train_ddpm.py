"""Train (or resume training) the embedded DDPM on unlabeled images.

This is the script that produced ``skal_seg/assets/embedded_ddpm``::

    python -m skal_seg.train_ddpm --data ../shared/data/camvid --workdir checkpoints/ddpm \
        --max-minutes 100 --export skal_seg/assets/embedded_ddpm

It trains the :data:`~skal_seg.embedded.EMBEDDED_UNET_CONFIG` UNet with the
standard epsilon-prediction DDPM loss on random crops of the *train* images
(labels are never read), keeps an exponential moving average (EMA) of the
weights, and writes a resumable checkpoint to ``--workdir`` atomically every
``--save-every`` steps: running the same command again continues where it
stopped. ``--export`` writes the EMA weights (float16 safetensors) and the
scheduler config in the ``save_pretrained`` layout. Without a checkpoint,
``--init-from skal_seg/assets/embedded_ddpm`` continues from the shipped
weights (optimizer state starts afresh), so anyone can train it further.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel

from skal_seg.data import _split_pairs, read_image
from skal_seg.embedded import EMBEDDED_SCHEDULER_CONFIG, EMBEDDED_UNET_CONFIG


def load_unlabeled_images(root: str | Path, split: str, size: int) -> np.ndarray:
    """All images of ``root/split``, resized to ``size`` x ``size``; labels are not read.

    Parameters
    ----------
    root : str or path-like
        Dataset folder (CamVid layout, see :mod:`skal_seg.data`).
    split : str
        Sub-folder name, e.g. ``"train"``.
    size : int
        Side in pixels each image is bilinearly resized to.

    Returns
    -------
    ndarray of shape (N, size, size, 3), uint8
        Images sorted by name.

    Raises
    ------
    FileNotFoundError
        ``root/split`` does not exist.
    ValueError
        The split has no image/label pairs or an image without its label
        (or a label without its image).
    """
    return np.stack([read_image(p, (size, size)) for _, p, _ in _split_pairs(Path(root) / split)])


def to_model_range(images_uint8: np.ndarray) -> torch.Tensor:
    """Scale uint8 images to the model's input range: ``x / 127.5 - 1``.

    Parameters
    ----------
    images_uint8 : ndarray of shape (N, H, W, 3), uint8
        RGB images, channels last, values 0-255.

    Returns
    -------
    torch.Tensor of shape (N, 3, H, W), float32
        Channels first, values in [-1, 1].
    """
    return torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def random_crops(images: torch.Tensor, crop: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """``batch`` random ``crop`` x ``crop`` crops with random horizontal flips.

    Each crop takes a random image (drawn with replacement) and a random
    position; half of the crops, on average, are flipped left-right.

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Source images, e.g. from :func:`to_model_range`.
    crop : int
        Crop side in pixels, at most ``min(H, W)``.
    batch : int
        Number of crops.
    gen : torch.Generator
        CPU generator for every random draw (images, positions, flips).

    Returns
    -------
    torch.Tensor of shape (batch, C, crop, crop)
        Same dtype as ``images``.
    """
    n, _, h, w = images.shape
    idx = torch.randint(0, n, (batch,), generator=gen)
    ys = torch.randint(0, h - crop + 1, (batch,), generator=gen)
    xs = torch.randint(0, w - crop + 1, (batch,), generator=gen)
    flips = torch.rand(batch, generator=gen) < 0.5
    out = torch.stack([images[i, :, y : y + crop, x : x + crop] for i, y, x in zip(idx, ys, xs)])
    out[flips] = out[flips].flip(-1)
    return out


@torch.no_grad()
def denoising_loss(
    unet: UNet2DModel, scheduler: DDPMScheduler, images: torch.Tensor, seed: int = 0, batch: int = 16
) -> float:
    """Mean epsilon-prediction MSE on ``images`` with seeded timesteps and noise.

    Every image is scored at 4 random timesteps drawn over the whole
    schedule, so two models compared with the same ``seed`` see identical
    noise. Runs on CPU (timesteps and noise are drawn there); puts ``unet``
    in eval mode and computes no gradients.

    Parameters
    ----------
    unet : diffusers.UNet2DModel
        The noise-prediction network.
    scheduler : diffusers.DDPMScheduler
        Its noise schedule.
    images : torch.Tensor of shape (N, 3, H, W), float32
        Clean images in [-1, 1], e.g. from :func:`to_model_range`.
    seed : int, default=0
        Seed of the CPU generator drawing timesteps and noise.
    batch : int, default=16
        Images per forward pass (each forward holds ``4 * batch`` samples).

    Returns
    -------
    float
        MSE between predicted and true noise, averaged over every element.
    """
    gen = torch.Generator().manual_seed(seed)
    unet.eval()
    total, count = 0.0, 0
    n_train = scheduler.config.num_train_timesteps
    for start in range(0, len(images), batch):
        x0 = images[start : start + batch].repeat(4, 1, 1, 1)
        t = torch.randint(0, n_train, (len(x0),), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        pred = unet(scheduler.add_noise(x0, noise, t), t).sample
        total += torch.nn.functional.mse_loss(pred, noise, reduction="sum").item()
        count += noise.numel()
    return total / count


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def export_model(unet: UNet2DModel, scheduler: DDPMScheduler, out_dir: str | Path, card: dict) -> None:
    """Write ``unet/`` (float16 safetensors), ``scheduler/`` and ``training.json`` to ``out_dir``.

    Parameters
    ----------
    unet : diffusers.UNet2DModel
        Model to export; a float16 copy is saved, ``unet`` itself is unchanged.
    scheduler : diffusers.DDPMScheduler
        Saved with ``save_pretrained`` to ``out_dir/scheduler``.
    out_dir : str or path-like
        Output folder (created if missing; existing files are overwritten).
    card : dict
        JSON-serialisable training summary, written to ``out_dir/training.json``.
    """
    out_dir = Path(out_dir)
    half = copy.deepcopy(unet).to(torch.float16)
    half.save_pretrained(out_dir / "unet", safe_serialization=True)
    scheduler.save_pretrained(out_dir / "scheduler")
    (out_dir / "training.json").write_text(json.dumps(card, indent=2) + "\n")


def train(args: argparse.Namespace) -> None:
    """Train (or resume) the embedded DDPM as the parsed command line says; see the module docstring.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed :func:`build_parser` arguments.

    Raises
    ------
    FileNotFoundError, ValueError
        The dataset folder or its ``train/`` split is missing or malformed.
    """
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = workdir / "checkpoint.pt"

    torch.manual_seed(args.seed)
    unet = UNet2DModel(**EMBEDDED_UNET_CONFIG)
    ema = copy.deepcopy(unet).requires_grad_(False)
    scheduler = DDPMScheduler(**EMBEDDED_SCHEDULER_CONFIG)
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    step, wall, running = 0, 0.0, None
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        unet.load_state_dict(state["unet"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        step, wall, running = state["step"], state["wall_seconds"], state.get("running_loss")
        print(f"resumed from {ckpt_path} at step {step} ({wall / 60:.1f} min trained)")
    elif args.init_from:
        # Warm start from exported weights (e.g. the shipped model): the optimizer starts afresh.
        init = UNet2DModel.from_pretrained(Path(args.init_from) / "unet").to(torch.float32)
        unet.load_state_dict(init.state_dict())
        ema.load_state_dict(init.state_dict())
        card_path = Path(args.init_from) / "training.json"
        if card_path.exists():
            card = json.loads(card_path.read_text())
            step, wall = int(card["steps"]), float(card["wall_minutes"]) * 60
        print(f"initialised from {args.init_from} (step {step})")

    images = to_model_range(load_unlabeled_images(args.data, "train", args.size))
    print(f"{len(images)} train images at {args.size}x{args.size}, crops {args.crop}, batch {args.batch}")
    log_path = workdir / "log.csv"
    new_log = not log_path.exists()
    log = open(log_path, "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "loss", "wall_seconds"])

    def save() -> None:
        _atomic_torch_save(
            {
                "unet": unet.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "step": step, "wall_seconds": wall, "running_loss": running, "args": vars(args),
            },
            ckpt_path,
        )

    session_start, start_step = time.time(), step
    unet.train()
    while step < args.max_steps and (time.time() - session_start) < args.max_minutes * 60:
        t0 = time.time()
        x0 = random_crops(images, args.crop, args.batch, gen)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),), generator=gen)
        loss = torch.nn.functional.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        step += 1
        # EMA warm-up: short averaging horizon early, `ema_decay` later.
        decay = min(args.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - decay)
            for be, b in zip(ema.buffers(), unet.buffers()):
                be.copy_(b)
        wall += time.time() - t0
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % args.log_every == 0:
            writer.writerow([step, f"{running:.5f}", f"{wall:.1f}"])
            log.flush()
            print(f"step {step} loss(ema-smoothed) {running:.4f} {wall / 60:.1f} min", flush=True)
        if step % args.save_every == 0:
            save()
    if step > start_step:  # an export-only call (--max-steps <= step) must not touch the checkpoint
        save()
    log.close()
    print(f"stopped at step {step}, {wall / 60:.1f} min of training")
    if args.export:
        card = {
            "steps": step, "wall_minutes": round(wall / 60, 1), "final_smoothed_loss": running,
            "data": f"{args.data}/train (images only)", "resolution": args.size, "crop": args.crop,
            "batch": args.batch, "lr": args.lr, "ema_decay": args.ema_decay, "seed": args.seed,
            "threads": args.threads,
        }
        export_model(ema, scheduler, args.export, card)
        print(f"exported EMA weights to {args.export}")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m skal_seg.train_ddpm``.

    Returns
    -------
    argparse.ArgumentParser
        ``--data`` is required; every other option has a default.
    """
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder with a train/ split (CamVid layout)")
    p.add_argument("--workdir", default="checkpoints/ddpm", help="checkpoint + log folder (resumes from it)")
    p.add_argument("--export", default=None, help="write the EMA model here when training stops")
    p.add_argument("--init-from", default=None,
                   help="with no checkpoint in --workdir: start from an exported model (e.g. skal_seg/assets/embedded_ddpm)")
    p.add_argument("--size", type=int, default=128, help="images are resized to size x size")
    p.add_argument("--crop", type=int, default=64, help="random crop side used for training")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--max-steps", type=int, default=1_000_000)
    p.add_argument("--max-minutes", type=float, default=60.0, help="stop after this long (this session)")
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m skal_seg.train_ddpm``: parse ``argv`` and :func:`train`.

    Parameters
    ----------
    argv : list of str or None, default=None
        Command-line arguments; None reads ``sys.argv[1:]``.

    Raises
    ------
    SystemExit
        Invalid arguments or ``--help`` (raised by ``argparse``).
    FileNotFoundError, ValueError
        The dataset folder or its ``train/`` split is missing or malformed
        (see :func:`train`).
    """
    train(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
