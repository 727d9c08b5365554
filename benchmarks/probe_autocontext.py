"""Experiment: does ilastik-style auto-context add to the filter bank + line detector on DRIVE? (issue 26)

Auto-context: a first random forest on the filter-bank rows (plus the line
detector of ``probe_line_filter.py``) predicts a vessel probability for every
field-of-view pixel of every image; that map and its Gaussian smoothings
(sigmas 1, 2, 4, 8 px) are appended to the rows, and a second forest is trained
on the same labeled pixels and scored. Same probe as ``probe_line_filter.py``
(random labeled pixels inside the field of view, seeds 0, 1, 2, 100 trees)::

    OMP_NUM_THREADS=1 python benchmarks/probe_autocontext.py val
    OMP_NUM_THREADS=1 python benchmarks/probe_autocontext.py test

Prints one JSON line per (stage, labeled pixels): mean mIoU over seeds, its
standard deviation and the mean vessel IoU; stage 1 is the forest without
context (``probe_line_filter.py``'s figure).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from scipy import ndimage
from sklearn.ensemble import RandomForestClassifier

import probe_filter_bank as pfb
import probe_line_filter as plf
from skal_seg import FilterBankFeaturizer
from skal_seg.metrics import confusion_matrix, iou_per_class, mean_iou

LENGTHS = (5, 9, 13, 17)
CONTEXT_SIGMAS = (1, 2, 4, 8)


def context(prob: np.ndarray) -> np.ndarray:
    """(H * W, 1 + len(CONTEXT_SIGMAS)) float32: the probability map and its smoothings."""
    maps = [prob] + [ndimage.gaussian_filter(prob, s, mode="reflect") for s in CONTEXT_SIGMAS]
    return np.stack(maps, -1).reshape(-1, len(maps)).astype(np.float32)


def prob_map(forest, X_fov: np.ndarray, fov: np.ndarray) -> np.ndarray:
    p = np.zeros(fov.size, np.float32)
    p[np.flatnonzero(fov)] = forest.predict_proba(X_fov)[:, 1]
    return p.reshape(fov.shape)


def probe(split: str, sizes=(40000, 200), seeds=(0, 1, 2)) -> None:
    train, evaluation, _ = pfb.train_and_evaluation(plf.DRIVE, split)
    bank = FilterBankFeaturizer(progress=False).fit(train[0])
    fov_rows = lambda part: [plf.features(bank, im, np.flatnonzero(m), LENGTHS) for im, m in zip(part[0], part[2])]
    X_train, X_eval = fov_rows(train), fov_rows(evaluation)
    print(f"features {time.perf_counter() - T0:.0f} s", flush=True)
    draws = {(n, s): pfb.draw_pixels(train[2], n, np.random.default_rng([s, n])) for n in sizes for s in seeds}
    results = {}
    for (n, s), pix in draws.items():
        # rows of the drawn pixels within each image's field-of-view rows
        local = [np.searchsorted(np.flatnonzero(m), p) for m, p in zip(train[2], pix)]
        y = np.concatenate([lab.reshape(-1)[p] for lab, p in zip(train[1], pix)])
        X1 = np.concatenate([X[r] for X, r in zip(X_train, local)])
        first = RandomForestClassifier(n_estimators=100, random_state=s, n_jobs=2).fit(X1, y)
        ctx_train = [context(prob_map(first, X, m)) for X, m in zip(X_train, train[2])]
        X2 = np.concatenate([np.concatenate([X[r], c[p]], 1) for X, c, r, p in zip(X_train, ctx_train, local, pix)])
        second = RandomForestClassifier(n_estimators=100, random_state=s, n_jobs=2).fit(X2, y)
        cm1, cm2 = np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64)
        for X, lab, m in zip(X_eval, evaluation[1], evaluation[2]):
            fov = np.flatnonzero(m)
            truth = lab.reshape(-1)[fov]
            p1 = prob_map(first, X, m)
            cm1 += confusion_matrix(truth, (p1.reshape(-1)[fov] > 0.5).astype(np.int64), 2)
            X2e = np.concatenate([X, context(p1)[fov]], 1)
            cm2 += confusion_matrix(truth, second.predict(X2e), 2)
        results[n, s] = cm1, cm2
        print(f"{n} px seed {s}: {mean_iou(cm1):.4f} -> {mean_iou(cm2):.4f}  {time.perf_counter() - T0:.0f} s", flush=True)
    for n in sizes:
        for stage in (0, 1):
            cms = [results[n, s][stage] for s in seeds]
            miou = [mean_iou(c) for c in cms]
            print(json.dumps({"split": split, "stage": stage + 1, "pixels": n, "miou": round(float(np.mean(miou)), 4),
                              "sd": round(float(np.std(miou)), 4),
                              "vessel_iou": round(float(np.mean([iou_per_class(c)[1] for c in cms])), 4)}), flush=True)


if __name__ == "__main__":
    T0 = time.perf_counter()
    probe(sys.argv[1])
    print(f"{time.perf_counter() - T0:.0f} s", flush=True)
