"""scikit-learn usage: diffusion pixel features -> Pipeline(StandardScaler, TorchMLPClassifier), grid-searched.

The segmentation head is an ordinary scikit-learn classifier over pixel
feature rows, so everything scikit-learn offers works on it: pipelines,
``clone``, ``GridSearchCV`` with a custom scorer, group-aware
cross-validation. A pipeline cannot map images to per-pixel labels itself,
so the featurizer runs first: ``DiffusionFeaturizer.transform`` turns images
into one row per pixel (here: a random subset of pixels per image) and the
label maps give the matching targets.

Runs offline on the CamVid sample shipped with the package and the embedded
diffusion model:

    python examples/pipeline.py           # 12 train / 4 test images at 128 x 128, about a minute or two on a CPU
    python examples/pipeline.py --smoke   # 3 train / 1 test image at 64 x 64, seconds
"""

import argparse

import numpy as np
from sklearn.base import clone
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skal_seg.classifier import TorchMLPClassifier
from skal_seg.data import CAMVID_CLASSES, IGNORE_INDEX, load_split, sample_dataset_dir
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.metrics import confusion_matrix, iou_per_class, mean_iou

N_CLASSES = len(CAMVID_CLASSES)


def miou(y_true, y_pred):
    """mIoU of pixel predictions, as a scikit-learn score (higher is better)."""
    return mean_iou(confusion_matrix(y_true, y_pred, N_CLASSES))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: runs in seconds (used by the tests)")
    args = parser.parse_args(argv)
    if args.smoke:
        size, n_train, n_test, pixels_per_image, folds, min_steps = 64, 3, 1, 200, 3, 50
        grid = {"torchmlpclassifier__hidden_layer_sizes": [(128, 32), (64,)]}
    else:
        size, n_train, n_test, pixels_per_image, folds, min_steps = 128, 12, 4, 1000, 4, 500
        grid = {
            "torchmlpclassifier__hidden_layer_sizes": [(128, 32), (64,)],
            "torchmlpclassifier__learning_rate": [1e-3, 3e-3],
        }

    # ---- data: the CamVid sample (train/ and test/ folders of NAME.png + NAME_label.png) ----
    root = sample_dataset_dir()
    train = load_split(root, "train", size=size, limit=n_train)
    test = load_split(root, "test", size=size, limit=n_test)
    print(f"train {len(train)} images, test {len(test)} images at {size}x{size}")

    # ---- features: one row per pixel; a random subset of pixels per training image ------
    featurizer = DiffusionFeaturizer(model="embedded", progress=False).fit()  # fit() only loads the UNet
    rng = np.random.default_rng(0)
    pixels = [rng.choice(size * size, pixels_per_image, replace=False) for _ in range(len(train))]
    X = featurizer.transform(train.images, pixels=pixels)  # (n_train * pixels_per_image, D), float32
    y = np.concatenate([lab.reshape(-1)[p] for lab, p in zip(train.labels, pixels)])
    groups = np.repeat(np.arange(len(train)), pixels_per_image)  # the image each row comes from
    print(f"features: X {X.shape} {X.dtype}, D = {featurizer.n_features_out_} "
          f"({len(featurizer.timesteps_)} timesteps x {sum(featurizer.block_channels_)} decoder channels)")

    # ---- the estimator: a plain scikit-learn Pipeline -------------------------------------
    # Feature rows are L2-normalised, so individual columns are tiny; standardising them
    # gives the MLP inputs of unit scale. ignore_index: 'ignore' pixels (255) carry no class,
    # so the classifier drops them in fit (and the mIoU scorer skips them in the ground truth).
    clf = TorchMLPClassifier(max_epochs=5, min_steps=min_steps, ignore_index=IGNORE_INDEX, random_state=0)
    pipe = make_pipeline(StandardScaler(), clf)

    # ---- model selection: grid search, folds split by image, scored by mIoU -----------------
    # GroupKFold keeps all pixels of an image in one fold: neighbouring pixels are near
    # duplicates, so a random split would leak and overstate the score.
    search = GridSearchCV(pipe, grid, cv=GroupKFold(n_splits=folds), scoring=make_scorer(miou))
    search.fit(X, y, groups=groups)
    for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
        print(f"  cv mIoU {score:.4f}  {params}")
    print(f"best: {search.best_params_} (cv mIoU {search.best_score_:.4f})")

    # clone() gives an unfitted copy with the same settings, e.g. to refit on more labels later.
    fresh = clone(search.best_estimator_)
    assert not hasattr(fresh[-1], "classes_")

    # ---- evaluation: every pixel of the test images -------------------------------------
    X_test = featurizer.transform(test.images)  # (n_test * size * size, D)
    pred = search.best_estimator_.predict(X_test)
    cm = confusion_matrix(test.labels.reshape(-1), pred, N_CLASSES)
    iou = iou_per_class(cm)
    print(f"test mIoU {mean_iou(cm):.4f} on {len(test)} images "
          f"({np.sum(~np.isnan(iou))} classes present), trained on {np.sum(y != IGNORE_INDEX)} labeled pixels")
    seg = pred.reshape(len(test), size, size)  # the predicted label maps, per image
    print(f"predicted label maps: {seg.shape}")


if __name__ == "__main__":
    main()
