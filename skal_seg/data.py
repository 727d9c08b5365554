"""Segmentation datasets on disk: the CamVid folder layout.

A dataset folder holds one sub-folder per split (``train/``, ``test/``, ...);
each split holds ``NAME.png`` (RGB image) beside ``NAME_label.png`` (8-bit
class ids, ``255`` = ignore).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

#: Label value of pixels that carry no class (not scored, teach nothing).
IGNORE_INDEX = 255

#: The 11 CamVid classes, in id order.
CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree",
    "sign/symbol", "fence", "car", "pedestrian", "bicyclist",
)

LABEL_SUFFIX = "_label"


@dataclass(frozen=True)
class SegmentationSplit:
    """Images and labels of one split, all at one working size.

    Attributes
    ----------
    images : ndarray of shape (n_images, H, W, 3), uint8
    labels : ndarray of shape (n_images, H, W), uint8
        Class ids in ``[0, n_classes)`` or :data:`IGNORE_INDEX`.
    names : tuple of str
        Image names (file stems), in the order of ``images``.
    """

    images: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices) -> "SegmentationSplit":
        """The split restricted to ``indices`` (in that order).

        Parameters
        ----------
        indices : 1-D int array-like
            Positions in this split, in ``[-len(self), len(self))``; repeats allowed.

        Returns
        -------
        SegmentationSplit
            ``len(indices)`` images, labels and names, in the order of ``indices``.

        Raises
        ------
        IndexError
            An index out of range (raised by NumPy indexing).
        """
        indices = np.asarray(indices, dtype=int)
        return SegmentationSplit(
            self.images[indices], self.labels[indices], tuple(self.names[i] for i in indices)
        )


def sample_dataset_dir() -> Path:
    """Folder of the small CamVid sample shipped with the package (see its README).

    Returns
    -------
    pathlib.Path
        The ``skal_seg/assets/camvid_sample`` folder, a dataset root for
        :func:`load_split`.
    """
    return Path(str(resources.files("skal_seg") / "assets" / "camvid_sample"))


def _split_pairs(split_dir: Path) -> list[tuple[str, Path, Path]]:
    if not split_dir.is_dir():
        raise FileNotFoundError(f"dataset split folder not found: {split_dir}")
    pngs = sorted(split_dir.glob("*.png"))
    labels = {p.stem[: -len(LABEL_SUFFIX)]: p for p in pngs if p.stem.endswith(LABEL_SUFFIX)}
    images = {p.stem: p for p in pngs if not p.stem.endswith(LABEL_SUFFIX)}
    unpaired_images = sorted(set(images) - set(labels))
    unpaired_labels = sorted(set(labels) - set(images))
    if unpaired_images or unpaired_labels:
        raise ValueError(
            f"{split_dir}: every NAME.png needs a NAME{LABEL_SUFFIX}.png beside it; "
            f"images without labels: {unpaired_images[:5]}, labels without images: {unpaired_labels[:5]}"
        )
    if not images:
        raise ValueError(f"{split_dir}: no NAME.png / NAME{LABEL_SUFFIX}.png pairs found")
    return [(name, images[name], labels[name]) for name in sorted(images)]


def read_image(path: Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as RGB, bilinearly resized to ``size`` if given.

    Parameters
    ----------
    path : path-like
        Image file (any mode PIL can convert to RGB).
    size : int or (int, int) or None, default=None
        Output size (H, W) in pixels (int = square); None keeps the file's size.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist (raised by ``PIL.Image.open``).
    """
    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None:
            h, w = _as_hw(size)
            if im.size != (w, h):
                im = im.resize((w, h), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def read_label(path: Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read an 8-bit label map, nearest-neighbour resized to ``size`` if given.

    Parameters
    ----------
    path : path-like
        Single-channel 8-bit PNG (mode ``"L"`` or ``"P"``) of class ids.
    size : int or (int, int) or None, default=None
        Output size (H, W) in pixels (int = square); None keeps the file's size.

    Returns
    -------
    ndarray of shape (H, W), uint8
        The stored values (palette indices for mode ``"P"``).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist (raised by ``PIL.Image.open``).
    ValueError
        The image is not in mode ``"L"`` or ``"P"``.
    """
    with Image.open(path) as im:
        if im.mode not in ("L", "P"):
            raise ValueError(f"{path}: label maps must be 8-bit single-channel PNGs, got mode {im.mode}")
        if size is not None:
            h, w = _as_hw(size)
            if im.size != (w, h):
                im = im.resize((w, h), Image.NEAREST)
        return np.asarray(im, dtype=np.uint8)


def _as_hw(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def load_split(
    root: str | Path,
    split: str,
    size: int | tuple[int, int] | None = 128,
    n_classes: int = len(CAMVID_CLASSES),
    limit: int | None = None,
) -> SegmentationSplit:
    """Load one split of a dataset folder.

    Parameters
    ----------
    root : path
        Dataset folder (holding ``split/``).
    split : str
        Sub-folder name, e.g. ``"train"``.
    size : int or (H, W) or None, default=128
        Working size; ``None`` keeps the files' size (which must then agree).
    n_classes : int, default=11
        Label values must be in ``[0, n_classes)`` or 255.
    limit : int or None, default=None
        Load only the first ``limit`` images (sorted by name).

    Returns
    -------
    SegmentationSplit
        ``images`` uint8 (n_images, H, W, 3), ``labels`` uint8
        (n_images, H, W), ``names`` sorted.

    Raises
    ------
    FileNotFoundError
        The folder or split does not exist.
    ValueError
        No image/label pairs, unpaired images/labels, an image and its label
        of different sizes, a label map that is not 8-bit single-channel,
        label values outside the classes, or differing sizes with ``size=None``.
    """
    pairs = _split_pairs(Path(root) / split)
    if limit is not None:
        pairs = pairs[:limit]
    images, labels = [], []
    for name, image_path, label_path in pairs:
        with Image.open(image_path) as im, Image.open(label_path) as lab:
            if im.size != lab.size:
                raise ValueError(
                    f"{image_path.name} is {im.size[0]}x{im.size[1]} but its label is "
                    f"{lab.size[0]}x{lab.size[1]}"
                )
        image = read_image(image_path, size)
        label = read_label(label_path, size)
        bad = np.setdiff1d(np.unique(label), np.r_[np.arange(n_classes), IGNORE_INDEX])
        if bad.size:
            raise ValueError(
                f"{label_path}: label values {bad.tolist()} are outside the {n_classes} classes "
                f"(0..{n_classes - 1}) and the ignore value {IGNORE_INDEX}"
            )
        images.append(image)
        labels.append(label)
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(f"images in {Path(root) / split} differ in size {sorted(shapes)}; pass size=")
    return SegmentationSplit(np.stack(images), np.stack(labels), tuple(p[0] for p in pairs))


def split_validation(train: SegmentationSplit, fraction: float = 0.1, seed: int = 0):
    """Carve a validation split out of ``train``: ``(pool, val)``.

    ``round(fraction * len(train))`` images, drawn with ``seed``, go to
    ``val`` (for choosing hyper-parameters) and are kept out of the pool.
    The draw does not depend on the run's seed, so every run shares it.

    Parameters
    ----------
    train : SegmentationSplit
        The split to divide.
    fraction : float, default=0.1
        Share of images that go to ``val``, in ``[0, 1)``.
    seed : int, default=0
        Seed of the NumPy generator drawing the permutation.

    Returns
    -------
    pool : SegmentationSplit
        The remaining images, in their original order.
    val : SegmentationSplit
        The validation images, in their original order (empty when
        ``round(fraction * len(train)) == 0``).

    Raises
    ------
    ValueError
        ``fraction`` is not in ``[0, 1)``.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction!r}")
    n_val = int(round(fraction * len(train)))
    perm = np.random.default_rng(seed).permutation(len(train))
    return train.subset(np.sort(perm[n_val:])), train.subset(np.sort(perm[:n_val]))
