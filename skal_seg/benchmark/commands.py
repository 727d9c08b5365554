"""What ``skal-seg run``, ``plot`` and ``report`` do (their parsers: :mod:`skal_seg.benchmark.cli`).

``run`` simulates active learning on images whose ground-truth labels are all
known: each strategy queries pixels, the runner reveals their labels (it
plays the annotator) and scores every round on a labeled test split. It
compares strategies and settings; it does not label new images. Every error
the user can fix ends the command with one line ``skal-seg: ...`` and exit
status 1; an interrupted run (Ctrl-C) exits with status 130 after saying
what was saved and how to resume.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import sys
import time
from pathlib import Path

from skal_seg._cli import fail, filter_bank_options
from skal_seg.benchmark.cli import DEFAULT_CACHE
from skal_seg.benchmark.plotting import (
    markdown_summary,
    plot_learning_curves,
    plot_queried_pixels,
)
from skal_seg.benchmark.runner import run_experiment, run_full_supervision
from skal_seg.data import sample_dataset_dir, split_validation
from skal_seg.datasets import Dataset, dataset_spec, load_dataset
from skal_seg.diffusion.adm import is_adm_checkpoint_path
from skal_seg.distributed import executor_from_args
from skal_seg.engine.features import (
    FeatureCache,
    candidate_pixels,
    diffusion_part,
    fitted_featurizer,
    seconds_per_unet_sample,
)
from skal_seg.engine.settings import (
    NEEDS_NOISY,
    SCORE_EVERY_CANDIDATE,
    STRATEGIES,
    ExperimentConfig,
    features_and_model,
)
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.filter_bank import FilterBankFeaturizer
from skal_seg.metrics import classes_present, miou_scope

#: Bytes of evaluation features kept in memory per run without an on-disk cache
#: (``FeatureCache``'s default limit; beyond it they are recomputed every round).
_EVAL_MEMORY_BYTES = 1024 * 2**20


def plot(args: argparse.Namespace) -> int:
    """``skal-seg plot``."""
    try:
        print(plot_learning_curves(args.results))
    except (FileNotFoundError, ValueError) as err:
        raise fail(err) from None
    return 0


def report(args: argparse.Namespace) -> int:
    """``skal-seg report``."""
    try:
        print(markdown_summary(args.results), end="")
    except (FileNotFoundError, ValueError) as err:
        raise fail(err) from None
    return 0


# --------------------------------------------------------------------------- run


#: ``run`` options passed to :func:`~skal_seg.datasets.dataset_spec` as the parameters of the same name.
_DATA_OPTIONS = ("layout", "images", "labels", "roi", "test_images", "test_labels", "test_roi", "test_fraction",
                 "label_map", "ignore", "classes", "scene")


def _config(args: argparse.Namespace, strategy: str, seed: int) -> ExperimentConfig:
    """The ExperimentConfig of one run from the ``run`` options."""
    features, model = features_and_model(args.features, args.model)
    return ExperimentConfig(
        strategy=strategy, seed=seed, feature_seed=args.feature_seed, rounds=args.rounds,
        candidates_per_image=args.candidates_per_image, budget_per_image=args.budget_per_image,
        budget_per_round=args.budget, local_budget=args.local_budget, keep_global=args.keep_global,
        n_draws=args.n_draws, entropy_weight=args.entropy_weight, eval_stride=args.eval_stride,
        bandwidth=args.bandwidth, herding_memory_mb=args.herding_memory_mb, noisy_rows=args.noisy_rows,
        candidates=args.candidates, mi=args.mi,
        uherding_temperature=args.uherding_temperature, uherding_bandwidth=args.uherding_bandwidth,
        features=features, head=args.classifier,
        filter_bank=filter_bank_options(args),
        featurizer={"model": model, "timesteps": args.timesteps,
                    **({"blocks": args.blocks} if args.blocks is not None else {}),
                    **({"pad": args.pad} if args.pad else {}),
                    **({"input_size": args.input_size} if args.input_size else {})},
    )


def _size(values: list[int]) -> int | tuple[int, int]:
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise fail(f"--size takes one number (the short side) or two (height width), got {len(values)}")


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


def _plan(args, strategies, config, pool, evaluation, data: Dataset, featurizer, cache, cache_eval) -> list[str]:
    """The lines printed before any work: the data (files, classes, label values, warnings), the images, what
    mIoU is taken over, budget, runs and an estimate of the feature time."""
    budget = config.budget(len(pool))
    h, w = pool.images.shape[1:3]
    classes = data.classes
    how = (f"--budget {args.budget}" if args.budget is not None
           else f"--budget-per-image {args.budget_per_image:g} x {len(pool)} pool images")
    n_runs = len(strategies) * len(args.seeds)
    scope = miou_scope(classes, classes_present(evaluation.labels, len(classes)))
    lines = [
        *data.plan_lines(),
        f"pool {len(pool)} images, {args.eval_split} {len(evaluation)} images, working size {h}x{w} (height x width)",
        f"evaluation: {scope} on the {args.eval_split} images"
        + (" (inside their regions of interest)" if evaluation.roi is not None else ""),
        f"budget: {budget} pixel{'s' if budget != 1 else ''} per round ({how}) x {args.rounds} rounds = "
        f"{budget * args.rounds} labeled pixels per run, from at most {args.candidates_per_image * len(pool)} candidates",
        f"runs: {len(strategies)} strateg{'ies' if len(strategies) != 1 else 'y'} ({', '.join(strategies)}) x "
        f"{len(args.seeds)} seed{'s' if len(args.seeds) != 1 else ''} = {n_runs}"
        + (" + full supervision" if args.full_supervision else ""),
    ]
    if budget < len(classes):
        lines.append(f"note: {budget} pixels per round for {len(classes)} classes; early rounds cannot show the "
                     f"classifier every class (raise --budget for a small pool)")
    filters = None if isinstance(featurizer, DiffusionFeaturizer) else _filter_bank_line(featurizer, pool, evaluation)
    if filters is not None:
        lines.append(filters)
    featurizer = diffusion_part(featurizer)
    if featurizer is None:  # the filter bank alone: no UNet, no noisy draws
        return lines
    # UNet samples = images x timesteps, for each time features are computed (see docs/reference/cli.md).
    n_t = len(featurizer.timesteps_)
    n_noisy_runs = sum(s in NEEDS_NOISY for s in strategies) * len(args.seeds)
    # noisy_rows "stage2": an image whose local picks changed (it got a label) is forwarded again, with its UNet
    # batch, in each later round of a stage-2 run (bald and edald keep every row)
    stage2_runs = sum(s in NEEDS_NOISY and s not in SCORE_EVERY_CANDIDATE for s in strategies) * len(args.seeds)
    again = 0 if args.noisy_rows == "all" else (
        stage2_runs * max(0, args.rounds - 2) * min(len(pool), budget * featurizer.batch_size_))
    extra = len(args.seeds) if args.full_supervision else 0
    pool_passes = 1  # one feature cache serves every run of the invocation
    noisy_passes = min(1, n_noisy_runs) if cache is not None else n_noisy_runs
    stride = args.eval_stride
    eval_bytes = len(evaluation) * math.ceil(h / stride) * math.ceil(w / stride) * featurizer.n_features_out_ * 2
    if cache_eval or cache is not None or eval_bytes <= _EVAL_MEMORY_BYTES:
        eval_passes = 1  # in memory, or on disk when too large for it
    else:  # --cache none and too large for memory: computed again every round
        eval_passes = n_runs * args.rounds + extra
    samples = n_t * (len(pool) * pool_passes + len(evaluation) * eval_passes
                     + args.n_draws * (len(pool) * noisy_passes + again))
    per_sample = seconds_per_unet_sample(featurizer, pool.images[0])
    lines.append(
        f"features: at most {samples:,} UNet samples ({n_t} timesteps x: pool {len(pool)} x {pool_passes}, "
        f"{args.eval_split} {len(evaluation)} x {eval_passes}, noisy {args.n_draws} x ({len(pool)} x {noisy_passes}"
        + (f" + {again:,} forwarded again, --noisy-rows all spares them" if again else "") + ")) "
        f"x {per_sample:.3f} s (timed here on one forward) = about {_duration(samples * per_sample)}; "
        + (f"cached in {cache} (less time for features already there)" if cache is not None
           else "no cache (--cache none)"))
    return lines


def _filter_bank_line(featurizer, pool, evaluation) -> str:
    """The plan's line on the filter bank's share of the features: its time on one pool image, timed here."""
    bank = featurizer if isinstance(featurizer, FilterBankFeaturizer) else dict(featurizer.featurizers)["filterbank"]
    t = time.perf_counter()
    bank.transform(pool.images[:1])
    seconds = time.perf_counter() - t
    n = len(pool) + len(evaluation)
    return (f"features: filter bank ({bank.n_features_out_} columns, fitted on the pool) {seconds:.2f} s per image "
            f"(timed here) x {n} images = about {_duration(seconds * n)}")


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


def run(args: argparse.Namespace) -> int:
    """``skal-seg run``: every strategy and seed asked for, the plan first, Ctrl-C saves and says how to resume."""
    argv = args.argv
    strategies = list(STRATEGIES) if args.strategies == ["all"] else args.strategies
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise fail(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)} or 'all'")
    if args.preset == "paper" and not (
        (is_adm_checkpoint_path(args.model) and Path(args.model).is_file()) or Path(args.model).is_dir()
    ):
        raise fail(f"--preset paper needs the paper's ADM model, got --model {args.model}: pass --model "
                    "256x256_diffusion_uncond.pt (https://github.com/openai/guided-diffusion) or a folder written "
                    "by `skal-seg convert-adm`")
    size = _size(args.size)
    planned = [(strategy, seed) for seed in args.seeds for strategy in strategies]
    root = sample_dataset_dir() if args.data == "sample" else Path(args.data)
    try:
        configs = {key: _config(args, *key) for key in planned}  # one ExperimentConfig per run, built once
        for config in configs.values():  # every strategy against the features, before any work
            config.validate()
        if not root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {root}")
        # every option is the dataset_spec parameter of the same name; every split's label values are checked
        # against the classes before any image is decoded
        spec = dataset_spec(root, **{k: getattr(args, k) for k in _DATA_OPTIONS})
        data = load_dataset(root, spec, size=size, pool_limit=args.pool_limit, test_limit=args.test_limit)
        train, test, classes = data.pool, data.test, data.classes
        pool, val = split_validation(train, args.val_fraction)
    except (FileNotFoundError, ValueError) as err:
        raise fail(err) from None
    evaluation = val if args.eval_split == "val" else test
    if len(evaluation) == 0:
        raise fail("the evaluation split is empty (raise --val-fraction for --eval-split val)")
    try:  # every run's settings against this pool, before any work: no run may fail after others finished
        counts = [len(p) for p in candidate_pixels(pool, args.candidates_per_image, args.feature_seed,
                                                   args.candidates)]
        for config in configs.values():
            config.validate_for_pool(len(pool), counts)
    except ValueError as err:  # the message names settings; a command-line user sets them as flags
        message = re.sub(r"\b([a-z]+(?:_[a-z]+)+)\b", lambda m: _flag_name(args, m[1]), str(err))
        raise fail(message) from None
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
            raise fail(f"{out} already holds results: {', '.join(kept)}; add --resume to continue or extend "
                        f"them, or choose another --out (or delete those folders to start again)")
    current = None
    executor = None
    try:
        executor = executor_from_args(args)  # Ray is imported when it starts
        featurizer = fitted_featurizer(configs[planned[0]], None, progress=progress, images=pool.images)
        for line in _plan(args, strategies, configs[planned[0]], pool, evaluation, data, featurizer, cache,
                          cache_eval):
            print(line)
        if cache is not None:
            _mark_cache_dir(cache)
        # One feature cache for every run: the evaluation features are computed once per invocation.
        common = dict(featurizer=featurizer, cache_dir=cache, n_classes=len(classes),
                      feature_cache=FeatureCache(cache, persist_optional=cache_eval),
                      progress=progress, executor=executor)
        for seed in args.seeds:
            for strategy in strategies:
                config = configs[(strategy, seed)]
                current = run_dir = run_dirs[(strategy, seed)]
                print(f"== {strategy}, seed {seed} -> {run_dir}")
                t = time.perf_counter()
                run_experiment(config, pool, evaluation, run_dir, resume=args.resume, class_names=classes,
                               label_map=data.label_map, **common)
                print(f"   done in {time.perf_counter() - t:.0f} s")
                plot_queried_pixels(pool, run_dir)
            current = None
            if args.full_supervision:
                res = run_full_supervision(config, pool, evaluation, out / "full_supervision" / f"seed{seed}.json",
                                           label_map=data.label_map, resume=args.resume, **common)
                print(f"== full supervision, seed {seed}: mIoU {res['miou']:.4f} on {res['taught_pixels']} pixels")
    except (ValueError, ImportError) as err:
        raise fail(err) from None
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
