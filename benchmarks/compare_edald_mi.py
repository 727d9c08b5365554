"""How differently do eDALD with the paper's BALD term and with the official code's rank a pool?

On the shipped CamVid sample (pool = the sample's train split minus its
validation images, ``--candidates`` random valid pixels per image, the embedded
model, K = 5 noisy draws), a head is trained on random labeled pixels and the
two scores (``mi="paper"`` and ``mi="paper_code"``) of every other candidate are
compared: Spearman correlation and overlap of the top-k rows. A few CPU
minutes with one thread::

    OMP_NUM_THREADS=1 python benchmarks/compare_edald_mi.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from skal_seg.classifier import TorchMLPClassifier
from skal_seg.data import IGNORE_INDEX, load_split, sample_dataset_dir, split_validation
from skal_seg.engine.features import candidate_pixels, fitted_featurizer
from skal_seg.engine.settings import ExperimentConfig
from skal_seg.uncertainty import bald_score, entropy_score, paper_code_bald_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=400, help="candidate pixels per pool image")
    parser.add_argument("--labeled", type=int, nargs="+", default=[37, 111, 370])
    parser.add_argument("--top", type=int, nargs="+", default=[37, 100, 370])
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    pool, _ = split_validation(load_split(sample_dataset_dir(), "train", size=128), 0.1)
    featurizer = fitted_featurizer(ExperimentConfig(), None, progress=False)
    pixels = candidate_pixels(pool, args.candidates, seed=0)
    X = featurizer.transform(pool.images, pixels=pixels).astype(np.float32)
    y = np.concatenate([pool.labels[i].reshape(-1)[p] for i, p in enumerate(pixels)])
    noisy = np.asarray(featurizer.noisy_views(pool.images, pixels=pixels, n_draws=5, random_state=0), dtype=np.float32)
    rng = np.random.default_rng(0)
    for n_labeled in args.labeled:
        labeled = rng.choice(np.flatnonzero(y != IGNORE_INDEX), size=n_labeled, replace=False)
        clf = TorchMLPClassifier(random_state=0).fit(X[labeled], y[labeled])
        rest = np.setdiff1d(np.arange(len(X)), labeled)
        K = noisy.shape[0]
        proba = clf.predict_proba(X[rest])
        draws = clf.predict_proba(noisy[:, rest].reshape(K * len(rest), -1)).reshape(K, len(rest), -1)
        mi_paper, mi_code = bald_score(draws), paper_code_bald_score(draws)
        paper, code = entropy_score(proba) + mi_paper, entropy_score(proba) + mi_code
        line = (f"labeled {n_labeled}: {len(rest)} pool rows, Spearman eDALD {spearmanr(paper, code).statistic:.4f}, "
                f"BALD terms {spearmanr(mi_paper, mi_code).statistic:.4f}; mean entropy {entropy_score(proba).mean():.4f}, "
                f"mean MI paper {mi_paper.mean():.4f} code {mi_code.mean():.4f}")
        for k in args.top:
            a, b = np.argsort(-paper, kind="stable")[:k], np.argsort(-code, kind="stable")[:k]
            line += f"; top-{k} overlap {len(np.intersect1d(a, b)) / k:.3f}"
        print(line, flush=True)
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
