"""OpenAI guided-diffusion (ADM) checkpoints as diffusers ``UNet2DModel`` models, and the paper's feature blocks.

The paper's features come from ADM models (``256x256_diffusion_uncond.pt``,
``lsun_bedroom.pt``, from https://github.com/openai/guided-diffusion). Those
files are plain PyTorch state dicts in ADM's own layout (``input_blocks.N...``,
``middle_block...``, ``output_blocks.N...``, ``out...``).
:func:`convert_adm_state_dict` reads the architecture off the state dict and
returns a ``UNet2DModel`` that computes what ADM's ``UNetModel`` computes,
with ADM's noise schedule (:func:`adm_scheduler`). Every ADM layer has an
exact diffusers counterpart, so no custom module is needed:

| ADM | diffusers ``UNet2DModel`` configuration |
| --- | --- |
| ``timestep_embedding`` (cos, then sin) | ``flip_sin_to_cos=True``, ``freq_shift=0`` |
| ``use_scale_shift_norm`` | ``resnet_time_scale_shift="scale_shift"`` |
| ``resblock_updown`` (ResBlocks that up/downsample) | ``downsample_type="resnet"``, ``upsample_type="resnet"``; ``ResnetDownsampleBlock2D`` / ``ResnetUpsampleBlock2D`` on levels without attention |
| attention at a level | ``AttnDownBlock2D`` / ``AttnUpBlock2D`` |
| ``num_head_channels`` | ``attention_head_dim`` |
| the middle block attention's GroupNorm | ``attn_norm_num_groups=32`` (without it diffusers builds that attention without a norm under scale-shift) |
| legacy fused ``qkv`` (rows split per head) | separate ``to_q`` / ``to_k`` / ``to_v`` weights, rows regrouped head by head |
| ``label_emb`` | ``num_class_embeds`` (the ``class_labels`` argument) |

What a state dict does not determine is a keyword: the channels per attention
head (``num_head_channels=64`` in the released 256 x 256 models and
``lsun_bedroom.pt``), the input size (``image_size=256``) and the order of the
fused ``qkv`` rows (``attention_order="legacy"``, ADM's default; ``"new"``
for models trained with ``use_new_attention_order``).

**ADM output blocks in diffusers.** ADM's decoder is a flat list of
``output_blocks``; diffusers groups the same layers into ``up_blocks`` of
``layers_per_block + 1`` layers. With ``n = num_res_blocks + 1``, ADM
``output_blocks[o]`` is layer ``r = o % n`` of ``up_blocks[o // n]``, and its
output is the output of that layer's last module: ``up_blocks[i].upsamplers.0``
for the last layer of every up block but the final one, else
``up_blocks[i].attentions.r`` where the level has attention, else
``up_blocks[i].resnets.r`` (:func:`output_block_module`). For the 256 x 256
models (``n = 3``) the paper's blocks 5, 8, 12 and 17
(:data:`PAPER_OUTPUT_BLOCKS`) are

| ADM output block | diffusers sub-module | channels | resolution |
| --- | --- | --- | --- |
| 5 | ``up_blocks.1.upsamplers.0`` | 1024 | 32 x 32 |
| 8 | ``up_blocks.2.upsamplers.0`` | 512 | 64 x 64 |
| 12 | ``up_blocks.4.resnets.0`` | 256 | 128 x 128 |
| 17 | ``up_blocks.5.resnets.2`` | 256 | 256 x 256 |

that is 1024 + 512 + 256 + 256 = 2048 channels per timestep and D = 6144 at
three timesteps (``tests/test_adm.py`` checks the mapping against OpenAI's own
``guided_diffusion`` code).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel

from skal_seg.diffusion._errors import ModelNotAvailableError, model_folder_of

__all__ = [
    "AdmArchitecture",
    "PAPER_OUTPUT_BLOCKS",
    "adm_scheduler",
    "convert_adm_checkpoint",
    "convert_adm_state_dict",
    "describe_architecture",
    "infer_adm_architecture",
    "is_adm_checkpoint_path",
    "load_adm_checkpoint",
    "load_adm_state_dict",
    "output_block_module",
    "paper_blocks",
]

#: ADM ``output_blocks`` whose outputs are the paper's features (256 x 256 layout).
PAPER_OUTPUT_BLOCKS: tuple[int, ...] = (5, 8, 12, 17)
#: File name endings read as ADM checkpoints by :func:`skal_seg.diffusion.models.load_diffusion_model`.
ADM_SUFFIXES: tuple[str, ...] = (".pt", ".pth")
_ADM_GROUPS = 32  # ADM's normalization(): GroupNorm32(32, channels), eps 1e-5
_WRAPPER_KEYS = ("state_dict", "model", "ema", "ema_model", "model_state_dict")
_ADM_UP_TYPES = {"AttnUpBlock2D", "ResnetUpsampleBlock2D", "UpBlock2D"}
_DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


@dataclass(frozen=True)
class AdmArchitecture:
    """The ADM ``UNetModel`` hyper-parameters a state dict determines (plus the keywords it does not).

    Attributes
    ----------
    in_channels, out_channels : int
        Image channels in; 6 out for learned-sigma models (epsilon and variance), else 3.
    model_channels : int
        Base channel count (``num_channels``).
    channel_mult : tuple of int
        Channel multiplier of each level.
    num_res_blocks : int
        Residual blocks per level on the way down.
    attention_levels : tuple of bool
        Whether each level has attention (ADM's ``attention_resolutions``).
    use_scale_shift_norm, resblock_updown : bool
    num_classes : int or None
        Classes of a class-conditional model.
    num_head_channels : int
    attention_order : {"legacy", "new"}
    image_size : int
    """

    in_channels: int
    out_channels: int
    model_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention_levels: tuple[bool, ...]
    use_scale_shift_norm: bool
    resblock_updown: bool
    num_classes: int | None
    num_head_channels: int
    attention_order: str
    image_size: int

    @property
    def learn_sigma(self) -> bool:
        """True when the model also predicts its variance (``out_channels == 2 * in_channels``).

        Returns
        -------
        bool
        """
        return self.out_channels == 2 * self.in_channels

    def diffusers_config(self) -> dict:
        """The ``UNet2DModel`` configuration that computes this ADM network.

        Returns
        -------
        dict
            Keyword arguments of ``UNet2DModel``.
        """
        attn, updown = self.attention_levels, self.resblock_updown
        down = ["AttnDownBlock2D" if a else ("ResnetDownsampleBlock2D" if updown else "DownBlock2D") for a in attn]
        up = ["AttnUpBlock2D" if a else ("ResnetUpsampleBlock2D" if updown else "UpBlock2D") for a in attn[::-1]]
        return {
            "sample_size": self.image_size,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "flip_sin_to_cos": True,
            "freq_shift": 0,
            "down_block_types": tuple(down),
            "up_block_types": tuple(up),
            "block_out_channels": tuple(m * self.model_channels for m in self.channel_mult),
            "layers_per_block": self.num_res_blocks,
            "downsample_type": "resnet" if updown else "conv",
            "upsample_type": "resnet" if updown else "conv",
            "attention_head_dim": self.num_head_channels,
            "norm_num_groups": _ADM_GROUPS,
            "attn_norm_num_groups": _ADM_GROUPS,
            "norm_eps": 1e-5,
            "resnet_time_scale_shift": "scale_shift" if self.use_scale_shift_norm else "default",
            "num_class_embeds": self.num_classes,
        }


def adm_scheduler(learn_sigma: bool = True) -> DDPMScheduler:
    """ADM's noise schedule: 1000 steps, betas linear from 1e-4 to 0.02.

    Parameters
    ----------
    learn_sigma : bool, default=True
        Sets ``variance_type="learned_range"`` (ADM's learned variance) instead of ``"fixed_small"``.

    Returns
    -------
    diffusers.DDPMScheduler

    Notes
    -----
    diffusers builds the betas in float32 where ADM uses float64; the
    resulting ``alphas_cumprod`` differ by about 1e-7 relative, far below
    what the features can tell apart.
    """
    return DDPMScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
        variance_type="learned_range" if learn_sigma else "fixed_small", prediction_type="epsilon",
    )


# ----------------------------------------------------------------------- reading files


def is_adm_checkpoint_path(path) -> bool:
    """True when ``path`` names a file ending in ``.pt`` or ``.pth`` (existing or not).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    bool
    """
    return isinstance(path, (str, os.PathLike)) and str(path).lower().endswith(ADM_SUFFIXES)


def load_adm_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an ADM checkpoint file: a state dict, optionally wrapped (``{"state_dict": ...}`` etc.).

    Parameters
    ----------
    path : str or path-like
        A ``.pt`` / ``.pth`` file written by ``torch.save`` (read with ``weights_only=True``).

    Returns
    -------
    dict of str to torch.Tensor
        On CPU; a ``module.`` prefix (DataParallel) is removed.

    Raises
    ------
    skal_seg.diffusion.models.ModelNotAvailableError
        The file does not exist.
    ValueError
        A folder, a file torch cannot read as tensors, a state dict of a
        diffusers ``UNet2DModel`` (pass its folder instead), or anything that
        is not a mapping of names to tensors.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder, not an ADM checkpoint file; pass a diffusers folder as model=FOLDER")
    if not path.is_file():
        raise ModelNotAvailableError(
            f"ADM checkpoint {str(path)!r} does not exist; download it from https://github.com/openai/guided-diffusion "
            "(e.g. 256x256_diffusion_uncond.pt) and pass its path"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(
            f"{str(path)!r} is not a PyTorch state dict (torch.load failed: {str(exc).splitlines()[0][:200]})"
        ) from None
    if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                       for k, v in obj.items()):
        raise ValueError(
            f"{str(path)!r} is not a state dict (a dict of parameter names to tensors); got {type(obj).__name__}"
            + (f" with keys {sorted(map(str, obj))[:5]}" if isinstance(obj, dict) else "")
        )
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
    if "conv_in.weight" in sd or any(k.startswith("down_blocks.") for k in sd):
        raise ValueError(
            f"{str(path)!r} holds a diffusers UNet2DModel, not an ADM checkpoint; pass its folder instead: "
            f"model={str(model_folder_of(path))!r}"
        )
    return sd


# --------------------------------------------------------------- architecture inference


def _shape(sd, key: str) -> torch.Size:
    if key not in sd:
        raise ValueError(f"not an ADM checkpoint this converter supports: missing key {key!r}")
    return sd[key].shape


def _block_indices(sd, prefix: str) -> list[int]:
    pat = re.compile(rf"^{prefix}\.(\d+)\.")
    found = {int(m.group(1)) for k in sd if (m := pat.match(k))}
    return sorted(found)


def _sub_has(sd, prefix: str, suffix: str) -> bool:
    return f"{prefix}.{suffix}" in sd


def infer_adm_architecture(
    state_dict: dict[str, torch.Tensor],
    num_head_channels: int = 64,
    image_size: int = 256,
    attention_order: str = "legacy",
) -> AdmArchitecture:
    """Read an ADM ``UNetModel``'s hyper-parameters off its state dict.

    Parameters
    ----------
    state_dict : dict of str to torch.Tensor
        ADM layout (``time_embed``, ``input_blocks``, ``middle_block``, ``output_blocks``, ``out``).
    num_head_channels : int, default=64
        Channels per attention head (not stored in the weights; 64 in the released 256 x 256 models).
    image_size : int, default=256
        Input size (not stored in the weights); becomes ``sample_size``.
    attention_order : {"legacy", "new"}, default="legacy"
        Row order of the fused ``qkv`` projection: ``"legacy"`` (ADM default,
        the released models: split per head) or ``"new"`` (q, k, v thirds).

    Returns
    -------
    AdmArchitecture

    Raises
    ------
    ValueError
        A key the inference needs is missing, or an architecture this
        converter does not support (named in the message): a first level with
        channel multiplier other than 1, levels whose residual blocks
        disagree on attention, downsampling without parameters
        (``conv_resample=False``), 3 x 3 skip convolutions, channels not
        divisible by ``num_head_channels`` or by 32.
    """
    if attention_order not in ("legacy", "new"):
        raise ValueError(f"attention_order must be 'legacy' or 'new', got {attention_order!r}")
    for name, v in (("num_head_channels", num_head_channels), ("image_size", image_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    sd = state_dict
    unsupported = "unsupported ADM architecture: "
    ch0, in_ch = _shape(sd, "input_blocks.0.0.weight")[:2]
    mc = _shape(sd, "time_embed.0.weight")[1]
    if ch0 != mc:
        raise ValueError(unsupported + f"the first level has {ch0} channels for {mc} base channels "
                         "(channel_mult[0] != 1 has no diffusers equivalent)")
    out_ch = _shape(sd, "out.2.weight")[0]
    num_classes = int(sd["label_emb.weight"].shape[0]) if "label_emb.weight" in sd else None

    outs = _block_indices(sd, "output_blocks")
    if not outs or outs != list(range(len(outs))):
        raise ValueError(f"not an ADM checkpoint: output_blocks indices {outs[:20]} are not 0..N-1")
    # The first output block with an upsampler closes the deepest level: its index is num_res_blocks.
    def extra_layer(o):
        subs = _block_indices(sd, f"output_blocks.{o}")
        return [s for s in subs if s > 0 and not _sub_has(sd, f"output_blocks.{o}.{s}", "qkv.weight")]

    ups = [o for o in outs if extra_layer(o)]
    per_level = ups[0] + 1 if ups else len(outs)
    n_levels = len(outs) // per_level
    nrb = per_level - 1
    if nrb < 1 or len(outs) % per_level or ups != [per_level * (i + 1) - 1 for i in range(n_levels - 1)]:
        raise ValueError(unsupported + f"the {len(outs)} output_blocks do not form levels of equal size "
                         f"(upsampling in blocks {ups})")
    ins = _block_indices(sd, "input_blocks")
    if ins != list(range(1 + n_levels * nrb + n_levels - 1)):
        raise ValueError(unsupported + f"{len(ins)} input_blocks do not match {n_levels} levels of "
                         f"{nrb} residual blocks (expected {1 + n_levels * nrb + n_levels - 1})")

    mult, attn = [], []
    for level in range(n_levels):
        first = 1 + level * (nrb + 1)
        c = _shape(sd, f"input_blocks.{first}.0.out_layers.3.weight")[0]
        if c % mc or c % _ADM_GROUPS:
            raise ValueError(unsupported + f"level {level} has {c} channels (not a multiple of {mc} and of 32)")
        mult.append(c // mc)
        has = {_sub_has(sd, f"input_blocks.{first + r}.1", "qkv.weight") for r in range(nrb)}
        up_first = (n_levels - 1 - level) * (nrb + 1)
        has |= {_sub_has(sd, f"output_blocks.{up_first + r}.1", "qkv.weight") for r in range(nrb + 1)}
        if len(has) != 1:
            raise ValueError(unsupported + f"level {level} has attention after some residual blocks only")
        attn.append(has.pop())
        if attn[-1] and c % num_head_channels:
            raise ValueError(f"level {level} has {c} channels, not divisible by num_head_channels={num_head_channels}; "
                             "pass the num_head_channels the model was trained with")
    if n_levels > 1:
        down = f"input_blocks.{nrb + 1}.0"
        if _sub_has(sd, down, "op.weight"):
            updown = False
        elif _sub_has(sd, down, "in_layers.2.weight"):
            updown = True
        else:
            raise ValueError(unsupported + "downsampling without parameters (conv_resample=False)")
    else:
        updown = False
    emb_rows = _shape(sd, "input_blocks.1.0.emb_layers.1.weight")[0]
    scale_shift = emb_rows == 2 * mult[0] * mc
    if any(k.endswith("skip_connection.weight") and v.ndim == 4 and v.shape[-1] != 1 for k, v in sd.items()):
        raise ValueError(unsupported + "3 x 3 skip convolutions (ResBlock use_conv=True)")
    mid_c = mult[-1] * mc
    if mid_c % num_head_channels:
        raise ValueError(f"the middle block has {mid_c} channels, not divisible by num_head_channels={num_head_channels}")
    return AdmArchitecture(
        in_channels=int(in_ch), out_channels=int(out_ch), model_channels=int(mc), channel_mult=tuple(mult),
        num_res_blocks=nrb, attention_levels=tuple(attn), use_scale_shift_norm=bool(scale_shift),
        resblock_updown=updown, num_classes=num_classes, num_head_channels=num_head_channels,
        attention_order=attention_order, image_size=image_size,
    )


# ------------------------------------------------------------------------- key mapping


def _resnet_keys(adm: str, dif: str) -> dict[str, str]:
    pairs = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
             "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
    return {f"{adm}.{a}.{p}": f"{dif}.{d}.{p}" for a, d in pairs.items() for p in ("weight", "bias")}


def _layer_prefixes(arch: AdmArchitecture) -> list[tuple[str, str, str]]:
    """(kind, ADM prefix, diffusers prefix) of every layer; kind in resnet/attention/conv."""
    L, nrb, updown = len(arch.channel_mult), arch.num_res_blocks, arch.resblock_updown
    out = [("conv", "input_blocks.0.0", "conv_in"), ("conv", "out.0", "conv_norm_out"), ("conv", "out.2", "conv_out"),
           ("conv", "time_embed.0", "time_embedding.linear_1"), ("conv", "time_embed.2", "time_embedding.linear_2"),
           ("resnet", "middle_block.0", "mid_block.resnets.0"), ("attention", "middle_block.1", "mid_block.attentions.0"),
           ("resnet", "middle_block.2", "mid_block.resnets.1")]
    if arch.num_classes is not None:
        out.append(("embedding", "label_emb", "class_embedding"))
    for level in range(L):
        first = 1 + level * (nrb + 1)
        for r in range(nrb):
            out.append(("resnet", f"input_blocks.{first + r}.0", f"down_blocks.{level}.resnets.{r}"))
            if arch.attention_levels[level]:
                out.append(("attention", f"input_blocks.{first + r}.1", f"down_blocks.{level}.attentions.{r}"))
        if level < L - 1:
            down = f"down_blocks.{level}.downsamplers.0"
            if updown:
                out.append(("resnet", f"input_blocks.{first + nrb}.0", down))
            else:
                out.append(("conv", f"input_blocks.{first + nrb}.0.op", f"{down}.conv"))
    for i in range(L):
        level = L - 1 - i
        for r in range(nrb + 1):
            o = i * (nrb + 1) + r
            out.append(("resnet", f"output_blocks.{o}.0", f"up_blocks.{i}.resnets.{r}"))
            sub = 1
            if arch.attention_levels[level]:
                out.append(("attention", f"output_blocks.{o}.1", f"up_blocks.{i}.attentions.{r}"))
                sub = 2
            if r == nrb and level > 0:
                up = f"up_blocks.{i}.upsamplers.0"
                if updown:
                    out.append(("resnet", f"output_blocks.{o}.{sub}", up))
                else:
                    out.append(("conv", f"output_blocks.{o}.{sub}.conv", f"{up}.conv"))
    return out


def _split_qkv(t: torch.Tensor, heads: int, order: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v rows of ADM's fused (3C, ...) qkv weight or bias.

    Legacy order stores the rows head by head, ``[q_0, k_0, v_0, q_1, ...]``
    (``QKVAttentionLegacy`` reshapes to (heads, 3 * ch) before splitting);
    the new order stores ``[q, k, v]`` thirds. Taking thirds of a legacy
    tensor raises no error but computes something else.
    """
    c = t.shape[0] // 3
    if order == "legacy":
        per_head = t.reshape(heads, 3, c // heads, *t.shape[1:])
        return tuple(per_head[:, j].reshape(c, *t.shape[1:]) for j in range(3))
    return tuple(t.reshape(3, c, *t.shape[1:]).unbind(0))


def _needs_skip(sd: dict, resnet: str) -> bool:
    c_in, c_out = sd.get(f"{resnet}.in_layers.0.weight"), sd.get(f"{resnet}.out_layers.3.weight")
    if c_in is None or c_out is None:  # reported as missing anyway; guess from what is there
        return f"{resnet}.skip_connection.weight" in sd
    return c_in.shape[0] != c_out.shape[0]


def _convert_keys(sd: dict, arch: AdmArchitecture) -> tuple[dict[str, torch.Tensor], set[str], list[str]]:
    """diffusers state dict, ADM keys used, ADM keys expected but missing."""
    new, used, missing = {}, set(), []

    def take(key):
        if key not in sd:
            missing.append(key)
            return None
        used.add(key)
        return sd[key].float()

    for kind, a, d in _layer_prefixes(arch):
        if kind == "resnet":
            for ak, dk in _resnet_keys(a, d).items():
                if ak.split(".")[-2] == "skip_connection" and not _needs_skip(sd, a):
                    continue  # same channels in and out: identity skip, no parameters
                if (v := take(ak)) is not None:
                    new[dk] = v
        elif kind == "attention":
            for p in ("weight", "bias"):
                if (v := take(f"{a}.norm.{p}")) is not None:
                    new[f"{d}.group_norm.{p}"] = v
                if (v := take(f"{a}.qkv.{p}")) is not None:
                    heads = v.shape[0] // 3 // arch.num_head_channels
                    for name, part in zip(("to_q", "to_k", "to_v"), _split_qkv(v, heads, arch.attention_order)):
                        new[f"{d}.{name}.{p}"] = part.squeeze(-1).contiguous()
                if (v := take(f"{a}.proj_out.{p}")) is not None:
                    new[f"{d}.to_out.0.{p}"] = v.squeeze(-1).contiguous()
        elif kind == "embedding":
            if (v := take(f"{a}.weight")) is not None:
                new[f"{d}.weight"] = v
        else:
            for p in ("weight", "bias"):
                if (v := take(f"{a}.{p}")) is not None:
                    new[f"{d}.{p}"] = v
    return new, used, missing


def convert_adm_state_dict(
    state_dict: dict[str, torch.Tensor],
    num_head_channels: int = 64,
    image_size: int = 256,
    attention_order: str = "legacy",
) -> UNet2DModel:
    """An ADM state dict as a float32 ``UNet2DModel`` computing the same function.

    Parameters
    ----------
    state_dict : dict of str to torch.Tensor
        ADM ``UNetModel.state_dict()`` (any float dtype; converted to float32).
    num_head_channels, image_size, attention_order
        As in :func:`infer_adm_architecture`.

    Returns
    -------
    UNet2DModel
        In eval mode, float32, CPU. ``unet(x, t, class_labels=y).sample``
        equals ADM's ``model(x, t, y)`` (6 channels for learned-sigma models).

    Raises
    ------
    ValueError
        Unsupported architectures (see :func:`infer_adm_architecture`), or
        missing / unexpected keys, named in the message.
    """
    arch = infer_adm_architecture(state_dict, num_head_channels, image_size, attention_order)
    new, used, missing = _convert_keys(state_dict, arch)
    extra = sorted(set(state_dict) - used)
    if missing or extra:
        parts = [f"{what} keys {keys[:8]}" + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
                 for what, keys in (("missing", missing), ("unexpected", extra)) if keys]
        raise ValueError(f"the ADM state dict does not match the architecture read from it "
                         f"({describe_architecture(arch)}): " + "; ".join(parts))
    unet = UNet2DModel(**arch.diffusers_config())
    try:
        unet.load_state_dict(new, strict=True)
    except RuntimeError as exc:  # shapes that contradict the inferred architecture
        raise ValueError(f"unsupported ADM architecture ({describe_architecture(arch)}): "
                         f"{str(exc).splitlines()[-1].strip()[:300]}") from None
    return unet.eval()


def describe_architecture(arch: AdmArchitecture) -> str:
    """One line naming an architecture's hyper-parameters, for messages.

    Parameters
    ----------
    arch : AdmArchitecture

    Returns
    -------
    str
    """
    res = [arch.image_size >> lv for lv, a in enumerate(arch.attention_levels) if a]
    return (f"num_channels={arch.model_channels}, channel_mult={','.join(map(str, arch.channel_mult))}, "
            f"num_res_blocks={arch.num_res_blocks}, attention at {','.join(map(str, res)) or 'no level'} px "
            f"of {arch.image_size}, learn_sigma={arch.learn_sigma}, "
            f"use_scale_shift_norm={arch.use_scale_shift_norm}, resblock_updown={arch.resblock_updown}, "
            f"num_classes={arch.num_classes}")


def load_adm_checkpoint(
    path: str | os.PathLike, num_head_channels: int = 64, image_size: int = 256, attention_order: str = "legacy"
) -> tuple[UNet2DModel, DDPMScheduler]:
    """Read an ADM ``.pt`` / ``.pth`` file into a ``UNet2DModel`` and ADM's scheduler.

    Parameters
    ----------
    path : str or path-like
    num_head_channels, image_size, attention_order
        As in :func:`infer_adm_architecture`.

    Returns
    -------
    unet : UNet2DModel
        float32, CPU, eval mode.
    scheduler : DDPMScheduler
        :func:`adm_scheduler`.

    Raises
    ------
    skal_seg.diffusion.models.ModelNotAvailableError
        The file does not exist.
    ValueError
        See :func:`load_adm_state_dict` and :func:`convert_adm_state_dict`.
    """
    sd = load_adm_state_dict(path)
    try:
        unet = convert_adm_state_dict(sd, num_head_channels, image_size, attention_order)
    except ValueError as exc:
        raise ValueError(f"{str(path)!r}: {exc}") from None
    return unet, adm_scheduler(learn_sigma=unet.config.out_channels == 2 * unet.config.in_channels)


def convert_adm_checkpoint(
    path: str | os.PathLike, out_dir: str | os.PathLike, num_head_channels: int = 64, image_size: int = 256,
    attention_order: str = "legacy",
) -> Path:
    """Convert an ADM checkpoint once into a diffusers pipeline folder (``skal-seg convert-adm``).

    Parameters
    ----------
    path : str or path-like
        The ADM ``.pt`` / ``.pth`` file.
    out_dir : str or path-like
        Folder to write: ``unet/`` (``config.json`` +
        ``diffusion_pytorch_model.safetensors``, float32) and
        ``scheduler/scheduler_config.json``. It must not exist or be empty.
    num_head_channels, image_size, attention_order
        As in :func:`infer_adm_architecture`.

    Returns
    -------
    pathlib.Path
        ``out_dir``; pass it as ``model=out_dir`` (loads offline, without re-converting).

    Raises
    ------
    FileExistsError
        ``out_dir`` exists and is not an empty folder.
    skal_seg.diffusion.models.ModelNotAvailableError, ValueError
        As in :func:`load_adm_checkpoint`.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"output folder {str(out)!r} exists and is not empty; choose a new folder")
    unet, scheduler = load_adm_checkpoint(path, num_head_channels, image_size, attention_order)
    tmp = out.with_name(out.name + ".partial")
    unet.save_pretrained(tmp / "unet", safe_serialization=True)
    scheduler.save_pretrained(tmp / "scheduler")
    if out.exists():
        out.rmdir()
    tmp.rename(out)  # a half-written folder never carries the final name
    return out


# ------------------------------------------------------------------ output blocks / paper


def _check_adm_layout(unet: UNet2DModel) -> None:
    cfg = unet.config
    if not set(cfg.up_block_types) <= _ADM_UP_TYPES or not cfg.flip_sin_to_cos or cfg.freq_shift != 0:
        raise ValueError(
            "ADM output blocks are defined for UNet2DModels converted from an ADM checkpoint; this one's timestep "
            f"embedding (flip_sin_to_cos={cfg.flip_sin_to_cos}, freq_shift={cfg.freq_shift}) or up_block_types "
            f"{list(cfg.up_block_types)} differ from ADM's"
        )


def output_block_module(unet: UNet2DModel, index: int) -> str:
    """Name of the ``unet`` sub-module whose output is ADM ``output_blocks[index]``'s output.

    Parameters
    ----------
    unet : UNet2DModel
        In ADM's layout (see the module documentation).
    index : int
        ADM output block, ``0 <= index < len(up_blocks) * (layers_per_block + 1)``.

    Returns
    -------
    str
        A name for ``unet.get_submodule``, e.g. ``"up_blocks.1.upsamplers.0"``.

    Raises
    ------
    ValueError
        ``unet`` is not in ADM's layout, or ``index`` is out of range.
    """
    _check_adm_layout(unet)
    n = unet.config.layers_per_block + 1
    total = len(unet.up_blocks) * n
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < total:
        raise ValueError(f"ADM output block {index!r} out of range: this model has output blocks 0..{total - 1}")
    i, r = divmod(index, n)
    block = unet.up_blocks[i]
    if r == n - 1 and getattr(block, "upsamplers", None):
        return f"up_blocks.{i}.upsamplers.0"
    if getattr(block, "attentions", None):
        return f"up_blocks.{i}.attentions.{r}"
    return f"up_blocks.{i}.resnets.{r}"


def paper_blocks(unet: UNet2DModel) -> list[tuple[int, str, int]]:
    """The paper's feature blocks (ADM ``output_blocks`` 5, 8, 12, 17) of a converted 256 x 256 ADM model.

    Parameters
    ----------
    unet : UNet2DModel

    Returns
    -------
    list of (int, str, int)
        (ADM output block, diffusers sub-module name, channels) per block.

    Raises
    ------
    ValueError
        ``unet`` is not in ADM's 256 x 256 layout (6 levels of 2 residual
        blocks: 18 output blocks), so the paper's indices name no defined block.
    """
    try:
        _check_adm_layout(unet)
        n_out = len(unet.up_blocks) * (unet.config.layers_per_block + 1)
        ok = len(unet.up_blocks) == 6 and unet.config.layers_per_block == 2
    except ValueError:
        n_out, ok = None, False
    if not ok:
        what = f"{n_out} output blocks" if n_out is not None else "no ADM output blocks"
        raise ValueError(
            "blocks='paper' means ADM output_blocks 5, 8, 12, 17 of the 256x256 ADM layout (6 levels of 2 residual "
            f"blocks, 18 output blocks); this model has {what}. Load an ADM checkpoint (model='...pt' or a "
            "`skal-seg convert-adm` folder) or pass up_blocks indices (blocks=None: every decoder stage)"
        )
    out = []
    for o in PAPER_OUTPUT_BLOCKS:
        name = output_block_module(unet, o)
        i, r = divmod(o, unet.config.layers_per_block + 1)
        out.append((o, name, int(unet.up_blocks[i].resnets[r].out_channels)))
    return out
