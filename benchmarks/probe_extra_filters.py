"""Filters the filter bank does not have, beside its line detector, on DRIVE: do they reach issue 26's 0.80?

The same random-forest pixel probe as ``probe_filter_bank.py`` (its splits,
draws, forests and scoring, imported from it), on the bank the DRIVE
recommendation uses (``FilterBankFeaturizer(line_lengths=(5, 9, 13, 17))``,
43 columns) with extra columns:

- ``lcn``: the image replaced by its local contrast normalisation (each
  channel minus its Gaussian-weighted mean inside the field of view, over
  its local standard deviation, ``--lcn-sigma`` px), the usual fix for
  uneven fundus illumination;
- ``lcn_beside``: the same bank on the normalised image, beside the bank
  on the original (86 columns);
- ``gabor``: the maximum over 12 orientations of the real (even) Gabor
  response of the inverted green channel (vessels are dark), one column
  per ``--wavelengths`` value in px (envelope sigma 0.56 x the wavelength,
  aspect 0.5), after removing the background (a 20 px Gaussian); the
  filter of Soares et al. (2006) for retinal vessels, in its real form;
- ``gabor_modulus``: the same with the modulus of the complex response.

    OMP_NUM_THREADS=1 python benchmarks/probe_extra_filters.py --split val --configs lcn lcn_beside gabor gabor_modulus
    OMP_NUM_THREADS=1 python benchmarks/probe_extra_filters.py --split test --configs gabor

Prints one JSON line per configuration, as ``probe_filter_bank.py`` does.
An experiment, not a featurizer: the columns are computed on whole images
here and sampled at the probe's pixels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from probe_filter_bank import REPO, probe, train_and_evaluation
from scipy import ndimage, signal

from skal_seg.filter_bank import FilterBankFeaturizer

LINES = dict(line_lengths=(5, 9, 13, 17))
CONFIGS = ("lcn", "lcn_beside", "gabor", "gabor_modulus")
ORIENTATIONS = 12


def local_contrast(image: np.ndarray, fov: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W, 3) uint8: each channel's local z-score inside ``fov`` (Gaussian window ``sigma``), 40 levels per sd."""
    weight = ndimage.gaussian_filter(fov.astype(float), sigma) + 1e-6
    out = np.empty(image.shape, np.uint8)
    for c in range(3):
        x = image[..., c].astype(float) * fov
        mean = ndimage.gaussian_filter(x, sigma) / weight
        var = ndimage.gaussian_filter(x * x, sigma) / weight - mean * mean
        z = (x - mean) / np.sqrt(np.maximum(var, 1.0))
        out[..., c] = np.clip(z * 40 + 128, 0, 255).astype(np.uint8)
    return out


def gabor_maxima(green: np.ndarray, wavelengths: tuple[float, ...], modulus: bool) -> np.ndarray:
    """(H, W, len(wavelengths)) float32: per wavelength, the largest response over the orientations."""
    x = 255.0 - green.astype(float)
    x = x - ndimage.gaussian_filter(x, 20)  # the background, so the even filter answers to vessels only
    columns = []
    for wavelength in wavelengths:
        sigma = 0.56 * wavelength
        r = int(3 * sigma)
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        best = None
        for k in range(ORIENTATIONS):
            theta = np.pi * k / ORIENTATIONS
            along = xx * np.cos(theta) + yy * np.sin(theta)
            across = -xx * np.sin(theta) + yy * np.cos(theta)
            envelope = np.exp(-(along ** 2 + (0.5 * across) ** 2) / (2 * sigma ** 2))
            even = envelope * np.cos(2 * np.pi * along / wavelength)
            response = signal.fftconvolve(x, even - even.mean(), mode="same")
            if modulus:
                odd = envelope * np.sin(2 * np.pi * along / wavelength)
                response = np.hypot(response, signal.fftconvolve(x, odd, mode="same"))
            best = response if best is None else np.maximum(best, response)
        columns.append(best)
    return np.stack(columns, -1).astype(np.float32)


class ExtraColumns:
    """The probe's featurizer over stacked planes: the lines bank on the image (channels 0-2) unless ``lcn`` replaces
    it, the bank on the normalised image (the next 3) for ``lcn`` and ``lcn_beside``, then any extra columns as is."""

    def __init__(self, config: str):
        self.config = config

    def _banks(self):
        """(first channel, bank) for each bank this configuration uses."""
        if self.config == "lcn":
            return [(0, self.normalised_)]
        if self.config == "lcn_beside":
            return [(0, self.original_), (3, self.normalised_)]
        return [(0, self.original_)]

    def fit(self, images):
        self.original_ = FilterBankFeaturizer(progress=False, **LINES)
        self.normalised_ = FilterBankFeaturizer(progress=False, **LINES)
        for first, bank in self._banks():
            bank.fit([im[..., first:first + 3].astype(np.uint8) for im in images])
        self.n_bank_channels_ = 3 * len(self._banks())
        return self

    def transform(self, images, pixels):
        parts = [bank.transform([im[..., first:first + 3].astype(np.uint8) for im in images], pixels=pixels)
                 for first, bank in self._banks()]
        k = self.n_bank_channels_
        if images[0].shape[-1] > k:
            extra = [im[..., k:].reshape(-1, im.shape[-1] - k)[p] for im, p in zip(images, pixels)]
            parts.append(np.concatenate(extra))
        return np.concatenate(parts, axis=1, dtype=np.float32)


def stacked(part, config: str, args) -> tuple:
    """(images, labels, masks), each image as float32 planes: the original unless ``lcn`` replaces it, the normalised
    image for the ``lcn`` configurations, the Gabor maxima for the ``gabor`` ones."""
    images, labels, masks = part
    out = []
    for image, fov in zip(images, masks):
        planes = [] if config == "lcn" else [image.astype(np.float32)]
        if config.startswith("lcn"):
            planes.append(local_contrast(image, fov, args.lcn_sigma).astype(np.float32))
        if config.startswith("gabor"):
            planes.append(gabor_maxima(image[..., 1], tuple(args.wavelengths), modulus=config == "gabor_modulus"))
        out.append(np.concatenate(planes, axis=-1))
    return out, labels, masks


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str((REPO / ".." / "shared" / "data" / "drive").resolve()))
    ap.add_argument("--split", choices=["val", "test"], default="val")
    ap.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    ap.add_argument("--wavelengths", nargs="+", type=float, default=[4, 6, 8, 12])
    ap.add_argument("--lcn-sigma", type=float, default=8.0)
    ap.add_argument("--sizes", nargs="+", type=int, default=[40000, 200])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = ap.parse_args(argv)
    train, evaluation, _ = train_and_evaluation(Path(args.data), args.split)
    for config in args.configs:
        parts = stacked(train, config, args), stacked(evaluation, config, args)
        results, seconds = probe({}, *parts, args.sizes, args.seeds, featurizer=ExtraColumns(config))
        print(json.dumps({"config": config, "split": args.split, "wavelengths": args.wavelengths,
                          "results": results, "featurize_seconds": round(seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
