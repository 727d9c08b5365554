"""Experiment: does a multi-scale line detector add to the filter bank on DRIVE? (issue 26)

A line detector in the manner of Ricci and Perfetti's for retinal vessels: on
the inverted green channel, for each length ``L`` the largest mean along a
line of ``L`` pixels through the pixel (12 orientations) minus the mean of
the ``L x L`` window around it; one column per length, appended to the
default :class:`~skal_seg.filter_bank.FilterBankFeaturizer` rows. Since the
detector became the bank's ``line_lengths``, the columns are its dark-line
ones on the green channel (inside the field of view the same values as this
script's first implementation, to 3e-7). The probe
is ``benchmarks/probe_filter_bank.py``'s (random labeled pixels inside the
field of view, a 100-tree random forest per seed, every field-of-view pixel
of the evaluation images scored at native resolution)::

    OMP_NUM_THREADS=1 python benchmarks/probe_line_filter.py val '[[], [5, 9, 13, 17]]'
    OMP_NUM_THREADS=1 python benchmarks/probe_line_filter.py test '[[5, 9, 13, 17]]'

The second argument is a JSON list of length lists (``[]``: the filter bank
alone). Prints one JSON line per (lengths, labeled pixels): mean mIoU over
seeds 0, 1, 2, its standard deviation and the mean vessel IoU.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier

import probe_filter_bank as pfb
from skal_seg import FilterBankFeaturizer
from skal_seg.metrics import confusion_matrix, iou_per_class, mean_iou

DRIVE = pfb.REPO / ".." / "shared" / "data" / "drive"


def line_maps(img: np.ndarray, lengths) -> np.ndarray:
    """(H, W, len(lengths)) float32: the filter bank's dark-line columns on the green channel, unscaled.

    The same as the best line mean minus the window mean on the inverted
    green channel, the detector as this experiment first wrote it before it
    became ``FilterBankFeaturizer(line_lengths=...)``.
    """
    f = FilterBankFeaturizer(channels="green", filters=["gaussian"], sigmas=[1.0], raw_channels=None,
                             line_lengths=tuple(lengths), standardize=False, progress=False).fit()
    X = f.transform(img[None]) * f.scale_
    dark = [i for i, name in enumerate(f.get_feature_names_out()) if "_line_dark_" in name]
    return X[:, dark].reshape(*img.shape[:2], len(dark))


def features(bank, img, pixels, lengths) -> np.ndarray:
    X = bank.transform(img[None], pixels=[pixels])
    if not lengths:
        return X
    return np.concatenate([X, line_maps(img, lengths).reshape(-1, len(lengths))[pixels]], 1)


def probe(lengths, split: str, sizes=(40000, 200), seeds=(0, 1, 2)) -> None:
    train, evaluation, _ = pfb.train_and_evaluation(DRIVE, split)
    bank = FilterBankFeaturizer(progress=False).fit(train[0])
    draws = {(n, s): pfb.draw_pixels(train[2], n, np.random.default_rng([s, n])) for n in sizes for s in seeds}
    union = [np.unique(np.concatenate([d[i] for d in draws.values()])) for i in range(len(train[0]))]
    X_union = np.concatenate([features(bank, im, u, lengths) for im, u in zip(train[0], union)])
    offsets = np.concatenate([[0], np.cumsum([len(u) for u in union])])
    forests = {}
    for (n, s), pix in draws.items():
        rows = np.concatenate([offsets[i] + np.searchsorted(union[i], p) for i, p in enumerate(pix)])
        y = np.concatenate([lab.reshape(-1)[p] for lab, p in zip(train[1], pix)])
        forests[n, s] = RandomForestClassifier(n_estimators=100, random_state=s, n_jobs=2).fit(X_union[rows], y)
    cms = {key: np.zeros((2, 2), np.int64) for key in forests}
    for img, lab, fov in zip(*evaluation):
        pixels = np.flatnonzero(fov)
        X = features(bank, img, pixels, lengths)
        for key, forest in forests.items():
            cms[key] += confusion_matrix(lab.reshape(-1)[pixels], forest.predict(X), 2)
    for n in sizes:
        miou = [mean_iou(cms[n, s]) for s in seeds]
        vessel = [float(iou_per_class(cms[n, s])[1]) for s in seeds]
        print(json.dumps({"split": split, "lengths": list(lengths), "pixels": n, "miou": round(float(np.mean(miou)), 4),
                          "sd": round(float(np.std(miou)), 4), "vessel_iou": round(float(np.mean(vessel)), 4)}),
              flush=True)


if __name__ == "__main__":
    t0 = time.perf_counter()
    for lengths in json.loads(sys.argv[2]):
        probe(lengths, sys.argv[1])
        print(f"{time.perf_counter() - t0:.0f} s", flush=True)
