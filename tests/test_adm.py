"""ADM (guided-diffusion) checkpoints: conversion checked against OpenAI's own code (guided-diffusion-sdk).

The reference networks are small ADM models of the 256 x 256 shape (channel
multipliers 1,1,2,2,4,4, two residual blocks per level, attention at the
levels that are 32/16/8 px in a 256 input, scale-shift norm, residual up- and
downsampling) on 64 x 64 inputs: the same block structure, with attention at
8, 4 and 2 px, so every attention layer mixes several positions. Every
parameter is re-randomised before saving: ADM zero-initialises output
convolutions, and with those zeros a wrong mapping could still match.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

gd_unet = pytest.importorskip("guided_diffusion.unet", reason="needs the test extra (guided-diffusion-sdk)")

from skal_seg.diffusion.adm import (  # noqa: E402
    PAPER_OUTPUT_BLOCKS,
    convert_adm_checkpoint,
    infer_adm_architecture,
    output_block_module,
    paper_blocks,
)
from skal_seg.featurizer import DiffusionFeaturizer  # noqa: E402
from skal_seg.diffusion.models import load_diffusion_model  # noqa: E402

SIZE = 64
HEAD = 16  # channels per head: 2 to 8 heads per attention layer, so a wrong qkv split shows


def make_adm(seed=0, learn_sigma=True, num_classes=None, resblock_updown=True, scale_shift=True,
             new_order=False, channel_mult=(1, 1, 2, 2, 4, 4)):
    torch.manual_seed(seed)
    model = gd_unet.UNetModel(
        image_size=SIZE, in_channels=3, model_channels=32, out_channels=6 if learn_sigma else 3,
        num_res_blocks=2, attention_resolutions=(8, 16, 32), channel_mult=channel_mult,
        num_classes=num_classes, num_head_channels=HEAD, use_scale_shift_norm=scale_shift,
        resblock_updown=resblock_updown, use_new_attention_order=new_order,
    )
    with torch.no_grad():
        for p in model.parameters():  # re-randomise: no zero-initialised layer may hide a wrong mapping
            p.copy_(torch.randn_like(p) * (0.5 / max(1, p[0].numel()) ** 0.5) + (0.1 if p.ndim == 1 else 0.0))
    return model.eval()


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


def _inputs(n=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, SIZE, SIZE, generator=g), torch.tensor([50, 700][:n])


@pytest.fixture(scope="module")
def adm_file(tmp_path_factory):
    model = make_adm()
    path = tmp_path_factory.mktemp("adm") / "adm_small.pt"
    torch.save(model.state_dict(), path)
    return model, path


def _load(path, **kw):
    unet, sched = load_diffusion_model(path, adm_options={"num_head_channels": HEAD, "image_size": SIZE, **kw})
    return unet, sched


def test_outputs_match_guided_diffusion(adm_file):
    model, path = adm_file
    unet, sched = _load(path)
    x, t = _inputs()
    with torch.no_grad():
        ref = model(x, t)
        out = unet(x, t).sample
    assert out.shape == ref.shape == (2, 6, SIZE, SIZE)
    assert rel_err(out, ref) < 1e-4
    assert sched.config.beta_start == 1e-4 and sched.config.beta_end == 0.02
    assert sched.config.num_train_timesteps == 1000 and sched.config.beta_schedule == "linear"
    assert sched.config.variance_type == "learned_range"


def test_legacy_qkv_split_matters(adm_file):
    """Reading the released models' legacy qkv as thirds loads without error but computes something else."""
    model, path = adm_file
    wrong, _ = _load(path, attention_order="new")
    x, t = _inputs()
    acts = []
    hooks = [model.output_blocks[5].register_forward_hook(lambda m, a, out: acts.append(out)),
             wrong.get_submodule("up_blocks.1.upsamplers.0").register_forward_hook(lambda m, a, out: acts.append(out))]
    with torch.no_grad():
        assert rel_err(wrong(x, t).sample, model(x, t)) > 1e-4  # the output test's tolerance catches it
    for h in hooks:
        h.remove()
    assert rel_err(acts[0], acts[1]) > 1e-2  # and the first paper block after the attention levels, plainly


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(learn_sigma=False),
        dict(num_classes=5),
        dict(resblock_updown=False, scale_shift=False, new_order=True),
    ],
    ids=["eps-only", "class-conditional", "conv-updown-no-scale-shift-new-order"],
)
def test_variants_match(tmp_path, kwargs):
    model = make_adm(seed=3, **kwargs)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "m.pth")  # wrapped state dict
    order = "new" if kwargs.get("new_order") else "legacy"
    unet, _ = _load(tmp_path / "m.pth", attention_order=order)
    x, t = _inputs()
    y = torch.tensor([4, 1])
    with torch.no_grad():
        if kwargs.get("num_classes"):
            ref, out = model(x, t, y), unet(x, t, class_labels=y).sample
        else:
            ref, out = model(x, t), unet(x, t).sample
    assert out.shape[1] == (6 if kwargs.get("learn_sigma", True) else 3)
    assert rel_err(out, ref) < 1e-4


def test_architecture_read_from_state_dict(adm_file):
    model, path = adm_file
    arch = infer_adm_architecture(model.state_dict(), num_head_channels=HEAD, image_size=SIZE)
    assert arch.model_channels == 32 and arch.channel_mult == (1, 1, 2, 2, 4, 4)
    assert arch.num_res_blocks == 2 and arch.attention_levels == (False, False, False, True, True, True)
    assert arch.learn_sigma and arch.use_scale_shift_norm and arch.resblock_updown and arch.num_classes is None


def test_paper_blocks_are_adm_output_blocks(adm_file):
    """Each paper block's diffusers sub-module gives exactly ADM's output_blocks[o] output (hooks on both nets)."""
    model, path = adm_file
    unet, _ = _load(path)
    x, t = _inputs()
    ours, ref = {}, {}
    handles = [model.output_blocks[o].register_forward_hook(lambda m, a, out, o=o: ref.__setitem__(o, out))
               for o in range(len(model.output_blocks))]
    handles += [unet.get_submodule(output_block_module(unet, o)).register_forward_hook(
        lambda m, a, out, o=o: ours.__setitem__(o, out)) for o in range(len(model.output_blocks))]
    with torch.no_grad():
        model(x, t)
        unet(x, t)
    for h in handles:
        h.remove()
    for o in range(18):  # every output block, the paper's four among them
        assert ours[o].shape == ref[o].shape
        assert rel_err(ours[o], ref[o]) < 1e-4, o
    blocks = paper_blocks(unet)
    assert [b[0] for b in blocks] == list(PAPER_OUTPUT_BLOCKS)
    assert [b[1] for b in blocks] == ["up_blocks.1.upsamplers.0", "up_blocks.2.upsamplers.0",
                                      "up_blocks.4.resnets.0", "up_blocks.5.resnets.2"]
    assert [b[2] for b in blocks] == [ref[o].shape[1] for o in PAPER_OUTPUT_BLOCKS] == [128, 64, 32, 32]
    # 32, 64, 128, 256 px at a 256 input: an eighth, a quarter, a half and all of the input size
    assert [ref[o].shape[-1] for o in PAPER_OUTPUT_BLOCKS] == [SIZE // 8, SIZE // 4, SIZE // 2, SIZE]


def test_paper_width_of_the_released_256_models():
    """D = 6144: 3 timesteps x (1024 + 512 + 256 + 256) channels, from the real architecture (meta tensors)."""
    with torch.device("meta"):
        model = gd_unet.UNetModel(image_size=256, in_channels=3, model_channels=256, out_channels=6, num_res_blocks=2,
                                  attention_resolutions=(8, 16, 32), channel_mult=(1, 1, 2, 2, 4, 4),
                                  num_head_channels=64, use_scale_shift_norm=True, resblock_updown=True)
    chans = [model.output_blocks[o][0].out_channels for o in PAPER_OUTPUT_BLOCKS]
    arch = infer_adm_architecture(model.state_dict())
    from diffusers import UNet2DModel

    with torch.device("meta"):
        unet = UNet2DModel(**arch.diffusers_config())
    assert [b[2] for b in paper_blocks(unet)] == chans == [1024, 512, 256, 256]
    assert 3 * sum(chans) == 6144


def test_featurizer_paper_blocks_and_convert_folder(adm_file, tmp_path):
    model, path = adm_file
    out = convert_adm_checkpoint(path, tmp_path / "conv", num_head_channels=HEAD, image_size=SIZE)
    assert (out / "unet" / "config.json").is_file() and (out / "scheduler" / "scheduler_config.json").is_file()
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(2, SIZE, SIZE, 3), dtype=np.uint8)
    pix = [np.array([0, 5, 4000]), np.array([17])]
    feats = []
    for m in (str(path), out):
        f = DiffusionFeaturizer(model=m, blocks="paper", timesteps=(50, 150, 250), device="cpu", progress=False,
                                adm_options={"num_head_channels": HEAD, "image_size": SIZE})
        f.fit()
        assert f.n_features_out_ == 3 * (128 + 64 + 32 + 32)
        assert f.block_modules_[0] == "up_blocks.1.upsamplers.0"
        assert f.get_feature_names_out()[0] == "t50_out5_c000"
        assert f.set_params(blocks=None).get_feature_names_out()[0] == "t50_out5_c000"  # the fitted taps name them
        f.set_params(blocks="paper")
        feats.append(f.transform(imgs, pixels=pix))
    np.testing.assert_allclose(feats[0], feats[1], rtol=0, atol=1e-6)

    # The same features by hand from ADM's own network: output_blocks activations, upsampled, normalised.
    f = DiffusionFeaturizer(model=str(path), blocks="paper", device="cpu", progress=False,
                            adm_options={"num_head_channels": HEAD, "image_size": SIZE}).fit()
    x0 = torch.from_numpy(imgs).float().div(127.5).sub(1).permute(0, 3, 1, 2)
    t = torch.tensor([50, 150, 250]).repeat_interleave(2)
    xt = f.scheduler_.add_noise(x0.repeat(3, 1, 1, 1), f.noise_.expand(6, -1, -1, -1), t)
    acts = {}
    hs = [model.output_blocks[o].register_forward_hook(lambda m, a, o_, o=o: acts.__setitem__(o, o_))
          for o in PAPER_OUTPUT_BLOCKS]
    with torch.no_grad():
        model(xt, t)
    for h in hs:
        h.remove()
    ups = [torch.nn.functional.interpolate(acts[o], size=(SIZE, SIZE), mode="bilinear", align_corners=False)
           for o in PAPER_OUTPUT_BLOCKS]
    full = torch.cat(ups, 1).view(3, 2, -1, SIZE * SIZE)  # (T, image, C, pixel)
    want = full[:, 0, :, pix[0]].permute(2, 0, 1).reshape(len(pix[0]), -1)
    want = want / want.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(feats[0][: len(pix[0])], want.numpy(), rtol=0, atol=2e-5)


def test_class_conditional_featurizer_needs_a_class(tmp_path):
    model = make_adm(seed=5, num_classes=4)
    torch.save(model.state_dict(), tmp_path / "c.pt")
    opts = {"num_head_channels": HEAD, "image_size": SIZE}
    with pytest.raises(ValueError, match="class-conditional.*class_label"):
        DiffusionFeaturizer(model=tmp_path / "c.pt", device="cpu", progress=False, adm_options=opts).fit()
    f = DiffusionFeaturizer(model=tmp_path / "c.pt", device="cpu", progress=False, adm_options=opts, class_label=2)
    img = np.zeros((1, SIZE, SIZE, 3), np.uint8)
    assert np.isfinite(f.fit().transform(img, pixels=[np.array([0])])).all()


# ------------------------------------------------------------------------- bad files


def test_not_a_state_dict(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="not a PyTorch state dict"):
        load_diffusion_model(tmp_path / "junk.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a state dict"):
        load_diffusion_model(tmp_path / "list.pt")


def test_diffusers_file_passed_as_checkpoint(tmp_path):
    unet, _ = load_diffusion_model("embedded")
    (tmp_path / "unet").mkdir()
    torch.save(unet.state_dict(), tmp_path / "unet" / "w.pt")
    with pytest.raises(ValueError, match="diffusers UNet2DModel, not an ADM checkpoint.*pass its folder"):
        load_diffusion_model(tmp_path / "unet" / "w.pt")


def test_missing_and_extra_keys_are_named(adm_file, tmp_path):
    model, _ = adm_file
    sd = dict(model.state_dict())
    del sd["output_blocks.4.0.out_layers.3.bias"]
    sd["output_blocks.4.0.extra_thing.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"missing keys \['output_blocks.4.0.out_layers.3.bias'\].*"
                                         r"unexpected keys \['output_blocks.4.0.extra_thing.weight'\]"):
        _load(tmp_path / "bad.pt")


def test_unsupported_architecture(adm_file, tmp_path):
    model = make_adm(channel_mult=(2, 2, 4, 4, 8, 8))
    torch.save(model.state_dict(), tmp_path / "m2.pt")
    with pytest.raises(ValueError, match="unsupported ADM architecture.*channel_mult"):
        _load(tmp_path / "m2.pt")
    with pytest.raises(ValueError, match="not divisible by num_head_channels=48"):
        load_diffusion_model(adm_file[1], adm_options={"num_head_channels": 48, "image_size": SIZE})


def test_missing_file_and_paper_on_other_models(tmp_path):
    from skal_seg.diffusion.models import ModelNotAvailableError

    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        load_diffusion_model(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="blocks='paper'.*18 output blocks"):
        DiffusionFeaturizer(model="embedded", blocks="paper", device="cpu").fit()


# ------------------------------------------------------------------------- command line


def test_cli_convert_adm_then_load_offline(adm_file, tmp_path, monkeypatch, capsys):
    from skal_seg import cli

    model, path = adm_file
    out = tmp_path / "converted"
    assert cli.main(["convert-adm", str(path), str(out), "--num-head-channels", str(HEAD),
                     "--image-size", str(SIZE)]) == 0
    assert "wrote" in capsys.readouterr().out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    unet, sched = load_diffusion_model(out)
    x, t = _inputs()
    with torch.no_grad():
        assert rel_err(unet(x, t).sample, model(x, t)) < 1e-4
    assert sched.config.beta_end == 0.02 and unet.config.sample_size == SIZE
    with pytest.raises(SystemExit, match="exists and is not empty"):
        cli.main(["convert-adm", str(path), str(out)])
    with pytest.raises(SystemExit, match="is a folder"):
        cli.main(["convert-adm", str(out), str(tmp_path / "again")])


def test_cli_paper_preset(tmp_path):
    from skal_seg import cli

    with pytest.raises(SystemExit, match="--preset paper needs the paper's ADM model"):
        cli.main(["run", "--preset", "paper", "--out", str(tmp_path)])  # --model defaults to 'embedded'
    args = cli._parser("paper").parse_args(["run", "--preset", "paper", "--rounds", "3"])
    assert args.rounds == 3  # an explicit flag beats the preset
    assert (args.size, args.candidates_per_image, args.local_budget, args.keep_global, args.n_draws) == (
        [256], 10_000, 50, 0.5, 5)
    assert (args.timesteps, args.budget_per_image, args.val_fraction, args.blocks) == (
        [50, 150, 250], 0.1, 0.0, "paper")
    assert args.candidates == "valid"
    assert cli._parser("paper").parse_args(["run", "--preset", "paper", "--candidates", "all"]).candidates == "all"
    plain = cli._parser().parse_args(["run"])
    assert plain.blocks is None and plain.size == [128]


def test_cli_paper_preset_reaches_the_run(adm_file, tmp_path, run_config):
    """The preset's settings arrive in the ExperimentConfig (the run itself is stubbed: 256 px is GPU work)."""
    c = run_config(["run", "--preset", "paper", "--model", str(adm_file[1]), "--pool-limit", "2", "--test-limit", "1",
                    "--out", str(tmp_path)])
    assert c.featurizer == {"model": str(adm_file[1]), "timesteps": [50, 150, 250], "blocks": "paper"}
    assert (c.candidates_per_image, c.candidates, c.rounds, c.budget_per_image) == (
        10_000, "valid", 10, 0.1)
