"""benchmarks/pick_boundaries.py: the boundary mask against a brute-force reference, and the per-strategy shares."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).parents[1] / "benchmarks" / "pick_boundaries.py"
_SPEC = importlib.util.spec_from_file_location("pick_boundaries", _PATH)
boundaries = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(boundaries)


def _brute_force(labels, radius):
    n, h, w = labels.shape
    out = np.zeros(labels.shape, bool)
    for i in range(n):
        for y in range(h):
            for x in range(w):
                window = labels[i, max(0, y - radius): y + radius + 1, max(0, x - radius): x + radius + 1]
                out[i, y, x] = len(np.unique(window)) > 1
    return out


@pytest.mark.parametrize("radius", [1, 2])
def test_near_boundary_matches_brute_force_and_never_crosses_images(radius):
    rng = np.random.default_rng(0)
    labels = rng.choice(np.array([0, 1, 255], np.uint8), size=(3, 9, 11), p=[0.6, 0.3, 0.1])
    labels[2] = 4  # one image of a single class: no boundary, whatever its neighbours in the stack hold
    mask = boundaries.near_boundary(labels, radius)
    np.testing.assert_array_equal(mask, _brute_force(labels, radius))
    assert not mask[2].any() and mask[:2].any()
    with pytest.raises(ValueError, match="at least 1"):
        boundaries.near_boundary(labels, 0)


def test_pick_shares_counts_rounds_from_the_saved_budget(tmp_path):
    labels = np.zeros((2, 4, 4), np.uint8)
    labels[0, :, 2:] = 1  # image "a": columns 1-2 touch the boundary at radius 1; image "b": none
    picks = [["a", 0], ["b", 5],  # round 0: neither near; skipped by slice(1, None)
             ["a", 1], ["a", 2],  # round 1: both near
             ["b", 0], ["a", 3]]  # round 2: neither near (column 3 sees only class 1 within radius 1)
    for seed in (0, 1):
        run = tmp_path / "strat" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "state.json").write_text(json.dumps({"budget": 2, "labeled_pixels": picks}))
    (tmp_path / "full_supervision").mkdir()  # no state.json: not a strategy's run
    near = boundaries.near_boundary(labels, radius=1)
    shares = boundaries.pick_shares(tmp_path, near, ("a", "b"), slice(1, None))
    assert list(shares) == ["strat"]
    n, mean, std = shares["strat"]
    assert (n, mean, std) == (8, 50.0, 0.0)
    assert boundaries.pick_shares(tmp_path, near, ("a", "b"), slice(1, 2))["strat"][1] == 100.0
    with pytest.raises(ValueError, match="not in the pool"):
        boundaries.pick_shares(tmp_path, near[:1], ("a",), slice(0, None))
