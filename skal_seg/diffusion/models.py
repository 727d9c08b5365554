"""Loading the diffusion model (``UNet2DModel`` + ``DDPMScheduler``) behind the featurizer.

:func:`load_diffusion_model` accepts

* ``"embedded"``: the small DDPM shipped in ``skal_seg/assets/embedded_ddpm``
  (see :mod:`skal_seg.diffusion.embedded`); works offline;
* an OpenAI guided-diffusion (ADM) checkpoint file, ``.pt`` or ``.pth``
  (converted on load by :mod:`skal_seg.diffusion.adm`; ``skal-seg convert-adm`` does it
  once and writes a folder);
* a local folder written by diffusers ``save_pretrained``: a pipeline folder
  with ``unet/`` (+ ``scheduler/``) sub-folders, or a folder that is itself
  the UNet (``config.json`` + weights);
* a Hugging Face Hub id such as ``"google/ddpm-ema-bedroom-256"`` (needs the
  Hub or a local Hub cache);
* a ``UNet2DModel`` instance, or a ``(UNet2DModel, DDPMScheduler)`` tuple.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
from pathlib import Path

import torch
from diffusers import DDPMScheduler, SchedulerMixin, UNet2DModel

from skal_seg.diffusion._errors import ModelNotAvailableError, model_folder_of
from skal_seg.diffusion.adm import is_adm_checkpoint_path, load_adm_checkpoint
from skal_seg.diffusion.embedded import EMBEDDED_SCHEDULER_CONFIG, embedded_model_dir

__all__ = ["ModelNotAvailableError", "load_diffusion_model", "default_scheduler"]

# "org/name" or "name" (Hub repo id syntax); used to tell ids from mistyped paths.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Without `accelerate`, diffusers' default (low_cpu_mem_usage=True) falls back with a warning.
_LOAD_KW = {} if importlib.util.find_spec("accelerate") else {"low_cpu_mem_usage": False}


def default_scheduler() -> DDPMScheduler:
    """The DDPM schedule used when a model comes without one: 1000 linear steps (diffusers defaults).

    Returns
    -------
    diffusers.DDPMScheduler
        A new scheduler built from :data:`~skal_seg.diffusion.embedded.EMBEDDED_SCHEDULER_CONFIG`.
    """
    return DDPMScheduler(**EMBEDDED_SCHEDULER_CONFIG)


def _offline_mode() -> bool:
    # Read the variable at call time: huggingface_hub caches it at import.
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    if env in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - very old huggingface_hub
        return False


def _network_failure(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) says the Hub could not be reached."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _how_to_fix(model_id: str) -> str:
    return (
        f"To use it offline, download it once on a machine with internet access:\n"
        f"    huggingface-cli download {model_id} --local-dir DIR\n"
        f"(or `hf download {model_id} --local-dir DIR`), copy DIR here and pass the folder instead: "
        f"DiffusionFeaturizer(model=DIR). model='embedded' needs no download."
    )


def _load_scheduler(folder: Path | str, subfolder: str | None = None, **kwargs) -> DDPMScheduler:
    # Pipelines may store e.g. a DDIM config; the forward (noising) process and
    # `add_noise` only depend on the beta schedule, so DDPMScheduler reads it.
    return DDPMScheduler.from_pretrained(folder, subfolder=subfolder, **kwargs)


def _from_folder(path: Path, dtype: torch.dtype) -> tuple[UNet2DModel, DDPMScheduler]:
    if (path / "unet" / "config.json").is_file():
        unet = UNet2DModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype, **_LOAD_KW)
        if (path / "scheduler" / "scheduler_config.json").is_file():
            return unet, _load_scheduler(path, "scheduler")
        return unet, default_scheduler()
    if (path / "config.json").is_file():
        unet = UNet2DModel.from_pretrained(path, torch_dtype=dtype, **_LOAD_KW)
        # The scheduler may sit inside the UNet folder or beside it (pipeline layout
        # when `path` is the pipeline's `unet/` sub-folder).
        for folder in (path / "scheduler", path, path.parent / "scheduler"):
            if (folder / "scheduler_config.json").is_file():
                return unet, _load_scheduler(folder)
        return unet, default_scheduler()
    raise ValueError(
        f"model folder {str(path)!r} holds neither 'unet/config.json' (pipeline layout) nor "
        f"'config.json' (UNet layout); write it with diffusers `save_pretrained`"
    )


def _from_hub(model_id: str, dtype: torch.dtype) -> tuple[UNet2DModel, DDPMScheduler]:
    offline = _offline_mode()
    errors: list[str] = []
    # 1. The local Hub cache first: fast, and works offline without HF_HUB_OFFLINE.
    # 2. The Hub itself, unless offline mode is on.
    for local_only in (True,) if offline else (True, False):
        for sub in ("unet", None):
            try:
                unet = UNet2DModel.from_pretrained(
                    model_id, subfolder=sub, local_files_only=local_only, torch_dtype=dtype, **_LOAD_KW
                )
            except (OSError, ValueError) as exc:
                errors.append(f"{'cache' if local_only else 'hub'}/{sub or '.'}: {exc}")
                if not local_only and _network_failure(exc):
                    break  # unreachable: the second layout would only wait for the same timeouts
                continue
            for sched_sub in ("scheduler", None):
                try:
                    return unet, _load_scheduler(model_id, sched_sub, local_files_only=local_only)
                except (OSError, ValueError):
                    continue
            return unet, default_scheduler()
    reason = "HF_HUB_OFFLINE is set while the model is not in the local Hub cache" if offline else (
        "the Hub could not be reached or the repository holds no UNet2DModel"
    )
    raise ModelNotAvailableError(
        f"could not load the diffusers model {model_id!r}: it is not a local folder and {reason}.\n"
        f"{_how_to_fix(model_id)}\nDetails: " + " | ".join(e.splitlines()[0] for e in errors)
    )


def _check_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, str):
        table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
        if dtype not in table:
            raise ValueError(f"dtype must be one of {sorted(table)}, got {dtype!r}")
        return table[dtype]
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        return dtype
    raise ValueError(f"dtype must be 'float32', 'float16' or 'bfloat16', got {dtype!r}")


def load_diffusion_model(
    model: str | os.PathLike | UNet2DModel | tuple[UNet2DModel, SchedulerMixin] = "embedded",
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = torch.float32,
    adm_options: dict | None = None,
) -> tuple[UNet2DModel, DDPMScheduler]:
    """Load a diffusion UNet and its noise schedule, ready for inference.

    Parameters
    ----------
    model : str, path-like, UNet2DModel or (UNet2DModel, scheduler) tuple, default="embedded"
        ``"embedded"``: the DDPM shipped with the package (stored float16, cast
        to ``dtype``). An existing local folder: diffusers ``save_pretrained``
        output, either a pipeline folder (``unet/`` and optionally
        ``scheduler/``) or a UNet folder (``config.json`` + weights; the
        scheduler config is looked for in ``DIR/scheduler``, ``DIR`` and
        ``DIR/../scheduler``). A path ending in ``.pt`` / ``.pth``: an ADM
        (guided-diffusion) checkpoint, converted by
        :func:`skal_seg.diffusion.adm.load_adm_checkpoint`, with ADM's schedule (linear
        betas 1e-4 to 0.02, 1000 steps). Any other string: a Hugging Face Hub id (the
        local Hub cache is tried first; ``HF_HUB_OFFLINE=1`` stops network
        access). A ``UNet2DModel`` instance is used as is when it is already in
        eval mode on ``device`` with ``dtype``, else a deep copy is moved, so
        the caller's module is never modified. Without a scheduler the DDPM
        defaults (1000 linear steps) are used.
    device : str or torch.device, default="cpu"
        Device the UNet is moved to.
    dtype : {"float32", "float16", "bfloat16"} or torch.dtype, default=torch.float32
        Parameter dtype of the returned UNet.
    adm_options : dict or None, default=None
        Keywords of :func:`skal_seg.diffusion.adm.load_adm_checkpoint` for ADM files
        (what a state dict does not store): ``num_head_channels`` (default
        64, the released 256 x 256 models), ``image_size`` (default 256),
        ``attention_order`` (default ``"legacy"``). Ignored for other models.

    Returns
    -------
    unet : UNet2DModel
        In eval mode, gradients off, on ``device`` with ``dtype``.
    scheduler : DDPMScheduler
        Its ``add_noise`` gives the forward-diffusion samples.

    Raises
    ------
    ModelNotAvailableError (an OSError)
        The embedded weights are missing, a path-like folder does not exist,
        or a Hub id could not be loaded (offline, not cached, no such repo);
        the message says how to download it and pass a folder instead.
    ValueError
        Unknown ``model`` type, a folder without a diffusers UNet, a file
        that is not an ADM checkpoint (e.g. a diffusers weights file), a bad
        ``dtype``, or an ADM file that is not a state dict, has missing or
        unexpected keys (named) or an unsupported architecture.
    """
    torch_dtype = _check_dtype(dtype)
    device = torch.device(device)

    if isinstance(model, tuple):
        if len(model) != 2 or not isinstance(model[0], UNet2DModel) or not isinstance(model[1], SchedulerMixin):
            raise ValueError("a model tuple must be (UNet2DModel, diffusers scheduler)")
        unet, scheduler = model
    elif isinstance(model, UNet2DModel):
        unet, scheduler = model, default_scheduler()
    elif isinstance(model, (str, os.PathLike)):
        if isinstance(model, str) and model == "embedded":
            folder = embedded_model_dir()
            if not (folder / "unet" / "config.json").is_file():
                raise ModelNotAvailableError(
                    f"the embedded diffusion model is missing: expected diffusers files in {folder / 'unet'}. "
                    "Reinstall skal-seg, export a model there with "
                    "`python -m skal_seg.diffusion.train_ddpm ... --export skal_seg/assets/embedded_ddpm`, "
                    "or pass model=FOLDER / a Hub id."
                )
            unet, scheduler = _from_folder(folder, torch_dtype)
        elif is_adm_checkpoint_path(model) and not os.path.isdir(model):
            unet, scheduler = load_adm_checkpoint(model, **(adm_options or {}))
        elif os.path.isdir(model):
            unet, scheduler = _from_folder(Path(model), torch_dtype)
        elif os.path.isfile(model):
            raise ValueError(
                f"model {str(model)!r} is a file; pass the folder that holds a diffusers model "
                f"(here perhaps model={str(model_folder_of(model))!r}) "
                "or an ADM checkpoint ending in .pt / .pth"
            )
        elif isinstance(model, os.PathLike) or not _HUB_ID.match(str(model)):
            raise ModelNotAvailableError(
                f"model folder {str(model)!r} does not exist (and it is not a Hugging Face Hub id)"
            )
        else:
            unet, scheduler = _from_hub(str(model), torch_dtype)
        # Freshly loaded: ours to move in place.
        return _move(unet, device, torch_dtype).eval().requires_grad_(False), scheduler
    else:
        raise ValueError(
            "model must be 'embedded', a local folder, a Hugging Face Hub id, a UNet2DModel "
            f"or a (UNet2DModel, scheduler) tuple; got {type(model).__name__}"
        )

    # Caller's module: do not mutate it (device, dtype, train flag).
    params = list(unet.parameters())
    ready = (
        not unet.training
        and all(p.device == device or (device.index is None and p.device.type == device.type) for p in params)
        and all(p.dtype == torch_dtype for p in params)
    )
    if not ready:
        unet = _move(copy.deepcopy(unet), device, torch_dtype).eval()
    return unet, scheduler


def _move(unet: UNet2DModel, device: torch.device, dtype: torch.dtype) -> UNet2DModel:
    # Cast only when needed: diffusers warns on every `.to(dtype)` call.
    if any(p.dtype != dtype for p in unet.parameters()):
        unet = unet.to(dtype=dtype)
    return unet.to(device=device)
