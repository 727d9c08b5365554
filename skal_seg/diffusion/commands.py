"""What ``skal-seg convert-adm`` and ``skal-seg adapt`` do (their parsers: :mod:`skal_seg.diffusion.cli`)."""

from __future__ import annotations

import argparse
import shlex
import sys

from skal_seg._cli import fail
from skal_seg.diffusion.adapt import adapt_model, pool_image_files
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


def adapt(args: argparse.Namespace) -> int:
    """``skal-seg adapt``: fine-tune the diffusion model on a pool's images; 130 after Ctrl-C (checkpoint saved)."""
    try:
        files = pool_image_files(args.data, args.images)
        adapt_model(files, args.out, minutes=args.minutes, size=args.size, model=args.from_model, seed=args.seed,
                    threads=args.threads, max_steps=args.max_steps, quiet=args.quiet)
    except (OSError, ValueError) as err:  # ModelNotAvailableError is an OSError
        raise fail(err) from None
    except KeyboardInterrupt:
        print(f"skal-seg: interrupted; to continue, run again: skal-seg {shlex.join(args.argv)}",
              file=sys.stderr)
        return 130
    return 0
