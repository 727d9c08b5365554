"""Toy demo: what each stage of the two-stage query picks, on synthetic 'pixels'.

Six 'images' of 200 pixels each; a pixel's feature is a 2-D point drawn near
one of four class centres. Round 0 (no classifier) uses MaxHerding only;
round 1 trains the MLP head on the round-0 labels and ranks MaxHerding's
candidate pool by eDALD, with noisy feature draws standing in for the
diffusion model's fresh-noise features.

    python examples/toy_quickstart.py
"""

import numpy as np

from skal_seg import TwoStageQuery
from skal_seg.classifier import TorchMLPClassifier

rng = np.random.default_rng(0)
centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
y = rng.integers(0, 4, size=1200)
X = centres[y] + rng.normal(scale=0.9, size=(1200, 2))
groups = np.repeat(np.arange(6), 200)  # image of each pixel
X_noisy = X[None] + rng.normal(scale=0.3, size=(5, 1200, 2))  # K = 5 noisy draws

query = TwoStageQuery(local_budget=10, keep_global=0.5, random_state=0)

picked = query.query(None, X, n_instances=8, groups=groups)
print(f"round 0: stage 1 local kept {len(query.local_picks_)} pixels (10 per image)")
print(f"round 0: stage 1 global picked {picked.tolist()} (classes {y[picked].tolist()})")

clf = TorchMLPClassifier(random_state=0).fit(X[picked], y[picked])
print(f"         classifier accuracy on all pixels: {clf.score(X, y):.3f}")

pool = np.setdiff1d(np.arange(len(X)), picked)
new = pool[query.query(clf, X[pool], n_instances=8, groups=groups[pool], X_noisy=X_noisy[:, pool], X_labeled=X[picked])]
print(f"round 1: stage 1 kept a candidate pool of {len(query.candidate_pool_)} pixels")
print(f"round 1: stage 2 (eDALD) picked {new.tolist()} (scores {np.round(np.sort(query.scores_)[::-1][:8], 3).tolist()})")
labeled = np.r_[picked, new]
clf = TorchMLPClassifier(random_state=0).fit(X[labeled], y[labeled])
print(f"         classifier accuracy on all pixels: {clf.score(X, y):.3f} with {len(labeled)} labels")
