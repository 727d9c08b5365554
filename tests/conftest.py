import numpy as np
import pytest
import torch



@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tests run torch single-threaded: multi-threaded torch on 2 shared cores is many times slower.

    Session scope, so it is in force before any module-scoped fixture computes
    features: bit-exact comparisons need the same thread count throughout.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def brute_force_herding(X, n, bandwidth, X_labeled=None):
    """Textbook dense greedy on the generalized coverage (float64)."""
    X = np.asarray(X, dtype=np.float64)
    K = np.exp(-((X[:, None] - X[None]) ** 2).sum(-1) / bandwidth**2)
    if X_labeled is None:
        cov = np.zeros(len(X))
    else:
        L = np.asarray(X_labeled, dtype=np.float64)
        cov = np.exp(-((X[:, None] - L[None]) ** 2).sum(-1) / bandwidth**2).max(1)
    picks = []
    for _ in range(n):
        gains = np.maximum(K, cov[:, None]).mean(0) - cov.mean()
        gains[picks] = -np.inf
        j = int(np.argmax(gains))  # ties: lowest index
        picks.append(j)
        cov = np.maximum(cov, K[:, j])
    return picks


@pytest.fixture
def blobs():
    """Six well-separated 2-D blobs of 40 points each; returns (X, blob id)."""
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [20, 0], [20, 10]], dtype=float)
    X = np.concatenate([c + 0.5 * rng.normal(size=(40, 2)) for c in centers])
    return X, np.repeat(np.arange(len(centers)), 40)


class StopBeforeFeatures(Exception):
    """Raised by the ``run_config`` fixture's stand-in where a run would start featurizing."""


@pytest.fixture
def run_config(monkeypatch):
    """Call ``run_config(argv)``: runs ``skal-seg`` up to its first feature and returns the run's ExperimentConfig."""
    from skal_seg import cli
    from skal_seg.benchmark import commands

    seen = {}

    def stand_in(config, featurizer, progress, images=None):
        seen["config"] = config
        raise StopBeforeFeatures

    monkeypatch.setattr(commands, "fitted_featurizer", stand_in)

    def run(argv):
        with pytest.raises(StopBeforeFeatures):
            cli.main(argv)
        return seen["config"]

    return run
