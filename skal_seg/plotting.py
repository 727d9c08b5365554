"""Figures and tables of a results folder: learning curves, queried pixels, a markdown summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skal_seg.data import SegmentationSplit
from skal_seg.experiment import RANDOM_FIRST_ROUND, STRATEGIES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def collect_runs(results_dir: str | Path) -> dict[str, list[list[dict]]]:
    """Round records of every run below ``results_dir``, grouped by strategy.

    Parameters
    ----------
    results_dir : path
        Holds ``STRATEGY/seedS/rounds.json`` files.

    Returns
    -------
    dict
        ``{strategy: [records of one run, ...]}``, runs in path order; empty runs skipped.

    Raises
    ------
    FileNotFoundError
        ``results_dir`` is not a folder.
    ValueError
        A ``rounds.json`` that is not a list of round records (the message names it).
    """
    results_dir = Path(results_dir)
    if not results_dir.exists():
        raise FileNotFoundError(f"results folder not found: {results_dir}")
    if not results_dir.is_dir():
        raise FileNotFoundError(f"{results_dir} is a file, not a results folder")
    runs: dict[str, list[list[dict]]] = {}
    for path in sorted(results_dir.glob("*/seed*/rounds.json")):
        records = _read_json(path)
        if not isinstance(records, list) or not all(isinstance(r, dict) and "strategy" in r for r in records):
            raise ValueError(f"{path}: not a list of round records (written by 'skal-seg run')")
        if records:
            runs.setdefault(records[0]["strategy"], []).append(records)
    return runs


def _read_json(path: Path):
    """The JSON in ``path``, or a ValueError naming the file."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def _require_runs(runs: dict, results_dir) -> None:
    if not runs:
        raise FileNotFoundError(f"no runs in {results_dir} (expected STRATEGY/seedN/rounds.json written by "
                                f"'skal-seg run', with at least one round)")


def summarize(results_dir: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Mean and spread of mIoU over seeds, per strategy.

    Parameters
    ----------
    results_dir : path

    Returns
    -------
    dict
        ``{strategy: {"labeled", "mean", "std", "n_seeds"}}``: arrays over the
        rounds that every seed completed (population std, 0 for one seed).
    """
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
    """mIoU of every full-supervision reference run in ``results_dir/full_supervision``.

    Parameters
    ----------
    results_dir : path

    Returns
    -------
    list of float
        One per ``seedS.json``, in path order (empty when there are none).
    """
    out = []
    for path in sorted(Path(results_dir).glob("full_supervision/seed*.json")):
        result = _read_json(path)
        if not isinstance(result, dict) or "miou" not in result:
            raise ValueError(f"{path}: not a full-supervision result (no 'miou')")
        out.append(result["miou"])
    return out


def markdown_summary(results_dir: str | Path) -> str:
    """Markdown tables of a results folder: mIoU per round and seconds per round, per strategy.

    Parameters
    ----------
    results_dir : path
        A folder written by ``skal-seg run`` (``STRATEGY/seedS/rounds.json``,
        optionally ``full_supervision/seedS.json``).

    Returns
    -------
    str
        Table 1: mean +- standard deviation over seeds of the mIoU after each
        round (rounds that every seed of a strategy completed), with the
        labeled pixels; strategies whose round 0 is random are marked
        "r0 random" (for a given seed they label the same pixels in round 0);
        the full-supervision ceiling below it when present.
        Table 2: wall seconds per round per strategy, mean over seeds and
        rounds 1.. (round 0 also pays one-off featurizing), and the mean of
        each phase.

    Raises
    ------
    FileNotFoundError
        When ``results_dir`` is not a folder or holds no run.
    ValueError
        A results file that cannot be read (named in the message).
    """
    runs = collect_runs(results_dir)
    _require_runs(runs, results_dir)
    stats = summarize(results_dir)
    order = [s for s in STRATEGIES if s in stats]
    order += sorted(set(stats) - set(order))
    n_rounds = max(len(stats[s]["mean"]) for s in order)
    labeled = next(stats[s]["labeled"] for s in order if len(stats[s]["mean"]) == n_rounds)
    lines = ["| strategy (seeds) | " + " | ".join(f"r{r} ({labeled[r]} px)" for r in range(n_rounds)) + " |",
             "|---" * (n_rounds + 1) + "|"]
    for s in order:
        st = stats[s]
        cells = [f"{m:.4f} ± {d:.4f}" for m, d in zip(st["mean"], st["std"])]
        cells += [""] * (n_rounds - len(cells))
        r0 = ", r0 random" if s in RANDOM_FIRST_ROUND and s != "random" else ""
        lines.append(f"| {s} ({st['n_seeds']}{r0}) | " + " | ".join(cells) + " |")
    marked = [s for s in order if s in RANDOM_FIRST_ROUND and s != "random"]
    if marked:
        lines += ["", f"r0 random: round 0 of {', '.join(marked)} picks at random (no classifier yet), "
                      "the same pixels as `random` for each seed."]
    full = full_supervision(results_dir)
    if full:
        lines.append("")
        lines.append(f"Full supervision (every candidate pixel, {len(full)} seed{'s' if len(full) != 1 else ''}): mIoU "
                     f"{np.mean(full):.4f} ± {np.std(full):.4f}")
    phases = sorted({k for r in runs.values() for rec in r[0] for k in rec["seconds"]} - {"featurize"})
    lines += ["", "| strategy | s / round | " + " | ".join(phases) + " |", "|---" * (len(phases) + 2) + "|"]
    for s in order:
        recs = [rec for r in runs[s] for rec in r[1:]]
        if not recs:
            continue
        total = np.mean([sum(v for k, v in rec["seconds"].items() if k != "featurize") for rec in recs])
        per = [np.mean([rec["seconds"].get(k, 0.0) for rec in recs]) for k in phases]
        lines.append(f"| {s} | {total:.1f} | " + " | ".join(f"{v:.1f}" for v in per) + " |")
    return "\n".join(lines) + "\n"


def plot_learning_curves(results_dir: str | Path, out_png: str | Path | None = None) -> Path:
    """mIoU against labeled pixels, one curve per strategy (mean, band = +-1 std over seeds).

    Parameters
    ----------
    results_dir : path
    out_png : path, optional
        Default ``results_dir/miou.png``.

    Returns
    -------
    Path
        The PNG written; the full-supervision mean is drawn as a dashed line when present.

    Raises
    ------
    FileNotFoundError
        When ``results_dir`` is not a folder or holds no run (no empty plot is written).
    ValueError
        A results file that cannot be read (named in the message).
    """
    results_dir = Path(results_dir)
    stats = summarize(results_dir)
    _require_runs(stats, results_dir)
    plt = _pyplot()
    out_png = Path(out_png) if out_png else results_dir / "miou.png"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, s in sorted(stats.items()):
        line, = ax.plot(s["labeled"], s["mean"], marker="o", ms=3, label=f"{strategy} ({s['n_seeds']} seed{'s' if s['n_seeds'] != 1 else ''})")
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
    """The pool images that received the most labels, with each queried pixel coloured by round.

    Parameters
    ----------
    pool : SegmentationSplit
        The run's pool (images looked up by name).
    run_dir : path
        Holds the run's ``state.json``.
    out_png : path, optional
        Default ``run_dir/queried_pixels.png``.
    n_images : int, default=4

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    FileNotFoundError
        ``run_dir`` has no ``state.json``.
    """
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
