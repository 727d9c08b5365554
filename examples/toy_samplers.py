"""Inspect the samplers on toy 2-D data: what MaxHerding and eDALD pick, and checks you can assert.

No diffusion model is involved: each point stands for one pixel's feature
vector, drawn near one of four class centres (two of them overlap, so the
classifier is unsure between them), and the "noisy diffusion views" eDALD
needs are the points plus a little Gaussian noise. Everything runs in a few
seconds on a CPU, which makes this the place to unit-test a sampler or tune
its settings before spending time on real features.

    python examples/toy_samplers.py                        # writes results/toy_samplers.png
    python examples/toy_samplers.py --smoke --out /tmp/x.png

The figure has three panels: MaxHerding's picks (round 0, no labels yet),
the eDALD score of every point after training on those picks (and eDALD's
own picks), and what the two-stage query picks in round 1.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skal_seg import EDALDSampler, MaxHerdingSampler, TwoStageQuery  # noqa: E402
from skal_seg.classifier import TorchMLPClassifier  # noqa: E402
from skal_seg.uncertainty import entropy_score  # noqa: E402


def coverage(X, picks, bandwidth):
    """Generalized coverage mean_i max_{j in picks} k(x_i, x_j) of an RBF kernel (what MaxHerding maximises)."""
    d2 = ((X[:, None, :] - X[None, picks, :]) ** 2).sum(-1)
    return float(np.exp(-d2 / bandwidth**2).max(1).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: runs in seconds (used by the tests)")
    parser.add_argument("--out", default="results/toy_samplers.png", help="PNG to write")
    args = parser.parse_args(argv)

    n_points = 300 if args.smoke else 1200  # 'pixels'
    n_pick = 12  # labels per round
    min_steps = 100 if args.smoke else 500  # classifier optimizer steps

    # ---- toy data: four classes, classes 2 and 3 overlap ------------------------------
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [1.5, 6.0]])
    y = rng.integers(0, 4, size=n_points)
    X = centres[y] + rng.normal(scale=0.9, size=(n_points, 2))
    groups = np.repeat(np.arange(6), -(-n_points // 6))[:n_points]  # six 'images'
    # K = 5 noisy views of every row, standing in for DiffusionFeaturizer.noisy_views.
    X_noisy = X[None] + rng.normal(scale=0.4, size=(5, n_points, 2))

    # ---- stage 1 alone: MaxHerding ----------------------------------------------------
    # bandwidth="auto" (2 x the median pairwise distance) suits high-dimensional diffusion features;
    # on 2-D points it is so wide that every kernel value is near 1, so a fixed scale shows the spread better.
    herding = MaxHerdingSampler(bandwidth=1.0, random_state=0)
    picks = herding.select(X, n_pick)
    gains = herding.gains_
    random_picks = rng.choice(n_points, n_pick, replace=False)
    cov_h, cov_r = coverage(X, picks, herding.bandwidth_), coverage(X, random_picks, herding.bandwidth_)
    print(f"MaxHerding: bandwidth {herding.bandwidth_:.3f}, picked {picks.tolist()}")
    print(f"  classes of the picks: {np.bincount(y[picks], minlength=4).tolist()} (per class)")
    print(f"  coverage {cov_h:.3f} vs {cov_r:.3f} for {n_pick} random points")
    # Checks worth asserting in a unit test of a sampler:
    assert len(set(picks.tolist())) == n_pick, "picks are unique"
    assert np.all(np.diff(gains) <= 1e-9), "greedy gains never increase (coverage is submodular)"
    assert np.array_equal(picks, MaxHerdingSampler(bandwidth=1.0, random_state=0).select(X, n_pick)), "same seed, same picks"
    assert cov_h >= cov_r, "herding covers at least as well as random points"

    # ---- stage 2 alone: eDALD over every point ----------------------------------------
    clf = TorchMLPClassifier(min_steps=min_steps, random_state=0).fit(X[picks], y[picks])
    edald = EDALDSampler()
    scores = edald.scores(clf, X, X_noisy)
    unlabeled = np.setdiff1d(np.arange(n_points), picks)
    edald_picks = unlabeled[edald.query(clf, X[unlabeled], n_pick, X_noisy=X_noisy[:, unlabeled])]
    entropy = entropy_score(clf.predict_proba(X))
    print(f"eDALD: classifier accuracy {clf.score(X, y):.3f} after {n_pick} labels")
    print(f"  mean entropy of eDALD's picks {entropy[edald_picks].mean():.3f} nats "
          f"vs {entropy.mean():.3f} over all points")
    assert entropy[edald_picks].mean() >= entropy.mean(), "eDALD picks uncertain points"

    # ---- both stages: round 1 of the two-stage query ----------------------------------
    query = TwoStageQuery(local_budget=10, keep_global=0.5, herding=MaxHerdingSampler(bandwidth=1.0), random_state=0)
    two_stage_picks = unlabeled[query.query(clf, X[unlabeled], n_pick, groups=groups[unlabeled],
                                            X_noisy=X_noisy[:, unlabeled], X_labeled=X[picks])]
    pool = unlabeled[query.candidate_pool_]
    print(f"two-stage: local stage kept {len(query.local_picks_)}, global stage kept {len(pool)}, "
          f"eDALD picked {two_stage_picks.tolist()}")

    # ---- the figure -------------------------------------------------------------------
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), sharex=True, sharey=True)
    ax = axes[0]
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="tab10", vmin=0, vmax=9, s=8, alpha=0.4)
    ax.scatter(X[random_picks, 0], X[random_picks, 1], marker="x", c="grey", s=40, label=f"random (C={cov_r:.2f})")
    ax.scatter(X[picks, 0], X[picks, 1], marker="*", c="k", s=160, label=f"MaxHerding (C={cov_h:.2f})")
    ax.set_title("round 0: MaxHerding picks (no labels)")
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[1]
    sc = ax.scatter(X[:, 0], X[:, 1], c=scores, cmap="viridis", s=8)
    fig.colorbar(sc, ax=ax, label="eDALD (nats)")
    ax.scatter(X[picks, 0], X[picks, 1], marker="*", c="k", s=120, label="labeled")
    ax.scatter(X[edald_picks, 0], X[edald_picks, 1], marker="o", facecolors="none", edgecolors="r", s=90,
               label="eDALD top picks")
    ax.set_title("eDALD score after training on those labels")
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[2]
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="tab10", vmin=0, vmax=9, s=8, alpha=0.25)
    ax.scatter(X[pool, 0], X[pool, 1], marker="s", facecolors="none", edgecolors="b", s=30,
               label="stage 1 candidate pool")
    ax.scatter(X[two_stage_picks, 0], X[two_stage_picks, 1], marker="o", c="r", s=60, label="stage 2 picks")
    ax.set_title("round 1: two-stage query")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
