"""What the embedded diffusion model is worth: held-out denoising loss and a pixel probe.

Compares (a) the embedded DDPM, (b) the same architecture untrained (seeded
random init) and (c) raw RGB plus (y, x) position:

- held-out denoising loss (epsilon MSE) of (a) and (b) on CamVid *test*
  images at 128 x 128, with seeded timesteps and noise shared by both;
- mIoU on the full CamVid test split (every pixel at 128 x 128, one
  confusion matrix) of a ``TorchMLPClassifier`` trained on the features of
  ``--pixels-per-image`` random pixels of every train image.

    python benchmarks/probe_features.py --data ../shared/data/camvid

Prints one line per variant. ``--quick`` runs on a few images only.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from diffusers import UNet2DModel

from skal_seg.classifier import TorchMLPClassifier
from skal_seg.data import IGNORE_INDEX, load_split
from skal_seg.embedded import EMBEDDED_UNET_CONFIG
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.metrics import confusion_matrix, iou_per_class, mean_iou
from skal_seg.models import load_diffusion_model
from skal_seg.train_ddpm import denoising_loss, to_model_range


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


def probe(featurize, train, test, pixels_per_image: int, seed: int, n_classes: int = 11) -> dict:
    rng = np.random.default_rng(seed)
    hw = train.labels.shape[1] * train.labels.shape[2]
    pixels = [np.sort(rng.choice(hw, pixels_per_image, replace=False)) for _ in range(len(train))]
    t0 = time.perf_counter()
    X = featurize(train.images, pixels)
    y = np.concatenate([train.labels[i].reshape(-1)[p] for i, p in enumerate(pixels)])
    keep = y != IGNORE_INDEX
    clf = TorchMLPClassifier(random_state=seed).fit(X[keep], y[keep])
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for s in range(0, len(test), 16):
        Xt = featurize(test.images[s : s + 16], None)
        cm += confusion_matrix(test.labels[s : s + 16].reshape(-1), clf.predict(Xt), n_classes)
    return {"miou": mean_iou(cm), "iou": np.round(iou_per_class(cm), 4).tolist(),
            "train_rows": int(keep.sum()), "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/camvid")
    p.add_argument("--model", default="embedded")
    p.add_argument("--pixels-per-image", type=int, default=200)
    p.add_argument("--loss-images", type=int, default=48, help="test images for the denoising loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-images", type=int, default=None, help="evenly spaced subset of train (default: all)")
    p.add_argument("--test-images", type=int, default=None, help="evenly spaced subset of test (default: all)")
    p.add_argument("--variants", nargs="+", default=["embedded", "untrained", "rgb_position"],
                   choices=["embedded", "untrained", "rgb_position"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    if args.quick:
        args.train_images, args.test_images = 8, 4
    train = evenly_spaced(load_split(args.data, "train", size=128), args.train_images)
    test = evenly_spaced(load_split(args.data, "test", size=128), args.test_images)
    print(f"train {len(train)} images, test {len(test)} images, 128x128, torch threads {torch.get_num_threads()}")

    trained, scheduler = load_diffusion_model(args.model, device="cpu", dtype=torch.float32)
    torch.manual_seed(0)
    untrained = UNet2DModel(**EMBEDDED_UNET_CONFIG).eval()
    x0 = to_model_range(test.images[: args.loss_images])
    results = {}
    for name, unet in (("embedded", trained), ("untrained", untrained)):
        if name not in args.variants:
            continue
        loss = denoising_loss(unet, scheduler, x0, seed=args.seed)
        feat = DiffusionFeaturizer(model=(unet, scheduler), progress=False).fit()
        res = probe(lambda im, px: feat.transform(im, pixels=px), train, test, args.pixels_per_image, args.seed)
        results[name] = {"heldout_denoising_loss": loss, **res}
        print(f"{name:10s} held-out denoising loss {loss:.4f}  probe mIoU {res['miou']:.4f}  "
              f"({res['train_rows']} train pixels, D={feat.n_features_out_}, {res['seconds']} s)", flush=True)
    if "rgb_position" in args.variants:
        res = probe(rgb_position, train, test, args.pixels_per_image, args.seed)
        results["rgb_position"] = res
        print(f"{'rgb+pos':10s} probe mIoU {res['miou']:.4f}  ({res['train_rows']} train pixels, D=5)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
