"""Featurizing and local herding on a local two-worker Ray cluster give the single process's results."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_experiment import _write_dataset, config, synthetic_split, tiny_unet

from skal_seg import distributed
from skal_seg.benchmark.runner import run_experiment
from skal_seg.cli import main as cli_main
from skal_seg.distributed import RayExecutor
from skal_seg.engine.features import featurizer_key
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.labeling import LabelingProject
from skal_seg.query import TwoStageQuery


def test_importing_skal_seg_does_not_import_ray():
    code = "import sys, skal_seg, skal_seg.distributed; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("kw, match", [
    (dict(num_workers=0), "num_workers must be a positive integer"),
    (dict(cpus_per_worker=1.5), "cpus_per_worker must be a positive integer"),
    (dict(gpus_per_worker=-1), "gpus_per_worker must be None or a number >= 0"),
    (dict(address=6379), "address must be None or a string"),
])
def test_bad_settings_raise_before_ray_starts(kw, match):
    with pytest.raises(ValueError, match=match):
        RayExecutor(**kw).start()


def test_featurizer_rejects_an_executor_of_the_wrong_kind():
    with pytest.raises(ValueError, match="executor must be None or a skal_seg.distributed.RayExecutor"):
        DiffusionFeaturizer(model=tiny_unet(), executor="ray", device="cpu").fit()


@pytest.fixture(scope="module")
def executor():
    pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[ray]')")
    # Two one-CPU workers with one torch thread each, as the test process (conftest) runs torch.
    # tasks_per_worker=2 splits the small calls below into several tasks each.
    ex = RayExecutor(num_workers=2, tasks_per_worker=2,
                     init_options=dict(num_cpus=2, log_to_driver=False, object_store_memory=100 * 2**20))
    yield ex.start()
    ex.shutdown()


def test_features_and_noisy_views_equal_the_single_process(executor):
    images = np.random.default_rng(0).integers(0, 256, (7, 12, 16, 3), dtype=np.uint8)
    pixels = [np.random.default_rng(i).choice(12 * 16, 20, replace=False) for i in range(7)]
    pixels[2] = pixels[2][:0]  # an image without candidates: the later batches must stay aligned
    unet = tiny_unet()
    local = DiffusionFeaturizer(model=unet, timesteps=(10, 50), device="cpu", progress=False).fit()
    remote = DiffusionFeaturizer(model=unet, timesteps=(10, 50), device="cpu", progress=False,
                                 executor=executor).fit()
    assert featurizer_key(local) == featurizer_key(remote)  # cached features are shared
    np.testing.assert_array_equal(remote.transform(images), local.transform(images))
    np.testing.assert_array_equal(remote.transform(images, pixels=pixels), local.transform(images, pixels=pixels))
    np.testing.assert_array_equal(remote.noisy_views(images, 2, pixels=pixels, random_state=3),
                                  local.noisy_views(images, 2, pixels=pixels, random_state=3))
    rows = np.array([5, 70, 3, 100, 119, 40, 41])
    np.testing.assert_array_equal(remote.noisy_view_fn(images, pixels, n_draws=2, random_state=3)(rows),
                                  local.noisy_view_fn(images, pixels, n_draws=2, random_state=3)(rows))


def test_local_herding_picks_what_the_single_process_picks(executor):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    groups = np.repeat(np.arange(6), 50)
    one = TwoStageQuery(local_budget=5, random_state=0).query(None, X, 12, groups=groups)
    ray_query = TwoStageQuery(local_budget=5, random_state=0, executor=executor)
    np.testing.assert_array_equal(ray_query.query(None, X, 12, groups=groups), one)
    assert len(ray_query.local_picks_) == 30


def test_a_run_on_two_workers_labels_the_single_process_pixels(executor, tmp_path):
    pool, test = synthetic_split(6, 0), synthetic_split(2, 1)
    featurizer = DiffusionFeaturizer(model=tiny_unet(), timesteps=(10, 50), device="cpu", progress=False).fit()
    quiet = dict(featurizer=featurizer, progress=False, log=lambda s: None)
    single = run_experiment(config(rounds=2), pool, test, tmp_path / "one", **quiet)
    on_ray = run_experiment(config(rounds=2), pool, test, tmp_path / "ray", executor=executor, **quiet)
    assert featurizer.executor is None  # the caller's featurizer is not changed
    state = {name: json.loads((tmp_path / name / "state.json").read_text()) for name in ("one", "ray")}
    assert state["ray"]["labeled_pixels"] == state["one"]["labeled_pixels"]
    assert [r["miou"] for r in on_ray] == [r["miou"] for r in single]


def test_cli_workers_flag_runs_on_ray_with_the_same_picks(executor, tmp_path, monkeypatch):
    _write_dataset(tmp_path / "ds", synthetic_split(6, 0), synthetic_split(2, 1))
    tiny_unet().save_pretrained(tmp_path / "unet")
    args = ["run", "--data", str(tmp_path / "ds"), "--model", str(tmp_path / "unet"), "--size", "16", "--rounds", "2",
            "--candidates-per-image", "30", "--budget-per-image", "1", "--local-budget", "5", "--n-draws", "2",
            "--timesteps", "10", "50", "--val-fraction", "0", "--quiet"]
    made = []  # the CLI's executor is the fixture's cluster (started once for this module), kept running
    monkeypatch.setattr(distributed, "RayExecutor", lambda **kw: made.append(kw) or executor)
    monkeypatch.setattr(executor, "shutdown", lambda: made.append("shutdown"))
    assert cli_main([*args, "--out", str(tmp_path / "one")]) == 0
    assert made == []
    assert cli_main([*args, "--out", str(tmp_path / "ray"), "--workers", "2"]) == 0
    assert made == [dict(num_workers=2, address=None, gpus_per_worker=None), "shutdown"]
    state = [json.loads((tmp_path / d / "two_stage" / "seed0" / "state.json").read_text()) for d in ("one", "ray")]
    assert state[1]["labeled_pixels"] == state[0]["labeled_pixels"]


def test_labeling_query_on_ray_asks_for_the_single_process_pixels(executor, tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, img in enumerate(synthetic_split(4, 2).images):
        Image.fromarray(img).save(photos / f"p{i}.png")
    tiny_unet().save_pretrained(tmp_path / "unet")
    settings = dict(candidates_per_image=30, local_budget=4, featurizer={"model": str(tmp_path / "unet"),
                                                                         "timesteps": [10, 50]})
    for name in ("one", "ray"):
        LabelingProject.init(tmp_path / name, photos, "a,b,c", working_size=16, settings=settings)
    made = []
    monkeypatch.setattr(distributed, "RayExecutor", lambda **kw: made.append(kw) or executor)
    monkeypatch.setattr(executor, "shutdown", lambda: None)
    assert cli_main(["query", str(tmp_path / "one"), "--budget", "6", "--quiet"]) == 0
    assert cli_main(["query", str(tmp_path / "ray"), "--budget", "6", "--quiet", "--workers", "2"]) == 0
    assert made == [dict(num_workers=2, address=None, gpus_per_worker=None)]
    asked = [[(q["path"], q["y"], q["x"]) for q in LabelingProject(tmp_path / name).queries()] for name in ("one", "ray")]
    assert asked[1] == asked[0] and len(asked[0]) == 6
