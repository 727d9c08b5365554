"""Benchmark: where a cold ``skal-seg run`` spends its time, against its UNet forwards timed alone.

Run (from the repository root, on an otherwise idle machine; 66 min at the defaults on 2026-12-06)::

    .venv/bin/python benchmarks/profile_cold_run.py --out /tmp/profile -- \\
        --data ../shared/data/camvid --strategies two_stage --seeds 0

Everything after ``--`` is passed to ``skal-seg run`` (``--out`` and ``--cache`` are
set by this script: a fresh, empty cache, so the run is cold). The run happens in
this process with :class:`~skal_seg.featurizer.DiffusionFeaturizer` instrumented:

* every UNet forward (``_block_maps``: the network up to the last decoder block
  the features read) is timed and counted by its batch size, apart for the pool,
  noisy and test features;
* the rest of featurizing (noising, resizing, sampling and normalising rows,
  writing them) is timed per kind too.

After the run the same forwards are timed alone, in this process, on the same
fitted featurizer: ``--repeat`` timings of each batch size the run used, on random
inputs at the run's timesteps; the best per sample is "alone". The report
(printed, and ``profile.json`` in ``--out``) is the per-phase table: forwards in
the run and alone, the rest of featurizing, the method's phases from the run's
own records (stage 1, stage 2, training, evaluation without the test features),
and what is left: overhead = wall - forwards in the run - rest of featurizing -
phases. Ratios are to the forwards timed alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from skal_seg import cli
from skal_seg.benchmark import runner
from skal_seg.featurizer import DiffusionFeaturizer

STAGE1 = ("stage1", "select")  # the names TwoStageQuery.timings_ and the random pick use


class ForwardClock:
    """Patches DiffusionFeaturizer so that each forward and each featurizing call is timed by kind."""

    def __init__(self):
        self.forward = defaultdict(lambda: defaultdict(list))  # kind -> batch size -> [seconds]
        self.featurize = defaultdict(float)  # kind -> seconds in _run (forwards included)
        self.kind = "pool"
        self.evaluating = False
        self.featurizer = None

    def install(self):
        clock, block_maps, run = self, DiffusionFeaturizer._block_maps, DiffusionFeaturizer._run
        evaluate = runner.evaluate

        def timed_block_maps(featurizer, x, t):
            t0 = time.perf_counter()
            maps = block_maps(featurizer, x, t)
            clock.forward[clock.kind][len(x)].append(time.perf_counter() - t0)
            clock.featurizer = featurizer
            return maps

        def timed_run(featurizer, imgs, jobs, noises, out, desc):
            kind = "test" if clock.evaluating else "noisy" if len(noises) > 1 else "pool"
            clock.kind = kind
            t0 = time.perf_counter()
            try:
                return run(featurizer, imgs, jobs, noises, out, desc)
            finally:
                clock.featurize[kind] += time.perf_counter() - t0

        def timed_evaluate(*args, **kwargs):  # the test features are computed inside the first evaluation
            clock.evaluating = True
            try:
                return evaluate(*args, **kwargs)
            finally:
                clock.evaluating = False

        self.untimed_block_maps = block_maps  # for the timings alone, which must not count as the run's
        DiffusionFeaturizer._block_maps, DiffusionFeaturizer._run = timed_block_maps, timed_run
        runner.evaluate = timed_evaluate

    def alone(self, repeat: int) -> dict[int, float]:
        """Best seconds per sample of a forward alone, for every batch size the run used."""
        f = self.featurizer
        sizes = sorted({b for per in self.forward.values() for b in per})
        best = {}
        for b in sizes:
            x = torch.randn(b, 3, *f.input_size_, dtype=f.dtype_, device=f.device_)
            t = torch.tensor(list(f.timesteps_) * (b // len(f.timesteps_) + 1), device=f.device_)[:b]
            self.untimed_block_maps(f, f._padded(x), t)  # warm-up
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                self.untimed_block_maps(f, f._padded(x), t)
                times.append(time.perf_counter() - t0)
            best[b] = min(times) / b
        return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="results, cache and profile.json go here (emptied)")
    ap.add_argument("--repeat", type=int, default=5, help="timings per batch size alone (best is kept)")
    ap.add_argument("run_args", nargs=argparse.REMAINDER, help="-- then the arguments of skal-seg run")
    args = ap.parse_args()
    run_args = [a for a in args.run_args if a != "--"]
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    clock = ForwardClock()
    clock.install()
    t0 = time.perf_counter()
    rc = cli.main(["run", *run_args, "--out", str(args.out / "results"), "--cache", str(args.out / "cache")])
    wall = time.perf_counter() - t0
    if rc:
        raise SystemExit(f"skal-seg run failed (rc={rc})")
    # the same forwards alone, right after the run, before anything else starts
    alone = clock.alone(args.repeat)
    records = [rec for path in sorted((args.out / "results").rglob("rounds.json"))
               for rec in json.loads(path.read_text())]
    report = build_report(clock, alone, records, wall)
    (args.out / "profile.json").write_text(json.dumps(report, indent=1))
    print(render(report))


def build_report(clock: ForwardClock, alone: dict[int, float], records: list[dict], wall: float) -> dict:
    forwards = {}
    for kind, per in clock.forward.items():
        n = sum(b * len(ts) for b, ts in per.items())
        in_run = sum(sum(ts) for ts in per.values())
        at_rest = sum(alone[b] * b * len(ts) for b, ts in per.items())
        forwards[kind] = {"samples": n, "calls": sum(len(ts) for ts in per.values()), "in_run_s": in_run,
                          "alone_s": at_rest, "featurize_s": clock.featurize.get(kind, 0.0), "batch_sizes": sorted(per)}
    in_run = sum(v["in_run_s"] for v in forwards.values())
    at_rest = sum(v["alone_s"] for v in forwards.values())
    rest_featurizing = sum(clock.featurize.values()) - in_run
    phase = defaultdict(float)
    for rec in records:
        for k, v in rec["seconds"].items():
            phase[k] += v
    stage1 = sum(phase[k] for k in STAGE1)
    evaluation = phase["evaluate"] - clock.featurize.get("test", 0.0)  # predictions, test features apart
    phases = {"stage 1": stage1, "stage 2": phase["stage2"] + phase["temperature_fit"],
              "training": phase["train"], "evaluation (predictions)": evaluation, "annotate": phase["annotate"]}
    overhead = wall - in_run - rest_featurizing - sum(phases.values())
    return {"wall_s": wall, "forwards": forwards, "forwards_in_run_s": in_run, "forwards_alone_s": at_rest,
            "alone_s_per_sample": {str(b): s for b, s in alone.items()},
            "rest_of_featurizing_s": rest_featurizing, "phases_s": phases, "overhead_s": overhead,
            "other_phase_keys": sorted(set(phase) - set(STAGE1) - {"stage2", "temperature_fit", "train",
                                                                    "evaluate", "annotate", "featurize",
                                                                    "noisy_features"}),
            "torch_threads": torch.get_num_threads(), "miou": [rec["miou"] for rec in records]}


def render(r: dict) -> str:
    ref = r["forwards_alone_s"]
    lines = ["| part | seconds | x forwards alone |", "| --- | --- | --- |"]

    def row(name, s):
        lines.append(f"| {name} | {s:.1f} | {s / ref:.3f} |")

    for kind, v in sorted(r["forwards"].items()):
        row(f"UNet forwards, {kind} ({v['samples']} samples, {v['calls']} calls, batches {v['batch_sizes']}), "
            f"in the run (alone: {v['alone_s']:.1f} s, {v['in_run_s'] / max(v['alone_s'], 1e-9):.3f} x)",
            v["in_run_s"])
    row("UNet forwards alone (the reference)", ref)
    row("UNet forwards in the run", r["forwards_in_run_s"])
    row("rest of featurizing (noise, resize, sampling rows, normalising, writing)", r["rest_of_featurizing_s"])
    for name, s in r["phases_s"].items():
        row(name, s)
    row("overhead (wall - all of the above but the reference)", r["overhead_s"])
    row("wall", r["wall_s"])
    lines.append(f"\nforwards in the run / alone: {r['forwards_in_run_s'] / ref:.3f}; torch threads "
                 f"{r['torch_threads']}; mIoU per round {np.round(r['miou'], 4).tolist()}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
