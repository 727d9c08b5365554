"""The parsers of ``skal-seg run``, ``plot`` and ``report`` (the benchmark on labeled images).

Parsers only: each subcommand names its handler in :mod:`skal_seg.benchmark.commands`, which
``skal-seg`` imports when the command runs, so ``--help`` imports neither torch nor diffusers.
Run options that become :class:`~skal_seg.engine.settings.ExperimentConfig` fields take their
defaults from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from skal_seg._cli import HelpFormatter, add_filter_bank_arguments, positive_int, positive_or
from skal_seg.data import CLASSES_FILE, check_class_names, read_class_names
from skal_seg.distributed import add_ray_arguments
from skal_seg.engine.settings import CANDIDATES, HEADS, NOISY_ROWS, STRATEGIES, ExperimentConfig
from skal_seg.layouts import LAYOUTS

#: Name of the default feature cache inside a results folder.
DEFAULT_CACHE = ".cache"

#: Said in the help of the benchmark commands: where a person labels images instead (skal_seg.labeling).
LABELING_SENTENCE = ("To label images that have no ground truth yet, use a labeling project: 'skal-seg init', "
                      "'query', 'label' (a local web page), 'import'/'export', 'status', 'predict' "
                      "(docs/labeling.md).")


#: ``skal-seg run --preset NAME``: argument defaults replaced by the preset (flags given explicitly still win).
# "paper": the official protocol of the paper (arXiv 2510.22229), run with an ADM model (--model FILE.pt).
PRESETS: dict[str, dict] = {
    "paper": {
        "size": [256],
        "candidates_per_image": 10_000,
        "candidates": "valid",  # drawn among non-ignore pixels
        "budget_per_image": 0.1,
        "local_budget": 50,
        "keep_global": 0.5,
        "n_draws": 5,
        "timesteps": [50, 150, 250],
        "rounds": 10,
        "val_fraction": 0.0,  # the whole train split is the pool
        "pool_limit": None,
        "blocks": "paper",  # ADM output_blocks 5, 8, 12, 17: D = 6144
    },
}


def _class_list(text: str) -> tuple[str, ...]:
    try:
        if "," in text:
            return check_class_names(text.split(","), where="--classes")
        if Path(text).is_file():
            return read_class_names(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    raise argparse.ArgumentTypeError(
        f"expected class names separated by commas, or a file of names one per line; {text!r} is neither")



def _add_patterns(group) -> None:
    """The file-pattern options of ``run``: the pool's and the test split's images, labels and regions of interest.

    Parameters
    ----------
    group : argparse argument group
    """
    group.add_argument("--images", default=None, metavar="PATTERN",
                       help="the pool's images, relative to --data, {id} standing for the part of the name an image "
                            "shares with its label: 'training/images/{id}_training.tif' (* and ? match within a "
                            "name)")
    group.add_argument("--labels", default=None, metavar="PATTERN",
                       help="the pool's label maps, same {id}: 'training/1st_manual/{id}_manual1.gif'")
    group.add_argument("--roi", default=None, metavar="PATTERN",
                       help="the pool's regions of interest, same {id} (0 = outside): pixels outside are never "
                            "candidates and never scored")
    group.add_argument("--test-images", default=None, metavar="PATTERN", help="the test split's images")
    group.add_argument("--test-labels", default=None, metavar="PATTERN", help="the test split's label maps")
    group.add_argument("--test-roi", default=None, metavar="PATTERN", help="the test split's regions of interest")
    group.add_argument("--test-fraction", type=float, default=None, metavar="F",
                       help="instead of --test-images: hold out this share of the labeled images as the test "
                            "split (a seeded draw, the same in every run)")


def _add_run(sub) -> None:
    d = ExperimentConfig()
    r = sub.add_parser(
        "run", formatter_class=HelpFormatter,
        help="benchmark: simulate active learning on images with ground-truth labels and score every round",
        description=("Simulate active learning on a labeled dataset: every strategy queries pixels, their "
                     "ground-truth labels are revealed, the classifier is retrained and scored (mIoU) on the "
                     "evaluation images after every round. Prints the plan before starting; Ctrl-C saves what "
                     "is done and prints the command that resumes. " + LABELING_SENTENCE),
    )
    r.set_defaults(handler="skal_seg.benchmark.commands:run")
    g = r.add_argument_group("data (docs/own-data.md)")
    g.add_argument("--data", default="sample", metavar="DIR",
                   help=f"dataset folder: the place --images and the other patterns are relative to. Without "
                        f"patterns or --layout: train/ and test/ holding NAME.EXT images (any format PIL reads) beside "
                        f"NAME_label.png class-id maps (PNG, TIFF or BMP; 255 = ignore), optionally {CLASSES_FILE}; "
                        f"options may also live in DIR/dataset.json; 'sample': the shipped CamVid sample")
    _add_patterns(g)
    g.add_argument("--layout", choices=list(LAYOUTS), default=None,
                   help="a public dataset as distributed: its files, test split and label map")
    g.add_argument("--scene", default=None, metavar="NAME",
                   help="keep only the images of this scene (ade20k: 'bedroom' gives ADE-Bed)")
    g.add_argument("--label-map", default=None, metavar="VALUE:NAME,...",
                   help="what the stored label values are: '0:background,255:vessel' (class ids follow the order "
                        "of the names; '#RRGGBB' values for colour-coded label files)")
    g.add_argument("--ignore", nargs="*", default=None, metavar="VALUE",
                   help="stored values that mean 'no label' (never scored, teach nothing); '--ignore' alone: none. "
                        "Default: the layout's, else 255 unless the label map names it")
    g.add_argument("--classes", type=_class_list, default=None, metavar="NAMES|FILE",
                   help=f"class names, comma-separated ('road,car,sky') or a file with one per line: value i is "
                        f"class i (instead of --label-map); default: DATA/{CLASSES_FILE}, else CamVid's 11 classes")
    g.add_argument("--size", type=positive_int, nargs="+", default=[128], metavar="N",
                   help="working size: one number = the short side (aspect ratio kept; every image of a split "
                        "must then come out at the same size), two = height and width (every image resized to it). "
                        "Labels are shrunk to it (nearest neighbour) and runs are scored there; to score at the "
                        "images' own size, give their size ('skal-seg predict' and 'status --eval' always do)")
    g.add_argument("--val-fraction", type=float, default=0.1, metavar="FRACTION",
                   help="share of the train images held out of the pool as a validation split (the same images "
                        "for every seed); they are evaluated only with --eval-split val")
    g.add_argument("--pool-limit", type=positive_int, default=None, metavar="N",
                   help="use only the first N pool images (by name)")
    g.add_argument("--test-limit", type=positive_int, default=None, metavar="N",
                   help="use only the first N test images")
    g = r.add_argument_group("rounds and budget")
    g.add_argument("--rounds", type=positive_int, default=d.rounds, metavar="N",
                   help="query rounds; each labels one budget of pixels, retrains the classifier and scores it. "
                        "A finished run is extended by rerunning with a larger --rounds and --resume")
    budget = g.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=positive_int, default=None, metavar="PIXELS",
                        help="pixels labeled per round, whatever the pool's size (instead of --budget-per-image)")
    budget.add_argument("--budget-per-image", type=float, default=d.budget_per_image, metavar="RATE",
                        help="pixels labeled per round per pool image (rounded, at least 1 per round)")
    g.add_argument("--candidates-per-image", type=positive_int, default=d.candidates_per_image, metavar="N",
                   help="random candidate pixels per pool image: the pixels strategies choose from (the same for "
                        "every strategy and seed)")
    g.add_argument("--candidates", choices=CANDIDATES, default=d.candidates,
                   help="'valid': candidates only among labeled (non-ignore) pixels, the paper's protocol; "
                        "'all': among all pixels, as in a real labeling session (the annotator may answer void)")
    g = r.add_argument_group("strategies")
    g.add_argument("--strategies", nargs="+", default=["two_stage"], metavar="NAME",
                   help=f"any of {', '.join(STRATEGIES)}, or 'all'")
    g.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED",
                   help="one run per seed per strategy (seeds the queries and the classifier)")
    g.add_argument("--local-budget", type=positive_int, default=d.local_budget, metavar="N",
                   help="stage 1 (two_stage, maxherding): pixels MaxHerding picks inside each image")
    g.add_argument("--keep-global", type=float, default=d.keep_global, metavar="FRACTION",
                   help="stage 1: share of the local picks the global MaxHerding keeps, in (0, 1]")
    g.add_argument("--n-draws", type=positive_int, default=d.n_draws, metavar="K",
                   help="noisy diffusion draws K for bald, edald and two_stage")
    g.add_argument("--entropy-weight", type=float, default=d.entropy_weight, metavar="W",
                   help="eDALD = weight x entropy + BALD mutual information (0 = BALD only)")
    g.add_argument("--bandwidth", type=positive_or("auto"), default=d.bandwidth, metavar="auto|B",
                   help="MaxHerding RBF bandwidth: 'auto' (2 x median pairwise distance, per selection) or a number")
    g.add_argument("--herding-memory-mb", type=positive_or("auto"), default=d.herding_memory_mb, metavar="auto|MB",
                   help="memory for a herding selection's kernel: 'auto' (half of what is available) or MB; a "
                        "kernel that does not fit is recomputed while picking, much slower (speed only)")
    g.add_argument("--noisy-rows", choices=NOISY_ROWS, default=d.noisy_rows,
                   help="noisy draws of a forwarded image kept (two_stage): 'stage2' only the rows stage 2 may read "
                        "(small cache, but an image that got a label is forwarded again in later rounds), 'all' "
                        "every candidate's (n-draws x the pool's cache, no image forwarded twice); same picks")
    # No argparse choices: the names live with the samplers (skal_seg.uncertainty.MI_OPTIONS), which this parser
    # must not import; the run checks the value before any work and lists them.
    g.add_argument("--mi", default=d.mi, metavar="paper|paper_code",
                   help="eDALD's BALD term: 'paper' (the formula) or 'paper_code' (the official code's, on exp(p))")
    g.add_argument("--uherding-temperature", type=positive_or("auto"), default=d.uherding_temperature,
                   metavar="auto|T",
                   help="Uncertainty Herding temperature: 'auto' (fitted on the labels each round) or a number")
    g.add_argument("--uherding-bandwidth", type=positive_or("labeled", "auto"), default=d.uherding_bandwidth,
                   metavar="labeled|auto|B",
                   help="Uncertainty Herding bandwidth: 'labeled' (smallest labeled distance), 'auto' or a number")
    g = r.add_argument_group("features")
    g.add_argument("--features", default=None, metavar="embedded|filters|embedded+filters|MODEL[+filters]",
                   help="per-pixel features: the diffusion model's ('embedded', or a model folder or hub id, as "
                        "--model), the filter bank's ('filters': ilastik's filters, no noisy draws, so not with "
                        "bald, edald or two_stage), or both side by side ('embedded+filters', 'MODEL+filters'); "
                        "default: the --model's")
    g.add_argument("--model", default="embedded", help="'embedded', a save_pretrained folder or a hub id")
    g.add_argument("--classifier", choices=HEADS, default=d.head,
                   help="the segmentation head: 'mlp' (the paper's) or 'forest' (scikit-learn's random forest, "
                        "100 trees, as ilastik-style tools use)")
    g.add_argument("--timesteps", nargs="+", type=int, default=[50, 150, 250], metavar="T",
                   help="diffusion timesteps at which UNet features are taken and concatenated")
    add_filter_bank_arguments(g)
    g.add_argument("--pad", type=int, default=0, metavar="PX",
                   help="reflect the diffusion model's input by PX pixels on every side (a multiple of 8 for the "
                        "embedded model) so border pixels are not outliers; 0 = none (docs/features.md, Borders)")
    g.add_argument("--input-size", type=int, default=None, metavar="PX",
                   help="size the diffusion model sees the images at (default: its training size, 128 for the "
                        "embedded model); larger keeps thin structures, at (PX / 128) ** 2 the time")
    g.add_argument("--feature-seed", type=int, default=d.feature_seed, metavar="SEED",
                   help="seeds the candidate pixels and the noisy draws, shared by every run")
    g.add_argument("--cache", default=None, metavar="DIR",
                   help=f"folder keeping features between runs and resumes: pool, noisy draws and evaluation "
                        f"features (GBs for CamVid). Default: OUT/{DEFAULT_CACHE} with the pool and noisy features "
                        f"only (evaluation features stay in memory); 'none' keeps nothing on disk")
    g = r.add_argument_group("evaluation")
    g.add_argument("--eval-split", choices=["test", "val"], default="test",
                   help="'val' to choose hyper-parameters without touching test")
    g.add_argument("--eval-stride", type=positive_int, default=d.eval_stride, metavar="S",
                   help="evaluate every s-th pixel in both directions of every image (1 = every pixel)")
    g.add_argument("--full-supervision", action="store_true",
                   help="also train on every candidate pixel (the ceiling)")
    add_ray_arguments(r.add_argument_group("scale-out on Ray (docs: Featurizing on a Ray cluster)"))
    g = r.add_argument_group("output")
    g.add_argument("--out", default="results", metavar="DIR", help="results folder")
    g.add_argument("--resume", action="store_true",
                   help="continue the runs saved in OUT from their last completed round (or extend them to more "
                        "--rounds); other settings must match")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="'paper': the paper's settings (256 px, 10,000 candidates among non-ignore pixels, 10 rounds, "
                        "ADM blocks 5/8/12/17, whole train split as pool); needs --model ADM.pt or a convert-adm "
                        "folder; options given explicitly still win")
    r.set_defaults(blocks=None)  # set by presets only


def _add_plot(sub) -> None:
    p = sub.add_parser("plot", formatter_class=HelpFormatter,
                       help="(re)draw the learning-curve plot (RESULTS/miou.png) of a results folder")
    p.add_argument("results", help="a folder written by 'skal-seg run --out'")
    p.set_defaults(handler="skal_seg.benchmark.commands:plot")


def _add_report(sub) -> None:
    p = sub.add_parser("report", formatter_class=HelpFormatter,
                       help="print markdown tables (mIoU and seconds per round) of a results folder")
    p.add_argument("results", help="a folder written by 'skal-seg run --out'")
    p.set_defaults(handler="skal_seg.benchmark.commands:report")


def add_subcommands(sub: argparse._SubParsersAction, preset: str | None = None) -> None:
    """Add ``run``, ``plot`` and ``report`` to the ``skal-seg`` subparsers.

    Parameters
    ----------
    sub : argparse subparsers action
    preset : str, optional
        A key of :data:`PRESETS`: its values become the ``run`` defaults (options given explicitly still win).
    """
    _add_run(sub)
    _add_plot(sub)
    _add_report(sub)
    if preset is not None:
        sub.choices["run"].set_defaults(**PRESETS[preset])
