"""Figures and tables of a results folder: learning curves, queried pixels, a markdown summary."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from skal_seg.data import SegmentationSplit
from skal_seg.engine.settings import RANDOM_FIRST_ROUND, STRATEGIES
from skal_seg.labeling.project import LabelingProject
from skal_seg.metrics import miou_scope

#: Seeds per strategy (and of ``random``) below which the report makes no claim of beating random.
MIN_SEEDS_VERSUS_RANDOM = 3


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
    return _summarize_runs(collect_runs(results_dir))


def miou_by_seed(runs: list[list[dict]]) -> np.ndarray:
    """mIoU of each run (rows: the seeds of one strategy) at each round every run completed (columns).

    Parameters
    ----------
    runs : list of list of dict
        One strategy's runs, as :func:`collect_runs` groups them.

    Returns
    -------
    ndarray of shape (n_runs, n_rounds)
    """
    n = min(len(r) for r in runs)
    return np.array([[rec["miou"] for rec in r[:n]] for r in runs])


def _summarize_runs(runs_by_strategy: dict[str, list[list[dict]]]) -> dict[str, dict[str, np.ndarray]]:
    """:func:`summarize` of runs already read by :func:`collect_runs`."""
    out = {}
    for strategy, runs in runs_by_strategy.items():
        miou = miou_by_seed(runs)
        n = miou.shape[1]
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
    return [result["miou"] for result in _full_supervision_results(Path(results_dir))]


def _full_supervision_results(results_dir: Path) -> list[dict]:
    """Every ``results_dir/full_supervision/seedS.json``, read and checked, in path order."""
    out = []
    for path in sorted(results_dir.glob("full_supervision/seed*.json")):
        result = _read_json(path)
        if not isinstance(result, dict) or "miou" not in result:
            raise ValueError(f"{path}: not a full-supervision result (no 'miou')")
        out.append(result)
    return out


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _mean_spread(mean: float, std: float, n_seeds: int) -> str:
    """'0.2000 ± 0.1000' over several seeds; '0.2000' for one (a spread of one run is no spread)."""
    return f"{mean:.4f} ± {std:.4f}" if n_seeds > 1 else f"{mean:.4f}"


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
        round (rounds that every seed of a strategy completed; the mIoU alone
        for a strategy run with one seed), with the labeled pixels;
        strategies whose round 0 is random are marked "r0 random" (for a
        given seed they label the same pixels in round 0); the
        full-supervision ceiling below it when present; a line saying over
        which classes the mIoU is taken (from the runs' ``state.json``).
        Then, when ``random`` and another strategy have 3 or more seeds
        (:data:`MIN_SEEDS_VERSUS_RANDOM`), each strategy's mean minus
        random's per round, marked where the difference exceeds the larger
        of the two seed standard deviations; with fewer seeds, a line
        saying that no such claim is made.
        Table 2: per-class IoU at the last round every seed completed, mean
        over seeds (and of the full-supervision runs), then a line per
        strategy that scores a class under half of random's IoU at the same
        round (a head that gave the class up can still lead on mIoU). Table 3: the share of
        labeled pixels per class of each strategy, from the runs' labeling
        projects. Table 4: wall seconds per round per strategy, mean over
        seeds and rounds 1.. (round 0 also pays one-off featurizing), and
        the mean of each phase.

    Raises
    ------
    FileNotFoundError
        When ``results_dir`` is not a folder or holds no run.
    ValueError
        A results file that cannot be read (named in the message).
    """
    runs = collect_runs(results_dir)
    _require_runs(runs, results_dir)
    stats = _summarize_runs(runs)  # every rounds.json read once
    order = [s for s in STRATEGIES if s in stats]
    order += sorted(set(stats) - set(order))
    n_rounds = max(len(stats[s]["mean"]) for s in order)
    labeled = next(stats[s]["labeled"] for s in order if len(stats[s]["mean"]) == n_rounds)
    lines = _round_header("strategy (seeds)", labeled, n_rounds)
    for s in order:
        st = stats[s]
        cells = [_mean_spread(m, d, st["n_seeds"]) for m, d in zip(st["mean"], st["std"])]
        cells += [""] * (n_rounds - len(cells))
        r0 = ", r0 random" if s in RANDOM_FIRST_ROUND and s != "random" else ""
        lines.append(f"| {s} ({_seeds(st['n_seeds'])}{r0}) | " + " | ".join(cells) + " |")
    scope = _miou_scope_line(Path(results_dir))
    if scope:
        lines += ["", scope]
    if any(stats[s]["n_seeds"] > 1 for s in order):
        lines += ["", "mean ± standard deviation over seeds"]
    marked = [s for s in order if s in RANDOM_FIRST_ROUND and s != "random"]
    if marked:
        lines += ["", f"r0 random: round 0 of {', '.join(marked)} picks at random (no classifier yet), "
                      "the same pixels as `random` for each seed."]
    full_results = _full_supervision_results(Path(results_dir))  # read once: the ceiling and its per-class IoU
    full = [result["miou"] for result in full_results]
    if full:
        lines.append("")
        lines.append(f"Full supervision (every candidate pixel, {_seeds(len(full))}): mIoU "
                     f"{_mean_spread(np.mean(full), np.std(full), len(full))}")
    lines += _versus_random_table(stats, order, labeled)
    lines += _class_tables(Path(results_dir), runs, order, full_results)
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


def _miou_scope_line(results_dir: Path) -> str | None:
    """"mIoU over the 2 classes background, vessel", from a run's ``state.json`` (None for older results)."""
    states = sorted(results_dir.glob("*/seed*/state.json"))
    state = _read_json(states[0]) if states else {}
    if "eval_classes" not in state or "classes" not in state:
        return None
    return miou_scope(state["classes"], [c in state["eval_classes"] for c in state["classes"]]) + "."


def _round_header(first: str, labeled: np.ndarray, n_rounds: int) -> list[str]:
    """The two header lines of a table with one column per round ("r3 (132 px)")."""
    return ["| " + first + " | " + " | ".join(f"r{r} ({labeled[r]} px)" for r in range(n_rounds)) + " |",
            "|---" * (n_rounds + 1) + "|"]


def _versus_random_table(stats: dict, order: list[str], labeled: np.ndarray) -> list[str]:
    """Markdown lines: each strategy's mean mIoU minus random's, per round, and whether any strategy wins it.

    A round counts as a clear win (or loss) when the difference exceeds the
    larger of the two seed standard deviations (the strategy's and random's),
    so that neither curve's spread alone can explain it. Needs ``random``
    and at least one other strategy, each with :data:`MIN_SEEDS_VERSUS_RANDOM`
    seeds or more: with fewer, two standard deviations say too little, and
    the table is replaced by a line saying that no claim is made.
    """
    if "random" not in stats or len(order) < 2:
        return []
    enough = MIN_SEEDS_VERSUS_RANDOM
    others = [s for s in order if s != "random" and stats[s]["n_seeds"] >= enough]
    if stats["random"]["n_seeds"] < enough or not others:
        seeds = ", ".join(f"{s} {stats[s]['n_seeds']}" for s in order)
        return ["", f"No claim of doing better or worse than random: that needs {enough} or more seeds of random "
                    f"and of a strategy (seeds here: {seeds})."]
    ref = stats["random"]
    n_rounds = len(ref["mean"])
    lines = ["", "Mean mIoU minus random's, per round (▲ / ▼: above / below random by more than the larger "
                 "of the two seed standard deviations):", "",
             *_round_header("strategy", labeled, n_rounds)]
    wins = np.zeros(n_rounds, dtype=bool)
    for s in others:
        st = stats[s]
        n = min(n_rounds, len(st["mean"]))
        diff = st["mean"][:n] - ref["mean"][:n]
        spread = np.maximum(st["std"][:n], ref["std"][:n])
        wins[:n] |= diff > spread
        cells = [f"{d:+.4f}{' ▲' if d > e else ' ▼' if d < -e else ''}" for d, e in zip(diff, spread)]
        lines.append(f"| {s} | " + " | ".join(cells + [""] * (n_rounds - n)) + " |")
    lines.append("| some strategy ▲ | " + " | ".join("yes" if w else "no" for w in wins) + " |")
    return lines


def _class_tables(results_dir: Path, runs: dict[str, list[list[dict]]], order: list[str],
                  full: list[dict]) -> list[str]:
    """Markdown lines: per-class IoU at the last round every seed completed, and each strategy's labels per class.

    The class names come from a run's ``state.json``; the labels per class
    from each run's labeling project (``project.sqlite``, the answers the
    ground truth gave), summed over seeds. A strategy whose runs have no
    project (older results) is left out of the second table.
    """
    lines: list[str] = []
    if all("iou" in rec for r in runs.values() for rec in r[0]):  # older results may lack per-class IoU
        lines += _iou_table(results_dir, runs, order, full)
    lines += _label_share_table(results_dir, runs, order)
    return lines


def _column_means(values: np.ndarray) -> np.ndarray:
    """Mean of each column over its finite entries; NaN where a column has none (a class never predicted)."""
    finite = np.isfinite(values)
    return np.where(finite.any(0), np.where(finite, values, 0).sum(0) / np.maximum(finite.sum(0), 1), np.nan)


def _iou_rows(records: list[dict]) -> np.ndarray:
    """The ``"iou"`` lists of result records as a float array, NaN where a class has none (JSON null)."""
    return np.array([[np.nan if v is None else v for v in rec["iou"]] for rec in records], dtype=float)


def _iou_cells(iou: np.ndarray) -> str:
    """Table cells of per-class IoU: three decimals, "-" for a class without a value."""
    return " | ".join("-" if np.isnan(v) else f"{v:.3f}" for v in iou)


def _iou_table(results_dir: Path, runs: dict[str, list[list[dict]]], order: list[str],
               full: list[dict]) -> list[str]:
    """Markdown lines of the per-class IoU table (see :func:`_class_tables`); ``full``: the full-supervision results."""
    states = sorted(results_dir.glob("*/seed*/state.json"))
    names = _read_json(states[0]).get("classes") if states else None
    n_classes = len(next(iter(runs.values()))[0][0]["iou"])
    names = names if names and len(names) == n_classes else [f"class {c}" for c in range(n_classes)]
    lines = ["", "Per-class IoU at the last round every seed completed (mean over seeds):", "",
             "| strategy | round | " + " | ".join(names) + " |", "|---" * (n_classes + 2) + "|"]
    last = {}  # strategy -> (round, mean IoU per class)
    for s in order:
        n = min(len(r) for r in runs[s])
        last[s] = (n - 1, _column_means(_iou_rows([r[n - 1] for r in runs[s]])))
        lines.append(f"| {s} | r{n - 1} | {_iou_cells(last[s][1])} |")
    if full and all("iou" in f for f in full):
        lines.append(f"| full supervision | | {_iou_cells(_column_means(_iou_rows(full)))} |")
    return lines + _given_up_lines(last, names)


#: A class scored by random at least this IoU ...
GIVEN_UP_MIN_IOU = 0.05
#: ... and by a strategy under this share of random's IoU is one the strategy's head gave up.
GIVEN_UP_SHARE = 0.5


def _given_up_lines(last: dict[str, tuple[int, np.ndarray]], names: list[str]) -> list[str]:
    """Lines naming the classes a strategy's head scores under half of random's IoU at the same round.

    mIoU averages the classes, so a head that predicts the largest class
    nearly everywhere can beat random's on mIoU (and get ▲ rounds) while it
    has given up a class random's head finds: the tables above would not
    show it.
    """
    if "random" not in last:
        return []
    r_round, r_iou = last["random"]
    lines = []
    for s, (n, iou) in last.items():
        if s == "random" or n != r_round:
            continue
        lost = [f"{name} {_iou_cells(np.array([v]))} against {r:.3f}" for name, v, r in zip(names, iou, r_iou)
                if np.isfinite(r) and r >= GIVEN_UP_MIN_IOU and not (np.isfinite(v) and v >= GIVEN_UP_SHARE * r)]
        if lost:
            lines.append(f"{s} at r{n} scores under half of random's IoU on {', '.join(lost)}: its head has nearly "
                         f"given up these classes, whatever its mIoU.")
    return [line for text in lines for line in ("", text)]


def _label_share_table(results_dir: Path, runs: dict[str, list[list[dict]]], order: list[str]) -> list[str]:
    """Markdown lines of the labels-per-class table (see :func:`_class_tables`); none without projects."""
    lines: list[str] = []
    shares = []
    for s in order:
        folders = [results_dir / s / f"seed{r[0]['seed']}" for r in runs[s] if "seed" in r[0]]
        if not folders or not all((f / "project.sqlite").exists() for f in folders):
            continue
        counts: Counter = Counter()
        for folder in folders:  # update keeps the classes no seed labeled (count 0), unlike "+"
            counts.update(LabelingProject(folder).status()["per_class"])
        total = sum(counts.values())
        shares.append((s, total, counts))
    if shares:
        labels = list(shares[0][2])
        lines += ["", "Share of the labeled pixels per class (%, all rounds and seeds; void = the pixel's label "
                      "is 'ignore'):", "",
                  "| strategy | labeled pixels | " + " | ".join(labels) + " |", "|---" * (len(labels) + 2) + "|"]
        for s, total, counts in shares:
            lines.append(f"| {s} | {total} | " + " | ".join(f"{100 * counts.get(c, 0) / max(total, 1):.1f}"
                                                             for c in labels) + " |")
    return lines


def plot_learning_curves(results_dir: str | Path, out_png: str | Path | None = None, title: str | None = None) -> Path:
    """mIoU against labeled pixels, one curve per strategy (mean, band = +-1 std over seeds).

    The y axis starts at 0 (and ends at the next tenth above the highest
    value, at most 1), so a change looks as large as it is against the whole
    score rather than against the spread of the curves.

    Parameters
    ----------
    results_dir : path
    out_png : path, optional
        Default ``results_dir/miou.png``.
    title : str, optional
        First title line, e.g. the dataset; default: the results folder's
        name. The second line says what is plotted (strategies, seeds,
        pixels per round).

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
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    top = 0.0
    for strategy, st in sorted(stats.items()):
        line, = ax.plot(st["labeled"], st["mean"], marker="o", ms=3, label=f"{strategy} ({_seeds(st['n_seeds'])})")
        if st["n_seeds"] > 1:
            ax.fill_between(st["labeled"], st["mean"] - st["std"], st["mean"] + st["std"], color=line.get_color(),
                            alpha=0.2)
        top = max(top, np.nanmax(st["mean"] + st["std"], initial=0.0))
    full = full_supervision(results_dir)
    if full:
        ax.axhline(np.mean(full), color="k", ls="--", lw=1, label=f"full supervision ({np.mean(full):.3f})")
        top = max(top, float(np.mean(full)))
    ax.set_ylim(0.0, min(1.0, np.floor(top * 10 + 1) / 10))
    seeds = sorted({st["n_seeds"] for st in stats.values()})
    per_round = next(iter(stats.values()))["labeled"][0]
    what = (f"mIoU after each round: {len(stats)} strateg{'ies' if len(stats) != 1 else 'y'}, "
            f"{_seeds(seeds[0]) if len(seeds) == 1 else ', '.join(map(str, seeds[:-1])) + f' or {seeds[-1]} seeds'}"
            f"{' each' if len(stats) > 1 and len(seeds) == 1 else ''}, {per_round} pixels labeled per round")
    ax.set_title(f"{title or results_dir.resolve().name}\n{what}", fontsize=10)
    ax.set_xlabel("labeled pixels (cumulative, whole pool)")
    ax.set_ylabel("mIoU (0 to 1; axis from 0)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: never over a curve
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def plot_queried_pixels(
    pool: SegmentationSplit, run_dir: str | Path, out_png: str | Path | None = None, n_images: int | None = None
) -> Path:
    """Every pool image that received labels, with each queried pixel as a dot coloured by its round.

    Images are laid out in pool order on a near-square grid whose cells
    shrink as the number of images grows (3 inches across up to 16 images,
    a 12-inch-wide figure beyond); dots at image borders are drawn whole.

    Parameters
    ----------
    pool : SegmentationSplit
        The run's pool (images looked up by name).
    run_dir : path
        Holds the run's ``state.json``.
    out_png : path, optional
        Default ``run_dir/queried_pixels.png``.
    n_images : int, optional
        Show only the ``n_images`` images with the most labels (still in pool
        order); default: every image that received labels.

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
    from matplotlib.colors import BoundaryNorm

    run_dir = Path(run_dir)
    state = json.loads((run_dir / "state.json").read_text())
    budget = state["budget"]
    labeled = state["labeled_pixels"]
    counts: dict[str, int] = {}
    for name, _ in labeled:
        counts[name] = counts.get(name, 0) + 1
    counts_all = dict(counts)
    if n_images is not None:
        counts = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n_images])
    shown = [n for n in pool.names if n in counts]  # pool order: easy to find an image
    n_rounds = max(1, -(-len(labeled) // budget))
    cmap = plt.get_cmap("viridis", n_rounds)
    n = max(1, len(shown))
    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    cell = 3.0 if n <= 16 else 12.0 / cols  # inches per image
    h, w = pool.images.shape[1:3]
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols + 1.0, cell * rows * h / w + 0.6), squeeze=False,
                             layout="constrained")
    fig.get_layout_engine().set(wspace=0.04, hspace=0.04)  # room for the dots on image borders
    scale = min(1.0, max(0.5, cell / 3.0))  # markers shrink with the cells, but stay visible
    dot = 22 * scale  # marker area, points^2
    index = {name: i for i, name in enumerate(pool.names)}
    for ax in axes.flat:
        ax.axis("off")
    for ax, name in zip(axes.flat, shown):
        ax.imshow(pool.images[index[name]])
        mine = [(k, flat) for k, (m, flat) in enumerate(labeled) if m == name]
        ks = np.array([k for k, _ in mine])
        flat = np.array([f for _, f in mine])
        # clip_on=False: a pixel on the image border gets its whole dot, not half of it.
        ax.scatter(flat % w, flat // w, s=dot, c=ks // budget, cmap=cmap, vmin=-0.5, vmax=n_rounds - 0.5,
                   edgecolors="white", linewidths=0.6 * scale, clip_on=False)
        ax.set_title(f"{name} ({counts[name]} px)", fontsize=8 if n <= 16 else 6)
    norm = BoundaryNorm(np.arange(n_rounds + 1) - 0.5, n_rounds)
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes.ravel().tolist(), fraction=0.02,
                       ticks=np.arange(n_rounds))
    bar.set_label("round in which the pixel was labeled")
    which = "every one shown" if len(shown) == len(counts_all) else f"the {len(shown)} with the most shown"
    fig.suptitle(f"{len(labeled)} labeled pixels ({budget} per round, {n_rounds} round{'s' if n_rounds != 1 else ''}) "
                 f"in {len(counts_all)} of the {len(pool)} pool images, {which}", fontsize=10)
    out_png = Path(out_png) if out_png else run_dir / "queried_pixels.png"
    fig.savefig(out_png, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out_png
