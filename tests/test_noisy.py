"""The noisy-draw store: only the rows stage 2 reads, values independent of what was asked with them."""

import numpy as np
import pytest
from test_experiment import synthetic_split, tiny_unet

from skal_seg.engine.features import candidate_pixels
from skal_seg.engine.noisy import CachedNoisyViews
from skal_seg.featurizer import DiffusionFeaturizer


@pytest.fixture(scope="module")
def pool():
    split = synthetic_split(7, 0)
    pixels = candidate_pixels(split, 20, seed=0)
    pixels[3] = pixels[3][:0]  # an image without candidates: no row, and no place in a UNet batch
    return split, pixels, np.concatenate([[0], np.cumsum([len(p) for p in pixels])]).astype(np.int64)


@pytest.fixture(scope="module")
def featurizer():
    # Two images per UNet forward: which images share a forward matters for the values (float rounding).
    return DiffusionFeaturizer(model=tiny_unet(), timesteps=(10, 50), batch_size=2, progress=False).fit()


@pytest.fixture(scope="module")
def reference(pool, featurizer):
    """The noisy views of every candidate row from one call over the whole pool."""
    split, pixels, _ = pool
    return featurizer.noisy_views(split.images, n_draws=2, pixels=pixels, random_state=0).astype(np.float16)


class Counting:
    """A view function that records the rows each call computes."""

    def __init__(self, view_fn):
        self.view_fn, self.n_draws, self.featurizer, self.calls = view_fn, view_fn.n_draws, view_fn.featurizer, []

    def __call__(self, rows):
        self.calls.append(np.asarray(rows).tolist())
        return self.view_fn(rows)


def store(pool, featurizer, **kw):
    split, pixels, offsets = pool
    view_fn = Counting(featurizer.noisy_view_fn(split.images, pixels, n_draws=2, random_state=0))
    return CachedNoisyViews(view_fn, offsets, featurizer.n_features_out_, **kw), view_fn


@pytest.mark.parametrize("where", ["memory", "spilled", "folder"])
def test_rows_equal_the_whole_pool_call_whatever_was_asked_with_them(pool, featurizer, reference, tmp_path, where):
    kw = {"memory": {}, "spilled": {"memory_limit_mb": 0, "directory": tmp_path},
          "folder": {"path": tmp_path / "noisy"}}[where]
    views, _ = store(pool, featurizer, images_per_call=1, **kw)
    rng = np.random.default_rng(0)
    for _ in range(6):  # requests in any order, overlapping, repeated: every row bit-identical to the reference
        rows = rng.choice(reference.shape[1], size=int(rng.integers(1, 9)))
        np.testing.assert_array_equal(views(rows), reference[:, rows])


def test_only_the_asked_rows_are_kept_not_their_images(pool, featurizer, reference):
    views, fn = store(pool, featurizer)
    rows = np.array([3, 45, 46])  # images 0 and 2; their batch partners 1 and 4 share the forwards
    views(rows)
    kept = np.flatnonzero(views._chunk_of >= 0)
    assert set(rows) <= set(kept.tolist())
    assert len(kept) <= len(rows) + 2  # plus one row of each partner image the batches needed
    assert len(kept) < reference.shape[1] / 10
    views(rows)
    assert len(fn.calls) == 1  # asked again: read, not computed


def test_also_keep_spares_a_second_forward_of_an_image(pool, featurizer, reference):
    views, fn = store(pool, featurizer)
    local_picks = np.array([0, 5, 7, 21, 30])  # image 0 and image 1
    views.also_keep(local_picks)
    views(np.array([5]))
    assert set(local_picks.tolist()) <= set(np.flatnonzero(views._chunk_of >= 0).tolist())
    np.testing.assert_array_equal(views(np.array([7, 30, 0])), reference[:, [7, 30, 0]])
    assert len(fn.calls) == 1


def test_a_folder_is_read_by_the_next_run_and_shared_by_two(pool, featurizer, reference, tmp_path):
    first, _ = store(pool, featurizer, path=tmp_path / "noisy")
    second, _ = store(pool, featurizer, path=tmp_path / "noisy")  # a run beside it: its own chunk files
    first(np.array([3, 45]))
    second(np.array([100, 3]))
    assert len(list((tmp_path / "noisy").glob("chunk-*.rows.npy"))) == 2

    class Forbidden:  # a later run must read the folder, not featurize again
        n_draws = 2

        def __call__(self, rows):
            raise AssertionError("recomputed rows that were on disk")

    again = CachedNoisyViews(Forbidden(), pool[2], featurizer.n_features_out_, path=tmp_path / "noisy")
    np.testing.assert_array_equal(again(np.array([45, 100, 3])), reference[:, [45, 100, 3]])
    with pytest.raises(AssertionError, match="recomputed"):
        again(np.array([61]))  # never asked for (its image was forwarded, for row 60 only)
    with pytest.raises(ValueError, match="another shape"):
        CachedNoisyViews(Forbidden(), pool[2], featurizer.n_features_out_ + 1, path=tmp_path / "noisy")


def test_an_interrupted_write_leaves_no_chunk(pool, featurizer, tmp_path):
    folder = tmp_path / "noisy"
    views, _ = store(pool, featurizer, path=folder)
    views(np.array([3]))
    (folder / "chunk-1-2.npy").write_bytes(b"half a file")  # values written, rows never: not a chunk
    (folder / ".chunk-1-3.rows.npy.tmp").write_bytes(b"")
    again, fn = store(pool, featurizer, path=folder)
    again(np.array([3]))
    assert fn.calls == []
