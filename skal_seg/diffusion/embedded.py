"""The diffusion model that ships inside the package.

A small DDPM (``UNet2DModel`` + ``DDPMScheduler``, 1000 steps) trained by this
project on the unlabeled CamVid train images, so that the default
:class:`~skal_seg.featurizer.DiffusionFeaturizer` works offline. Its model
card is ``skal_seg/assets/embedded_ddpm/README.md``; the training script is
:mod:`skal_seg.diffusion.train_ddpm`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

#: Architecture of the embedded UNet (4.3M parameters). Input 128 x 128 RGB
#: in [-1, 1]; trained on 64 x 64 random crops (the network is convolutional,
#: so it runs on 128 x 128 inputs unchanged).
EMBEDDED_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 3,
    "out_channels": 3,
    "layers_per_block": 1,
    "block_out_channels": (32, 64, 128, 128),
    "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    "norm_num_groups": 8,
    "attention_head_dim": 32,
}

#: A wider variant for longer training runs (e.g. on a GPU; ``--arch wide`` of
#: :mod:`skal_seg.diffusion.train_ddpm`): channels 64-128-256-256 and self-attention at
#: 32 x 32 *and* 16 x 16 (plus the mid block), GroupNorm with 4 channels per
#: group as in :data:`EMBEDDED_UNET_CONFIG`. 18,073,283 parameters, 36.1 MB as
#: float16 safetensors (the package keeps shipped weights at most 40 MB);
#: features D = (256 + 256 + 128 + 64) x 3 timesteps = 2112, twice the
#: embedded model's 1056.
WIDE_UNET_CONFIG: dict[str, Any] = {
    **EMBEDDED_UNET_CONFIG,
    "block_out_channels": (64, 128, 256, 256),
    "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    "norm_num_groups": 16,
}

#: The named architectures :mod:`skal_seg.diffusion.train_ddpm` trains (``--arch``).
UNET_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "embedded": EMBEDDED_UNET_CONFIG,
    "wide": WIDE_UNET_CONFIG,
}

#: The DDPM schedule the embedded model was trained with (diffusers defaults).
EMBEDDED_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
}


def embedded_model_dir() -> Path:
    """Folder of the shipped model (``save_pretrained`` layout: ``unet/``, ``scheduler/``).

    Returns
    -------
    pathlib.Path
        The ``skal_seg/assets/embedded_ddpm`` folder.
    """
    return Path(str(resources.files("skal_seg") / "assets" / "embedded_ddpm"))
