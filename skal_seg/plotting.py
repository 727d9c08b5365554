"""Figures of a results folder: learning curves and the pixels each round queried."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skal_seg.data import SegmentationSplit


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def collect_runs(results_dir: str | Path) -> dict[str, list[list[dict]]]:
    """Round records of every run below ``results_dir``, grouped by strategy."""
    runs: dict[str, list[list[dict]]] = {}
    for path in sorted(Path(results_dir).glob("*/seed*/rounds.json")):
        records = json.loads(path.read_text())
        if records:
            runs.setdefault(records[0]["strategy"], []).append(records)
    return runs


def summarize(results_dir: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Per strategy: labeled pixels, mean and std of mIoU over seeds (rounds all seeds completed)."""
    out = {}
    for strategy, runs in collect_runs(results_dir).items():
        n = min(len(r) for r in runs)
        miou = np.array([[rec["miou"] for rec in r[:n]] for r in runs])
        out[strategy] = {
            "labeled": np.array([rec["labeled_pixels"] for rec in runs[0][:n]]),
            "mean": miou.mean(0), "std": miou.std(0), "n_seeds": len(runs),
        }
    return out


def full_supervision(results_dir: str | Path) -> list[float]:
    """mIoU of every full-supervision reference run in ``results_dir/full_supervision``."""
    return [json.loads(p.read_text())["miou"] for p in sorted(Path(results_dir).glob("full_supervision/seed*.json"))]


def plot_learning_curves(results_dir: str | Path, out_png: str | Path | None = None) -> Path:
    """mIoU against labeled pixels, one curve per strategy (mean, band = +-1 std over seeds)."""
    plt = _pyplot()
    results_dir = Path(results_dir)
    out_png = Path(out_png) if out_png else results_dir / "miou.png"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, s in sorted(summarize(results_dir).items()):
        line, = ax.plot(s["labeled"], s["mean"], marker="o", ms=3, label=f"{strategy} ({s['n_seeds']} seeds)")
        if s["n_seeds"] > 1:
            ax.fill_between(s["labeled"], s["mean"] - s["std"], s["mean"] + s["std"], color=line.get_color(), alpha=0.2)
    full = full_supervision(results_dir)
    if full:
        ax.axhline(np.mean(full), color="k", ls="--", lw=1, label=f"full supervision ({np.mean(full):.3f})")
    ax.set_xlabel("labeled pixels")
    ax.set_ylabel("mIoU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def plot_queried_pixels(
    pool: SegmentationSplit, run_dir: str | Path, out_png: str | Path | None = None, n_images: int = 4
) -> Path:
    """The pool images that received the most labels, with each queried pixel coloured by round."""
    plt = _pyplot()
    run_dir = Path(run_dir)
    state = json.loads((run_dir / "state.json").read_text())
    budget = state["budget"]
    names = [n for n, _ in state["labeled_pixels"]]
    counts = {n: names.count(n) for n in set(names)}
    shown = sorted(counts, key=lambda n: (-counts[n], n))[:n_images]
    index = {n: i for i, n in enumerate(pool.names)}
    n_rounds = max(1, -(-len(names) // budget))
    cmap = plt.get_cmap("viridis", n_rounds)
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(3.2 * max(1, len(shown)), 3.4), squeeze=False)
    w = pool.images.shape[2]
    for ax, name in zip(axes[0], shown):
        ax.imshow(pool.images[index[name]])
        for k, (n, flat) in enumerate(state["labeled_pixels"]):
            if n == name:
                ax.scatter(flat % w, flat // w, s=22, color=cmap(k // budget), edgecolors="white", linewidths=0.6)
        ax.set_title(f"{name} ({counts[name]} px)", fontsize=8)
        ax.axis("off")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(-0.5, n_rounds - 0.5))
    fig.colorbar(sm, ax=axes[0].tolist(), label="round", fraction=0.02)
    out_png = Path(out_png) if out_png else run_dir / "queried_pixels.png"
    fig.savefig(out_png, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out_png
