"""Datasets as distributed: file patterns, label maps, regions of interest, layouts, and the check before any work."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skal_seg.data import (
    IGNORE_INDEX,
    SegmentationSplit,
    load_split,
    sample_dataset_dir,
)
from skal_seg.datasets import dataset_spec, load_dataset
from skal_seg.file_patterns import SplitFiles, match_files, match_pattern
from skal_seg.image_io import as_rgb, read_label_values, read_roi
from skal_seg.label_map import LabelMap, LabelSurvey
from skal_seg.layouts import (
    ADE20K_CLASSES,
    CITYSCAPES_CLASSES,
    PASCAL_CONTEXT_CLASSES,
    VOC_CLASSES,
)

DRIVE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "drive"
HW = (12, 10)


def _image(path, hw=HW, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)).save(path)


def _mask(path, values, mode="L", palette=None):
    """A single-channel file of ``values``: gray levels (mode L) or palette indices (mode P, with ``palette``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(values, dtype=np.uint8)
    im = Image.fromarray(a)
    if mode == "P":
        im = Image.frombytes("P", (a.shape[1], a.shape[0]), a.tobytes())
        im.putpalette(palette)
    im.save(path, optimize=False)  # optimize would store a 0/255 GIF as a 2-colour palette: indices 0/1


def _vessels(seed):
    """A 0/255 vessel mask (vessels ~20 % of the pixels) and a field of view that leaves out the corners."""
    rng = np.random.default_rng(seed)
    label = np.where(rng.random(HW) < 0.2, 255, 0)
    label[0, 0] = 255
    label[1, 1] = 0
    fov = np.full(HW, 255)
    fov[:2, :2] = 0
    fov[-2:, -2:] = 0
    return label, fov


def _drive_tree(root, n_train=4, n_test=2):
    """DRIVE's layout in miniature: TIFF images, GIF labels (0/255; second observer 0/1 palette), GIF masks."""
    for split, ids, tag in (("training", range(21, 21 + n_train), "training"),
                            ("testing", range(1, 1 + n_test), "test")):
        for i in ids:
            label, fov = _vessels(i)
            _image(root / split / "images" / f"{i:02d}_{tag}.tif", seed=i)
            _mask(root / split / "1st_manual" / f"{i:02d}_manual1.gif", label)
            _mask(root / split / "mask" / f"{i:02d}_{tag}_mask.gif", fov)
            if split == "testing":
                _mask(root / split / "2nd_manual" / f"{i:02d}_manual2.gif", label // 255, mode="P",
                      palette=[4, 2, 4, 252, 254, 252] + [0] * 762)
    return root


DRIVE_TRAIN = dict(images="training/images/{id}_training.tif", labels="training/1st_manual/{id}_manual1.gif",
                   roi="training/mask/{id}_training_mask.gif")
DRIVE_TEST = dict(test_images="testing/images/{id}_test.tif", test_labels="testing/1st_manual/{id}_manual1.gif",
                  test_roi="testing/mask/{id}_test_mask.gif")


# --------------------------------------------------------------------------- reading values


def test_palette_images_give_indices_and_gray_images_values(tmp_path):
    values = np.array([[0, 1], [1, 0]])
    for ext in ("gif", "png"):  # DRIVE's second observer: palette indices 0/1 whose colours are near black/white
        _mask(tmp_path / f"p.{ext}", values, mode="P", palette=[4, 2, 4, 252, 254, 252] + [0] * 762)
        assert Image.open(tmp_path / f"p.{ext}").mode == "P"
        np.testing.assert_array_equal(read_label_values(tmp_path / f"p.{ext}"), values)
        np.testing.assert_array_equal(read_label_values(tmp_path / f"p.{ext}", colours=True),
                                      np.where(values == 1, 0xFCFEFC, 0x040204))
    _mask(tmp_path / "g.gif", values * 255)  # the first observer: gray levels 0/255
    np.testing.assert_array_equal(read_label_values(tmp_path / "g.gif"), values * 255)
    deep = np.array([[0, 1000], [65535, 7]], dtype=np.uint16)  # 16-bit values above 255 are read as they are
    Image.fromarray(deep).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(read_label_values(tmp_path / "deep.png"), deep)
    np.testing.assert_array_equal(read_label_values(tmp_path / "deep.png", size=(4, 4))[::2, ::2], deep)


def test_colour_label_files_need_a_colour_map(tmp_path):
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 1] = [255, 0, 0]
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"c.png: label maps must be single-channel.*mode RGB.*#RRGGBB:NAME"):
        read_label_values(tmp_path / "c.png")
    Image.fromarray(np.repeat(np.array([[0, 255]], np.uint8)[..., None], 3, axis=2)).save(tmp_path / "g.png")
    with pytest.raises(ValueError, match="channels are equal everywhere"):
        read_label_values(tmp_path / "g.png")
    colours = LabelMap.parse("#000000:background,#ff0000:vessel")
    assert colours.colours and colours.ignore == ()
    np.testing.assert_array_equal(colours.apply(read_label_values(tmp_path / "c.png", colours=True)),
                                  [[0, 1, 0], [0, 0, 0]])


def test_regions_of_interest_are_nonzero_stored_values(tmp_path):
    _mask(tmp_path / "p.gif", [[0, 1], [2, 0]], mode="P", palette=[255, 255, 255, 0, 0, 0] + [9] * 762)
    np.testing.assert_array_equal(read_roi(tmp_path / "p.gif"), [[False, True], [True, False]])  # index 0: outside
    _mask(tmp_path / "z.png", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="z.png: the region of interest is empty"):
        read_roi(tmp_path / "z.png")


def test_split_carries_its_region_of_interest():
    labels = np.zeros((3, 2, 2), np.uint8)
    roi = np.zeros((3, 2, 2), bool)
    roi[1] = True
    split = SegmentationSplit(np.zeros((3, 2, 2, 3), np.uint8), labels, ("a", "b", "c"), roi)
    sub = split.subset([1, 0])
    assert sub.names == ("b", "a") and sub.roi[0].all() and not sub.roi[1].any()
    assert SegmentationSplit(split.images, labels, split.names).roi_mask.all()
    with pytest.raises(ValueError, match="roi must be a bool array"):
        SegmentationSplit(split.images, labels, split.names, roi[:, :1])


def test_as_rgb_is_one_conversion_for_every_input_kind():
    gray = np.array([[0, 128], [255, 7]], dtype=np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    for image in (gray, gray[..., None], rgb, gray.astype(np.uint16) * 257):
        out = as_rgb(image)
        np.testing.assert_array_equal(out, rgb)
        assert out.dtype == np.uint8
    image = np.zeros((2, 2, 3), np.uint8)
    assert as_rgb(image) is image  # RGB uint8: untouched, no copy
    np.testing.assert_array_equal(as_rgb(gray / 255.0), rgb / 255.0)
    np.testing.assert_array_equal(as_rgb(np.stack([gray[..., None]] * 2), stacked=True), np.stack([rgb] * 2))
    for bad, match in ((gray > 0, "dtype bool"), (np.full((2, 2), np.nan), "NaN"), (gray * 2.0, r"\[0, 1\]"),
                       (gray.astype(np.int32) + 300, r"\[0, 255\]"), (np.zeros((2, 2, 4)), "shape"),
                       (np.zeros((2, 2, 2)), "shape")):
        with pytest.raises(ValueError, match=match):
            as_rgb(bad)


# --------------------------------------------------------------------------- label maps


def test_label_map_text_form():
    m = LabelMap.parse("0:background, 255:vessel")
    assert m.classes == ("background", "vessel") and m.lookup == {0: 0, 255: 1}
    assert m.ignore == () and not m.ignore_stated  # 255 is a class: nothing is ignored by default
    assert LabelMap.parse("0:background,1:vessel").ignore == (255,)
    many = LabelMap.parse("7:road,9:sky,8:road", ignore=[0])
    assert many.classes == ("road", "sky") and many.lookup == {7: 0, 8: 0, 9: 1} and many.ignore_stated
    np.testing.assert_array_equal(many.apply(np.array([7, 8, 9, 0])), [0, 0, 1, IGNORE_INDEX])
    assert LabelMap.parse(many.to_text()).lookup == many.lookup
    with pytest.raises(ValueError, match="map to no class"):
        many.apply(np.array([3]))
    for text, match in (("0background", "not VALUE:NAME"), ("0:a,0:b", "mapped twice"), ("0:a,#ff0000:b", "not both"),
                        ("x:a,1:b", "not a label value"), ("0:a", "expected 2"), ("0:a,1:", "empty class name"),
                        ("0:a,70000:b", "outside 0-65535")):
        with pytest.raises(ValueError, match=match):
            LabelMap.parse(text)
    with pytest.raises(ValueError, match="both a class"):
        LabelMap.parse("0:a,1:b", ignore=[1])


def test_survey_counts_values_inside_the_region():
    survey = LabelSurvey("pool")
    values = np.array([[0, 255], [255, 3]])
    survey.add(values, np.array([[True, True], [False, False]]), "a.gif")
    survey.add(values, None, "b.gif")
    assert survey.counts == {0: 2, 255: 3, 3: 1} and survey.files[255] == 2 and survey.outside == 2
    with pytest.raises(ValueError, match=r"label value 3 \(1 pixels in 1 file: b.gif\) maps to no class.*--label-map "
                                         r"0:background,3:NAME,255:vessel.*--ignore VALUE"):
        survey.check(LabelMap.parse("0:background,255:vessel"))


# --------------------------------------------------------------------------- file patterns


def test_patterns_pair_files_by_id(tmp_path):
    root = _drive_tree(tmp_path)
    files = match_files(root, SplitFiles(DRIVE_TRAIN["images"], DRIVE_TRAIN["labels"], DRIVE_TRAIN["roi"]))
    assert [f.id for f in files] == ["21", "22", "23", "24"]
    assert files[0].label.name == "21_manual1.gif" and files[0].roi.name == "21_training_mask.gif"
    assert list(match_pattern(root, "*/images/{id}_*.tif")) == ["01", "02", "21", "22", "23", "24"]
    _image(root / "cities" / "aachen" / "aachen_01_left.png")  # an id may span sub-folders
    assert list(match_pattern(root, "cities/{id}_left.png")) == ["aachen/aachen_01"]


@pytest.mark.parametrize("change, pattern, match", [
    (None, "training/images/{id}_train.tif", r"no file matches --images 'training/images/\{id\}_train.tif' "
                                             r"\(looked in .*training/images, which holds 4 files such as 21_training"),
    (None, "training/images/training.tif", r"must hold \{id\} exactly once"),
    (None, "nowhere/{id}.tif", "folder .*nowhere not found"),
    ("lonely", DRIVE_TRAIN["images"], r"1 image without a label \(--labels 'training/1st_manual/\{id\}_manual1.gif'\)"
                                      r": 99 \(99_training.tif\)"),
    ("orphan", DRIVE_TRAIN["images"], r"1 label without an image \(--images .*\): 98 \(98_manual1.gif\)"),
    ("twin", "training/images/{id}_training.*", r"two files have the same \{id\} '21': 21_training.png, "
                                                r"21_training.tif"),
])
def test_pattern_errors_name_the_files_and_the_option(tmp_path, change, pattern, match):
    root = _drive_tree(tmp_path)
    if change == "lonely":
        _image(root / "training/images/99_training.tif")
    elif change == "orphan":
        _mask(root / "training/1st_manual/98_manual1.gif", np.zeros(HW))
    elif change == "twin":
        _image(root / "training/images/21_training.png")
    spec = dataset_spec(root, **{**DRIVE_TRAIN, "images": pattern, "roi": None}, label_map="0:background,255:vessel",
                        test_fraction=0.5)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_dataset(root, spec, size=None)


def test_drive_layout_with_a_field_of_view(tmp_path):
    root = _drive_tree(tmp_path)
    spec = dataset_spec(root, **DRIVE_TRAIN, **DRIVE_TEST, label_map="0:background,255:vessel")
    data = load_dataset(root, spec, size=None)
    assert data.classes == ("background", "vessel") and len(data.pool) == 4 and len(data.test) == 2
    assert data.pool.names == ("21", "22", "23", "24") and data.pool.images.shape == (4, *HW, 3)
    label, fov = _vessels(21)
    expected = np.where(fov > 0, label // 255, IGNORE_INDEX)
    np.testing.assert_array_equal(data.pool.labels[0], expected)  # outside the field of view: never scored
    np.testing.assert_array_equal(data.pool.roi[0], fov > 0)
    assert data.warnings == () and data.present_classes("test") == ("background", "vessel")
    lines = "\n".join(data.plan_lines())
    assert "pool: 4 images; label values inside the region of interest: 0 -> background" in lines
    assert "255 -> vessel" in lines and "outside the region of interest (never candidates, never scored)" in lines
    # the same folder at a working size: the region is resized like the labels (nearest neighbour)
    small = load_dataset(root, spec, size=(6, 5))
    np.testing.assert_array_equal(small.pool.roi[0], (fov > 0)[::2, ::2])
    assert (small.pool.labels[~small.pool.roi] == IGNORE_INDEX).all()


def test_microscopy_0_255_masks_stop_before_any_work_naming_the_label_map(tmp_path, monkeypatch):
    root = _drive_tree(tmp_path)
    (root / "classes.txt").write_text("background\nvessel\n")
    decoded = []
    monkeypatch.setattr("skal_seg.datasets.read_image", lambda *a, **k: decoded.append(a) or np.zeros((*HW, 3)))
    spec = dataset_spec(root, images=DRIVE_TRAIN["images"], labels=DRIVE_TRAIN["labels"], test_fraction=0.5)
    with pytest.raises(ValueError, match=r"pool: .* of the pixels hold 255, which is read as 'no label' .* class "
                                         r"'vessel' never occurs.*--label-map 0:background,255:vessel.*--ignore 255"):
        load_dataset(root, spec, size=None)
    assert decoded == []  # failed on the labels, before a single image was decoded
    # a map that names 255 reads it; saying that 255 means "no label" turns the error into warnings
    assert load_dataset(root, dataset_spec(root, **DRIVE_TRAIN, test_fraction=0.5, classes=None,
                                           label_map="0:background,255:vessel"), size=None).warnings == ()
    stated = load_dataset(root, dataset_spec(root, images=DRIVE_TRAIN["images"], labels=DRIVE_TRAIN["labels"],
                                             test_fraction=0.5, ignore=[255]), size=None)
    assert any("'vessel'" in w and "never occur" in w for w in stated.warnings)


def test_second_observer_palette_indices_need_their_own_map(tmp_path):
    root = _drive_tree(tmp_path, n_test=4)
    options = dict(images="testing/images/{id}_test.tif", labels="testing/2nd_manual/{id}_manual2.gif",
                   roi="testing/mask/{id}_test_mask.gif", test_fraction=0.5)
    with pytest.raises(ValueError, match=r"label value 1 \(.* pixels in 2 files: testing/2nd_manual/0\d_manual2.gif, "
                                         r".*\) maps to no class of the label map 0:background,255:vessel \(from "
                                         r"--label-map\)\. .*--label-map 0:background,1:vessel"):
        load_dataset(root, dataset_spec(root, **options, label_map="0:background,255:vessel"), size=None)
    data = load_dataset(root, dataset_spec(root, **options, label_map="0:background,1:vessel"), size=None)
    first = load_dataset(root, dataset_spec(root, images="testing/images/{id}_test.tif", roi=options["roi"],
                                            labels="testing/1st_manual/{id}_manual1.gif", test_fraction=0.5,
                                            label_map="0:background,255:vessel"), size=None)
    np.testing.assert_array_equal(data.pool.labels, first.pool.labels)  # the same vessels, stored two ways


def test_warnings_for_absent_classes_and_mostly_ignored_pixels(tmp_path):
    root = _drive_tree(tmp_path)
    data = load_dataset(root, dataset_spec(root, **DRIVE_TRAIN, **DRIVE_TEST,
                                           label_map="255:vessel,7:lesion", ignore=[0]), size=None)
    assert any(w.startswith("pool: 1 of 2 classes never occur inside the region of interest") and "'lesion'" in w
               for w in data.warnings)
    assert any(w.startswith("test: ignore values (0) cover") for w in data.warnings)
    assert data.present_classes("test") == ("vessel",)


def test_test_fraction_is_a_seeded_split_of_the_labeled_images(tmp_path):
    root = _drive_tree(tmp_path, n_train=8)
    spec = dataset_spec(root, **DRIVE_TRAIN, label_map="0:background,255:vessel", test_fraction=0.25)
    a, b = load_dataset(root, spec, size=None), load_dataset(root, spec, size=None, pool_limit=3)
    assert len(a.test) == 2 and len(a.pool) == 6 and not set(a.test.names) & set(a.pool.names)
    assert b.test.names == a.test.names and b.pool.names == a.pool.names[:3]  # the limit does not move the test
    assert a.test.roi is not None
    assert load_dataset(root, spec, size=None, split_seed=1).test.names != a.test.names
    with pytest.raises(ValueError, match="leaves no test image"):
        load_dataset(root, dataset_spec(root, **DRIVE_TRAIN, label_map="0:a,255:b", test_fraction=0.01), size=None)


@pytest.mark.parametrize("options, match", [
    (dict(images="a/{id}.png"), r"--images needs --labels"),
    (dict(labels="a/{id}.png"), r"--labels needs --images"),
    (dict(images="a/{id}.png", labels="b/{id}.png"), r"give the test split too: --test-images and --test-labels"),
    (dict(test_fraction=0.2, test_images="a/{id}", test_labels="b/{id}"), "cannot go together"),
    (dict(test_fraction=1.5), r"share in \(0, 1\)"),
    (dict(layout="voc", images="a/{id}.png", labels="b/{id}.png"), "a layout sets the files"),
    (dict(layout="kitti"), "unknown layout 'kitti'; choose from cityscapes, voc, pascal-context, ade20k"),
    (dict(scene="bedroom"), r"--scene keeps a scene of a layout with a scene list \(ade20k\)"),
    (dict(label_map="0:a,1:b", classes=["a", "b"]), "cannot go together"),
])
def test_contradicting_options_are_named(tmp_path, options, match):
    with pytest.raises(ValueError, match=match):
        dataset_spec(tmp_path, **options)


def test_dataset_json_and_classes_txt(tmp_path):
    root = _drive_tree(tmp_path)
    (root / "dataset.json").write_text(json.dumps({**DRIVE_TRAIN, **DRIVE_TEST,
                                                   "label_map": {"0": "background", "255": "vessel"}}))
    spec = dataset_spec(root)
    assert spec.label_map.lookup == {0: 0, 255: 1} and spec.pool.roi == DRIVE_TRAIN["roi"]
    assert "dataset.json (label_map)" in spec.label_map.source
    assert len(load_dataset(root, size=None).pool) == 4
    # an option replaces the file's options of its group, and keeps the others
    other = dataset_spec(root, test_fraction=0.5, label_map="0:bg,255:fg")
    assert other.test is None and other.test_fraction == 0.5 and other.pool == spec.pool
    assert other.label_map.classes == ("bg", "fg")
    (root / "classes.txt").write_text("background\nvessel\n")
    with pytest.raises(ValueError, match="both name the classes; keep one"):
        dataset_spec(root)
    (root / "dataset.json").write_text(json.dumps({"imgs": "x"}))
    with pytest.raises(ValueError, match="unknown options imgs; valid: layout"):
        dataset_spec(root)


def test_the_package_layout_keeps_working(tmp_path):
    data = load_dataset(sample_dataset_dir(), size=32)
    train, test = load_split(sample_dataset_dir(), "train", size=32), load_split(sample_dataset_dir(), "test", size=32)
    np.testing.assert_array_equal(data.pool.labels, train.labels)
    np.testing.assert_array_equal(data.test.images, test.images)
    assert data.pool.names == train.names and data.pool.roi is None
    assert not [w for w in data.warnings if w.startswith("pool")]
    assert "CamVid's 11 classes" in data.label_map.source and data.classes[0] == "sky"
    folder = tmp_path / "d" / "train"  # a stray value is named with its file and the fixes
    folder.mkdir(parents=True)
    for name in "ab":
        _image(folder / f"{name}.png")
        _mask(folder / f"{name}_label.png", np.full(HW, 40))
    with pytest.raises(ValueError, match=r"label value 40 .*_label.png\) maps to no class .*--label-map .*40:NAME"
                                         r".*name every class in classes.txt"):
        load_dataset(tmp_path / "d", dataset_spec(tmp_path / "d", test_fraction=0.5), size=None)


# --------------------------------------------------------------------------- ready-made layouts


def _write_ids(path: Path, ids):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def test_layout_cityscapes_maps_label_ids_to_the_19_train_ids(tmp_path):
    label_ids = np.array([[7, 8, 11, 12, 13], [17, 19, 20, 21, 22], [23, 24, 25, 26, 27], [28, 31, 32, 33, 0],
                          [1, 4, 6, 9, 10], [14, 15, 16, 18, 29], [30, 5, 2, 3, 7]])
    for split, city, n in (("train", "aachen", 2), ("val", "lindau", 1)):
        for k in range(n):
            stem = f"{city}/{city}_000000_{k:06d}"
            _image(tmp_path / "leftImg8bit" / split / f"{stem}_leftImg8bit.png", hw=label_ids.shape)
            _mask(tmp_path / "gtFine" / split / f"{stem}_gtFine_labelIds.png", label_ids)
            _mask(tmp_path / "gtFine" / split / f"{stem}_gtFine_color.png", label_ids)  # not matched
    data = load_dataset(tmp_path, dataset_spec(tmp_path, layout="cityscapes"), size=None)
    assert data.classes == CITYSCAPES_CLASSES and len(CITYSCAPES_CLASSES) == 19
    assert data.pool.names == ("aachen/aachen_000000_000000", "aachen/aachen_000000_000001")
    assert data.test.names == ("lindau/lindau_000000_000000",)
    expected = np.full(label_ids.shape, IGNORE_INDEX)
    expected.flat[:19] = np.arange(19)
    expected[-1, -1] = 0  # labelId 7 again: road
    np.testing.assert_array_equal(data.pool.labels[0], expected)
    assert data.warnings == ()


def test_layout_voc_reads_palette_indices_with_255_ignored(tmp_path):
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 756 + [224, 224, 192]  # index 255: the boundary colour
    values = np.array([[0, 1, 255], [15, 20, 255]])
    for i in ("2007_000032", "2007_000033", "2007_000039"):
        _image(tmp_path / "JPEGImages" / f"{i}.jpg", hw=values.shape)
        _mask(tmp_path / "SegmentationClass" / f"{i}.png", values, mode="P", palette=palette)
    _image(tmp_path / "JPEGImages" / "2008_999999.jpg", hw=values.shape)  # detection-only image: not in the lists
    _write_ids(tmp_path / "ImageSets/Segmentation/train.txt", ["2007_000032", "2007_000039"])
    _write_ids(tmp_path / "ImageSets/Segmentation/val.txt", ["2007_000033"])
    data = load_dataset(tmp_path, dataset_spec(tmp_path, layout="voc"), size=None)
    assert data.classes == VOC_CLASSES and data.pool.names == ("2007_000032", "2007_000039")
    np.testing.assert_array_equal(data.test.labels[0], values)  # indices, not colours; 255 stays ignore
    assert data.label_map.ignore == (255,) and data.label_map.ignore_stated
    _write_ids(tmp_path / "ImageSets/Segmentation/val.txt", ["2007_000033", "2007_000077"])
    with pytest.raises(ValueError, match=r"1 id of ImageSets/Segmentation/val.txt without an image \(layout voc "
                                         r"'JPEGImages/\{id\}.jpg'\): 2007_000077"):
        load_dataset(tmp_path, dataset_spec(tmp_path, layout="voc"), size=None)


def test_layout_pascal_context_59_classes_with_0_ignored(tmp_path):
    values = np.array([[0, 1, 2], [59, 30, 0]])
    for i in ("2008_000002", "2008_000003"):
        _image(tmp_path / "JPEGImages" / f"{i}.jpg", hw=values.shape)
        _mask(tmp_path / "SegmentationClassContext" / f"{i}.png", values)
    _write_ids(tmp_path / "ImageSets/SegmentationContext/train.txt", ["2008_000002"])
    _write_ids(tmp_path / "ImageSets/SegmentationContext/val.txt", ["2008_000003"])
    data = load_dataset(tmp_path, dataset_spec(tmp_path, layout="pascal-context"), size=None)
    assert len(data.classes) == 59 and data.classes == PASCAL_CONTEXT_CLASSES
    np.testing.assert_array_equal(data.pool.labels[0], [[IGNORE_INDEX, 0, 1], [58, 29, IGNORE_INDEX]])


def test_layout_ade20k_shifts_1_150_and_keeps_a_scene(tmp_path):
    values = np.array([[0, 1, 150], [8, 8, 0]])  # 8 = bed
    scenes = {"ADE_train_00000001": "bedroom", "ADE_train_00000002": "airport_terminal",
              "ADE_train_00000003": "bedroom", "ADE_val_00000001": "bedroom", "ADE_val_00000002": "street"}
    for i in scenes:
        split = "training" if "train" in i else "validation"
        _image(tmp_path / "images" / split / f"{i}.jpg", hw=values.shape)
        _mask(tmp_path / "annotations" / split / f"{i}.png", values)
    (tmp_path / "sceneCategories.txt").write_text("".join(f"{i} {s}\n" for i, s in scenes.items()))
    everything = load_dataset(tmp_path, dataset_spec(tmp_path, layout="ade20k"), size=None)
    assert len(everything.pool) == 3 and len(everything.test) == 2 and everything.classes == ADE20K_CLASSES
    np.testing.assert_array_equal(everything.pool.labels[0], [[IGNORE_INDEX, 0, 149], [7, 7, IGNORE_INDEX]])
    assert everything.classes[7] == "bed"
    bed = load_dataset(tmp_path, dataset_spec(tmp_path, layout="ade20k", scene="bedroom"), size=None)
    assert bed.pool.names == ("ADE_train_00000001", "ADE_train_00000003") and bed.test.names == ("ADE_val_00000001",)
    assert any("147 of 150 classes never occur" in w for w in bed.warnings)
    with pytest.raises(ValueError, match=r"no image of scene 'bedrom'.*most frequent scenes: bedroom \(3\)"):
        load_dataset(tmp_path, dataset_spec(tmp_path, layout="ade20k", scene="bedrom"), size=None)


# --------------------------------------------------------------------------- the real DRIVE, as distributed


@pytest.mark.skipif(not DRIVE.is_dir(), reason="the shared DRIVE folder is not beside the checkout")
def test_real_drive_as_distributed():
    spec = dataset_spec(DRIVE, **DRIVE_TRAIN, **DRIVE_TEST, label_map="0:background,255:vessel")
    data = load_dataset(DRIVE, spec, size=128)
    assert len(data.pool) == 20 and len(data.test) == 20 and data.pool.roi is not None
    assert data.present_classes("pool") == data.present_classes("test") == ("background", "vessel")
    assert (data.pool.labels[~data.pool.roi] == IGNORE_INDEX).all() and data.warnings == ()
    assert 0.2 < 1 - data.pool.roi.mean() < 0.4  # the dark corners outside the field of view
    with pytest.raises(ValueError, match="--label-map 0:background,255:vessel"):
        load_dataset(DRIVE, dataset_spec(DRIVE, **DRIVE_TRAIN, **DRIVE_TEST, classes=["background", "vessel"]),
                     size=64)


@pytest.mark.skipif(not DRIVE.is_dir(), reason="the shared DRIVE folder is not beside the checkout")
def test_own_data_page_runs_as_written(capsys):
    """docs/own-data.md: its Python block runs on DRIVE and prints what the page shows, error message included."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "own-data.md").read_text()
    code = re.search(r"## In Python\n\n```python\n(.*?)```", page, re.S)[1]
    printed = re.search(r"\nprints\n\n```text\n(.*?)```", page, re.S)[1]
    error = re.search(r"```text\nValueError: (.*?)\n```", page, re.S)[1]
    assert 'DATA = "data/drive"' in code
    namespace = {}
    exec(compile(code.replace('"data/drive"', repr(str(DRIVE))), "own-data.md", "exec"), namespace)
    assert capsys.readouterr().out == printed
    spec = namespace["spec"]
    with pytest.raises(ValueError) as err:
        load_dataset(DRIVE, dataset_spec(DRIVE, images=spec.pool.images, labels=spec.pool.labels, roi=spec.pool.roi,
                                         test_images=spec.test.images, test_labels=spec.test.labels,
                                         test_roi=spec.test.roi, classes=["background", "vessel"]), size=128)
    assert str(err.value) == error


def test_microscopy_case_in_the_package_layout(tmp_path):
    """The issue's case: 0/255 masks copied as they came into train/ + test/, two classes named in classes.txt."""
    for split, names in (("train", "abc"), ("test", "d")):
        for i, name in enumerate(names):
            label, _ = _vessels(i)
            label = np.where(np.arange(HW[1]) < 7, 255, label)  # the foreground covers most of the image
            _image(tmp_path / split / f"{name}.png", seed=i)
            _mask(tmp_path / split / f"{name}_label.png", label)
    (tmp_path / "classes.txt").write_text("background\nvessel\n")
    with pytest.raises(ValueError, match=r"^pool: 7\d\.\d % of the pixels hold 255, .*--label-map "
                                         r"0:background,255:vessel .*--ignore 255$"):
        load_dataset(tmp_path, size=None)
    data = load_dataset(tmp_path, dataset_spec(tmp_path, label_map="0:background,255:vessel"), size=None)
    assert data.present_classes("pool") == data.present_classes("test") == ("background", "vessel")
    assert data.label_map.source == "--label-map" and data.warnings == ()


def test_a_working_size_larger_than_memory_is_refused_before_any_image_is_read(monkeypatch):
    # --size 100000 used to be killed by the kernel without a word, after filling the machine
    import skal_seg._memory as memory
    import skal_seg.datasets as datasets

    decoded = []
    with monkeypatch.context() as patch, pytest.raises(
            ValueError, match=r"^pool: 12 images at 100000 x 100000 px take 360.0 GB as 8-bit RGB, more than the .* GB "
                              r"of memory available; choose a smaller size"):
        patch.setattr(datasets, "read_label_values", lambda *a, **k: decoded.append(a))
        load_dataset(sample_dataset_dir(), size=(100000, 100000))
    assert decoded == []
    # the bound is the memory available now: 12 images of 32 x 32 need 36,864 bytes
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 36_863)
    with pytest.raises(ValueError, match="pool: 12 images at 32 x 32 px take 0.0 GB"):
        load_dataset(sample_dataset_dir(), size=32)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 36_864)
    assert load_dataset(sample_dataset_dir(), size=32).pool.images.nbytes == 36_864
