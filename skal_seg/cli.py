"""Command line: ``skal-seg run`` (active-learning runs), ``skal-seg plot`` and ``skal-seg report``.

Examples
--------
The offline quickstart (shipped CamVid sample, embedded diffusion model)::

    skal-seg run --data sample --rounds 4 --budget-per-image 2 --out results/quickstart

The benchmark on full CamVid, every strategy, three seeds::

    skal-seg run --data ../shared/data/camvid --strategies all --seeds 0 1 2 \\
        --full-supervision --cache feature-cache --out results/camvid
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from skal_seg.data import load_split, sample_dataset_dir, split_validation
from skal_seg._validation import check_bandwidth
from skal_seg.experiment import STRATEGIES, ExperimentConfig, fitted_featurizer, run_experiment, run_full_supervision
from skal_seg.plotting import markdown_summary, plot_learning_curves, plot_queried_pixels


def _bandwidth(text: str) -> str | float:
    try:
        return check_bandwidth(text if text == "auto" else float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skal-seg", description="Pixel-level active learning for semantic segmentation.")
    sub = p.add_subparsers(dest="command", required=True)
    d = ExperimentConfig()
    r = sub.add_parser("run", help="run active learning for one or more strategies and seeds")
    r.add_argument("--data", default="sample",
                   help="dataset folder (NAME.png + NAME_label.png in train/ and test/), or 'sample' for the shipped CamVid sample")
    r.add_argument("--strategies", nargs="+", default=["two_stage"],
                   help=f"any of {', '.join(STRATEGIES)}, or 'all'")
    r.add_argument("--seeds", nargs="+", type=int, default=[0],
                   help="one run per seed per strategy (seeds the queries and the classifier)")
    r.add_argument("--feature-seed", type=int, default=d.feature_seed,
                   help="seeds the candidate pixels and the noisy draws, shared by every run")
    r.add_argument("--rounds", type=int, default=d.rounds)
    r.add_argument("--size", type=int, default=128, help="working size: images and labels resized to size x size")
    r.add_argument("--candidates-per-image", type=int, default=d.candidates_per_image)
    r.add_argument("--budget-per-image", type=float, default=d.budget_per_image,
                   help="pixels labeled per round per pool image")
    r.add_argument("--local-budget", type=int, default=d.local_budget)
    r.add_argument("--keep-global", type=float, default=d.keep_global)
    r.add_argument("--n-draws", type=int, default=d.n_draws, help="noisy diffusion draws for BALD/eDALD")
    r.add_argument("--entropy-weight", type=float, default=d.entropy_weight)
    r.add_argument("--bandwidth", type=_bandwidth, default=d.bandwidth,
                   help="MaxHerding RBF bandwidth: 'auto' (2 x median pairwise distance, per selection) or a number")
    r.add_argument("--model", default="embedded", help="'embedded', a save_pretrained folder or a hub id")
    r.add_argument("--timesteps", nargs="+", type=int, default=[50, 150, 250])
    r.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of train images kept out of the pool as a validation split")
    r.add_argument("--eval-split", choices=["test", "val"], default="test",
                   help="'val' to choose hyper-parameters without touching test")
    r.add_argument("--eval-stride", type=int, default=d.eval_stride,
                   help="evaluate every s-th pixel in both directions of every image (1 = every pixel)")
    r.add_argument("--pool-limit", type=int, default=None, help="use only the first N train images")
    r.add_argument("--test-limit", type=int, default=None, help="use only the first N test images")
    r.add_argument("--full-supervision", action="store_true", help="also train on every candidate pixel (the ceiling)")
    r.add_argument("--cache", default=None,
                   help="folder to keep features in between runs (pool, test and noisy draws; several GB for CamVid)")
    r.add_argument("--out", default="results", help="results folder")
    r.add_argument("--resume", action="store_true", help="continue interrupted runs from their last completed round")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    pl = sub.add_parser("plot", help="(re)draw the learning-curve plot of a results folder")
    pl.add_argument("results")
    rp = sub.add_parser("report", help="print markdown tables (mIoU and seconds per round) of a results folder")
    rp.add_argument("results")
    return p


def _run(args: argparse.Namespace) -> int:
    strategies = list(STRATEGIES) if args.strategies == ["all"] else args.strategies
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise SystemExit(f"skal-seg: unknown strategies {unknown}; choose from {', '.join(STRATEGIES)} or 'all'")
    root = sample_dataset_dir() if args.data == "sample" else Path(args.data)
    try:
        train = load_split(root, "train", size=args.size, limit=args.pool_limit)
        test = load_split(root, "test", size=args.size, limit=args.test_limit)
        pool, val = split_validation(train, args.val_fraction)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"skal-seg: {err}") from None
    evaluation = val if args.eval_split == "val" else test
    if len(evaluation) == 0:
        raise SystemExit("skal-seg: the evaluation split is empty (raise --val-fraction for --eval-split val)")
    print(f"pool {len(pool)} images, {args.eval_split} {len(evaluation)} images at {args.size}x{args.size}")
    out = Path(args.out)
    configs = {
        (seed, strategy): ExperimentConfig(
            strategy=strategy, seed=seed, feature_seed=args.feature_seed, rounds=args.rounds,
            candidates_per_image=args.candidates_per_image, budget_per_image=args.budget_per_image, local_budget=args.local_budget, keep_global=args.keep_global,
            n_draws=args.n_draws, entropy_weight=args.entropy_weight, eval_stride=args.eval_stride, bandwidth=args.bandwidth,
            featurizer={"model": args.model, "timesteps": args.timesteps},
        )
        for seed in args.seeds for strategy in strategies
    }
    try:  # every run's settings, before any work: no run may fail after others have finished
        for config in configs.values():
            config.validate_for_pool(len(pool))
    except ValueError as err:  # the message names settings; a command-line user sets them as flags
        message = re.sub(r"\b([a-z]+(?:_[a-z]+)+)\b",
                         lambda m: "--" + m[1].replace("_", "-") if hasattr(args, m[1]) else m[1], str(err))
        raise SystemExit(f"skal-seg: {message}") from None
    featurizer = None
    for seed in args.seeds:
        for strategy in strategies:
            config = configs[seed, strategy]
            try:
                featurizer = fitted_featurizer(config, featurizer, progress=not args.quiet)
                run_dir = out / strategy / f"seed{seed}"
                print(f"== {strategy}, seed {seed} -> {run_dir}")
                t = time.perf_counter()
                run_experiment(config, pool, evaluation, run_dir, featurizer=featurizer, cache_dir=args.cache,
                               resume=args.resume, progress=not args.quiet)
                print(f"   done in {time.perf_counter() - t:.0f} s")
                plot_queried_pixels(pool, run_dir)
            except ValueError as err:
                raise SystemExit(f"skal-seg: {err}") from None
        if args.full_supervision:
            res = run_full_supervision(config, pool, evaluation, out / "full_supervision" / f"seed{seed}.json",
                                       featurizer=featurizer, cache_dir=args.cache, progress=not args.quiet)
            print(f"== full supervision, seed {seed}: mIoU {res['miou']:.4f} on {res['taught_pixels']} pixels")
    dataset = "CamVid sample" if args.data == "sample" else root.resolve().name
    title = f"{dataset}: pool {len(pool)} images, mIoU on {args.eval_split} ({len(evaluation)} images)"
    print(f"plot: {plot_learning_curves(out, title=title)}")
    summary = markdown_summary(out)
    (out / "summary.md").write_text(summary)
    print(summary)
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
        Exit status, 0 on success.

    Raises
    ------
    SystemExit
        Bad arguments, unknown strategies, an unreadable dataset folder or
        invalid settings (with a message naming the problem).
    """
    args = _parser().parse_args(argv)
    if args.command == "plot":
        print(plot_learning_curves(args.results))
        return 0
    if args.command == "report":
        try:
            print(markdown_summary(args.results), end="")
        except FileNotFoundError as err:
            raise SystemExit(f"skal-seg: {err}") from None
        return 0
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
