import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from skal_seg import EDALDSampler, MaxHerdingSampler, TwoStageQuery, edald_score


@pytest.fixture
def pool():
    """10 'images' of 60 pixels in 4-D, a fitted classifier and noisy draws."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    groups = np.repeat(np.arange(10), 60)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    clf = LogisticRegression().fit(X[:100], y[:100])
    X_noisy = X[None] + 0.3 * rng.normal(size=(5, 600, 4))
    return X, groups, clf, X_noisy


def test_round0_uses_stage1_only(pool):
    X, groups, _, _ = pool
    q = TwoStageQuery(local_budget=8, herding=MaxHerdingSampler(bandwidth=2.0), random_state=0)
    idx = q.query(None, X, n_instances=12, groups=groups)  # no X_noisy needed in round 0
    assert len(idx) == 12 and len(set(idx.tolist())) == 12
    assert q.scores_ is None
    # local stage: MaxHerding inside each image; global: MaxHerding over the union
    local = np.sort(np.concatenate([
        np.flatnonzero(groups == g)[MaxHerdingSampler(bandwidth=2.0).select(X[groups == g], 8)] for g in range(10)
    ]))
    assert q.local_picks_.tolist() == local.tolist()
    assert idx.tolist() == local[MaxHerdingSampler(bandwidth=2.0).select(X[local], 12)].tolist()


def test_unfitted_estimator_counts_as_round0(pool):
    X, groups, _, _ = pool
    a = TwoStageQuery(local_budget=8, random_state=0).query(LogisticRegression(), X, 5, groups=groups)
    b = TwoStageQuery(local_budget=8, random_state=0).query(None, X, 5, groups=groups)
    assert a.tolist() == b.tolist()


def test_local_stage_budget_per_image(pool):
    X, groups, clf, X_noisy = pool
    q = TwoStageQuery(local_budget=7, keep_global=0.5, random_state=0)
    q.query(clf, X, 5, groups=groups, X_noisy=X_noisy)
    counts = np.bincount(groups[q.local_picks_], minlength=10)
    assert counts.tolist() == [7] * 10
    assert len(q.candidate_pool_) == 35  # round(0.5 * 70)
    assert set(q.candidate_pool_.tolist()) <= set(q.local_picks_.tolist())


def test_local_budget_larger_than_image_takes_whole_image():
    X = np.random.default_rng(1).normal(size=(25, 3))
    groups = np.array([0] * 5 + [1] * 20)
    q = TwoStageQuery(local_budget=10, random_state=0)
    q.query(None, X, 3, groups=groups)
    assert np.bincount(groups[q.local_picks_]).tolist() == [5, 10]


def test_stage2_returns_top_edald_of_candidate_pool(pool):
    X, groups, clf, X_noisy = pool
    q = TwoStageQuery(local_budget=8, keep_global=0.5, random_state=0)
    idx, metrics = q(clf, X, n_instances=6, groups=groups, X_noisy=X_noisy)
    cand = q.candidate_pool_
    proba_draws = np.stack([clf.predict_proba(X_noisy[k, cand]) for k in range(5)])
    scores = edald_score(clf.predict_proba(X[cand]), proba_draws)
    expected = cand[np.argsort(-scores, kind="stable")[:6]]
    assert idx.tolist() == expected.tolist()
    np.testing.assert_allclose(metrics, np.sort(scores)[::-1][:6])


def test_entropy_weight_passes_through(pool):
    X, groups, clf, X_noisy = pool
    a = TwoStageQuery(local_budget=8, random_state=0, uncertainty=EDALDSampler(entropy_weight=0.0))
    a.query(clf, X, 4, groups=groups, X_noisy=X_noisy)
    cand = a.candidate_pool_
    draws = np.stack([clf.predict_proba(X_noisy[k, cand]) for k in range(5)])
    np.testing.assert_allclose(a.scores_, edald_score(clf.predict_proba(X[cand]), draws, entropy_weight=0.0))


def test_deterministic_for_same_random_state(pool):
    X, groups, clf, X_noisy = pool
    runs = [TwoStageQuery(local_budget=8, random_state=5).query(clf, X, 6, groups=groups, X_noisy=X_noisy) for _ in range(2)]
    assert runs[0].tolist() == runs[1].tolist()


def test_global_stage_conditions_on_labeled_rows(pool):
    X, groups, _, _ = pool
    q = TwoStageQuery(local_budget=8, random_state=0)
    free = q.query(None, X, 6, groups=groups)
    labeled = X[free]
    conditioned = TwoStageQuery(local_budget=8, random_state=0).query(None, X, 6, groups=groups, X_labeled=labeled)
    assert not set(conditioned.tolist()) & set(free.tolist())


def test_modal_learner_training_data_conditions(pool):
    X, groups, _, _ = pool
    first = TwoStageQuery(local_budget=8, random_state=0).query(None, X, 6, groups=groups)

    class UntaughtLearnerWithData:  # modAL-like: holds X_training, estimator not fitted
        estimator = LogisticRegression()
        X_training = X[first]

    via_learner = TwoStageQuery(local_budget=8, random_state=0).query(UntaughtLearnerWithData(), X, 6, groups=groups)
    explicit = TwoStageQuery(local_budget=8, random_state=0).query(None, X, 6, groups=groups, X_labeled=X[first])
    assert via_learner.tolist() == explicit.tolist()


def test_budget_edge_cases(pool):
    X, groups, clf, X_noisy = pool
    q = TwoStageQuery(local_budget=2, keep_global=0.5, random_state=0)
    assert q.query(clf, X, 0, groups=groups, X_noisy=X_noisy).shape == (0,)
    # Stage 1 keeps 10 rows (0.5 x 2 local picks x 10 images) once fitted, 20 in round 0: exactly that many
    # come back, one more is refused up front, never answered short.
    idx = q.query(clf, X, 10, groups=groups, X_noisy=X_noisy)
    assert len(idx) == 10 and len(set(idx.tolist())) == 10
    assert len(q.query(None, X, 20, groups=groups)) == 20
    with pytest.raises(ValueError, match=r"n_instances=11 exceeds the 10 rows stage 1 keeps \(keep_global=0.5 x 20"):
        q.query(clf, X, 11, groups=groups, X_noisy=X_noisy)
    with pytest.raises(ValueError, match="n_instances=21 exceeds the 20 rows .* raise local_budget$"):
        q.query(None, X, 21, groups=groups)
    with pytest.raises(ValueError, match="exceeds the 19 rows"):  # image 9 left with 1 row: min(2, 1) picks
        q.query(None, X[:541], 20, groups=groups[:541])


def test_refusal_comes_before_any_herding(pool, monkeypatch):
    X, groups, clf, X_noisy = pool

    def no_herding(*args, **kwargs):
        raise AssertionError("herded before refusing the budget")

    monkeypatch.setattr(MaxHerdingSampler, "select", no_herding)
    with pytest.raises(ValueError, match="stage 1 keeps"):
        TwoStageQuery(local_budget=3, keep_global=0.5).query(clf, X, 16, groups=groups, X_noisy=X_noisy)


@pytest.mark.parametrize("kwargs, params, match", [
    ({"groups": np.zeros(599)}, {}, "groups"),
    ({"n_instances": -2}, {}, "non-negative"),
    ({}, {"local_budget": -1}, "local_budget"),
    ({}, {"local_budget": 0}, "local_budget"),
    ({}, {"keep_global": 0.0}, "keep_global"),
    ({}, {"keep_global": 1.5}, "keep_global"),
    ({"X_noisy": None}, {}, "X_noisy is required"),
    ({"X_noisy": np.zeros((5, 10, 4))}, {}, "aligned"),
])
def test_bad_input_raises(pool, kwargs, params, match):
    X, groups, clf, X_noisy = pool
    call = {"n_instances": 3, "groups": groups, "X_noisy": X_noisy, **kwargs}
    with pytest.raises(ValueError, match=match):
        TwoStageQuery(**{"local_budget": 4, **params}).query(clf, X, **call)


def test_nan_features_raise(pool):
    X, groups, _, _ = pool
    X = X.copy()
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TwoStageQuery().query(None, X, 3, groups=groups)


def test_local_picks_are_reused_only_for_unchanged_images(pool, monkeypatch):
    X, groups, _, _ = pool
    calls = []
    real_select = MaxHerdingSampler.select

    def counting_select(self, X_, n, X_labeled=None):
        calls.append(len(X_))
        return real_select(self, X_, n, X_labeled=X_labeled)

    monkeypatch.setattr(MaxHerdingSampler, "select", counting_select)
    q = TwoStageQuery(local_budget=8, random_state=0)
    first = q.query(None, X, 6, groups=groups)
    assert len(calls) == 11  # 10 images + the global stage
    keep = np.setdiff1d(np.arange(len(X)), first[:2])  # two pixels labeled: their images changed
    calls.clear()
    second = q.query(None, X[keep], 6, groups=groups[keep])
    assert len(calls) == len(set(groups[first[:2]])) + 1
    fresh = TwoStageQuery(local_budget=8, random_state=0).query(None, X[keep], 6, groups=groups[keep])
    assert second.tolist() == fresh.tolist()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_every_non_finite_value_is_caught(dtype, bad):
    from skal_seg._validation import check_features

    X = np.ones((7, 3), dtype=dtype)
    X[5, 2] = bad
    for view in (X, X[::-1], np.asfortranarray(X), X[1:, ::2]):
        with pytest.raises(ValueError, match="NaN|infinity"):
            check_features(view)
    assert check_features(np.full((2, 2), 6e4, dtype=dtype)).dtype == dtype  # large but finite


@pytest.mark.parametrize("fitted", [False, True])
def test_rows_give_the_answer_of_the_copied_rows(pool, fitted):
    """rows= (no copy of the unlabeled rows) picks what the same query on X[rows] picks, mapped back."""
    X, groups, clf, X_noisy = pool
    rows = np.setdiff1d(np.arange(len(X)), np.arange(0, 600, 7))  # every 7th row "labeled"
    clf = clf if fitted else None
    kw = dict(groups=groups[rows], X_noisy=X_noisy[:, rows]) if fitted else dict(groups=groups[rows])
    copied = TwoStageQuery(local_budget=8, random_state=0).query(clf, X[rows], 6, **kw)
    q = TwoStageQuery(local_budget=8, random_state=0)
    named = q.query(clf, X, 6, groups=groups, X_noisy=X_noisy if fitted else None, rows=rows)
    assert named.tolist() == rows[copied].tolist()
    assert set(q.local_picks_.tolist()) <= set(rows.tolist())


@pytest.mark.parametrize("rows", [np.array([3, 2]), np.array([0, 600]), np.array([-1, 4]), np.array([1.0, 2.0])])
def test_bad_rows_raise(pool, rows):
    X, groups, _, _ = pool
    with pytest.raises(ValueError, match="rows must be strictly increasing"):
        TwoStageQuery(local_budget=8).query(None, X, 2, groups=groups, rows=rows)
