"""Do MaxHerding's picks chase the image border? Their share within a few pixels of it, with and without padding.

The UNet's convolutions pad with zeros, so the diffusion features of pixels
near the border differ from those inside; diversity sampling then spends
picks there (issue 26 measured 17.6 % of MaxHerding's picks within 2 px of
the border of 512 px microscopy, against a 6.2 % area share).
``DiffusionFeaturizer(pad=P)`` reflects the noised input by P pixels first.
For each ``--pads`` value this script draws the runner's candidate pixels
(2,500 per image, the pool's valid pixels), featurizes them, runs stage 1
as the runner does (per-image MaxHerding of ``--local-budget`` pixels, then
a global MaxHerding keeping ``--keep-global`` of them) and prints, for the
candidates (what random picks), the local picks and the kept pool, the
share within ``--margin`` pixels of the image border, and that share over
the border's share of the area (the region of interest's, when the dataset
has one). With a region of interest (DRIVE's field of view, which never
reaches DRIVE's image border), the same for the pixels within ``--margin``
of the region's own edge: real image content there, not padding, so a
measure of what diversity does at the field's rim. Two threads; the
featurizing times are only indicative (they were taken beside other work).

    python benchmarks/border_picks.py --data camvid --images 40 --size 128 --pads 0 8 16
    python benchmarks/border_picks.py --data drive --images 20 --size 565 --pads 0 8 16
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from _common import DEFAULT_DATA, REPO
from scipy import ndimage
from skal_seg.datasets import dataset_spec, load_dataset
from skal_seg.engine.features import candidate_pixels
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.herding import MaxHerdingSampler

DRIVE = (REPO / ".." / "shared" / "data" / "drive").resolve()
DRIVE_FLAGS = {"images": "training/images/{id}_training.tif", "labels": "training/1st_manual/{id}_manual1.gif",
               "roi": "training/mask/{id}_training_mask.gif", "test_images": "testing/images/{id}_test.tif",
               "test_labels": "testing/1st_manual/{id}_manual1.gif", "test_roi": "testing/mask/{id}_test_mask.gif",
               "label_map": "0:background,255:vessel"}


def near_border(flat: np.ndarray, shape: tuple[int, int], margin: int) -> np.ndarray:
    """Whether each flat pixel index of an (H, W) grid lies within ``margin`` pixels of the image border."""
    h, w = shape
    y, x = flat // w, flat % w
    return (y < margin) | (x < margin) | (y >= h - margin) | (x >= w - margin)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", choices=["camvid", "drive"], default="camvid")
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--pads", type=int, nargs="+", default=[0, 8, 16])
    p.add_argument("--local-budget", type=int, default=50)
    p.add_argument("--keep-global", type=float, default=0.5)
    p.add_argument("--candidates", type=int, default=2500)
    p.add_argument("--margin", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    if args.data == "camvid":
        data = load_dataset(DEFAULT_DATA, dataset_spec(DEFAULT_DATA), size=args.size, pool_limit=args.images,
                            test_limit=1)
    else:
        data = load_dataset(DRIVE, dataset_spec(DRIVE, **DRIVE_FLAGS), size=args.size, pool_limit=args.images,
                            test_limit=1)
    pool = data.pool
    shape = pool.labels.shape[1:]
    area = np.zeros(shape, dtype=bool)
    area[: args.margin], area[-args.margin :], area[:, : args.margin], area[:, -args.margin :] = True, True, True, True
    region = pool.roi if pool.roi is not None else np.ones(pool.labels.shape, dtype=bool)
    border_area = float((region & area).sum() / region.sum())
    # pixels of the region within the margin of its edge (distance to the nearest pixel outside it)
    rim = np.stack([ndimage.distance_transform_edt(r) <= args.margin for r in region]) & region
    rim_area = float(rim.sum() / region.sum())
    pixels = candidate_pixels(pool, args.candidates, args.seed)
    cand = np.concatenate([near_border(px, shape, args.margin) for px in pixels])
    on_rim = [rim[i].reshape(-1)[px] for i, px in enumerate(pixels)]
    results = {"data": args.data, "images": len(pool), "size": list(shape), "margin": args.margin,
               "border_area_share": border_area, "candidates_share": float(cand.mean()), "rim_area_share": rim_area,
               "pads": {}}
    print(f"{args.data}: {len(pool)} images at {shape}, border ({args.margin} px) {100 * border_area:.2f} % of the "
          f"area, {100 * cand.mean():.2f} % of the candidates (random picks)")
    for pad in args.pads:
        t0 = time.perf_counter()
        feat = DiffusionFeaturizer(pad=pad, progress=False, output_dtype="float16").fit()
        X = feat.transform(pool.images, pixels=pixels)
        t_feat = time.perf_counter() - t0
        offsets = np.cumsum([0] + [len(px) for px in pixels])
        local_rows, local_border, local_rim = [], [], []
        for i, px in enumerate(pixels):
            if len(px) == 0:
                continue
            pick = MaxHerdingSampler(random_state=args.seed).select(X[offsets[i] : offsets[i + 1]],
                                                                    min(args.local_budget, len(px)))
            local_rows.append(offsets[i] + pick)
            local_border.append(near_border(px[pick], shape, args.margin))
            local_rim.append(on_rim[i][pick])
        local_rows = np.concatenate(local_rows)
        local_border = np.concatenate(local_border)
        local_rim = np.concatenate(local_rim)
        n_keep = int(round(args.keep_global * len(local_rows)))
        kept = MaxHerdingSampler(random_state=args.seed).select(X[local_rows], n_keep)
        kept_border = local_border[kept]
        ratio = (lambda share, of: share / of if of else None)
        row = {"local_share": float(local_border.mean()), "kept_share": float(kept_border.mean()),
               "local_ratio": ratio(float(local_border.mean()), border_area),
               "kept_ratio": ratio(float(kept_border.mean()), border_area),
               "rim_local_share": float(local_rim.mean()), "rim_kept_share": float(local_rim[kept].mean()),
               "featurize_s": round(t_feat, 1), "seconds": round(time.perf_counter() - t0, 1)}
        results["pads"][pad] = row
        x = (lambda r: "n/a" if r is None else f"{r:.2f}")
        print(f"pad {pad:3d}: local picks {100 * row['local_share']:.2f} % near the border "
              f"({x(row['local_ratio'])} x its area), kept pool {100 * row['kept_share']:.2f} % "
              f"({x(row['kept_ratio'])} x); featurize {t_feat:.1f} s, total {row['seconds']:.1f} s", flush=True)
        if pool.roi is not None:
            print(f"         region's rim: local picks {100 * row['rim_local_share']:.2f} %, kept pool "
                  f"{100 * row['rim_kept_share']:.2f} % (area {100 * rim_area:.2f} %, candidates "
                  f"{100 * np.concatenate(on_rim).mean():.2f} %)", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
