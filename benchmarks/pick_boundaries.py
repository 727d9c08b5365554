"""Where do a results folder's strategies query? The share of picks next to a class boundary.

Uncertain pixels of a segmentation head sit where classes meet, and a label
there says little about either class's interior. This script reads every
``STRATEGY/seed*/state.json`` of a ``skal-seg run --out`` folder (the queried
pixels, in query order) and the pool's label maps, and reports per strategy
the share of queried pixels that have a pixel of another label (another
class or ``ignore``) within ``--radius`` pixels (Chebyshev distance, at the
working size), against the same share among all valid pool pixels. Round 0
is left out by default: it is random (or stage 1) for most strategies.

    python benchmarks/pick_boundaries.py --data ../shared/data/camvid --results results/camvid
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter, minimum_filter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import DEFAULT_DATA  # noqa: E402
from skal_seg.data import IGNORE_INDEX, load_split  # noqa: E402


def near_boundary(labels: np.ndarray, radius: int) -> np.ndarray:
    """Pixels with another label within ``radius`` (Chebyshev), per image.

    Parameters
    ----------
    labels : ndarray of shape (n_images, H, W), uint8
        Label maps; ``ignore`` counts as a label of its own.
    radius : int
        Half-width of the square neighbourhood, in pixels (at least 1).

    Returns
    -------
    ndarray of shape (n_images, H, W), bool
        True where the neighbourhood holds more than one label. Pixels at the
        image border see only the part of the square inside the image.
    """
    if radius < 1:
        raise ValueError(f"radius must be at least 1 pixel, got {radius}")
    size = (1, 2 * radius + 1, 2 * radius + 1)  # never across images
    return maximum_filter(labels, size=size, mode="nearest") != minimum_filter(labels, size=size, mode="nearest")


def pick_shares(results: Path, near: np.ndarray, names: tuple[str, ...],
                budget_rounds: slice) -> dict[str, tuple[int, float, float]]:
    """Per strategy: (number of picks, % near a boundary, std over seeds of that %).

    Parameters
    ----------
    results : Path
        A ``skal-seg run --out`` folder.
    near : ndarray of shape (n_images, H, W), bool
        :func:`near_boundary` of the pool's label maps at the runs' working size.
    names : tuple of str
        The pool's image names, in the order of ``near``.
    budget_rounds : slice
        Which rounds' picks to count (rounds are consecutive runs of the
        saved per-round budget in the query order).
    """
    near = near.reshape(len(names), -1)
    index = {name: i for i, name in enumerate(names)}
    shares: dict[str, tuple[int, float, float]] = {}
    for strategy_dir in sorted(p for p in results.iterdir() if p.is_dir()):
        per_seed, n_picks = [], 0
        for state_path in sorted(strategy_dir.glob("seed*/state.json")):
            state = json.loads(state_path.read_text())
            budget = state["budget"]
            picks = state["labeled_pixels"][budget_rounds.start * budget:
                                            None if budget_rounds.stop is None else budget_rounds.stop * budget]
            missing = sorted({name for name, _ in picks if name not in index})
            if missing:
                raise ValueError(f"{state_path}: images not in the pool: {missing[:5]}")
            if picks:
                hits = [near[index[name], pixel] for name, pixel in picks]
                per_seed.append(100.0 * np.mean(hits))
                n_picks += len(picks)
        if per_seed:
            shares[strategy_dir.name] = (n_picks, float(np.mean(per_seed)),
                                         float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan"))
    return shares


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the dataset folder the runs used")
    parser.add_argument("--results", type=Path, required=True, help="a 'skal-seg run --out' folder")
    parser.add_argument("--size", type=int, default=128, help="the runs' working size (short side, pixels)")
    parser.add_argument("--radius", type=int, default=2, help="neighbourhood half-width (pixels at --size)")
    parser.add_argument("--first-round", type=int, default=1, help="first round whose picks count (0: all)")
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        parser.error(f"--results {args.results} is not a folder")
    pool = load_split(args.data, "train", size=args.size)
    near = near_boundary(pool.labels, args.radius)
    valid = pool.labels != IGNORE_INDEX
    base = 100.0 * near[valid].mean()
    shares = pick_shares(args.results, near, pool.names, slice(args.first_round, None))
    print(f"picks of rounds {args.first_round}+ with another label within {args.radius} px "
          f"(at {args.size} px); all valid pool pixels: {base:.1f}%\n")
    print("| strategy | picks | near a boundary (%, mean ± std over seeds) |")
    print("| --- | --- | --- |")
    for strategy, (n, mean, std) in shares.items():
        print(f"| {strategy} | {n} | {mean:.1f} ± {std:.1f} |")


if __name__ == "__main__":
    main()
