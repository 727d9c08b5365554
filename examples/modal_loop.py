"""modAL usage: an ActiveLearner with TwoStageQuery and TorchMLPClassifier, round by round, on real images.

The pool is a set of candidate pixels of the CamVid sample shipped with the
package, described by diffusion features from the embedded model. Each round
the learner asks which pixels to label (round 0: MaxHerding only, since there
is no classifier yet; later rounds: MaxHerding then eDALD over noisy
diffusion views), the "annotator" (here: the ground-truth label maps) labels
them, the classifier is retrained on every labeled pixel, and its accuracy
and mIoU on every pixel of the test images are printed.

    python examples/modal_loop.py                # 12 pool / 4 test images at 128 x 128, 5 rounds, minutes on a CPU
    python examples/modal_loop.py --rounds 8
    python examples/modal_loop.py --smoke        # 2 pool / 1 test image at 64 x 64, 3 rounds, seconds
"""

import argparse

import numpy as np
from modAL.models import ActiveLearner

from skal_seg import TwoStageQuery
from skal_seg.classifier import TorchMLPClassifier
from skal_seg.data import CAMVID_CLASSES, IGNORE_INDEX, load_split, sample_dataset_dir
from skal_seg.engine.noisy import CachedNoisyViews
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.metrics import confusion_matrix, mean_iou


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: runs in seconds (used by the tests)")
    parser.add_argument("--rounds", type=int, default=None, help="query rounds (default: 5, or 3 with --smoke)")
    args = parser.parse_args(argv)
    if args.smoke:
        size, n_pool, n_test, n_candidates, budget, local_budget, n_draws, rounds, min_steps = 64, 2, 1, 300, 6, 20, 2, 3, 100
    else:
        size, n_pool, n_test, n_candidates, budget, local_budget, n_draws, rounds, min_steps = 128, 12, 4, 500, 24, 20, 5, 5, 500
    rounds = args.rounds or rounds

    # ---- data and features -----------------------------------------------------------
    root = sample_dataset_dir()
    pool = load_split(root, "train", size=size, limit=n_pool)
    test = load_split(root, "test", size=size, limit=n_test)
    featurizer = DiffusionFeaturizer(model="embedded", progress=False).fit()

    # Candidate pixels: a fixed random subset of each pool image (flat indices y * W + x).
    rng = np.random.default_rng(0)
    candidates = [np.sort(rng.choice(size * size, n_candidates, replace=False)) for _ in range(n_pool)]
    X = featurizer.transform(pool.images, pixels=candidates)  # (n_pool * n_candidates, D), fixed noise
    y = np.concatenate([lab.reshape(-1)[c] for lab, c in zip(pool.labels, candidates)])  # the oracle
    groups = np.repeat(np.arange(n_pool), n_candidates)  # the image of each row: the local stage works per image
    offsets = np.arange(n_pool + 1) * n_candidates  # first row of each image

    # Noisy views for eDALD: the same features under n_draws fresh diffusion noises, computed on
    # demand for the rows the query asks about. CachedNoisyViews keeps an image's rows once computed
    # (one UNet pass costs the same for one pixel as for all of an image's candidates).
    view_fn = featurizer.noisy_view_fn(pool.images, candidates, n_draws=n_draws, random_state=0)
    noisy = CachedNoisyViews(view_fn, offsets, X.shape[1])

    X_test = featurizer.transform(test.images)  # every test pixel, for evaluation
    y_test = test.labels.reshape(-1)
    print(f"pool {n_pool} images x {n_candidates} candidate pixels, D = {X.shape[1]}; "
          f"test {len(y_test)} pixels; budget {budget} pixels per round")

    # ---- the learner -----------------------------------------------------------------
    learner = ActiveLearner(
        # ignore_index: a pixel labeled 'ignore' (255) carries no class; the classifier drops it.
        estimator=TorchMLPClassifier(min_steps=min_steps, ignore_index=IGNORE_INDEX, random_state=0),
        query_strategy=TwoStageQuery(local_budget=local_budget, keep_global=0.5, random_state=0),
    )
    labeled = np.zeros(len(X), dtype=bool)  # queried rows, whether or not their label is 'ignore'
    for r in range(rounds):
        unlabeled = np.flatnonzero(~labeled)
        # Extra keyword arguments go to the strategy: the image of each pool row, and the noisy
        # views as a callable over pool rows (row i of X[unlabeled] is row unlabeled[i] of X).
        # The learner itself is passed to the strategy, so its X_training (the labeled rows)
        # conditions the global MaxHerding stage.
        idx, _ = learner.query(X[unlabeled], n_instances=budget, groups=groups[unlabeled],
                               X_noisy=lambda i: noisy(unlabeled[i]))
        picked = unlabeled[np.asarray(idx)]
        labeled[picked] = True
        # The annotator labels the picked pixels. An 'ignore' pixel costs budget and teaches the
        # classifier nothing, but it is taught all the same: the learner's X_training (every queried
        # pixel) conditions the global MaxHerding stage. The classifier needs one pixel with a class.
        if learner.X_training is not None or np.any(y[picked] != IGNORE_INDEX):
            learner.teach(X[picked], y[picked])  # retrains on every labeled pixel so far
        if learner.X_training is None:
            print(f"round {r}  labeled {labeled.sum():4d}  (no class labeled yet)")
            continue
        pred = learner.predict(X_test)
        keep = y_test != IGNORE_INDEX
        accuracy = float(np.mean(pred[keep] == y_test[keep]))
        miou = mean_iou(confusion_matrix(y_test, pred, len(CAMVID_CLASSES)))
        stage = "MaxHerding only" if r == 0 else "MaxHerding + eDALD"
        print(f"round {r}  labeled {labeled.sum():4d}  accuracy {accuracy:.4f}  mIoU {miou:.4f}  ({stage})")


if __name__ == "__main__":
    main()
