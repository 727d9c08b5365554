"""Choosing the features (diffusion, filter bank, both) and the head (MLP, random forest, any estimator)."""

import json

import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from test_experiment import _write_dataset, synthetic_split, tiny_unet

from skal_seg.benchmark.runner import run_experiment, run_full_supervision
from skal_seg.cli import main as cli_main
from skal_seg.concat import ConcatFeaturizer
from skal_seg.engine.features import featurizer_key, fitted_featurizer
from skal_seg.engine.rounds import make_head
from skal_seg.engine.settings import ExperimentConfig, features_and_model
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.filter_bank import FilterBankFeaturizer


@pytest.fixture(scope="module")
def data():
    return synthetic_split(6, 0), synthetic_split(2, 1)


def config(**kw):
    params = dict(strategy="random", rounds=2, candidates_per_image=40, budget_per_image=1.0, local_budget=6,
                  n_draws=2, features="filters", filter_bank={"sigmas": [1.0, 2.0]},
                  featurizer={"model": "embedded", "timesteps": [50]}, classifier={"n_estimators": 10}, head="forest")
    return ExperimentConfig(**{**params, **kw})


def test_settings_refuse_what_cannot_run():
    with pytest.raises(ValueError, match=r"two_stage needs noisy diffusion draws.*--features embedded\+filters"):
        config(strategy="two_stage").validate()
    with pytest.raises(ValueError, match="unknown features 'sift'"):
        config(features="sift").validate()
    with pytest.raises(ValueError, match="unknown head 'svm'"):
        config(head="svm").validate()
    config(strategy="maxherding").validate()  # needs no noisy draws


def test_command_line_words_map_to_settings():
    assert features_and_model(None, "embedded") == ("diffusion", "embedded")
    assert features_and_model("filters", "embedded") == ("filters", "embedded")
    assert features_and_model("embedded+filters", "embedded") == ("diffusion+filters", "embedded")
    assert features_and_model("models/drive+filters", "embedded") == ("diffusion+filters", "models/drive")
    with pytest.raises(ValueError, match="two diffusion models"):
        features_and_model("models/a", "models/b")


def test_the_filter_bank_is_fitted_on_the_pool_and_its_key_says_on_what(data):
    pool, test = data
    one = fitted_featurizer(config(), None, progress=False, images=pool.images)
    other = fitted_featurizer(config(), None, progress=False, images=test.images)
    assert isinstance(one, FilterBankFeaturizer) and one.n_fit_pixels_ == pool.images[..., 0].size
    assert featurizer_key(one) != featurizer_key(other)  # other statistics, other features: never a stale cache
    assert featurizer_key(one) == featurizer_key(fitted_featurizer(config(), None, False, images=pool.images))
    both = fitted_featurizer(config(features="diffusion+filters", featurizer={"model": tiny_unet(), "timesteps": [10]}),
                             None, progress=False, images=pool.images)
    assert isinstance(both, ConcatFeaturizer) and "diffusion__timesteps" in featurizer_key(both)


def test_heads(data):
    assert isinstance(make_head(config(), 3), RandomForestClassifier) and make_head(config(), 3).random_state == 3
    template = make_head(config(), 7, template=LogisticRegression(max_iter=200))
    assert isinstance(template, LogisticRegression) and template.random_state == 7


def test_a_run_with_the_filter_bank_and_a_forest(data, tmp_path):
    pool, test = data
    quiet = dict(progress=False, log=lambda s: None)
    records = run_experiment(config(), pool, test, tmp_path / "forest", **quiet)
    assert len(records) == 2 and 0 < records[-1]["miou"] <= 1
    state = json.loads((tmp_path / "forest" / "state.json").read_text())
    assert state["config"]["features"] == "filters" and state["config"]["head"] == "forest"
    full = run_full_supervision(config(), pool, test, tmp_path / "full.json", progress=False)
    assert full["miou"] >= records[-1]["miou"] - 0.2
    # any scikit-learn classifier, and a herding strategy on the filter bank
    records = run_experiment(config(strategy="maxherding"), pool, test, tmp_path / "logreg",
                             head=LogisticRegression(max_iter=300), **quiet)
    assert len(records) == 2


def test_two_stage_on_combined_features_reads_the_diffusion_draws(data, tmp_path):
    pool, test = data
    cfg = config(strategy="two_stage", features="diffusion+filters", head="mlp",
                 classifier={"min_steps": 20, "max_epochs": 2})
    featurizer = fitted_featurizer(cfg, ConcatFeaturizer([
        ("diffusion", DiffusionFeaturizer(model=tiny_unet(), timesteps=(10,))),
        ("filterbank", FilterBankFeaturizer(sigmas=(1.0,)))]), progress=False, images=pool.images)
    records = run_experiment(cfg, pool, test, tmp_path / "both", featurizer=featurizer, progress=False,
                             log=lambda s: None)
    assert "noisy_features" in records[1]["seconds"]


def test_the_command_line_refuses_filters_with_two_stage_before_any_work(data, tmp_path, capsys):
    pool, test = data
    _write_dataset(tmp_path / "ds", pool, test)
    with pytest.raises(SystemExit, match=r"two_stage needs noisy diffusion draws"):
        cli_main(["run", "--data", str(tmp_path / "ds"), "--features", "filters", "--strategies", "two_stage",
                  "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_padding_and_input_size_are_in_the_cache_key_only_when_used(data, tmp_path, run_config):
    unpadded = featurizer_key(DiffusionFeaturizer(model="embedded"))
    assert "pad" not in unpadded and "input_size" not in unpadded  # caches written before the options keep their keys
    assert featurizer_key(DiffusionFeaturizer(model="embedded", pad=8)) == {**unpadded, "pad": 8}
    assert featurizer_key(DiffusionFeaturizer(model="embedded", input_size=256)) == {**unpadded, "input_size": 256}
    pool, test = data
    _write_dataset(tmp_path / "ds", pool, test)
    config = run_config(["run", "--data", str(tmp_path / "ds"), "--pad", "16", "--input-size", "256",
                         "--strategies", "random", "--out", str(tmp_path / "out")])
    assert config.featurizer["pad"] == 16 and config.featurizer["input_size"] == 256


def test_line_lengths_reach_the_filter_bank_from_the_run_and_init_commands(data, tmp_path, run_config):
    pool, test = data
    _write_dataset(tmp_path / "ds", pool, test)
    argv = ["run", "--data", str(tmp_path / "ds"), "--strategies", "random", "--out", str(tmp_path / "out")]
    cfg = run_config([*argv, "--features", "filters", "--line-lengths", "5", "9"])
    assert cfg.filter_bank == {"line_lengths": [5, 9]}
    bank = fitted_featurizer(cfg, None, progress=False, images=pool.images)
    assert bank.n_features_out_ == FilterBankFeaturizer().fit().n_features_out_ + 2 * 2  # bright + dark per length
    assert list(bank.get_feature_names_out()[-2:]) == ["gray_line_bright_l9", "gray_line_dark_l9"]
    plain = fitted_featurizer(config(filter_bank={}), None, progress=False, images=pool.images)
    assert "line_lengths" not in featurizer_key(plain)  # filter-bank caches from before the option keep their keys
    assert featurizer_key(bank)["line_lengths"] == [5, 9]
    assert run_config([*argv, "--features", "embedded+filters", "--line-lengths", "7"]).filter_bank == {
        "line_lengths": [7]}
    with pytest.raises(SystemExit, match="--filter-raw-channels none stands alone .*got none gray"):
        cli_main([*argv, "--filter-raw-channels", "none", "gray"])
    with pytest.raises(SystemExit, match="filter bank settings .* need features 'filters'"):
        cli_main([*argv, "--line-lengths", "5"])  # the diffusion features alone have no filter bank
    with pytest.raises(SystemExit, match="line_lengths must be distinct odd integers"):
        cli_main([*argv, "--features", "filters", "--line-lengths", "6"])
    assert not (tmp_path / "out").exists()
    images = tmp_path / "ds" / "train"
    assert cli_main(["init", str(tmp_path / "p"), "--images", str(images), "--exclude", "*_label.png",
                     "--classes", "a,b,c", "--features", "filters", "--line-lengths", "5", "9"]) == 0
    from skal_seg.labeling import LabelingProject

    assert LabelingProject(tmp_path / "p").config().filter_bank == {"line_lengths": [5, 9]}
    with pytest.raises(SystemExit, match="need features 'filters'"):
        cli_main(["init", str(tmp_path / "q"), "--images", str(images), "--classes", "a,b", "--line-lengths", "5"])


def test_every_filter_bank_option_reaches_the_bank_from_the_run_and_init_commands(data, tmp_path, run_config):
    pool, test = data
    _write_dataset(tmp_path / "ds", pool, test)
    argv = ["run", "--data", str(tmp_path / "ds"), "--strategies", "random", "--out", str(tmp_path / "out"),
            "--features", "filters"]
    options = ["--filter-sigmas", "0.7", "2", "--filters", "hessian", "gaussian", "--filter-channels", "green",
               "--filter-raw-channels", "none"]
    cfg = run_config([*argv, *options])
    assert cfg.filter_bank == {"sigmas": [0.7, 2.0], "filters": ["hessian", "gaussian"], "channels": "green",
                               "raw_channels": None}
    bank = fitted_featurizer(cfg, None, progress=False, images=pool.images)
    # no raw columns; per sigma one Gaussian and two Hessian eigenvalue columns, in FILTERS order
    assert list(bank.get_feature_names_out()) == [
        "green_gaussian_s0.7", "green_hessian_s0.7_ev0", "green_hessian_s0.7_ev1",
        "green_gaussian_s2", "green_hessian_s2_ev0", "green_hessian_s2_ev1"]
    assert featurizer_key(bank)["channels"] == "green"  # another bank, another cache
    several = run_config([*argv, "--filter-channels", "red", "blue", "--filter-raw-channels", "rgb"]).filter_bank
    assert several == {"channels": ["red", "blue"], "raw_channels": "rgb"}
    assert run_config([*argv]).filter_bank == {}  # nothing given: the bank's defaults, the keys of before
    with pytest.raises(SystemExit, match="unknown filters .*'sobel'.*choose from"):
        cli_main([*argv, "--filters", "sobel"])
    with pytest.raises(SystemExit, match="unknown channels 'purple'"):
        cli_main([*argv, "--filter-channels", "purple"])
    with pytest.raises(SystemExit, match="filter bank settings .* need features 'filters'"):
        cli_main([*argv[:-2], "--filter-sigmas", "2"])
    assert not (tmp_path / "out").exists()
    images = tmp_path / "ds" / "train"
    assert cli_main(["init", str(tmp_path / "p"), "--images", str(images), "--exclude", "*_label.png",
                     "--classes", "a,b,c", "--features", "embedded+filters", *options]) == 0
    from skal_seg.labeling import LabelingProject

    assert LabelingProject(tmp_path / "p").config().filter_bank == cfg.filter_bank


def test_the_filter_options_help_names_the_banks_own_defaults():
    # the parsers do not import the filter bank (scipy), so their help spells its defaults out: keep them in step
    import argparse

    from skal_seg._cli import add_filter_bank_arguments
    from skal_seg.filter_bank import FILTERS

    parser = argparse.ArgumentParser()
    add_filter_bank_arguments(parser)
    helps = {a.dest: a.help for a in parser._actions}
    defaults = FilterBankFeaturizer().get_params()
    assert f"default {' '.join(str(s) for s in defaults['sigmas'])}" in helps["filter_sigmas"]
    assert f"from {' '.join(FILTERS)} (default: all)" in helps["filters"]
    assert tuple(defaults["filters"]) == tuple(FILTERS)
    assert f"(default {defaults['channels']};" in helps["filter_channels"]
    assert f"(default {defaults['raw_channels']})" in helps["filter_raw_channels"]
