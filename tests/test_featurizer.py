"""Tests of skal_seg.diffusion.models and skal_seg.featurizer on a tiny random UNet (fast, CPU, offline)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import Pipeline

from skal_seg.diffusion.embedded import EMBEDDED_UNET_CONFIG, embedded_model_dir
from skal_seg.featurizer import DiffusionFeaturizer
from skal_seg.diffusion.models import ModelNotAvailableError, load_diffusion_model

TINY = dict(
    sample_size=32,
    block_out_channels=(8, 16),
    layers_per_block=1,
    norm_num_groups=4,
    attention_head_dim=8,
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
)
TINY_D = 3 * (16 + 8)  # 3 timesteps x (up0: 16 ch at 16 px, up1: 8 ch at 32 px)



@pytest.fixture(scope="module")
def tiny_unet():
    torch.manual_seed(0)
    return UNet2DModel(**TINY).eval()


@pytest.fixture(scope="module")
def tiny_dir(tiny_unet, tmp_path_factory):
    """Pipeline layout: unet/ (float16, like the embedded export) + scheduler/."""
    path = tmp_path_factory.mktemp("tiny_ddpm")
    copy.deepcopy(tiny_unet).to(torch.float16).save_pretrained(path / "unet")
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(path / "scheduler")
    return path


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (3, 12, 16, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def feat(tiny_unet):
    return DiffusionFeaturizer(model=tiny_unet, device="cpu", progress=False).fit()


@pytest.fixture(scope="module")
def full(feat, images):
    return feat.transform(images)


def reference(unet, image, timesteps, blocks, out_hw, seed=0, pad=0, size=None):
    """Straightforward per-timestep hook + F.interpolate computation for one image.

    ``pad``: the noised input reflected by ``pad`` pixels, each decoder map cut back to the image's extent.
    """
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    s = unet.config.sample_size if size is None else size
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    x = x.float() / 127.5 - 1 if image.dtype == np.uint8 else x.float() * 2 - 1
    x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
    noise = torch.randn((3, s, s), generator=torch.Generator().manual_seed(seed))
    cols = []
    for t in timesteps:
        tt = torch.tensor([t])
        out = {}
        hooks = [
            unet.up_blocks[b].register_forward_hook(lambda m, a, o, b=b: out.__setitem__(b, o)) for b in blocks
        ]
        with torch.no_grad():
            unet(F.pad(scheduler.add_noise(x, noise[None], tt), (pad,) * 4, mode="reflect"), tt)
        for h in hooks:
            h.remove()
        for b in blocks:
            m = out[b]
            c = pad * m.shape[-1] // (s + 2 * pad)  # the map's cells per input pixel, times pad
            m = m[..., c : m.shape[-2] - c, c : m.shape[-1] - c]
            cols.append(F.interpolate(m, size=out_hw, mode="bilinear", align_corners=False)[0])
    f = torch.cat(cols).permute(1, 2, 0).reshape(out_hw[0] * out_hw[1], -1)
    return (f / f.norm(dim=1, keepdim=True)).numpy()


# ----------------------------------------------------------------------------- models


def test_load_pipeline_folder_casts_float16(tiny_dir, tiny_unet):
    unet, sched = load_diffusion_model(tiny_dir, "cpu", "float32")
    assert unet.dtype == torch.float32 and not unet.training
    assert sched.config.num_train_timesteps == 1000
    ref = tiny_unet.conv_in.weight.detach().half().float()
    assert torch.equal(unet.conv_in.weight, ref)


def test_load_unet_folder_with_and_without_scheduler(tiny_dir, tiny_unet, tmp_path):
    # pointing at the pipeline's unet/ finds ../scheduler
    unet, sched = load_diffusion_model(tiny_dir / "unet", "cpu", torch.bfloat16)
    assert unet.dtype == torch.bfloat16 and isinstance(sched, DDPMScheduler)
    tiny_unet.save_pretrained(tmp_path / "bare")
    DDPMScheduler(num_train_timesteps=500).save_pretrained(tmp_path / "bare" / "scheduler")
    _, sched = load_diffusion_model(tmp_path / "bare", "cpu", "float32")
    assert sched.config.num_train_timesteps == 500
    tiny_unet.save_pretrained(tmp_path / "alone")
    _, sched = load_diffusion_model(str(tmp_path / "alone"), "cpu", "float32")
    assert sched.config.num_train_timesteps == 1000  # defaults


def test_load_instance_does_not_modify_callers_module(tiny_unet):
    module = copy.deepcopy(tiny_unet).train()
    unet, sched = load_diffusion_model(module, "cpu", "bfloat16")
    assert unet is not module and unet.dtype == torch.bfloat16 and not unet.training
    assert module.training and module.dtype == torch.float32
    own = DDPMScheduler(num_train_timesteps=300)
    unet, sched = load_diffusion_model((tiny_unet, own), "cpu", "float32")
    assert unet is tiny_unet and sched is own  # already eval/cpu/float32: shared, not copied


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="model must be"):
        load_diffusion_model(123)
    with pytest.raises(ValueError, match="tuple"):
        load_diffusion_model((1, 2))
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        load_diffusion_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither"):
        load_diffusion_model(tmp_path / "empty")
    with pytest.raises(ValueError, match="dtype"):
        load_diffusion_model("embedded", dtype="float64")


def test_missing_embedded_model_gives_clear_error(monkeypatch, tmp_path):
    import skal_seg.diffusion.models

    monkeypatch.setattr(skal_seg.diffusion.models, "embedded_model_dir", lambda: tmp_path / "embedded_ddpm")
    with pytest.raises(ModelNotAvailableError, match="embedded diffusion model is missing"):
        DiffusionFeaturizer(device="cpu").fit()


@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks`")
def test_hub_id_offline_gives_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_id = "google/ddpm-ema-bedroom-256"
    with pytest.raises(ModelNotAvailableError) as info:
        DiffusionFeaturizer(model=model_id, device="cpu").fit()
    msg = str(info.value)
    assert isinstance(info.value, OSError)
    assert model_id in msg and "--local-dir" in msg and "DiffusionFeaturizer(model=DIR)" in msg


@pytest.mark.skipif(
    not (embedded_model_dir() / "unet").exists(), reason="embedded weights not exported yet"
)
def test_embedded_model_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    f = DiffusionFeaturizer(device="cpu", progress=False).fit()
    assert f.unet_.dtype == torch.float32
    assert f.input_size_ == (128, 128) and f.block_channels_ == (128, 128, 64, 32)
    assert f.n_features_out_ == 1056
    for key in ("block_out_channels", "up_block_types"):
        assert tuple(f.unet_.config[key]) == EMBEDDED_UNET_CONFIG[key]
    imgs = np.random.default_rng(0).integers(0, 256, (1, 24, 32, 3), dtype=np.uint8)
    X = f.transform(imgs, pixels=[np.array([0, 5, 767])])
    assert X.shape == (3, 1056) and np.isfinite(X).all()
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)


# ------------------------------------------------------------------------- featurizer


def test_fit_attributes_and_feature_names(feat):
    assert feat.blocks_ == (0, 1) and feat.block_channels_ == (16, 8)
    assert feat.n_features_out_ == feat.feature_dim_ == TINY_D
    assert feat.input_size_ == (32, 32) and feat.noise_.shape == (3, 32, 32)
    names = feat.get_feature_names_out()
    assert len(names) == TINY_D and len(set(names)) == TINY_D
    assert names[0] == "t50_up0_c000" and names[16] == "t50_up1_c000" and names[24] == "t150_up0_c000"
    assert names[-1] == "t250_up1_c007"


def test_shape_and_unit_norm(full, images):
    assert full.shape == (3 * 12 * 16, TINY_D) and full.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-5)


def test_deterministic_and_seed_dependent(tiny_unet, images, full):
    again = DiffusionFeaturizer(model=tiny_unet, device="cpu", progress=False).fit().transform(images)
    np.testing.assert_array_equal(again, full)
    other = DiffusionFeaturizer(model=tiny_unet, noise_seed=1, device="cpu", progress=False).fit()
    assert np.abs(other.transform(images) - full).max() > 1e-2


def test_batch_size_auto_and_batching_do_not_change_features(tiny_unet, images, feat, full):
    assert feat.batch_size_ == 2  # CPU, 3 timesteps: 6 samples per forward
    one_t = DiffusionFeaturizer(model=tiny_unet, timesteps=(50,), device="cpu", progress=False).fit()
    assert one_t.batch_size_ == 6
    for b in (1, 3):
        f = DiffusionFeaturizer(model=tiny_unet, batch_size=b, device="cpu", progress=False).fit()
        assert f.batch_size_ == b
        np.testing.assert_allclose(f.transform(images), full, atol=1e-6)


def test_matches_manual_reference(tiny_unet, images):
    """Row order (pixel (y, x) of image i), column order (t, block), resizing and upsampling."""
    f = DiffusionFeaturizer(
        model=tiny_unet, timesteps=(10, 400), blocks=(1, 0), output_size=(20, 28), device="cpu", progress=False
    ).fit()
    X = f.transform(images)
    assert X.shape == (3 * 20 * 28, 2 * 24)
    i, y, x = 2, 13, 5
    ref = reference(tiny_unet, images[i], (10, 400), (1, 0), (20, 28))
    row = i * 20 * 28 + y * 28 + x
    np.testing.assert_allclose(X[row], ref[y * 28 + x], atol=1e-5)
    np.testing.assert_allclose(X[i * 560 : (i + 1) * 560], ref, atol=1e-5)
    # float input in [0, 1]: same pipeline (x * 2 - 1 instead of x / 127.5 - 1)
    img = images[0].astype(np.float64) / 255.0
    np.testing.assert_allclose(
        f.transform(img[None]), reference(tiny_unet, img, (10, 400), (1, 0), (20, 28)), atol=1e-5
    )


def test_padded_features_match_the_reference_and_change_the_border_most(tiny_unet, images, full):
    feat = DiffusionFeaturizer(model=tiny_unet, device="cpu", progress=False, pad=4).fit()
    padded = feat.transform(images)
    assert padded.shape == full.shape
    for i, image in enumerate(images):
        rows = slice(i * 12 * 16, (i + 1) * 12 * 16)
        np.testing.assert_allclose(padded[rows], reference(tiny_unet, image, (50, 150, 250), (0, 1), (12, 16), pad=4),
                                   atol=2e-5)
    change = np.linalg.norm(padded - full, axis=1).reshape(3, 12, 16)
    ring = np.zeros((12, 16), dtype=bool)
    ring[:2], ring[-2:], ring[:, :2], ring[:, -2:] = True, True, True, True
    assert change[:, ring].mean() > 1.5 * change[:, ~ring].mean()  # padding is about the border
    noisy = feat.noisy_views(images[:1], n_draws=2, random_state=0)
    assert noisy.shape == (2, 12 * 16, TINY_D) and not np.allclose(noisy[0], noisy[1])


def test_input_size_runs_the_unet_at_that_size(tiny_unet, images):
    feat = DiffusionFeaturizer(model=tiny_unet, device="cpu", progress=False, input_size=48).fit()
    assert feat.input_size_ == (48, 48) and feat.noise_.shape == (3, 48, 48)
    out = feat.transform(images[:1])
    np.testing.assert_allclose(out, reference(tiny_unet, images[0], (50, 150, 250), (0, 1), (12, 16), size=48),
                               atol=2e-5)


def test_single_block_subset_is_a_column_block(tiny_unet, images, feat, full):
    """blocks=(0,) (forward stops after up0) gives up0's columns of the default features, renormalised."""
    f0 = DiffusionFeaturizer(model=tiny_unet, blocks=[0], device="cpu", progress=False).fit()
    X0 = f0.transform(images)
    cols = np.concatenate([np.arange(j * 24, j * 24 + 16) for j in range(3)])
    part = full[:, cols]
    np.testing.assert_allclose(X0, part / np.linalg.norm(part, axis=1, keepdims=True), atol=1e-5)


def test_pixel_subsets_equal_full_rows(feat, images, full):
    rng = np.random.default_rng(1)
    n = 12 * 16
    pix = [rng.integers(0, n, 7), np.array([5, 5, 0, n - 1]), rng.permutation(n)[:9]]
    rows = np.concatenate([p + i * n for i, p in enumerate(pix)])
    sub = feat.transform(images, pixels=pix)
    assert sub.shape == (20, TINY_D)
    # same UNet batches as the full transform: bit-identical
    np.testing.assert_array_equal(sub, full[rows])
    # an image without pixels is skipped (other batch, float rounding only)
    pix[1] = np.array([], dtype=int)
    rows = np.concatenate([p + i * n for i, p in enumerate(pix)])
    np.testing.assert_allclose(feat.transform(images, pixels=pix), full[rows], atol=1e-5)
    assert feat.transform(images, pixels=[[], [], []]).shape == (0, TINY_D)


def test_small_chunks_give_identical_features(feat, images, full, monkeypatch):
    """Upsampling in chunks (one output row / one pixel at a time) changes nothing."""
    import skal_seg.featurizer

    monkeypatch.setattr(skal_seg.featurizer, "_CHUNK_ELEMENTS", 1)
    big = [np.random.default_rng(3).integers(0, 256, (40, 45, 3), dtype=np.uint8)]
    X = feat.transform(big)
    monkeypatch.undo()
    np.testing.assert_array_equal(X, feat.transform(big))
    monkeypatch.setattr(skal_seg.featurizer, "_CHUNK_ELEMENTS", 1)
    pix = [np.array([0, 7, 100]), np.array([3]), np.array([191, 5])]
    np.testing.assert_array_equal(feat.transform(images, pixels=pix), full[[0, 7, 100, 192 + 3, 384 + 191, 384 + 5]])


def test_list_of_differently_sized_images(feat, images):
    rng = np.random.default_rng(2)
    imgs = [images[0], rng.random((9, 7, 3)), rng.integers(0, 256, (40, 33, 3), dtype=np.uint8)]
    X = feat.transform(imgs)
    sizes = [12 * 16, 9 * 7, 40 * 33]
    assert X.shape == (sum(sizes), TINY_D)
    off = np.cumsum([0] + sizes)
    for i, img in enumerate(imgs):
        np.testing.assert_allclose(X[off[i] : off[i + 1]], feat.transform([img]), atol=1e-5)
    pix = [np.array([3]), np.array([62, 0]), np.array([40 * 33 - 1])]
    np.testing.assert_allclose(feat.transform(imgs, pixels=pix), X[[3, off[1] + 62, off[1], off[3] - 1]], atol=1e-5)


def test_output_size(tiny_unet, images):
    for size, hw in ((8, (8, 8)), ((5, 9), (5, 9))):
        f = DiffusionFeaturizer(model=tiny_unet, output_size=size, device="cpu", progress=False).fit()
        assert f.transform(images).shape == (3 * hw[0] * hw[1], TINY_D)
        assert f.transform(list(images), pixels=[[hw[0] * hw[1] - 1]] * 3).shape == (3, TINY_D)
        with pytest.raises(ValueError, match="outside"):
            f.transform(images, pixels=[[hw[0] * hw[1]], [], []])


def test_float16_output(tiny_unet, images, full):
    f = DiffusionFeaturizer(model=tiny_unet, output_dtype="float16", device="cpu", progress=False).fit()
    X = f.transform(images)
    assert X.dtype == np.float16 and X.shape == full.shape
    np.testing.assert_allclose(X.astype(np.float32), full, atol=2e-3)


def test_bfloat16_unet(tiny_unet, images, full):
    f = DiffusionFeaturizer(model=tiny_unet, dtype="bfloat16", device="cpu", progress=False).fit()
    assert f.unet_.dtype == torch.bfloat16 and tiny_unet.dtype == torch.float32
    X = f.transform(images)
    assert X.dtype == np.float32
    cos = (X * full).sum(1)
    assert cos.mean() > 0.98


def test_noisy_views(feat, images, full):
    n = 12 * 16
    pix = [np.array([0, 17]), np.array([], dtype=int), np.array([n - 1])]
    rows = np.array([0, 17, 2 * n + n - 1])
    V = feat.noisy_views(images, n_draws=4, pixels=pix, random_state=0)
    assert V.shape == (4, 3, TINY_D) and V.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(V, axis=2), 1.0, atol=1e-5)
    for k in range(4):
        assert np.abs(V[k] - full[rows]).max() > 1e-3  # not the fixed noise
        for j in range(k):
            assert np.abs(V[k] - V[j]).max() > 1e-3  # draws differ
    np.testing.assert_array_equal(V, feat.noisy_views(images, n_draws=4, pixels=pix, random_state=0))
    gen = np.random.default_rng(0)
    np.testing.assert_array_equal(V, feat.noisy_views(images, n_draws=4, pixels=pix, random_state=gen))
    # draws do not depend on the pixels requested
    W = feat.noisy_views(images, n_draws=4, random_state=0)
    assert W.shape == (4, 3 * n, TINY_D)
    np.testing.assert_allclose(W[:, rows], V, atol=1e-5)


def test_noisy_view_fn(feat, images):
    n = 12 * 16
    pix = [np.array([4, 9, 100]), np.array([0]), np.array([7, n - 1])]
    fn = feat.noisy_view_fn(images, pix, n_draws=3, random_state=5)
    assert fn.n_rows == 6
    V = feat.noisy_views(images, n_draws=3, pixels=pix, random_state=5)
    np.testing.assert_allclose(fn(np.arange(6)), V, atol=1e-5)
    alone = fn([4])
    assert alone.shape == (3, 1, TINY_D)
    np.testing.assert_allclose(alone[:, 0], fn([5, 4, 0])[:, 1], atol=1e-5)
    np.testing.assert_allclose(alone[:, 0], V[:, 4], atol=1e-5)
    np.testing.assert_array_equal(fn([3, 3])[:, 0], fn([3, 3])[:, 1])
    assert fn([]).shape == (3, 0, TINY_D)
    for bad in ([6], [-1], [[0, 1]], [0.5]):
        with pytest.raises(ValueError):
            fn(bad)


def test_noisy_view_fn_computes_only_requested_images(feat, images):
    seen = []
    hook = feat.unet_.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        fn = feat.noisy_view_fn(images, [np.array([1]), np.array([2, 3]), np.array([4])], n_draws=2)
        fn([3])  # a row of image 2 only
    finally:
        hook.remove()
    assert seen == [3, 3]  # 2 draws x (1 image x 3 timesteps)


def test_sklearn_clone_params_and_pipeline(tiny_unet, images):
    f = DiffusionFeaturizer(model=tiny_unet, timesteps=(5, 20), output_size=6, device="cpu", progress=False)
    params = f.get_params()
    assert params["timesteps"] == (5, 20) and params["output_size"] == 6 and params["model"] is tiny_unet
    c = clone(f)
    assert c.get_params()["timesteps"] == (5, 20) and not hasattr(c, "unet_")
    f.fit()
    assert not hasattr(clone(f), "unet_")
    with pytest.raises(NotFittedError):
        clone(f).transform(images)
    labels = (np.arange(3 * 36) % 2).astype(int)  # per-pixel labels on the 6 x 6 grid
    pipe = Pipeline([("features", f), ("clf", NearestCentroid())]).fit(images, labels)
    assert pipe.predict(images).shape == (3 * 36,)


def test_device_auto(tiny_unet):
    f = DiffusionFeaturizer(model=tiny_unet, device="auto", progress=True).fit()  # progress bar path too
    assert f.transform(np.zeros((1, 4, 4, 3), np.uint8)).shape == (16, TINY_D)
    assert f.device_.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize(
    "make",
    [
        lambda im: im[0],  # a single (H, W, 3) image, not a batch
        lambda im: im[..., :2],  # 2 channels
        lambda im: np.moveaxis(im, -1, 1),  # channels first
        lambda im: im[:0],  # no images
        lambda im: [],
        lambda im: np.zeros((2, 0, 4, 3), np.uint8),
        lambda im: np.where(np.arange(3)[:, None, None, None] == 1, np.nan, im / 255.0),
        lambda im: im / 255.0 + 0.5,  # floats above 1
        lambda im: im / 255.0 - 0.5,  # floats below 0
        lambda im: im.astype(np.int32) + 300,  # integers above 255
        lambda im: im > 100,  # bool
        lambda im: [im[0], im[1, ..., :2]],  # list entry with 2 channels
        lambda im: im[..., 0],  # a 3-D stack: grayscale stacks are (n, H, W, 1)
        lambda im: im.astype(np.int16) - 1,  # negative integers
        lambda im: [np.zeros((4, 4, 4), np.uint8)],  # alpha channel
        lambda im: [im[0], np.full((4, 4, 3), np.inf)],
    ],
)
def test_bad_images_raise(feat, images, make):
    with pytest.raises(ValueError):
        feat.transform(make(images))


@pytest.mark.parametrize(
    "pixels",
    [
        [[0], [1]],  # too few arrays
        [[0], [1], [2], [3]],  # too many
        [[0], [12 * 16], [1]],  # out of range
        [[-1], [0], [1]],
        [[0.5], [0], [1]],  # not integers
        [np.zeros((2, 2), int), [0], [1]],  # not 1-D
        5,
    ],
)
def test_bad_pixels_raise(feat, images, pixels):
    with pytest.raises(ValueError):
        feat.transform(images, pixels=pixels)
    with pytest.raises(ValueError):
        feat.noisy_views(images, n_draws=1, pixels=pixels)


@pytest.mark.parametrize(
    "params",
    [
        dict(blocks=(2,)),
        dict(blocks=(-1,)),
        dict(blocks=(0, 0)),
        dict(blocks=()),
        dict(timesteps=(1000,)),
        dict(timesteps=(-1, 50)),
        dict(timesteps=(50.5,)),
        dict(timesteps=()),
        dict(dtype="float64"),
        dict(output_dtype="int8"),
        dict(device="tpu-ish"),
        dict(device="cuda:0") if not torch.cuda.is_available() else dict(device="nonsense"),
        dict(batch_size=0),
        dict(batch_size="big"),
        dict(output_size=(4, 0)),
        dict(output_size="big"),
        dict(noise_seed=None),
        dict(input_size=15),  # not a multiple of the tiny UNet's downsampling (2)
        dict(input_size=0),
        dict(pad=1),  # not a multiple of the tiny UNet's downsampling (2)
        dict(pad=-2),
        dict(pad=32),  # not below the input size
        dict(pad="8"),
    ],
)
def test_bad_params_raise(tiny_unet, params):
    with pytest.raises(ValueError):
        DiffusionFeaturizer(model=tiny_unet, progress=False, **{"device": "cpu", **params}).fit()


def test_bad_n_draws_and_random_state(feat, images):
    with pytest.raises(ValueError):
        feat.noisy_views(images, n_draws=0)
    with pytest.raises(ValueError):
        feat.noisy_views(images, n_draws=1, random_state="seed")
    with pytest.raises(ValueError):
        feat.noisy_view_fn(images, n_draws=-2)


def test_fit_validates_images_but_does_not_need_them(tiny_unet, images):
    f = DiffusionFeaturizer(model=tiny_unet, device="cpu", progress=False)
    assert f.fit(images) is f and f.fit() is f
    with pytest.raises(ValueError):
        f.fit(images[0])


# ----------------------------------------------------------------------------- input kinds (skal_seg.image_io.as_rgb)


def test_rgb_uint8_features_are_bit_identical_to_the_reference(feat, images, full):
    """The shared input conversion leaves RGB uint8 (array or list) untouched: the same bits as before it existed."""
    ref = np.concatenate([reference(feat.unet_, img, (50, 150, 250), (0, 1), img.shape[:2]) for img in images])
    np.testing.assert_allclose(full, ref, atol=1e-5)  # what the features were before: the manual reference
    np.testing.assert_array_equal(feat.transform(list(images)), full)
    np.testing.assert_array_equal(feat.transform(images.astype(np.int64)), full)  # integers in 0-255, as before
    np.testing.assert_array_equal(feat.transform(images / 255.0), feat.transform(list(images / 255.0)))


def test_grayscale_16bit_and_float_images_are_read_like_files(feat, images, tmp_path):
    from PIL import Image

    from skal_seg.data import read_image

    gray = images[..., 0]
    as_rgb8 = np.repeat(gray[..., None], 3, axis=-1)
    expected = feat.transform(as_rgb8)
    np.testing.assert_array_equal(feat.transform(list(gray)), expected)  # (H, W)
    np.testing.assert_array_equal(feat.transform(gray[..., None]), expected)  # (n, H, W, 1)
    np.testing.assert_array_equal(feat.transform([g[..., None] for g in gray]), expected)  # (H, W, 1)
    deep = gray.astype(np.uint16) * 257  # 16-bit: 0-65535 maps onto 0-255 exactly
    np.testing.assert_array_equal(feat.transform(list(deep)), expected)
    np.testing.assert_array_equal(feat.transform(deep[..., None]), expected)
    # a 16-bit file gives, through read_image, the features of its array
    odd = np.random.default_rng(1).integers(0, 65536, (12, 16), dtype=np.uint16)
    Image.fromarray(odd).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(feat.transform([odd]), feat.transform(read_image(tmp_path / "deep.png")[None]))
    # float grayscale in [0, 1] is float RGB, without rounding
    np.testing.assert_array_equal(feat.transform(list(gray / 255.0)), feat.transform(as_rgb8 / 255.0))
    with pytest.raises(ValueError, match=r"images\[0\] contains NaN"):
        feat.transform([np.full((4, 4), np.nan)])
    with pytest.raises(ValueError, match=r"float images must hold values in \[0, 1\]"):
        feat.transform([np.full((4, 4), 2.0)])


def test_an_input_size_beyond_memory_is_refused_at_fit(monkeypatch):
    # input_size 4096 used to be killed by the kernel without a word, 8192 to fail inside torch (25.8 GB at once)
    import skal_seg.featurizer as featurizer_module

    with pytest.raises(ValueError, match=r"input_size 4096 x 4096: a forward of 6 samples \(2 images x 3 timesteps\) "
                                         r"needs about 193.3 GB"):
        DiffusionFeaturizer(input_size=4096).fit()
    # the estimate for the embedded model: 5 maps of its first two stages' 32 + 64 channels, float32, at 128 px
    # padded by 8 on each side, for batch_size=1 x 3 timesteps
    needed = 5 * 4 * (32 + 64) * 144 * 144 * 3
    monkeypatch.setattr(featurizer_module, "available_memory_bytes", lambda: needed - 1)
    with pytest.raises(ValueError, match="choose a smaller input_size"):
        DiffusionFeaturizer(pad=8, batch_size=1).fit()
    monkeypatch.setattr(featurizer_module, "available_memory_bytes", lambda: needed)
    assert DiffusionFeaturizer(pad=8, batch_size=1).fit().input_size_ == (128, 128)
