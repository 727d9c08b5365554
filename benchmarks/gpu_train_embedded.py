"""Train a (larger) embedded DDPM on a GPU within a time budget, probe it on the validation split, export it.

One device call does it all (train with bfloat16 autocast and
``torch.compile``, probe the new and the shipped model on the validation
split carved from train, write the weights and a JSON of the results). The
GPU machine has no internet and no copy of CamVid, and lacks ``diffusers``:
both travel, packed here first under the ignored ``checkpoints/`` folder.

Here (once)::

    python benchmarks/gpu_train_embedded.py pack --data ../shared/data/camvid \\
        --out checkpoints/gpu_carry/camvid_train128.npz --wheel

writes the 367 train images and their labels at 128 x 128 (the labels are
only read by the probe; the DDPM never sees them) and downloads the
``diffusers`` wheel this venv uses into ``checkpoints/gpu_carry/wheels``.
Then, on the device, carrying ``checkpoints/gpu_carry`` (timeout 600 s)::

    bash benchmarks/gpu_train_embedded.sh 6 checkpoints/gpu_carry/camvid_train128.npz $OUT --arch wide

which installs the wheel into ``/tmp/site`` and runs::

    python3 benchmarks/gpu_train_embedded.py run --minutes 6 \\
        --data checkpoints/gpu_carry/camvid_train128.npz --out $OUT --arch wide

``--out`` receives ``unet/``, ``scheduler/``, ``training.json`` (a loadable
model folder), ``log.csv`` and ``results.json`` (training summary, probe on
val of the new model, the shipped model, the untrained architecture and RGB +
position). Six files, at most two folders down, so they all come back from
``$OUT``. ``--minutes`` bounds the training alone (compilation included); the
probe and the start add about 2-3 minutes on an H100 (to be measured: keep
``--minutes`` at 6 or less within a 10-minute call). ``--steps N`` switches to
a cosine learning-rate schedule over N steps (take N from the
``steps_per_second`` of an earlier call); without it the rate is constant
after the warm-up and the budget decides the length.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # probe_features beside it; skal_seg from this checkout, installed or not

from probe_features import VARIANTS, run_probe  # noqa: E402

from skal_seg.diffusion.train_ddpm import main as train_main  # noqa: E402
from skal_seg.diffusion.train_ddpm import pack_split  # noqa: E402


def pack(args: argparse.Namespace) -> None:
    out = pack_split(args.data, "train", args.size, args.out)
    print(f"packed {args.data}/train at {args.size}x{args.size} into {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if args.wheel:
        import diffusers

        wheels = out.parent / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "-d", str(wheels), f"diffusers=={diffusers.__version__}"], check=True)
        print(f"diffusers {diffusers.__version__} wheel in {wheels}")


def run(args: argparse.Namespace) -> dict:
    if "embedded" not in args.probe_variants:
        raise ValueError("--probe-variants must include 'embedded' (the new model)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(args.workdir) if args.workdir else out.parent / (out.name + "_work")
    t0 = time.time()
    train_argv = [
        "--data", args.data, "--workdir", str(workdir), "--export", str(out), "--arch", args.arch,
        "--crop", args.crop, "--full-prob", str(args.full_prob), "--batch", str(args.batch), "--lr", str(args.lr),
        "--warmup-steps", str(args.warmup_steps), "--ema-decay", str(args.ema_decay),
        "--max-minutes", str(args.minutes), "--max-steps", str(args.max_steps or args.steps or 1_000_000),
        "--save-every", str(args.save_every), "--log-every", str(args.log_every), "--progress", "lines",
        "--threads", str(args.threads), "--device", args.device, "--amp", args.amp, "--compile", args.compile,
    ]
    if args.steps:
        train_argv += ["--lr-schedule", "cosine", "--schedule-steps", str(args.steps)]
    if args.init_from:
        train_argv += ["--init-from", args.init_from]
    summary = train_main(train_argv)
    shutil.copy(workdir / "log.csv", out / "log.csv")
    train_seconds = time.time() - t0
    device = summary["device"]
    common = dict(data=args.data, eval_split="val", val_fraction=args.val_fraction,
                  pixels_per_image=args.probe_pixels, train_images=args.probe_train_images,
                  eval_images=args.probe_eval_images, device=device, min_steps=args.probe_min_steps)
    t1 = time.time()
    new = run_probe(str(out), variants=args.probe_variants, label="new", **common)
    shipped = run_probe("embedded", variants=("embedded",), label="shipped", **common)
    results = {
        "training": summary, "arch": args.arch, "budget_minutes": args.minutes,
        "train_seconds": round(train_seconds, 1), "probe_seconds": round(time.time() - t1, 1),
        "probe_val": {"_protocol": new["_protocol"], **{k: v for k, v in new.items() if k != "_protocol"},
                      "shipped": shipped["shipped"]},
    }
    results["new_beats_shipped_on_val"] = bool(new["new"]["miou"] > shipped["shipped"]["miou"])
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    scores = ", ".join(f"{k} {v['miou']:.4f}" for k, v in results["probe_val"].items() if k != "_protocol")
    print(f"val probe mIoU: {scores}; results in {out / 'results.json'}")
    return results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="pack the train split (and the diffusers wheel) to carry to the GPU machine")
    pk.add_argument("--data", required=True, help="dataset folder (CamVid layout)")
    pk.add_argument("--out", default="checkpoints/gpu_carry/camvid_train128.npz")
    pk.add_argument("--size", type=int, default=128)
    pk.add_argument("--wheel", action="store_true", help="also download the diffusers wheel beside it")
    r = sub.add_parser("run", help="train, probe on val, export")
    r.add_argument("--data", required=True, help="packed train .npz (or a dataset folder)")
    r.add_argument("--out", required=True, help="model folder + results.json + log.csv (use $OUT itself on the device)")
    r.add_argument("--minutes", type=float, required=True, help="training budget, compilation included")
    r.add_argument("--workdir", default=None, help="checkpoint folder (default: OUT_work beside --out)")
    r.add_argument("--arch", default="wide")
    r.add_argument("--init-from", default=None)
    r.add_argument("--crop", default="64")
    r.add_argument("--full-prob", type=float, default=0.25)
    r.add_argument("--batch", type=int, default=64)
    r.add_argument("--lr", type=float, default=2e-4)
    r.add_argument("--warmup-steps", type=int, default=500)
    r.add_argument("--ema-decay", type=float, default=0.999)
    r.add_argument("--steps", type=int, default=None, help="cosine schedule over this many steps (else constant)")
    r.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (default: --steps)")
    r.add_argument("--save-every", type=int, default=1000)
    r.add_argument("--log-every", type=int, default=200)
    r.add_argument("--threads", type=int, default=8)
    r.add_argument("--device", default="auto")
    r.add_argument("--amp", default="auto")
    r.add_argument("--compile", default="auto")
    r.add_argument("--val-fraction", type=float, default=0.1)
    r.add_argument("--probe-pixels", type=int, default=200)
    r.add_argument("--probe-train-images", type=int, default=None)
    r.add_argument("--probe-eval-images", type=int, default=None)
    r.add_argument("--probe-min-steps", type=int, default=500,
                   help="the probe MLP's min_steps (500, its default, for every reported figure; less only in tests)")
    r.add_argument("--probe-variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                   help="what to probe beside the shipped model ('embedded' = the new model)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return pack(args) if args.command == "pack" else run(args)


if __name__ == "__main__":
    main()
