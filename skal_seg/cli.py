"""Command line: ``skal-seg run`` (a benchmark on labeled images), ``skal-seg plot``, ``skal-seg report`` and
``skal-seg convert-adm`` (an ADM checkpoint to a diffusers folder).

``run`` simulates active learning on images whose ground-truth labels are all
known: each strategy queries pixels, the runner reveals their labels (it
plays the annotator) and scores every round on a labeled test split. It
compares strategies and settings; it does not label new images.

Examples
--------
The offline quickstart (shipped CamVid sample, embedded diffusion model)::

    skal-seg run --data sample --rounds 4 --budget-per-image 2 --out results/quickstart

A folder of one's own (``train/`` and ``test/`` with ``NAME.jpg`` beside
``NAME_label.png``, the class names in ``classes.txt``), 40 pixels per round::

    skal-seg run --data my_data --budget 40 --rounds 5 --size 128 --out results/mine

The benchmark on full CamVid, every strategy, three seeds::

    skal-seg run --data ../shared/data/camvid --strategies all --seeds 0 1 2 \\
        --full-supervision --cache feature-cache --out results/camvid

The paper's settings with its ADM model (a GPU machine; see docs/gpu.md)::

    skal-seg run --preset paper --model 256x256_diffusion_uncond.pt --data ../shared/data/camvid

The same with the featurizing and the per-image herding on an existing Ray
cluster, one GPU per worker (``pip install "skal-seg[ray]"``; see
docs/distributed.md)::

    skal-seg run --preset paper --model 256x256_diffusion_uncond.pt --data ../shared/data/camvid \\
        --ray-address auto --gpus-per-worker 1

Notes
-----
One function builds each subcommand's parser (``_add_run``, ``_add_plot``,
``_add_report``) and sets its handler; adding a subcommand means writing
such a pair and listing the builder in :data:`_SUBCOMMANDS`. Run options that
become :class:`~skal_seg.experiment.ExperimentConfig` fields are read in
``_config`` only. Every error the user can fix ends the command with one
line ``skal-seg: ...`` and exit status 1; an interrupted run (Ctrl-C) exits
with status 130 after saying what was saved and how to resume.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path

from skal_seg._checks import check_positive_or_word
from skal_seg.diffusion.adm import convert_adm_checkpoint, is_adm_checkpoint_path
from skal_seg.data import (
    CLASSES_FILE, check_class_names, dataset_classes, load_split, read_class_names, sample_dataset_dir,
    split_validation,
)
from skal_seg.distributed import add_ray_arguments, executor_from_args
from skal_seg.experiment import (
    CANDIDATES, NEEDS_NOISY, STRATEGIES, ExperimentConfig, candidate_pixels, fitted_featurizer, run_experiment,
    run_full_supervision, seconds_per_unet_sample,
)
from skal_seg.labeling import cli as labeling_cli
from skal_seg.plotting import markdown_summary, plot_learning_curves, plot_queried_pixels
from skal_seg.uncertainty import MI_OPTIONS

#: Name of the default feature cache inside a results folder.
DEFAULT_CACHE = ".cache"

#: Bytes of evaluation features kept in memory per run without an on-disk cache
#: (``FeatureCache``'s default limit; beyond it they are recomputed every round).
_EVAL_MEMORY_BYTES = 1024 * 2**20

# Said in the help of the benchmark commands: where a person labels images instead (skal_seg.labeling).
_LABELING_SENTENCE = ("To label images that have no ground truth yet, use a labeling project: 'skal-seg init', "
                      "'query', 'label' (a local web page), 'import'/'export', 'status', 'predict' "
                      "(docs/labeling.md).")


# `skal-seg run --preset NAME`: argument defaults replaced by the preset (flags given explicitly still win).
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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default after its help (lists space-separated, as typed); none for flags and None."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "%(default)" in text or default is None or default is False
                or default is argparse.SUPPRESS):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def _version() -> str:
    try:
        return metadata.version("skal-seg")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        from skal_seg import __version__

        return __version__


def _fail(message) -> SystemExit:
    """The exit of every user-fixable error: one line on stderr, status 1."""
    return SystemExit(f"skal-seg: {message}")


# --------------------------------------------------------------------------- argument types


def _positive_or(*words: str):
    """An argparse type: one of ``words`` or a positive number."""
    def parse(text: str) -> str | float:
        try:
            return check_positive_or_word(text if text in words else float(text), "value", words)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {' or '.join(map(repr, words))} or a positive number, "
                                             f"got {text!r}") from None
    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


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


# --------------------------------------------------------------------------- parsers


def _add_run(sub) -> None:
    d = ExperimentConfig()
    r = sub.add_parser(
        "run", formatter_class=_HelpFormatter,
        help="benchmark: simulate active learning on images with ground-truth labels and score every round",
        description=("Simulate active learning on a labeled dataset: every strategy queries pixels, their "
                     "ground-truth labels are revealed, the classifier is retrained and scored (mIoU) on the "
                     "evaluation images after every round. Prints the plan before starting; Ctrl-C saves what "
                     "is done and prints the command that resumes. " + _LABELING_SENTENCE),
    )
    r.set_defaults(handler=_run)
    g = r.add_argument_group("data")
    g.add_argument("--data", default="sample", metavar="DIR",
                   help=f"dataset folder: train/ and test/ holding NAME.EXT images (any format PIL reads) beside "
                        f"NAME_label.png class-id maps (PNG, TIFF or BMP; 255 = ignore), optionally {CLASSES_FILE}; "
                        f"or 'sample' for the shipped CamVid sample")
    g.add_argument("--classes", type=_class_list, default=None, metavar="NAMES|FILE",
                   help=f"class names, comma-separated ('road,car,sky') or a file with one per line (the first is "
                        f"class 0); default: DATA/{CLASSES_FILE}, else CamVid's 11 classes")
    g.add_argument("--size", type=_positive_int, nargs="+", default=[128], metavar="N",
                   help="working size: one number = the short side (aspect ratio kept; every image of a split "
                        "must then come out at the same size), two = height and width (every image resized to it)")
    g.add_argument("--val-fraction", type=float, default=0.1, metavar="FRACTION",
                   help="share of the train images held out of the pool as a validation split (the same images "
                        "for every seed); they are evaluated only with --eval-split val")
    g.add_argument("--pool-limit", type=_positive_int, default=None, metavar="N",
                   help="use only the first N train images")
    g.add_argument("--test-limit", type=_positive_int, default=None, metavar="N",
                   help="use only the first N test images")
    g = r.add_argument_group("rounds and budget")
    g.add_argument("--rounds", type=_positive_int, default=d.rounds, metavar="N",
                   help="query rounds; each labels one budget of pixels, retrains the classifier and scores it. "
                        "A finished run is extended by rerunning with a larger --rounds and --resume")
    budget = g.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=_positive_int, default=None, metavar="PIXELS",
                        help="pixels labeled per round, whatever the pool's size (instead of --budget-per-image)")
    budget.add_argument("--budget-per-image", type=float, default=d.budget_per_image, metavar="RATE",
                        help="pixels labeled per round per pool image (rounded, at least 1 per round)")
    g.add_argument("--candidates-per-image", type=_positive_int, default=d.candidates_per_image, metavar="N",
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
    g.add_argument("--local-budget", type=_positive_int, default=d.local_budget, metavar="N",
                   help="stage 1 (two_stage, maxherding): pixels MaxHerding picks inside each image")
    g.add_argument("--keep-global", type=float, default=d.keep_global, metavar="FRACTION",
                   help="stage 1: share of the local picks the global MaxHerding keeps, in (0, 1]")
    g.add_argument("--n-draws", type=_positive_int, default=d.n_draws, metavar="K",
                   help="noisy diffusion draws K for bald, edald and two_stage")
    g.add_argument("--entropy-weight", type=float, default=d.entropy_weight, metavar="W",
                   help="eDALD = weight x entropy + BALD mutual information (0 = BALD only)")
    g.add_argument("--bandwidth", type=_positive_or("auto"), default=d.bandwidth, metavar="auto|B",
                   help="MaxHerding RBF bandwidth: 'auto' (2 x median pairwise distance, per selection) or a number")
    g.add_argument("--herding-memory-mb", type=_positive_or("auto"), default=d.herding_memory_mb, metavar="auto|MB",
                   help="memory for a herding selection's kernel: 'auto' (half of what is available) or MB; a "
                        "kernel that does not fit is recomputed while picking, much slower (speed only)")
    g.add_argument("--mi", choices=MI_OPTIONS, default=d.mi,
                   help="eDALD's BALD term: 'paper' (the formula) or 'paper_code' (the official code's, on exp(p))")
    g.add_argument("--uherding-temperature", type=_positive_or("auto"), default=d.uherding_temperature,
                   metavar="auto|T",
                   help="Uncertainty Herding temperature: 'auto' (fitted on the labels each round) or a number")
    g.add_argument("--uherding-bandwidth", type=_positive_or("labeled", "auto"), default=d.uherding_bandwidth,
                   metavar="labeled|auto|B",
                   help="Uncertainty Herding bandwidth: 'labeled' (smallest labeled distance), 'auto' or a number")
    g = r.add_argument_group("features")
    g.add_argument("--model", default="embedded", help="'embedded', a save_pretrained folder or a hub id")
    g.add_argument("--timesteps", nargs="+", type=int, default=[50, 150, 250], metavar="T",
                   help="diffusion timesteps at which UNet features are taken and concatenated")
    g.add_argument("--feature-seed", type=int, default=d.feature_seed, metavar="SEED",
                   help="seeds the candidate pixels and the noisy draws, shared by every run")
    g.add_argument("--cache", default=None, metavar="DIR",
                   help=f"folder keeping features between runs and resumes: pool, noisy draws and evaluation "
                        f"features (GBs for CamVid). Default: OUT/{DEFAULT_CACHE} with the pool and noisy features "
                        f"only (evaluation features stay in memory); 'none' keeps nothing on disk")
    g = r.add_argument_group("evaluation")
    g.add_argument("--eval-split", choices=["test", "val"], default="test",
                   help="'val' to choose hyper-parameters without touching test")
    g.add_argument("--eval-stride", type=_positive_int, default=d.eval_stride, metavar="S",
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


def _add_convert_adm(sub) -> None:
    p = sub.add_parser("convert-adm", formatter_class=_HelpFormatter,
                       help="convert a guided-diffusion (ADM) .pt checkpoint into a diffusers folder")
    p.add_argument("checkpoint", help="ADM state dict, e.g. 256x256_diffusion_uncond.pt")
    p.add_argument("out_dir", help="new folder to write (then use --model OUT_DIR)")
    p.add_argument("--num-head-channels", type=_positive_int, default=64,
                   help="channels per attention head (64 in the released 256 models)")
    p.add_argument("--image-size", type=_positive_int, default=256, help="input size the model was trained at")
    p.set_defaults(handler=_convert_adm)


def _add_plot(sub) -> None:
    p = sub.add_parser("plot", formatter_class=_HelpFormatter,
                       help="(re)draw the learning-curve plot (RESULTS/miou.png) of a results folder")
    p.add_argument("results", help="a folder written by 'skal-seg run --out'")
    p.set_defaults(handler=_plot)


def _add_report(sub) -> None:
    p = sub.add_parser("report", formatter_class=_HelpFormatter,
                       help="print markdown tables (mIoU and seconds per round) of a results folder")
    p.add_argument("results", help="a folder written by 'skal-seg run --out'")
    p.set_defaults(handler=_report)


#: Subcommand parser builders, in the order ``--help`` lists them.
_SUBCOMMANDS = [_add_run, _add_plot, _add_report, _add_convert_adm]


def _parser(preset: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skal-seg", formatter_class=_HelpFormatter,
        description=("Pixel-level active learning for semantic segmentation: which few pixels to label next.\n\n"
                     "'run' is a benchmark (a simulation): it needs ground-truth labels for every image, reveals "
                     "the labels of the pixels each strategy queries and scores every round.\n"
                     + _LABELING_SENTENCE),
        epilog="'skal-seg COMMAND --help' lists a command's options with their defaults.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    labeling_cli.add_subcommands(sub, _HelpFormatter)  # init, query, label, import, export, status, predict
    if preset is not None:
        sub.choices["run"].set_defaults(**PRESETS[preset])
    return p


# --------------------------------------------------------------------------- plot, report


def _plot(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        print(plot_learning_curves(args.results))
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err) from None
    return 0


def _convert_adm(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        out = convert_adm_checkpoint(args.checkpoint, args.out_dir, num_head_channels=args.num_head_channels,
                                     image_size=args.image_size)
    except (OSError, ValueError) as err:
        raise _fail(err) from None
    print(f"wrote {out} (use --model {out})")
    return 0


def _report(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        print(markdown_summary(args.results), end="")
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err) from None
    return 0


# --------------------------------------------------------------------------- run


def _config(args: argparse.Namespace, strategy: str, seed: int) -> ExperimentConfig:
    """The ExperimentConfig of one run from the ``run`` options."""
    return ExperimentConfig(
        strategy=strategy, seed=seed, feature_seed=args.feature_seed, rounds=args.rounds,
        candidates_per_image=args.candidates_per_image, budget_per_image=args.budget_per_image,
        budget_per_round=args.budget, local_budget=args.local_budget, keep_global=args.keep_global,
        n_draws=args.n_draws, entropy_weight=args.entropy_weight, eval_stride=args.eval_stride,
        bandwidth=args.bandwidth, herding_memory_mb=args.herding_memory_mb, candidates=args.candidates, mi=args.mi,
        uherding_temperature=args.uherding_temperature, uherding_bandwidth=args.uherding_bandwidth,
        featurizer={"model": args.model, "timesteps": args.timesteps,
                    **({"blocks": args.blocks} if args.blocks is not None else {})},
    )


def _size(values: list[int]) -> int | tuple[int, int]:
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise _fail(f"--size takes one number (the short side) or two (height width), got {len(values)}")


def _cache_dir(args: argparse.Namespace) -> tuple[Path | None, bool]:
    """(feature cache folder or None, whether it keeps evaluation features too)."""
    if args.cache is None:
        return Path(args.out) / DEFAULT_CACHE, False
    if args.cache.lower() == "none":
        return None, False
    return Path(args.cache), True


def _mark_cache_dir(path: Path) -> None:
    """Make a cache folder ignored by git and by backup tools wherever it lies."""
    path.mkdir(parents=True, exist_ok=True)
    if not (path / ".gitignore").exists():
        (path / ".gitignore").write_text("# skal-seg feature cache: recomputable, never commit it\n*\n")
    if not (path / "CACHEDIR.TAG").exists():
        (path / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n"
                                           "# skal-seg feature cache (see https://bford.info/cachedir/)\n")


def _folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _held_out_line(n_train: int, val, fraction: float, eval_split: str) -> str | None:
    if len(val) == 0:
        return None
    use = ("they are the evaluation images (--eval-split val)" if eval_split == "val" else
           "they are not evaluated with --eval-split test, but stay out of the pool so that test and val runs "
           "query the same pool; --val-fraction 0 puts them back")
    shown = ", ".join(val.names[:5]) + (", ..." if len(val) > 5 else "")
    return (f"held out {len(val)} of {n_train} train images for validation (--val-fraction {fraction:g}): "
            f"{shown}; {use}")


def _plan(args, strategies, config, pool, evaluation, classes, class_source, featurizer, cache,
          cache_eval) -> list[str]:
    """The lines printed before any work: images, classes, budget, runs and an estimate of the feature time."""
    budget = config.budget(len(pool))
    h, w = pool.images.shape[1:3]
    if class_source == "default":
        source = f"CamVid's default: no {CLASSES_FILE} in the data folder and no --classes"
    else:
        source = "--classes" if class_source == "given" else class_source
    how = (f"--budget {args.budget}" if args.budget is not None
           else f"--budget-per-image {args.budget_per_image:g} x {len(pool)} pool images")
    n_runs = len(strategies) * len(args.seeds)
    lines = [
        f"pool {len(pool)} images, {args.eval_split} {len(evaluation)} images, working size {h}x{w} (height x width)",
        f"classes: {len(classes)} ({source})",
        f"budget: {budget} pixel{'s' if budget != 1 else ''} per round ({how}) x {args.rounds} rounds = "
        f"{budget * args.rounds} labeled pixels per run, from at most {args.candidates_per_image * len(pool)} candidates",
        f"runs: {len(strategies)} strateg{'ies' if len(strategies) != 1 else 'y'} ({', '.join(strategies)}) x "
        f"{len(args.seeds)} seed{'s' if len(args.seeds) != 1 else ''} = {n_runs}"
        + (" + full supervision" if args.full_supervision else ""),
    ]
    if budget < len(classes):
        lines.append(f"note: {budget} pixels per round for {len(classes)} classes; early rounds cannot show the "
                     f"classifier every class (raise --budget for a small pool)")
    # UNet samples = images x timesteps, for each time features are computed (see docs/reference/cli.md).
    n_t = len(featurizer.timesteps_)
    n_noisy_runs = sum(s in NEEDS_NOISY for s in strategies) * len(args.seeds)
    extra = len(args.seeds) if args.full_supervision else 0
    pool_passes = 1 if cache is not None else n_runs + extra
    noisy_passes = min(1, n_noisy_runs) if cache is not None else n_noisy_runs
    stride = args.eval_stride
    eval_bytes = len(evaluation) * math.ceil(h / stride) * math.ceil(w / stride) * featurizer.n_features_out_ * 2
    if cache_eval:
        eval_passes = 1
    elif eval_bytes <= _EVAL_MEMORY_BYTES:
        eval_passes = n_runs + extra
    else:  # neither on disk nor in memory: computed again every round
        eval_passes = n_runs * args.rounds + extra
    samples = n_t * (len(pool) * pool_passes + len(evaluation) * eval_passes
                     + args.n_draws * len(pool) * noisy_passes)
    per_sample = seconds_per_unet_sample(featurizer, pool.images[0])
    lines.append(
        f"features: at most {samples:,} UNet samples ({n_t} timesteps x: pool {len(pool)} x {pool_passes}, "
        f"{args.eval_split} {len(evaluation)} x {eval_passes}, noisy {args.n_draws} x {len(pool)} x {noisy_passes}) "
        f"x {per_sample:.3f} s (timed here on one forward) = about {_duration(samples * per_sample)}; "
        + (f"cached in {cache} (less time for features already there)" if cache is not None
           else "no cache (--cache none)"))
    return lines


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _saved_rounds(run_dir: Path) -> int:
    state = run_dir / "state.json"
    if not state.is_file():
        return 0
    return len(json.loads(state.read_text()).get("records", []))


def _finish(out: Path, title: str | None = None) -> None:
    """Plot and summary of whatever runs ``out`` holds."""
    try:
        print(f"plot: {plot_learning_curves(out, title=title)}")
    except FileNotFoundError:
        print(f"no completed round in {out} yet: no plot or summary")
        return
    summary = markdown_summary(out)
    (out / "summary.md").write_text(summary)
    print(summary)


def _flag_name(args: argparse.Namespace, setting: str) -> str:
    """The ``run`` option that sets an ExperimentConfig field (``budget_per_round`` is ``--budget``)."""
    if setting == "budget_per_round":
        return "--budget"
    return "--" + setting.replace("_", "-") if hasattr(args, setting) else setting


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    strategies = list(STRATEGIES) if args.strategies == ["all"] else args.strategies
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise _fail(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)} or 'all'")
    if args.preset == "paper" and not (
        (is_adm_checkpoint_path(args.model) and Path(args.model).is_file()) or Path(args.model).is_dir()
    ):
        raise _fail(f"--preset paper needs the paper's ADM model, got --model {args.model}: pass --model "
                    "256x256_diffusion_uncond.pt (https://github.com/openai/guided-diffusion) or a folder written "
                    "by `skal-seg convert-adm`")
    size = _size(args.size)
    planned = [(strategy, seed) for seed in args.seeds for strategy in strategies]
    configs = {key: _config(args, *key) for key in planned}  # one ExperimentConfig per run, built once
    root = sample_dataset_dir() if args.data == "sample" else Path(args.data)
    try:
        configs[planned[0]].validate()
        if not root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {root}")
        classes, class_source = dataset_classes(root, args.classes)
        train = load_split(root, "train", size=size, n_classes=len(classes), limit=args.pool_limit)
        test = load_split(root, "test", size=size, n_classes=len(classes), limit=args.test_limit)
        pool, val = split_validation(train, args.val_fraction)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err) from None
    evaluation = val if args.eval_split == "val" else test
    if len(evaluation) == 0:
        raise _fail("the evaluation split is empty (raise --val-fraction for --eval-split val)")
    try:  # every run's settings against this pool, before any work: no run may fail after others finished
        counts = [len(p) for p in candidate_pixels(pool, args.candidates_per_image, args.feature_seed,
                                                   args.candidates)]
        for config in configs.values():
            config.validate_for_pool(len(pool), counts)
    except ValueError as err:  # the message names settings; a command-line user sets them as flags
        message = re.sub(r"\b([a-z]+(?:_[a-z]+)+)\b", lambda m: _flag_name(args, m[1]), str(err))
        raise _fail(message) from None
    held_out = _held_out_line(len(train), val, args.val_fraction, args.eval_split)
    if held_out:
        print(held_out)
    dataset = "CamVid sample" if args.data == "sample" else root.resolve().name
    title = f"{dataset}: pool {len(pool)} images, mIoU on {args.eval_split} ({len(evaluation)} images)"
    out = Path(args.out)
    cache, cache_eval = _cache_dir(args)
    progress = not args.quiet
    run_dirs = {key: out / key[0] / f"seed{key[1]}" for key in planned}
    if not args.resume:  # a rerun of the same command must not silently replace finished rounds
        kept = [f"{d} ({_saved_rounds(d)} rounds)" for d in run_dirs.values() if _saved_rounds(d)]
        if kept:
            raise _fail(f"{out} already holds results: {', '.join(kept)}; add --resume to continue or extend "
                        f"them, or choose another --out (or delete those folders to start again)")
    current = None
    executor = None
    try:
        executor = executor_from_args(args)  # Ray is imported when it starts
        featurizer = fitted_featurizer(configs[planned[0]], None, progress=progress)
        for line in _plan(args, strategies, configs[planned[0]], pool, evaluation, classes, class_source, featurizer,
                          cache, cache_eval):
            print(line)
        if cache is not None:
            _mark_cache_dir(cache)
        common = dict(featurizer=featurizer, cache_dir=cache, n_classes=len(classes), cache_evaluation=cache_eval,
                      progress=progress, executor=executor)
        for seed in args.seeds:
            for strategy in strategies:
                config = configs[(strategy, seed)]
                current = run_dir = run_dirs[(strategy, seed)]
                print(f"== {strategy}, seed {seed} -> {run_dir}")
                t = time.perf_counter()
                run_experiment(config, pool, evaluation, run_dir, resume=args.resume, class_names=classes, **common)
                print(f"   done in {time.perf_counter() - t:.0f} s")
                plot_queried_pixels(pool, run_dir)
            current = None
            if args.full_supervision:
                res = run_full_supervision(config, pool, evaluation, out / "full_supervision" / f"seed{seed}.json",
                                           **common)
                print(f"== full supervision, seed {seed}: mIoU {res['miou']:.4f} on {res['taught_pixels']} pixels")
    except (ValueError, ImportError) as err:
        raise _fail(err) from None
    except KeyboardInterrupt:
        saved = ", ".join(f"{s}/seed{seed} {_saved_rounds(d)}/{args.rounds}" for (s, seed), d in run_dirs.items())
        resume = argv if "--resume" in argv else [*argv, "--resume"]
        print(f"\nskal-seg: interrupted; rounds saved: {saved}; continue with: skal-seg {shlex.join(resume)}",
              file=sys.stderr)
        if current is not None and _saved_rounds(current):
            plot_queried_pixels(pool, current)
        _finish(out, title)
        return 130
    finally:
        if executor is not None:
            executor.shutdown()
    _finish(out, title)
    if cache is not None and cache.is_dir():
        print(f"feature cache: {cache} ({_folder_mb(cache):.0f} MB; delete it freely, --cache none skips it)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``skal-seg`` command.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 130 when a run was interrupted (Ctrl-C)
        after saving its completed rounds, plot and summary.

    Raises
    ------
    SystemExit
        Bad arguments, unknown strategies, an unreadable dataset folder or
        file, invalid settings or an unreadable results folder (with a
        one-line message naming the problem, status 1; argparse errors
        status 2).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if getattr(args, "preset", None):
        args = _parser(args.preset).parse_args(argv)  # preset defaults, explicit flags still win
    if hasattr(args, "run_labeling"):
        return args.run_labeling(args)
    return args.handler(args, argv)


if __name__ == "__main__":
    sys.exit(main())
