"""Bounded memory over memory-mapped feature files (skal_seg._memory, FeatureCache.get_streamed)."""

import numpy as np
import pytest

from skal_seg._atomic import atomic_path
from skal_seg._memory import mapped_file, read_rows, release, row_blocks
from skal_seg.engine.features import FeatureCache


def test_mapped_file_follows_views(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(12, dtype=np.float16).reshape(4, 3))
    X = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert mapped_file(X) is not None
    assert mapped_file(np.asarray(X[1:3])) is mapped_file(X)  # a plain-ndarray view of a slice
    assert mapped_file(np.arange(3)) is None and mapped_file(None) is None
    copy = read_rows(X, [3, 0], np.float32)
    assert mapped_file(copy) is None and copy.dtype == np.float32
    np.testing.assert_array_equal(copy, [[9, 10, 11], [0, 1, 2]])


def test_release_keeps_written_values(tmp_path):
    """Pages dropped from a writable mapping stay in the file: nothing written is lost."""
    X = np.lib.format.open_memmap(tmp_path / "w.npy", mode="w+", dtype=np.float16, shape=(1000, 64))
    X[:] = np.arange(64, dtype=np.float16)
    X[500, 3] = -7
    release(X)
    release(np.zeros(3))  # no-op on other arrays
    assert X[500, 3] == -7 and X[999, 63] == 63
    del X
    Y = np.load(tmp_path / "w.npy")
    assert Y[500, 3] == -7 and Y[0, 5] == 5


def test_row_blocks_fall_on_multiples():
    assert list(row_blocks(10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(row_blocks(10, 4, multiple_of=3)) == [(0, 6), (6, 10)]
    assert list(row_blocks(2, 100, multiple_of=3)) == [(0, 2)]
    assert list(row_blocks(0, 4)) == []


@pytest.mark.parametrize("directory", [True, False])
def test_streamed_matrix_equals_its_blocks(tmp_path, directory):
    blocks = [np.full((n, 5), i, dtype=np.float16) for i, n in enumerate([3, 0, 4])]
    cache = FeatureCache(tmp_path if directory else None)
    X = cache.get_streamed("m", (7, 5), np.float16, lambda: iter(blocks))
    np.testing.assert_array_equal(X, np.concatenate(blocks))
    if directory:
        np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), np.concatenate(blocks))
        again = FeatureCache(tmp_path).get_streamed("m", (7, 5), np.float16, lambda: pytest.fail("recomputed"))
        np.testing.assert_array_equal(again, X)


def test_two_writers_of_one_key_both_finish(tmp_path):
    """Two runs sharing a cache folder compute the same matrix at once: neither loses its file to the other."""
    blocks = [np.full((3, 5), 1, np.float16), np.full((4, 5), 2, np.float16)]
    expected = np.concatenate(blocks)
    inner = {}

    def first_writer_blocks():
        yield blocks[0]
        # a second process (here: a second cache on the same folder) writes the same key meanwhile
        inner["X"] = FeatureCache(tmp_path).get_streamed("m", (7, 5), np.float16, lambda: iter(blocks))
        yield blocks[1]

    X = FeatureCache(tmp_path).get_streamed("m", (7, 5), np.float16, first_writer_blocks)
    np.testing.assert_array_equal(X, expected)
    np.testing.assert_array_equal(inner["X"], expected)
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), expected)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.npy"]  # no temporary file left


def test_an_interrupted_atomic_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.name.endswith(".tmp")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and [f.name for f in tmp_path.iterdir()] == ["state.json"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and [f.name for f in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize("shape", [(8, 5), (6, 5), (7, 4)])
def test_streamed_blocks_of_the_wrong_shape_leave_no_file(tmp_path, shape):
    blocks = [np.zeros((3, 5), np.float16), np.zeros((4, 5), np.float16)]
    with pytest.raises(ValueError, match="do not form"):
        FeatureCache(tmp_path).get_streamed("m", shape, np.float16, lambda: iter(blocks))
    assert list(tmp_path.iterdir()) == []


def test_read_rows_from_the_file_equals_indexing(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 50, 7)).astype(np.float16)
    np.save(tmp_path / "v.npy", values)
    V = np.load(tmp_path / "v.npy", mmap_mode="r")
    rows = np.array([4, 5, 6, 0, 49, 49, -1, 10, 11])
    for k in range(3):  # views of the mapping at a byte offset of their own
        np.testing.assert_array_equal(read_rows(V[k], rows), values[k][rows])
        np.testing.assert_array_equal(read_rows(V[k, 10:20], [0, 9]), values[k][[10, 19]])
    assert read_rows(V[0], []).shape == (0, 7)
    with pytest.raises(IndexError):
        read_rows(V[0], [50])
