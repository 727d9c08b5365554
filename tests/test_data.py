"""Reading images and label maps of any format, class lists, pairing and working sizes."""

import io

import numpy as np
import pytest
from PIL import Image

from skal_seg.data import (
    CAMVID_CLASSES, ImageReadError, dataset_classes, image_size, load_split, read_class_names, read_image,
    read_label, working_size,
)


def test_modes_become_8bit_rgb(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "gray.png")
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png"), np.repeat(gray[..., None], 3, axis=2))

    deep = np.array([[0, 257, 65535, 32768]], dtype=np.uint16)  # 16-bit: scaled, not clipped at 255
    Image.fromarray(deep).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png")[0, :, 0], [0, 1, 255, 128])

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = [200, 100, 50]
    rgba[0, 0, 3], rgba[0, 1, 3], rgba[1, :, 3] = 255, 0, 128
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    out = read_image(tmp_path / "rgba.png")
    np.testing.assert_array_equal(out[0, 0], [200, 100, 50])
    np.testing.assert_array_equal(out[0, 1], [0, 0, 0])  # transparent: composited over black
    np.testing.assert_allclose(out[1, 0], [100, 50, 25], atol=1)

    pal = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8), mode="P")
    pal.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    pal.save(tmp_path / "pal.gif")
    np.testing.assert_array_equal(read_image(tmp_path / "pal.gif")[0, 1], [40, 50, 60])


def test_jpeg_webp_tiff_and_exif_orientation(tmp_path):
    rgb = np.full((8, 12, 3), 120, dtype=np.uint8)
    for ext in ("jpg", "webp", "tif", "bmp"):
        Image.fromarray(rgb).save(tmp_path / f"a.{ext}")
        assert read_image(tmp_path / f"a.{ext}").shape == (8, 12, 3), ext
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(rgb).save(tmp_path / "phone.jpg", exif=exif)
    assert image_size(tmp_path / "phone.jpg") == (12, 8)
    assert read_image(tmp_path / "phone.jpg").shape == (12, 8, 3)


def test_working_size_keeps_the_aspect_ratio():
    assert working_size((360, 480), 128) == (128, 171)
    assert working_size((480, 360), 128) == (171, 128)
    assert working_size((360, 480), (100, 50)) == (100, 50)
    assert working_size((360, 480), None) == (360, 480)


def test_bad_files_fail_with_one_line_naming_the_file(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    for name, reason in (("text.png", "not an image file"), ("cut.png", "truncated")):
        for reader in (read_image, read_label):
            with pytest.raises(ImageReadError, match=reason) as err:
                reader(tmp_path / name)
            assert str(tmp_path / name) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_labels_must_be_lossless_single_channel(tmp_path):
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "jpeg_inside.png", "JPEG")
    with pytest.raises(ImageReadError, match="losslessly"):
        read_label(tmp_path / "jpeg_inside.png")
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ImageReadError, match="single-channel"):
        read_label(tmp_path / "rgb.png")
    Image.fromarray(np.array([[3, 255]], dtype=np.uint16)).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(read_label(tmp_path / "deep.png"), [[3, 255]])


def _pair(folder, name, ext="png", hw=(8, 12), label_value=0, label_ext="png"):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*hw, 3), 90, dtype=np.uint8)).save(folder / f"{name}.{ext}")
    Image.fromarray(np.full(hw, label_value, dtype=np.uint8)).save(folder / f"{name}_label.{label_ext}")


def test_jpeg_images_pair_with_png_labels_and_unpaired_files_are_named(tmp_path):
    for i in range(2):
        _pair(tmp_path / "train", f"photo{i}", ext="jpg")
    split = load_split(tmp_path, "train", size=4)
    assert split.names == ("photo0", "photo1") and split.images.shape == (2, 4, 6, 3)
    Image.fromarray(np.zeros((8, 12, 3), dtype=np.uint8)).save(tmp_path / "train" / "lonely.webp")
    Image.fromarray(np.zeros((8, 12), dtype=np.uint8)).save(tmp_path / "train" / "orphan_label.png")
    with pytest.raises(ValueError, match=r"images without a NAME_label.png: lonely.webp; "
                                         r"labels without an image: orphan_label.png"):
        load_split(tmp_path, "train")


def test_jpeg_labels_are_refused_with_the_reason(tmp_path):
    _pair(tmp_path / "train", "a", label_ext="jpg")
    with pytest.raises(ValueError, match=r"must be PNG, TIFF or BMP \(lossless.*a_label.jpg"):
        load_split(tmp_path, "train")


def test_mixed_aspect_ratios_are_named_not_squashed(tmp_path):
    _pair(tmp_path / "train", "wide", hw=(8, 12))
    _pair(tmp_path / "train", "tall", hw=(12, 8))
    with pytest.raises(ValueError, match=r"6x4: 1 image \(tall.png\); 4x6: 1 image \(wide.png\).*--size H W"):
        load_split(tmp_path, "train", size=4)
    assert load_split(tmp_path, "train", size=(4, 4)).images.shape == (2, 4, 4, 3)


def test_class_list_from_the_folder_or_given(tmp_path):
    assert dataset_classes(tmp_path) == (CAMVID_CLASSES, "default")
    (tmp_path / "classes.txt").write_text("background\ncat\ndog\n\n")
    assert dataset_classes(tmp_path) == (("background", "cat", "dog"), str(tmp_path / "classes.txt"))
    assert dataset_classes(tmp_path, ["a", "b"]) == (("a", "b"), "given")
    (tmp_path / "gap.txt").write_text("a\n\nb\n")
    with pytest.raises(ValueError, match="class 1 has an empty name"):
        read_class_names(tmp_path / "gap.txt")
    with pytest.raises(ValueError, match="repeated: a"):
        dataset_classes(tmp_path, ["a", "a"])


def test_label_values_beyond_camvid_need_a_class_list(tmp_path):
    _pair(tmp_path / "train", "a", label_value=40)
    with pytest.raises(ValueError, match="outside the 11 classes.*classes.txt"):
        load_split(tmp_path, "train")
    assert load_split(tmp_path, "train", n_classes=41).labels.max() == 40
