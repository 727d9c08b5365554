"""The parsers of ``skal-seg convert-adm`` and ``skal-seg adapt`` (their handlers: :mod:`skal_seg.diffusion.commands`)."""

from __future__ import annotations

import argparse

from skal_seg._cli import HelpFormatter, positive_int, positive_or


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Add ``convert-adm`` and ``adapt`` to the ``skal-seg`` subparsers."""
    p = sub.add_parser("convert-adm", formatter_class=HelpFormatter,
                       help="convert a guided-diffusion (ADM) .pt checkpoint into a diffusers folder")
    p.add_argument("checkpoint", help="ADM state dict, e.g. 256x256_diffusion_uncond.pt")
    p.add_argument("out_dir", help="new folder to write (then use --model OUT_DIR)")
    p.add_argument("--num-head-channels", type=positive_int, default=64,
                   help="channels per attention head (64 in the released 256 models)")
    p.add_argument("--image-size", type=positive_int, default=256, help="input size the model was trained at")
    p.set_defaults(handler="skal_seg.diffusion.commands:convert_adm")

    p = sub.add_parser(
        "adapt", formatter_class=HelpFormatter,
        help="fine-tune the diffusion model on a pool's own unlabeled images (then use --model OUT)",
        description=(
            "Fine-tune the diffusion model (the embedded one by default) on a pool's unlabeled images for a "
            "budget of training minutes, and write a model folder for --model. Only the pool's (training) "
            "images are read, never labels nor test images. The checkpoint lives in OUT.work beside OUT: "
            "running the same command again continues (after Ctrl-C, up to the budget; with more --minutes, "
            "further). See docs/adapt.md."),
    )
    p.add_argument("--data", required=True, metavar="DIR",
                   help="dataset folder: the images of DIR/train/ (NAME_label.* files are not images), or those "
                        "--images names; 'sample' for the shipped CamVid sample")
    p.add_argument("--images", default=None, metavar="PATTERN",
                   help="pool images as an {id} file pattern relative to --data, e.g. "
                        "'training/images/{id}_training.tif'")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    p.add_argument("--minutes", type=positive_or(), default=10.0, metavar="M",
                   help="budget of training minutes (wall clock), summed over every run of this command")
    p.add_argument("--size", type=positive_int, default=128, metavar="N",
                   help="working size: images are resized to N x N and the model is trained on crops of them; "
                        "also the model's input size when featurizing (cost about (N/128)^2); a multiple of 8")
    p.add_argument("--from", dest="from_model", default="embedded", metavar="MODEL",
                   help="starting model: 'embedded' or a save_pretrained folder (an earlier adaptation, say)")
    p.add_argument("--seed", type=int, default=0, help="seed of the crops, noise and timesteps")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N", help="torch threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar nor messages")
    p.add_argument("--max-steps", type=positive_int, default=None, help=argparse.SUPPRESS)  # tests
    p.set_defaults(handler="skal_seg.diffusion.commands:adapt")
