"""What a diffusion model's features are worth: held-out denoising loss and a pixel probe.

Compares (a) a trained DDPM (``--model``: the embedded one by default, or an
exported folder), (b) the same architecture untrained (seeded random init)
and (c) raw RGB plus (y, x) position:

- denoising loss (epsilon MSE) of (a) and (b) on the first ``--loss-images``
  evaluation images at 128 x 128, with seeded timesteps and noise shared by
  both;
- mIoU on the evaluation images (every pixel at 128 x 128, one confusion
  matrix) of a ``TorchMLPClassifier`` trained on the features of
  ``--pixels-per-image`` random pixels of every probe-training image.

Two evaluation splits (``--eval-split``):

- ``val`` (the default, for choosing a model): the validation split carved
  from train by ``skal_seg.data.split_validation(train, --val-fraction)``;
  the probe trains on the remaining train images. CamVid test is never
  read. The DDPMs here were trained on all train images (images only,
  never labels), so in this mode the denoising loss is on images the DDPM
  has seen;
- ``test`` (only for the final figure, the model card's protocol): the
  probe trains on all train images and is scored on CamVid test; the
  denoising loss is then held out.

    python benchmarks/probe_features.py --data ../shared/data/camvid                       # val
    python benchmarks/probe_features.py --data ../shared/data/camvid --model runs/wide     # another model, val
    python benchmarks/probe_features.py --data ../shared/data/camvid --eval-split test     # final figure

``--data`` may also be a train split packed by ``gpu_train_embedded.py pack``
(val mode only). Prints one line per variant. ``--quick`` runs on a few
images only (8 probe-training, 4 evaluation).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from diffusers import UNet2DModel

from skal_seg.classifier import TorchMLPClassifier
from skal_seg.data import IGNORE_INDEX, load_split, split_validation
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.metrics import confusion_matrix, iou_per_class, mean_iou
from skal_seg.diffusion.models import load_diffusion_model
from skal_seg.diffusion.train_ddpm import denoising_loss, load_packed_split, to_model_range

VARIANTS = ("embedded", "untrained", "rgb_position")


def rgb_position(images: np.ndarray, pixels=None) -> np.ndarray:
    """(r, g, b, y, x) in [0, 1] per pixel, rows like ``DiffusionFeaturizer.transform``."""
    n, h, w, _ = images.shape
    yy, xx = np.meshgrid(np.arange(h) / (h - 1), np.arange(w) / (w - 1), indexing="ij")
    feats = np.concatenate([images / 255.0, np.broadcast_to(np.stack([yy, xx], -1), (n, h, w, 2))], -1)
    feats = feats.reshape(n, h * w, 5).astype(np.float32)
    if pixels is None:
        return feats.reshape(-1, 5)
    return np.concatenate([feats[i, p] for i, p in enumerate(pixels)])


def evenly_spaced(split, n):
    """``n`` images spread evenly over the sorted split (all when n is None)."""
    if n is None or n >= len(split):
        return split
    return split.subset(np.linspace(0, len(split) - 1, n).round().astype(int))


def probe_splits(data: str, eval_split: str, val_fraction: float = 0.1, train_images=None, eval_images=None):
    """``(probe_train, evaluation)`` splits at 128 x 128 for ``eval_split`` ("val" or "test"); see the module docstring.

    Raises
    ------
    ValueError
        An unknown ``eval_split``; ``"test"`` with a packed ``.npz`` (it holds train only).
    """
    if eval_split not in ("val", "test"):
        raise ValueError(f"--eval-split must be 'val' or 'test', got {eval_split!r}")
    packed = str(data).endswith(".npz")
    if eval_split == "test" and packed:
        raise ValueError(f"{data} holds the train split only; --eval-split test needs the dataset folder")
    train = load_packed_split(data, 128) if packed else load_split(data, "train", size=128)
    if eval_split == "val":
        train, evaluation = split_validation(train, val_fraction)
    else:
        evaluation = load_split(data, "test", size=128)
    return evenly_spaced(train, train_images), evenly_spaced(evaluation, eval_images)


def probe(featurize, train, test, pixels_per_image: int, seed: int, n_classes: int = 11, device="auto",
          min_steps: int = 500) -> dict:
    """Train the MLP probe on random pixels of ``train`` and score every pixel of ``test``.

    ``min_steps`` is the probe's ``TorchMLPClassifier(min_steps=...)`` (500, its default, for every figure).
    """
    rng = np.random.default_rng(seed)
    hw = train.labels.shape[1] * train.labels.shape[2]
    pixels = [np.sort(rng.choice(hw, pixels_per_image, replace=False)) for _ in range(len(train))]
    t0 = time.perf_counter()
    X = featurize(train.images, pixels)
    y = np.concatenate([train.labels[i].reshape(-1)[p] for i, p in enumerate(pixels)])
    keep = y != IGNORE_INDEX
    clf = TorchMLPClassifier(random_state=seed, device=device, min_steps=min_steps).fit(X[keep], y[keep])
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for s in range(0, len(test), 16):
        Xt = featurize(test.images[s : s + 16], None)
        cm += confusion_matrix(test.labels[s : s + 16].reshape(-1), clf.predict(Xt), n_classes)
    return {"miou": mean_iou(cm), "iou": np.round(iou_per_class(cm), 4).tolist(),
            "train_rows": int(keep.sum()), "seconds": round(time.perf_counter() - t0, 1)}


def run_probe(model, data: str, eval_split: str = "val", variants=VARIANTS, val_fraction: float = 0.1,
              pixels_per_image: int = 200, loss_images: int = 48, seed: int = 0, train_images=None,
              eval_images=None, device: str = "cpu", label: str = "embedded", min_steps: int = 500) -> dict:
    """Probe ``model`` (a name or folder for ``load_diffusion_model``) and the baselines; returns the results by variant.

    The trained model's entry is keyed ``label``; the others ``"untrained"``
    and ``"rgb_position"``. ``"_protocol"`` records the splits and sizes.
    """
    train, evaluation = probe_splits(data, eval_split, val_fraction, train_images, eval_images)
    print(f"probe-train {len(train)} images, {eval_split} {len(evaluation)} images, 128x128, "
          f"torch threads {torch.get_num_threads()}, device {device}", flush=True)
    results = {"_protocol": {"eval_split": eval_split, "probe_train_images": len(train),
                             "eval_images": len(evaluation), "val_fraction": val_fraction if eval_split == "val" else None,
                             "pixels_per_image": pixels_per_image, "seed": seed, "model": str(model),
                             "probe_min_steps": min_steps}}
    unets = []
    if "embedded" in variants or "untrained" in variants:
        trained, scheduler = load_diffusion_model(model, device=device, dtype=torch.float32)
        if "embedded" in variants:
            unets.append((label, trained))
        if "untrained" in variants:
            torch.manual_seed(0)  # same architecture as the probed model, seeded random init
            unets.append(("untrained", UNet2DModel.from_config(trained.config).to(device).eval()))
    x0 = to_model_range(evaluation.images[:loss_images])
    for name, unet in unets:
        loss = denoising_loss(unet, scheduler, x0, seed=seed)
        feat = DiffusionFeaturizer(model=(unet, scheduler), device=device, progress=False).fit()
        res = probe(lambda im, px: feat.transform(im, pixels=px), train, evaluation, pixels_per_image, seed,
                    device=device, min_steps=min_steps)
        results[name] = {"denoising_loss": loss, "n_features": feat.n_features_out_, **res}
        print(f"{name:10s} denoising loss {loss:.4f}  probe mIoU {res['miou']:.4f}  "
              f"({res['train_rows']} train pixels, D={feat.n_features_out_}, {res['seconds']} s)", flush=True)
    if "rgb_position" in variants:
        res = probe(rgb_position, train, evaluation, pixels_per_image, seed, device=device, min_steps=min_steps)
        results["rgb_position"] = res
        print(f"{'rgb+pos':10s} probe mIoU {res['miou']:.4f}  ({res['train_rows']} train pixels, D=5)", flush=True)
    return results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/camvid", help="dataset folder, or a packed train .npz (val only)")
    p.add_argument("--model", default="embedded", help="'embedded' or an exported model folder")
    p.add_argument("--eval-split", default="val", choices=["val", "test"],
                   help="val: carved from train, for choosing a model; test: the final figure only")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--pixels-per-image", type=int, default=200)
    p.add_argument("--loss-images", type=int, default=48, help="evaluation images for the denoising loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-images", type=int, default=None, help="evenly spaced subset of the probe-training images")
    p.add_argument("--eval-images", "--test-images", type=int, default=None,
                   help="evenly spaced subset of the evaluation images (default: all)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--device", default="cpu", help="cpu or cuda (features and probe)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None, help="also write the results here")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.train_images, args.eval_images = 8, 4
    results = run_probe(args.model, args.data, args.eval_split, args.variants, args.val_fraction,
                        args.pixels_per_image, args.loss_images, args.seed, args.train_images, args.eval_images,
                        args.device)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
