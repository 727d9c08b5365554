"""Train (or resume training) the embedded DDPM on unlabeled images.

This is the script that produced ``skal_seg/assets/embedded_ddpm``::

    python -m skal_seg.diffusion.train_ddpm --data ../shared/data/camvid --workdir checkpoints/ddpm \\
        --max-minutes 100 --export skal_seg/assets/embedded_ddpm

It trains a UNet (``--arch``: :data:`~skal_seg.diffusion.embedded.EMBEDDED_UNET_CONFIG`,
or the wider :data:`~skal_seg.diffusion.embedded.WIDE_UNET_CONFIG`) with the standard
epsilon-prediction DDPM loss on the *train* images (labels are never read):
random ``--crop`` x ``--crop`` crops, or whole images (``--crop full``, or a
share ``--full-prob`` of the batches), each flipped left-right with
probability 1/2. The gradient norm is clipped to ``--clip-grad``. It keeps an
exponential moving average (EMA) of the weights and writes a resumable
checkpoint to ``--workdir`` atomically every ``--save-every`` steps: running
the same command again continues where it stopped, with the same learning
rate, data order and noise as an uninterrupted run. ``--export`` writes the
EMA weights (float16 safetensors) and the scheduler config in the
``save_pretrained`` layout. Without a checkpoint, ``--init-from
skal_seg/assets/embedded_ddpm`` continues from the shipped weights (optimizer
and learning-rate schedule start afresh), so anyone can train it further.

Learning rate: linear warm-up over ``--warmup-steps`` from ``lr / warmup`` to
``--lr``, then constant (``--lr-schedule constant``, the default: a run
stopped by ``--max-minutes`` has no known length) or a cosine decay to
``--min-lr-ratio * lr`` at step ``--schedule-steps`` (``--lr-schedule
cosine``; give the length in steps). Steps count from the start of *this*
run (from the warm-start weights with ``--init-from``); the origin is kept in
the checkpoint, so a resumed run follows the same curve.

EMA: decay ``min(--ema-decay, (1 + step) / (10 + step))``. The warm-up term
makes the average forget the random initialisation within a few steps and
keeps its horizon at about ``step / 9`` steps until ``step`` reaches
``9 / (1 - ema_decay)`` (9,000 steps for 0.999); a fixed 0.999 would still
weigh the first 1,000 steps (the random init with weight ``0.999 ** step``)
in a run of a few thousand steps, which is what a CPU run here is. ``step``
is the total count, so after ``--init-from`` (EMA starting from the shipped
EMA weights, already an average) the decay carries on where it stopped.

On a GPU (``--device auto`` picks CUDA when available) the forward pass runs
under bfloat16 autocast (``--amp``; bfloat16 needs no loss scaling) and the
UNet is compiled with ``torch.compile`` (``--compile``); both are off on a
CPU unless asked for. A progress bar (tqdm, refreshed at most twice a second)
shows the step, steps/s and the smoothed loss; ``--progress lines`` prints a
line every ``--log-every`` steps instead (the default when stderr is not a
terminal, e.g. a background run writing to a log file).

The loop itself is :func:`run_training`; :func:`skal_seg.diffusion.adapt.adapt_model`
(``skal-seg adapt``) fine-tunes a model on a pool's own images through it.

Why one module: the options, the loop and the checkpoint are one contract (a
checkpoint stores the options it was trained with, a resumed run reads them
back and compares its schedule), so they change together.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel
from tqdm.auto import tqdm

from skal_seg._atomic import atomic_path
from skal_seg._threads import torch_threads
from skal_seg.data import SegmentationSplit, _split_pairs, load_split
from skal_seg.image_io import read_image
from skal_seg.diffusion.embedded import EMBEDDED_SCHEDULER_CONFIG, UNET_ARCHITECTURES

#: Seconds between two refreshes of the progress bar (at most 2 per second).
PROGRESS_INTERVAL = 0.5

#: Learning-rate schedules after the warm-up (``--lr-schedule``).
LR_SCHEDULES = ("constant", "cosine")


def load_unlabeled_images(root: str | Path, split: str, size: int) -> np.ndarray:
    """All images of ``root/split``, resized to ``size`` x ``size``; labels are not read.

    Parameters
    ----------
    root : str or path-like
        Dataset folder (CamVid layout, see :mod:`skal_seg.data`), or a
        ``.npz`` file written by :func:`pack_split` (then ``split`` is not
        used and ``size`` must be the packed size).
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
        ``root/split`` (or the ``.npz`` file) does not exist.
    ValueError
        The split has no image/label pairs or an image without its label
        (or a label without its image); a packed file of another size.
    """
    if str(root).endswith(".npz"):
        return load_packed_split(root, size).images
    return np.stack([read_image(p, (size, size)) for _, p, _ in _split_pairs(Path(root) / split)])


def pack_split(root: str | Path, split: str, size: int, out: str | Path) -> Path:
    """Write one split at ``size`` x ``size`` to a compressed ``.npz`` (to carry it to another machine).

    Parameters
    ----------
    root : str or path-like
        Dataset folder (CamVid layout).
    split : str
        Sub-folder name, e.g. ``"train"``.
    size : int
        Working size in pixels (images bilinear, labels nearest).
    out : str or path-like
        Output file; a ``.npz`` suffix is required.

    Returns
    -------
    pathlib.Path
        ``out``, holding ``images`` (N, size, size, 3) uint8, ``labels``
        (N, size, size) uint8, ``names`` and ``size``.

    Raises
    ------
    ValueError
        ``out`` does not end in ``.npz``; the split is malformed (see
        :func:`skal_seg.data.load_split`).
    FileNotFoundError
        The split folder does not exist.
    """
    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"the packed file must end in .npz, got {out}")
    data = load_split(root, split, size=(size, size))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, images=data.images, labels=data.labels, names=np.array(data.names), size=size)
    return out


def load_packed_split(path: str | Path, size: int | None = None) -> SegmentationSplit:
    """Read a split written by :func:`pack_split`.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.
    size : int or None, default=None
        Expected side in pixels; None accepts any.

    Returns
    -------
    SegmentationSplit

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file holds another size than ``size``.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"packed split not found: {path} (write it with pack_split / the gpu script's pack step)")
    with np.load(path) as z:
        packed = int(z["size"])
        if size is not None and packed != size:
            raise ValueError(f"{path} holds {packed}x{packed} images but size {size} was asked for; pack it again at {size}")
        return SegmentationSplit(z["images"], z["labels"], tuple(str(n) for n in z["names"]))


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


def _random_flips(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flips = (torch.rand(len(batch), generator=gen) < 0.5).to(batch.device)
    return torch.where(flips[:, None, None, None], batch.flip(-1), batch)


def random_crops(images: torch.Tensor, crop: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """``batch`` random ``crop`` x ``crop`` crops with random horizontal flips.

    Each crop takes a random image (drawn with replacement) and a random
    position; half of the crops, on average, are flipped left-right.

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Source images, e.g. from :func:`to_model_range` (any device).
    crop : int
        Crop side in pixels, at most ``min(H, W)``.
    batch : int
        Number of crops.
    gen : torch.Generator
        CPU generator for every random draw (images, positions, flips).

    Returns
    -------
    torch.Tensor of shape (batch, C, crop, crop)
        Same dtype and device as ``images``.
    """
    n, _, h, w = images.shape
    idx = torch.randint(0, n, (batch,), generator=gen)
    ys = torch.randint(0, h - crop + 1, (batch,), generator=gen)
    xs = torch.randint(0, w - crop + 1, (batch,), generator=gen)
    out = torch.stack([images[i, :, y : y + crop, x : x + crop] for i, y, x in zip(idx.tolist(), ys.tolist(), xs.tolist())])
    return _random_flips(out, gen)


def training_batch(
    images: torch.Tensor, crop: int | None, batch: int, gen: torch.Generator, full_prob: float = 0.0
) -> torch.Tensor:
    """One training batch: random crops, or (with probability ``full_prob``) whole images; flipped at random.

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Source images (any device).
    crop : int or None
        Crop side in pixels; None trains on whole images only.
    batch : int
        Batch size.
    gen : torch.Generator
        CPU generator of every draw. ``full_prob`` strictly between 0 and 1
        draws one number per batch to choose; 0 (the default) draws exactly
        what :func:`random_crops` draws.
    full_prob : float, default=0.0
        Share of batches made of whole images instead of crops, in [0, 1].

    Returns
    -------
    torch.Tensor of shape (batch, C, crop, crop) or (batch, C, H, W)
    """
    full = crop is None or full_prob >= 1 or (full_prob > 0 and torch.rand((), generator=gen).item() < full_prob)
    if not full:
        return random_crops(images, crop, batch, gen)
    idx = torch.randint(0, len(images), (batch,), generator=gen)
    return _random_flips(images[idx.to(images.device)], gen)


def lr_at(
    step: int, lr: float, warmup_steps: int = 0, schedule: str = "constant",
    schedule_steps: int | None = None, min_lr_ratio: float = 0.0,
) -> float:
    """Learning rate of the optimizer step with index ``step`` (0-based, counted from the run's start).

    Linear warm-up: ``lr * (step + 1) / warmup_steps`` for ``step <
    warmup_steps``; then ``lr`` (``"constant"``) or a half cosine from ``lr``
    at the end of the warm-up down to ``min_lr_ratio * lr`` at
    ``schedule_steps`` and flat after it (``"cosine"``).

    Parameters
    ----------
    step : int
        Steps already taken in this run (>= 0).
    lr : float
        Peak learning rate.
    warmup_steps : int, default=0
        Length of the linear warm-up; 0 starts at ``lr``.
    schedule : {"constant", "cosine"}, default="constant"
        Shape after the warm-up.
    schedule_steps : int or None, default=None
        Total length of the cosine schedule, warm-up included; required for
        ``"cosine"``.
    min_lr_ratio : float, default=0.0
        Final learning rate of the cosine, as a fraction of ``lr``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        An unknown ``schedule``; ``"cosine"`` without ``schedule_steps`` or
        with ``schedule_steps <= warmup_steps``.
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr schedule {schedule!r}; use one of {LR_SCHEDULES}")
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule_steps is None or schedule_steps <= warmup_steps:
        raise ValueError(
            f"the cosine schedule needs --schedule-steps greater than --warmup-steps ({warmup_steps}), "
            f"got {schedule_steps}"
        )
    progress = min(1.0, (step - warmup_steps) / (schedule_steps - warmup_steps))
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def ema_decay_at(step: int, ema_decay: float) -> float:
    """EMA decay applied after optimizer step number ``step`` (1-based total count): ``min(ema_decay, (1 + step) / (10 + step))``.

    Parameters
    ----------
    step : int
        Optimizer steps taken so far, this one included.
    ema_decay : float
        The decay once the warm-up is over, in [0, 1).

    Returns
    -------
    float
    """
    return min(ema_decay, (1 + step) / (10 + step))


@torch.no_grad()
def denoising_loss(
    unet: UNet2DModel, scheduler: DDPMScheduler, images: torch.Tensor, seed: int = 0, batch: int = 16
) -> float:
    """Mean epsilon-prediction MSE on ``images`` with seeded timesteps and noise.

    Every image is scored at 4 random timesteps drawn over the whole
    schedule, so two models compared with the same ``seed`` see identical
    noise. Timesteps and noise are drawn on the CPU and moved to the UNet's
    device (so the figure does not depend on the device's generator); puts
    ``unet`` in eval mode and computes no gradients.

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
    device, dtype = unet.device, unet.dtype
    total, count = 0.0, 0
    n_train = scheduler.config.num_train_timesteps
    for start in range(0, len(images), batch):
        x0 = images[start : start + batch].repeat(4, 1, 1, 1)
        t = torch.randint(0, n_train, (len(x0),), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        noisy = scheduler.add_noise(x0, noise, t).to(device, dtype)
        pred = unet(noisy, t.to(device)).sample.float().cpu()
        total += torch.nn.functional.mse_loss(pred, noise, reduction="sum").item()
        count += noise.numel()
    return total / count


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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
    half = copy.deepcopy(unet).half()  # .to(float16) warns about modules kept in float32 (there are none)
    half.save_pretrained(out_dir / "unet", safe_serialization=True)
    scheduler.save_pretrained(out_dir / "scheduler")
    (out_dir / "training.json").write_text(json.dumps(card, indent=2) + "\n")


def parameter_count(arch: str) -> int:
    """Number of parameters of the named architecture (``--arch``).

    Parameters
    ----------
    arch : str
        A key of :data:`~skal_seg.diffusion.embedded.UNET_ARCHITECTURES`.

    Returns
    -------
    int
        Float16 weights take about twice this many bytes.
    """
    return sum(p.numel() for p in UNet2DModel(**UNET_ARCHITECTURES[arch]).parameters())


def check_same_shapes(unet: UNet2DModel, state: dict, source: str, arch: str) -> None:
    """Raise a clear error when ``state`` does not fit ``unet`` (another architecture).

    Parameters
    ----------
    unet : diffusers.UNet2DModel
        The model being trained.
    state : dict
        State dict to load into it.
    source : str
        Where ``state`` comes from, for the message.
    arch : str
        The ``--arch`` of ``unet``, for the message.

    Raises
    ------
    ValueError
        Keys or tensor shapes differ.
    """
    own = unet.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    bad = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or bad:
        detail = (
            f"{bad[0]} is {tuple(state[bad[0]].shape)} there but {tuple(own[bad[0]].shape)} here" if bad
            else f"{len(missing)} weights missing, {len(unexpected)} unexpected (e.g. {(missing + unexpected)[0]})"
        )
        raise ValueError(
            f"{source} holds a UNet of another architecture than --arch {arch} ({detail}); "
            f"pass the --arch it was trained with, or drop --init-from / use a fresh --workdir"
        )


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for, but torch sees no CUDA device; use --device cpu or auto")
    return torch.device(name)


def _on_off(value: str, device: torch.device) -> bool:
    return device.type == "cuda" if value == "auto" else value == "on"


class _Progress:
    """Either a tqdm bar (refreshed at most every :data:`PROGRESS_INTERVAL` s) or a line every ``log_every`` steps.

    With ``budget_seconds`` (a run stopped by its total training time) both
    also show the minutes of that budget left.
    """

    def __init__(self, mode: str, step: int, max_steps: int, log_every: int, budget_seconds: float | None = None):
        self.mode, self.log_every, self.budget = mode, log_every, budget_seconds
        self.bar = None
        self.last = 0.0
        if mode == "bar":
            total = max_steps if max_steps < 1_000_000 else None
            self.bar = tqdm(total=total, initial=step, unit="step", mininterval=PROGRESS_INTERVAL,
                            maxinterval=10 * PROGRESS_INTERVAL, smoothing=0.1, dynamic_ncols=True)

    def update(self, step: int, loss: float, lr: float, wall: float) -> None:
        left = {} if self.budget is None else {"left": f"{max(0.0, self.budget - wall) / 60:.1f}min"}
        if self.bar is not None:
            now = time.monotonic()
            if now - self.last >= PROGRESS_INTERVAL:  # formatting the postfix is not free either
                self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", **left, refresh=False)
                self.last = now
            self.bar.update(1)
        elif self.mode == "lines" and step % self.log_every == 0:
            print(f"step {step} loss(ema-smoothed) {loss:.4f} lr {lr:.2e} {wall / 60:.1f} min"
                  + (f" ({left['left']} left)" if left else ""), flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_training(
    images: torch.Tensor, args: argparse.Namespace, unet_config: dict, scheduler: DDPMScheduler, *,
    init: Callable[[UNet2DModel], tuple[int, float]] | None = None, total_minutes: float | None = None,
    check_resume: Callable[[dict], None] | None = None, say: Callable[[str], None] = print,
) -> tuple[dict, UNet2DModel]:
    """The training loop of :func:`train` and :func:`skal_seg.diffusion.adapt.adapt_model`: resumable, with EMA.

    Resumes from ``args.workdir/checkpoint.pt`` when it exists (weights,
    EMA, optimizer, random generators, step count, schedule origin), else
    starts from ``init`` (or a seeded random initialisation). Writes the
    checkpoint atomically every ``args.save_every`` steps and when it stops,
    also on an exception such as Ctrl-C (``KeyboardInterrupt``, re-raised
    after saving), and appends to ``args.workdir/log.csv``. Stops at
    ``args.max_steps`` total steps, after ``args.max_minutes`` of this
    session, or once ``total_minutes`` of training are done.

    Parameters
    ----------
    images : torch.Tensor of shape (N, 3, H, W), float32
        Training images in [-1, 1] (:func:`to_model_range`), on the CPU.
    args : argparse.Namespace
        Options of :func:`build_parser`; ``data``, ``size``, ``export`` and
        ``init_from`` are not read here.
    unet_config : dict
        Configuration of the ``UNet2DModel`` trained.
    scheduler : diffusers.DDPMScheduler
        Noise schedule of the loss.
    init : callable or None, default=None
        Without a checkpoint: called with the new UNet, loads the starting
        weights into it (the EMA starts from them too) and returns
        ``(step, wall_seconds)`` they were trained for; the learning-rate
        schedule starts at that step, the EMA warm-up goes on from it.
    total_minutes : float or None, default=None
        Budget of training time summed over every session (the
        checkpoint's included); None: no such budget.
    check_resume : callable or None, default=None
        Called with the checkpoint's options (a dict) before resuming;
        raises to refuse a checkpoint of other settings.
    say : callable, default=print
        Where the messages go (a no-op for quiet runs).

    Returns
    -------
    summary : dict
        ``step`` (total optimizer steps), ``session_steps``, ``wall_seconds``
        (summed over all sessions), ``steps_per_second`` (this session,
        without its first step, which holds compilation and warm-up; None
        with fewer than 2 steps), ``final_smoothed_loss``, ``lr`` (of the
        last step), ``run_start_step`` (origin of the schedule), ``device``,
        ``amp``, ``compile``.
    ema : diffusers.UNet2DModel
        The EMA of the weights (what :func:`export_model` writes).
    """
    with torch_threads(args.threads):
        return _run_training(images, args, unet_config, scheduler, init, total_minutes, check_resume, say)


def _run_training(images, args, unet_config, scheduler, init, total_minutes, check_resume, say):
    device = _resolve_device(args.device)
    amp, compile_ = _on_off(args.amp, device), _on_off(args.compile, device)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = workdir / "checkpoint.pt"
    crop = None if args.crop == "full" else int(args.crop)

    torch.manual_seed(args.seed)
    unet = UNet2DModel.from_config(unet_config)
    ema = copy.deepcopy(unet).requires_grad_(False)
    # Data draws (images, crops, flips) on this CPU generator; noise and timesteps on the
    # device's own generator, so a GPU does not wait for the CPU to draw millions of normals.
    gen = torch.Generator().manual_seed(args.seed)
    noise_gen = gen if device.type == "cpu" else torch.Generator(device).manual_seed(args.seed + 1)
    step, wall, running, run_start = 0, 0.0, None, 0
    state = None
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False, map_location="cpu")
        if check_resume is not None:
            check_resume(state["args"])
        check_same_shapes(unet, state["unet"], f"checkpoint {ckpt_path}", args.arch)
        unet.load_state_dict(state["unet"])
        ema.load_state_dict(state["ema"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if noise_gen is not gen and state.get("noise_generator") is not None:
            noise_gen.set_state(state["noise_generator"])
        step, wall, running = state["step"], state["wall_seconds"], state.get("running_loss")
        run_start = state.get("run_start_step", 0)  # checkpoints of the first trainer: schedule from step 0
        # Checkpoints of the first trainer have no schedule options in their args: nothing to compare.
        old = _schedule(state["args"]) if "lr_schedule" in state["args"] else None
        if old is not None and old != _schedule(vars(args)):
            say(f"note: the learning-rate schedule changed from {old} to {_schedule(vars(args))} at step {step}")
        say(f"resumed from {ckpt_path} at step {step} ({wall / 60:.1f} min trained)")
    elif init is not None:
        # Warm start (e.g. from the shipped model): optimizer and LR schedule start afresh.
        step, wall = init(unet)
        ema.load_state_dict(unet.state_dict())
        run_start = step
    unet.to(device)
    ema.to(device)
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.0)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
    if compile_:
        # An unattended GPU run should not die on a graph the compiler cannot handle: fall back to eager.
        torch._dynamo.config.suppress_errors = True
    model = torch.compile(unet) if compile_ else unet
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else nullcontext
    images = images.to(device)
    say(f"{len(images)} train images at {images.shape[2]}x{images.shape[3]}, crops {args.crop} (whole images in a "
        f"share {args.full_prob if crop is not None else 1.0} of batches), batch {args.batch}, arch {args.arch}, "
        f"device {device}, amp {amp}, compile {compile_}")
    log_path = workdir / "log.csv"
    new_log = not log_path.exists()
    if new_log:
        with_lr = True
    else:  # a log of the first trainer has no lr column: keep its shape
        with open(log_path) as f:
            with_lr = "lr" in f.readline().strip().split(",")
    log = open(log_path, "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "loss", "wall_seconds", "lr"])

    def save() -> None:
        _atomic_torch_save(
            {
                "unet": unet.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "noise_generator": None if noise_gen is gen else noise_gen.get_state(),
                "step": step, "wall_seconds": wall, "running_loss": running, "args": vars(args),
                "run_start_step": run_start,
            },
            ckpt_path,
        )

    session_start, start_step = time.time(), step
    budget = math.inf if total_minutes is None else total_minutes * 60
    first_step_end = None
    lr = None
    progress = _Progress(_progress_mode(args.progress), step, args.max_steps, args.log_every,
                         None if total_minutes is None else budget)
    unet.train()
    interrupted = False
    try:
        while step < args.max_steps and (time.time() - session_start) < args.max_minutes * 60 and wall < budget:
            t0 = time.time()
            lr = lr_at(step - run_start, args.lr, args.warmup_steps, args.lr_schedule, args.schedule_steps,
                       args.min_lr_ratio)
            for group in opt.param_groups:
                group["lr"] = lr
            x0 = training_batch(images, crop, args.batch, gen, args.full_prob)
            noise = torch.randn(x0.shape, generator=noise_gen, device=device)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),), generator=noise_gen, device=device)
            with autocast():
                pred = model(scheduler.add_noise(x0, noise, t), t).sample
            loss = torch.nn.functional.mse_loss(pred.float(), noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), args.clip_grad)
            opt.step()
            step += 1
            decay = ema_decay_at(step, args.ema_decay)
            with torch.no_grad():
                torch._foreach_lerp_(list(ema.parameters()), list(unet.parameters()), 1 - decay)
                for be, b in zip(ema.buffers(), unet.buffers()):
                    be.copy_(b)
            loss_value = loss.item()  # also waits for the GPU, so the wall time below is real
            wall += time.time() - t0
            if first_step_end is None:
                first_step_end = time.time()
            running = loss_value if running is None else 0.98 * running + 0.02 * loss_value
            if step % args.log_every == 0:
                writer.writerow([step, f"{running:.5f}", f"{wall:.1f}"] + ([f"{lr:.4e}"] if with_lr else []))
                log.flush()
            progress.update(step, running, lr, wall)
            if step % args.save_every == 0:
                save()
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        progress.close()
        if step > start_step:  # an export-only call (--max-steps <= step) must not touch the checkpoint
            save()
        log.close()
        if interrupted:
            say(f"interrupted at step {step} ({wall / 60:.1f} min trained); "
                + (f"checkpoint saved in {ckpt_path}" if ckpt_path.exists() else "no checkpoint yet"))
    session_steps = step - start_step
    rate = (session_steps - 1) / (time.time() - first_step_end) if session_steps >= 2 else None
    say(f"stopped at step {step}, {wall / 60:.1f} min of training"
        + (f", {rate:.2f} steps/s this session" if rate else ""))
    summary = {
        "step": step, "session_steps": session_steps, "wall_seconds": round(wall, 1),
        "steps_per_second": None if rate is None else round(rate, 3), "final_smoothed_loss": running,
        "lr": lr, "run_start_step": run_start, "device": str(device), "amp": amp, "compile": compile_,
    }
    return summary, ema


def train(args: argparse.Namespace) -> dict:
    """Train (or resume) the embedded DDPM as the parsed command line says; see the module docstring.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed :func:`build_parser` arguments.

    Returns
    -------
    dict
        The summary of :func:`run_training`.

    Raises
    ------
    FileNotFoundError, ValueError
        The dataset folder or its ``train/`` split is missing or malformed;
        ``--init-from`` or the checkpoint holds another architecture;
        invalid option values.
    """
    _check_args(args)
    torch.set_num_threads(args.threads)  # for the whole process, as before (a script; the GPU script probes after)
    images = to_model_range(load_unlabeled_images(args.data, "train", args.size))
    scheduler = DDPMScheduler(**EMBEDDED_SCHEDULER_CONFIG)

    def init_from(unet: UNet2DModel) -> tuple[int, float]:
        init = UNet2DModel.from_pretrained(Path(args.init_from) / "unet").to(torch.float32)
        check_same_shapes(unet, init.state_dict(), f"--init-from {args.init_from}", args.arch)
        unet.load_state_dict(init.state_dict())
        card_path = Path(args.init_from) / "training.json"
        step, wall = 0, 0.0
        if card_path.exists():
            card = json.loads(card_path.read_text())
            step, wall = int(card["steps"]), float(card["wall_minutes"]) * 60
        print(f"initialised from {args.init_from} (step {step})")
        return step, wall

    summary, ema = run_training(images, args, UNET_ARCHITECTURES[args.arch], scheduler,
                                init=init_from if args.init_from else None)
    if args.export:
        card = {
            "steps": summary["step"], "wall_minutes": round(summary["wall_seconds"] / 60, 1),
            "final_smoothed_loss": summary["final_smoothed_loss"],
            "data": f"{args.data}{'' if str(args.data).endswith('.npz') else '/train'} (images only)",
            "arch": args.arch, "resolution": args.size, "crop": args.crop, "full_prob": args.full_prob,
            "batch": args.batch, "lr": args.lr, **_schedule(vars(args)), "run_start_step": summary["run_start_step"],
            "clip_grad": args.clip_grad, "ema_decay": args.ema_decay, "seed": args.seed, "threads": args.threads,
            "device": summary["device"], "amp_bf16": summary["amp"], "compile": summary["compile"],
            "steps_per_second_last_session": summary["steps_per_second"],
        }
        export_model(ema, scheduler, args.export, card)
        print(f"exported EMA weights to {args.export}")
    return summary


def _schedule(args: dict) -> dict:
    """The learning-rate schedule of the options ``args`` (``vars`` of the parsed command line)."""
    return {"lr_peak": args["lr"], "warmup_steps": args["warmup_steps"], "lr_schedule": args["lr_schedule"],
            "schedule_steps": args["schedule_steps"], "min_lr_ratio": args["min_lr_ratio"]}


def _progress_mode(mode: str) -> str:
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return mode


def _check_args(args: argparse.Namespace) -> None:
    if args.arch not in UNET_ARCHITECTURES:
        raise ValueError(f"unknown --arch {args.arch!r}; use one of {sorted(UNET_ARCHITECTURES)}")
    if args.crop != "full" and not (str(args.crop).isdigit() and int(args.crop) > 0):
        raise ValueError(f"--crop must be a positive integer or 'full', got {args.crop!r}")
    if args.crop != "full" and int(args.crop) > args.size:
        raise ValueError(f"--crop {args.crop} is larger than the images (--size {args.size}); use a smaller crop or --crop full")
    if not 0 <= args.full_prob <= 1:
        raise ValueError(f"--full-prob must be in [0, 1], got {args.full_prob}")
    if args.warmup_steps < 0:
        raise ValueError(f"--warmup-steps must be >= 0, got {args.warmup_steps}")
    if not 0 <= args.ema_decay < 1:
        raise ValueError(f"--ema-decay must be in [0, 1), got {args.ema_decay}")
    if args.clip_grad <= 0:
        raise ValueError(f"--clip-grad must be > 0, got {args.clip_grad}")
    lr_at(max(args.warmup_steps, 0), args.lr, args.warmup_steps, args.lr_schedule, args.schedule_steps,
          args.min_lr_ratio)  # raises for a cosine without a usable length


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m skal_seg.diffusion.train_ddpm``.

    Returns
    -------
    argparse.ArgumentParser
        ``--data`` is required; every other option has a default.
    """
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True,
                   help="dataset folder with a train/ split (CamVid layout), or a .npz packed by pack_split")
    p.add_argument("--workdir", default="checkpoints/ddpm", help="checkpoint + log folder (resumes from it)")
    p.add_argument("--export", default=None, help="write the EMA model here when training stops")
    p.add_argument("--init-from", default=None,
                   help="with no checkpoint in --workdir: start from an exported model (e.g. skal_seg/assets/embedded_ddpm)")
    p.add_argument("--arch", default="embedded", choices=sorted(UNET_ARCHITECTURES),
                   help="embedded: 4.3M parameters (8.7 MB float16); wide: 18.1M (36.1 MB float16)")
    p.add_argument("--size", type=int, default=128, help="images are resized to size x size")
    p.add_argument("--crop", default="64", help="random crop side used for training, or 'full' for whole images")
    p.add_argument("--full-prob", type=float, default=0.0,
                   help="share of batches made of whole images instead of crops (0: crops only)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (AdamW)")
    p.add_argument("--warmup-steps", type=int, default=200, help="linear learning-rate warm-up, in steps of this run")
    p.add_argument("--lr-schedule", default="constant", choices=LR_SCHEDULES, help="after the warm-up")
    p.add_argument("--schedule-steps", type=int, default=None,
                   help="length of the cosine schedule in steps of this run, warm-up included")
    p.add_argument("--min-lr-ratio", type=float, default=0.1, help="final cosine learning rate / --lr")
    p.add_argument("--clip-grad", type=float, default=1.0, help="gradient-norm clipping threshold")
    p.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay after its warm-up (see above)")
    p.add_argument("--max-steps", type=int, default=1_000_000, help="stop at this total step count")
    p.add_argument("--max-minutes", type=float, default=60.0, help="stop after this long (this session)")
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=50, help="log.csv row (and --progress lines) every this many steps")
    p.add_argument("--progress", default="auto", choices=["auto", "bar", "lines", "none"],
                   help="auto: a bar when stderr is a terminal, else lines")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--amp", default="auto", choices=["auto", "on", "off"], help="bfloat16 autocast; auto: on CUDA only")
    p.add_argument("--compile", default="auto", choices=["auto", "on", "off"], help="torch.compile; auto: on CUDA only")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> dict:
    """Entry point of ``python -m skal_seg.diffusion.train_ddpm``: parse ``argv`` and :func:`train`.

    Parameters
    ----------
    argv : list of str or None, default=None
        Command-line arguments; None reads ``sys.argv[1:]``.

    Returns
    -------
    dict
        The summary :func:`train` returns.

    Raises
    ------
    SystemExit
        Invalid arguments or ``--help`` (raised by ``argparse``).
    FileNotFoundError, ValueError
        The dataset folder or its ``train/`` split is missing or malformed,
        or an option is invalid (see :func:`train`).
    """
    return train(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
