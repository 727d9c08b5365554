"""What every diffusion-model loader shares: the error for a model that cannot be had, and where a model's folder is.

Below both :mod:`~skal_seg.diffusion.adm` and :mod:`~skal_seg.diffusion.models`,
which both raise it and both point users at a folder to pass as ``model=``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ModelNotAvailableError", "model_folder_of"]


class ModelNotAvailableError(OSError):
    """The requested diffusion model cannot be found locally or downloaded."""


def model_folder_of(weights_file: str | os.PathLike) -> Path:
    """The folder to pass as ``model=`` for a diffusers weights file: its pipeline folder when it sits in ``unet/``.

    Parameters
    ----------
    weights_file : path
        A weights file inside a ``save_pretrained`` folder.

    Returns
    -------
    pathlib.Path
    """
    folder = Path(weights_file).parent
    return folder.parent if folder.name == "unet" else folder
