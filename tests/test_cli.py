"""The ``skal-seg`` command: a dataset of one's own, the plan, interruption, bad files, help."""

import json
import shlex
import shutil

import numpy as np
import pytest
from PIL import Image
from test_experiment import synthetic_split, tiny_unet

from skal_seg.benchmark import runner
from skal_seg.cli import _parser
from skal_seg.cli import main as cli_main
from skal_seg.engine import rounds


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    """JPEG photos 16x24 with 4 named classes (values above CamVid's 10 would be refused without classes.txt)."""
    root = tmp_path_factory.mktemp("own")
    for split, n, seed in (("train", 6, 0), ("test", 2, 1)):
        s = synthetic_split(n, seed)
        (root / split).mkdir()
        for img, lab, name in zip(s.images, s.labels, s.names):
            Image.fromarray(np.concatenate([img, img[:, :8]], axis=1)).save(root / split / f"{name}.jpg", quality=95)
            lab = np.concatenate([lab, np.full((16, 8), 3, dtype=np.uint8)], axis=1)
            Image.fromarray(lab).save(root / split / f"{name}_label.png")
    (root / "classes.txt").write_text("red\ngreen\nblue\nedge\n")
    tiny_unet().save_pretrained(root / "unet")
    return root


def run_args(root, out, *extra):
    return ["run", "--data", str(root), "--model", str(root / "unet"), "--size", "16", "--rounds", "2",
            "--candidates-per-image", "30", "--local-budget", "5", "--n-draws", "2", "--timesteps", "10", "50",
            "--out", str(out), "--quiet", *extra]


def test_own_folder_jpeg_classes_budget_and_plan(own_data, tmp_path, capsys):
    out = tmp_path / "res"
    assert cli_main(run_args(own_data, out, "--strategies", "random", "--budget", "5", "--val-fraction", "0.2")) == 0
    printed = capsys.readouterr().out
    assert "held out 1 of 6 train images for validation (--val-fraction 0.2): img0_" in printed
    assert "pool 5 images, test 2 images, working size 16x24" in printed
    assert f"classes (4): 0:red,1:green,2:blue,3:edge (from {own_data / 'classes.txt'}); ignore: 255 (by default)" \
        in printed
    assert "pool: 6 images; label values: " in printed and "test: 2 images; label values: " in printed
    assert "evaluation: mIoU over the 4 classes red, green, blue, edge on the test images\n" in printed
    assert "budget: 5 pixels per round (--budget 5) x 2 rounds = 10 labeled pixels per run" in printed
    assert "note: 5 pixels per round" not in printed  # 5 >= 4 classes
    assert "features: at most " in printed and "timed here" in printed
    header = (out / "random" / "seed0" / "rounds.csv").read_text().splitlines()[0]
    assert "miou,miou_over,iou_red,iou_green,iou_blue,iou_edge" in header
    state = json.loads((out / "random" / "seed0" / "state.json").read_text())
    assert len(state["labeled"]) == 10 and state["config"]["budget_per_round"] == 5
    cache = out / ".cache"
    assert (cache / ".gitignore").read_text().strip().endswith("*") and list(cache.glob("pool-*.npy"))
    assert not list(cache.glob("dense-*.npy"))  # evaluation features stay in memory by default


def test_rerun_without_resume_refuses_to_replace_finished_rounds(own_data, tmp_path, capsys):
    out = tmp_path / "res"
    args = run_args(own_data, out, "--strategies", "random", "--budget", "5", "--val-fraction", "0")
    assert cli_main(args) == 0
    saved = (out / "random" / "seed0" / "state.json").read_text()
    with pytest.raises(SystemExit, match=r"already holds results: .*seed0 \(2 rounds\); add --resume"):
        cli_main(args)
    assert (out / "random" / "seed0" / "state.json").read_text() == saved
    assert cli_main(args + ["--resume"]) == 0  # the way the message names
    assert "already has 2 rounds" in capsys.readouterr().out


def test_budget_flags_exclude_each_other_and_too_few_classes_are_named(own_data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(run_args(own_data, tmp_path, "--budget", "5", "--budget-per-image", "1"))
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"label value 3 \(.* maps to no class of the label map 0:a,1:b,2:c \(from "
                                         r"--classes\)\. Map every stored value to a class name: --label-map"):
        cli_main(run_args(own_data, tmp_path, "--classes", "a,b,c"))


def test_ctrl_c_saves_plots_and_prints_the_resume_command(own_data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "res"
    args = run_args(own_data, out, "--strategies", "two_stage", "random", "--budget-per-image", "1",
                    "--val-fraction", "0")
    real_evaluate, calls = rounds.evaluate, {"n": 0}

    def interrupt_in_round_1(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_evaluate(*a, **kw)

    monkeypatch.setattr(runner, "evaluate", interrupt_in_round_1)
    assert cli_main(args) == 130
    monkeypatch.setattr(runner, "evaluate", real_evaluate)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "rounds saved: two_stage/seed0 1/2, random/seed0 0/2" in err[0]
    command = err[0].split("continue with: ")[1]
    assert command == "skal-seg " + shlex.join(args + ["--resume"])
    assert (out / "miou.png").exists() and (out / "summary.md").exists()
    assert (out / "two_stage" / "seed0" / "queried_pixels.png").exists()
    assert cli_main(shlex.split(command)[1:]) == 0
    assert "resuming" in capsys.readouterr().out
    assert len(json.loads((out / "random" / "seed0" / "rounds.json").read_text())) == 2


def _bad_dataset(root, what):
    s = synthetic_split(2, 0)
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for img, lab, name in zip(s.images, s.labels, s.names):
            Image.fromarray(img).save(root / split / f"{name}.png")
            Image.fromarray(lab).save(root / split / f"{name}_label.png")
    bad = root / "train" / f"{s.names[1]}.png"
    if what == "truncated":
        bad.write_bytes(bad.read_bytes()[:200])
    else:
        bad.write_text("this is not an image")
    return bad


@pytest.mark.parametrize("what, reason", [("truncated", "truncated"), ("not_an_image", "not an image file")])
def test_bad_image_files_end_in_one_line_naming_the_file(what, reason, tmp_path):
    bad = _bad_dataset(tmp_path / "ds", what)
    with pytest.raises(SystemExit) as err:
        cli_main(["run", "--data", str(tmp_path / "ds"), "--size", "16", "--out", str(tmp_path / "res"), "--quiet"])
    message = err.value.code
    assert isinstance(message, str) and message.startswith("skal-seg: ")  # a string code exits with status 1
    assert str(bad) in message and reason in message and "\n" not in message


@pytest.mark.parametrize("command", ["plot", "report"])
def test_plot_and_report_of_missing_empty_or_corrupt_folders_fail_clearly(command, tmp_path):
    cases = {"nowhere": "results folder not found", "empty": "no runs in", "file.txt": "is a file"}
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    corrupt = tmp_path / "corrupt" / "random" / "seed0" / "rounds.json"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_text("{not json")
    cases["corrupt"] = "rounds.json: not valid JSON"
    for folder, reason in cases.items():
        with pytest.raises(SystemExit) as err:
            cli_main([command, str(tmp_path / folder)])
        message = err.value.code
        assert isinstance(message, str) and message.startswith("skal-seg: ") and reason in message, message
        assert str(tmp_path / folder) in message and "\n" not in message
    assert not (tmp_path / "empty" / "miou.png").exists()  # no empty plot


def test_help_shows_every_option_with_a_line_and_defaults(capsys):
    parser = _parser()
    subparsers = next(a for a in parser._actions if a.choices and "run" in a.choices).choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help line"
    with pytest.raises(SystemExit):
        cli_main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--rounds N query rounds", "(default: 10)", "(default: 50 150 250)", "(default: 2500)",
                  "--local-budget N stage 1", "(default: 0.5)", "--entropy-weight W eDALD"):
        assert shown in text, shown
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    assert "needs ground-truth labels" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        cli_main(["--version"])
    assert err.value.code == 0 and capsys.readouterr().out.startswith("skal-seg 0.")


def test_validation_tuning_script_runs_the_grid_resumes_and_tabulates(own_data, tmp_path, capsys, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "tune_validation.py"
    spec = importlib.util.spec_from_file_location("tune_validation", path)
    tune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tune)
    runs = tune.planned_runs()  # the real grid: each strategy's defaults run once, every folder distinct
    assert len({name for name, *_ in runs}) == len(runs)
    assert [name for name, *_ in runs if name.endswith("=defaults")] == [
        "maxherding=defaults", "two_stage=defaults", "uherding=defaults"]
    assert ("mi=paper_code", "two_stage", ("--mi", "paper_code")) in runs
    assert [name for name, *_ in tune.planned_runs(["combined"])] == ["random", "uherding=defaults", *tune.COMBINED]
    monkeypatch.setattr(tune, "GRID", {"bandwidth": ("maxherding", "--bandwidth", ("auto", "0.5"))})  # 6 runs
    monkeypatch.setattr(tune, "COMBINED", {})
    out = tmp_path / "tune"
    argv = ["--data", str(own_data), "--out", str(out), "--seeds", "0", "1", "--", "--model", str(own_data / "unet"),
            "--size", "16", "--rounds", "2", "--candidates-per-image", "30", "--local-budget", "5", "--timesteps", "10",
            "50", "--budget", "4", "--val-fraction", "0.34"]
    assert tune.main(argv) == 0
    table = (out / "tuning.md").read_text().splitlines()
    assert [row.split(" | ")[0] for row in table[2:]] == ["| random", "| maxherding=defaults", "| bandwidth=0.5"]
    random = [[r["miou"] for r in json.loads((out / "random" / "random" / f"seed{s}" / "rounds.json").read_text())]
              for s in (0, 1)]
    herd = [[r["miou"] for r in json.loads((out / "bandwidth=0.5" / "maxherding" / f"seed{s}" / "rounds.json")
                                           .read_text())] for s in (0, 1)]
    settings = json.loads((out / "bandwidth=0.5" / "maxherding" / "seed0" / "state.json").read_text())["config"]
    assert settings["bandwidth"] == 0.5
    cells = table[4].split(" | ")
    assert cells[2:4] == ["2", "2"]
    assert cells[4] == f"{np.mean(herd):.4f} ± {np.std(np.mean(herd, 1)):.4f}"
    assert cells[5] == f"{np.mean(herd) - np.mean(random):+.4f}"
    assert cells[6] == f"{np.mean(np.array(herd)[:, -1]):.4f} ± {np.std(np.array(herd)[:, -1]):.4f}"
    capsys.readouterr()
    assert tune.main(argv) == 0  # a rerun resumes every run: nothing is trained again
    printed = capsys.readouterr().out
    assert printed.count("already has 2 rounds") == 6
    assert (out / "tuning.md").read_text().splitlines() == table
    # a table made while the grid runs: a seed still behind is left out, a run not started says so
    rounds = out / "bandwidth=0.5" / "maxherding" / "seed1" / "rounds.json"
    rounds.write_text(json.dumps(json.loads(rounds.read_text())[:1]))
    shutil.rmtree(out / "maxherding=defaults")
    assert tune.main(argv[:argv.index("--")] + ["--table"]) == 0
    partial = (out / "tuning.md").read_text().splitlines()
    assert partial[3].startswith("| maxherding=defaults | maxherding | 0 | 0 | not finished yet")
    cells = partial[4].split(" | ")
    assert cells[2:5] == ["1", "2", f"{np.mean(herd[0]):.4f} ± 0.0000"]
    assert not (out / "maxherding=defaults").exists()  # --table ran nothing
    with pytest.raises(SystemExit):
        tune.main(["--data", str(own_data), "--only", "temperature"])
    assert "unknown settings ['temperature']" in capsys.readouterr().err


@pytest.mark.parametrize("error, match", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                  "tried to allocate 25769803776 bytes. Error code 12 (Cannot allocate memory)"),
     r"^skal-seg: out of memory \(torch could not allocate 24.0 GiB\): use a smaller --size or --input-size"),
    (MemoryError("Unable to allocate 59.6 GiB for an array with shape (8000000001,) and data type int64"),
     r"^skal-seg: out of memory \(Unable to allocate 59.6 GiB\): .*--resume continues"),
])
def test_a_failed_allocation_ends_in_one_line_naming_the_fix(monkeypatch, error, match):
    import skal_seg.cli as cli

    def handler(args):
        raise error

    monkeypatch.setattr(cli, "_handler", lambda name: handler)
    with pytest.raises(SystemExit, match=match):
        cli_main(["status", "somewhere"])


def test_other_runtime_errors_are_not_called_out_of_memory(monkeypatch):
    import skal_seg.cli as cli

    def handler(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "_handler", lambda name: handler)
    with pytest.raises(RuntimeError, match="a bug"):
        cli_main(["status", "somewhere"])
