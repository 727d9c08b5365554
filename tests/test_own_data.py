"""Datasets as distributed from the command line: ``skal-seg run`` and ``skal-seg init`` with file patterns,
regions of interest and label maps (docs/own-data.md); the flags the two share.

A DRIVE-like tree in miniature: 16x16 images (the tiny UNet's size; 20x24 for the labeling project, whose
working size is square), 0/255 vessel masks and field-of-view masks that leave out the corners.
"""

import inspect
import json

import numpy as np
import pytest
from PIL import Image
from test_experiment import tiny_unet

from skal_seg.benchmark import commands
from skal_seg.cli import _parser
from skal_seg.cli import main as cli_main
from skal_seg.datasets import dataset_spec
from skal_seg.data import SegmentationSplit
from skal_seg.engine.features import cache_key, candidate_pixels
from skal_seg.labeling import LabelingProject
from skal_seg.labeling.contents import roi_files
from skal_seg.labeling.pool import original_pixels

HW = (16, 16)


def _fov(hw):
    """The field of view: everything but a 4x4 square in two corners."""
    fov = np.full(hw, 255, dtype=np.uint8)
    fov[:4, :4] = 0
    fov[-4:, -4:] = 0
    return fov


def _write_case(root, split, tag, ids, hw=HW):
    """Images, 0/255 vessel masks (a vertical band: 1/4 of the pixels) and field-of-view masks of one split."""
    for i in ids:
        rng = np.random.default_rng(i)
        label = np.zeros(hw, dtype=np.uint8)
        label[:, hw[1] // 2 : hw[1] // 2 + hw[1] // 4] = 255
        image = np.where(label[..., None] == 255, [200, 40, 40], [40, 40, 200]) + rng.normal(0, 15, (*hw, 3))
        for folder in ("images", "manual", "mask"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / split / "images" / f"{i:02d}_{tag}.tif")
        Image.fromarray(label).save(root / split / "manual" / f"{i:02d}_manual1.gif", optimize=False)  # values 0/255
        Image.fromarray(_fov(hw)).save(root / split / "mask" / f"{i:02d}_{tag}_mask.gif", optimize=False)


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    root = tmp_path_factory.mktemp("drive")
    _write_case(root, "training", "training", range(21, 25))
    _write_case(root, "testing", "test", range(1, 3))
    tiny_unet().save_pretrained(root / "unet")
    return root


PATTERNS = ["--images", "training/images/{id}_training.tif", "--labels", "training/manual/{id}_manual1.gif",
            "--roi", "training/mask/{id}_training_mask.gif"]
TEST_PATTERNS = ["--test-images", "testing/images/{id}_test.tif", "--test-labels", "testing/manual/{id}_manual1.gif",
                 "--test-roi", "testing/mask/{id}_test_mask.gif"]


def run_args(root, out, *extra):
    return ["run", "--data", str(root), "--model", str(root / "unet"), "--size", "16", "--rounds", "2",
            "--candidates-per-image", "30", "--local-budget", "5", "--n-draws", "2", "--timesteps", "10", "50",
            "--val-fraction", "0", "--budget", "4", "--out", str(out), "--quiet", *extra]


# --------------------------------------------------------------------------- skal-seg run


def test_run_parser_passes_every_data_option_to_dataset_spec():
    spec_parameters = set(inspect.signature(dataset_spec).parameters) - {"root"}
    assert set(commands._DATA_OPTIONS) == spec_parameters
    args = _parser().parse_args(["run", *PATTERNS, *TEST_PATTERNS, "--label-map", "0:a,255:b", "--ignore"])
    assert {k: getattr(args, k) for k in ("images", "test_roi", "label_map", "ignore", "layout", "test_fraction")} == {
        "images": PATTERNS[1], "test_roi": TEST_PATTERNS[5], "label_map": "0:a,255:b", "ignore": [],
        "layout": None, "test_fraction": None}
    assert _parser().parse_args(["run", "--layout", "ade20k", "--scene", "bedroom"]).scene == "bedroom"


def test_candidates_of_every_protocol_lie_inside_the_region_of_interest():
    labels = np.zeros((2, *HW), dtype=np.uint8)
    roi = np.zeros((2, *HW), dtype=bool)
    roi[0, 2:12, 3:9] = True  # 60 pixels
    roi[1, 5, 5] = True  # one pixel: the count is capped by the region's size
    labels[~roi] = 255  # as load_dataset reads them
    split = SegmentationSplit(np.zeros((2, *HW, 3), dtype=np.uint8), labels, ("a", "b"), roi)
    for protocol in ("all", "valid"):
        pixels = candidate_pixels(split, 40, seed=0, candidates=protocol)
        assert [len(p) for p in pixels] == [40, 1]
        assert all(r.reshape(-1)[p].all() for r, p in zip(roi, pixels))
    without = SegmentationSplit(split.images, labels, ("a", "b"))
    assert [len(p) for p in candidate_pixels(without, 40, seed=0, candidates="all")] == [40, 40]


def test_run_with_only_flags_reads_both_classes_inside_the_field_of_view(drive, tmp_path, capsys):
    out = tmp_path / "res"
    assert cli_main(run_args(drive, out, *PATTERNS, *TEST_PATTERNS, "--label-map", "0:background,255:vessel",
                             "--strategies", "random", "--candidates", "all")) == 0
    printed = capsys.readouterr().out
    assert "pool training/images/{id}_training.tif with labels training/manual/{id}_manual1.gif (region of " \
           "interest training/mask/{id}_training_mask.gif)" in printed
    assert "classes (2): 0:background,255:vessel (from --label-map); ignore: none" in printed
    assert "pool: 4 images; label values inside the region of interest: 0 -> background 7" in printed
    assert "12.5 % of the pixels are outside the region of interest (never candidates, never scored)" in printed
    assert ("evaluation: mIoU over the 2 classes background, vessel on the test images (inside their regions of "
            "interest)") in printed
    assert "mIoU over the 2 classes background, vessel." in (out / "summary.md").read_text()
    run = out / "random" / "seed0"
    state = json.loads((run / "state.json").read_text())
    assert state["classes"] == state["eval_classes"] == ["background", "vessel"]
    assert state["label_map"] == {"map": "0:background,255:vessel", "ignore": []}
    fov = _fov(HW).reshape(-1) > 0
    assert len(state["labeled_pixels"]) == 8 and all(fov[flat] for _, flat in state["labeled_pixels"])
    rows = (run / "rounds.csv").read_text().splitlines()
    assert rows[0].startswith("strategy,seed,round,labeled_pixels,taught_pixels,miou,miou_over,iou_background,"
                              "iou_vessel,")
    assert all(row.split(",")[6] == "background;vessel" for row in rows[1:])


def test_resume_with_another_label_map_of_the_same_names_is_refused(drive, tmp_path, capsys):
    out = tmp_path / "res"
    common = [*PATTERNS, "--test-fraction", "0.25", "--strategies", "random"]
    assert cli_main(run_args(drive, out, *common, "--label-map", "0:background,255:vessel")) == 0
    assert "pool: 3 images" in capsys.readouterr().out  # one of the 4 labeled images held out as the test split
    swapped = run_args(drive, out, *common, "--label-map", "255:background,0:vessel", "--resume")
    swapped[swapped.index("--rounds") + 1] = "3"
    with pytest.raises(SystemExit, match=r"cannot resume .*seed0: it was run with the label map "
                                         r"0:background,255:vessel \(ignore: none\), now 0:vessel,255:background"):
        cli_main(swapped)


def test_the_microscopy_case_stops_before_any_work_naming_the_label_map(tmp_path, monkeypatch):
    """0/255 masks copied as they came into train/ + test/, two classes named: 255 would silently be 'ignore'."""
    for split, n in (("train", 3), ("test", 1)):
        (tmp_path / split).mkdir()
        for i in range(n):
            label = np.zeros(HW, dtype=np.uint8)
            label[:, 4:] = 255  # the cells cover most of the image
            Image.fromarray(np.full((*HW, 3), 90, dtype=np.uint8)).save(tmp_path / split / f"c{i}.png")
            Image.fromarray(label).save(tmp_path / split / f"c{i}_label.png")
    (tmp_path / "classes.txt").write_text("background\ncell\n")

    def no_work(*args, **kwargs):
        raise AssertionError("the featurizer was loaded before the data were checked")

    monkeypatch.setattr(commands, "fitted_featurizer", no_work)
    with pytest.raises(SystemExit, match=r"^skal-seg: pool: 75\.0 % of the pixels hold 255, which is read as 'no "
                                         r"label' .* --label-map 0:background,255:cell .* --ignore 255$"):
        cli_main(["run", "--data", str(tmp_path), "--out", str(tmp_path / "res"), "--quiet"])
    assert not (tmp_path / "res").exists()


# --------------------------------------------------------------------------- skal-seg init, query, predict


@pytest.fixture(scope="module")
def photos(tmp_path_factory, drive):
    """The same case at 20x24, for a labeling project (no labels needed), with a stray file to exclude."""
    root = tmp_path_factory.mktemp("photos")
    _write_case(root, "training", "training", range(21, 24), hw=(20, 24))
    Image.fromarray(np.zeros((20, 24, 3), dtype=np.uint8)).save(root / "training" / "images" / "99_training.tif")
    Image.fromarray(_fov((20, 24))).save(root / "training" / "mask" / "99_training_mask.gif")
    return root


def init_args(photos, drive, folder, *extra):
    return ["init", str(folder), "--data", str(photos), "--images", "training/images/{id}_training.tif",
            "--roi", "training/mask/{id}_training_mask.gif", "--classes", "background,vessel",
            "--candidates-per-image", "40", "--local-budget", "12", "--n-draws", "2", "--model", str(drive / "unet"),
            "--timesteps", "10", "50", *extra]


def test_init_with_patterns_never_queries_outside_the_roi_and_predict_gives_no_class_there(photos, drive, tmp_path,
                                                                                             capsys):
    folder = tmp_path / "p"
    assert cli_main(init_args(photos, drive, folder, "--size", "16", "--exclude", "99_*", "--exclude", "nothing")) == 0
    assert "3 images (queries only inside each one's region of interest)" in capsys.readouterr().out
    project = LabelingProject(folder)  # the regions of interest are kept in the project: reopened here
    assert [im["path"] for im in project.images()] == [f"training/images/{i}_training.tif" for i in (21, 22, 23)]
    assert project.settings["working_size"] == 16
    assert roi_files(project.settings, project.images())[0] == photos / "training" / "mask" / "21_training_mask.gif"
    assert cli_main(["query", str(folder), "--budget", "30", "--quiet"]) == 0
    fov = _fov((20, 24)) > 0
    pool = LabelingProject(folder)._pool()
    for i, image in enumerate(pool.image_rows):  # every candidate stands for an original pixel inside
        ys, xs = original_pixels(pool.feats.pixels[i], 16, image)
        assert len(ys) == 40 and fov[ys, xs].all()
    queries = LabelingProject(folder).queries()
    assert len(queries) == 30 and all(fov[q["y"], q["x"]] for q in queries)
    for q in queries:
        LabelingProject(folder).answer(q["id"], "vessel" if 12 <= q["x"] < 18 else "background")
    masks = tmp_path / "masks"
    assert cli_main(["predict", str(folder), "--out", str(masks), "--exclude", "22_*", "--quiet"]) == 0
    mask = np.asarray(Image.open(masks / "training" / "images" / "21_training.png"))
    assert mask.shape == (20, 24) and (mask[~fov] == 255).all() and set(np.unique(mask[fov])) <= {0, 1}
    overlay = np.asarray(Image.open(masks / "training" / "images" / "21_training_overlay.png"))
    original = np.asarray(Image.open(photos / "training" / "images" / "21_training.tif"))
    assert (overlay[~fov] == original[~fov]).all() and (overlay[fov] != original[fov]).any()


def test_init_working_size_is_a_deprecated_alias_of_size_and_exclude_cannot_swallow_the_project(photos, drive,
                                                                                                 tmp_path, capsys):
    # --exclude before the project folder: one pattern per flag, the folder stays a positional
    args = ["init", "--exclude", "99_*", str(tmp_path / "p"), *init_args(photos, drive, tmp_path / "p")[2:],
            "--working-size", "16"]
    assert cli_main(args) == 0
    assert "--working-size is deprecated" in capsys.readouterr().err
    project = LabelingProject(tmp_path / "p")
    assert project.settings["working_size"] == 16 and len(project.images()) == 3
    with pytest.raises(SystemExit, match="--size 32 and --working-size 16 disagree"):
        cli_main(init_args(photos, drive, tmp_path / "q", "--size", "32", "--working-size", "16"))
    with pytest.raises(SystemExit, match=r"--roi .* needs --images as a file pattern with \{id\}"):
        cli_main(["init", str(tmp_path / "r"), "--images", str(photos), "--roi", "x/{id}.gif", "--classes", "a,b"])
    with pytest.raises(SystemExit):
        cli_main(["init", "-h"])
    help_text = capsys.readouterr().out
    assert "--size N" in help_text and "--working-size" not in help_text


def test_init_names_an_image_without_its_region_of_interest(photos, tmp_path):
    (photos / "training" / "images" / "98_training.tif").write_bytes(
        (photos / "training" / "images" / "21_training.tif").read_bytes())
    try:
        with pytest.raises(SystemExit, match=r"1 image without a region of interest \(--roi "
                                             r"'training/mask/\{id\}_training_mask.gif'\): 98 \(98_training.tif\)"):
            cli_main(["init", str(tmp_path / "p"), "--data", str(photos), "--images", "training/images/{id}_training.tif",
                      "--roi", "training/mask/{id}_training_mask.gif", "--classes", "a,b"])
    finally:
        (photos / "training" / "images" / "98_training.tif").unlink()
    assert not (tmp_path / "p" / "project.sqlite").exists()


def test_import_of_an_unknown_class_lists_the_valid_names(photos, tmp_path):
    project = LabelingProject.init(tmp_path / "p", photos / "training" / "images", "background,vessel")
    (tmp_path / "a.csv").write_text("image,y,x,label\n21_training.tif,1,1,vessels\n")
    with pytest.raises(ValueError, match=r"line 2: unknown class 'vessels' \(valid: background, vessel, or void"):
        project.import_answers(tmp_path / "a.csv")


def test_tables_say_over_which_classes_miou_is_taken_and_name_a_class_absent_from_the_test_labels(tmp_path):
    from skal_seg.benchmark.plotting import markdown_summary
    from skal_seg.metrics import classes_present, miou_scope

    assert classes_present(np.array([[0, 2], [255, 2]]), 3).tolist() == [True, False, True]
    assert miou_scope(["background", "vessel"], [True, True]) == "mIoU over the 2 classes background, vessel"
    run = tmp_path / "random" / "seed0"
    run.mkdir(parents=True)
    (run / "rounds.json").write_text(json.dumps([{"round": 0, "labeled_pixels": 4, "miou": 0.5, "strategy": "random",
                                                  "seed": 0, "seconds": {}, "iou": [0.5, None, 0.5]}]))
    (run / "state.json").write_text(json.dumps({"classes": ["road", "car", "sky"], "eval_classes": ["road", "sky"]}))
    assert ("mIoU over the 2 of 3 classes that occur in the evaluation labels (road, sky); car never occurs there "
            "and counts only in a round that predicts it (IoU 0).") in markdown_summary(tmp_path)


def test_the_run_identity_holds_the_label_map_unless_it_is_the_package_own_reading():
    from skal_seg.benchmark.runner import run_data_id
    from skal_seg.label_map import LabelMap

    labels = np.zeros((1, *HW), dtype=np.uint8)
    split = SegmentationSplit(np.zeros((1, *HW, 3), dtype=np.uint8), labels, ("a",))
    before = run_data_id(split, split)  # what results folders written before label maps hold: they still resume
    assert before == cache_key(split.names, split.names, split.images.shape, split.images.shape)
    assert run_data_id(split, split, LabelMap.identity(["x", "y"])) == before
    assert run_data_id(split, split, LabelMap.identity(["x", "y"], ignore=[255])) == before
    assert run_data_id(split, split, LabelMap.parse("0:x,255:y")) != before
    assert run_data_id(split, split, LabelMap.identity(["x", "y"], ignore=[])) != before
    with_roi = SegmentationSplit(split.images, labels, ("a",), np.ones((1, *HW), dtype=bool))
    assert run_data_id(with_roi, split) != before
