"""What adapting the diffusion model to DRIVE buys: a pixel probe of the features, vessel vs background.

For each model (``--models``), features of DRIVE at the working size
``--size`` (short side; 256 gives 265 x 256 label grids) from
``DiffusionFeaturizer(model=...)``, which resizes each image to the UNet's
input size and upsamples the decoder features to the label grid. A model is
``NAME`` (``embedded`` or a model folder, e.g. one written by ``skal-seg
adapt``) or ``NAME@S``: the same weights fed ``S x S`` inputs (the UNet is
convolutional; this separates what the input size buys from what the
weights buy). ``rgb`` is raw (r, g, b, y, x) as a floor.

Probe: for every ``--pixels`` N and ``--seeds`` seed, N labeled pixels drawn
uniformly from the field of view (FOV) of the 20 training images; a
classifier trained on their features (``--heads``: ``mlp``, the runner's
``TorchMLPClassifier()``, and/or ``logreg``, scikit-learn's
``LogisticRegression`` on standardised features; each unweighted, as the
runner trains its head, and with balanced class weights, as unweighted heads
trained on 200 pixels, about 25 of them vessel, often call every pixel
background) scores every FOV pixel of the 20 test images (first
observer): mIoU over the 2 classes, one confusion matrix over the test
split. Also the denoising loss (epsilon MSE, seeded timesteps and noise) of
each diffusion model on the test images at its input size: held out, as the
adaptation reads the training images only.

    OMP_NUM_THREADS=1 python benchmarks/probe_drive.py --data ../shared/data/drive --size 256 \\
        --models rgb embedded embedded@256 /work/adapted/drive-256-10min /work/adapted/drive-256-30min \\
        --json drive_probe.json

Prints one line per model, head and pixel count (mean and spread over seeds).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from probe_features import rgb_position
from skal_seg.classifier import TorchMLPClassifier
from skal_seg.datasets import dataset_spec, load_dataset
from skal_seg.diffusion.adapt import working_images
from skal_seg.diffusion.models import load_diffusion_model
from skal_seg.diffusion.train_ddpm import denoising_loss, to_model_range
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.metrics import confusion_matrix, mean_iou

DRIVE = {
    "images": "training/images/{id}_training.tif", "labels": "training/1st_manual/{id}_manual1.gif",
    "roi": "training/mask/{id}_training_mask.gif", "test_images": "testing/images/{id}_test.tif",
    "test_labels": "testing/1st_manual/{id}_manual1.gif", "test_roi": "testing/mask/{id}_test_mask.gif",
    "label_map": "0:background,255:vessel",
}
HEADS = ("mlp", "logreg")


def featurizer_of(spec: str):
    """``(transform(images, pixels), unet, scheduler)`` of a model spec (``NAME``, ``NAME@S`` or ``rgb``)."""
    if spec == "rgb":
        return (lambda images, pixels: rgb_position(np.stack(images), pixels)), None, None
    name, _, size = spec.partition("@")
    unet, scheduler = load_diffusion_model(name, device="cpu", dtype=torch.float32)
    if size:
        unet.register_to_config(sample_size=int(size))
    feat = DiffusionFeaturizer(model=(unet, scheduler), device="cpu", progress=False).fit()
    return (lambda images, pixels: feat.transform(list(images), pixels=pixels)), unet, scheduler


def draw_pixels(roi: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """``n`` flat pixel indices drawn uniformly from every image's FOV together, per image (sorted)."""
    flat = roi.reshape(len(roi), -1)
    image, pixel = np.nonzero(flat)
    pick = np.random.default_rng(seed).choice(len(image), n, replace=False)
    return [np.sort(pixel[pick][image[pick] == i]) for i in range(len(roi))]


def fit_head(head: str, X: np.ndarray, y: np.ndarray, seed: int, class_weight: str | None):
    if head == "mlp":
        return TorchMLPClassifier(class_weight=class_weight, random_state=seed, device="cpu").fit(X, y)
    # Standardised: the features are L2-normalised per pixel (entries ~0.03), which the default C=1 would flatten.
    return make_pipeline(StandardScaler(), LogisticRegression(class_weight=class_weight, max_iter=2000)).fit(X, y)


def probe_model(spec: str, pool, test, pixel_counts, seeds, heads, loss_images: int, weights=("balanced",)) -> dict:
    t0 = time.perf_counter()
    transform, unet, scheduler = featurizer_of(spec)
    out: dict = {"model": spec}
    if unet is not None:
        s = unet.config.sample_size
        x0 = to_model_range(working_images(list(test.images[:loss_images]), s))
        out["input_size"] = s
        out["denoising_loss"] = round(denoising_loss(unet, scheduler, x0, seed=0), 5)
    draws = {(n, seed): draw_pixels(pool.roi, n, seed) for n in pixel_counts for seed in seeds}
    union = [np.unique(np.concatenate([d[i] for d in draws.values()])) for i in range(len(pool))]
    X_union = transform(pool.images, union)
    offsets = np.cumsum([0] + [len(u) for u in union])
    clfs = {}
    for (n, seed), pixels in draws.items():
        rows = np.concatenate([offsets[i] + np.searchsorted(union[i], p) for i, p in enumerate(pixels)])
        y = np.concatenate([pool.labels[i].reshape(-1)[p] for i, p in enumerate(pixels)])
        for head in heads:
            for weight in weights:
                clfs[(f"{head}/{weight}", n, seed)] = fit_head(head, X_union[rows], y, seed,
                                                               None if weight == "none" else weight)
    del X_union
    cms = {key: np.zeros((2, 2), dtype=np.int64) for key in clfs}
    for i in range(len(test)):
        X = transform(test.images[i : i + 1], None)
        inside = test.roi[i].reshape(-1)
        truth = test.labels[i].reshape(-1)[inside]
        for key, clf in clfs.items():
            cms[key] += confusion_matrix(truth, clf.predict(X[inside]), 2)
    for head in sorted({key[0] for key in clfs}):
        for n in pixel_counts:
            scores = [mean_iou(cms[(head, n, seed)]) for seed in seeds]
            out[f"{head}_{n}"] = {"miou_mean": round(float(np.mean(scores)), 4),
                                  "miou_sd": round(float(np.std(scores)), 4), "miou": [round(v, 4) for v in scores]}
            extra = "" if unet is None else f"  (input {s}, denoising loss {out['denoising_loss']:.4f})"
            print(f"{spec:36s} {head:15s} {n:5d} px  mIoU {np.mean(scores):.4f} +- {np.std(scores):.4f}{extra}",
                  flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/drive", help="DRIVE as distributed")
    p.add_argument("--size", type=int, default=256, help="working size (short side) of images and labels")
    p.add_argument("--models", nargs="+", default=["rgb", "embedded"],
                   help="rgb, embedded, a model folder; NAME@S feeds S x S inputs")
    p.add_argument("--pixels", type=int, nargs="+", default=[200, 5000], help="labeled training pixels (all images)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    p.add_argument("--class-weight", nargs="+", default=["balanced", "none"], choices=["balanced", "none"],
                   help="class weights of the heads (each head is trained with each): balanced weighs the vessel "
                        "pixels (about 1 in 8) up to the background's; none is the runner's head")
    p.add_argument("--loss-images", type=int, default=20, help="test images for the denoising loss")
    p.add_argument("--test-images", type=int, default=None, help="score only the first N test images (quick checks)")
    p.add_argument("--json", default=None, help="also write the results here")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    data = load_dataset(args.data, dataset_spec(args.data, **DRIVE), size=args.size)
    pool, test = data.pool, data.test
    if args.test_images is not None:
        test = test.subset(np.arange(min(args.test_images, len(test))))
    print(f"DRIVE at {pool.images.shape[1]}x{pool.images.shape[2]}: {len(pool)} training, {len(test)} test images; "
          f"vessel share in the test FOV {float((test.labels[test.roi] == 1).mean()):.3f}; "
          f"torch threads {torch.get_num_threads()}", flush=True)
    results = {"_protocol": {**vars(args), "grid": list(pool.images.shape[1:3])}}
    for spec in args.models:
        results[spec] = probe_model(spec, pool, test, args.pixels, args.seeds, args.heads, args.loss_images,
                                    args.class_weight)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
