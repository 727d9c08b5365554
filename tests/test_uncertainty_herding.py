"""Uncertainty Herding against a brute-force greedy of its objective, its extremes and its API."""

import itertools
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from skal_seg import MaxHerdingSampler, TwoStageQuery, UncertaintyHerdingSampler
from skal_seg.herding import auto_bandwidth
from skal_seg.uncertainty_herding import (
    expected_calibration_error,
    fit_temperature,
    margin_uncertainty,
    temper,
)


def uncertainty_coverage(K, cov0, u, S):
    """The objective itself: mean_i u_i max(cov0_i, max_{j in S} K_ij)."""
    cov = cov0.copy()
    for j in S:
        cov = np.maximum(cov, K[:, j])
    return float((u * cov).mean())


def brute_force_uherding(X, n, bandwidth, u, X_labeled=None):
    """Greedy by evaluating the objective for every candidate set S + {j} (float64)."""
    X = np.asarray(X, dtype=np.float64)
    K = np.exp(-((X[:, None] - X[None]) ** 2).sum(-1) / bandwidth**2)
    cov0 = np.zeros(len(X)) if X_labeled is None else np.exp(
        -((X[:, None] - np.asarray(X_labeled)[None]) ** 2).sum(-1) / bandwidth**2).max(1)
    picks = []
    for _ in range(n):
        values = [uncertainty_coverage(K, cov0, u, picks + [j]) if j not in picks else -np.inf for j in range(len(X))]
        picks.append(int(np.argmax(values)))  # ties: lowest index
    return picks


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    u = rng.uniform(0.05, 1.0, size=40)
    return X, u, rng.normal(size=(5, 3))


@pytest.mark.parametrize("max_memory_mb", [1024, 0.002])  # kernel cached / blocked greedy without it
@pytest.mark.parametrize("labeled", [False, True])
def test_matches_brute_force_objective(toy, max_memory_mb, labeled):
    X, u, L = toy
    L = L if labeled else None
    sampler = UncertaintyHerdingSampler(bandwidth=1.5, max_memory_mb=max_memory_mb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the uncached path warns that long selections are slow
        picks = sampler.select(X, 12, uncertainty=u, X_labeled=L)
    assert picks.tolist() == brute_force_uherding(X, 12, 1.5, u, X_labeled=L)
    # gains_ are the objective's increments
    K = np.exp(-((X[:, None] - X[None]) ** 2).sum(-1) / 1.5**2)
    cov0 = np.zeros(len(X)) if L is None else np.exp(-((X[:, None] - L[None]) ** 2).sum(-1) / 1.5**2).max(1)
    values = [uncertainty_coverage(K, cov0, u, picks[:k].tolist()) for k in range(13)]
    np.testing.assert_allclose(sampler.gains_, np.diff(values), rtol=1e-9, atol=1e-12)


def test_greedy_within_the_submodular_bound_of_the_exhaustive_best(toy):
    # A pair chosen by exhaustive search can beat greedy, but never by more than the (1 - 1/e) bound.
    X, u, _ = toy
    X, u = X[:10], u[:10]
    K = np.exp(-((X[:, None] - X[None]) ** 2).sum(-1) / 1.5**2)
    greedy = UncertaintyHerdingSampler(bandwidth=1.5).select(X, 2, uncertainty=u).tolist()
    best = max(uncertainty_coverage(K, np.zeros(10), u, list(S)) for S in itertools.combinations(range(10), 2))
    assert uncertainty_coverage(K, np.zeros(10), u, greedy) >= (1 - 1 / np.e) * best


@pytest.mark.parametrize("u", [None, "uniform"])
def test_uniform_uncertainty_is_maxherding(toy, u):
    X, _, L = toy
    weights = None if u is None else np.full(len(X), 0.37)
    for labeled in (None, L):
        uh = UncertaintyHerdingSampler(bandwidth=1.5).select(X, 15, uncertainty=weights, X_labeled=labeled)
        mh = MaxHerdingSampler(bandwidth=1.5).select(X, 15, X_labeled=labeled)
        assert uh.tolist() == mh.tolist()


def test_all_zero_uncertainty_falls_back_to_maxherding(toy):
    X, _, _ = toy
    with pytest.warns(UserWarning, match="uniformly"):
        uh = UncertaintyHerdingSampler(bandwidth=1.5).select(X, 5, uncertainty=np.zeros(len(X)))
    assert uh.tolist() == MaxHerdingSampler(bandwidth=1.5).select(X, 5).tolist()


def test_tiny_bandwidth_is_uncertainty_sampling(toy):
    # The other extreme: a kernel close to the identity makes each gain the row's own uncertainty / n.
    X, u, _ = toy
    picks = UncertaintyHerdingSampler(bandwidth=1e-3).select(X, 10, uncertainty=u)
    assert picks.tolist() == np.argsort(-u, kind="stable")[:10].tolist()


def test_uncertainty_steers_picks_to_uncertain_blob(blobs):
    X, blob = blobs
    u = np.where(blob == 0, 1.0, 0.01)
    picks = UncertaintyHerdingSampler(bandwidth=3.0).select(X, 3, uncertainty=u)
    assert blob[picks[0]] == 0
    assert blob[MaxHerdingSampler(bandwidth=3.0).select(X, 1)[0]] != 0


def test_labeled_rows_condition_the_coverage(blobs):
    X, blob = blobs
    u = np.ones(len(X))
    first = UncertaintyHerdingSampler(bandwidth=3.0).select(X, 1, uncertainty=u)[0]
    L = X[blob == blob[first]]
    again = UncertaintyHerdingSampler(bandwidth=3.0).select(X, 1, uncertainty=u, X_labeled=L)[0]
    assert blob[again] != blob[first]


def test_budget_extremes(toy):
    X, u, _ = toy
    sampler = UncertaintyHerdingSampler(bandwidth=1.5)
    assert sorted(sampler.select(X, len(X), uncertainty=u).tolist()) == list(range(len(X)))
    assert sampler.select(X, 0, uncertainty=u).tolist() == []
    with pytest.raises(ValueError, match="exceeds the 40 rows"):
        sampler.select(X, 41, uncertainty=u)
    with pytest.raises(ValueError, match="no rows"):
        sampler.select(np.empty((0, 3)), 1)
    with pytest.raises(ValueError, match="n_instances"):
        sampler.select(X, -1)


def test_deterministic_and_clonable(toy):
    X, u, L = toy
    a = UncertaintyHerdingSampler(bandwidth="auto", random_state=3)
    b = clone(a)
    assert b.get_params() == a.get_params()
    assert a.select(X, 8, uncertainty=u, X_labeled=L).tolist() == b.select(X, 8, uncertainty=u, X_labeled=L).tolist()
    assert a.bandwidth_ == b.bandwidth_


def test_labeled_bandwidth_is_smallest_labeled_distance(toy):
    X, u, L = toy
    sampler = UncertaintyHerdingSampler(random_state=0)
    sampler.select(X, 3, uncertainty=u, X_labeled=L)
    d = np.sqrt(((L[:, None] - L[None]) ** 2).sum(-1))
    assert sampler.bandwidth_ == pytest.approx(d[d > 0].min())
    sampler.select(X, 3, uncertainty=u, X_labeled=L[:1])  # fewer than two labeled rows: MaxHerding's rule
    assert sampler.bandwidth_ == pytest.approx(auto_bandwidth(X, random_state=0))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"uncertainty": np.ones(3)}, "shape"),
    ({"uncertainty": -np.ones(40)}, "non-negative"),
    ({"uncertainty": np.full(40, np.nan)}, "finite"),
])
def test_bad_uncertainty_raises(toy, kwargs, match):
    X, _, _ = toy
    with pytest.raises(ValueError, match=match):
        UncertaintyHerdingSampler(bandwidth=1.5).select(X, 2, **kwargs)


@pytest.mark.parametrize(("params", "match"), [
    ({"bandwidth": "median"}, "bandwidth"),
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
])
def test_bad_params_raise(toy, params, match):
    X, u, _ = toy
    with pytest.raises(ValueError, match=match):
        UncertaintyHerdingSampler(**params).select(X, 2, uncertainty=u)


def test_temper_and_margin_hand_cases():
    p = np.array([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(temper(p, 1.0), p)
    q = temper(p, 2.0)
    s = np.sqrt(p[0])
    np.testing.assert_allclose(q[0], s / s.sum())
    np.testing.assert_allclose(q[1], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(margin_uncertainty(p), [1 - 0.2, 0.0])
    with pytest.raises(ValueError, match="temperature"):
        temper(p, -1.0)


def test_expected_calibration_error_hand_case():
    # 5 bins: confidences 0.9, 0.9 (one right) in (0.8, 1], 0.6 (right) in (0.4, 0.6]:
    # |0.5 - 0.9| * 2/3 + |1 - 0.6| * 1/3; with 2 bins (the default: one per class) all three share
    # (0.5, 1]: |2/3 - 0.8|
    p = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4]])
    assert expected_calibration_error(p, np.array([0, 0, 0]), n_bins=5) == pytest.approx(0.4 * 2 / 3 + 0.4 / 3)
    assert expected_calibration_error(p, np.array([0, 0, 0])) == pytest.approx(0.8 - 2 / 3)


def test_fit_temperature_flattens_an_overconfident_classifier():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] + rng.normal(scale=2.0, size=200) > 0).astype(int)  # noisy labels: overconfident fits
    t = fit_temperature(LogisticRegression(C=1e4), X, y, random_state=0)
    assert t > 1.0
    assert fit_temperature(LogisticRegression(), X[:3], y[:3]) == 1.0  # too few labels to hold any out


@pytest.fixture
def fitted():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] > 0).astype(int)
    return X, y, LogisticRegression().fit(X[:40], y[:40])


def test_query_uses_classifier_margin_and_is_maxherding_before_fitting(fitted):
    X, y, clf = fitted
    sampler = UncertaintyHerdingSampler(temperature=1.0, bandwidth=1.0)
    picks = sampler.query(clf, X[40:], 5, X_labeled=X[:40])
    np.testing.assert_allclose(sampler.uncertainty_, margin_uncertainty(clf.predict_proba(X[40:])))
    assert picks.tolist() == UncertaintyHerdingSampler(bandwidth=1.0).select(
        X[40:], 5, uncertainty=sampler.uncertainty_, X_labeled=X[:40]).tolist()
    unfitted = UncertaintyHerdingSampler(bandwidth=1.0).query(LogisticRegression(), X[40:], 5, X_labeled=X[:40])
    assert unfitted.tolist() == MaxHerdingSampler(bandwidth=1.0).select(X[40:], 5, X_labeled=X[:40]).tolist()


def test_auto_temperature_uses_the_labels(fitted):
    X, y, clf = fitted
    sampler = UncertaintyHerdingSampler(random_state=0)
    idx, gains = sampler(clf, X[40:], n_instances=4, X_labeled=X[:40], y_labeled=y[:40])
    assert sampler.temperature_ == fit_temperature(clf, X[:40], y[:40], random_state=0)
    assert len(idx) == 4 and len(gains) == 4 and np.all(np.diff(gains) <= 1e-12)


def test_two_stage_with_uherding_stage2(fitted):
    X, y, clf = fitted
    groups = np.repeat(np.arange(5), 60)
    stage2 = UncertaintyHerdingSampler(temperature=1.0, bandwidth=1.0)
    q = TwoStageQuery(local_budget=10, keep_global=0.5, uncertainty=stage2, random_state=0)
    idx, metrics = q(clf, X, n_instances=6, groups=groups, X_labeled=X[:40])  # no X_noisy needed
    pool = q.candidate_pool_
    expected = pool[UncertaintyHerdingSampler(temperature=1.0, bandwidth=1.0).query(clf, X[pool], 6, X_labeled=X[:40])]
    assert idx.tolist() == expected.tolist()
    assert len(pool) == 25
    # keep_global=1 hands every local pick to stage 2
    q1 = TwoStageQuery(local_budget=10, keep_global=1.0, uncertainty=stage2, random_state=0)
    q1(clf, X, n_instances=6, groups=groups, X_labeled=X[:40])
    assert sorted(q1.candidate_pool_.tolist()) == sorted(q1.local_picks_.tolist())


def test_a_random_forest_is_a_fitted_classifier_not_a_modal_learner():
    # RandomForestClassifier has an ``estimator`` attribute (its unfitted tree template): it once made a fitted
    # forest look like an untaught modAL learner, so Uncertainty Herding silently ran as MaxHerding
    from sklearn.ensemble import RandomForestClassifier

    from skal_seg._validation import is_fitted

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X[:60], y[:60])
    assert is_fitted(forest) and not is_fitted(RandomForestClassifier())
    sampler = UncertaintyHerdingSampler(temperature=1.0, random_state=0)
    picks = sampler.query(forest, X[60:], 10)
    assert sampler.uncertainty_ is not None and sampler.temperature_ == 1.0
    assert not np.array_equal(picks, MaxHerdingSampler(random_state=0).select(X[60:], 10))
    # the temperature is fitted with a forest too, not with the forest's tree template
    assert fit_temperature(forest, X[:60], y[:60], random_state=0) == fit_temperature(
        RandomForestClassifier(n_estimators=20, random_state=0), X[:60], y[:60], random_state=0)
