"""The parser of ``skal-seg convert-adm`` (its handler: :mod:`skal_seg.diffusion.commands`)."""

from __future__ import annotations

import argparse

from skal_seg._cli import HelpFormatter, positive_int


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Add ``convert-adm`` to the ``skal-seg`` subparsers."""
    p = sub.add_parser("convert-adm", formatter_class=HelpFormatter,
                       help="convert a guided-diffusion (ADM) .pt checkpoint into a diffusers folder")
    p.add_argument("checkpoint", help="ADM state dict, e.g. 256x256_diffusion_uncond.pt")
    p.add_argument("out_dir", help="new folder to write (then use --model OUT_DIR)")
    p.add_argument("--num-head-channels", type=positive_int, default=64,
                   help="channels per attention head (64 in the released 256 models)")
    p.add_argument("--image-size", type=positive_int, default=256, help="input size the model was trained at")
    p.set_defaults(handler="skal_seg.diffusion.commands:convert_adm")
