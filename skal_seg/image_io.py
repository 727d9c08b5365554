"""Reading image, label and region-of-interest files (and image arrays) into the arrays the package uses.

:func:`read_image` is the one image reader of the package: the runner, the
DDPM trainer and anything that shows images to a person read through it, so
every format, mode and error is handled once; :func:`as_rgb` is the one
conversion of image *arrays* (grayscale, 16-bit, float) that it and
:class:`~skal_seg.featurizer.DiffusionFeaturizer` share.
:func:`read_label_values` is the one label reader (stored values, palette
indices for palette images), :func:`read_roi` the one reader of
region-of-interest masks. :mod:`skal_seg.data` re-exports them: the
dataset layouts read through it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

_EXIF_ORIENTATION = 0x0112  # EXIF tag; values 5-8 swap width and height


class ImageReadError(ValueError):
    """An image or label file that cannot be used; the message names the file and why."""


def image_extensions() -> frozenset[str]:
    """File extensions (lower case, with the dot) of every image format PIL can read here.

    Returns
    -------
    frozenset of str
    """
    Image.init()  # registers every plugin; the first call only
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


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
