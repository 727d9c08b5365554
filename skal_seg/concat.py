"""Several featurizers side by side: their per-pixel rows concatenated column-wise.

``make_concat(DiffusionFeaturizer(), FilterBankFeaturizer())`` is a
featurizer with the same interface as its parts (``fit``,
``transform(images, pixels=None)``, ``n_features_out_``,
``get_feature_names_out``, ``noisy_view_fn``), usable wherever one of them is.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils.validation import check_is_fitted

from skal_seg._checks import check_row_indices
from skal_seg.filter_bank import NoNoisyViewsError

__all__ = ["ConcatFeaturizer", "ConcatNoisyViews", "make_concat"]


class ConcatFeaturizer(TransformerMixin, _BaseComposition):
    """Featurizers side by side: each pixel's row is the concatenation of their rows (scikit-learn transformer).

    Parameters
    ----------
    featurizers : list of (str, featurizer)
        Named parts, in column order: objects with ``fit(images)``,
        ``transform(images, pixels=None)``, ``n_features_out_`` and
        ``get_feature_names_out()`` (such as
        :class:`~skal_seg.featurizer.DiffusionFeaturizer` and
        :class:`~skal_seg.filter_bank.FilterBankFeaturizer`). They must put
        the same pixels in the same rows: same output grid (a
        ``DiffusionFeaturizer`` with ``output_size`` set does not line up
        with a filter bank, which works at the image's own size).
        Parameters of a part are ``"{name}__{param}"`` in
        ``get_params`` / ``set_params``, as in a scikit-learn ``Pipeline``.
    weights : dict of str to float or None, default=None
        A positive factor per part name multiplying its columns (missing
        names: 1). None = 1 for every part: the columns are the parts' own
        values, bit for bit. Both shipped featurizers give rows of (mean)
        squared norm about 1, and on 500 random pixels of each of 4 DRIVE
        and 8 CamVid (128 px) images the median distance between two rows
        was of the same size for both (DRIVE 0.49 diffusion vs 0.43 filter
        bank; CamVid 0.73 vs 0.90), so neither drowns the other in the
        samplers' RBF distances at weight 1.

    Attributes
    ----------
    n_features_out_ : int
        Sum of the parts' ``n_features_out_``.
    feature_dim_ : int
        Same as ``n_features_out_``.
    feature_slices_ : dict of str to slice
        The columns of each part.
    weights_ : dict of str to float
        Every part's factor.
    batch_size_ : int
        Least common multiple of the parts' ``batch_size_`` (1 where a part has
        none): pool images grouped in multiples of it keep every part's
        batches, so features stay bit-identical to one whole-pool call.

    Notes
    -----
    :meth:`fit` fits every part in place (refitting fitted ones), as a
    ``Pipeline`` does. :meth:`transform` allocates the output once
    (dtype: the widest of the parts' ``output_dtype``) and holds one part's
    output beside it at a time.

    Examples
    --------
    >>> from skal_seg import DiffusionFeaturizer, FilterBankFeaturizer, make_concat
    >>> both = make_concat(DiffusionFeaturizer(output_dtype="float16"),
    ...                    FilterBankFeaturizer(output_dtype="float16"))  # doctest: +SKIP
    >>> both.fit(pool_images).transform(pool_images, pixels=candidates)  # doctest: +SKIP
    """

    def __init__(self, featurizers: list, weights: dict | None = None):
        self.featurizers = featurizers
        self.weights = weights

    def get_params(self, deep: bool = True) -> dict:
        """Parameters, with each part's as ``"{name}__{param}"`` when ``deep``.

        Parameters
        ----------
        deep : bool, default=True

        Returns
        -------
        dict
        """
        return self._get_params("featurizers", deep=deep)

    def set_params(self, **params) -> "ConcatFeaturizer":
        """Set parameters, a part's as ``"{name}__{param}"``, or replace a part by its name.

        Parameters
        ----------
        **params

        Returns
        -------
        self
        """
        self._set_params("featurizers", **params)
        return self

    # ------------------------------------------------------------------ fitting

    def _check_parts(self) -> tuple[list[str], list, dict[str, float]]:
        parts = self.featurizers
        if not isinstance(parts, (list, tuple)) or not parts or not all(
            isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in parts
        ):
            raise ValueError(f"featurizers must be a non-empty list of (name, featurizer) pairs, got {parts!r}")
        names = [n for n, _ in parts]
        self._validate_names(names)
        for name, part in parts:
            if not (callable(getattr(part, "fit", None)) and callable(getattr(part, "transform", None))):
                raise ValueError(f"featurizer {name!r} has no fit/transform methods: {part!r}")
        weights = {} if self.weights is None else self.weights
        if not isinstance(weights, dict):
            raise ValueError(f"weights must be None or a dict of part name to float, got {self.weights!r}")
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ValueError(f"weights names {unknown} are not parts (parts: {names})")
        for name, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, numbers.Real) or not 0 < w < np.inf:
                raise ValueError(f"weights[{name!r}] must be a positive finite number, got {w!r}")
        return names, [p for _, p in parts], {n: float(weights.get(n, 1.0)) for n in names}

    def fit(self, images=None, y=None):
        """Fit every part on ``images`` (each part decides what it learns from them).

        Parameters
        ----------
        images : array-like or None, default=None
            Passed to every part's ``fit``.
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad ``featurizers`` (not named pairs, repeated or reserved names,
            no fit/transform) or ``weights``; errors of the parts' ``fit``.
        """
        names, parts, weights = self._check_parts()
        slices, start = {}, 0
        for name, part in zip(names, parts):
            part.fit(images)
            slices[name] = slice(start, start + int(part.n_features_out_))
            start = slices[name].stop
        self.feature_slices_, self.weights_ = slices, weights
        self.n_features_out_ = self.feature_dim_ = start
        self.batch_size_ = math.lcm(*(max(1, int(getattr(p, "batch_size_", 1))) for p in parts))
        return self

    # ------------------------------------------------------------------ public API

    def _dtype(self) -> np.dtype:
        return np.result_type(*(np.dtype(getattr(p, "output_dtype", "float32")) for _, p in self.featurizers))

    def _put(self, out: np.ndarray, name: str, values: np.ndarray) -> None:
        """Write one part's columns (last axis) into ``out``, times its weight."""
        w = self.weights_[name]
        out[..., self.feature_slices_[name]] = values if w == 1.0 else values * np.float32(w)

    def transform(self, images, pixels=None) -> np.ndarray:
        """The parts' rows side by side.

        Parameters
        ----------
        images, pixels
            As the parts' ``transform`` takes them (e.g.
            :meth:`~skal_seg.featurizer.DiffusionFeaturizer.transform`).

        Returns
        -------
        ndarray of shape (n_rows, n_features_out_)
            Columns ``feature_slices_[name]`` are ``weights_[name]`` times
            part ``name``'s ``transform(images, pixels)`` (exactly its values
            at weight 1).

        Raises
        ------
        ValueError
            The parts' errors for bad input, or parts returning different
            numbers of rows (different output grids).
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        """
        check_is_fitted(self, "feature_slices_")
        out = None
        for name, part in self.featurizers:
            values = part.transform(images, pixels=pixels)
            if out is None:
                out = np.empty((len(values), self.n_features_out_), dtype=self._dtype())
            _check_rows(len(values), len(out), name)
            self._put(out, name, values)
        return out

    def noisy_view_fn(self, images, pixels=None, n_draws: int = 5, random_state=None) -> "ConcatNoisyViews":
        """A callable ``indices -> (n_draws, len(indices), D)`` over the rows of ``transform(images, pixels)``.

        Parts with noisy views (e.g. a ``DiffusionFeaturizer``) give their
        draws, each from its own ``noisy_view_fn(images, pixels, n_draws,
        random_state)``; parts without (the filter bank, or any part without
        ``noisy_view_fn``) repeat their ``transform`` rows in every draw, so
        the BALD term sees the diffusion part's variation and the filter
        columns unchanged.

        Parameters
        ----------
        images, pixels
            As in :meth:`transform`.
        n_draws : int, default=5
        random_state : None, int or numpy Generator, default=None
            Handed to every noisy part (an int gives each the same seed).

        Returns
        -------
        ConcatNoisyViews

        Raises
        ------
        NoNoisyViewsError
            No part has noisy views.
        ValueError
            The parts' errors for bad input.
        """
        check_is_fitted(self, "feature_slices_")
        views, fixed = {}, []
        for name, part in self.featurizers:
            make = getattr(part, "noisy_view_fn", None)
            if make is None:
                fixed.append(name)
                continue
            try:
                views[name] = make(images, pixels, n_draws=n_draws, random_state=random_state)
            except NoNoisyViewsError:  # a deterministic part: its rows repeat in every draw
                fixed.append(name)
        if not views:
            raise NoNoisyViewsError(
                f"none of the parts {[n for n, _ in self.featurizers]} has noisy views; the strategies that need "
                "them (bald, edald, two_stage) need a DiffusionFeaturizer among the parts")
        return ConcatNoisyViews(self, images, pixels, views, fixed)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """``"{name}__{part's feature name}"`` for every column, in column order.

        Parameters
        ----------
        input_features : ignored
            Present for scikit-learn API compatibility.

        Returns
        -------
        ndarray of shape (n_features_out_,), object

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        """
        check_is_fitted(self, "feature_slices_")
        names = [f"{name}__{f}" for name, part in self.featurizers for f in part.get_feature_names_out()]
        return np.asarray(names, dtype=object)


def _check_rows(n: int, expected: int, name: str) -> None:
    if n != expected:
        raise ValueError(f"featurizer {name!r} returned {n} rows where the first part returned {expected}: the parts "
                         "must share the output grid (e.g. leave DiffusionFeaturizer's output_size None)")


class ConcatNoisyViews:
    """Noisy rows of a :class:`ConcatFeaturizer`, computed on demand (see :meth:`ConcatFeaturizer.noisy_view_fn`).

    Parameters
    ----------
    featurizer : ConcatFeaturizer, fitted
    images, pixels
        As given to :meth:`ConcatFeaturizer.noisy_view_fn`.
    views : dict of str to callable
        The noisy parts' ``noisy_view_fn`` results, by part name.
    fixed : list of str
        Names of the parts without noisy views.

    Attributes
    ----------
    n_rows : int
        Number of pool rows.
    n_draws : int
    """

    def __init__(self, featurizer: ConcatFeaturizer, images, pixels, views: dict, fixed: list[str]):
        self.featurizer = featurizer
        self.views = views
        self.fixed = fixed
        self.images = images
        first = next(iter(views.values()))
        self.n_draws = int(first.n_draws)
        self.n_rows = int(first.n_rows)
        if pixels is None:  # every pixel of every image, at the image's own size (the fixed parts' grid)
            images = list(images)
            pixels = [np.arange(np.shape(im)[0] * np.shape(im)[1], dtype=np.int64) for im in images]
        self.pixels = [np.asarray(p) for p in pixels]
        self._offsets = np.concatenate([[0], np.cumsum([len(p) for p in self.pixels])]).astype(np.int64)
        for name, view in views.items():
            _check_rows(int(view.n_rows), self.n_rows, name)
        if fixed:
            _check_rows(int(self._offsets[-1]), self.n_rows, fixed[0])

    def __call__(self, indices) -> np.ndarray:
        """Rows ``indices`` under each draw: the noisy parts' draws beside the fixed parts' rows.

        Parameters
        ----------
        indices : 1-D int array-like
            Rows of ``transform(images, pixels)``, in ``[0, n_rows)``; repeats allowed.

        Returns
        -------
        ndarray of shape (n_draws, len(indices), n_features_out_)

        Raises
        ------
        ValueError
            Non-integer, not 1-D, or out-of-range indices.
        """
        idx = check_row_indices(indices, self.n_rows)
        feat = self.featurizer
        out = np.empty((self.n_draws, len(idx), feat.n_features_out_), dtype=feat._dtype())
        for name, view in self.views.items():
            feat._put(out, name, view(idx))
        if self.fixed and len(idx):
            uniq, inverse = np.unique(idx, return_inverse=True)  # sorted: grouped by image
            image_of = np.searchsorted(self._offsets, uniq, side="right") - 1
            which = np.unique(image_of)
            images = [self.images[i] for i in which]
            pixels = [self.pixels[i][uniq[image_of == i] - self._offsets[i]] for i in which]
            parts = dict(feat.featurizers)
            for name in self.fixed:
                feat._put(out, name, parts[name].transform(images, pixels=pixels)[inverse.reshape(-1)][None])
        return out


def make_concat(*featurizers, weights: dict | None = None) -> ConcatFeaturizer:
    """A :class:`ConcatFeaturizer` of ``featurizers``, named after their classes.

    Names are the lowercased class names without ``"featurizer"``
    (``"diffusion"``, ``"filterbank"``), with ``"-1"``, ``"-2"``... appended
    when a class repeats.

    Parameters
    ----------
    *featurizers
        Unfitted or fitted featurizers, in column order.
    weights : dict of str to float or None, default=None
        By the names above; see :class:`ConcatFeaturizer`.

    Returns
    -------
    ConcatFeaturizer
    """
    base = [type(f).__name__.lower().removesuffix("featurizer") or type(f).__name__.lower() for f in featurizers]
    names = [f"{b}-{base[:i].count(b) + 1}" if base.count(b) > 1 else b for i, b in enumerate(base)]
    return ConcatFeaturizer(list(zip(names, featurizers)), weights=weights)
