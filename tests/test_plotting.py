"""The figures of a results folder: what they show, read back from the matplotlib figure saved."""

import json

import numpy as np
import pytest
from matplotlib.figure import Figure

from skal_seg.benchmark.plotting import plot_learning_curves, plot_queried_pixels
from skal_seg.data import SegmentationSplit


@pytest.fixture
def saved(monkeypatch):
    """The figures the plotting functions save (PNGs are still written)."""
    figures = []
    real = Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def write_run(root, strategy, seed, mious, per_round=24):
    recs = [{"round": r, "labeled_pixels": per_round * (r + 1), "miou": m, "strategy": strategy, "seed": seed,
             "seconds": {"train": 1.0}} for r, m in enumerate(mious)]
    d = root / strategy / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "rounds.json").write_text(json.dumps(recs))


def test_learning_curves_start_at_zero_and_say_what_they_show(tmp_path, saved):
    write_run(tmp_path, "two_stage", 0, [0.1817, 0.1854, 0.2000, 0.1866])  # the quickstart's 0.18-0.20
    write_run(tmp_path, "random", 0, [0.17, 0.18, 0.19, 0.185])
    write_run(tmp_path, "random", 1, [0.16, 0.19, 0.20, 0.21])
    png = plot_learning_curves(tmp_path, title="CamVid sample: pool 12 images")
    assert png == tmp_path / "miou.png" and png.read_bytes()[:4] == b"\x89PNG"
    (ax,) = saved[-1].axes
    assert ax.get_ylim() == (0.0, pytest.approx(0.3))  # from 0 to the next tenth above 0.21
    title = ax.get_title()
    assert title.startswith("CamVid sample: pool 12 images\n")
    assert "2 strategies, 1 or 2 seeds, 24 pixels labeled per round" in title
    assert "labeled pixels" in ax.get_xlabel() and "mIoU" in ax.get_ylabel() and "from 0" in ax.get_ylabel()
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["random (2 seeds)", "two_stage (1 seed)"]
    plot_learning_curves(tmp_path)
    assert saved[-1].axes[0].get_title().startswith(f"{tmp_path.name}\n")  # default: the folder's name
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no runs in .*empty .*STRATEGY/seedN/rounds.json"):
        plot_learning_curves(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="results folder not found"):
        plot_learning_curves(tmp_path / "nowhere")


def test_queried_pixels_show_every_labeled_image_with_whole_border_dots(tmp_path, saved):
    rng = np.random.default_rng(0)
    n = 7
    pool = SegmentationSplit(rng.integers(0, 256, (n, 16, 20, 3), dtype=np.uint8), np.zeros((n, 16, 20), np.uint8),
                             tuple(f"img{i}" for i in range(n)))
    corners = [0, 19, 15 * 20, 16 * 20 - 1]
    labeled = [[f"img{i}", corners[i % 4]] for i in range(6)] * 2 + [["img0", 5], ["img2", 7], ["img3", 9]]
    (tmp_path / "state.json").write_text(json.dumps({"budget": 5, "labeled_pixels": labeled}))  # 3 rounds
    plot_queried_pixels(pool, tmp_path)
    fig = saved[-1]
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title().split()[0] for ax in shown] == [f"img{i}" for i in range(6)]  # all 6, img6 has none
    assert [ax.get_title() for ax in shown][:2] == ["img0 (3 px)", "img1 (2 px)"]
    dots = [c for ax in shown for c in ax.collections]
    assert sum(len(c.get_offsets()) for c in dots) == len(labeled)
    assert not any(c.get_clip_on() for c in dots)  # a corner pixel's dot is not cut by the image edge
    (bar,) = [ax for ax in fig.axes if not ax.images and ax.get_ylabel().startswith("round")]
    assert list(bar.get_yticks()) == [0, 1, 2]
    assert "in 6 of the 7 pool images, every one shown" in fig._suptitle.get_text()
    plot_queried_pixels(pool, tmp_path, n_images=2)
    assert [ax.get_title() for ax in saved[-1].axes if ax.images] == ["img0 (3 px)", "img2 (3 px)"]
