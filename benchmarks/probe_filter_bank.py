"""What the filter bank is worth on DRIVE (retinal vessels): a random-forest pixel probe (issue 26).

Reads DRIVE as distributed (``--data``, default ``../shared/data/drive``)
with PIL: ``training/images/NN_training.tif``, ``training/1st_manual/NN_manual1.gif``
(255 = vessel), ``training/mask/NN_training_mask.gif`` (field of view), and
the same under ``testing/`` (``NN_test.tif``; ``2nd_manual/NN_manual2.gif``
holds palette indices 0/1, read raw). For each filter-bank configuration
(``--configs``, see ``CONFIGS``) it

- fits ``FilterBankFeaturizer`` on the training images (column statistics),
- draws ``--sizes`` random labeled pixels (default 40,000 and 200) uniformly
  among the field-of-view pixels of the training images, per seed
  (``--seeds``), and trains ``RandomForestClassifier(n_estimators=100,
  random_state=seed)`` on their features,
- scores every forest on every field-of-view pixel of the evaluation images
  at native resolution (one 2-class confusion matrix over all of them):
  mIoU and vessel IoU.

Evaluation split (``--split``): ``val`` (for choosing a configuration)
trains on training images 21-34 and scores on 35-40; ``test`` (only for the
chosen default) trains on all 20 training images and scores on the 20 test
images, and also scores the second observer against the first.

    OMP_NUM_THREADS=1 python benchmarks/probe_filter_bank.py --split val --configs default ilastik green
    OMP_NUM_THREADS=1 python benchmarks/probe_filter_bank.py --split test --configs default --seeds 0 1 2

Prints one JSON line per (configuration, size) with the mean and the
per-seed figures, and the seconds spent featurizing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.ensemble import RandomForestClassifier

from skal_seg.filter_bank import FilterBankFeaturizer
from skal_seg.metrics import confusion_matrix, iou_per_class, mean_iou

REPO = Path(__file__).resolve().parents[1]
ILASTIK_SIGMAS = (0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
CONFIGS = {
    "default": {},
    "ilastik": dict(sigmas=ILASTIK_SIGMAS),
    "green": dict(channels="green"),
    "green_ilastik": dict(channels="green", sigmas=ILASTIK_SIGMAS),
    "rgb": dict(channels="rgb"),
    "gray_small": dict(sigmas=(0.7, 1.0, 1.6, 3.5)),
    "gray_wide": dict(sigmas=(1.0, 2.0, 4.0, 8.0)),
    "no_raw": dict(raw_channels=None),
    # issue 26's bank: Gaussian, LoG, gradient magnitude, Hessian eigenvalues of green at 4 scales + RGB (23)
    "issue26": dict(channels="green", sigmas=(1.0, 2.0, 4.0, 8.0),
                    filters=("gaussian", "laplacian", "gradient_magnitude", "hessian")),
    # the line detector (docs/features.md): on the luma, on green, and with two longer segments
    "lines": dict(line_lengths=(5, 9, 13, 17)),
    "green_lines": dict(channels="green", line_lengths=(5, 9, 13, 17)),
    "lines_long": dict(line_lengths=(5, 9, 13, 17, 23, 29)),
    "lines_gray_green": dict(channels=("gray", "green"), line_lengths=(5, 9, 13, 17)),
}


def read_split(root: Path, split: str) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[str]]:
    """(images (H, W, 3) uint8, vessel labels (H, W) 0/1, FOV masks (H, W) bool, ids) of a DRIVE split."""
    kind = "training" if split == "training" else "test"
    paths = sorted((root / split / "images").glob(f"*_{kind}.tif"))
    if not paths:
        raise SystemExit(f"no DRIVE images under {root / split / 'images'}")
    images, labels, masks, ids = [], [], [], []
    for p in paths:
        n = p.name.split("_")[0]
        images.append(np.asarray(Image.open(p).convert("RGB")))
        labels.append((np.asarray(Image.open(root / split / "1st_manual" / f"{n}_manual1.gif")) == 255).astype(np.int64))
        masks.append(np.asarray(Image.open(root / split / "mask" / f"{n}_{kind}_mask.gif")) == 255)
        ids.append(n)
    return images, labels, masks, ids


def train_and_evaluation(root: Path, split: str) -> tuple[tuple, tuple, tuple | None]:
    """(train, evaluation, test ids or None): each part (images, labels, masks).

    ``"val"``: training images 21-34 train, 35-40 evaluate (the test split is
    not read); ``"test"``: the 20 training images train, the 20 test images evaluate.
    """
    images, labels, masks, _ = read_split(root, "training")
    if split == "val":
        return (images[:14], labels[:14], masks[:14]), (images[14:], labels[14:], masks[14:]), None
    test_images, test_labels, test_masks, test_ids = read_split(root, "testing")
    return (images, labels, masks), (test_images, test_labels, test_masks), test_ids


def second_observer(root: Path, labels: list[np.ndarray], masks: list[np.ndarray], ids: list[str]) -> dict:
    """The second observer's masks (raw palette indices, 1 = vessel) scored against the first's."""
    cm = np.zeros((2, 2), dtype=np.int64)
    for lab, fov, n in zip(labels, masks, ids):
        second = np.asarray(Image.open(root / "testing" / "2nd_manual" / f"{n}_manual2.gif"))  # mode P: indices
        cm += confusion_matrix(lab[fov], second[fov].astype(np.int64), 2)
    return {"miou": round(mean_iou(cm), 4), "vessel_iou": round(float(iou_per_class(cm)[1]), 4)}


def draw_pixels(masks: list[np.ndarray], n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` distinct pixels drawn uniformly among all FOV pixels; per image, sorted flat indices."""
    flat = [np.flatnonzero(m) for m in masks]
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in flat])])
    picks = np.sort(rng.choice(offsets[-1], size=n, replace=False))
    image_of = np.searchsorted(offsets, picks, side="right") - 1
    return [flat[i][picks[image_of == i] - offsets[i]] for i in range(len(masks))]


def probe(config: dict, train, evaluation, sizes, seeds, featurizer=None) -> tuple[list[dict], float]:
    """Forests on each (size, seed) draw, scored on ``evaluation``; ``featurizer`` (unfitted) replaces the bank."""
    images, labels, masks = train
    t0 = time.perf_counter()
    fb = (featurizer or FilterBankFeaturizer(progress=False, **config)).fit(images)
    seconds = time.perf_counter() - t0
    draws = {(n, s): draw_pixels(masks, n, np.random.default_rng([s, n])) for n in sizes for s in seeds}
    union = [np.unique(np.concatenate([d[i] for d in draws.values()])) for i in range(len(images))]
    t0 = time.perf_counter()
    X_union = fb.transform(images, pixels=union)
    seconds += time.perf_counter() - t0
    offsets = np.concatenate([[0], np.cumsum([len(u) for u in union])])
    forests = {}
    for (n, s), pix in draws.items():
        rows = np.concatenate([offsets[i] + np.searchsorted(union[i], p) for i, p in enumerate(pix)])
        y = np.concatenate([lab.reshape(-1)[p] for lab, p in zip(labels, pix)])
        forests[n, s] = RandomForestClassifier(n_estimators=100, random_state=s, n_jobs=1).fit(X_union[rows], y)
    cms = {key: np.zeros((2, 2), dtype=np.int64) for key in forests}
    for img, lab, fov in zip(*evaluation):
        fov_pix = np.flatnonzero(fov)
        t0 = time.perf_counter()
        X = fb.transform(img[None], pixels=[fov_pix])
        seconds += time.perf_counter() - t0
        for key, rf in forests.items():
            cms[key] += confusion_matrix(lab.reshape(-1)[fov_pix], rf.predict(X), 2)
    results = []
    for n in sizes:
        miou = [mean_iou(cms[n, s]) for s in seeds]
        vessel = [float(iou_per_class(cms[n, s])[1]) for s in seeds]
        results.append({"pixels": n, "miou": round(float(np.mean(miou)), 4), "miou_sd": round(float(np.std(miou)), 4),
                        "vessel_iou": round(float(np.mean(vessel)), 4), "per_seed_miou": [round(m, 4) for m in miou],
                        "per_seed_vessel": [round(v, 4) for v in vessel]})
    return results, seconds


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=(REPO / ".." / "shared" / "data" / "drive").resolve())
    ap.add_argument("--split", choices=("val", "test"), default="val")
    ap.add_argument("--configs", nargs="+", default=["default"], choices=sorted(CONFIGS))
    ap.add_argument("--sizes", nargs="+", type=int, default=[40000, 200])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = ap.parse_args(argv)

    train, evaluation, test_ids = train_and_evaluation(args.data, args.split)
    if args.split == "test":
        print(json.dumps({"split": "test", "second_observer": second_observer(args.data, evaluation[1], evaluation[2],
                                                                               test_ids)}), flush=True)
    for name in args.configs:
        t0 = time.perf_counter()
        results, feat_seconds = probe(CONFIGS[name], train, evaluation, args.sizes, args.seeds)
        d = FilterBankFeaturizer(**CONFIGS[name]).fit().n_features_out_
        for r in results:
            print(json.dumps({"split": args.split, "config": name, "n_features": d, **r,
                              "featurize_s": round(feat_seconds, 1), "total_s": round(time.perf_counter() - t0, 1)}),
                  flush=True)


if __name__ == "__main__":
    main()
