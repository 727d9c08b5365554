"""The samplers and the classifier inside modAL and scikit-learn machinery."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from modAL.models import ActiveLearner
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skal_seg import EDALDSampler, MaxHerdingSampler, TwoStageQuery
from skal_seg.classifier import TorchMLPClassifier



def toy_pixels(seed=0, n_images=12, per_image=60, n_classes=5, dim=8):
    """Pixel features of several 'images': class clusters in `dim`-D, overlapping a little."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(n_classes, dim))
    y = rng.integers(0, n_classes, size=n_images * per_image)
    X = centers[y] + rng.normal(size=(len(y), dim))
    groups = np.repeat(np.arange(n_images), per_image)
    noisy = X[None] + 0.3 * rng.normal(size=(5, len(X), dim))
    return X, y, groups, noisy


def test_active_learner_loop_with_two_stage_query_improves():
    X, y, groups, noisy = toy_pixels()
    perm = np.random.default_rng(1).permutation(len(X))
    test_rows, pool_rows = perm[:200], perm[200:]
    X_test, y_test = X[test_rows], y[test_rows]
    X_pool, y_pool, g_pool, noisy_pool = X[pool_rows], y[pool_rows], groups[pool_rows], noisy[:, pool_rows]

    learner = ActiveLearner(
        estimator=TorchMLPClassifier(min_steps=200, random_state=0),
        query_strategy=TwoStageQuery(local_budget=6, keep_global=0.5, random_state=0),
    )
    accuracies, seen = [], set()
    for rnd in range(6):
        idx, rows = learner.query(X_pool, n_instances=4, groups=g_pool, X_noisy=noisy_pool)
        idx = np.asarray(idx)
        assert len(idx) == 4 and len(set(idx.tolist())) == 4
        np.testing.assert_array_equal(rows, X_pool[idx])
        assert not seen & {tuple(r) for r in rows}, "a row was queried twice"
        seen |= {tuple(r) for r in rows}
        learner.teach(X_pool[idx], y_pool[idx])
        accuracies.append(learner.score(X_test, y_test))
        keep = np.setdiff1d(np.arange(len(X_pool)), idx)
        X_pool, y_pool, g_pool, noisy_pool = X_pool[keep], y_pool[keep], g_pool[keep], noisy_pool[:, keep]
    assert len(learner.X_training) == 24
    assert accuracies[-1] > accuracies[0] + 0.05, accuracies
    assert accuracies[-1] > 0.8, accuracies


@pytest.mark.parametrize("strategy", [MaxHerdingSampler(random_state=0), EDALDSampler()])
def test_samplers_are_modal_strategies(strategy):
    X, y, groups, noisy = toy_pixels(n_images=4)
    learner = ActiveLearner(
        estimator=TorchMLPClassifier(min_steps=50, random_state=0),
        query_strategy=strategy, X_training=X[:10], y_training=y[:10],
    )
    # n_instances=2 is the case a plain 2-element return would break: modAL unpacks (indices, metrics).
    idx, rows = learner.query(X, n_instances=2, X_noisy=noisy)
    assert np.asarray(idx).shape == (2,)
    np.testing.assert_array_equal(rows, X[np.asarray(idx)])


def test_clone_and_pipeline_with_classifier():
    X, y, _, _ = toy_pixels()
    pipe = make_pipeline(StandardScaler(), TorchMLPClassifier(max_epochs=5, random_state=0))
    pipe.fit(X * 50 + 3, y)
    assert pipe.score(X * 50 + 3, y) > 0.8
    cloned = clone(pipe)
    assert cloned.get_params()["torchmlpclassifier__random_state"] == 0
    assert not hasattr(cloned[-1], "classes_")
    q = clone(TwoStageQuery(local_budget=3, herding=MaxHerdingSampler(bandwidth=1.0)))
    assert q.get_params()["herding__bandwidth"] == 1.0


def test_every_public_estimator_is_exported_at_the_top_level():
    import subprocess
    import sys

    import skal_seg
    from skal_seg.classifier import TorchMLPClassifier as Direct
    from skal_seg.featurizer import DiffusionFeaturizer as DirectFeaturizer

    assert skal_seg.TorchMLPClassifier is Direct
    assert skal_seg.DiffusionFeaturizer is DirectFeaturizer
    for name in skal_seg.__all__:
        assert getattr(skal_seg, name) is not None
    assert {"DiffusionFeaturizer", "TorchMLPClassifier"} <= set(dir(skal_seg))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        skal_seg.Nope  # noqa: B018
    # A fresh `import skal_seg` leaves diffusers unimported until the featurizer is asked for.
    code = ("import sys, skal_seg; a = 'diffusers' in sys.modules; skal_seg.DiffusionFeaturizer; "
            "print(a, 'diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_teach_does_not_warn_in_user_code():
    # 'always' overrides any filter, so nothing can hide the warning: it must not be raised at all.
    X, y, _, _ = toy_pixels(n_images=2)
    learner = ActiveLearner(estimator=TorchMLPClassifier(max_epochs=1, min_steps=5, random_state=0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learner.teach(X[:10], y[:10])
        learner.teach(X[10:20], y[10:20])
    assert [str(w.message) for w in caught] == []
    with pytest.raises(ValueError, match="NaN"):  # modAL's finiteness check still runs under the new name
        learner.teach(np.full((2, X.shape[1]), np.nan), y[:2])


def test_a_user_script_sees_none_of_our_warnings(tmp_path):
    """A fresh interpreter with default filters (torch warns about read-only arrays once per process)."""
    script = tmp_path / "user.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        from PIL import Image
        from modAL.models import ActiveLearner
        from skal_seg import DiffusionFeaturizer, TorchMLPClassifier, TwoStageQuery

        rng = np.random.default_rng(0)
        X = rng.normal(size=(60, 4))
        y = (X[:, 0] > 0).astype(int)
        learner = ActiveLearner(estimator=TorchMLPClassifier(max_epochs=1, min_steps=2, random_state=0),
                                query_strategy=TwoStageQuery(local_budget=5, random_state=0))
        learner.teach(X[:10], y[:10])
        learner.teach(X[10:20], y[10:20])
        image = np.asarray(Image.new("RGB", (16, 16), (120, 30, 200)))  # read-only
        assert not image.flags.writeable
        DiffusionFeaturizer(timesteps=(50,), progress=False).fit().transform([image])
        print("ok")
    """))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert "force_all_finite" not in result.stderr, result.stderr
    assert "not writable" not in result.stderr, result.stderr
