"""Labeling projects end to end on the shipped CamVid sample: storage, queries, formats, kills, the page, masks.

A simulated annotator answers with the sample's ground truth. Settings are
tiny (one timestep, 48 candidates per image, 2 noisy draws) so every test
takes seconds; features are computed once per module and copied with the
project folder (they are a cache in the folder).
"""

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skal_seg.benchmark.simulate import answer_from_label_maps
from skal_seg.cli import main as cli_main
from skal_seg.data import CAMVID_CLASSES, IGNORE_INDEX, sample_dataset_dir
from skal_seg.labeling import ImportValidationError, LabelingProject
from skal_seg.labeling.pool import upsampled_argmax
from skal_seg.labeling.server import LabelingServer
from skal_seg.metrics import confusion_matrix, mean_iou

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(candidates_per_image=48, local_budget=4, n_draws=2, featurizer={"model": "embedded", "timesteps": [50]},
                classifier={"min_steps": 20, "max_epochs": 3})
SAMPLE = ["0001TP_007140", "0006R0_f01320", "0016E5_00450"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Sample images in a nested layout and several formats, with their ground truth at original size.

    Three 128x128 RGB PNGs, one 144x96 JPEG (smaller than nothing, not square) in a
    sub-folder, and one 16-bit grayscale 60x90 PNG (its truth: everything void).
    """
    root = tmp_path_factory.mktemp("photos")
    src = sample_dataset_dir() / "train"
    truth = {}
    for name in SAMPLE:
        shutil.copy(src / f"{name}.png", root / f"{name}.png")
        truth[f"{name}.png"] = np.asarray(Image.open(src / f"{name}_label.png"))
    (root / "street").mkdir()
    with Image.open(src / "0016E5_01350.png") as im:
        im.convert("RGB").resize((96, 144), Image.BILINEAR).save(root / "street" / "wide.jpg", quality=95)
    with Image.open(src / "0016E5_01350_label.png") as lab:
        truth["street/wide.jpg"] = np.asarray(lab.resize((96, 144), Image.NEAREST))
    Image.fromarray((np.arange(60 * 90).reshape(60, 90) * 12).astype(np.uint16)).save(root / "deep16.png")
    truth["deep16.png"] = np.full((60, 90), IGNORE_INDEX, dtype=np.uint8)
    return root, truth


def oracle(truth, path, y, x) -> str:
    v = int(truth[path][y, x])
    return "void" if v == IGNORE_INDEX else CAMVID_CLASSES[v]


@pytest.fixture(scope="module")
def base(images, tmp_path_factory):
    """A project after init and round 0 (features cached in its folder)."""
    root, _ = images
    folder = tmp_path_factory.mktemp("base") / "proj"
    project = LabelingProject.init(folder, root, list(CAMVID_CLASSES), settings=SETTINGS)
    project.query(8)
    return folder


@pytest.fixture
def project(base, tmp_path):
    folder = tmp_path / "proj"
    shutil.copytree(base, folder)
    return LabelingProject(folder)


def answer_all(project, truth, source="test"):
    return answer_from_label_maps(project, truth.__getitem__, source=source)


def db_rows(project, sql):
    con = sqlite3.connect(project.store.path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------- storage and the API


def test_init_records_images_sizes_hashes_classes_and_settings(project, images):
    root, truth = images
    recorded = {im["path"]: (im["height"], im["width"]) for im in project.images()}
    assert recorded == {p: t.shape for p, t in truth.items()}  # original sizes, any format and layout
    assert all(len(im["sha256"]) == 64 for im in project.images())
    assert [c["name"] for c in project.classes()] == list(CAMVID_CLASSES)
    assert len({c["colour"] for c in project.classes()}) == len(CAMVID_CLASSES)
    assert project.settings["working_size"] == 128 and project.config().candidates_per_image == 48
    assert db_rows(project, "PRAGMA journal_mode")[0][0] == "wal"
    with pytest.raises(FileExistsError):
        LabelingProject.init(project.folder, root, ["a"])


@pytest.mark.parametrize("classes, match", [
    ("", "at least one"), ("a,b,a", "repeated"), ("sky,void", "reserved"),
])
def test_init_rejects_bad_classes_and_writes_nothing(images, tmp_path, classes, match):
    with pytest.raises(ValueError, match=match):
        LabelingProject.init(tmp_path / "p", images[0], classes)
    with pytest.raises(FileNotFoundError, match="not a labeling project"):
        LabelingProject(tmp_path / "p")


def test_init_rejects_filter_scales_larger_than_the_working_size_and_writes_nothing(images, tmp_path):
    # caught at init, not at the first query of a project whose settings cannot change
    settings = {"features": "filters", "candidates_per_image": 100,
                "filter_bank": {"sigmas": [1.0, 40.0], "line_lengths": [5, 33]}}
    with pytest.raises(ValueError, match=r"larger than a 32 x 32 px image: sigma 40, line length 33"):
        LabelingProject.init(tmp_path / "p", images[0], "a,b", working_size=32, settings=settings)
    with pytest.raises(FileNotFoundError, match="not a labeling project"):
        LabelingProject(tmp_path / "p")
    settings["filter_bank"] = {"sigmas": [1.0, 32.0], "line_lengths": [5, 31]}  # the working size itself is fine
    LabelingProject.init(tmp_path / "p", images[0], "a,b", working_size=32, settings=settings)


def test_init_refuses_a_working_size_larger_than_memory_and_writes_nothing(images, tmp_path):
    with pytest.raises(ValueError, match=r"^project: \d+ images at 100000 x 100000 px take .* GB as 8-bit RGB, "
                                         r"more than the .* GB of memory available"):
        LabelingProject.init(tmp_path / "p", images[0], "a,b", working_size=100000)
    with pytest.raises(FileNotFoundError, match="not a labeling project"):
        LabelingProject(tmp_path / "p")


def test_init_names_an_unreadable_image_and_writes_nothing(tmp_path):
    (tmp_path / "photos").mkdir()
    shutil.copy(sample_dataset_dir() / "train" / f"{SAMPLE[0]}.png", tmp_path / "photos")
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot read image .*broken.jpg"):
        LabelingProject.init(tmp_path / "p", tmp_path / "photos", "sky,road")
    assert not (tmp_path / "p" / "project.sqlite").exists()
    LabelingProject.init(tmp_path / "p", tmp_path / "photos", "sky,road", exclude=["broken.*"])


def test_classes_from_a_file_and_exclude_patterns(images, tmp_path):
    (tmp_path / "classes.txt").write_text("# my classes\nsky\nroad\n\n")
    p = LabelingProject.init(tmp_path / "p", images[0], tmp_path / "classes.txt", exclude=["*.jpg", "deep16.png"])
    assert [c["name"] for c in p.classes()] == ["sky", "road"]
    with pytest.raises(FileNotFoundError, match="class list file not found"):
        LabelingProject.init(tmp_path / "q", images[0], "clases.txt")
    assert sorted(im["path"] for im in p.images()) == sorted(f"{n}.png" for n in SAMPLE)


def test_round0_queries_are_distinct_pixels_inside_their_original_images(project):
    queries = project.queries()
    assert len(queries) == 8 and all(q["round_id"] == 0 and q["score"] is None for q in queries)
    assert len({(q["image_id"], q["y"], q["x"]) for q in queries}) == 8
    assert all(0 <= q["y"] < q["height"] and 0 <= q["x"] < q["width"] for q in queries)
    assert project.status()["rounds"][0]["trained_on"] == 0


def test_second_round_trains_on_answers_scores_with_edald_and_never_requeries(project, images):
    answer_all(project, images[1])
    first = {(q["image_id"], q["y"], q["x"]) for q in project.queries()}
    new = project.query(6, strategy="two_stage")  # the round's own strategy, recorded with it
    assert len(new) == 6 and all(q["round_id"] == 1 and q["strategy"] == "two_stage" for q in new)
    assert all(q["score"] is not None and np.isfinite(q["score"]) for q in new)
    assert not first & {(q["image_id"], q["y"], q["x"]) for q in new}
    taught = sum(a["label"] != "void" for a in project.answers())
    assert project.status()["rounds"][1]["trained_on"] == taught
    assert [r["strategy"] for r in project.status()["rounds"]] == ["maxherding", "two_stage"]  # round 0 herds


def test_simulated_annotator_answers_from_label_maps_and_checks_them(project, images):
    assert answer_all(project, images[1]) == 8
    for q in project.queries():
        assert q["label"] == oracle(images[1], q["path"], q["y"], q["x"])
    project.query(2)
    with pytest.raises(ValueError, match="the label map of .* is \\(2, 2\\)"):
        answer_from_label_maps(project, lambda path: np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="label value 11 is no class id"):
        answer_from_label_maps(project, lambda path: np.full(images[1][path].shape, 11, dtype=np.uint8))


@pytest.mark.parametrize("strategy", ["two_stage", "uherding"])
def test_the_project_engine_asks_what_the_benchmark_runner_labels(strategy, images, tmp_path):
    """Ground truth answering through the project API gets the runner's pixels, round after round."""
    from skal_seg.benchmark.runner import run_experiment
    from skal_seg.data import load_split
    from skal_seg.engine.settings import ExperimentConfig

    names = SAMPLE
    pool = load_split(sample_dataset_dir(), "train", size=128).subset(
        [load_split(sample_dataset_dir(), "train", size=128).names.index(n) for n in names])
    config = ExperimentConfig(strategy=strategy, rounds=3, budget_per_image=4 / 3, candidates="all", **SETTINGS)
    run_experiment(config, pool, pool.subset([0]), tmp_path / "run", progress=False, log=lambda s: None)
    runner = json.loads((tmp_path / "run" / "state.json").read_text())["labeled_pixels"]

    photos = tmp_path / "photos"
    photos.mkdir()
    for n in names:
        shutil.copy(sample_dataset_dir() / "train" / f"{n}.png", photos)
    project = LabelingProject.init(tmp_path / "proj", photos, list(CAMVID_CLASSES),
                                   settings={**SETTINGS, "strategy": strategy})
    for _ in range(3):
        project.query(4)
        answer_from_label_maps(project, lambda path: pool.labels[names.index(path[:-4])])
    asked = [[q["path"][:-4], q["y"] * 128 + q["x"]] for q in project.queries()]
    assert asked == runner
    assert [r["strategy"] for r in project.store.rows("SELECT strategy FROM rounds ORDER BY id")] == \
        ["maxherding", strategy, strategy]


def test_a_new_project_queries_with_uherding_and_refuses_unknown_strategies(project):
    from skal_seg.labeling.project import DEFAULT_STRATEGY

    assert DEFAULT_STRATEGY == "uherding" and project.config().strategy == "uherding"
    with pytest.raises(ValueError, match="unknown strategy 'best'"):
        project.query(2, strategy="best")


def test_answer_and_undo(project):
    q = project.queries()[0]
    a = project.answer(q["id"], "road")
    assert project.queries()[0]["label"] == "road" and project.status()["pending"] == 7
    with pytest.raises(ValueError, match="already answered"):
        project.answer(q["id"], "sky")
    with pytest.raises(ValueError, match="unknown class 'lava'"):
        project.answer(project.queries()[1]["id"], "lava")
    assert project.undo(a, query_id=q["id"]) == q["id"]
    assert project.status()["pending"] == 8
    project.answer(q["id"], "unsure")
    assert project.answers()[0]["label"] == "void"


def test_query_budget_checks(project):
    with pytest.raises(ValueError, match="positive integer"):
        project.query(0)
    with pytest.raises(ValueError, match="exceeds the .* candidate pixels not asked yet"):
        project.query(10_000)


# --------------------------------------------------------------------------- the benchmark runner's project

RUN_SETTINGS = dict(rounds=3, budget_per_image=2.0, eval_stride=4, **{**SETTINGS, "classifier": {
    "min_steps": 150, "max_epochs": 30}})  # enough training that the strategies' mIoU differ


@pytest.fixture(scope="module")
def run_data(tmp_path_factory):
    """Sample pool and test images at 64 x 64, a fitted featurizer and a feature cache shared by the runs."""
    from skal_seg.data import load_split
    from skal_seg.featurizer import DiffusionFeaturizer

    train = load_split(sample_dataset_dir(), "train", size=64)
    pool = train.subset([train.names.index(n) for n in SAMPLE])
    test = load_split(sample_dataset_dir(), "test", size=64)
    featurizer = DiffusionFeaturizer(model="embedded", timesteps=(50,), output_dtype="float16", progress=False).fit()
    return pool, test, dict(featurizer=featurizer, cache_dir=tmp_path_factory.mktemp("cache"), progress=False,
                            log=lambda s: None)


class RevealedStraightFromGroundTruth:
    """The runner's labels as it read them before it kept a project: the candidate rows' ground truth."""

    def __init__(self, truth):
        self.truth, self.rows = truth, []

    @classmethod
    def open(cls, folder, pool, pixels, offsets, *args, finished=(), **kwargs):
        annotator = cls(np.concatenate([pool.labels[i].reshape(-1)[p] for i, p in enumerate(pixels)]))
        annotator.rows = [int(i) for rows in finished for i in rows]
        return annotator

    def ask(self, r, rows, *args, **kwargs):
        self.rows += [int(i) for i in rows]

    def revealed(self, n_rows):
        y = np.full(n_rows, IGNORE_INDEX, dtype=np.uint8)
        y[self.rows] = self.truth[self.rows]
        return y

    def close(self):
        pass


@pytest.mark.parametrize("strategy", ["random", "maxherding", "two_stage"])
def test_the_runner_labels_through_a_project_what_the_ground_truth_gives_directly(strategy, run_data, tmp_path,
                                                                                    monkeypatch):
    """Ground truth answering through the project API: the same picks and mIoU as labels read straight from it."""
    from skal_seg.benchmark import runner
    from skal_seg.benchmark.runner import run_experiment
    from skal_seg.engine.settings import ExperimentConfig

    pool, test, quiet = run_data
    config = ExperimentConfig(strategy=strategy, **RUN_SETTINGS)
    via_project = run_experiment(config, pool, test, tmp_path / "project", **quiet)
    with monkeypatch.context() as m:
        m.setattr(runner, "GroundTruthAnnotator", RevealedStraightFromGroundTruth)
        direct = run_experiment(config, pool, test, tmp_path / "direct", **quiet)
    assert not (tmp_path / "direct" / "project.sqlite").exists()
    state = {k: json.loads((tmp_path / k / "state.json").read_text()) for k in ("project", "direct")}
    assert state["project"]["labeled"] == state["direct"]["labeled"]
    assert [r["miou"] for r in via_project] == [r["miou"] for r in direct]
    assert [r["taught_pixels"] for r in via_project] == [r["taught_pixels"] for r in direct]

    project = LabelingProject(tmp_path / "project")  # the record: every pick a query, answered by the ground truth
    queries = project.queries()
    assert [[q["path"], q["y"] * 64 + q["x"]] for q in queries] == state["project"]["labeled_pixels"]
    assert [q["round_id"] for q in queries] == [r for r in range(3) for _ in range(6)]
    truth = {name: labels for name, labels in zip(pool.names, pool.labels)}
    assert [q["label"] for q in queries] == [oracle(truth, q["path"], q["y"], q["x"]) for q in queries]
    assert {a["source"] for a in project.answers()} == {"ground truth"}
    status = project.status()
    assert status["pending"] == 0 and [r["trained_on"] for r in status["rounds"]] == [
        0] + [r["taught_pixels"] for r in via_project[:-1]]
    with pytest.raises(ValueError, match="record of a benchmark run"):
        project.query(4)


def test_a_run_resumes_folders_written_before_it_kept_a_project(run_data, tmp_path):
    from skal_seg.benchmark.runner import run_experiment
    from skal_seg.engine.settings import ExperimentConfig

    pool, test, quiet = run_data
    longer = run_experiment(ExperimentConfig(**RUN_SETTINGS), pool, test, tmp_path / "long", **quiet)
    run_experiment(ExperimentConfig(**{**RUN_SETTINGS, "rounds": 2}), pool, test, tmp_path / "old", **quiet)
    (tmp_path / "old" / "project.sqlite").unlink()  # as a results folder of the runner before it kept one
    extended = run_experiment(ExperimentConfig(**RUN_SETTINGS), pool, test, tmp_path / "old", resume=True, **quiet)
    assert [r["miou"] for r in extended] == [r["miou"] for r in longer]
    old, long = LabelingProject(tmp_path / "old"), LabelingProject(tmp_path / "long")
    assert [(q["path"], q["y"], q["x"], q["label"]) for q in old.queries()] == [
        (q["path"], q["y"], q["x"], q["label"]) for q in long.queries()]


def test_a_fresh_run_replaces_an_earlier_runs_project_but_never_a_persons(run_data, images, tmp_path):
    from skal_seg.benchmark.runner import run_experiment
    from skal_seg.engine.settings import ExperimentConfig

    pool, test, quiet = run_data
    config = ExperimentConfig(**{**RUN_SETTINGS, "rounds": 1})
    run_experiment(ExperimentConfig(**{**RUN_SETTINGS, "rounds": 2}), pool, test, tmp_path / "run", **quiet)
    run_experiment(config, pool, test, tmp_path / "run", **quiet)
    assert len(LabelingProject(tmp_path / "run").queries()) == 6
    (tmp_path / "run" / "state.json").unlink()  # as if killed after round 0 was asked: only the project knows it
    with pytest.raises(ValueError, match=r"sqlite was made with other settings: local_budget 4 \(saved\) vs 5"):
        run_experiment(ExperimentConfig(**{**RUN_SETTINGS, "local_budget": 5}), pool, test, tmp_path / "run",
                       resume=True, **quiet)
    LabelingProject.init(tmp_path / "mine", images[0], list(CAMVID_CLASSES), settings=SETTINGS)
    with pytest.raises(ValueError, match="holds a labeling project that no benchmark run made"):
        run_experiment(config, pool, test, tmp_path / "mine", **quiet)
    assert LabelingProject(tmp_path / "mine").images()  # untouched


# --------------------------------------------------------------------------- CSV and Label Studio


def test_csv_export_then_import_of_the_filled_file(project, images, tmp_path):
    (path,) = project.export(tmp_path / "out", "csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "image,y,x,label" and len(lines) == 9
    filled = [lines[0]]
    for line in lines[1:]:
        image, y, x, _ = line.split(",")
        filled.append(f"{image},{y},{x},{oracle(images[1], image, int(y), int(x))}")
    filled.append(filled[1])  # a repeated identical row is harmless
    path.write_text("\n".join(filled) + "\n")
    report = project.import_answers(path)
    assert report.added == 8 and report.extra == [] and report.already_known == 0
    assert project.status()["pending"] == 0
    assert all(a["source"] == "csv:queries.csv" for a in project.answers())
    assert project.import_answers(path).already_known == 9  # importing twice changes nothing
    assert len(project.answers()) == 8
    (again,) = project.export(tmp_path / "all", "csv", pending_only=False)
    assert sorted(again.read_text().splitlines()[1:]) == sorted(set(filled[1:]))


def test_csv_import_validates_every_row_before_writing_anything(project, tmp_path):
    q = project.queries()
    project.answer(q[0]["id"], "road")
    rows = [
        "image,y,x,label",
        f"{q[1]['path']},{q[1]['y']},{q[1]['x']},sky",            # line 2: fine
        "nowhere.png,1,1,sky",                                    # line 3: unknown image
        f"{q[2]['path']},{q[2]['y']},{q[2]['x']},lava",           # line 4: unknown class
        "deep16.png,60,0,sky",                                    # line 5: outside (60 rows)
        f"{q[1]['path']},{q[1]['y']},{q[1]['x']},car",            # line 6: conflicts with line 2
        f"{q[0]['path']},{q[0]['y']},{q[0]['x']},sky",            # line 7: conflicts with the stored 'road'
        "deep16.png,2.5,3,sky",                                   # line 8: not a pixel
        "deep16.png,3,4,void",                                    # line 9: fine, extra
    ]
    (tmp_path / "bad.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ImportValidationError) as err:
        project.import_answers(tmp_path / "bad.csv")
    message = str(err.value)
    for expected in ("line 3: unknown image 'nowhere.png'", "line 4: unknown class 'lava'", "line 5: pixel (y=60, x=0) is outside",
                     "line 6:", "answered differently in line 2", "line 7:", "different stored answer", "line 8:"):
        assert expected in message
    assert "6 bad row(s), nothing imported" in message
    assert len(project.answers()) == 1  # nothing half-imported
    (tmp_path / "ok.csv").write_text("\n".join([rows[0], rows[1], rows[8], "deep16.png,5,5,"]) + "\n")
    report = project.import_answers(tmp_path / "ok.csv")
    assert report.added == 2 and report.skipped_empty == 1 and len(report.extra) == 1 and "line 3" in report.extra[0]
    extra = [a for a in project.answers() if a["query_id"] is None]
    assert [(e["path"], e["y"], e["x"], e["label"]) for e in extra] == [("deep16.png", 3, 4, "void")]


def test_csv_needs_its_header(project, tmp_path):
    (tmp_path / "h.csv").write_text("img,y,x,label\na.png,1,1,sky\n")
    with pytest.raises(ValueError, match="missing \\['image'\\]"):
        project.import_answers(tmp_path / "h.csv")


def test_labelstudio_export_in_percent_and_import_of_its_annotations(project, images, tmp_path):
    tasks_path, config_path = project.export(tmp_path / "ls", "labelstudio", image_prefix="/data/local-files/?d=")
    tasks = json.loads(tasks_path.read_text())
    assert "<KeyPointLabels" in config_path.read_text() and 'value="void"' in config_path.read_text()
    queries = {(q["path"], q["y"], q["x"]) for q in project.queries()}
    seen = set()
    for task in tasks:
        assert task["data"]["image"] == "/data/local-files/?d=" + task["data"]["skal_seg_image"]
        annotation = []
        for r in task["predictions"][0]["result"]:
            v, w, h = r["value"], r["original_width"], r["original_height"]
            x, y = v["x"] * w / 100 - 0.5, v["y"] * h / 100 - 0.5  # percent of the original size, pixel centres
            assert x == pytest.approx(round(x)) and y == pytest.approx(round(y))
            path = task["data"]["skal_seg_image"]
            seen.add((path, round(y), round(x)))
            # what a person's Label Studio annotation of that prediction looks like in its JSON export
            label = oracle(images[1], path, round(y), round(x))
            annotation.append({**r, "value": {**v, "keypointlabels": [label]}, "origin": "prediction-changed"})
        task["annotations"] = [{"id": 1, "result": annotation, "was_cancelled": False}]
        task["data"].pop("skal_seg_image")  # imports also work from the file name in data.image
    assert seen == queries
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    report = project.import_answers(tmp_path / "export.json")
    assert report.added == 8 and report.extra == []
    for q in project.queries():
        assert q["label"] == oracle(images[1], q["path"], q["y"], q["x"])


def test_labelstudio_import_reports_bad_points(project, tmp_path):
    q = project.queries()[0]
    task = {"data": {"image": "x/" + q["path"]}, "annotations": [{"result": [
        {"type": "keypointlabels", "original_width": 1, "original_height": 1,
         "value": {"x": 150.0, "y": 10.0, "keypointlabels": ["sky"]}},
        {"type": "keypointlabels", "value": {"x": 1.0, "y": 1.0, "keypointlabels": ["sky", "road"]}},
        {"type": "rectanglelabels", "value": {}},
    ]}]}
    (tmp_path / "bad.json").write_text(json.dumps([task]))
    with pytest.raises(ImportValidationError, match="2 bad row") as err:
        project.import_answers(tmp_path / "bad.json")
    assert "task 1, result 1: point (10.00 %, 150.00 %) is outside" in str(err.value)
    assert "task 1, result 2: malformed keypoint" in str(err.value)
    assert project.answers() == []


# --------------------------------------------------------------------------- kill -9


def _killed_at(point, args, tmp_path):
    """Run ``skal-seg ARGS`` until it reaches the pause ``point``, then SIGKILL it."""
    flag = tmp_path / f"{point}.reached"
    env = {**os.environ, "SKAL_SEG_LABELING_PAUSE": point, "SKAL_SEG_LABELING_PAUSE_FILE": str(flag),
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "skal_seg.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while not flag.exists():
        if proc.poll() is not None:
            pytest.fail(f"skal-seg {' '.join(args)} ended before {point}: {proc.stdout.read().decode()}")
        assert time.monotonic() < deadline, f"{point} not reached"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def test_kill_during_import_loses_no_committed_answer_and_imports_nothing(project, images, tmp_path):
    queries = project.queries()
    for q in queries[:3]:
        project.answer(q["id"], oracle(images[1], q["path"], q["y"], q["x"]))
    before = db_rows(project, "SELECT * FROM answers ORDER BY id")
    csv = tmp_path / "answers.csv"
    csv.write_text("image,y,x,label\n" + "".join(
        f"{q['path']},{q['y']},{q['x']},{oracle(images[1], q['path'], q['y'], q['x'])}\n" for q in queries[3:]))
    _killed_at("import-commit", ["import", str(project.folder), str(csv)], tmp_path)
    assert db_rows(project, "SELECT * FROM answers ORDER BY id") == before  # committed kept, half-import gone
    assert cli_main(["import", str(project.folder), str(csv)]) == 0  # the next command works
    assert project.status()["answers"] == 8 and project.status()["pending"] == 0


def test_kill_during_query_leaves_no_half_round_and_the_query_can_be_rerun(project, images, tmp_path):
    answer_all(project, images[1])
    before = {t: db_rows(project, f"SELECT * FROM {t} ORDER BY id") for t in ("rounds", "queries", "answers")}
    _killed_at("query-commit", ["query", str(project.folder), "--budget", "6", "--quiet"], tmp_path)
    assert {t: db_rows(project, f"SELECT * FROM {t} ORDER BY id") for t in before} == before
    new = LabelingProject(project.folder).query(6)
    assert len(new) == 6 and {q["round_id"] for q in new} == {1}


# --------------------------------------------------------------------------- command line, server, predict


def test_command_line_session(images, base, tmp_path, capsys):
    folder = tmp_path / "cli"
    shutil.copytree(base, folder)  # keeps the feature cache: the query below only trains and ranks
    assert cli_main(["status", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "8 queries, 0 answers (0 extra), 8 pending" in out and "round 0 (maxherding): asked 8" in out
    assert cli_main(["export", str(folder), "--format", "csv", "--out", str(tmp_path / "x")]) == 0
    rows = (tmp_path / "x" / "queries.csv").read_text().splitlines()
    filled = [rows[0]] + [r + oracle(images[1], *[int(v) if v.isdigit() else v for v in r.split(",")[:3]])
                          for r in rows[1:]]
    (tmp_path / "a.csv").write_text("\n".join(filled) + "\n")
    assert cli_main(["import", str(folder), str(tmp_path / "a.csv")]) == 0
    assert "imported 8 answers" in capsys.readouterr().out
    assert cli_main(["query", str(folder), "--budget", "3", "--quiet"]) == 0
    assert "round 1: 3 new queries" in capsys.readouterr().out
    assert cli_main(["status", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == 3
    with pytest.raises(SystemExit, match="not a labeling project"):
        cli_main(["status", str(tmp_path / "nothing")])
    with pytest.raises(SystemExit, match="bad row"):
        (tmp_path / "b.csv").write_text("image,y,x,label\nnope.png,0,0,sky\n")
        cli_main(["import", str(folder), str(tmp_path / "b.csv")])


def test_status_scores_images_read_with_patterns_a_label_map_and_regions_of_interest(project, images, tmp_path,
                                                                                      capsys):
    """--eval with patterns reads any layout; the label map's names (any order) become the project's class ids."""
    answer_all(project, images[1])
    folder = str(project.folder)
    src = sample_dataset_dir() / "test"
    assert cli_main(["status", folder, "--eval", str(src), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)["evaluation"]
    assert 0 < plain["miou"] < 1
    # the same truth stored as other values, in another layout, its map listing the classes backwards
    data = tmp_path / "elsewhere"
    (data / "photos").mkdir(parents=True)
    (data / "truth").mkdir()
    (data / "fov").mkdir()
    (data / "cut").mkdir()
    names = sorted(p.name[: -len("_label.png")] for p in src.glob("*_label.png"))
    for name in names:
        shutil.copy(src / f"{name}.png", data / "photos" / f"{name}.png")
        label = np.asarray(Image.open(src / f"{name}_label.png"))
        stored = np.where(label == IGNORE_INDEX, 7, label.astype(np.int64) * 20 + 3).astype(np.uint8)
        Image.fromarray(stored).save(data / "truth" / f"{name}_gt.png")
        inside = np.zeros(label.shape, dtype=np.uint8)
        inside[:, : label.shape[1] // 2] = 1
        Image.fromarray(inside * 255).save(data / "fov" / f"{name}_mask.png")
        Image.fromarray(np.where(inside == 1, label, IGNORE_INDEX).astype(np.uint8)).save(
            data / "cut" / f"{name}_label.png")
        shutil.copy(src / f"{name}.png", data / "cut" / f"{name}.png")
    label_map = ",".join(f"{i * 20 + 3}:{c}" for i, c in reversed(list(enumerate(CAMVID_CLASSES))))
    patterns = ["--eval", str(data), "--eval-images", "photos/{id}.png", "--eval-labels", "truth/{id}_gt.png",
                "--label-map", label_map, "--ignore", "7"]
    assert cli_main(["status", folder, *patterns, "--json"]) == 0
    mapped = json.loads(capsys.readouterr().out)["evaluation"]
    assert mapped["miou"] == pytest.approx(plain["miou"]) and mapped["iou"] == plain["iou"]
    # a region of interest scores only the pixels inside: the same as labels ignored outside
    assert cli_main(["status", folder, *patterns, "--eval-roi", "fov/{id}_mask.png", "--json"]) == 0
    inside_only = json.loads(capsys.readouterr().out)["evaluation"]
    assert cli_main(["status", folder, "--eval", str(data / "cut"), "--json"]) == 0
    assert inside_only == {**json.loads(capsys.readouterr().out)["evaluation"], "folder": str(data)}
    assert inside_only["miou"] != pytest.approx(plain["miou"])
    assert cli_main(["status", folder, *patterns]) == 0
    assert f"mIoU on {data} (at the images' own size, as predict masks them): {mapped['miou']:.4f}" in (
        capsys.readouterr().out)
    # bad input fails, naming what is wrong
    with pytest.raises(SystemExit, match="'tarmac', not among the classes"):
        cli_main(["status", folder, *patterns[:-4], "--label-map", "3:tarmac,23:sky", "--ignore", "7"])
    with pytest.raises(SystemExit, match="value 7"):  # 7 is neither mapped nor ignored
        cli_main(["status", folder, *patterns[:-2]])
    with pytest.raises(SystemExit, match="--eval-images, --label-map describe the evaluation images"):
        cli_main(["status", folder, "--eval-images", "photos/{id}.png", "--label-map", label_map])
    with pytest.raises(SystemExit, match="go together"):
        cli_main(["status", folder, "--eval", str(data), "--eval-images", "photos/{id}.png"])


def test_server_refuses_requests_without_the_token_and_saves_answers(project):
    server = LabelingServer(project).start()
    try:
        base_url = server.url.split("?")[0]
        assert server.url.startswith("http://127.0.0.1:")
        for url in (base_url, base_url + "api/state", base_url + "api/state?token=wrong", base_url + "static/app.js"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(url)
            assert err.value.code == 403
        token = "?token=" + server.token
        state = json.loads(urllib.request.urlopen(base_url + "api/state" + token).read())
        assert state["pending"] == 8 and [c["key"] for c in state["classes"]][:3] == ["1", "2", "3"]
        q = state["queries"][0]
        png = urllib.request.urlopen(f"{base_url}api/image/{q['image_id']}{token}").read()
        assert png[:4] == b"\x89PNG"
        req = urllib.request.Request(base_url + "api/answer" + token, method="POST",
                                     data=json.dumps({"query_id": q["id"], "label": "sky"}).encode())
        assert "answer_id" in json.loads(urllib.request.urlopen(req).read())
        assert project.queries()[0]["label"] == "sky" and project.answers()[0]["source"] == "web"
        with pytest.raises(urllib.error.HTTPError) as err:  # twice: refused with the reason
            urllib.request.urlopen(urllib.request.Request(req.full_url, data=req.data, method="POST"))
        assert err.value.code == 409 and "already answered" in err.value.read().decode()
    finally:
        server.stop()


def test_predict_writes_full_resolution_masks_and_overlays(project, images, tmp_path):
    answer_all(project, images[1])
    written = project.predict(None, tmp_path / "masks")
    assert len(written) == 5
    for path, truth in images[1].items():
        mask = Image.open(tmp_path / "masks" / Path(path).with_suffix(".png"))
        assert mask.mode == "P" and mask.size == truth.shape[::-1]  # the original size, not the working size
        taught = {c["id"] for c in project.classes() if c["name"] in {a["label"] for a in project.answers()}}
        assert set(np.unique(np.asarray(mask)).tolist()) <= taught  # class ids of answered classes
        overlay = Image.open(tmp_path / "masks" / Path(path).with_name(Path(path).stem + "_overlay.png"))
        assert overlay.size == mask.size and overlay.mode == "RGB"


def test_upsampled_argmax_equals_the_argmax_of_the_enlarged_maps_in_any_number_of_passes():
    import torch
    import torch.nn.functional as F

    scores = np.random.default_rng(0).random((7, 9, 11), dtype=np.float32)
    scores[5] = scores[2]  # a tie: the lower class wins, as numpy's argmax
    full = F.interpolate(torch.from_numpy(scores)[None], size=(40, 23), mode="bilinear", align_corners=False)[0]
    expected = np.argmax(full.numpy(), axis=0)
    for per_pass in (1, 3, 7):
        assert np.array_equal(upsampled_argmax(scores, (40, 23), classes_per_pass=per_pass), expected)
    assert 5 not in upsampled_argmax(scores, (40, 23))


def test_predict_enlarges_probabilities_so_edges_do_not_follow_the_working_grid(project, images, tmp_path):
    answer_all(project, images[1])
    big = tmp_path / "big"
    big.mkdir()
    with Image.open(sample_dataset_dir() / "test" / "0001TP_009420.png") as im:
        im.convert("RGB").resize((512, 512), Image.BILINEAR).save(big / "x4.png")  # 4 x the working size
    project.predict(big, tmp_path / "masks")
    mask = np.asarray(Image.open(tmp_path / "masks" / "x4.png"))
    assert mask.shape == (512, 512)
    blocks = mask.reshape(128, 4, 128, 4).transpose(0, 2, 1, 3).reshape(128, 128, 16)
    mixed = (blocks != blocks[..., :1]).any(axis=-1)
    # a class map enlarged by nearest neighbour is constant on every 4 x 4 block; class edges cross the blocks here
    assert mixed.mean() > 0.005  # 0 exactly for nearest-neighbour; 1.6 % seen
    assert 1 < len(np.unique(mask))


def test_evaluation_scores_images_of_any_size_as_predict_masks_them(project, images, tmp_path):
    """The score is on the labels at their own size, from the masks predict writes, whatever the images' sizes."""
    answer_all(project, images[1])
    src, data = sample_dataset_dir() / "test", tmp_path / "eval"
    data.mkdir()
    names = sorted(p.name[: -len("_label.png")] for p in src.glob("*_label.png"))[:3]
    for name, size in zip(names, [(300, 200), (96, 144), (300, 200)]):  # two sizes, neither the working size
        with Image.open(src / f"{name}.png") as im:
            im.convert("RGB").resize(size, Image.BILINEAR).save(data / f"{name}.png")
        with Image.open(src / f"{name}_label.png") as lab:
            lab.resize(size, Image.NEAREST).save(data / f"{name}_label.png")
    quality = project.evaluate(data)
    project.predict(data, tmp_path / "masks", exclude=["*_label.png"])
    n = len(project.classes())
    cm = sum(confusion_matrix(np.asarray(Image.open(data / f"{name}_label.png")),
                              np.asarray(Image.open(tmp_path / "masks" / f"{name}.png")), n) for name in names)
    assert np.asarray(Image.open(tmp_path / "masks" / f"{names[1]}.png")).shape == (144, 96)
    assert quality["miou"] == pytest.approx(mean_iou(cm), abs=1e-12) and 0 < quality["miou"] < 1


def test_evaluation_reads_its_folder_before_training_the_head(project, images, tmp_path, monkeypatch):
    answer_all(project, images[1])
    trained = []
    monkeypatch.setattr(LabelingProject, "model", lambda self: trained.append(1))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no NAME.EXT / NAME_label.png pairs found"):
        project.evaluate(tmp_path / "empty")
    assert not trained  # a bad folder costs no training


def test_predict_without_answers_says_so(project, tmp_path):
    with pytest.raises(ValueError, match="no answer with a class yet"):
        project.predict(None, tmp_path / "m")


# --------------------------------------------------------------------------- a person in a real browser


def _chromium():
    """Debian's chromium and its driver, or None (Selenium must not download anything)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _screenshot(driver, tmp_path, name):
    """A small PNG of the page; copied into docs/img/ when SKAL_SEG_DOCS_SCREENSHOTS=1 (for docs/labeling.md)."""
    path = tmp_path / name
    driver.save_screenshot(str(path))
    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    if os.environ.get("SKAL_SEG_DOCS_SCREENSHOTS") == "1":
        shutil.copy(path, ROOT / "docs" / "img" / name)
    return path


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium and chromium-driver are not installed "
                    "(apt-get install -y chromium chromium-driver; .ci/run does)")
def test_session_init_query_label_in_a_browser_import_query_predict(project, images, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    truth = images[1]
    browser, driver_path = _chromium()
    options = Options()
    options.binary_location = browser  # the system browser and driver: nothing for Selenium Manager to fetch
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,720",
                "--disable-gpu", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    server = LabelingServer(project).start()
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    wait = WebDriverWait(driver, 30)
    text = lambda css: driver.find_element(By.CSS_SELECTOR, css).text  # noqa: E731
    answered = lambda: int(re.search(r"answered (\d+)", text("#progress")).group(1))  # noqa: E731

    def where():
        m = re.search(r"query (\d+) of \d+: (\S+), pixel \(y=(\d+), x=(\d+)\)", text("#where"))
        return int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))

    def press(key):
        ActionChains(driver).send_keys(key).perform()

    def give(label, by_key):
        n = answered()
        i = CAMVID_CLASSES.index(label) if label != "void" else None
        if by_key and (label == "void" or i < 10):
            press("v" if label == "void" else str((i + 1) % 10))
        else:
            driver.find_element(By.CSS_SELECTOR, f'#classes button[data-label="{label}"]').click()
        wait.until(lambda d: answered() == n + 1)

    try:
        driver.get(server.url.split("?")[0])  # without the token: refused
        assert "missing or wrong token" in driver.find_element(By.TAG_NAME, "body").text
        driver.get(server.url)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#classes button")) == len(CAMVID_CLASSES) + 1)
        wait.until(lambda d: d.execute_script(
            "return Object.values(images).length > 0 && Object.values(images).every(i => i.complete && i.naturalWidth > 0)"))
        assert text("#progress") == "answered 0 / 8 · pending 8"
        _screenshot(driver, tmp_path, "labeling-page.png")

        first = where()
        give(oracle(truth, *first[1:]), by_key=False)  # a click
        second = where()
        assert second[0] == first[0] + 1
        wrong = "sky" if oracle(truth, *second[1:]) != "sky" else "road"
        give(wrong, by_key=True)                    # a slip of the finger ...
        press(Keys.BACKSPACE)                       # ... taken back
        wait.until(lambda d: answered() == 1)
        assert where() == second
        assert len(project.answers()) == 1          # the wrong answer is gone from the database too
        press(Keys.ARROW_RIGHT)                     # arrows move between queries
        assert where()[0] == second[0] + 1
        press(Keys.ARROW_LEFT)
        assert where() == second
        while answered() < 8:
            q = where()
            give(oracle(truth, *q[1:]), by_key=True)
        _screenshot(driver, tmp_path, "labeling-done.png")
        assert "pending 0" in text("#progress")
    finally:
        driver.quit()
        server.stop()

    # the database holds exactly what the person gave, each saved by the page
    for q in project.queries():
        assert q["label"] == oracle(truth, q["path"], q["y"], q["x"])
    assert {a["source"] for a in project.answers()} == {"web"} and len(project.answers()) == 8

    # more answers from another tool, one pixel nobody asked for among them
    csv = tmp_path / "more.csv"
    csv.write_text(f"image,y,x,label\n{SAMPLE[0]}.png,5,7,{oracle(truth, SAMPLE[0] + '.png', 5, 7)}\n")
    report = project.import_answers(csv)
    assert report.added == 1 and len(report.extra) == 1
    new = project.query(4)
    assert len(new) == 4 and project.status()["rounds"][1]["trained_on"] == sum(
        a["label"] != "void" for a in project.answers())
    masks = project.predict(images[0] / "street", tmp_path / "masks")
    assert [m.name for m in masks] == ["wide.png"] and Image.open(masks[0]).size == (96, 144)
