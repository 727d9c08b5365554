"""The active-learning loop end to end on a tiny synthetic dataset with a tiny UNet."""

import dataclasses
import json
from collections import namedtuple

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from PIL import Image

from skal_seg.benchmark import runner
from skal_seg.benchmark.runner import run_experiment, run_full_supervision
from skal_seg.cli import main as cli_main
from skal_seg.data import SegmentationSplit
from skal_seg.engine import features, rounds, settings
from skal_seg.engine.settings import STRATEGIES, ExperimentConfig
from skal_seg.featurizer import DiffusionFeaturizer

shutil_usage = namedtuple("usage", "total used free")



def tiny_unet():
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )


def synthetic_split(n, seed):
    """16x16 images: 3 classes as coloured regions plus noise; a few ignore pixels."""
    rng = np.random.default_rng(seed)
    colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]])
    images, labels = [], []
    for _ in range(n):
        lab = np.zeros((16, 16), dtype=np.uint8)
        lab[:, 8:] = 1
        y0, x0 = rng.integers(0, 10, size=2)
        lab[y0 : y0 + 6, x0 : x0 + 6] = 2
        img = colours[lab] + rng.normal(scale=20, size=(16, 16, 3))
        lab[0, :3] = 255
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        labels.append(lab)
    return SegmentationSplit(np.stack(images), np.stack(labels), tuple(f"img{seed}_{i}" for i in range(n)))


@pytest.fixture(scope="module")
def data():
    return synthetic_split(6, 0), synthetic_split(2, 1)


@pytest.fixture(scope="module")
def featurizer():
    return DiffusionFeaturizer(model=tiny_unet(), timesteps=(10, 50), progress=False).fit()


def config(strategy="two_stage", rounds=3, **kw):
    params = dict(strategy=strategy, seed=0, rounds=rounds, candidates_per_image=40, budget_per_image=1.0,
                  local_budget=6, n_draws=3, classifier={"min_steps": 50, "max_epochs": 2})
    return ExperimentConfig(**{**params, **kw})


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_respects_budgets_and_never_requeries(strategy, data, featurizer, tmp_path):
    pool, test = data
    records = run_experiment(config(strategy), pool, test, tmp_path, featurizer=featurizer, progress=False, log=lambda s: None)
    assert [r["labeled_pixels"] for r in records] == [6, 12, 18]
    state = json.loads((tmp_path / "state.json").read_text())
    assert len(set(state["labeled"])) == 18
    assert len({tuple(p) for p in state["labeled_pixels"]}) == 18
    assert all(0.0 <= r["miou"] <= 1.0 for r in records)
    assert [r["seconds"]["featurize"] > 0 for r in records] == [True, False, False]  # features computed once
    assert (tmp_path / "rounds.csv").read_text().count("\n") == 4


def test_ignore_pixels_cost_budget_but_teach_nothing(data, featurizer, tmp_path):
    pool, test = data
    pool = SegmentationSplit(pool.images, np.full_like(pool.labels, 255), pool.names)
    pool.labels[:, 8, 8] = 0  # one labeled pixel per image; candidates are mostly ignore
    records = run_experiment(config("random", rounds=2, candidates="all"), pool, test, tmp_path, featurizer=featurizer,
                             progress=False, log=lambda s: None)
    assert records[-1]["labeled_pixels"] == 12
    assert records[-1]["taught_pixels"] < 12


def test_resume_gives_the_identical_result(data, featurizer, tmp_path, monkeypatch):
    pool, test = data
    full = run_experiment(config(), pool, test, tmp_path / "a", featurizer=featurizer, progress=False, log=lambda s: None)

    real_evaluate = rounds.evaluate
    calls = {"n": 0}

    def crash_in_round_2(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(runner, "evaluate", crash_in_round_2)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config(), pool, test, tmp_path / "b", featurizer=featurizer, progress=False, log=lambda s: None)
    monkeypatch.setattr(runner, "evaluate", real_evaluate)
    assert len(json.loads((tmp_path / "b" / "state.json").read_text())["records"]) == 2
    resumed = run_experiment(config(), pool, test, tmp_path / "b", featurizer=featurizer, resume=True,
                             progress=False, log=lambda s: None)
    a = json.loads((tmp_path / "a" / "state.json").read_text())
    b = json.loads((tmp_path / "b" / "state.json").read_text())
    assert a["labeled"] == b["labeled"]
    assert [r["miou"] for r in full] == [r["miou"] for r in resumed]


def test_resume_refuses_a_different_config_and_names_the_settings(data, featurizer, tmp_path):
    pool, test = data
    run_experiment(config(rounds=1), pool, test, tmp_path, featurizer=featurizer, progress=False, log=lambda s: None)
    changed = config(rounds=1, local_budget=3, featurizer={"model": "embedded", "timesteps": [10]})
    with pytest.raises(ValueError, match=r"settings differ: featurizer.timesteps \[50, 150, 250\] \(saved\) vs "
                                         r"\[10\] \(now\); local_budget 6 \(saved\) vs 3 \(now\); rerun"):
        run_experiment(changed, pool, test, tmp_path, featurizer=featurizer,
                       resume=True, progress=False, log=lambda s: None)
    with pytest.raises(ValueError, match=r"classes \['sky'"):
        run_experiment(config(rounds=1), pool, test, tmp_path, featurizer=featurizer, resume=True, progress=False,
                       log=lambda s: None, class_names=["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"])


@pytest.mark.parametrize("strategy", ["two_stage", "edald"])
def test_a_finished_run_is_extended_with_the_picks_of_a_longer_run(strategy, data, featurizer, tmp_path):
    pool, test = data
    quiet = dict(featurizer=featurizer, progress=False, log=lambda s: None)
    longer = run_experiment(config(strategy, rounds=3), pool, test, tmp_path / "long", **quiet)
    run_experiment(config(strategy, rounds=2), pool, test, tmp_path / "short", **quiet)
    lines = []
    extended = run_experiment(config(strategy, rounds=3), pool, test, tmp_path / "short", resume=True,
                              **{**quiet, "log": lines.append})
    assert "up to round 2" in lines[0]
    a = json.loads((tmp_path / "long" / "state.json").read_text())
    b = json.loads((tmp_path / "short" / "state.json").read_text())
    assert a["labeled"] == b["labeled"] and len(b["labeled"]) == 18
    assert [r["miou"] for r in longer] == [r["miou"] for r in extended]
    assert b["config"]["rounds"] == 3


def test_a_resumed_round_herds_only_what_an_uninterrupted_round_does(data, featurizer, tmp_path, monkeypatch):
    """The local picks are saved with each round: resuming re-herds only the images labeled since, not all."""
    import skal_seg.query as query_module

    pool, test = data
    quiet = dict(featurizer=featurizer, progress=False, log=lambda s: None)
    calls = []
    real = query_module._seeded_select
    monkeypatch.setattr(query_module, "_seeded_select", lambda *a: calls.append(1) or real(*a))
    run_experiment(config(rounds=2, budget_per_round=2), pool, test, tmp_path / "two", **quiet)
    two_rounds = len(calls)
    run_experiment(config(rounds=3, budget_per_round=2), pool, test, tmp_path / "three", **quiet)
    third_round = len(calls) - two_rounds - two_rounds  # the 3-round run herded the first two rounds alike
    assert (tmp_path / "two" / "local_picks.npz").is_file()
    before = len(calls)
    run_experiment(config(rounds=3, budget_per_round=2), pool, test, tmp_path / "two", resume=True, **quiet)
    assert 0 < len(calls) - before == third_round < len(pool)  # 2 labels a round: at most 2 images to herd again, not all
    resumed = json.loads((tmp_path / "two" / "state.json").read_text())
    assert resumed["labeled"] == json.loads((tmp_path / "three" / "state.json").read_text())["labeled"]


def test_herding_memory_reaches_the_samplers_and_a_resumed_run_may_change_it(data, featurizer, tmp_path):
    from skal_seg.engine.rounds import two_stage_query

    assert two_stage_query(config()).herding.max_memory_mb == "auto"
    query = two_stage_query(config("two_stage_uherding", herding_memory_mb=64))
    assert query.herding.max_memory_mb == 64 and query.uncertainty.max_memory_mb == 64
    for bad in (-1, 0, "lots"):
        with pytest.raises(ValueError, match="herding_memory_mb"):
            config(herding_memory_mb=bad).validate()
    pool, test = data
    quiet = dict(featurizer=featurizer, progress=False, log=lambda s: None)
    run_experiment(config(rounds=2), pool, test, tmp_path / "a", **quiet)
    run_experiment(config(rounds=1, herding_memory_mb=1), pool, test, tmp_path / "b", **quiet)
    run_experiment(config(rounds=2), pool, test, tmp_path / "b", resume=True, **quiet)  # speed only: not refused
    a, b = (json.loads((tmp_path / d / "state.json").read_text()) for d in "ab")
    assert a["labeled"] == b["labeled"]


def test_budget_per_round_replaces_the_per_image_rate(data, featurizer, tmp_path):
    pool, test = data
    assert config(budget_per_round=4).budget(len(pool)) == 4 and config().budget(len(pool)) == 6
    records = run_experiment(config("random", rounds=2, budget_per_round=4), pool, test, tmp_path, **dict(
        featurizer=featurizer, progress=False, log=lambda s: None))
    assert [r["labeled_pixels"] for r in records] == [4, 8]
    with pytest.raises(ValueError, match="budget_per_round"):
        config(budget_per_round=0).validate()


def test_class_names_name_the_table_columns(data, featurizer, tmp_path):
    pool, test = data
    run_experiment(config("random", rounds=1), pool, test, tmp_path, featurizer=featurizer, progress=False,
                   log=lambda s: None, n_classes=3, class_names=["road", "grass", "car"])
    header = (tmp_path / "rounds.csv").read_text().splitlines()[0]
    assert "iou_road,iou_grass,iou_car" in header
    assert json.loads((tmp_path / "state.json").read_text())["classes"] == ["road", "grass", "car"]


def test_miou_matches_hand_computed_confusion(data, featurizer, tmp_path):
    pool, test = data

    class Constant:
        def predict(self, X):
            return np.ones(len(X), dtype=np.int64)  # predicts class 1 everywhere

    cm = rounds.evaluate(Constant(), featurizer, test, features.FeatureCache(None), 3)
    t = test.labels.reshape(-1)
    t = t[t != 255]
    expected = np.zeros((3, 3), dtype=np.int64)
    for c in range(3):
        expected[c, 1] = np.sum(t == c)
    np.testing.assert_array_equal(cm, expected)


def test_strided_evaluation_scores_the_pixel_grid(data, featurizer):
    _, test = data
    Xs = []

    class ByFeature:  # predicts from the features, and keeps them for the check below
        def predict(self, X):
            Xs.append(np.asarray(X, dtype=np.float32))
            return (np.asarray(X[:, 0], dtype=np.float32) > 0).astype(np.int64)

    cm = rounds.evaluate(ByFeature(), featurizer, test, features.FeatureCache(None), 3, batch_images=2, stride=2)
    dense = featurizer.transform(test.images).astype(np.float16).astype(np.float32)
    h, w = test.labels.shape[1:]
    grid = (np.arange(0, h, 2)[:, None] * w + np.arange(0, w, 2)[None, :]).reshape(-1)
    n = len(test)
    expected_X = dense.reshape(n, h * w, -1)[:, grid].reshape(n * len(grid), -1)
    np.testing.assert_allclose(np.concatenate(Xs), expected_X, atol=2e-3)  # same pixels as dense, up to float16
    labels = test.labels.reshape(n, -1)[:, grid].reshape(-1)
    pred = (np.concatenate(Xs)[:, 0] > 0).astype(np.int64)
    keep = labels != 255
    expected = np.zeros((3, 3), dtype=np.int64)
    np.add.at(expected, (labels[keep], pred[keep]), 1)
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == np.sum(labels != 255) < np.sum(test.labels != 255)


def test_full_supervision_reference(data, featurizer, tmp_path):
    pool, test = data
    res = run_full_supervision(config(), pool, test, tmp_path / "fs.json", featurizer=featurizer, progress=False)
    assert res["taught_pixels"] > 200 and 0 < res["miou"] <= 1
    void = SegmentationSplit(pool.images, np.full_like(pool.labels, 255), pool.names)
    for candidates, why in (("all", "all 240 candidates are labeled 255"), ("valid", "no candidates: every pixel")):
        with pytest.raises(ValueError, match=f"no candidate pixel of the pool carries a class \\({why}"):
            run_full_supervision(config(candidates=candidates), void, test, tmp_path / "void.json",
                                 featurizer=featurizer, progress=False)
    assert not (tmp_path / "void.json").exists()


def test_noisy_rows_all_forwards_each_image_once_and_picks_what_stage2_picks(data, featurizer, tmp_path,
                                                                             monkeypatch):
    pool, test = data
    forwarded = []  # images in each noisy forward
    real_run = DiffusionFeaturizer._run

    def counting(self, imgs, jobs, noises, out, desc):
        if len(noises) > 1:
            forwarded.append(len(imgs))
        return real_run(self, imgs, jobs, noises, out, desc)

    monkeypatch.setattr(DiffusionFeaturizer, "_run", counting)
    runs = {}
    for mode in ("stage2", "all"):
        forwarded.clear()
        records = run_experiment(config(rounds=4, noisy_rows=mode), pool, test, tmp_path / mode,
                                 featurizer=featurizer, progress=False)
        state = json.loads((tmp_path / mode / "state.json").read_text())
        runs[mode] = ([r["miou"] for r in records], state["labeled"], sum(forwarded))
    assert runs["all"][:2] == runs["stage2"][:2]  # the same picks and scores
    assert runs["all"][2] == len(pool) < runs["stage2"][2]  # stage2 forwards the labeled images again
    with pytest.raises(ValueError, match="unknown noisy_rows 'some'"):
        config(noisy_rows="some").validate()
    # a resume may change it (speed and storage only)
    run_experiment(config(rounds=5, noisy_rows="all"), pool, test, tmp_path / "stage2", featurizer=featurizer,
                   progress=False, resume=True)


def test_a_resumed_full_supervision_reuses_only_a_result_of_the_same_data_and_settings(data, featurizer, tmp_path,
                                                                                        monkeypatch):
    pool, test = data
    trained = []
    real_train = runner.train_classifier
    monkeypatch.setattr(runner, "train_classifier", lambda *a, **kw: trained.append(1) or real_train(*a, **kw))
    out, kw = tmp_path / "fs.json", dict(featurizer=featurizer, progress=False, log=lambda line: None)
    first = run_full_supervision(config(), pool, test, out, **kw)
    assert len(trained) == 1 and json.loads(out.read_text()) == first
    # another strategy's settings (the ceiling does not depend on them): the saved result, nothing trained
    again = run_full_supervision(config(strategy="maxherding", local_budget=3, rounds=7), pool, test, out,
                                 resume=True, **kw)
    assert again == first and len(trained) == 1
    # what the ceiling depends on: computed again
    for changed in (dict(config=config(seed=1)), dict(config=config(candidates_per_image=30)),
                    dict(test=test.subset([0])), dict(resume=False)):
        run_full_supervision(changed.get("config", config()), pool, changed.get("test", test), out,
                             resume=changed.get("resume", True), **kw)
        run_full_supervision(config(), pool, test, out, resume=True, **kw)  # and back: computed again too
    assert len(trained) == 1 + 2 * 4 - 1  # the last "back" after resume=False found its own result


@pytest.mark.parametrize("kw, match", [
    ({"strategy": "coreset"}, "unknown strategy"),
    ({"budget_per_image": 100.0}, "exceed"),
    ({"candidates_per_image": 1000}, "exceeds"),
    ({"keep_global": 0.0}, "keep_global"),
    ({"entropy_weight": -1.0}, "entropy_weight"),
    ({"bandwidth": "median"}, "bandwidth"),
    ({"bandwidth": 0.0}, "bandwidth"),
    ({"candidates": "labeled"}, "unknown candidates"),
    ({"mi": "code"}, "unknown mi"),
    ({"uherding_temperature": 0.0}, "uherding_temperature"),
    ({"uherding_bandwidth": "median"}, "uherding_bandwidth"),
])
def test_bad_settings_raise(kw, match, data, featurizer, tmp_path):
    pool, test = data
    with pytest.raises(ValueError, match=match):
        run_experiment(config(**kw), pool, test, tmp_path, featurizer=featurizer, progress=False, log=lambda s: None)


def test_budget_stage1_cannot_keep_fails_before_any_work(data, tmp_path, monkeypatch):
    # 6 images x local_budget 6 = 36 local picks; rounds after the first keep 0.5 x 36 = 18 < 24 per round.
    pool, test = data

    def no_work(*args, **kwargs):
        raise AssertionError("featurized before refusing the settings")

    monkeypatch.setattr(runner, "fitted_featurizer", no_work)
    with pytest.raises(ValueError, match=r"two_stage cannot query 24 pixels in round 1: stage 1 may keep only 18 "
                       r"candidates then \(keep_global 0.5 x 36 local picks.*budget_per_image to 3 or less "
                       r"\(18 pixels per round\), raise local_budget to 8, raise keep_global to 0.66 or run at most 1 round"):
        run_experiment(config(budget_per_image=4.0, rounds=2), pool, test, tmp_path, progress=False, log=print)
    with pytest.raises(ValueError, match=r"in round 0: stage 1 may keep only 18 candidates then \(18 local picks"):
        run_experiment(config(budget_per_image=4.0, local_budget=3), pool, test, tmp_path, progress=False, log=print)
    assert not (tmp_path / "state.json").exists()


def test_validate_for_pool_takes_every_round_at_its_worst():
    issue = ExperimentConfig(budget_per_image=15, candidates_per_image=500, local_budget=20, rounds=2)
    with pytest.raises(ValueError, match="cannot query 180 pixels in round 1: .* only 120 candidates"):
        issue.validate_for_pool(12)  # the sample's 12 pool images
    ExperimentConfig(budget_per_image=10, candidates_per_image=500, local_budget=20, rounds=2).validate_for_pool(12)
    ExperimentConfig(budget_per_image=15, candidates_per_image=500, local_budget=20, rounds=2,
                     strategy="maxherding").validate_for_pool(12)  # keeps every local pick: 240 >= 180
    # 8 candidates per image, at most 5 labeled per image per round: after 7 rounds of 12 pixels, 10 images
    # can be emptied and one left with 4 candidates, so the local stage may find only 5 + 4 = 9 < 12.
    tight = ExperimentConfig(strategy="maxherding", budget_per_image=1, candidates_per_image=8, local_budget=5, rounds=8)
    with pytest.raises(ValueError, match="in round 7: stage 1 may keep only 9 candidates .* fewer where the 84 pixels"):
        tight.validate_for_pool(12)
    dataclasses.replace(tight, rounds=7).validate_for_pool(12)
    with pytest.raises(ValueError, match="exceed the 96 candidate pixels .* run at most 8 rounds"):
        dataclasses.replace(tight, strategy="random", rounds=9).validate_for_pool(12)
    with pytest.raises(ValueError, match="at least one image"):
        issue.validate_for_pool(0)


@pytest.mark.parametrize("strategy, kw", [
    ("two_stage", dict(budget_per_image=3.0, rounds=2)),  # the largest budget the check allows: 18 of 18 kept
    ("maxherding", dict(candidates_per_image=6, local_budget=4, budget_per_image=1.7, rounds=3)),  # labels eat picks
])
def test_settings_that_pass_the_check_never_come_up_short(strategy, kw, data, featurizer, tmp_path):
    pool, test = data
    cfg = config(strategy, **kw)
    cfg.validate_for_pool(len(pool))
    records = run_experiment(cfg, pool, test, tmp_path, featurizer=featurizer, progress=False, log=lambda s: None)
    budget = cfg.budget(len(pool))
    assert [r["labeled_pixels"] for r in records] == [budget * (r + 1) for r in range(cfg.rounds)]


def _write_dataset(root, pool, test):
    for name, split in (("train", pool), ("test", test)):
        (root / name).mkdir(parents=True)
        for img, lab, n in zip(split.images, split.labels, split.names):
            Image.fromarray(img).save(root / name / f"{n}.png")
            Image.fromarray(lab).save(root / name / f"{n}_label.png")


def test_cli_runs_writes_results_and_resumes(data, tmp_path, capsys):
    pool, test = data
    _write_dataset(tmp_path / "ds", pool, test)
    tiny_unet().save_pretrained(tmp_path / "unet")
    args = ["run", "--data", str(tmp_path / "ds"), "--model", str(tmp_path / "unet"), "--size", "16",
            "--strategies", "two_stage", "random", "--rounds", "2", "--candidates-per-image", "30",
            "--budget-per-image", "1", "--local-budget", "5", "--n-draws", "2", "--timesteps", "10", "50",
            "--val-fraction", "0", "--full-supervision", "--bandwidth", "0.8", "--out", str(tmp_path / "res"), "--quiet"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "round  1" in out and "mIoU" in out
    assert "classes (11): 0:sky,1:building," in out and "(from CamVid's 11 classes (the default: no classes.txt" in out
    res = tmp_path / "res"
    for f in ("miou.png", "two_stage/seed0/rounds.csv", "two_stage/seed0/rounds.json",
              "two_stage/seed0/queried_pixels.png", "random/seed0/rounds.csv", "full_supervision/seed0.json"):
        assert (res / f).exists(), f
    assert cli_main(args + ["--resume", "--rounds", "3"]) == 0  # a finished run is extended
    assert "up to round 2" in capsys.readouterr().out
    recs = json.loads((res / "two_stage" / "seed0" / "rounds.json").read_text())
    assert recs[0]["settings"]["bandwidth"] == 0.8
    assert cli_main(["report", str(res)]) == 0
    report = capsys.readouterr().out
    assert report == (res / "summary.md").read_text()
    assert f"| two_stage (1 seed) | {recs[0]['miou']:.4f} | {recs[1]['miou']:.4f} |" in report  # no spread of one run


def test_one_invocation_featurizes_the_test_split_once(data, tmp_path, monkeypatch):
    """2 strategies x 2 seeds share one feature cache: each test image is featurized once."""
    pool, test = data
    _write_dataset(tmp_path / "ds", pool, test)
    tiny_unet().save_pretrained(tmp_path / "unet")
    featurized = []
    real = DiffusionFeaturizer.transform

    def counting(self, images, pixels=None):
        featurized.extend(np.asarray(images).reshape(len(images), -1).sum(1).tolist())  # one entry per image
        return real(self, images, pixels=pixels)

    monkeypatch.setattr(DiffusionFeaturizer, "transform", counting)
    args = ["run", "--data", str(tmp_path / "ds"), "--model", str(tmp_path / "unet"), "--size", "16",
            "--strategies", "random", "entropy", "--seeds", "0", "1", "--rounds", "2", "--candidates-per-image", "30",
            "--budget-per-image", "1", "--timesteps", "10", "--val-fraction", "0", "--cache", "none",
            "--out", str(tmp_path / "res"), "--quiet"]
    assert cli_main(args) == 0
    for image in test.images:  # without a disk cache too: in memory for the whole invocation
        assert featurized.count(int(image.astype(np.int64).sum())) == 1


def test_cli_refuses_settings_before_any_run(data, tmp_path):
    pool, test = data
    _write_dataset(tmp_path / "ds", pool, test)
    args = ["run", "--data", str(tmp_path / "ds"), "--model", str(tmp_path / "no-model-needed-yet"), "--size", "16",
            "--strategies", "random", "two_stage", "--rounds", "2", "--candidates-per-image", "40",
            "--budget-per-image", "4", "--local-budget", "6", "--val-fraction", "0", "--out", str(tmp_path / "res"),
            "--quiet"]
    with pytest.raises(SystemExit, match="two_stage cannot query 24 pixels in round 1: .* lower --budget-per-image "
                       "to 3 or less .* raise --local-budget to 8, raise --keep-global to 0.66 or run at most 1 round"):
        cli_main(args)
    assert not (tmp_path / "res").exists()  # not even 'random' ran


def test_markdown_summary_means_and_spreads_over_seeds(tmp_path):
    from skal_seg.benchmark.plotting import markdown_summary

    def write(strategy, seed, mious, secs):
        recs = [{"round": r, "labeled_pixels": 10 * (r + 1), "miou": m, "strategy": strategy, "seed": seed,
                 "seconds": {"featurize": 100.0, "train": secs, "evaluate": 1.0}} for r, m in enumerate(mious)]
        d = tmp_path / strategy / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "rounds.json").write_text(json.dumps(recs))

    write("random", 0, [0.1, 0.2, 0.3], 2.0)
    write("random", 1, [0.3, 0.4, 0.5], 4.0)
    write("two_stage", 0, [0.2, 0.3], 6.0)  # an unfinished run: two rounds only
    (tmp_path / "full_supervision").mkdir()
    (tmp_path / "full_supervision" / "seed0.json").write_text(json.dumps({"miou": 0.6}))
    text = markdown_summary(tmp_path)
    assert "| random (2 seeds) | 0.2000 ± 0.1000 | 0.3000 ± 0.1000 | 0.4000 ± 0.1000 |" in text
    assert "| two_stage (1 seed) | 0.2000 | 0.3000 |  |" in text  # one seed: no '± 0.0000'
    assert "mean ± standard deviation over seeds" in text
    assert "r2 (30 px)" in text and "Full supervision (every candidate pixel, 1 seed): mIoU 0.6000\n" in text
    assert "| random | 4.0 | 1.0 | 3.0 |" in text  # rounds 1..: train mean 3.0 + evaluate 1.0
    with pytest.raises(FileNotFoundError):
        markdown_summary(tmp_path / "empty")


def test_markdown_summary_marks_rounds_won_and_lost_against_random(tmp_path):
    from skal_seg.benchmark.plotting import markdown_summary

    def write(strategy, seed, mious):
        recs = [{"round": r, "labeled_pixels": 10 * (r + 1), "miou": m, "strategy": strategy, "seed": seed,
                 "seconds": {"train": 1.0}} for r, m in enumerate(mious)]
        d = tmp_path / strategy / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "rounds.json").write_text(json.dumps(recs))

    write("random", 0, [0.1, 0.2, 0.3])  # std 0.0816 at every round
    write("random", 1, [0.3, 0.4, 0.5])
    write("random", 2, [0.2, 0.3, 0.4])
    write("two_stage", 0, [0.35, 0.15, 0.4])  # +0.2 (> 0.08), -0.15 (< -0.08), +0.05 (within the spread)
    write("two_stage", 1, [0.45, 0.15, 0.5])
    write("two_stage", 2, [0.4, 0.15, 0.45])
    write("entropy", 0, [0.9, 0.9, 0.9])  # one seed: no spread, left out of the comparison
    write("entropy", 1, [0.9, 0.9, 0.9])  # two seeds: still too few for a claim
    text = markdown_summary(tmp_path)
    assert "| two_stage | +0.2000 ▲ | -0.1500 ▼ | +0.0500 |" in text
    assert "| some strategy ▲ | yes | no | no |" in text
    assert "| entropy | +" not in text and "No claim" not in text
    for seed in (1, 2):  # two seeds of each: no marks, and the report says why
        (tmp_path / "two_stage" / f"seed{seed}" / "rounds.json").unlink()
        (tmp_path / "two_stage" / f"seed{seed}").rmdir()
    write("two_stage", 1, [0.45, 0.15, 0.5])
    text = markdown_summary(tmp_path)
    assert "some strategy" not in text and "▲" not in text
    assert ("No claim of doing better or worse than random: that needs 3 or more seeds of random and of a strategy "
            "(seeds here: random 3, entropy 2, two_stage 2).") in text


def test_markdown_summary_names_a_class_a_strategy_ahead_on_miou_has_given_up(tmp_path):
    """DRIVE's case: a head predicting background nearly everywhere beats random on mIoU, not on vessels."""
    from skal_seg.benchmark.plotting import markdown_summary

    def write(strategy, seed, last_iou):
        recs = [{"round": r, "labeled_pixels": 20 * (r + 1), "miou": float(np.mean([v for v in last_iou if v is not None])),
                 "strategy": strategy,
                 "seed": seed, "seconds": {"train": 1.0}, "iou": last_iou} for r in range(2)]
        d = tmp_path / strategy / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "rounds.json").write_text(json.dumps(recs))

    for seed in range(3):
        write("random", seed, [0.60, 0.15, None])  # the third class is never present
        write("uherding", seed, [0.80, 0.03, None])  # higher mIoU, vessels given up
        write("maxherding", seed, [0.62, 0.10, None])  # two thirds of random's: not given up
    text = markdown_summary(tmp_path)
    assert "| uherding | +0.0400 ▲ | +0.0400 ▲ |" in text
    assert ("uherding at r1 scores under half of random's IoU on class 1 0.030 against 0.150: its head has nearly "
            "given up these classes, whatever its mIoU.") in text
    assert "maxherding at r1 scores" not in text and "random at r1 scores" not in text


def test_cli_errors_are_clear(tmp_path, capsys):
    with pytest.raises(SystemExit, match="not found"):
        cli_main(["run", "--data", str(tmp_path / "nope"), "--quiet"])
    for bad in ("-1", "nan", "wide"):
        with pytest.raises(SystemExit):
            cli_main(["run", "--bandwidth", bad, "--quiet"])
        assert "expected 'auto' or a positive number" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown strategies"):
        cli_main(["run", "--strategies", "coreset", "--quiet"])


def test_all_ignore_labels_give_nan_not_a_fake_score(data, featurizer, tmp_path):
    pool, test = data
    pool = SegmentationSplit(pool.images, np.full_like(pool.labels, 255), pool.names)
    lines = []
    records = run_experiment(config("random", rounds=1, candidates="all"), pool, test, tmp_path, featurizer=featurizer,
                             progress=False, log=lines.append)
    assert np.isnan(records[0]["miou"]) and records[0]["taught_pixels"] == 0
    assert any("undefined" in line for line in lines)


def test_resume_refuses_other_images(data, featurizer, tmp_path):
    pool, test = data
    run_experiment(config(rounds=1), pool, test, tmp_path, featurizer=featurizer, progress=False, log=lambda s: None)
    with pytest.raises(ValueError, match="other pool/test images"):
        run_experiment(config(rounds=1), pool.subset([0, 1, 2, 3, 4]), test, tmp_path, featurizer=featurizer,
                       resume=True, progress=False, log=lambda s: None)


def test_features_are_shared_across_seeds_and_strategies(data, featurizer, tmp_path):
    pool, test = data
    cache = tmp_path / "cache"
    for seed, strategy in [(0, "bald"), (1, "edald")]:
        run_experiment(config(strategy=strategy, seed=seed, rounds=2), pool, test, tmp_path / f"{strategy}{seed}",
                       featurizer=featurizer, cache_dir=cache, progress=False, log=lambda s: None)
    assert len(list(cache.glob("pool-*.npy"))) == 1
    assert len([d for d in cache.glob("noisy-*") if d.is_dir()]) == 1
    first = json.loads((tmp_path / "bald0" / "rounds.json").read_text())[1]["seconds"]["noisy_features"]
    second = json.loads((tmp_path / "edald1" / "rounds.json").read_text())[1]["seconds"]["noisy_features"]
    assert second < 0.01 * first  # read back, not featurized again
    other = config(strategy="bald", seed=0, rounds=1, feature_seed=3)
    run_experiment(other, pool, test, tmp_path / "fs3", featurizer=featurizer, cache_dir=cache, progress=False,
                   log=lambda s: None)
    assert len(list(cache.glob("pool-*.npy"))) == 2


def uneven_split(pool):
    """Image 0: its usual few ignore pixels; image 1: 5 valid pixels; image 2: none."""
    labels = pool.labels.copy()
    labels[1] = 255
    labels[1].reshape(-1)[[3, 50, 100, 150, 200]] = 1
    labels[2] = 255
    return SegmentationSplit(pool.images, labels, pool.names)


def test_valid_candidates_skip_ignore_pixels_and_take_all_of_a_sparse_image(data):
    pool = uneven_split(data[0])
    valid = features.candidate_pixels(pool, 40, seed=0)
    assert [len(p) for p in valid] == [40, 5, 0, 40, 40, 40]
    for lab, p in zip(pool.labels, valid):
        assert (lab.reshape(-1)[p] != 255).all() and len(np.unique(p)) == len(p)
    assert valid[1].tolist() == [3, 50, 100, 150, 200]
    every = features.candidate_pixels(pool, 40, seed=0, candidates="all")
    assert [len(p) for p in every] == [40] * 6
    assert any((lab.reshape(-1)[p] == 255).any() for lab, p in zip(pool.labels, every))
    rng = np.random.default_rng([0, 7])  # "all" draws exactly what it drew before "valid" existed
    assert all(np.array_equal(p, np.sort(rng.choice(256, 40, replace=False))) for p in every)
    with pytest.raises(ValueError, match="unknown candidates"):
        features.candidate_pixels(pool, 40, seed=0, candidates="some")


@pytest.mark.parametrize("strategy", ["two_stage", "uherding", "two_stage_uherding", "edald"])
def test_valid_candidates_with_uneven_images_never_query_void(strategy, data, featurizer, tmp_path):
    pool, test = data
    fitted = {"uherding_temperature": "auto"} if strategy == "uherding" else {}  # the paper's rule; else 0.5
    records = run_experiment(config(strategy, rounds=2, **fitted), uneven_split(pool), test, tmp_path,
                             featurizer=featurizer, progress=False, log=lambda s: None)
    assert [r["taught_pixels"] for r in records] == [r["labeled_pixels"] for r in records] == [6, 12]
    if strategy == "uherding":
        assert np.isnan(records[0]["temperature"]) and records[1]["temperature"] >= 1.0
    elif strategy == "two_stage_uherding":
        assert np.isnan(records[0]["temperature"]) and records[1]["temperature"] == 0.5


def test_random_first_rounds_label_the_same_pixels(data, featurizer, tmp_path):
    pool, test = data
    labeled = {}
    for s in settings.RANDOM_FIRST_ROUND:
        run_experiment(config(s, rounds=1), pool, test, tmp_path / s / "seed0", featurizer=featurizer,
                       progress=False, log=lambda s: None)
        labeled[s] = json.loads((tmp_path / s / "seed0" / "state.json").read_text())["labeled"]
    assert all(v == labeled["random"] for v in labeled.values())
    from skal_seg.benchmark.plotting import markdown_summary

    text = markdown_summary(tmp_path)
    assert "| entropy (1 seed, r0 random) |" in text and "| random (1 seed) |" in text and "r0 random: round 0 of" in text
    # per-class IoU of the last round, and the labels per class read from the run's project
    state = json.loads((tmp_path / "random" / "seed0" / "state.json").read_text())
    iou = state["records"][-1]["iou"]
    assert "| random | r0 | " + " | ".join("-" if v is None else f"{v:.3f}" for v in iou) + " |" in text
    index = {name: i for i, name in enumerate(pool.names)}
    truth = np.array([pool.labels[index[name]].flat[p] for name, p in state["labeled_pixels"]])
    shares = [f"{100 * np.mean(truth == c):.1f}" for c in range(len(iou))] + [f"{100 * np.mean(truth == 255):.1f}"]
    assert f"| random | {len(truth)} | " + " | ".join(shares) + " |" in text


def test_runs_saved_before_candidates_existed_resume_as_all(data, featurizer, tmp_path):
    pool, test = data
    run_experiment(config(rounds=1, candidates="all"), pool, test, tmp_path, featurizer=featurizer,
                   progress=False, log=lambda s: None)
    state = json.loads((tmp_path / "state.json").read_text())
    del state["config"]["candidates"]  # as written before the setting existed, when every pixel was a candidate
    (tmp_path / "state.json").write_text(json.dumps(state))
    run_experiment(config(rounds=1, candidates="all"), pool, test, tmp_path, featurizer=featurizer, resume=True,
                   progress=False, log=lambda s: None)
    with pytest.raises(ValueError, match=r"candidates 'all' \(saved\) vs 'valid' \(now\)"):
        run_experiment(config(rounds=1, candidates="valid"), pool, test, tmp_path, featurizer=featurizer,
                       resume=True, progress=False, log=lambda s: None)


@pytest.mark.parametrize("strategy", ["two_stage", "entropy", "edald"])
def test_small_blocks_give_the_same_run(strategy, data, featurizer, tmp_path, monkeypatch):
    """Features written, read and scored a few rows at a time: the same features, picks and mIoU."""
    pool, test = data
    runs = {}
    for name, block_bytes in (("default", features.BLOCK_BYTES), ("small", 2 * featurizer.n_features_out_ * 7)):
        monkeypatch.setattr(features, "BLOCK_BYTES", block_bytes)
        if name == "small":
            assert len(features.pool_image_blocks(featurizer, [40] * len(pool))) > 1
        records = run_experiment(config(strategy), pool, test, tmp_path / name, featurizer=featurizer,
                                 cache_dir=tmp_path / f"cache-{name}", progress=False, log=lambda s: None)
        state = json.loads((tmp_path / name / "state.json").read_text())
        pool_matrix = np.load(next((tmp_path / f"cache-{name}").glob("pool-*.npy")))
        runs[name] = (state["labeled"], [r["miou"] for r in records], pool_matrix)
    assert runs["small"][0] == runs["default"][0]
    assert runs["small"][1] == runs["default"][1]
    np.testing.assert_array_equal(runs["small"][2], runs["default"][2])


def test_cache_larger_than_the_disk_is_refused_before_any_work(data, featurizer, tmp_path, monkeypatch):
    pool, test = data
    free = 1000  # bytes: less than 6 images x 40 candidates x D x 2
    monkeypatch.setattr(features.shutil, "disk_usage", lambda path: shutil_usage(total=10**9, used=10**9 - free, free=free))
    lines = []
    with pytest.raises(ValueError, match=r"feature cache needs up to .* GB .* has 0\.00 GB free; free disk space"):
        run_experiment(config("two_stage"), pool, test, tmp_path / "run", featurizer=featurizer,
                       cache_dir=tmp_path / "cache", progress=False, log=lines.append)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())  # nothing computed
    assert lines and "GB to write (pool" in lines[0] and "noisy" in lines[0]
    # the same run fits once the disk is large enough
    monkeypatch.setattr(features.shutil, "disk_usage", lambda path: shutil_usage(total=10**12, used=0, free=10**12))
    run_experiment(config("two_stage", rounds=1), pool, test, tmp_path / "run", featurizer=featurizer,
                   cache_dir=tmp_path / "cache", progress=False, log=lines.append)
    # a second run on the same pool writes nothing new to the pool or noisy files
    needs = features.cache_needs(config("two_stage"), featurizer, pool,
                            features.candidate_pixels(pool, 40, 0), test, tmp_path / "cache")
    assert needs["pool"] == 0 and needs["evaluation"] == 0
