"""Adapting a diffusion model to a pool's own images: fine-tuning on them, unlabeled, for a time budget.

:func:`adapt_model` (``skal-seg adapt``) continues the denoising training of
a model (the embedded DDPM by default) on the given images and writes a
``save_pretrained`` folder that ``--model FOLDER`` and
``DiffusionFeaturizer(model=FOLDER)`` load. It runs the loop of
:mod:`skal_seg.diffusion.train_ddpm` (:func:`~skal_seg.diffusion.train_ddpm.run_training`:
EMA, checkpoints, progress) with defaults for a short CPU run.

The working scale: every image is resized to ``size`` x ``size`` (the
square input the featurizer feeds the UNet) and the model trains on random
``crop`` x ``crop`` crops of it, so thin structures are seen at the scale
the features will see them. The exported model's input size
(``sample_size``) is ``size``: the featurizer then resizes images to
``size`` x ``size`` instead of the embedded model's 128, which costs about
``(size / 128) ** 2`` times the featurizing time.

Resuming: the checkpoint lives in the work folder ``OUT.work`` beside the
output folder ``OUT`` (``workdir`` to put it elsewhere). ``minutes`` is the
budget of training time summed over every run of the same command: running
it again after an interruption (Ctrl-C saves the checkpoint) continues to
the budget, and running it with a larger ``minutes`` trains further.
A work folder of other settings (images, size, starting model, crop, batch,
learning rate, seed) is refused rather than mixed in.

Only the images given are read, never labels; give it the pool's (training)
images, never the test images a benchmark scores on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import numbers
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from skal_seg._checks import check_budget, check_positive_or_word
from skal_seg._memory import check_images_fit
from skal_seg.data import LABEL_SUFFIX, sample_dataset_dir
from skal_seg.diffusion.embedded import embedded_model_dir
from skal_seg.diffusion.models import load_diffusion_model
from skal_seg.diffusion.train_ddpm import build_parser, export_model, run_training, to_model_range
from skal_seg.file_patterns import match_pattern
from skal_seg.image_io import as_rgb, image_extensions, read_image

#: The checkpoint folder of an output folder ``OUT``: ``OUT`` + this suffix, beside it.
WORK_SUFFIX = ".work"

#: Settings a resumed adaptation must share with its checkpoint.
_RESUME_KEYS = ("from", "size", "crop", "batch", "lr", "warmup_steps", "seed", "n_images", "images_sha1")


def pool_image_files(data: str | Path, images: str | None = None) -> list[Path]:
    """The image files of a pool, as ``skal-seg adapt`` finds them (labels are never listed).

    Parameters
    ----------
    data : path-like or "sample"
        Dataset folder; ``"sample"`` is the shipped CamVid sample.
    images : str or None, default=None
        ``{id}`` file pattern relative to ``data`` (see
        :func:`skal_seg.file_patterns.match_pattern`), e.g.
        ``"training/images/{id}_training.tif"``. None: the images of
        ``data/train/`` (the package's layout), ``NAME_label.*`` files
        excluded; ``data/test/`` is never read.

    Returns
    -------
    list of Path
        Sorted by id (pattern) or name (``train/``).

    Raises
    ------
    FileNotFoundError
        ``data``, ``data/train/`` or the pattern's folder does not exist.
    ValueError
        A bad pattern, or no image found.
    """
    root = sample_dataset_dir() if str(data) == "sample" else Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    if images is not None:
        return list(match_pattern(root, images, "--images").values())
    folder = root / "train"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: give --images PATTERN (e.g. 'images/{{id}}.png'), or put the "
                                f"pool's images in {root}/train/")
    extensions = image_extensions()
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in extensions and not p.stem.endswith(LABEL_SUFFIX)]
    if not files:
        raise ValueError(f"{folder} holds no image files (NAME{LABEL_SUFFIX}.* label maps are not images)")
    return files


def working_images(images, size: int) -> np.ndarray:
    """The images at the working scale: each resized (bilinear) to ``size`` x ``size``, 8-bit RGB.

    Parameters
    ----------
    images : sequence of path-like or arrays, or ndarray of shape (N, H, W, 3)
        Image files (read with :func:`skal_seg.image_io.read_image`) or
        arrays (converted with :func:`skal_seg.image_io.as_rgb`: grayscale,
        16-bit, float in [0, 1]); sizes may differ.
    size : int
        Side of the square each image becomes, in pixels.

    Returns
    -------
    ndarray of shape (N, size, size, 3), uint8

    Raises
    ------
    ValueError
        No images; an array of a shape or dtype :func:`~skal_seg.image_io.as_rgb` refuses;
        images at ``size`` larger than the memory available.
    TypeError
        A single path instead of a list.
    FileNotFoundError, skal_seg.image_io.ImageReadError
        A file that is missing or not an image.
    """
    if isinstance(images, (str, os.PathLike)):
        raise TypeError(f"images must be a list of files or arrays, got the single path {images!r} "
                         "(for a folder, pass pool_image_files(folder))")
    items = list(as_rgb(images, "images", stacked=True)) if isinstance(images, np.ndarray) and images.ndim == 4 \
        else list(images)
    if not items:
        raise ValueError("no images to adapt on")
    check_images_fit(len(items), size, size, "adapting")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            out.append(read_image(item, (size, size)))
            continue
        rgb = as_rgb(item, f"images[{i}]")
        if rgb.dtype.kind == "f":  # [0, 1], as read_image rounds float files
            rgb = np.rint(rgb.astype(np.float64) * 255.0)
        im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB")
        out.append(np.asarray(im.resize((size, size), Image.BILINEAR), dtype=np.uint8))
    return np.stack(out)


def _options(**values) -> argparse.Namespace:
    """train_ddpm's options (its command-line defaults) with ``values`` replacing some."""
    args = build_parser().parse_args(["--data", str(values.pop("data"))])
    unknown = sorted(set(values) - set(vars(args)))
    assert not unknown, unknown  # a typo here, not a user error
    vars(args).update(values)
    return args


def adapt_model(
    images, out: str | Path, *, minutes: float = 10.0, size: int = 128, model="embedded", crop: int | None = None,
    batch: int = 8, lr: float = 1e-4, warmup_steps: int = 10, seed: int = 0, threads: int | None = None,
    device: str = "auto", workdir: str | Path | None = None, max_steps: int | None = None, quiet: bool = False,
) -> dict:
    """Fine-tune a diffusion model on unlabeled images for ``minutes`` and write it to ``out``.

    See the module docstring for the working scale and resuming. The loss,
    EMA and checkpoints are :func:`~skal_seg.diffusion.train_ddpm.run_training`'s;
    the learning rate warms up linearly over ``warmup_steps`` and then stays
    constant (a run stopped by a time budget has no known length). Steps
    count from this adaptation's start, so the EMA warm-up
    ``min(0.999, (1 + step) / (10 + step))`` lets the exported average
    (the EMA of about the last ``step / 9`` steps) leave the starting
    weights within the run; the schedule does not depend on ``minutes``, so
    a longer budget continues the same run.

    Parameters
    ----------
    images : sequence of path-like or arrays, or ndarray of shape (N, H, W, 3)
        The pool's unlabeled images (see :func:`working_images`); never the
        test images.
    out : path-like
        Folder to write (``unet/``, ``scheduler/``, ``training.json``).
    minutes : float, default=10.0
        Budget of training time (wall clock of the steps), over every run
        of the same adaptation.
    size : int, default=128
        Working size: images become ``size`` x ``size``; also the exported
        model's input size (use the ``--size`` of the runs that will use it;
        a multiple of 8).
    model : str or path-like, default="embedded"
        The starting model: ``"embedded"`` or a ``save_pretrained`` folder
        (an earlier adaptation, say); see
        :func:`skal_seg.diffusion.models.load_diffusion_model`.
    crop : int or None, default=None
        Side of the random training crops (at most ``size``, a multiple of
        8); None: ``min(64, size)``. 64 is the embedded model's training
        crop: a 128 x 128 step costs about 4 times a 64 x 64 one, and a CPU
        run has a few hundred steps.
    batch : int, default=8
        Crops per step: half the embedded model's 16, for twice the steps in
        the same minutes (a short run gains more from more updates than from
        less noisy ones).
    lr : float, default=1e-4
        Peak learning rate (AdamW): half the embedded model's 2e-4, as the
        weights start trained; high enough to move them in a few hundred steps.
    warmup_steps : int, default=10
        Linear warm-up: AdamW's moment estimates start from zero, so the
        first steps are kept small; 10 is a few percent of a CPU run.
    seed : int, default=0
        Seed of the crops, flips, noise and timesteps.
    threads : int or None, default=None
        Torch threads while training; None: the current count.
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    workdir : path-like or None, default=None
        Checkpoint and ``log.csv`` folder; None: ``OUT.work`` beside ``out``.
    max_steps : int or None, default=None
        Stop at this many steps as well (for tests and exact comparisons).
    quiet : bool, default=False
        No progress bar and no messages.

    Returns
    -------
    dict
        The summary of :func:`~skal_seg.diffusion.train_ddpm.run_training`
        (``step``, ``session_steps``, ``wall_seconds``, ``steps_per_second``,
        ``final_smoothed_loss``, ...) with ``out`` and ``workdir``.

    Raises
    ------
    ValueError
        Bad options; no images; a work folder holding an adaptation of other settings.
    FileNotFoundError, skal_seg.diffusion.models.ModelNotAvailableError
        An image or the starting model cannot be read.
    KeyboardInterrupt
        Ctrl-C: after saving the checkpoint and saying how to resume.
    """
    crop = min(64, size) if crop is None and isinstance(size, numbers.Integral) else crop
    for name, value in (("size", size), ("crop", crop), ("batch", batch)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if crop > size:
        raise ValueError(f"crop {crop} is larger than the working size {size}")
    warmup_steps = check_budget(warmup_steps, "warmup_steps")
    minutes, lr = check_positive_or_word(minutes, "minutes", ()), check_positive_or_word(lr, "lr", ())
    out = Path(out)
    workdir = Path(workdir) if workdir is not None else out.with_name(out.name + WORK_SUFFIX)
    say = (lambda message: None) if quiet else print
    if not isinstance(images, (np.ndarray, str, os.PathLike)):
        images = list(images)  # read twice below: a generator would be empty the second time
    pixels = working_images(images, size)
    start, scheduler = load_diffusion_model(model, device="cpu", dtype=torch.float32)
    n_down = len(start.config.block_out_channels) - 1
    if size % 2 ** n_down or crop % 2 ** n_down:
        raise ValueError(f"size and crop must be multiples of {2 ** n_down} for this model, got {size} and {crop}")
    config = {**start.config, "sample_size": size}
    from_folder = embedded_model_dir() if str(model) == "embedded" else Path(str(model))
    from_card = from_folder / "training.json"
    settings = {"from": str(model), "size": size, "crop": crop, "batch": batch, "lr": lr, "warmup_steps": warmup_steps,
                "seed": seed, "n_images": len(pixels), "images_sha1": hashlib.sha1(pixels.tobytes()).hexdigest()}
    paths = None if isinstance(images, np.ndarray) else [str(p) for p in images if isinstance(p, (str, os.PathLike))]
    source = os.path.commonpath(paths) if paths and len(paths) == len(pixels) else f"{len(pixels)} arrays"
    args = _options(
        data=source, workdir=str(workdir), size=size, crop=str(crop), batch=batch, lr=lr, warmup_steps=warmup_steps,
        lr_schedule="constant", full_prob=0.0, max_steps=1_000_000 if max_steps is None else max_steps,
        max_minutes=math.inf, save_every=10, log_every=5, progress="none" if quiet else "auto", device=device,
        threads=threads, seed=seed, arch=str(model),
    )
    args.adapt = settings

    def check_resume(old: dict) -> None:
        before = old.get("adapt") or {}
        changed = [f"{k} {before.get(k)!r} there, {settings[k]!r} now" for k in _RESUME_KEYS
                   if before.get(k) != settings[k] and k != "images_sha1"]
        if not changed and before.get("images_sha1") != settings["images_sha1"]:
            changed = ["other images"]
        if changed:
            raise ValueError(f"{workdir} holds an adaptation of other settings ({'; '.join(changed[:3])}); "
                             f"use another output folder, or delete {workdir} to start afresh")

    def init(unet) -> tuple[int, float]:
        unet.load_state_dict(start.state_dict())
        say(f"adapting {model} to {len(pixels)} images at {size}x{size} for {minutes:g} min of training")
        return 0, 0.0  # this adaptation's own steps: the schedule and the EMA warm-up start here

    try:
        summary, ema = run_training(to_model_range(pixels), args, config, scheduler, init=init, total_minutes=minutes,
                                    check_resume=check_resume, say=say)
    except KeyboardInterrupt:
        say(f"run the same command again to continue (the checkpoint is in {workdir}); {out} was not written")
        raise
    if summary["session_steps"] == 0:
        say(f"already adapted for {summary['wall_seconds'] / 60:.1f} min ({summary['step']} steps); "
            "give more minutes to train further")
    card = {
        "adapted_from": str(model),
        "from_card": json.loads(from_card.read_text()) if from_card.is_file() else None,
        "steps": summary["step"], "wall_minutes": round(summary["wall_seconds"] / 60, 1), "minutes_budget": minutes,
        "final_smoothed_loss": summary["final_smoothed_loss"], "data": source, "images": len(pixels),
        "resolution": size, "crop": crop, "batch": batch, "lr": lr, "warmup_steps": warmup_steps,
        "lr_schedule": "constant", "ema_decay": args.ema_decay, "clip_grad": args.clip_grad, "seed": seed,
        "threads": threads if threads is not None else torch.get_num_threads(), "device": summary["device"],
        "steps_per_second_last_session": summary["steps_per_second"], "workdir": str(workdir),
    }
    export_model(ema, scheduler, out, card)
    say(f"wrote {out} (use --model {out}); checkpoint in {workdir}")
    return {**summary, "out": str(out), "workdir": str(workdir)}

