"""Per-pixel features from a bank of classic image filters (ilastik's pixel-classification features).

:class:`FilterBankFeaturizer` computes, on chosen channels and at chosen
scales, the filters ilastik offers by default: Gaussian smoothing, Laplacian
of Gaussian, Gaussian gradient magnitude, difference of Gaussians,
structure-tensor eigenvalues and Hessian-of-Gaussian eigenvalues, plus
optionally the raw channel values, with :mod:`scipy.ndimage`. Its interface
is :class:`~skal_seg.featurizer.DiffusionFeaturizer`'s (``fit``,
``transform(images, pixels=None)``, ``n_features_out_``,
``get_feature_names_out``), so either, or both through
:class:`~skal_seg.concat.ConcatFeaturizer`, feed the samplers and classifiers.
It is deterministic: it has no noisy views (see :class:`NoNoisyViewsError`).

Nothing here imports torch or diffusers (the package's top level imports
torch for the samplers; this module adds only numpy, scipy and scikit-learn).
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from skal_seg._checks import check_output_dtype, check_pixels

__all__ = ["FilterBankFeaturizer", "NoNoisyViewsError", "FILTERS", "LINE_ANGLES"]

#: Filter names, in column order within a (channel, scale), with their number of output columns.
FILTERS = {
    "gaussian": 1,  # Gaussian smoothing
    "laplacian": 1,  # Laplacian of Gaussian
    "gradient_magnitude": 1,  # Gaussian gradient magnitude
    "dog": 1,  # difference of Gaussians, sigma minus 0.66 sigma (ilastik's ratio)
    "structure_tensor": 2,  # eigenvalues, largest first; inner scale sigma, outer sigma / 2 (ilastik's)
    "hessian": 2,  # Hessian-of-Gaussian eigenvalues, largest first
}
#: Orientations of the line detector (``line_lengths``): every 15 degrees over a half turn.
LINE_ANGLES = 12
_DOG_RATIO = 0.66
_MIN_SIGMA = 0.3  # ilastik's smallest scale; below it the sampled derivative kernels degenerate
# ITU-R BT.601 luma, what PIL's convert("L") uses.
_LUMA = (0.299, 0.587, 0.114)
_CHANNEL_NAMES = ("red", "green", "blue")
# Border handling of every filter. Mirroring makes a border pixel look like its neighbours: zero
# or constant padding turns the frame into a strong edge, and issue 26 measured what outlying
# border rows cost (MaxHerding put 17.6 % of its picks within 2 px of the border, 6.2 % of the area).
_MODE = "reflect"


class NoNoisyViewsError(ValueError):
    """A featurizer without noisy views was asked for them (e.g. the filter bank by eDALD or BALD).

    Noisy views are the stochastic feature draws that the BALD term of
    ``bald``, ``edald`` and ``two_stage`` needs; a deterministic featurizer
    would return identical draws, which makes the BALD term silently zero.
    """


# --------------------------------------------------------------------------- inputs


def _check_one_image(img, where: str) -> np.ndarray:
    """(H, W, C) float32 in [0, 1], C = 1 (gray) or 3 (RGB), from one image as accepted by ``transform``."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise ValueError(f"{where} must have shape (H, W, 3) (RGB), (H, W, 1) or (H, W) (gray), got shape {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"{where} is empty (shape {img.shape})")
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(255)
    if img.dtype == np.uint16:
        return img.astype(np.float32) / np.float32(65535)
    if img.dtype.kind in "iu":
        if img.min() < 0 or img.max() > 255:
            raise ValueError(f"{where}: integer images other than uint16 must hold values in [0, 255]")
        return img.astype(np.float32) / np.float32(255)
    if img.dtype.kind == "f":
        if np.isnan(img).any():
            raise ValueError(f"{where} contains NaN")
        if not np.isfinite(img).all():
            raise ValueError(f"{where} contains inf")
        if img.min() < 0.0 or img.max() > 1.0:
            raise ValueError(
                f"{where}: float images must hold values in [0, 1] (got [{img.min():g}, {img.max():g}]); "
                "pass uint8 for 0-255 data"
            )
        return img.astype(np.float32)
    raise ValueError(f"{where}: images must be uint8, uint16, integer (0-255) or float (0-1), got dtype {img.dtype}")


def _image_list(images) -> list:
    """``images`` as a list of per-image arrays (not yet validated)."""
    if images is None:
        raise ValueError("images is None")
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("images is empty")
        return list(images)
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ValueError(
            "images must be an array of shape (n_images, H, W, 3) or (n_images, H, W, 1), or a list of "
            f"(H, W, 3), (H, W, 1) or (H, W) arrays; got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"images is empty (shape {arr.shape})")
    return list(arr)


def _check_images(images) -> list[np.ndarray]:
    """Validate every image; returns (H, W, C) float32 arrays in [0, 1]."""
    return [_check_one_image(img, f"images[{i}]") for i, img in enumerate(_image_list(images))]


# --------------------------------------------------------------------------- filters


def _channel(img: np.ndarray, name: str) -> np.ndarray:
    """One (H, W) float32 channel of an (H, W, C) image; a gray image (C = 1) is its own R, G, B and luma."""
    if img.shape[-1] == 1:
        return img[:, :, 0]
    if name == "gray":
        return (_LUMA[0] * img[:, :, 0] + _LUMA[1] * img[:, :, 1] + _LUMA[2] * img[:, :, 2]).astype(np.float32)
    return img[:, :, _CHANNEL_NAMES.index(name)]


def _smooth(x: np.ndarray, sigma: float, order: int = 0, axis: int = -1) -> np.ndarray:
    """1-D Gaussian (derivative of ``order``) along ``axis``, float32, mirrored borders."""
    return ndimage.gaussian_filter1d(x, sigma, axis=axis, order=order, mode=_MODE, output=np.float32)


def _smooth2d(x: np.ndarray, sigma: float) -> np.ndarray:
    return _smooth(_smooth(x, sigma, axis=1), sigma, axis=0)


def _eigenvalues(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (largest, smallest) of the symmetric 2 x 2 matrices [[a, b], [b, c]], elementwise."""
    half_trace = 0.5 * (a + c)
    radius = np.sqrt((0.5 * (a - c)) ** 2 + b * b)
    return half_trace + radius, half_trace - radius


class _Derivatives:
    """Scale-normalised Gaussian derivatives of one channel at one scale, each computed once, on demand.

    ``self[dy, dx]`` is ``sigma ** (dy + dx)`` times the (dy, dx)-th
    derivative (y = rows) of the Gaussian-smoothed channel. The separable
    filter runs along x first; the x-filtered maps are shared by every
    derivative with the same ``dx`` (9 one-dimensional passes give all six
    maps up to order 2 instead of 12).
    """

    def __init__(self, channel: np.ndarray, sigma: float):
        self.channel, self.sigma = channel, sigma
        self._along_x: dict[int, np.ndarray] = {}
        self._maps: dict[tuple[int, int], np.ndarray] = {}

    def __getitem__(self, order: tuple[int, int]) -> np.ndarray:
        if order not in self._maps:
            dy, dx = order
            if dx not in self._along_x:
                self._along_x[dx] = _smooth(self.channel, self.sigma, dx, axis=1)
            m = _smooth(self._along_x[dx], self.sigma, dy, axis=0)
            if dy + dx:
                m *= np.float32(self.sigma ** (dy + dx))
            self._maps[order] = m
        return self._maps[order]


def _responses(channel: np.ndarray, sigma: float, filters: tuple[str, ...]) -> list[np.ndarray]:
    """The (H, W) float32 maps of ``filters`` at scale ``sigma``, in ``filters`` order (eigenvalues largest first).

    Derivatives are scale-normalised (order-n derivatives times ``sigma ** n``), so
    responses at different scales have the size of intensity differences.
    """
    g = _Derivatives(channel, sigma)
    out = []
    for name in filters:
        if name == "gaussian":
            out.append(g[0, 0])
        elif name == "laplacian":
            out.append(g[2, 0] + g[0, 2])
        elif name == "gradient_magnitude":
            out.append(np.hypot(g[1, 0], g[0, 1]))
        elif name == "dog":
            out.append(g[0, 0] - _smooth2d(channel, _DOG_RATIO * sigma))
        elif name == "structure_tensor":
            gy, gx, outer = g[1, 0], g[0, 1], sigma / 2
            out.extend(_eigenvalues(_smooth2d(gy * gy, outer), _smooth2d(gy * gx, outer), _smooth2d(gx * gx, outer)))
        else:  # "hessian", validated in fit
            out.extend(_eigenvalues(g[2, 0], g[1, 1], g[0, 2]))
    return out


def _line_offsets(length: int, theta: float) -> np.ndarray:
    """(n, 2) int (dy, dx) of the distinct pixels of a ``length``-pixel segment centred on (0, 0) at angle ``theta``."""
    r = (length - 1) / 2
    s = np.linspace(-r, r, length)
    return np.unique(np.rint(np.stack([-s * np.sin(theta), s * np.cos(theta)], 1)).astype(int), axis=0)


def _line_responses(channel: np.ndarray, lengths: tuple[int, ...]) -> list[np.ndarray]:
    """Bright- and dark-line maps of one (H, W) channel per length, in ``lengths`` order.

    For a length ``L``: the largest mean along a segment of ``L`` pixels
    through the pixel over :data:`LINE_ANGLES` orientations, minus the mean of
    the ``L x L`` window around it (bright lines, high on a thin bright
    ridge), and the window mean minus the smallest segment mean (dark lines,
    e.g. vessels in a fundus image's green channel). Ricci and Perfetti's
    retinal line detector, at several lengths; borders mirrored as every
    other filter here.
    """
    h, w = channel.shape
    pad = max(lengths) // 2
    # np.pad's "symmetric" is ndimage's "reflect" (the edge pixel repeated).
    padded = np.pad(channel, pad, mode="symmetric")
    out = []
    for length in lengths:
        hi = lo = None
        for a in range(LINE_ANGLES):
            offsets = _line_offsets(length, np.pi * a / LINE_ANGLES)
            acc = np.zeros((h, w), np.float32)
            for dy, dx in offsets:
                acc += padded[pad + dy : pad + dy + h, pad + dx : pad + dx + w]
            acc /= np.float32(len(offsets))
            hi = acc if hi is None else np.maximum(hi, acc)
            lo = acc if lo is None else np.minimum(lo, acc)
        window = ndimage.uniform_filter(channel, length, mode=_MODE, output=np.float32)
        out.extend([hi - window, window - lo])
    return out


# ------------------------------------------------------------------------ estimator


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _as_tuple(value, is_one: bool, message: str) -> tuple:
    """``(value,)`` when ``is_one`` (a single item given without a sequence), else ``tuple(value)``; ``message`` if not iterable."""
    if is_one:
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise ValueError(f"{message}, got {value!r}") from None


def _channel_names(value, name: str, allow_none: bool) -> tuple[str, ...]:
    """Resolve a channel setting to names from ("gray", "red", "green", "blue")."""
    if value is None and allow_none:
        return ()
    if isinstance(value, str):
        if value == "rgb":
            return _CHANNEL_NAMES
        if value in ("gray", *_CHANNEL_NAMES):
            return (value,)
        raise ValueError(f"unknown {name} {value!r}; use 'gray', 'rgb', 'red', 'green', 'blue' or indices 0-2"
                         + (", or None" if allow_none else ""))
    items = _as_tuple(value, _is_int(value), f"{name} must be a channel name or a sequence of channel indices/names")
    names = []
    for item in items:
        if _is_int(item) and 0 <= item < 3:
            names.append(_CHANNEL_NAMES[item])
        elif isinstance(item, str) and item in ("gray", *_CHANNEL_NAMES):
            names.append(item)
        else:
            raise ValueError(f"unknown channel {item!r} in {name}; use indices 0-2 (R, G, B) or "
                             "'gray', 'red', 'green', 'blue'")
    if not names:
        raise ValueError(f"{name} must not be empty" + ("; use None for no channels" if allow_none else ""))
    if len(set(names)) != len(names):
        raise ValueError(f"{name} repeats a channel: {value!r}")
    return tuple(names)


class FilterBankFeaturizer(TransformerMixin, BaseEstimator):
    """Per-pixel features from a bank of classic filters, ilastik-style (scikit-learn transformer).

    For every channel in ``channels``, every scale in ``sigmas`` and every
    filter in ``filters`` (see :data:`FILTERS`), one or two columns of
    filter responses computed with :mod:`scipy.ndimage` on the whole image
    (mirrored borders), preceded by the raw values of ``raw_channels``.
    With ``standardize=True``, :meth:`fit` on images learns each column's
    mean and standard deviation over their pixels, and :meth:`transform`
    returns ``(value - mean) / (std * sqrt(D))``: columns of equal weight
    and rows whose mean squared norm over the fit pixels is 1, the size of
    the diffusion featurizer's unit rows, so the samplers' RBF distances
    and a :class:`~skal_seg.concat.ConcatFeaturizer` of both are balanced.
    A random forest is indifferent to this scaling.

    Parameters
    ----------
    sigmas : sequence of float, default=(1.0, 1.6, 3.5, 5.0)
        Gaussian scales in pixels (distinct, each >= 0.3).
    filters : sequence of str, default=all of :data:`FILTERS`
        Which filters, from ``"gaussian"``, ``"laplacian"``,
        ``"gradient_magnitude"``, ``"dog"``, ``"structure_tensor"``,
        ``"hessian"``; columns follow :data:`FILTERS` order whatever the
        order given.
    channels : str or sequence, default="gray"
        Channels the filters run on: ``"gray"`` (luma, 0.299 R + 0.587 G +
        0.114 B), ``"rgb"`` (three), ``"red"``, ``"green"``, ``"blue"``, or a
        sequence of names or indices (0, 1, 2 = R, G, B). A gray image is its
        own R, G, B and luma.
    raw_channels : str, sequence or None, default="rgb"
        Channels whose raw values (in [0, 1]) come first, same options as
        ``channels``; None for none.
    line_lengths : sequence of int, default=()
        Lengths in pixels (odd, >= 3, distinct) of a multi-scale line
        detector run on each of ``channels``: per length, the best mean along
        a segment through the pixel over :data:`LINE_ANGLES` orientations
        minus the mean of the square window around it, for bright and for
        dark lines (two columns). Thin curvilinear structures (vessels,
        membranes, cracks) stand out in it where blob filters blur them;
        ``(5, 9, 13, 17)`` is what docs/features.md measured on DRIVE.
    standardize : bool, default=True
        Whether :meth:`fit` learns per-column statistics from its images.
    output_dtype : {"float32", "float16"}, default="float32"
        Dtype of the returned features; float16 halves their memory.
    progress : bool, default=True
        Show a progress bar over the images.

    Attributes
    ----------
    sigmas_ : tuple of float
    filters_ : tuple of str
        In column order.
    channels_ : tuple of str
        Resolved names, e.g. ("gray",) or ("red", "green", "blue").
    raw_channels_ : tuple of str
    line_lengths_ : tuple of int
    n_features_out_ : int
        ``D = len(raw_channels_) + len(channels_) * (len(sigmas_) * c +
        2 * len(line_lengths_))``, ``c`` the columns of the chosen filters at
        one scale (8 for all six).
    feature_dim_ : int
        Same as ``n_features_out_``.
    mean_ : ndarray of shape (D,), float32
        Subtracted from each column: the fit pixels' mean, or 0 when no
        statistics were learned.
    scale_ : ndarray of shape (D,), float32
        Each column is divided by it: ``std * sqrt(D)`` over the fit pixels
        (a constant column's std counts as 1), or ``sqrt(D)`` when no
        statistics were learned: then rows hold raw responses of a [0, 1]
        image, divided by ``sqrt(D)``, of norm about 1 or less.
    n_fit_pixels_ : int
        Pixels the statistics come from (0 when none were learned).
    batch_size_ : int
        Always 1: images are filtered one at a time (the runner groups pool
        images in multiples of it).

    Notes
    -----
    Columns: the raw channels, then ``for channel in channels_: for sigma in
    sigmas_: for filter in filters_`` (eigenvalues largest first), then
    ``for length in line_lengths_:`` bright, dark; see
    :meth:`get_feature_names_out`. Rows are image-major, then row-major over
    the image: pixel (y, x) of image i is row ``offset_i + y * W_i + x``.
    Derivatives are scale-normalised (an order-n derivative times
    ``sigma ** n``); the structure tensor smooths the products of gradients
    at ``sigma`` with an outer scale ``sigma / 2``, the difference of
    Gaussians is ``G(sigma) - G(0.66 sigma)``, as in ilastik.

    The filter bank has no noisy views: :meth:`noisy_view_fn` and
    :meth:`noisy_views` raise :class:`NoNoisyViewsError`. Strategies that need
    them (``bald``, ``edald``, ``two_stage``) need a diffusion featurizer,
    alone or combined with this one by
    :class:`~skal_seg.concat.ConcatFeaturizer` (whose noisy views hold the
    diffusion part's draws beside this part's fixed rows).

    Examples
    --------
    >>> import numpy as np
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 32, 40, 3), dtype=np.uint8)
    >>> fb = FilterBankFeaturizer(progress=False).fit(images)
    >>> fb.transform(images).shape
    (2560, 35)
    """

    def __init__(
        self,
        sigmas=(1.0, 1.6, 3.5, 5.0),
        filters=tuple(FILTERS),
        channels="gray",
        raw_channels="rgb",
        line_lengths=(),
        standardize: bool = True,
        output_dtype: str = "float32",
        progress: bool = True,
    ):
        self.sigmas = sigmas
        self.filters = filters
        self.channels = channels
        self.raw_channels = raw_channels
        self.line_lengths = line_lengths
        self.standardize = standardize
        self.output_dtype = output_dtype
        self.progress = progress

    # ------------------------------------------------------------------ fitting

    def _check_params(self) -> tuple:
        check_output_dtype(self.output_dtype)
        if not isinstance(self.standardize, bool):
            raise ValueError(f"standardize must be True or False, got {self.standardize!r}")
        sigmas = _as_tuple(self.sigmas, isinstance(self.sigmas, numbers.Real), "sigmas must be a sequence of numbers")
        if not sigmas or not all(isinstance(s, numbers.Real) and not isinstance(s, bool) and _MIN_SIGMA <= s < np.inf
                                 for s in sigmas):
            raise ValueError(f"sigmas must be a non-empty sequence of finite numbers >= {_MIN_SIGMA}, got {self.sigmas!r}")
        if len(set(sigmas)) != len(sigmas):
            raise ValueError(f"sigmas must not repeat values, got {self.sigmas!r}")
        filters = _as_tuple(self.filters, isinstance(self.filters, str), "filters must be a sequence of filter names")
        unknown = [f for f in filters if not isinstance(f, str) or f not in FILTERS]
        if unknown or not filters:
            raise ValueError(f"unknown filters {unknown!r}; choose from {list(FILTERS)}" if unknown
                             else "filters must not be empty")
        if len(set(filters)) != len(filters):
            raise ValueError(f"filters must not repeat names, got {self.filters!r}")
        channels = _channel_names(self.channels, "channels", allow_none=False)
        raw = _channel_names(self.raw_channels, "raw_channels", allow_none=True)
        lengths = _as_tuple(self.line_lengths, _is_int(self.line_lengths),
                            "line_lengths must be a sequence of odd integers >= 3")
        if not all(_is_int(n) and n >= 3 and n % 2 == 1 for n in lengths) or len(set(lengths)) != len(lengths):
            raise ValueError(f"line_lengths must be distinct odd integers >= 3 (a segment centred on its pixel), "
                             f"got {self.line_lengths!r}")
        filters = tuple(f for f in FILTERS if f in filters)
        return tuple(float(s) for s in sigmas), filters, channels, raw, tuple(int(n) for n in lengths)

    def fit(self, images=None, y=None):
        """Validate the parameters and, given images with ``standardize=True``, learn column statistics.

        Parameters
        ----------
        images : array-like or None, default=None
            As in :meth:`transform`: typically the pool the samplers will
            see. Every pixel counts. None (or ``standardize=False``): no
            statistics; ``mean_`` is 0 and ``scale_`` is ``sqrt(D)``.
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad parameters (unknown filters or channels, bad sigmas,
            line_lengths, output_dtype or standardize) or bad images (as in
            :meth:`transform`).
        """
        self.sigmas_, self.filters_, self.channels_, self.raw_channels_, self.line_lengths_ = self._check_params()
        per_channel = len(self.sigmas_) * sum(FILTERS[f] for f in self.filters_) + 2 * len(self.line_lengths_)
        d = len(self.raw_channels_) + len(self.channels_) * per_channel
        self.n_features_out_ = self.feature_dim_ = d
        self.batch_size_ = 1
        imgs = None if images is None else _check_images(images)
        for img in imgs or ():  # every image before any filtering
            self.check_image_size(img.shape[0], img.shape[1])
        mean, std, n = np.zeros(d), np.ones(d), 0
        if imgs is not None and self.standardize:
            mean, std, n = self._statistics(imgs)
        self.mean_ = mean.astype(np.float32)
        self.scale_ = (std * np.sqrt(d)).astype(np.float32)
        self.n_fit_pixels_ = n
        return self

    def _statistics(self, imgs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
        """Per-column mean and std (float64) over every pixel of ``imgs``; a zero std becomes 1."""
        d = self.n_features_out_
        n, mean, m2 = 0, np.zeros(d), np.zeros(d)
        for img in tqdm(imgs, desc="filter bank statistics", unit="image", disable=not self.progress, leave=False):
            f = self._features(img, None)
            k, m = f.shape[1], f.mean(1, dtype=np.float64)
            delta = m - mean
            # Chan et al.'s pairwise update: exact and stable for any number of images.
            m2 += ((f - m[:, None].astype(np.float32)) ** 2).sum(1, dtype=np.float64) + delta**2 * n * k / (n + k)
            mean += delta * k / (n + k)
            n += k
        std = np.sqrt(m2 / n)
        std[std <= 1e-6 * max(1.0, float(np.abs(mean).max()))] = 1.0
        return mean, std, n

    # ------------------------------------------------------------------ engine

    def _features(self, img: np.ndarray, pixels: np.ndarray | None) -> np.ndarray:
        """Unscaled (D, n) float32 features of one (H, W, C) float32 image; all pixels or ``pixels`` (flat).

        Column-major (one contiguous row per feature): each filter map is
        written in one sequential copy.
        """
        n = img.shape[0] * img.shape[1] if pixels is None else len(pixels)
        out = np.empty((self.n_features_out_, n), dtype=np.float32)
        col = 0

        def put(m: np.ndarray) -> None:
            nonlocal col
            out[col] = m.reshape(-1) if pixels is None else m.reshape(-1)[pixels]
            col += 1

        for name in self.raw_channels_:
            put(_channel(img, name))
        for name in self.channels_:
            ch = _channel(img, name)
            for sigma in self.sigmas_:
                for m in _responses(ch, sigma, self.filters_):
                    put(m)
            if self.line_lengths_:
                for m in _line_responses(ch, self.line_lengths_):
                    put(m)
        return out

    # ------------------------------------------------------------------ public API

    def check_image_size(self, height: int, width: int) -> None:
        """Raise unless every sigma and line length fits an image of ``height`` x ``width`` px.

        A filter wider than the image is flat there, and its kernel alone can
        exhaust memory (a Gaussian of sigma 1e9 px asks for 60 GiB), so
        :meth:`fit` and :meth:`transform` check each image first; a labeling
        project checks its working size when it is created.

        Parameters
        ----------
        height, width : int
            In pixels.

        Raises
        ------
        ValueError
            A sigma or line length larger than ``max(height, width)``.
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        """
        check_is_fitted(self, "sigmas_")
        side = max(height, width)
        too_large = [f"sigma {s:g}" for s in self.sigmas_ if s > side] + [
            f"line length {n}" for n in self.line_lengths_ if n > side]
        if too_large:
            raise ValueError(f"filter scales larger than a {height} x {width} px image: {', '.join(too_large)}; "
                             f"sigmas and line_lengths must be at most the image's larger side ({side} px)")

    def transform(self, images, pixels=None) -> np.ndarray:
        """Per-pixel features of ``images`` (or of selected pixels only).

        Parameters
        ----------
        images : ndarray of shape (n_images, H, W, C) or list of (H_i, W_i, C) / (H_i, W_i) arrays
            C = 3 (RGB, channels last) or 1 (gray); uint8 (0-255), uint16
            (0-65535), other integers in [0, 255], or float in [0, 1]. List
            entries may differ in size.
        pixels : sequence of 1-D int arrays or None, default=None
            One array per image of flat indices ``y * W + x`` (any order,
            repeats allowed). None = all pixels. The filters still run on the
            whole image; only the requested rows are stored.

        Returns
        -------
        ndarray of shape (n_rows, D), ``output_dtype``
            ``n_rows = sum_i H_i * W_i`` (image-major, row-major over pixels),
            or ``sum_i len(pixels[i])`` in the given order. Rows of a pixel
            subset equal the matching rows of the full transform exactly.

        Raises
        ------
        ValueError
            Bad images (shape, channel count, dtype, NaN/inf, out-of-range
            values, empty, smaller than a sigma or line length) or bad
            ``pixels`` (wrong count, not 1-D integer, out of range).
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        """
        check_is_fitted(self, "scale_")
        imgs = _check_images(images)
        grids = [(im.shape[0], im.shape[1]) for im in imgs]
        for h, w in grids:  # every image before any filtering
            self.check_image_size(h, w)
        pix = None if pixels is None else check_pixels(pixels, grids)
        sizes = [h * w for h, w in grids] if pix is None else [len(p) for p in pix]
        out = np.empty((sum(sizes), self.n_features_out_), dtype=self.output_dtype)
        row = 0
        for i, img in enumerate(tqdm(imgs, desc="filter bank", unit="image", disable=not self.progress, leave=False)):
            if sizes[i]:
                f = self._features(img, None if pix is None else pix[i])
                f -= self.mean_[:, None]
                f /= self.scale_[:, None]
                out[row : row + sizes[i]] = f.T
            row += sizes[i]
        return out

    def noisy_views(self, images, n_draws: int = 5, pixels=None, random_state=None):
        """Not available: the filter bank is deterministic.

        Raises
        ------
        NoNoisyViewsError
            Always.
        """
        raise NoNoisyViewsError(_NO_NOISY_VIEWS)

    def noisy_view_fn(self, images, pixels=None, n_draws: int = 5, random_state=None):
        """Not available: the filter bank is deterministic (see :class:`NoNoisyViewsError`).

        Raises
        ------
        NoNoisyViewsError
            Always, before looking at the arguments.
        """
        raise NoNoisyViewsError(_NO_NOISY_VIEWS)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the D columns, in column order.

        ``"{channel}_raw"`` for raw values, ``"{channel}_{filter}_s{sigma}"``
        for one-column filters and ``"..._ev0"`` / ``"..._ev1"`` (largest,
        smallest eigenvalue) for the others, e.g. ``"gray_hessian_s1.6_ev0"``,
        and ``"{channel}_line_bright_l{length}"`` / ``"..._line_dark_l{length}"``.

        Parameters
        ----------
        input_features : ignored
            Present for scikit-learn API compatibility; neither used nor validated.

        Returns
        -------
        ndarray of shape (n_features_out_,), object

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The featurizer is not fitted.
        """
        check_is_fitted(self, "scale_")
        names = [f"{c}_raw" for c in self.raw_channels_]
        for c in self.channels_:
            for s in self.sigmas_:
                for f in self.filters_:
                    base = f"{c}_{f}_s{s:g}"
                    names.extend([base] if FILTERS[f] == 1 else [f"{base}_ev{k}" for k in range(FILTERS[f])])
            for n in self.line_lengths_:
                names.extend([f"{c}_line_bright_l{n}", f"{c}_line_dark_l{n}"])
        return np.asarray(names, dtype=object)


_NO_NOISY_VIEWS = (
    "FilterBankFeaturizer is deterministic and has no noisy views; the strategies that need them "
    "(bald, edald, two_stage) need a DiffusionFeaturizer, alone or in a ConcatFeaturizer beside the filter bank"
)
