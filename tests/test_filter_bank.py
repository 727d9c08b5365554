"""Tests of skal_seg.filter_bank (FilterBankFeaturizer) and skal_seg.concat (ConcatFeaturizer): fast, CPU."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from scipy import ndimage
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

import skal_seg
import skal_seg.filter_bank as fb_module
from skal_seg.concat import ConcatFeaturizer, make_concat
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.filter_bank import FILTERS, FilterBankFeaturizer, NoNoisyViewsError

H, W = 14, 17
D_DEFAULT = 3 + 4 * 8  # raw RGB + 4 scales x 8 columns of the six filters


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (3, H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def fb(images):
    return FilterBankFeaturizer(progress=False).fit(images)


@pytest.fixture(scope="module")
def full(fb, images):
    return fb.transform(images)


@pytest.fixture(scope="module")
def diffusion():
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, block_out_channels=(8,), layers_per_block=1, norm_num_groups=4,
                       down_block_types=("DownBlock2D",), up_block_types=("UpBlock2D",)).eval()
    return DiffusionFeaturizer(model=unet, timesteps=(5, 20), device="cpu", progress=False)


def unscaled(**params):
    """A featurizer fitted without images: columns are raw responses divided by sqrt(D)."""
    f = FilterBankFeaturizer(progress=False, **params).fit()
    return f, np.sqrt(f.n_features_out_)


# ------------------------------------------------------------------ filter bank


def test_attributes_shapes_and_feature_names(fb, full):
    assert fb.n_features_out_ == fb.feature_dim_ == D_DEFAULT and fb.batch_size_ == 1
    assert full.shape == (3 * H * W, D_DEFAULT) and full.dtype == np.float32
    names = fb.get_feature_names_out()
    assert len(names) == D_DEFAULT and len(set(names)) == D_DEFAULT
    assert list(names[:4]) == ["red_raw", "green_raw", "blue_raw", "gray_gaussian_s1"]
    assert list(names[3:11]) == [f"gray_{f}_s1" for f in ("gaussian", "laplacian", "gradient_magnitude", "dog")] + [
        "gray_structure_tensor_s1_ev0", "gray_structure_tensor_s1_ev1", "gray_hessian_s1_ev0", "gray_hessian_s1_ev1"]
    assert names[-1] == "gray_hessian_s5_ev1"
    f = FilterBankFeaturizer(sigmas=[0.7, 3.5], filters=["hessian", "gaussian"], channels=[1, "red"],
                             raw_channels=None).fit()
    assert list(f.get_feature_names_out()) == [  # FILTERS order, whatever order given
        "green_gaussian_s0.7", "green_hessian_s0.7_ev0", "green_hessian_s0.7_ev1",
        "green_gaussian_s3.5", "green_hessian_s3.5_ev0", "green_hessian_s3.5_ev1",
        "red_gaussian_s0.7", "red_hessian_s0.7_ev0", "red_hessian_s0.7_ev1",
        "red_gaussian_s3.5", "red_hessian_s3.5_ev0", "red_hessian_s3.5_ev1"]
    assert FilterBankFeaturizer(channels="rgb").fit().n_features_out_ == 3 + 3 * 4 * sum(FILTERS.values())


def test_columns_match_scipy_reference(images):
    f, root_d = unscaled(sigmas=(1.6,), raw_channels="green")
    X = f.transform(images[:1]).astype(np.float64) * root_d
    img = images[0].astype(np.float64) / 255
    gray = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    s = 1.6
    g = lambda order, x=gray, sigma=s: ndimage.gaussian_filter(x, sigma, order=order, mode="reflect")  # noqa: E731
    col = dict(zip(f.get_feature_names_out(), X.T))
    np.testing.assert_allclose(col["green_raw"], img[..., 1].ravel(), atol=1e-6)
    np.testing.assert_allclose(col["gray_gaussian_s1.6"], g(0).ravel(), atol=1e-5)
    np.testing.assert_allclose(col["gray_laplacian_s1.6"],
                               s**2 * ndimage.gaussian_laplace(gray, s, mode="reflect").ravel(), atol=1e-5)
    np.testing.assert_allclose(col["gray_gradient_magnitude_s1.6"],
                               s * ndimage.gaussian_gradient_magnitude(gray, s, mode="reflect").ravel(), atol=1e-5)
    np.testing.assert_allclose(col["gray_dog_s1.6"], (g(0) - g(0, sigma=0.66 * s)).ravel(), atol=1e-5)
    hess = s**2 * np.stack([g((2, 0)), g((1, 1)), g((1, 1)), g((0, 2))], -1).reshape(-1, 2, 2)
    ev = np.linalg.eigvalsh(hess)[:, ::-1]  # largest first
    np.testing.assert_allclose(col["gray_hessian_s1.6_ev0"], ev[:, 0], atol=1e-5)
    np.testing.assert_allclose(col["gray_hessian_s1.6_ev1"], ev[:, 1], atol=1e-5)
    gy, gx = s * g((1, 0)), s * g((0, 1))
    st = np.stack([g(0, gy * gy, s / 2), g(0, gy * gx, s / 2), g(0, gy * gx, s / 2), g(0, gx * gx, s / 2)], -1)
    ev = np.linalg.eigvalsh(st.reshape(-1, 2, 2))[:, ::-1]
    np.testing.assert_allclose(col["gray_structure_tensor_s1.6_ev0"], ev[:, 0], atol=1e-5)
    np.testing.assert_allclose(col["gray_structure_tensor_s1.6_ev1"], ev[:, 1], atol=1e-5)


def test_pixel_subsets_equal_full_rows(fb, images, full):
    n = H * W
    pix = [np.array([5, 0, 5, n - 1]), np.array([], dtype=np.int64), np.arange(0, n, 7)]
    rows = np.concatenate([p + i * n for i, p in enumerate(pix)])
    np.testing.assert_array_equal(fb.transform(images, pixels=pix), full[rows])
    X = fb.transform(list(images), pixels=[[3], [], [1, 2]])  # lists of lists of indices too
    np.testing.assert_array_equal(X, full[[3, 2 * n + 1, 2 * n + 2]])


def test_differently_sized_images_and_float16(fb, images, full):
    small = images[1, :9, :5]
    X = fb.transform([images[0], small])
    assert X.shape == (H * W + 45, D_DEFAULT)
    np.testing.assert_array_equal(X[: H * W], full[: H * W])  # each image is filtered on its own
    X16 = clone(fb).set_params(output_dtype="float16").fit(images).transform(images)
    assert X16.dtype == np.float16
    np.testing.assert_allclose(X16, full, atol=2e-3, rtol=2e-3)


def test_standardisation_learned_in_fit(fb, full, images):
    assert fb.n_fit_pixels_ == 3 * H * W
    np.testing.assert_allclose(full.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(full.std(0), 1 / np.sqrt(D_DEFAULT), rtol=1e-3)
    assert np.mean((full.astype(np.float64) ** 2).sum(1)) == pytest.approx(1.0, rel=1e-4)
    # without images, or with standardize=False: no statistics, raw responses / sqrt(D)
    for f in (FilterBankFeaturizer(progress=False).fit(), FilterBankFeaturizer(standardize=False).fit(images)):
        np.testing.assert_array_equal(f.mean_, 0)
        np.testing.assert_allclose(f.scale_, np.sqrt(D_DEFAULT))
        assert f.n_fit_pixels_ == 0
        X = f.transform(images)
        np.testing.assert_allclose(X[:, 0] * np.sqrt(D_DEFAULT), images[..., 0].ravel() / 255, atol=1e-6)
        assert np.abs(X).max() < 1.0
    # a constant column (a constant image) keeps scale sqrt(D) instead of dividing by zero
    const = FilterBankFeaturizer(progress=False).fit(np.full((1, 8, 8, 3), 77, np.uint8))
    assert np.isfinite(const.transform(images)).all()


def test_constant_image_has_no_border_outliers():
    f = FilterBankFeaturizer(sigmas=(1.0, 5.0), line_lengths=(5, 17), progress=False).fit()
    X = f.transform(np.full((1, 20, 30, 3), 200, np.uint8))
    np.testing.assert_allclose(X, np.broadcast_to(X[0], X.shape), atol=1e-6)  # border rows = interior rows


def border_to_interior_norm(**params):
    """Mean row norm within 2 px of the border over that of the interior, on white noise."""
    img = np.random.default_rng(1).integers(0, 256, (1, 60, 60, 3), dtype=np.uint8)
    f = FilterBankFeaturizer(sigmas=(1.0, 3.5), progress=False).fit(img)
    norm = np.linalg.norm(f.transform(img), axis=1).reshape(60, 60)
    border = np.ones((60, 60), bool)
    border[2:-2, 2:-2] = False
    return norm[border].mean() / norm[~border].mean()


def test_mirrored_borders_are_not_outliers(monkeypatch):
    assert border_to_interior_norm() < 1.3
    monkeypatch.setattr(fb_module, "_MODE", "constant")  # zero padding: the frame becomes an edge
    assert border_to_interior_norm() > 1.5


def line_columns(image, length):
    """(bright, dark) line-detector maps of a gray float image, unscaled, at one length."""
    f, root_d = unscaled(filters=["gaussian"], sigmas=[1.0], raw_channels=None, line_lengths=(length,))
    X = f.transform(image[None, :, :, None]) * root_d
    names = list(f.get_feature_names_out())
    assert names == ["gray_gaussian_s1", f"gray_line_bright_l{length}", f"gray_line_dark_l{length}"]
    shape = image.shape
    return X[:, 1].reshape(shape), X[:, 2].reshape(shape)


def test_line_detector_finds_thin_lines_of_either_polarity_and_orientation():
    horizontal = np.full((31, 31), 0.6, np.float32)
    horizontal[15] = 0.1  # a dark line one pixel wide
    bright, dark = line_columns(horizontal, 9)
    window = (8 * 9 * 0.6 + 9 * 0.1) / 81  # the 9 x 9 window around a line pixel
    assert dark[15, 15] == pytest.approx(window - 0.1, abs=1e-5)  # the segment along the line
    assert bright[15, 15] == pytest.approx(0.0, abs=1e-5)  # every other segment crosses the line once
    assert np.abs(dark[:10]).max() < 1e-5 and np.abs(bright[:10]).max() < 1e-5  # 5+ rows off the line: flat
    # The same line at 45 degrees (one of the 12 orientations) and inverted: the same response, other column.
    diagonal = np.full((31, 31), 0.4, np.float32)
    np.fill_diagonal(diagonal, 0.9)
    bright_d, dark_d = line_columns(diagonal, 9)
    assert bright_d[15, 15] == pytest.approx(dark[15, 15], abs=1e-5)
    assert dark_d[15, 15] == pytest.approx(0.0, abs=1e-5)


def test_line_columns_follow_the_channels_and_subsets_equal_full_rows(images):
    f = FilterBankFeaturizer(channels=["green", "gray"], line_lengths=(3, 7), progress=False).fit(images)
    per_channel = 4 * 8 + 2 * 2
    assert f.n_features_out_ == 3 + 2 * per_channel and f.line_lengths_ == (3, 7)
    names = f.get_feature_names_out()
    assert list(names[3 + per_channel - 4 : 3 + per_channel]) == [
        "green_line_bright_l3", "green_line_dark_l3", "green_line_bright_l7", "green_line_dark_l7"]
    full = f.transform(images)
    pixels = [np.array([0, H * W - 1, 5]), np.array([], int), np.array([W + 1])]
    offsets = [0, H * W, 2 * H * W]
    rows = np.concatenate([o + p for o, p in zip(offsets, pixels)])
    np.testing.assert_array_equal(f.transform(images, pixels=pixels), full[rows])


def test_gray_and_other_dtypes(images):
    f = FilterBankFeaturizer(progress=False).fit()
    gray = images[..., 1]
    rgb = f.transform(np.repeat(gray[..., None], 3, axis=-1))
    for arr in (gray[..., None], list(gray), [g[..., None] for g in gray]):
        np.testing.assert_allclose(f.transform(arr), rgb, atol=1e-6)
    expected = f.transform(images)
    for arr in (images.astype(np.uint16) * 257, images.astype(np.int64), images / 255.0, (images / 255).astype(np.float32)):
        np.testing.assert_allclose(f.transform(arr), expected, atol=1e-6)


def test_sklearn_clone_params_and_pipeline(images):
    f = FilterBankFeaturizer(sigmas=(1.0, 2.0), channels="green", progress=False)
    assert f.get_params()["sigmas"] == (1.0, 2.0) and f.get_params()["channels"] == "green"
    assert not hasattr(clone(f), "scale_")
    with pytest.raises(NotFittedError):
        f.transform(images)
    with pytest.raises(NotFittedError):
        f.get_feature_names_out()
    labels = (images[..., 1] > 127).astype(int).reshape(-1)  # per-pixel labels of every pixel
    pipe = Pipeline([("features", f), ("forest", RandomForestClassifier(n_estimators=5, random_state=0))])
    pipe.fit(images, labels)
    assert pipe.predict(images).shape == (3 * H * W,)
    assert (pipe.predict(images) == labels).mean() > 0.9


@pytest.mark.parametrize("make", [
    lambda im: im[0],  # one (H, W, 3) image, not a batch
    lambda im: im[..., :2],  # two channels
    lambda im: im[None],  # 5-D
    lambda im: [],
    lambda im: None,
    lambda im: im[:0],
    lambda im: [im[0, :0]],
    lambda im: [im[0], im[1, :, :, :2]],
    lambda im: np.where(im == 0, np.nan, im / 255.0),
    lambda im: np.where(im == 0, np.inf, im / 255.0),
    lambda im: im * 2.0,  # floats beyond 1
    lambda im: im.astype(np.int32) - 1,  # negative integers
    lambda im: im.astype(bool),
    lambda im: im.astype(np.complex64),
])
def test_bad_images_raise(fb, images, make):
    with pytest.raises(ValueError):
        fb.transform(make(images))
    if make(images) is not None:  # fit() without images is allowed
        with pytest.raises(ValueError):
            clone(fb).fit(make(images))


@pytest.mark.parametrize("pixels", [
    [np.array([0])],  # one array for three images
    [np.array([0]), np.array([1]), np.array([H * W])],  # out of range
    [np.array([0]), np.array([-1]), np.array([1])],
    [np.array([[0]]), np.array([1]), np.array([1])],  # 2-D
    [np.array([0.5]), np.array([1]), np.array([1])],  # not integers
    "abc",
])
def test_bad_pixels_raise(fb, images, pixels):
    with pytest.raises(ValueError):
        fb.transform(images, pixels=pixels)


@pytest.mark.parametrize("params, match", [
    (dict(channels="cmyk"), "unknown channels"),
    (dict(channels=[3]), "unknown channel"),
    (dict(channels=[]), "empty"),
    (dict(channels=["green", 1]), "repeats"),
    (dict(raw_channels="alpha"), "unknown raw_channels"),
    (dict(filters=["gaussian", "sobel"]), "unknown filters"),
    (dict(filters=[]), "empty"),
    (dict(filters=["dog", "dog"]), "repeat"),
    (dict(sigmas=()), "sigmas"),
    (dict(sigmas=(0.1, 1.0)), "sigmas"),
    (dict(sigmas=(1.0, 1.0)), "repeat"),
    (dict(sigmas=(1.0, float("nan"))), "sigmas"),
    (dict(sigmas="big"), "sigmas"),
    (dict(output_dtype="float64"), "output_dtype"),
    (dict(standardize="yes"), "standardize"),
    (dict(line_lengths=(4,)), "odd integers"),
    (dict(line_lengths=(1,)), "odd integers"),
    (dict(line_lengths=(5, 5)), "distinct"),
    (dict(line_lengths=(5.0,)), "odd integers"),
    (dict(line_lengths="long"), "odd integers"),
])
def test_bad_params_raise(params, match):
    with pytest.raises(ValueError, match=match):
        FilterBankFeaturizer(**params).fit()


@pytest.mark.parametrize("params, match", [
    (dict(sigmas=(1.0, 1e9)), r"sigma 1e\+09; .* at most the image's larger side \(%d px\)" % max(H, W)),
    (dict(line_lengths=(5, 2 * max(H, W) + 1)), "line length %d;" % (2 * max(H, W) + 1)),
])
def test_scales_larger_than_the_image_raise_before_any_filtering(images, params, match):
    # a 1e9 px Gaussian would ask for a 60 GiB kernel: the error must come first, from fit and from transform
    with pytest.raises(ValueError, match=match):
        FilterBankFeaturizer(progress=False, **params).fit(images)
    with pytest.raises(ValueError, match=match):
        FilterBankFeaturizer(progress=False, **params).fit().transform(images)
    # the image's larger side itself (W = 17, odd) is allowed
    largest = FilterBankFeaturizer(progress=False, sigmas=(float(W),), line_lengths=(W,)).fit(images)
    assert np.isfinite(largest.transform(images)).all()


def test_no_noisy_views(fb, images):
    with pytest.raises(NoNoisyViewsError, match="bald, edald, two_stage"):
        fb.noisy_view_fn(images, n_draws=3)
    with pytest.raises(NoNoisyViewsError, match="deterministic"):
        fb.noisy_views(images)
    assert issubclass(NoNoisyViewsError, ValueError)


def test_import_does_not_load_diffusers():
    code = ("import sys, skal_seg.filter_bank, skal_seg.concat; "
            "print('diffusers' in sys.modules, 'skal_seg.featurizer' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_top_level_exports():
    for name in ("FilterBankFeaturizer", "ConcatFeaturizer", "make_concat"):
        assert name in skal_seg.__all__ and name in dir(skal_seg)
    assert skal_seg.FilterBankFeaturizer is FilterBankFeaturizer and skal_seg.make_concat is make_concat


# ------------------------------------------------------------------ combination


def test_concat_columns_are_the_parts_bit_for_bit(diffusion, images):
    both = make_concat(diffusion, FilterBankFeaturizer(progress=False)).fit(images)
    diff, filt = both.featurizers[0][1], both.featurizers[1][1]
    assert [n for n, _ in both.featurizers] == ["diffusion", "filterbank"]
    d_diff = diff.n_features_out_
    assert both.n_features_out_ == both.feature_dim_ == d_diff + D_DEFAULT
    assert both.feature_slices_ == {"diffusion": slice(0, d_diff), "filterbank": slice(d_diff, d_diff + D_DEFAULT)}
    assert both.batch_size_ == diff.batch_size_
    X = both.transform(images)
    np.testing.assert_array_equal(X[:, :d_diff], diff.transform(images))
    np.testing.assert_array_equal(X[:, d_diff:], filt.transform(images))
    pix = [np.array([4, 0]), np.array([], dtype=np.int64), np.array([H * W - 1])]
    np.testing.assert_array_equal(both.transform(images, pixels=pix), X[[4, 0, 3 * H * W - 1]])
    names = both.get_feature_names_out()
    assert names[0] == "diffusion__" + diff.get_feature_names_out()[0] and names[-1] == "filterbank__gray_hessian_s5_ev1"


def test_concat_weights_dtype_and_params(diffusion, images):
    filt = FilterBankFeaturizer(progress=False, output_dtype="float16")
    both = ConcatFeaturizer([("emb", clone(diffusion)), ("fb", filt)], weights={"fb": 0.5}).fit(images)
    X = both.transform(images)
    assert X.dtype == np.float32  # the widest part's dtype
    np.testing.assert_allclose(X[:, both.feature_slices_["fb"]], 0.5 * filt.transform(images).astype(np.float32))
    params = both.get_params()
    assert params["fb__sigmas"] == (1.0, 1.6, 3.5, 5.0) and params["emb__timesteps"] == (5, 20)
    both.set_params(fb__sigmas=(2.0,))
    assert filt.sigmas == (2.0,)
    c = clone(both)
    assert c.featurizers[1][1] is not filt and c.featurizers[1][1].sigmas == (2.0,) and not hasattr(c, "weights_")
    with pytest.raises(NotFittedError):
        c.transform(images)
    labels = (np.arange(3 * H * W) % 2).astype(int)
    pipe = Pipeline([("features", c), ("forest", RandomForestClassifier(n_estimators=3, random_state=0))])
    assert pipe.fit(images, labels).predict(images).shape == (3 * H * W,)


def test_concat_noisy_views(diffusion, images):
    both = make_concat(clone(diffusion), FilterBankFeaturizer(progress=False)).fit(images)
    diff, filt = both.featurizers[0][1], both.featurizers[1][1]
    cols_d, cols_f = both.feature_slices_["diffusion"], both.feature_slices_["filterbank"]
    pix = [np.array([4, 9, 100]), np.array([0]), np.array([7, H * W - 1])]
    fn = both.noisy_view_fn(images, pix, n_draws=3, random_state=5)
    assert fn.n_rows == 6 and fn.n_draws == 3
    idx = np.array([5, 1, 1, 3])
    V = fn(idx)
    assert V.shape == (3, 4, both.n_features_out_)
    np.testing.assert_array_equal(V[:, :, cols_d], diff.noisy_view_fn(images, pix, n_draws=3, random_state=5)(idx))
    rows = both.transform(images, pixels=pix)[idx]
    for k in range(3):
        np.testing.assert_array_equal(V[k, :, cols_f], rows[:, cols_f])  # fixed in every draw
    assert np.abs(V[0, :, cols_d] - V[1, :, cols_d]).max() > 1e-3  # the diffusion part varies
    assert fn([]).shape == (3, 0, both.n_features_out_)
    whole = both.noisy_view_fn(images, n_draws=2, random_state=0)  # pixels=None: every pixel
    assert whole.n_rows == 3 * H * W
    np.testing.assert_array_equal(whole([H * W + 3])[1, :, cols_f], filt.transform(images)[[H * W + 3]])
    for bad in ([6], [-1], [[0, 1]], [0.5]):
        with pytest.raises(ValueError):
            fn(bad)


def test_concat_without_noisy_parts_refuses(images):
    two = make_concat(FilterBankFeaturizer(progress=False), FilterBankFeaturizer(channels="green", progress=False))
    assert [n for n, _ in two.featurizers] == ["filterbank-1", "filterbank-2"]
    two.fit(images)
    with pytest.raises(NoNoisyViewsError, match="none of the parts"):
        two.noisy_view_fn(images, n_draws=2)


def test_concat_grids_must_agree(diffusion, images):
    both = make_concat(clone(diffusion).set_params(output_size=6), FilterBankFeaturizer(progress=False)).fit(images)
    with pytest.raises(ValueError, match="output grid"):
        both.transform(images)


@pytest.mark.parametrize("featurizers, weights, match", [
    ([], None, "non-empty"),
    ([FilterBankFeaturizer()], None, "pairs"),
    ([("a", FilterBankFeaturizer()), ("a", FilterBankFeaturizer())], None, "unique"),
    ([("a__b", FilterBankFeaturizer())], None, "__"),
    ([("weights", FilterBankFeaturizer())], None, "conflict"),
    ([("a", "not a featurizer")], None, "fit/transform"),
    ([("a", FilterBankFeaturizer())], {"b": 1.0}, "not parts"),
    ([("a", FilterBankFeaturizer())], {"a": 0.0}, "positive"),
    ([("a", FilterBankFeaturizer())], [1.0], "dict"),
])
def test_concat_bad_params_raise(featurizers, weights, match):
    with pytest.raises(ValueError, match=match):
        ConcatFeaturizer(featurizers, weights=weights).fit()
