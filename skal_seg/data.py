"""Segmentation datasets on disk: one folder per split, images beside their label maps.

A dataset folder holds one sub-folder per split (``train/``, ``test/``, ...)
and optionally ``classes.txt`` (the class names, one per line; the first line
is class 0). Each split holds ``NAME.EXT`` (an image in any format PIL reads:
PNG, JPEG, TIFF, WebP, BMP, ...) beside ``NAME_label.png`` (class ids,
``255`` = ignore; PNG, TIFF or BMP: label maps must be stored losslessly).
Datasets in other layouts (file patterns, label values other than class ids,
regions of interest, Cityscapes, VOC, ...) are read by :mod:`skal_seg.datasets`
through the readers here.

:func:`read_image` is the one image reader of the package: the runner, the
DDPM trainer and anything that shows images to a person read through it, so
every format, mode and error is handled once; :func:`as_rgb` is the one
conversion of image *arrays* (grayscale, 16-bit, float) that it and
:class:`~skal_seg.featurizer.DiffusionFeaturizer` share.
:func:`read_label_values` is the one label reader (stored values, palette
indices for palette images), :func:`read_roi` the one reader of
region-of-interest masks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

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

_EXIF_ORIENTATION = 0x0112  # EXIF tag; values 5-8 swap width and height


class ImageReadError(ValueError):
    """An image or label file that cannot be used; the message names the file and why."""


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


def image_extensions() -> frozenset[str]:
    """File extensions (lower case, with the dot) of every image format PIL can read here.

    Returns
    -------
    frozenset of str
    """
    Image.init()  # registers every plugin; the first call only
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


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


def _open(path: Path) -> Image.Image:
    """Open and decode an image file (upright per its EXIF orientation), or fail with one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file fails here, not later without its name
            fmt = im.format
            upright = ImageOps.exif_transpose(im)
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"{path}: {err}") from None
    except Image.UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file PIL can read (unknown or corrupt contents)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # PIL's decoder errors
        raise ImageReadError(f"{path}: cannot read the image ({err})") from None
    upright.format = fmt  # exif_transpose returns a copy without it
    return upright


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file as :func:`read_image` returns it, read from its header.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    (int, int)
        Upright size: EXIF orientations that rotate by 90 degrees swap it.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ImageReadError
        Not an image PIL can identify.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            w, h = im.size
            rotated = im.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    except Image.UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file PIL can read (unknown or corrupt contents)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageReadError(f"{path}: cannot read the image ({err})") from None
    return (w, h) if rotated else (h, w)


def working_size(hw: tuple[int, int], size: int | tuple[int, int] | None) -> tuple[int, int]:
    """The (H, W) an image of size ``hw`` is resized to.

    Parameters
    ----------
    hw : (int, int)
        The image's own (height, width).
    size : int, (int, int) or None
        int: the short side becomes ``size``, the long side keeps the aspect
        ratio (rounded to whole pixels); (H, W): exactly that; None: ``hw``.

    Returns
    -------
    (int, int)

    Raises
    ------
    ValueError
        A size below 1.
    """
    if size is None:
        return int(hw[0]), int(hw[1])
    if isinstance(size, (int, np.integer)):
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        h, w = hw
        short = min(h, w)
        return (int(size), max(1, round(w * size / short))) if h == short else (max(1, round(h * size / short)), int(size))
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size}")
    return h, w


def as_rgb(image, where: str = "image", *, stacked: bool = False) -> np.ndarray:
    """An image array as RGB, channels last: the one conversion of array images.

    :func:`read_image` (for the decoded file) and
    :class:`~skal_seg.featurizer.DiffusionFeaturizer` (for the arrays it is
    given) both go through here, so a grayscale, 16-bit or float image means
    the same thing whichever way it comes in.

    * Shape: ``(H, W)`` and ``(H, W, 1)`` are grayscale, replicated to three
      channels; ``(H, W, 3)`` is RGB. With ``stacked=True``, a stack
      ``(n, H, W, 1)`` or ``(n, H, W, 3)``. Alpha channels are not taken
      (composite or drop them first; :func:`read_image` composites over black).
    * Values, by dtype: ``uint8`` is 0-255 and is returned as it is;
      ``uint16`` is 16-bit, scaled from 0-65535 to 0-255 by
      ``rint(v * 255 / 65535)`` (a fixed scale, not the image's own maximum,
      so every image of a dataset is scaled alike; 12-bit data stored in
      16 bits come out dark: multiply them by 16 first); any other integer
      dtype must hold 0-255 and is returned as it is; a float dtype must
      hold [0, 1] (no NaN or inf) and is returned as it is (the featurizer
      maps it to [-1, 1] without rounding; :func:`read_image` rounds it to
      ``rint(v * 255)``). ``bool`` is refused (a mask is not an image).

    Parameters
    ----------
    image : array-like
        One image, or with ``stacked=True`` a stack of images.
    where : str, default="image"
        Name of the input, for error messages.
    stacked : bool, default=False
        ``image`` is a 4-D stack of images.

    Returns
    -------
    ndarray of shape (H, W, 3) or, stacked, (n, H, W, 3)
        ``uint8`` for ``uint8`` and ``uint16`` input, else the input dtype.
        The input itself (no copy) when it is already RGB and needs no
        scaling; a read-only broadcast view for grayscale.

    Raises
    ------
    ValueError
        Another shape or channel count, a ``bool`` or non-numeric dtype,
        values outside the dtype's range above, NaN or inf; the message
        starts with ``where``.
    """
    arr = np.asarray(image)
    if stacked:
        if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
            raise ValueError(
                f"{where} must be an array of shape (n_images, H, W, 3) (RGB, channels last) or (n_images, H, W, 1) "
                f"(grayscale), or a list of (H, W, 3), (H, W, 1) or (H, W) arrays; got shape {arr.shape}")
    elif not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3))):
        raise ValueError(f"{where} must have shape (H, W, 3) (RGB, channels last), (H, W, 1) or (H, W) (grayscale), "
                         f"got shape {arr.shape}")
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 2:  # 16-bit: the same scale as read_image's 16-bit files
        arr = np.rint(arr.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    elif arr.dtype != np.uint8 and arr.size:
        if arr.dtype.kind in "iu":
            if arr.min() < 0 or arr.max() > 255:
                raise ValueError(f"{where}: integer images must hold values in [0, 255] (uint16 images: 0-65535), "
                                 f"got [{arr.min()}, {arr.max()}]")
        elif arr.dtype.kind == "f":
            if np.isnan(arr).any():
                raise ValueError(f"{where} contains NaN")
            if not np.isfinite(arr).all():
                raise ValueError(f"{where} contains inf")
            if arr.min() < 0.0 or arr.max() > 1.0:
                raise ValueError(f"{where}: float images must hold values in [0, 1] (got [{arr.min():g}, "
                                 f"{arr.max():g}]); pass uint8 for 0-255 data, uint16 for 16-bit data")
        else:
            raise ValueError(f"{where}: images must be uint8, uint16 (16-bit), integer (0-255) or float (0-1), "
                             f"got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[-1] == 1:
        arr = np.broadcast_to(arr, (*arr.shape[:-1], 3))
    return arr


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    """Any PIL mode as 8-bit RGB: 16-bit scaled (not clipped), alpha composited over black."""
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im)
        if im.mode.startswith("I") and a.dtype.itemsize > 2:  # mode I (32-bit) holds 16-bit files in older Pillow
            if a.min() < 0 or a.max() > 65535:
                raise ImageReadError(f"{path}: integer images must hold 16-bit values (0-65535), "
                                     f"got [{a.min():g}, {a.max():g}]")
            a = a.astype(np.uint16)
        try:
            rgb = as_rgb(a, str(path))
        except ValueError as err:
            raise ImageReadError(str(err)) from None
        if rgb.dtype != np.uint8:  # float, [0, 1]
            rgb = np.rint(rgb.astype(np.float64) * 255.0).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    if "A" in im.getbands() or "a" in im.getbands() or "transparency" in im.info:
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        im = Image.alpha_composite(black, rgba)
    return im.convert("RGB")


def read_image(path: str | Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as 8-bit RGB, bilinearly resized to ``size`` if given.

    Every format and mode PIL reads is accepted: grayscale is replicated to
    three channels, palette images are expanded, 16-bit images are scaled
    from 0-65535 to 0-255 (not clipped), float images must hold [0, 1]
    (the conversion of :func:`as_rgb`), transparent pixels (alpha, palette
    transparency) are composited over black, CMYK and YCbCr are converted,
    and the EXIF orientation of camera photos is applied (so the array is
    upright as image viewers show it). Multi-frame files (GIF, TIFF stacks)
    give their first frame.

    Parameters
    ----------
    path : path-like
        Image file.
    size : int, (int, int) or None, default=None
        Working size (see :func:`working_size`): int = short side (aspect
        ratio kept), (H, W) = exactly that, None = the file's own size.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ImageReadError
        (a ``ValueError``) The file is not an image PIL can read, is
        truncated or corrupt, or holds values outside its mode's range; the
        message names the file.
    """
    path = Path(path)
    im = _to_rgb(_open(path), path)
    h, w = working_size((im.height, im.width), size)
    if im.size != (w, h):
        im = im.resize((w, h), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


#: PIL modes whose pixels are values (gray levels, palette indices, bits), not colours.
_VALUE_MODES = ("1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N")


def _label_array(im: Image.Image, path: Path, size, colours: bool) -> np.ndarray:
    """The values (or packed 0xRRGGBB colours) of a decoded label or mask image, nearest-neighbour resized."""
    if im.format in ("JPEG", "MPO"):
        raise ImageReadError(f"{path}: label maps must be stored losslessly (PNG, TIFF, BMP or GIF); this file "
                             f"holds JPEG data, whose compression changes class ids at region borders")
    if im.mode.startswith("I"):
        values = np.asarray(im)
        if values.min() < 0 or values.max() > 65535:
            raise ImageReadError(f"{path}: label values must be 0-65535, got [{values.min()}, {values.max()}]")
        if colours:
            raise ImageReadError(f"{path}: a 16-bit map holds values, not colours: map its values (VALUE:NAME), "
                                 f"not '#RRGGBB' colours")
    elif not colours and im.mode not in _VALUE_MODES:
        equal = im.mode == "RGB" and bool(np.all(np.ptp(np.asarray(im), axis=2) == 0))
        raise ImageReadError(
            f"{path}: label maps must be single-channel values (mode L or P: one class value per pixel), got mode "
            f"{im.mode}" + (" (its three channels are equal everywhere: a grayscale map saved as RGB; save it "
                            "as mode L)" if equal else "")
            + "; colour-coded maps are read only with a colour map: '#RRGGBB:NAME,...' in --label-map (or in "
              "dataset.json's label_map)")
    elif colours:
        bands = im.getbands()
        if "A" in bands and np.asarray(im.getchannel("A")).min() < 255:
            raise ImageReadError(f"{path}: a colour-coded label map must not have transparent pixels")
        im = im.convert("RGB")
    h, w = working_size((im.height, im.width), size)
    if im.size != (w, h):
        im = im.resize((w, h), Image.NEAREST)
    a = np.asarray(im)
    if colours:
        a = a.astype(np.int32)
        return (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]
    return a.astype(np.int32)


def read_label_values(path: str | Path, size: int | tuple[int, int] | None = None, *,
                      colours: bool = False) -> np.ndarray:
    """Read the stored values of a label map, nearest-neighbour resized to ``size`` if given.

    The values are what the file stores, never reinterpreted: gray levels
    (mode ``"L"``, 16-bit), **palette indices** for palette images (mode
    ``"P"``, GIF or PNG: the index, not the colour the palette gives it),
    0/1 for bilevel images (mode ``"1"``). Which class a value means is the
    business of a label map (:class:`skal_seg.label_map.LabelMap`). Colour-coded
    maps (mode ``"RGB"``) are read only with ``colours=True``.

    Parameters
    ----------
    path : path-like
        Losslessly stored map (PNG, TIFF, BMP, GIF, ...; not JPEG). The EXIF
        orientation, if any, is applied as in :func:`read_image`.
    size : int, (int, int) or None, default=None
        Working size, as in :func:`read_image`.
    colours : bool, default=False
        Read each pixel's colour instead, packed as ``0xRRGGBB`` (palette
        images through their palette, gray levels as equal channels).

    Returns
    -------
    ndarray of shape (H, W), int32
        Stored values in ``[0, 65535]``, or packed colours.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ImageReadError
        (a ``ValueError``) Unreadable or truncated, stored as JPEG, a
        colour image without ``colours=True`` (the message says when its
        channels are all equal), transparent pixels in a colour map, or
        values outside 0-65535; the message names the file.
    """
    path = Path(path)
    return _label_array(_open(path), path, size, colours)


def read_label(path: str | Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read a label map of class ids, nearest-neighbour resized to ``size`` if given.

    The stored values of :func:`read_label_values`, which must be class ids
    (0-255, 255 = ignore) as in this package's own folder layout.

    Parameters
    ----------
    path : path-like
        Single-channel, losslessly stored map (PNG, TIFF or BMP; mode ``"L"``,
        ``"P"``, ``"1"`` or 16-bit with values up to 255). The EXIF
        orientation, if any, is applied as in :func:`read_image`.
    size : int, (int, int) or None, default=None
        Working size, as in :func:`read_image`.

    Returns
    -------
    ndarray of shape (H, W), uint8
        The stored values (palette indices for mode ``"P"``).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ImageReadError
        (a ``ValueError``) Unreadable or truncated, stored as JPEG, more than
        one channel, or values above 255; the message names the file.
    """
    values = read_label_values(path, size)
    if values.size and values.max() > 255:
        raise ImageReadError(f"{path}: label values must be 0-255 (255 = ignore), got up to {values.max()}")
    return values.astype(np.uint8)


def read_roi(path: str | Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read a region-of-interest mask (e.g. a field of view), nearest-neighbour resized to ``size``.

    A pixel is inside when its stored value is not 0: gray level (any
    non-black), palette index (mode ``"P"``: index 0 is outside whatever
    its colour), bit, or, for colour images, any channel.

    Parameters
    ----------
    path : path-like
        Losslessly stored mask (not JPEG).
    size : int, (int, int) or None, default=None
        Working size, as in :func:`read_image`.

    Returns
    -------
    ndarray of shape (H, W), bool

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ImageReadError
        As :func:`read_label_values`, or a mask with no pixel inside.
    """
    path = Path(path)
    im = _open(path)
    inside = _label_array(im, path, size, colours=im.mode not in _VALUE_MODES) != 0
    if not inside.any():
        raise ImageReadError(f"{path}: the region of interest is empty (every pixel is 0); a mask marks the "
                             f"pixels that are part of the task with a value other than 0")
    return inside


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
