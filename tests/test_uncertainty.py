import numpy as np
import pytest

from skal_seg import EDALDSampler, bald_score, edald_score, entropy_score

LOG2, LOG3 = np.log(2.0), np.log(3.0)


class FixedProba:
    """A 'classifier' whose prediction is the first feature column mapped to 2 classes."""

    def predict_proba(self, X):
        p = np.clip(np.asarray(X)[:, 0], 0.0, 1.0)
        return np.stack([p, 1 - p], axis=1)


def _rows_and_draws(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random 2-feature rows in [0, 1] and ``k`` noisy draws of them (clipped to [0, 1])."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 2))
    return X, np.clip(X + 0.3 * rng.normal(size=(k, n, 2)), 0, 1)


def test_entropy_hand_cases():
    proba = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(entropy_score(proba), [0.0, LOG3, LOG2])


def test_bald_agreeing_one_hot_draws_is_zero():
    draws = np.tile(np.array([[1.0, 0.0], [0.0, 1.0]]), (4, 1, 1))  # K=4 draws agree
    np.testing.assert_allclose(bald_score(draws), [0.0, 0.0])


def test_bald_disagreeing_one_hot_draws_is_log_k():
    # Two draws, one-hot on different classes: H(mean) = log 2, mean H = 0.
    draws = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    np.testing.assert_allclose(bald_score(draws), [LOG2])


def test_bald_uniform_predictions_is_zero():
    draws = np.full((5, 3, 4), 0.25)
    np.testing.assert_allclose(bald_score(draws), 0.0, atol=1e-12)


def test_edald_combines_entropy_and_bald():
    proba = np.array([[0.5, 0.5], [1.0, 0.0]])
    draws = np.array([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]])
    np.testing.assert_allclose(edald_score(proba, draws), [LOG2 + LOG2, 0.0])
    np.testing.assert_allclose(edald_score(proba, draws, entropy_weight=0.0), [LOG2, 0.0])
    np.testing.assert_allclose(edald_score(proba, draws, entropy_weight=2.0), [3 * LOG2, 0.0])


def test_edald_mixed_draws_hand_computed():
    proba = np.array([[0.9, 0.1]])
    draws = np.array([[[0.8, 0.2]], [[0.4, 0.6]]])
    h = lambda p: -sum(x * np.log(x) for x in p)
    expected = h([0.9, 0.1]) + h([0.6, 0.4]) - (h([0.8, 0.2]) + h([0.4, 0.6])) / 2
    np.testing.assert_allclose(edald_score(proba, draws), [expected])


@pytest.mark.parametrize("bad, match", [
    (np.array([[0.5, 0.6]]), "sum to 1"),
    (np.array([[np.nan, 1.0]]), "NaN"),
    (np.array([0.5, 0.5]), "2-D"),
    (np.array([[1.5, -0.5]]), r"\[0, 1\]"),
])
def test_entropy_rejects_bad_probabilities(bad, match):
    with pytest.raises(ValueError, match=match):
        entropy_score(bad)


def test_edald_rejects_misaligned_shapes():
    with pytest.raises(ValueError, match="expected"):
        edald_score(np.full((3, 2), 0.5), np.full((2, 4, 2), 0.5))


def test_sampler_ranks_by_edald_highest_first():
    # Row 1 is uncertain under the fixed features and its noisy draws disagree.
    X = np.array([[1.0], [0.5], [0.9], [0.0]])
    X_noisy = np.stack([X, X])
    X_noisy[0, 1, 0], X_noisy[1, 1, 0] = 0.0, 1.0
    idx, scores = EDALDSampler()(FixedProba(), X, n_instances=2, X_noisy=X_noisy)
    assert idx.tolist() == [1, 2]
    assert scores[0] == pytest.approx(2 * LOG2)
    assert len(EDALDSampler().query(FixedProba(), X, 4, X_noisy=X_noisy)) == 4
    with pytest.raises(ValueError, match="n_instances=5 exceeds the 4 rows available"):
        EDALDSampler().query(FixedProba(), X, 5, X_noisy=X_noisy)  # not silently 4


def test_sampler_callable_views_match_array_and_see_only_requested_rows():
    X, X_noisy = _rows_and_draws(0, 30, 5)
    asked = []

    def views(indices):
        asked.append(np.asarray(indices).copy())
        return X_noisy[:, indices]

    sampler = EDALDSampler()
    a = sampler.query(FixedProba(), X, 5, X_noisy=X_noisy)
    b = sampler.query(FixedProba(), X, 5, X_noisy=views)
    assert a.tolist() == b.tolist()
    sub = np.array([3, 7, 11])
    np.testing.assert_allclose(sampler.scores(FixedProba(), X, views, indices=sub), sampler.scores(FixedProba(), X, X_noisy)[sub])
    assert asked[-1].tolist() == [3, 7, 11]


@pytest.mark.parametrize("X_noisy, match", [
    (None, "X_noisy is required"),
    (np.zeros((2, 5, 1)), "aligned"),
    (np.zeros((5, 1)), "aligned"),
    (np.full((2, 4, 1), np.nan), "NaN"),
    (lambda idx: np.zeros((2, len(idx) + 1, 1)), "expected"),
])
def test_sampler_rejects_bad_noisy_views(X_noisy, match):
    with pytest.raises(ValueError, match=match):
        EDALDSampler().query(FixedProba(), np.full((4, 1), 0.5), 2, X_noisy=X_noisy)


def test_sampler_rejects_negative_budget_and_weight():
    X = np.full((4, 1), 0.5)
    with pytest.raises(ValueError, match="non-negative"):
        EDALDSampler().query(FixedProba(), X, -1, X_noisy=np.stack([X]))
    with pytest.raises(ValueError, match="entropy_weight"):
        EDALDSampler(entropy_weight=-1).query(FixedProba(), X, 1, X_noisy=np.stack([X]))


def test_bald_alone_skips_the_fixed_noise_prediction():
    X, X_noisy = _rows_and_draws(2, 20, 3)
    rows = []

    class Counting(FixedProba):
        def predict_proba(self, X):
            rows.append(len(X))
            return super().predict_proba(X)

    bald = EDALDSampler(entropy_weight=0.0).scores(Counting(), X, X_noisy)
    assert sum(rows) == 3 * 20  # the K draws only
    np.testing.assert_allclose(bald, bald_score(np.stack([FixedProba().predict_proba(v) for v in X_noisy])))
    rows.clear()
    EDALDSampler(entropy_weight=0.5).scores(Counting(), X, X_noisy)
    assert sum(rows) == 4 * 20


def test_scores_in_chunks_equal_one_batch():
    X, X_noisy = _rows_and_draws(1, 50, 4)
    asked = []

    def views(indices):
        asked.append(len(indices))
        return X_noisy[:, indices]

    whole = EDALDSampler().scores(FixedProba(), X, X_noisy)
    chunked = EDALDSampler(batch_size=7).scores(FixedProba(), X, views)
    np.testing.assert_allclose(chunked, whole)
    assert max(asked) == 7 and sum(asked) == 50


def test_paper_code_mi_hand_computed():
    # Draws [1, 0] and [0, 1]: the official code exponentiates them to q = [e, 1] and [1, e]
    # (mean m = (e + 1) / 2 per class) and takes -sum m log m + mean_k sum q log q
    # = -(e + 1) log((e + 1) / 2) + e; the paper's mutual information is log 2.
    draws = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    e = np.e
    expected = e - (e + 1) * np.log((e + 1) / 2)
    assert expected == pytest.approx(0.412521, abs=1e-6)
    proba = np.array([[0.5, 0.5]])
    assert edald_score(proba, draws, mi="paper_code") == pytest.approx([LOG2 + expected])
    assert edald_score(proba, draws) == pytest.approx([2 * LOG2])
    assert edald_score(proba, np.stack([proba, proba]), mi="paper_code") == pytest.approx([LOG2])  # agreeing draws
    X = np.array([[0.5]])
    X_noisy = np.array([[[1.0]], [[0.0]]])
    assert EDALDSampler(mi="paper_code").scores(FixedProba(), X, X_noisy) == pytest.approx([LOG2 + expected])
    assert EDALDSampler().scores(FixedProba(), X, X_noisy) == pytest.approx([2 * LOG2])


def test_unknown_mi_raises():
    with pytest.raises(ValueError, match="unknown mi"):
        edald_score(np.array([[0.5, 0.5]]), np.array([[[0.5, 0.5]]]), mi="code")
    with pytest.raises(ValueError, match="unknown mi"):
        EDALDSampler(mi="exp").scores(FixedProba(), np.array([[0.5]]), np.array([[[0.5]]]))
