"""Experiment: does the forest's class weighting or decision threshold matter on DRIVE? (issue 26)

The probe of ``probe_filter_bank.py`` with ``FilterBankFeaturizer(line_lengths=(5, 9, 13, 17))``:
random labeled pixels inside the field of view (20, 200, 40,000), a 100-tree forest per seed
(0, 1, 2) with ``class_weight`` None, "balanced" or "balanced_subsample", scored on every
field-of-view pixel of the evaluation images with the vessel probability thresholded at 0.3,
0.4, 0.5 and 0.6 (mean and standard deviation of mIoU over the seeds)::

    OMP_NUM_THREADS=1 python benchmarks/probe_forest_weights.py val
"""

import json
import sys

import numpy as np
from sklearn.ensemble import RandomForestClassifier

import probe_filter_bank as pfb
import probe_line_filter as plf
from skal_seg import FilterBankFeaturizer
from skal_seg.metrics import confusion_matrix, mean_iou

split = sys.argv[1]
train, ev, _ = pfb.train_and_evaluation(plf.DRIVE, split)
bank = FilterBankFeaturizer(line_lengths=(5, 9, 13, 17), progress=False).fit(train[0])
Xt = [bank.transform(im[None], pixels=[np.flatnonzero(m)]) for im, m in zip(train[0], train[2])]
Xe = [bank.transform(im[None], pixels=[np.flatnonzero(m)]) for im, m in zip(ev[0], ev[2])]
truth = np.concatenate([l.reshape(-1)[np.flatnonzero(m)] for l, m in zip(ev[1], ev[2])])
Xe = np.concatenate(Xe)
thr = [0.3, 0.4, 0.5, 0.6]
for n in (20, 200, 40000):
    for cw in (None, "balanced", "balanced_subsample"):
        res = {t: [] for t in thr}
        for s in (0, 1, 2):
            pix = pfb.draw_pixels(train[2], n, np.random.default_rng([s, n]))
            local = [np.searchsorted(np.flatnonzero(m), p) for m, p in zip(train[2], pix)]
            X = np.concatenate([x[r] for x, r in zip(Xt, local)])
            y = np.concatenate([l.reshape(-1)[p] for l, p in zip(train[1], pix)])
            f = RandomForestClassifier(100, random_state=s, n_jobs=1, class_weight=cw).fit(X, y)
            P = f.predict_proba(Xe)
            p1 = P[:, list(f.classes_).index(1)] if 1 in f.classes_ else np.zeros(len(Xe))
            for t in thr:
                res[t].append(mean_iou(confusion_matrix(truth, (p1 > t).astype(np.int64), 2)))
        print(json.dumps({"split": split, "n": n, "cw": cw, **{str(t): [round(float(np.mean(v)), 4), round(float(np.std(v)), 4)] for t, v in res.items()}}), flush=True)
