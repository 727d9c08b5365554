"""The per-phase torch thread policy (skal_seg/_threads.py) and its use in herding: counts, restoration."""

import numpy as np
import pytest
import torch

from skal_seg import MaxHerdingSampler, herding
from skal_seg._threads import ENV_VAR, small_op_thread_cap, small_op_threads, torch_threads
from skal_seg.uncertainty_herding import UncertaintyHerdingSampler


@pytest.fixture
def two_threads(monkeypatch):
    """The caller's setting is 2 torch threads (the session fixture's 1 is restored after)."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_torch_threads_sets_and_restores(two_threads):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        with torch_threads(3):  # nesting restores the enclosing setting, not the outermost
            assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with torch_threads(None):
        assert torch.get_num_threads() == 2


def test_torch_threads_restores_on_exception(two_threads):
    with pytest.raises(KeyError, match="boom"):
        with torch_threads(1):
            raise KeyError("boom")
    assert torch.get_num_threads() == 2


def test_small_op_threads_caps_and_yields_the_callers_count(two_threads, monkeypatch):
    with small_op_threads() as caller:
        assert caller == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    monkeypatch.setenv(ENV_VAR, "off")
    with small_op_threads():
        assert torch.get_num_threads() == 2
    monkeypatch.setenv(ENV_VAR, "3")  # a cap above the caller's count never raises it
    with small_op_threads():
        assert torch.get_num_threads() == 2


def test_small_op_threads_restores_on_exception(two_threads):
    with pytest.raises(RuntimeError):
        with small_op_threads():
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("raw", ["0", "-1", "two", ""])
def test_bad_policy_is_a_clear_error(raw, monkeypatch):
    monkeypatch.setenv(ENV_VAR, raw)
    with pytest.raises(ValueError, match=ENV_VAR):
        small_op_thread_cap()


def _recording_kernel(seen, fail_after=None):
    """RBF kernel on numpy arrays that records torch's thread count at each call."""

    def kernel(A, B):
        seen.append(torch.get_num_threads())
        if fail_after is not None and len(seen) > fail_after:
            raise FloatingPointError("kernel failed")
        d2 = ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / 4.0)

    return kernel


@pytest.mark.parametrize("max_memory_mb", [1024, 0.05])  # cached kernel; blocked greedy without it
def test_herding_runs_on_one_thread_and_keeps_the_callers_setting(two_threads, max_memory_mb):
    X = np.random.default_rng(0).normal(size=(120, 3))
    seen = []
    picks = MaxHerdingSampler(kernel=_recording_kernel(seen), max_memory_mb=max_memory_mb).select(X, 5)
    assert len(picks) == 5 and seen and set(seen) == {1}
    assert torch.get_num_threads() == 2


def test_large_kernel_blocks_keep_the_callers_threads(two_threads, monkeypatch):
    monkeypatch.setattr(herding, "LARGE_OP_ELEMENTS", 20 * 120)  # blocks of 20+ kernel columns count as large
    X = np.random.default_rng(1).normal(size=(120, 3))
    seen = []
    MaxHerdingSampler(kernel=_recording_kernel(seen), max_memory_mb=0.05).select(X, 5)
    assert set(seen) == {1, 2}
    assert torch.get_num_threads() == 2


def test_herding_restores_the_callers_setting_when_it_fails(two_threads):
    X = np.random.default_rng(2).normal(size=(80, 3))
    with pytest.raises(FloatingPointError):
        MaxHerdingSampler(kernel=_recording_kernel([], fail_after=2), max_memory_mb=0.05).select(X, 5)
    assert torch.get_num_threads() == 2


def test_uncertainty_herding_keeps_the_callers_setting(two_threads):
    rng = np.random.default_rng(3)
    X, L = rng.normal(size=(100, 3)), rng.normal(size=(4, 3))
    picks = UncertaintyHerdingSampler(temperature=1.0).select(X, 5, uncertainty=rng.random(100), X_labeled=L)
    assert len(picks) == 5
    assert torch.get_num_threads() == 2


def test_classifier_trains_on_one_thread_and_keeps_the_callers_setting(two_threads):
    from skal_seg.classifier import TorchMLPClassifier

    seen = []

    class Recording(TorchMLPClassifier):
        def _fit_seeded(self, *args):
            seen.append(torch.get_num_threads())
            return super()._fit_seeded(*args)

    rng = np.random.default_rng(4)
    Recording(max_epochs=1, min_steps=1, random_state=0).fit(rng.normal(size=(40, 3)), rng.integers(0, 2, 40))
    assert seen == [1]
    assert torch.get_num_threads() == 2


def test_calls_from_other_python_threads_keep_the_main_threads_setting(two_threads):
    import threading

    def call():
        with small_op_threads():
            torch.ones(100_000).exp().sum()

    worker = threading.Thread(target=call)
    worker.start()
    worker.join()
    assert torch.get_num_threads() == 2
    # Overlapping: a worker enters, the main thread enters, the worker leaves, then the main thread.
    entered, release, left = threading.Event(), threading.Event(), threading.Event()

    def overlapping():
        with small_op_threads():
            entered.set()
            release.wait(10)
        left.set()

    worker = threading.Thread(target=overlapping)
    worker.start()
    assert entered.wait(10)
    with small_op_threads():
        release.set()
        assert left.wait(10)
    worker.join()
    assert torch.get_num_threads() == 2
