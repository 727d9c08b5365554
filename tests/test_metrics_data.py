import numpy as np
import pytest
from PIL import Image

from skal_seg.data import load_split, sample_dataset_dir, split_validation
from skal_seg.metrics import confusion_matrix, iou_per_class, mean_iou


def test_confusion_matrix_and_miou_hand_computed():
    y_true = np.array([0, 0, 1, 1, 2, 255, 2, 0])
    y_pred = np.array([0, 1, 1, 1, 0, 2, 2, 0])
    cm = confusion_matrix(y_true, y_pred, 3)
    expected = np.array([[2, 1, 0], [0, 2, 0], [1, 0, 1]])
    np.testing.assert_array_equal(cm, expected)
    # IoU: class0 2/(3+3-2)=0.5, class1 2/(2+3-2)=2/3, class2 1/(2+1-1)=0.5
    np.testing.assert_allclose(iou_per_class(cm), [0.5, 2 / 3, 0.5])
    assert mean_iou(cm) == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)


def test_absent_class_is_nan_and_skipped():
    cm = confusion_matrix([0, 0, 1], [0, 0, 1], 3)
    iou = iou_per_class(cm)
    assert np.isnan(iou[2]) and mean_iou(cm) == 1.0


def test_confusion_matrix_rejects_bad_labels():
    with pytest.raises(ValueError, match="lie in"):
        confusion_matrix([0, 5], [0, 1], 3)
    with pytest.raises(ValueError, match="values"):
        confusion_matrix([0, 1], [0], 3)


def _write_pair(folder, name, image, label):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / f"{name}.png")
    Image.fromarray(label).save(folder / f"{name}_label.png")


def test_load_split_resizes_and_keeps_order(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("b", "a"):
        _write_pair(tmp_path / "train", name, rng.integers(0, 255, (20, 30, 3), dtype=np.uint8),
                    rng.integers(0, 3, (20, 30), dtype=np.uint8))
    split = load_split(tmp_path, "train", size=16, n_classes=3)
    assert split.names == ("a", "b")
    assert split.images.shape == (2, 16, 24, 3) and split.labels.shape == (2, 16, 24)  # short side 16
    assert load_split(tmp_path, "train", size=(10, 12), n_classes=3).images.shape == (2, 10, 12, 3)
    assert set(np.unique(split.labels)) <= {0, 1, 2}


@pytest.mark.parametrize("problem, match", [
    ("missing", "not found"),
    ("unpaired", "images without a NAME_label.png: b.png"),
    ("bad_label", "outside"),
    ("size", "but its label a_label.png is 9x8"),
    ("empty", "no NAME.EXT"),
])
def test_malformed_dataset_errors(tmp_path, problem, match):
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    lab = np.zeros((8, 8), dtype=np.uint8)
    split = tmp_path / "train"
    if problem == "unpaired":
        _write_pair(split, "a", img, lab)
        Image.fromarray(img).save(split / "b.png")
    elif problem == "bad_label":
        _write_pair(split, "a", img, np.full((8, 8), 40, dtype=np.uint8))
    elif problem == "size":
        _write_pair(split, "a", img, np.zeros((9, 8), dtype=np.uint8))
    elif problem == "empty":
        split.mkdir()
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_split(tmp_path, "train", size=8, n_classes=11)


def test_shipped_sample_loads():
    train = load_split(sample_dataset_dir(), "train", size=128)
    test = load_split(sample_dataset_dir(), "test", size=128)
    assert len(train) == 12 and len(test) == 4
    assert set(np.unique(train.labels)) <= set(range(11)) | {255}


def test_split_validation_is_disjoint_and_fixed():
    train = load_split(sample_dataset_dir(), "train", size=32)
    pool, val = split_validation(train, 0.25)
    assert len(val) == 3 and len(pool) == 9
    assert not set(pool.names) & set(val.names)
    assert split_validation(train, 0.25)[1].names == val.names
    with pytest.raises(ValueError):
        split_validation(train, 1.0)
