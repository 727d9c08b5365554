"""Tests of skal_seg.classifier.TorchMLPClassifier (small, CPU-only)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from skal_seg.classifier import TorchMLPClassifier

# Fast settings for tests: few epochs, few steps, CPU.
FAST = dict(max_epochs=3, min_steps=150, device="cpu", random_state=0)

#: check_estimator checks that cannot pass, with the reason.
EXPECTED_FAILED_CHECKS = {
    "check_class_weight_classifiers": (
        "The check weights class 0 by 1000 and the others by 1e-4 on very noisy blobs "
        "and expects > 87% of test rows predicted as 0, which holds for linear models. "
        "A flexible MLP drives the weighted loss to ~0 by fitting the class-0 rows "
        "alone; rows of the near-zero-weight classes exert no pull, so the network "
        "keeps predicting them by extrapolation (~75-85% predicted 0). class_weight is "
        "applied correctly (see test_class_weight_balanced_favours_minority)."
    ),
}



def _blobs(n_classes: int, n: int = 240, n_features: int = 6, seed: int = 0):
    X, y = make_blobs(
        n_samples=n, n_features=n_features, centers=n_classes, cluster_std=1.0, random_state=seed
    )
    return X, y


@pytest.mark.parametrize("n_classes", [2, 3])
def test_fits_blobs_to_high_accuracy(n_classes):
    X_all, y_all = _blobs(n_classes, n=360)
    X, y, Xte, yte = X_all[:240], y_all[:240], X_all[240:], y_all[240:]
    clf = TorchMLPClassifier(**FAST).fit(X, y)

    assert clf.score(X, y) > 0.97
    assert clf.score(Xte, yte) > 0.95
    np.testing.assert_array_equal(clf.classes_, np.arange(n_classes))
    assert clf.n_features_in_ == X.shape[1]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), n_classes)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(1)])
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-10, atol=1e-12)
    # The training loss went down and at least min_steps steps were taken.
    assert clf.loss_curve_[-1] < 0.5 * clf.loss_curve_[0]
    assert clf.n_steps_ >= FAST["min_steps"]
    assert len(clf.loss_curve_) == clf.n_iter_
    assert clf.validation_loss_curve_ is None


def test_default_architecture():
    X, y = _blobs(3, n=60)
    clf = TorchMLPClassifier(max_epochs=1, min_steps=1, device="cpu", random_state=0).fit(X, y)
    layers = list(clf.model_)
    kinds = [type(m).__name__ for m in layers]
    assert kinds == [
        "Linear", "ReLU", "BatchNorm1d", "Linear", "ReLU", "BatchNorm1d", "Linear",
    ]
    assert (layers[0].in_features, layers[0].out_features) == (6, 128)
    assert (layers[3].in_features, layers[3].out_features) == (128, 32)
    assert (layers[6].in_features, layers[6].out_features) == (32, 3)
    assert not clf.model_.training


def test_tiny_set_with_singleton_classes():
    """30 pixels, two classes with one example each: min_steps lets them be learned."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 16))
    y = np.r_[np.zeros(14, int), np.ones(14, int), [5, 9]]
    X[y == 1] += 1.5
    X[-2, :4] += 4.0
    X[-1, 4:8] -= 4.0
    clf = TorchMLPClassifier(max_epochs=3, min_steps=300, device="cpu", random_state=0).fit(X, y)

    # One epoch is one full-batch step here: min_steps sets the schedule.
    assert clf.n_steps_ == 300 and clf.n_iter_ == 300
    np.testing.assert_array_equal(clf.classes_, [0, 1, 5, 9])
    np.testing.assert_array_equal(clf.predict(X[-2:]), [5, 9])
    assert clf.score(X, y) == 1.0


def test_one_row_tail_batch_is_merged():
    """9 rows in batches of 4 would leave a 1-row batch, which BatchNorm rejects."""
    X, y = _blobs(2, n=9)
    clf = TorchMLPClassifier(
        batch_size=4, max_epochs=2, min_steps=0, device="cpu", random_state=0
    ).fit(X, y)
    assert clf.n_iter_ == 2
    assert clf.n_steps_ == 4  # (4, 4+1) per epoch
    # batch_size=1 can never work with BatchNorm: rejected at fit.
    with pytest.raises(ValueError, match="batch_size"):
        TorchMLPClassifier(batch_size=1).fit(X, y)


def test_string_and_noncontiguous_labels():
    X, y = _blobs(3, n=150)
    names = np.array(["road", "sky", "tree"])
    clf = TorchMLPClassifier(**FAST).fit(X, names[y])
    np.testing.assert_array_equal(clf.classes_, names)
    pred = clf.predict(X)
    assert pred.dtype.kind == "U"
    assert np.mean(pred == names[y]) > 0.95

    ints = np.array([42, 3, 10])  # unsorted, non-contiguous
    clf = TorchMLPClassifier(**FAST).fit(X, list(ints[y]))
    np.testing.assert_array_equal(clf.classes_, [3, 10, 42])
    assert np.mean(clf.predict(X) == ints[y]) > 0.95


def test_ignore_index_rows_are_dropped_never_a_class():
    X, y = _blobs(3, n=150)
    y = y.copy()
    y[::10] = 255  # CamVid's ignore value on some rows
    default = TorchMLPClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(default.classes_, [0, 1, 2, 255])  # scikit-learn semantics: a label is a class
    clf = TorchMLPClassifier(ignore_index=255, **FAST).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.predict_proba(X).shape == (150, 3) and clf.n_features_in_ == X.shape[1]
    keep = y != 255
    by_hand = TorchMLPClassifier(**FAST).fit(X[keep], y[keep])  # the same as dropping the rows first
    np.testing.assert_array_equal(clf.predict_proba(X), by_hand.predict_proba(X))
    assert TorchMLPClassifier(ignore_index=255, **FAST).get_params()["ignore_index"] == 255
    names = np.array(["road", "sky", "void"])[np.minimum(np.arange(150) % 4, 2)]
    np.testing.assert_array_equal(TorchMLPClassifier(ignore_index="void", **FAST).fit(X, names).classes_, ["road", "sky"])
    assert len(TorchMLPClassifier(ignore_index=255, **FAST).fit(X, names).classes_) == 3  # str labels never equal 255
    with pytest.raises(ValueError, match="every label is ignore_index=255"):
        TorchMLPClassifier(ignore_index=255, **FAST).fit(X, np.full(150, 255))
    with pytest.raises(ValueError, match="ignore_index"):
        TorchMLPClassifier(ignore_index=[255, 254], **FAST).fit(X, y)


def test_single_class():
    X = np.random.default_rng(0).normal(size=(5, 3))
    clf = TorchMLPClassifier(device="cpu").fit(X, ["cat"] * 5)
    assert clf.model_ is None
    np.testing.assert_array_equal(clf.predict(X[:3]), ["cat"] * 3)
    np.testing.assert_array_equal(clf.predict_proba(X[:3]), np.ones((3, 1)))
    with pytest.raises(ValueError):
        clf.predict(X[:, :2])


def test_deterministic_with_random_state():
    X, y = _blobs(3, n=150)
    params = dict(FAST, dropout=0.2, batch_size=32)  # shuffling and dropout both seeded
    state = torch.get_rng_state()
    p1 = TorchMLPClassifier(**params).fit(X, y).predict_proba(X)
    p2 = TorchMLPClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(p1, p2)
    # The global torch RNG is left as it was.
    assert torch.equal(torch.get_rng_state(), state)
    p3 = TorchMLPClassifier(**dict(params, random_state=1)).fit(X, y).predict_proba(X)
    assert not np.allclose(p1, p3)


def test_clone_get_params_and_pickle():
    clf = TorchMLPClassifier(hidden_layer_sizes=(16,), class_weight="balanced", **FAST)
    params = clf.get_params()
    assert params["hidden_layer_sizes"] == (16,)
    assert params["class_weight"] == "balanced"
    c2 = clone(clf)
    assert c2 is not clf and c2.get_params() == params
    assert TorchMLPClassifier(**params).get_params() == params
    c2.set_params(dropout=0.1)
    assert c2.dropout == 0.1 and clf.dropout == 0.0

    X, y = _blobs(3, n=120)
    clf.fit(X, y)
    fresh = clone(clf)
    assert not hasattr(fresh, "model_")
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    assert restored.model_ is not clf.model_


def test_pipeline():
    X, y = _blobs(3, n=180)
    X = X * np.array([1000.0, 1e-3, 1.0, 50.0, 1.0, 1.0]) + 500.0
    pipe = make_pipeline(StandardScaler(), TorchMLPClassifier(**FAST))
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.95
    assert pipe.predict_proba(X[:7]).shape == (7, 3)
    clone(pipe).fit(X, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_raises(bad):
    X, y = _blobs(2, n=40)
    Xb = X.copy()
    Xb[3, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        TorchMLPClassifier(**FAST).fit(Xb, y)
    clf = TorchMLPClassifier(max_epochs=1, min_steps=1, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="NaN|infinity"):
        clf.predict(Xb)
    with pytest.raises(ValueError, match="NaN|infinity"):
        clf.predict_proba(Xb.astype(np.float16))


def test_wrong_ndim_raises():
    X, y = _blobs(2, n=40)
    with pytest.raises(ValueError, match="2D"):
        TorchMLPClassifier(**FAST).fit(X[:, 0], y)
    with pytest.raises(ValueError):
        TorchMLPClassifier(**FAST).fit(X[:, :, None], y)
    clf = TorchMLPClassifier(max_epochs=1, min_steps=1, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="2D"):
        clf.predict(X[0])
    with pytest.raises(ValueError, match="2D"):
        clf.predict_proba(X[0].astype(np.float16))
    with pytest.raises(ValueError):
        clf.predict_proba(X[None])


def test_not_fitted_raises():
    X, _ = _blobs(2, n=10)
    clf = TorchMLPClassifier()
    for method in (clf.predict, clf.predict_proba, clf.predict_log_proba):
        with pytest.raises(NotFittedError):
            method(X)


def test_wrong_feature_count_raises():
    X, y = _blobs(2, n=40)
    clf = TorchMLPClassifier(max_epochs=1, min_steps=1, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but TorchMLPClassifier is expecting 6"):
        clf.predict(X[:, :5])
    with pytest.raises(ValueError, match="expecting 6"):
        clf.predict_proba(np.c_[X, X].astype(np.float16))


def test_y_checks():
    X, y = _blobs(2, n=40)
    with pytest.raises(ValueError, match="requires y"):
        TorchMLPClassifier(**FAST).fit(X, None)
    with pytest.raises(ValueError, match="Unknown label type"):
        TorchMLPClassifier(**FAST).fit(X, y + 0.5)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        TorchMLPClassifier(**FAST).fit(X, y[:-1])


def test_float16_and_chunked_prediction_match():
    X, y = _blobs(3, n=150)
    clf = TorchMLPClassifier(**FAST).fit(X, y)
    X32 = X.astype(np.float32)
    p = clf.predict_proba(X32)
    # Predicting 7 rows at a time gives the same result as one pass.
    p_chunked = clf.set_params(predict_batch_size=7).predict_proba(X32)
    np.testing.assert_allclose(p_chunked, p, rtol=1e-5, atol=1e-6)
    # float16 input is cast per chunk; agrees up to float16 rounding of X.
    X16 = X.astype(np.float16)
    p16 = clf.predict_proba(X16)
    np.testing.assert_allclose(p16, clf.predict_proba(X16.astype(np.float32)), atol=1e-6)
    assert np.mean(p16.argmax(1) == p.argmax(1)) > 0.97


def test_auto_predict_batch_size_follows_the_feature_width(monkeypatch):
    import skal_seg.classifier as classifier_module

    X, y = _blobs(3, n=150)
    clf = TorchMLPClassifier(**{**FAST, "device": "cpu"}).fit(X, y)
    assert clf.predict_batch_size == "auto"
    cpu = torch.device("cpu")
    # Tiny widths hit the upper bound; a 1056-wide pool gets ~8 MiB chunks.
    assert clf._predict_rows(cpu) == 65536
    clf.n_features_in_ = 1056
    assert clf._predict_rows(cpu) == 2**23 // (4 * 1056)
    assert clf._predict_rows(torch.device("cuda")) == 65536
    clf.n_features_in_ = X.shape[1]
    # Chunks of the resolved size give the same probabilities as one pass.
    p = clf.predict_proba(X)
    monkeypatch.setattr(classifier_module, "_CPU_PREDICT_CHUNK_BYTES", 4 * X.shape[1] * 256)
    assert clf._predict_rows(cpu) == 256
    X_big = np.repeat(X, 5, axis=0)  # 750 rows: three chunks
    np.testing.assert_allclose(clf.predict_proba(X_big)[::5], p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        dict(batch_size=1),
        dict(dropout=1.0),
        dict(learning_rate=0.0),
        dict(max_epochs=0),
        dict(min_steps=-1),
        dict(hidden_layer_sizes=(16, 0)),
        dict(validation_fraction=1.0),
        dict(class_weight="auto"),
        dict(device="not-a-device"),
        dict(predict_batch_size="big"),
        dict(predict_batch_size=2.5),
        dict(predict_batch_size=0),
    ],
)
def test_invalid_params_raise_at_fit(params):
    X, y = _blobs(2, n=20)
    clf = TorchMLPClassifier(**params)  # stored unchanged, no error yet
    for k, v in params.items():
        assert getattr(clf, k) == v
    with pytest.raises(ValueError):
        clf.fit(X, y)


def test_early_stopping():
    # Random labels: the network can only overfit, so validation loss rises.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 20))
    y = rng.integers(0, 3, 600)
    clf = TorchMLPClassifier(
        early_stopping=True,
        n_iter_no_change=2,
        max_epochs=100,
        min_steps=0,
        batch_size=128,
        device="cpu",
        random_state=0,
    ).fit(X, y)
    assert clf.n_iter_ < 100
    assert len(clf.validation_loss_curve_) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.best_validation_loss_ == min(clf.validation_loss_curve_)
    # 540 training rows in batches of 128 -> 5 steps per epoch (the 28-row tail kept).
    assert clf.n_steps_ == 5 * clf.n_iter_

    # Too few rows for a 50-row validation split: early stopping is not used.
    Xs, ys = _blobs(2, n=100)
    small = TorchMLPClassifier(early_stopping=True, **FAST).fit(Xs, ys)
    assert small.validation_loss_curve_ is None and small.best_validation_loss_ is None
    assert small.n_steps_ >= FAST["min_steps"]


def test_class_weight_balanced_favours_minority():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0.0, 1.0, (360, 2)), rng.normal(1.0, 1.0, (40, 2))]
    y = np.r_[np.zeros(360, int), np.ones(40, int)]
    plain = TorchMLPClassifier(**FAST).fit(X, y)
    balanced = TorchMLPClassifier(class_weight="balanced", **FAST).fit(X, y)
    n_plain = int((plain.predict(X) == 1).sum())
    n_bal = int((balanced.predict(X) == 1).sum())
    assert n_bal > 2 * max(n_plain, 10)
    # Minority recall goes up.
    assert (balanced.predict(X[y == 1]) == 1).mean() > (plain.predict(X[y == 1]) == 1).mean()


def test_verbose_and_progress_output(capsys):
    X, y = _blobs(2, n=40)
    TorchMLPClassifier(max_epochs=2, min_steps=0, verbose=True, progress=True, device="cpu").fit(X, y)
    out, err = capsys.readouterr()
    assert "epoch 1/2" in out and "epoch 2/2" in out and "loss=" in out
    assert "TorchMLPClassifier" in err  # tqdm bar on stderr
    TorchMLPClassifier(max_epochs=2, min_steps=0, device="cpu").fit(X, y)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_auto_device_resolves():
    X, y = _blobs(2, n=20)
    clf = TorchMLPClassifier(max_epochs=1, min_steps=1).fit(X, y)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert clf.device_.type == expected


# sklearn's own checks cast NaN/inf arrays to int while building inputs.
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_check_estimator():
    est = TorchMLPClassifier(max_epochs=2, min_steps=60, device="cpu", random_state=0)
    results = check_estimator(
        est, expected_failed_checks=EXPECTED_FAILED_CHECKS, on_skip=None, on_fail=None
    )
    status = {r["check_name"]: r["status"] for r in results}
    failed = {k: v for k, v in status.items() if v == "failed"}
    assert not failed, failed
    assert {k for k, v in status.items() if v == "xfail"} <= set(EXPECTED_FAILED_CHECKS)
    # The core API checks really ran and passed.
    for name in (
        "check_classifiers_train",
        "check_fit_idempotent",
        "check_estimators_pickle",
        "check_n_features_in_after_fitting",
        "check_methods_subset_invariance",
        "check_classifiers_one_label",
    ):
        assert status[name] == "passed", name


def test_progress_bar_redraws_are_throttled(capsys):
    """Hundreds of fast epochs draw the bar a few times, not once per epoch (330 KB of output in a real run)."""
    import time

    from skal_seg.classifier import PROGRESS_INTERVAL_S

    X, y = make_blobs(n_samples=40, centers=3, random_state=0)
    clf = TorchMLPClassifier(hidden_layer_sizes=(4,), max_epochs=400, min_steps=0, batch_size=64,
                             early_stopping=False, progress=True, random_state=0)
    t = time.perf_counter()
    clf.fit(X.astype(np.float32), y)
    elapsed = time.perf_counter() - t
    err = capsys.readouterr().err
    assert clf.n_iter_ == 400
    redraws = err.count("\r")
    assert redraws <= 3 + elapsed / PROGRESS_INTERVAL_S, (redraws, elapsed)
    assert "400/400" in err and "loss=" in err  # the last state and the postfix still show
