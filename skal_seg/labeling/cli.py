"""The parsers of ``skal-seg init|query|label|import|export|status|predict``: a labeling project from the command line.

:func:`add_subcommands` adds them to the ``skal-seg`` parser; each names its
handler in :mod:`skal_seg.labeling.commands`, imported only when it runs.
"""

from __future__ import annotations

import argparse

from skal_seg._cli import HelpFormatter, add_filter_bank_arguments, positive_int
from skal_seg.distributed import add_ray_arguments
from skal_seg.engine.settings import HEADS, STRATEGIES

#: The subcommands this module adds.
COMMANDS = ("init", "query", "label", "import", "export", "status", "predict")


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Add the labeling subcommands to the ``skal-seg`` subparsers.

    Parameters
    ----------
    sub : argparse subparsers action
        From ``ArgumentParser.add_subparsers``.
    """
    def add_parser(*args, **kwargs):
        return sub.add_parser(*args, formatter_class=HelpFormatter, **kwargs)

    project_help = "the project folder (made by 'skal-seg init')"
    p = add_parser("init", help="create a labeling project over a folder of images")
    p.add_argument("project", help="new project folder")
    p.add_argument("--images", required=True, metavar="DIR|PATTERN",
                   help="folder of images (any layout, any format PIL reads), or a file pattern with {id} "
                        "('training/images/{id}_training.tif'; * and ? match within a name), relative to --data")
    p.add_argument("--roi", default=None, metavar="PATTERN",
                   help="with an --images pattern: each image's region of interest, same {id} "
                        "('training/mask/{id}_training_mask.gif'; 0 = outside): pixels outside are never queried "
                        "and get no class (255) from predict")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="the folder --images and --roi are relative to (default: the current folder)")
    p.add_argument("--classes", required=True, help="class names, comma-separated, or a text file with one per line")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="glob pattern of files to leave out, e.g. '*_label.png'; repeat it for several")
    p.add_argument("--size", type=positive_int, default=None, metavar="N",
                   help="working size: features are computed at N x N pixels (default 128)")
    # the old name of --size, kept working for one release (the handler says so)
    p.add_argument("--working-size", type=positive_int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--candidates-per-image", type=int, default=None, help="candidate pixels per image (default 2500)")
    p.add_argument("--local-budget", type=int, default=None, help="MaxHerding picks per image (default 50)")
    p.add_argument("--keep-global", type=float, default=None, help="share of local picks kept globally (default 0.5)")
    p.add_argument("--n-draws", type=int, default=None, help="noisy diffusion draws for eDALD (default 5)")
    p.add_argument("--seed", type=int, default=None, help="seeds the queries and the classifier (default 0)")
    p.add_argument("--model", default=None, help="'embedded' (default), a save_pretrained folder or a hub id")
    p.add_argument("--features", default=None, metavar="embedded|filters|embedded+filters|MODEL[+filters]",
                   help="per-pixel features, as in 'skal-seg run --features' (default: the --model's)")
    p.add_argument("--classifier", choices=HEADS, default=None, help="the head: 'mlp' (default) or 'forest'")
    p.add_argument("--strategy", choices=STRATEGIES, default=None,
                   help="the queries' default strategy (default: uherding, which led the benchmarks; "
                        "docs/labeling.md says why)")
    p.add_argument("--timesteps", nargs="+", type=int, default=None, help="diffusion timesteps (default 50 150 250)")
    add_filter_bank_arguments(p)
    p.add_argument("--pad", type=int, default=0, metavar="PX",
                   help="reflect the diffusion model's input by PX pixels on every side, as in 'skal-seg run --pad'")
    p.add_argument("--input-size", type=int, default=None, metavar="PX",
                   help="size the diffusion model sees the images at, as in 'skal-seg run --input-size'")
    p.set_defaults(handler="skal_seg.labeling.commands:init")

    p = add_parser("query", help="one round: train on the answers so far and ask for the next pixels")
    p.add_argument("project", help=project_help)
    p.add_argument("--budget", type=int, required=True, help="pixels to ask for")
    p.add_argument("--strategy", choices=STRATEGIES, default=None,
                   help="this round's strategy (default: the project's, set by init --strategy); recorded with the round")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_ray_arguments(p)
    p.set_defaults(handler="skal_seg.labeling.commands:query")

    p = add_parser("label", help="answer the pending queries in a local web page")
    p.add_argument("project", help=project_help)
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    p.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    p.add_argument("--no-browser", action="store_true", help="print the address instead of opening a browser")
    p.set_defaults(handler="skal_seg.labeling.commands:label")

    p = add_parser("import", help="import answers from a CSV (image,y,x,label) or a Label Studio JSON export")
    p.add_argument("project", help=project_help)
    p.add_argument("file", help="a CSV file (image,y,x,label) or a Label Studio JSON export")
    p.add_argument("--format", choices=["auto", "csv", "labelstudio"], default="auto",
                   help="'auto': .json = Label Studio, anything else CSV")
    p.set_defaults(handler="skal_seg.labeling.commands:import_answers")

    p = add_parser("export", help="write the pending queries for another tool (CSV or Label Studio)")
    p.add_argument("project", help=project_help)
    p.add_argument("--format", choices=["csv", "labelstudio"], default="csv",
                   help="'csv': queries.csv (image,y,x,label); 'labelstudio': tasks with KeyPoint predictions")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--all", action="store_true", help="also the answered queries, with their labels")
    p.add_argument("--image-prefix", default="", help="Label Studio: prefix of each task's image path or URL")
    p.set_defaults(handler="skal_seg.labeling.commands:export")

    p = add_parser("status", help="rounds, answers per class, pending queries")
    p.add_argument("project", help=project_help)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--eval", default=None, metavar="DIR",
                   help="report mIoU on labeled images, at their own size as predict masks them: a folder of "
                        "NAME.png + NAME_label.png (project class ids), or the folder the --eval-* patterns are "
                        "relative to")
    p.add_argument("--eval-images", default=None, metavar="PATTERN",
                   help="the evaluation images, {id} standing for the part of the name shared with the label: "
                        "'test/images/{id}_test.tif'")
    p.add_argument("--eval-labels", default=None, metavar="PATTERN",
                   help="their label maps, same {id}: 'test/1st_manual/{id}_manual1.gif'")
    p.add_argument("--eval-roi", default=None, metavar="PATTERN",
                   help="their regions of interest, same {id} (0 = outside, never scored)")
    p.add_argument("--label-map", default=None, metavar="VALUE:NAME,...",
                   help="what the evaluation labels' values are, naming project classes: '0:background,255:vessel' "
                        "(default: value i is project class i)")
    p.add_argument("--ignore", nargs="*", default=None, metavar="VALUE",
                   help="evaluation label values that mean 'no label' (default 255 unless the label map names it)")
    p.set_defaults(handler="skal_seg.labeling.commands:status")

    p = add_parser("predict", help="full-resolution masks (PNG) and overlays with the current classifier")
    p.add_argument("project", help=project_help)
    p.add_argument("--images", default=None, help="folder or file of images (default: the project's images)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="glob pattern of files to leave out; repeat it for several")
    p.add_argument("--overwrite", action="store_true",
                   help="replace masks and overlays already in --out (never an image)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler="skal_seg.labeling.commands:predict")
