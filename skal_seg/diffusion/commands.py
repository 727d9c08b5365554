"""What ``skal-seg convert-adm`` does (its parser: :mod:`skal_seg.diffusion.cli`)."""

from __future__ import annotations

import argparse

from skal_seg._cli import fail
from skal_seg.diffusion.adm import convert_adm_checkpoint


def convert_adm(args: argparse.Namespace) -> int:
    """``skal-seg convert-adm``: an ADM checkpoint to a diffusers folder."""
    try:
        out = convert_adm_checkpoint(args.checkpoint, args.out_dir, num_head_channels=args.num_head_channels,
                                     image_size=args.image_size)
    except (OSError, ValueError) as err:
        raise fail(err) from None
    print(f"wrote {out} (use --model {out})")
    return 0
