"""Tune the query settings on the validation split (never test), several seeds each.

Runs ``skal-seg run --eval-split val`` once per value of every setting of
the grid below (one setting changed at a time from the defaults, on the
strategy it affects), plus ``random`` as the reference; the defaults of a
strategy are one run (``two_stage=defaults``), shared by the rows of all its
settings. It writes
``OUT/tuning.md``: per setting and value, the mIoU averaged over the rounds
and at the last round, mean ± standard deviation over the seeds, and the
difference to random. Defaults are chosen from this table only; the test
split is for the final table.

Every run resumes (``--resume``): rerunning the same command after an
interruption continues where it stopped, and the features are computed
once (``OUT/.cache``) for all runs. ``--dry-run`` prints the runs and does
nothing else; ``--table`` writes the table of the runs finished so far (a
run not started yet has a row that says so) without running anything.

    python benchmarks/tune_validation.py --data ../shared/data/camvid --out results/tune           # everything
    python benchmarks/tune_validation.py --data ../shared/data/camvid --out results/tune --only bandwidth
    python benchmarks/tune_validation.py ... -- --candidates valid --eval-stride 2      # passed to every run

Arguments after ``--`` go to every ``skal-seg run`` unchanged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from skal_seg.benchmark.plotting import collect_runs, miou_by_seed
from skal_seg.cli import main as skal_seg_main

# setting: (the strategy it changes, the flag, the values tried; the first is today's default). The grid ran with
# the paper's defaults; where it moved a default (Uncertainty Herding's temperature: "auto" -> 0.5), the old default
# is now a row of its own and the runs were renamed to match (docs/benchmarks.md, "Tuning on validation").
GRID: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "bandwidth": ("maxherding", "--bandwidth", ("auto", "0.25", "0.375", "0.5", "0.75")),
    "keep_global": ("two_stage", "--keep-global", ("0.5", "0.25", "0.75", "1")),
    "local_budget": ("two_stage", "--local-budget", ("50", "20", "100")),
    "entropy_weight": ("two_stage", "--entropy-weight", ("1", "0", "0.5", "2")),
    "uherding_temperature": ("uherding", "--uherding-temperature", ("0.5", "auto", "1", "2")),
    "uherding_bandwidth": ("uherding", "--uherding-bandwidth", ("labeled", "auto")),
    "mi": ("two_stage", "--mi", ("paper", "paper_code")),  # the official code's DALD term (docs/method.md)
}
# Settings changed together, checked where the one-at-a-time rows suggest them (``--only combined``):
# name: (strategy, its flags and values).
COMBINED: dict[str, tuple[str, tuple[str, ...]]] = {
    "uherding_temperature=auto,uherding_bandwidth=auto": (
        "uherding", ("--uherding-temperature", "auto", "--uherding-bandwidth", "auto")),
}


def planned_runs(only: list[str] | None = None) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(folder name, strategy, skal-seg flags and values)`` of every run, random (the reference) first.

    A setting's first value is its strategy's default: those values are one
    run per strategy, ``STRATEGY=defaults`` (no flag), listed once. The
    :data:`COMBINED` rows come last (``only`` names them ``"combined"``).

    Raises
    ------
    ValueError
        An unknown setting in ``only``.
    """
    unknown = sorted(set(only or ()) - {*GRID, "combined"})
    if unknown:
        raise ValueError(f"unknown settings {unknown}; choose from {', '.join(GRID)} or combined")
    runs: list[tuple[str, str, tuple[str, ...]]] = [("random", "random", ())]
    changed = [(f"{setting}={value}", strategy, (flag, value)) for setting, (strategy, flag, values) in GRID.items()
               if not only or setting in only for value in values[1:]]
    changed += [(name, strategy, args) for name, (strategy, args) in COMBINED.items()
                if not only or "combined" in only]
    for name, strategy, args in changed:
        default = (f"{strategy}=defaults", strategy, ())
        runs += [default] * (default not in runs) + [(name, strategy, args)]
    return runs


def run_arguments(data: str, out: Path, seeds: list[int], run: tuple[str, str, tuple[str, ...]],
                  extra: list[str]) -> list[str]:
    """The ``skal-seg`` arguments of one run."""
    name, strategy, setting = run
    return ["run", "--data", data, "--eval-split", "val", "--strategies", strategy, "--seeds", *map(str, seeds),
            *setting, "--out", str(out / name), "--cache", str(out / ".cache"), "--resume", "--quiet", *extra]


def _per_seed(results: Path) -> dict[int, np.ndarray]:
    """mIoU per round of each seed of the one strategy in ``results`` (empty when nothing finished a round)."""
    runs = next(iter(collect_runs(results).values()), []) if results.is_dir() else []
    return {r[0]["seed"]: miou_by_seed([r])[0] for r in runs}


def tuning_table(out: Path, runs: list[tuple[str, str, tuple[str, ...]]]) -> str:
    """Markdown table of the finished runs: mean over rounds and last round, mean ± std over seeds.

    The spread is over the seeds of each seed's own value (its mean over the
    rounds, or its last round); "vs random" compares with the random runs of
    the same seeds. Only seeds that have run as many rounds as the random
    reference count (a tuning in progress leaves the others out); a setting
    with none gets a row that says so.
    """
    reference = _per_seed(out / "random")
    lines = ["| setting | strategy | seeds | rounds | mean over rounds | vs random | last round | vs random |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    n = min((len(v) for v in reference.values()), default=0)  # the rounds of a finished run
    for name, strategy, _ in runs:
        per_seed = _per_seed(out / name)
        seeds = sorted(s for s in set(per_seed) & set(reference) if len(per_seed[s]) >= n > 0)
        if not seeds:  # a seed still running is left out until it has every round
            lines.append(f"| {name} | {strategy} | 0 | 0 | not finished yet | | | |")
            continue
        miou = np.array([per_seed[s][:n] for s in seeds])
        ref = np.array([reference[s][:n] for s in seeds])
        mean, last = miou.mean(1), miou[:, n - 1]
        ref_mean, ref_last = ref.mean(1), ref[:, n - 1]
        lines.append(f"| {name} | {strategy} | {len(seeds)} | {n} | {mean.mean():.4f} ± {mean.std():.4f} | "
                     f"{mean.mean() - ref_mean.mean():+.4f} | {last.mean():.4f} ± {last.std():.4f} | "
                     f"{last.mean() - ref_last.mean():+.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (train/ and test/; only train is read)")
    parser.add_argument("--out", default="results/tune", help="results folder (resumed when rerun)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", metavar="SETTING", help=f"a subset of: {', '.join(GRID)}, combined")
    parser.add_argument("--dry-run", action="store_true", help="print the runs only")
    parser.add_argument("--table", action="store_true", help="write OUT/tuning.md from the runs finished so far, "
                        "running nothing")
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, extra = (argv, []) if "--" not in argv else (argv[:argv.index("--")], argv[argv.index("--") + 1:])
    args = parser.parse_args(argv)
    try:
        runs = planned_runs(args.only)
    except ValueError as err:
        parser.error(str(err))
    out = Path(args.out)
    commands = [run_arguments(args.data, out, args.seeds, run, extra) for run in runs]
    print(f"{len(runs)} settings x {len(args.seeds)} seeds = {len(runs) * len(args.seeds)} runs, "
          f"evaluated on the validation split")
    for command in commands:
        print("skal-seg " + " ".join(command))
    if args.dry_run:
        return 0
    for command in [] if args.table else commands:
        status = skal_seg_main(command)
        if status != 0:  # interrupted: the run saved its rounds; rerunning this command resumes
            return status
    table = tuning_table(out, runs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tuning.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
