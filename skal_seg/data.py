"""Segmentation datasets on disk: one folder per split, images beside their label maps.

A dataset folder holds one sub-folder per split (``train/``, ``test/``, ...)
and optionally ``classes.txt`` (the class names, one per line; the first line
is class 0). Each split holds ``NAME.EXT`` (an image in any format PIL reads:
PNG, JPEG, TIFF, WebP, BMP, ...) beside ``NAME_label.png`` (class ids,
``255`` = ignore; PNG, TIFF or BMP: label maps must be stored losslessly).
Datasets in other layouts (file patterns, label values other than class ids,
regions of interest, Cityscapes, VOC, ...) are read by :mod:`skal_seg.datasets`
through the readers here.

The readers of image, label and region-of-interest files are in
:mod:`skal_seg.image_io`; ``read_image``, ``read_label``, ``image_size``,
``working_size``, ``image_extensions`` and ``ImageReadError`` are also
importable from here, where they were documented first.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from skal_seg.image_io import (  # noqa: F401 (ImageReadError: documented here before image_io existed)
    ImageReadError,
    image_extensions,
    image_size,
    read_image,
    read_label,
    working_size,
)

#: Label value of pixels that carry no class (not scored, teach nothing).
IGNORE_INDEX = 255

#: The 11 CamVid classes, in id order.
CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree",
    "sign/symbol", "fence", "car", "pedestrian", "bicyclist",
)

LABEL_SUFFIX = "_label"

#: File of class names in a dataset folder (one per line, the first line is class 0).
CLASSES_FILE = "classes.txt"

#: Extensions of label maps: lossless formats only (JPEG would change class ids at region borders).
LABEL_EXTENSIONS = (".png", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class SegmentationSplit:
    """Images and labels of one split, all at one working size.

    Attributes
    ----------
    images : ndarray of shape (n_images, H, W, 3), uint8
    labels : ndarray of shape (n_images, H, W), uint8
        Class ids in ``[0, n_classes)`` or :data:`IGNORE_INDEX`.
    names : tuple of str
        Image names (file stems, or the ``{id}`` of a file pattern), in the
        order of ``images``.
    roi : ndarray of shape (n_images, H, W), bool, or None, default=None
        Region of interest: the pixels that are part of the task (e.g. a
        fundus photograph's field of view). Pixels outside it are never
        candidates and never scored; the loaders also set their label to
        :data:`IGNORE_INDEX`. None: every pixel is part of the task.
    """

    images: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    roi: np.ndarray | None = None

    def __post_init__(self):
        if self.roi is not None and (self.roi.shape != self.labels.shape or self.roi.dtype != bool):
            raise ValueError(f"roi must be a bool array of the labels' shape {self.labels.shape}, "
                             f"got {self.roi.dtype} {self.roi.shape}")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def roi_mask(self) -> np.ndarray:
        """The pixels that may be candidates and are scored, before labels are looked at.

        Returns
        -------
        ndarray of shape (n_images, H, W), bool
            :attr:`roi`, or all True when the split has none. (Candidates
            of the ``"valid"`` protocol are further restricted to labels
            other than :data:`IGNORE_INDEX`, which already excludes pixels
            outside the region.)
        """
        if self.roi is None:
            return np.ones(self.labels.shape, dtype=bool)
        return self.roi

    def subset(self, indices) -> "SegmentationSplit":
        """The split restricted to ``indices`` (in that order).

        Parameters
        ----------
        indices : 1-D int array-like
            Positions in this split, in ``[-len(self), len(self))``; repeats allowed.

        Returns
        -------
        SegmentationSplit
            ``len(indices)`` images, labels, names (and regions of interest),
            in the order of ``indices``.

        Raises
        ------
        IndexError
            An index out of range (raised by NumPy indexing).
        """
        indices = np.asarray(indices, dtype=int)
        return SegmentationSplit(
            self.images[indices], self.labels[indices], tuple(self.names[i] for i in indices),
            None if self.roi is None else self.roi[indices],
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


# --------------------------------------------------------------------------- classes


def check_class_names(names: Sequence[str], where: str = "classes") -> tuple[str, ...]:
    """Validate a list of class names (class id = position).

    Parameters
    ----------
    names : sequence of str
    where : str, default="classes"
        Where the names come from, for error messages.

    Returns
    -------
    tuple of str
        The names, stripped of surrounding spaces.

    Raises
    ------
    ValueError
        Fewer than 2 or more than 255 names (255 is the ignore value), an
        empty name or a repeated one.
    """
    names = tuple(str(n).strip() for n in names)
    if not 2 <= len(names) <= IGNORE_INDEX:
        raise ValueError(f"{where}: expected 2 to {IGNORE_INDEX} class names, got {len(names)}")
    empty = [i for i, n in enumerate(names) if not n]
    if empty:
        raise ValueError(f"{where}: class {empty[0]} has an empty name (every class id needs a name)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{where}: class names repeated: {', '.join(repeated)}")
    return names


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """Class names from a text file: one per line, the first line is class 0.

    Parameters
    ----------
    path : path-like
        UTF-8 text file; blank lines at the end are ignored, blank lines
        between names are errors (they would shift every later class id).

    Returns
    -------
    tuple of str

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Bad names (see :func:`check_class_names`) or a file that is not text.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class list not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file of class names") from None
    return check_class_names(text.rstrip().splitlines(), where=str(path))


def dataset_classes(root: str | Path, names: Sequence[str] | None = None) -> tuple[tuple[str, ...], str]:
    """The class names of a dataset, and where they came from.

    Parameters
    ----------
    root : path-like
        Dataset folder.
    names : sequence of str, optional
        Names given explicitly; they win over the folder's ``classes.txt``.

    Returns
    -------
    names : tuple of str
        ``names`` if given, else ``root/classes.txt`` if it exists, else
        :data:`CAMVID_CLASSES`.
    source : str
        ``"given"``, the path of ``classes.txt``, or ``"default"`` (CamVid's 11,
        because the folder has no ``classes.txt``).

    Raises
    ------
    ValueError
        Bad names (see :func:`check_class_names`).
    """
    if names is not None:
        return check_class_names(names), "given"
    path = Path(root) / CLASSES_FILE
    if path.is_file():
        return read_class_names(path), str(path)
    return CAMVID_CLASSES, "default"


# --------------------------------------------------------------------------- files


def _names(paths: Sequence[Path], limit: int = 10) -> str:
    shown = ", ".join(p.name for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _split_pairs(split_dir: Path) -> list[tuple[str, Path, Path]]:
    """``(name, image path, label path)`` of every pair in a split folder, sorted by name."""
    if not split_dir.is_dir():
        raise FileNotFoundError(f"dataset split folder not found: {split_dir}")
    extensions = image_extensions()
    images: dict[str, list[Path]] = defaultdict(list)
    labels: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(split_dir.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in extensions:
            continue  # hidden files, folders, notes, classes.txt, ...
        if p.stem.endswith(LABEL_SUFFIX):
            labels[p.stem[: -len(LABEL_SUFFIX)]].append(p)
        else:
            images[p.stem].append(p)
    lossy = [p for ps in labels.values() for p in ps if p.suffix.lower() not in LABEL_EXTENSIONS]
    if lossy:
        raise ValueError(
            f"{split_dir}: label maps must be PNG, TIFF or BMP (lossless; JPEG compression changes class ids "
            f"at region borders), got {_names(lossy)}"
        )
    for kind, found in (("images", images), ("labels", labels)):
        twins = [ps for ps in found.values() if len(ps) > 1]
        if twins:
            raise ValueError(f"{split_dir}: {kind} with the same name in two formats: {_names(twins[0])}")
    unpaired_images = [images[n][0] for n in sorted(set(images) - set(labels))]
    unpaired_labels = [labels[n][0] for n in sorted(set(labels) - set(images))]
    if unpaired_images or unpaired_labels:
        parts = []
        if unpaired_images:
            parts.append(f"images without a NAME{LABEL_SUFFIX}.png: {_names(unpaired_images)}")
        if unpaired_labels:
            parts.append(f"labels without an image: {_names(unpaired_labels)}")
        raise ValueError(f"{split_dir}: every image NAME.EXT needs NAME{LABEL_SUFFIX}.png beside it; "
                         + "; ".join(parts))
    if not images:
        raise ValueError(f"{split_dir}: no NAME.EXT / NAME{LABEL_SUFFIX}.png pairs found")
    return [(name, images[name][0], labels[name][0]) for name in sorted(images)]


def _format_hw(hw: tuple[int, int]) -> str:
    return f"{hw[0]}x{hw[1]}"


def check_working_size(files: Sequence[tuple[Path, dict[str, Path]]], size: int | tuple[int, int] | None,
                       where: str | Path) -> tuple[int, int]:
    """The one working size of a split's images, from the file headers (nothing is decoded).

    ``SegmentationSplit`` stacks a split's images into one array, so every
    image of a split must come out at the same working size, and each file
    that goes with an image (its label map, its region of interest) must
    have the image's size.

    Parameters
    ----------
    files : sequence of (path, dict of str to path)
        Each image with the files that go with it, by what they are
        (``{"label": path, "region of interest": path}``).
    size : int, (int, int) or None
        Working size (see :func:`working_size`).
    where : str or path
        The split, for error messages.

    Returns
    -------
    (int, int)
        The working (height, width).

    Raises
    ------
    ValueError
        A file of another size than its image, or images whose working
        sizes differ (each size listed with a few image names, and the fix).
    """
    sizes: dict[tuple[int, int], list[Path]] = defaultdict(list)
    for image_path, companions in files:
        hw = image_size(image_path)
        for kind, path in companions.items():
            other = image_size(path)
            if other != hw:
                raise ValueError(f"{image_path.name} is {_format_hw(hw)} (height x width) but its {kind} "
                                 f"{path.name} is {_format_hw(other)}")
        sizes[working_size(hw, size)].append(image_path)
    if len(sizes) > 1:
        found = sorted(sizes.items(), key=lambda kv: -len(kv[1]))
        listing = "; ".join(f"{_format_hw(hw)}: {len(ps)} image{'s' if len(ps) != 1 else ''} ({_names(ps, 3)})"
                            for hw, ps in found)
        what = "sizes" if size is None else f"working sizes at size {size}"
        raise ValueError(
            f"{where}: the images of a split must share one working size, found {len(sizes)} {what} "
            f"(height x width) -- {listing}. Give one height and width (size=(H, W), --size H W) to resize "
            f"every image to it (aspect ratios change), or crop/rotate the odd images"
        )
    return next(iter(sizes))


def load_split(
    root: str | Path,
    split: str,
    size: int | tuple[int, int] | None = 128,
    n_classes: int = len(CAMVID_CLASSES),
    limit: int | None = None,
) -> SegmentationSplit:
    """Load one split of a dataset folder.

    ``SegmentationSplit`` stacks a split's images into one array, so every
    image of a split must come out at the same working size: with an int
    ``size`` (the short side) that means the same aspect ratio up to
    rounding; images of other shapes are reported by name, and ``size=(H,
    W)`` resizes every image to exactly H x W instead (changing aspect
    ratios). Nothing is cropped or padded.

    Parameters
    ----------
    root : path
        Dataset folder (holding ``split/``).
    split : str
        Sub-folder name, e.g. ``"train"``.
    size : int, (H, W) or None, default=128
        Working size (see :func:`working_size`): int = short side,
        (H, W) = exactly that, None = the files' own size.
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
        No image/label pairs, unpaired images/labels (both listed with their
        extensions), JPEG label maps, an image and its label of different
        sizes, unreadable files (:class:`ImageReadError`, naming the file),
        label values outside the classes, or images whose working sizes differ.
    """
    split_dir = Path(root) / split
    pairs = _split_pairs(split_dir)
    if limit is not None:
        pairs = pairs[:limit]
    check_working_size([(image, {"label": label}) for _, image, label in pairs], size, split_dir)
    images, labels = [], []
    for name, image_path, label_path in pairs:
        image = read_image(image_path, size)
        label = read_label(label_path, size)
        bad = np.setdiff1d(np.unique(label), np.r_[np.arange(n_classes), IGNORE_INDEX])
        if bad.size:
            raise ValueError(
                f"{label_path}: label values {bad.tolist()} are outside the {n_classes} classes "
                f"(0..{n_classes - 1}) and the ignore value {IGNORE_INDEX}; name every class in "
                f"{Path(root) / CLASSES_FILE} (one per line, the first line is class 0)"
            )
        images.append(image)
        labels.append(label)
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
    keep, out = fraction_split(len(train), fraction, seed, name="val_fraction")
    return train.subset(keep), train.subset(out)


def fraction_split(n: int, fraction: float, seed: int = 0, name: str = "fraction") -> tuple[np.ndarray, np.ndarray]:
    """A seeded draw of ``round(fraction * n)`` of ``n`` items: the one way splits are drawn.

    Parameters
    ----------
    n : int
        Number of items.
    fraction : float
        Share drawn, in ``[0, 1)``.
    seed : int, default=0
        Seed of the NumPy generator drawing the permutation.
    name : str, default="fraction"
        The setting's name, for the error message.

    Returns
    -------
    keep : ndarray of int
        Positions not drawn, sorted.
    drawn : ndarray of int
        The ``round(fraction * n)`` positions drawn, sorted.

    Raises
    ------
    ValueError
        ``fraction`` is not in ``[0, 1)``.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"{name} must be in [0, 1), got {fraction!r}")
    n_drawn = int(round(fraction * n))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_drawn:]), np.sort(perm[:n_drawn])
