"""Per-pixel features from a diffusion UNet's decoder (the paper's feature extractor).

Every image is scaled to [-1, 1], resized to the UNet's input size, noised to
a few diffusion timesteps with one fixed noise tensor, and passed through the
UNet; the outputs of chosen decoder (``up_blocks``) stages are bilinearly
upsampled to the output grid and concatenated into one L2-normalised vector
per pixel. :meth:`DiffusionFeaturizer.noisy_views` recomputes the same
features under fresh noise draws, which eDALD uses as stochastic views.

Why one module (about 800 lines): the fixed-noise features, the noisy views,
the padding, the input size and the chunked upsampling are one computation
whose parts must agree bit for bit (the cache keys and the tests compare
them); split, each part would need the others' private state.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from skal_seg._checks import check_auto_or_positive_int, check_output_dtype, check_pixels, check_row_indices
from skal_seg._memory import available_memory_bytes
from skal_seg._validation import readonly_tensor
from skal_seg.diffusion.adm import paper_blocks
from skal_seg.diffusion.models import load_diffusion_model
from skal_seg.image_io import as_rgb

__all__ = ["DiffusionFeaturizer", "NoisyViewFunction"]

_UNET_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Each output chunk holds at most this many float32 values (pixels x D), so the
# upsampling never materialises a whole high-resolution feature map at once.
_CHUNK_ELEMENTS = 1 << 23
# batch_size="auto" on CPU: forwards of a few samples stay in cache (see the batch_size docs).
_CPU_SAMPLES_PER_FORWARD = 6
# A forward's peak memory in maps of the last decoder stage's input (the first two stages' channels, float32, at the
# input size): the embedded model's peak resident growth for one sample at 256, 512 and 1024 px was 2.9, 2.3 and
# 2.0 KB per pixel, 7.6 to 5.3 such maps of 96 channels (benchmarks/bench_forward_memory.py); the lower end, so
# that nothing that fits is refused.
_FORWARD_MAPS = 5
_EPS = 1e-12


class _StopForward(Exception):
    """Raised by the last needed hook: later decoder stages are not computed."""


# --------------------------------------------------------------------------- inputs


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_one_image(img, where: str) -> np.ndarray:
    img = as_rgb(img, where)
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"{where} is empty (shape {img.shape})")
    return img


def _check_images(images) -> list[np.ndarray]:
    """Validate ``images``; one (H, W, 3) array per image (see :func:`skal_seg.image_io.as_rgb`; views where possible)."""
    if images is None:
        raise ValueError("images is None")
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("images is empty")
        return [_check_one_image(img, f"images[{i}]") for i, img in enumerate(images)]
    arr = np.asarray(images)
    if arr.ndim == 4 and 0 in arr.shape[:3]:
        raise ValueError(f"images is empty (shape {arr.shape})")
    return list(as_rgb(arr, "images", stacked=True))  # checked once for the whole array, not per image


def _to_model_range(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8/int (0-255) or float (0-1) from ``as_rgb`` -> float32 (3, H, W) in [-1, 1]."""
    # A view without a copy, also of read-only arrays (np.asarray(PIL.Image) is one): it is only
    # read, the arithmetic below writes new tensors.
    t = readonly_tensor(np.ascontiguousarray(img))
    if img.dtype.kind in "iu":
        # Same formula as skal_seg.diffusion.train_ddpm.to_model_range (training inputs).
        t = t.float().div(127.5).sub(1.0)
    else:
        t = t.float().mul(2.0).sub(1.0)
    return t.permute(2, 0, 1)


def _resolve_device(device) -> torch.device:
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    else:
        raise ValueError(f"device must be a string or torch.device, got {type(device).__name__}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use device='cpu' or 'auto'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but MPS is not available")
    return dev


def _draw_noise(random_state, n_draws: int, shape: tuple[int, ...]) -> torch.Tensor:
    """``n_draws`` standard-normal tensors of ``shape`` (float32, CPU) from a numpy seed/generator."""
    if isinstance(random_state, np.random.RandomState):
        z = random_state.standard_normal((n_draws, *shape)).astype(np.float32)
    else:
        try:
            rng = np.random.default_rng(random_state)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}") from exc
        z = rng.standard_normal((n_draws, *shape), dtype=np.float32)
    return torch.from_numpy(z)


# ----------------------------------------------------------------- bilinear sampling


def _axis_weights(n_in: int, n_out: int, coords: torch.Tensor):
    """Source taps and weights of ``F.interpolate(mode="bilinear", align_corners=False)`` on one axis.

    ``coords`` are output coordinates (int64); returns ``(i0, i1, w0, w1)`` with
    ``value = w0 * in[i0] + w1 * in[i1]``. Computed elementwise, so the weights
    of a coordinate do not depend on which other coordinates are asked for.
    """
    scale = n_in / n_out
    src = ((coords.to(torch.float32) + 0.5) * scale - 0.5).clamp_min(0.0)
    i0 = src.floor().to(torch.int64).clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    w1 = src - i0.to(torch.float32)
    w0 = 1.0 - w1
    return i0, i1, w0, w1


def _sample_pixels(maps: list[torch.Tensor], ys: torch.Tensor, xs: torch.Tensor, out_hw, buf: torch.Tensor):
    """Bilinear features at pixels (ys, xs) of an ``out_hw`` grid, written into ``buf`` (n, T, sum C).

    ``maps``: per block (T, C, h, w) float32. Cost is proportional to the
    number of pixels, not to the grid size. Uses the same elementwise
    operations as :func:`_sample_rows`, so both give bit-identical values.
    """
    out_h, out_w = out_hw
    off = 0
    for m in maps:
        t, c, h, w = m.shape
        flat = m.reshape(t, c, h * w)
        if (h, w) == (out_h, out_w):
            val = flat[:, :, ys * w + xs]
        else:
            y0, y1, wy0, wy1 = _axis_weights(h, out_h, ys)
            x0, x1, wx0, wx1 = _axis_weights(w, out_w, xs)
            top = wx0 * flat[:, :, y0 * w + x0] + wx1 * flat[:, :, y0 * w + x1]
            bottom = wx0 * flat[:, :, y1 * w + x0] + wx1 * flat[:, :, y1 * w + x1]
            val = wy0 * top + wy1 * bottom
        buf[:, :, off : off + c] = val.permute(2, 0, 1)
        off += c


def _sample_rows(maps: list[torch.Tensor], ya: int, yb: int, out_hw, buf: torch.Tensor):
    """Bilinear features of output rows [ya, yb) (all columns), written into ``buf`` ((yb-ya)*W, T, sum C)."""
    out_h, out_w = out_hw
    rows = yb - ya
    off = 0
    for m in maps:
        t, c, h, w = m.shape
        if (h, w) == (out_h, out_w):
            val = m[:, :, ya:yb, :]
        else:
            y0, y1, wy0, wy1 = _axis_weights(h, out_h, torch.arange(ya, yb, device=m.device))
            x0, x1, wx0, wx1 = _axis_weights(w, out_w, torch.arange(out_w, device=m.device))
            lo, hi = int(y0.min()), int(y1.max()) + 1  # only the source rows these output rows use
            part = m[:, :, lo:hi, :]
            horiz = wx0 * part[..., x0] + wx1 * part[..., x1]  # (T, C, hi - lo, out_w)
            val = wy0[:, None] * horiz[:, :, y0 - lo, :] + wy1[:, None] * horiz[:, :, y1 - lo, :]
        buf.view(rows, out_w, t, -1)[:, :, :, off : off + c] = val.permute(2, 3, 0, 1)
        off += c


def _normalise_rows(feats: torch.Tensor) -> torch.Tensor:
    """L2-normalise the rows of ``feats`` in place (a scratch buffer: no copies)."""
    return feats.div_(torch.linalg.vector_norm(feats, dim=1, keepdim=True).clamp_min_(_EPS))


@dataclass
class _Job:
    image: int  # index into the image list
    row: int  # first output row
    pixels: torch.Tensor | None  # flat pixel indices; None = whole grid
    grid: tuple[int, int]  # output (H, W)

    @property
    def n_rows(self) -> int:
        """Number of output rows of this job.

        Returns
        -------
        int
            ``H * W`` of ``grid`` when ``pixels`` is None, else ``len(pixels)``.
        """
        return self.grid[0] * self.grid[1] if self.pixels is None else len(self.pixels)


# ------------------------------------------------------------------------ estimator


class DiffusionFeaturizer(TransformerMixin, BaseEstimator):
    """Per-pixel features from the decoder of a diffusion UNet (scikit-learn transformer).

    Each image is scaled to [-1, 1], resized (bilinear) to the UNet's input
    size ``S = unet.config.sample_size``, noised to every timestep in
    ``timesteps`` with the scheduler's ``add_noise`` and ONE fixed noise
    tensor (shape (3, S, S), drawn from ``noise_seed``, shared by all images),
    and passed through the UNet. The outputs of the decoder stages
    ``unet.up_blocks[b]`` for ``b`` in ``blocks`` are captured with forward
    hooks, bilinearly upsampled (``align_corners=False``) to the output grid,
    concatenated and L2-normalised per pixel. ``blocks="paper"`` takes the
    paper's ADM decoder blocks instead (see :mod:`skal_seg.diffusion.adm`).

    Parameters
    ----------
    model : str, path-like, UNet2DModel or (UNet2DModel, scheduler), default="embedded"
        Passed to :func:`skal_seg.diffusion.models.load_diffusion_model`: ``"embedded"``
        (the DDPM shipped with the package, works offline), a local
        ``save_pretrained`` folder, a Hugging Face Hub id, an ADM
        (guided-diffusion) ``.pt`` / ``.pth`` checkpoint, or a model instance.
    timesteps : sequence of int, default=(50, 150, 250)
        Diffusion timesteps, each in ``[0, num_train_timesteps)``, distinct.
    blocks : sequence of int, "paper" or None, default=None
        ``"paper"``: the outputs of ADM ``output_blocks`` 5, 8, 12 and 17,
        the paper's features, for a model converted from an ADM 256 x 256
        checkpoint (1024 + 512 + 256 + 256 channels at 32, 64, 128, 256 px,
        ``D = 6144`` at three timesteps; other models raise ValueError; the
        diffusers sub-modules are listed in :mod:`skal_seg.diffusion.adm`).
        A sequence: indices into ``unet.up_blocks`` (distinct, in column order). None =
        every decoder stage, ``range(len(unet.up_blocks))``: coarse semantic
        stages plus fine full-resolution ones, valid for any ``UNet2DModel``.
        For the embedded model (128 x 128 input, 4 stages) these have
        128, 128, 64, 32 channels at 32, 64, 128, 128 px, i.e. 352 per
        timestep and ``D = 1056`` with the 3 default timesteps.
    output_size : int, (int, int) or None, default=None
        Output grid (H, W) of every image (int = square). None = each image's
        own size.
    noise_seed : int, default=0
        Seed of the CPU ``torch.Generator`` drawing the fixed noise.
    batch_size : int or "auto", default="auto"
        Images per UNet forward; each forward holds ``batch_size * len(timesteps)``
        samples. ``"auto"``: on CPU, enough images for about 6 samples (2 at
        the 3 default timesteps), on other devices 8. Small batches are
        faster on CPU: on a 2-core CPU a 128 x 128 sample of the embedded
        model took 0.16-0.18 s in forwards of 3-6 samples and 0.26-0.27 s in
        forwards of 24.
    device : str or torch.device, default="auto"
        ``"auto"`` = CUDA when available, else CPU.
    dtype : {"float32", "float16", "bfloat16"}, default="float32"
        Dtype of the UNet computation (upsampling and normalisation use float32).
    output_dtype : {"float32", "float16"}, default="float32"
        Dtype of the returned features; float16 halves their memory.
    progress : bool, default=True
        Show a tqdm bar over image batches.
    adm_options : dict or None, default=None
        For ADM checkpoint files: keywords of
        :func:`skal_seg.diffusion.adm.load_adm_checkpoint` (``num_head_channels``,
        default 64; ``image_size``, default 256; ``attention_order``).
    class_label : int or None, default=None
        Class fed to a class-conditional model (required for those, an int
        in ``[0, num_class_embeds)``; must be None for unconditional models).
    input_size : int, (int, int) or None, default=None
        The size ``S`` images are resized to for the UNet. None = the
        model's ``sample_size`` (128 for the embedded model, the size it was
        trained at). The UNet is convolutional, so a larger size keeps thin
        structures (DRIVE's vessels are 1-10 px wide at 565 px; at 128 px most
        vanish) at ``(S / sample_size) ** 2`` the time and activation memory;
        a multiple of the UNet's total downsampling. The features of a size
        the model was not trained at are not the trained model's statistics:
        measure them on your data (docs/features.md, "Resolution").
    pad : int, default=0
        Input pixels added on every side of the noised input (at the UNet's
        input size ``S``) by reflection before the forward; the decoder maps
        are cropped back to the image, so the output grid and the feature
        dimension do not change. The UNet's convolutions pad with zeros: without it the pixels
        near the image border get features unlike any inside (MaxHerding
        then over-picks them, docs/features.md, "Borders"). A multiple of
        the UNet's total downsampling ``2 ** (len(block_out_channels) - 1)``
        (8 for the embedded model), below ``S``; 0 = today's features, bit
        for bit. Costs ``((S + 2 pad) / S) ** 2`` the UNet time.
    executor : RayExecutor or None, default=None
        Where the UNet forwards run: None = in this process;
        a :class:`skal_seg.distributed.RayExecutor` = as tasks on Ray
        workers (:meth:`transform`, :meth:`noisy_views` and
        :meth:`noisy_view_fn` alike), with the same features bit for bit
        when the workers use this process's torch thread count and device
        (see :mod:`skal_seg.distributed`).

    Attributes
    ----------
    unet_ : UNet2DModel
        The loaded UNet (eval mode, on ``device_``).
    scheduler_ : DDPMScheduler
        Its noise schedule.
    device_ : torch.device
    dtype_ : torch.dtype
        Dtype of the UNet computation.
    input_size_ : tuple of int
        (S_h, S_w): the UNet input size images are resized to.
    timesteps_ : tuple of int
    blocks_ : tuple of int
        Decoder stages used (``blocks`` resolved): ``up_blocks`` indices, or
        for ``blocks="paper"`` the ADM ``output_blocks`` indices (5, 8, 12, 17).
    block_modules_ : tuple of str
        The hooked ``unet_`` sub-modules, e.g. ``"up_blocks.0"`` or ``"up_blocks.1.upsamplers.0"``.
    block_channels_ : tuple of int
        Channels of each stage in ``blocks_``.
    batch_size_ : int
        Images per UNet forward (``batch_size`` resolved).
    n_features_out_ : int
        ``D = len(timesteps_) * sum(block_channels_)``.
    feature_dim_ : int
        Same as ``n_features_out_``.
    output_size_ : tuple of int or None
    noise_ : torch.Tensor of shape (3, S_h, S_w), float32, CPU
        The fixed noise.

    Notes
    -----
    Feature columns are ordered ``for t in timesteps_: for b in blocks_: for
    channel``; see :meth:`get_feature_names_out`. Rows are image-major, then
    row-major over the output grid: pixel (y, x) of image i is row
    ``offset_i + y * W_i + x``, ``offset_i`` the pixel count of earlier images.
    """

    def __init__(
        self,
        model="embedded",
        timesteps=(50, 150, 250),
        blocks=None,
        output_size=None,
        noise_seed: int = 0,
        batch_size: int | str = "auto",
        device="auto",
        dtype: str = "float32",
        output_dtype: str = "float32",
        progress: bool = True,
        adm_options: dict | None = None,
        class_label: int | None = None,
        input_size=None,
        pad: int = 0,
        executor=None,
    ):
        self.model = model
        self.timesteps = timesteps
        self.blocks = blocks
        self.output_size = output_size
        self.noise_seed = noise_seed
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.output_dtype = output_dtype
        self.progress = progress
        self.adm_options = adm_options
        self.class_label = class_label
        self.input_size = input_size
        self.pad = pad
        self.executor = executor

    # ------------------------------------------------------------------ fitting

    def _check_params(self) -> None:
        if not isinstance(self.dtype, str) or self.dtype not in _UNET_DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_UNET_DTYPES)}, got {self.dtype!r}")
        check_output_dtype(self.output_dtype)
        check_auto_or_positive_int(self.batch_size, "batch_size")
        if self.executor is not None and not callable(getattr(self.executor, "featurize", None)):
            raise ValueError(f"executor must be None or a skal_seg.distributed.RayExecutor, got {self.executor!r}")
        if not _is_int(self.pad) or self.pad < 0:
            raise ValueError(f"pad must be a non-negative integer, got {self.pad!r}")
        if not _is_int(self.noise_seed):
            raise ValueError(f"noise_seed must be an integer, got {self.noise_seed!r}")
        for name in ("output_size", "input_size"):
            size = getattr(self, name)
            if size is None:
                continue
            if _is_int(size):
                size = (size, size)
            if not (isinstance(size, Sequence) and len(size) == 2 and all(_is_int(s) and s > 0 for s in size)):
                raise ValueError(f"{name} must be None, a positive int or (H, W), got {getattr(self, name)!r}")

    @staticmethod
    def _int_tuple(value, name: str) -> tuple[int, ...]:
        values = (value,) if _is_int(value) else value
        try:
            values = tuple(values)
        except TypeError:
            raise ValueError(f"{name} must be a sequence of integers, got {value!r}") from None
        if not values or not all(_is_int(v) for v in values):
            raise ValueError(f"{name} must be a non-empty sequence of integers, got {value!r}")
        if len(set(values)) != len(values):
            raise ValueError(f"{name} must not repeat values, got {value!r}")
        return tuple(int(v) for v in values)

    def fit(self, images=None, y=None):
        """Load the diffusion model and validate the parameters.

        Parameters
        ----------
        images : array-like or None, default=None
            Optional; validated like in :meth:`transform` but not stored
            (the featurizer learns nothing from data).
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad parameters (dtype, device, batch_size, output_size), timesteps
            outside ``[0, num_train_timesteps)``, unknown block indices, or bad images.
        skal_seg.diffusion.models.ModelNotAvailableError
            The model cannot be loaded (see :func:`~skal_seg.diffusion.models.load_diffusion_model`).
        """
        self._check_params()
        if images is not None:
            _check_images(images)
        device = _resolve_device(self.device)
        timesteps = self._int_tuple(self.timesteps, "timesteps")
        unet, scheduler = load_diffusion_model(
            self.model, device=device, dtype=_UNET_DTYPES[self.dtype], adm_options=self.adm_options
        )

        n_train = int(scheduler.config.num_train_timesteps)
        bad = [t for t in timesteps if not 0 <= t < n_train]
        if bad:
            raise ValueError(f"timesteps {bad} outside the schedule [0, {n_train})")
        n_classes = unet.config.num_class_embeds
        if n_classes is not None and not (_is_int(self.class_label) and 0 <= self.class_label < n_classes):
            raise ValueError(f"the model is class-conditional ({n_classes} classes): pass class_label=an int in "
                             f"[0, {n_classes}), got {self.class_label!r}")
        if n_classes is None and self.class_label is not None:
            raise ValueError(f"class_label={self.class_label!r} given but the model is not class-conditional; "
                             "leave it None")
        if isinstance(self.blocks, str):
            if self.blocks != "paper":
                raise ValueError(f"blocks must be 'paper', None or a sequence of up_blocks indices, got {self.blocks!r}")
            taps = paper_blocks(unet)
            blocks = tuple(o for o, _, _ in taps)
            modules = tuple(name for _, name, _ in taps)
            channels = tuple(c for _, _, c in taps)
        else:
            n_up = len(unet.up_blocks)
            blocks = tuple(range(n_up)) if self.blocks is None else self._int_tuple(self.blocks, "blocks")
            bad = [b for b in blocks if not 0 <= b < n_up]
            if bad:
                raise ValueError(f"blocks {bad} are not indices of unet.up_blocks (valid: 0..{n_up - 1})")
            modules = tuple(f"up_blocks.{b}" for b in blocks)
            channels = tuple(self._stage_channels(unet, b) for b in blocks)

        size = unet.config.sample_size if self.input_size is None else self.input_size
        if size is None:
            raise ValueError("the UNet config has no sample_size: pass input_size")
        size = (int(size), int(size)) if _is_int(size) else (int(size[0]), int(size[1]))
        stride = 2 ** (len(unet.config.block_out_channels) - 1)
        if self.input_size is not None and (size[0] % stride or size[1] % stride):
            raise ValueError(f"input_size must be a multiple of {stride} (the UNet's total downsampling), "
                             f"got {self.input_size!r}")
        if self.pad % stride or self.pad >= min(size):
            raise ValueError(f"pad must be a multiple of {stride} (the UNet's total downsampling) below the input "
                             f"size {min(size)}, got {self.pad}")
        out = self.output_size
        out = None if out is None else ((int(out), int(out)) if _is_int(out) else (int(out[0]), int(out[1])))

        self.unet_, self.scheduler_ = unet, scheduler
        self.device_, self.dtype_ = device, _UNET_DTYPES[self.dtype]
        self.input_size_, self.output_size_ = size, out
        self.timesteps_, self.blocks_ = timesteps, blocks
        batch = self.batch_size  # validated by _check_params: "auto" or a positive integer
        if isinstance(batch, str):
            batch = max(1, _CPU_SAMPLES_PER_FORWARD // len(timesteps)) if device.type == "cpu" else 8
        self.batch_size_ = int(batch)
        if device.type == "cpu":  # beyond memory, a forward is killed by the kernel without a message
            self._check_forward_fits(unet, size)
        self.block_modules_, self.block_channels_ = modules, channels
        self.n_features_out_ = self.feature_dim_ = len(timesteps) * sum(self.block_channels_)
        gen = torch.Generator(device="cpu").manual_seed(int(self.noise_seed))
        self.noise_ = torch.randn((3, *size), generator=gen)
        return self

    def _check_forward_fits(self, unet, size: tuple[int, int]) -> None:
        """Raise when one forward (``batch_size_`` images x the timesteps, ``size`` padded) would not fit in memory."""
        samples = self.batch_size_ * len(self.timesteps_)
        widest = 4 * sum(unet.config.block_out_channels[:2])  # bytes per pixel of the last decoder stage's input
        pixels = (size[0] + 2 * self.pad) * (size[1] + 2 * self.pad)
        needed = _FORWARD_MAPS * widest * pixels * samples
        available = available_memory_bytes()
        if needed > available:
            raise ValueError(f"input_size {size[0]} x {size[1]}: a forward of {samples} samples ({self.batch_size_} "
                             f"images x {len(self.timesteps_)} timesteps) needs about {needed / 1e9:.1f} GB, and "
                             f"{available / 1e9:.1f} GB of memory is available; choose a smaller input_size "
                             "(--input-size)")

    @staticmethod
    def _stage_channels(unet, b: int) -> int:
        resnets = getattr(unet.up_blocks[b], "resnets", None)
        if resnets:  # the stage output is its last resnet's (upsampling keeps channels)
            return int(resnets[-1].out_channels)
        return int(list(reversed(unet.config.block_out_channels))[b])  # UNet2DModel layout

    # ------------------------------------------------------------------ engine

    def _grids(self, imgs: list[np.ndarray]) -> list[tuple[int, int]]:
        if self.output_size_ is not None:
            return [self.output_size_] * len(imgs)
        return [(int(im.shape[0]), int(im.shape[1])) for im in imgs]

    def _block_maps(self, x: torch.Tensor, t: torch.Tensor) -> list[torch.Tensor]:
        """Forward ``x`` (B, 3, S, S) at timesteps ``t`` (B,); returns each chosen stage's output, float32."""
        captured: dict[str, torch.Tensor] = {}
        names = self.block_modules_

        def hook(name):
            def capture(module, args, output):
                captured[name] = output[0] if isinstance(output, tuple) else output
                if len(captured) == len(names):  # later layers are not needed
                    raise _StopForward

            return capture

        handles = [self.unet_.get_submodule(n).register_forward_hook(hook(n)) for n in names]
        labels = None
        if self.class_label is not None:
            labels = torch.full((len(x),), int(self.class_label), dtype=torch.int64, device=x.device)
        try:
            with torch.inference_mode():
                self.unet_(x, t, class_labels=labels)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        return [captured[n].float() for n in names]

    def _run(self, imgs, jobs: list[_Job], noises: torch.Tensor, out: np.ndarray, desc: str) -> None:
        """Fill ``out[k, job.row : job.row + job.n_rows]`` for every job and noise draw ``k``."""
        if self.executor is not None:
            self.executor.featurize(self, imgs, jobs, noises, out, desc)
            return
        jobs = [j for j in jobs if j.n_rows > 0]
        device, dtype = self.device_, self.dtype_
        n_t = len(self.timesteps_)
        t_all = torch.tensor(self.timesteps_, dtype=torch.int64, device=device)
        d_sum = sum(self.block_channels_)
        batches = [jobs[i : i + self.batch_size_] for i in range(0, len(jobs), self.batch_size_)]
        bar = tqdm(total=len(batches), desc=desc, unit="batch", disable=not self.progress, leave=False)
        try:
            for batch in batches:
                x0 = torch.stack([self._resize(_to_model_range(imgs[j.image]).to(device)) for j in batch])
                b = len(batch)
                x0 = x0.repeat(n_t, 1, 1, 1)  # sample j * b + i: image i at timestep j
                t = t_all.repeat_interleave(b)
                for k in range(len(noises)):
                    noise = noises[k].to(device).expand_as(x0)
                    xt = self.scheduler_.add_noise(x0, noise, t).to(dtype)
                    maps = self._block_maps(self._padded(xt), t)
                    if self.pad:
                        maps = [self._cropped(m) for m in maps]
                    for i, job in enumerate(batch):
                        per_image = [m.view(n_t, b, *m.shape[1:])[:, i] for m in maps]  # (T, C, h, w)
                        self._write(per_image, job, out[k], d_sum)
                bar.update(1)
        finally:
            bar.close()

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, 3, S_h, S_w) reflected by ``pad`` pixels on every side (unchanged when ``pad`` is 0)."""
        if not self.pad:
            return x
        p = int(self.pad)
        return F.pad(x.float(), (p, p, p, p), mode="reflect").to(x.dtype)  # reflect wants a float32 input on CPU

    def _cropped(self, m: torch.Tensor) -> torch.Tensor:
        """A decoder map of the padded input (B, C, h, w) cut back to the image's own extent."""
        h_in = self.input_size_[0] + 2 * int(self.pad)
        w_in = self.input_size_[1] + 2 * int(self.pad)
        cy, cx = int(self.pad) * m.shape[-2] // h_in, int(self.pad) * m.shape[-1] // w_in
        return m[..., cy : m.shape[-2] - cy, cx : m.shape[-1] - cx]

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == self.input_size_:
            return x
        return F.interpolate(x[None], size=self.input_size_, mode="bilinear", align_corners=False, antialias=False)[0]

    def _write(self, maps: list[torch.Tensor], job: _Job, out: np.ndarray, d_sum: int) -> None:
        """Sample, normalise, cast and store one image's rows in chunks of bounded size."""
        n_t = len(self.timesteps_)
        d = n_t * d_sum
        out_h, out_w = job.grid
        dest = torch.from_numpy(out[job.row : job.row + job.n_rows])
        if job.pixels is None:
            rows_per_chunk = max(1, _CHUNK_ELEMENTS // (out_w * d))
            for ya in range(0, out_h, rows_per_chunk):
                yb = min(out_h, ya + rows_per_chunk)
                buf = torch.empty(((yb - ya) * out_w, n_t, d_sum), device=maps[0].device)
                _sample_rows(maps, ya, yb, job.grid, buf)
                dest[ya * out_w : yb * out_w] = _normalise_rows(buf.view(-1, d)).to("cpu", dest.dtype)
        else:
            pix = job.pixels.to(maps[0].device)
            step = max(1, _CHUNK_ELEMENTS // d)
            for a in range(0, len(pix), step):
                p = pix[a : a + step]
                buf = torch.empty((len(p), n_t, d_sum), device=maps[0].device)
                _sample_pixels(maps, p // out_w, p % out_w, job.grid, buf)
                dest[a : a + len(p)] = _normalise_rows(buf.view(-1, d)).to("cpu", dest.dtype)

    def _jobs(self, imgs, pixels) -> tuple[list[_Job], int]:
        grids = self._grids(imgs)
        if pixels is not None:
            pixels = check_pixels(pixels, grids)
        jobs, row = [], 0
        for i, grid in enumerate(grids):
            pix = None if pixels is None else torch.from_numpy(pixels[i])
            jobs.append(_Job(i, row, pix, grid))
            row += jobs[-1].n_rows
        return jobs, row

    # ------------------------------------------------------------------ public API

    def transform(self, images, pixels=None) -> np.ndarray:
        """Per-pixel features of ``images`` (or of selected pixels only).

        Parameters
        ----------
        images : ndarray of shape (n_images, H, W, 3) or (n_images, H, W, 1), or list of arrays
            RGB, channels last, or grayscale: list entries may be (H_i, W_i, 3),
            (H_i, W_i, 1) or (H_i, W_i) and may differ in size. Values: uint8
            (0-255), uint16 (16-bit, scaled to 0-255), other integers in
            [0, 255], or float in [0, 1]; grayscale is replicated to three
            channels. The conversion is :func:`skal_seg.image_io.as_rgb`, the one
            :func:`skal_seg.image_io.read_image` applies to image files, so an
            array gives the features of the file it came from.
        pixels : sequence of 1-D int arrays or None, default=None
            One array per image of flat indices ``y * W + x`` into that
            image's output grid (any order, repeats allowed). None = all pixels.

        Returns
        -------
        ndarray of shape (n_rows, D), ``output_dtype``
            ``n_rows = sum_i H_i * W_i`` (image-major, row-major over pixels),
            or ``sum_i len(pixels[i])`` in the given order. Every row has unit
            L2 norm (up to ``output_dtype`` rounding). Rows of a pixel subset
            equal the matching rows of the full transform; only the requested
            pixels are computed and stored.

        Raises
        ------
        ValueError
            Bad images (ndim, channel count, NaN/inf, out-of-range values,
            empty) or bad ``pixels`` (wrong count, not 1-D integer, out of range).
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        """
        check_is_fitted(self, "unet_")
        imgs = _check_images(images)
        jobs, n_rows = self._jobs(imgs, pixels)
        out = np.empty((1, n_rows, self.n_features_out_), dtype=self.output_dtype)
        self._run(imgs, jobs, self.noise_[None], out, "diffusion features")
        return out[0]

    def noisy_views(self, images, n_draws: int = 5, pixels=None, random_state=None) -> np.ndarray:
        """The features recomputed under ``n_draws`` fresh noise draws (stochastic views for eDALD).

        Parameters
        ----------
        images, pixels
            As in :meth:`transform`.
        n_draws : int, default=5
            Number K of noise draws. Draw k replaces the fixed noise by one
            new (3, S, S) tensor shared by all images.
        random_state : None, int or numpy Generator, default=None
            Source of the draws; they do not depend on ``images`` or ``pixels``.

        Returns
        -------
        ndarray of shape (n_draws, n_rows, D), ``output_dtype``
            ``[k]`` is laid out like ``transform(images, pixels)``.

        Raises
        ------
        ValueError
            As in :meth:`transform`, or ``n_draws`` not a positive integer.
        """
        check_is_fitted(self, "unet_")
        noises = self._noises(n_draws, random_state)
        imgs = _check_images(images)
        jobs, n_rows = self._jobs(imgs, pixels)
        out = np.empty((len(noises), n_rows, self.n_features_out_), dtype=self.output_dtype)
        self._run(imgs, jobs, noises, out, "noisy views")
        return out

    def _noises(self, n_draws, random_state) -> torch.Tensor:
        if not _is_int(n_draws) or n_draws < 1:
            raise ValueError(f"n_draws must be a positive integer, got {n_draws!r}")
        return _draw_noise(random_state, int(n_draws), (3, *self.input_size_))

    def noisy_view_fn(self, images, pixels=None, n_draws: int = 5, random_state=None) -> "NoisyViewFunction":
        """A callable ``indices -> (n_draws, len(indices), D)`` over the rows of ``transform(images, pixels)``.

        Hand it to a sampler as its ``X_noisy``: a call computes only the
        images holding requested rows, and only the requested pixels. The
        ``n_draws`` noise tensors are drawn once, here, so a row gets the same
        value in every call whatever else is requested with it, up to float
        rounding: the images requested together share UNet forwards, and
        another batch composition (or thread count) can change a value by
        float32 rounding, well within 1e-5 (rows are unit vectors; a few 1e-7
        were seen), before the cast to ``output_dtype``, which may then round
        the two values to neighbouring float16 numbers. Calls with the same
        rows and the same batch composition are bit-identical.

        Parameters
        ----------
        images, pixels
            As in :meth:`transform` (validated here; the pool rows are
            ``transform(images, pixels=pixels)``'s rows).
        n_draws : int, default=5
        random_state : None, int or numpy Generator, default=None

        Returns
        -------
        NoisyViewFunction
        """
        check_is_fitted(self, "unet_")
        noises = self._noises(n_draws, random_state)
        imgs = _check_images(images)
        grids = self._grids(imgs)
        if pixels is None:
            pixels = [np.arange(h * w, dtype=np.int64) for h, w in grids]
        else:
            pixels = check_pixels(pixels, grids)
        return NoisyViewFunction(self, imgs, pixels, noises)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names ``"t{timestep}_up{block}_c{channel:03d}"`` of the D columns, in column order.

        With ``blocks="paper"`` the block part names the ADM output block: ``"t50_out5_c000"``.

        Parameters
        ----------
        input_features : ignored
            Present for scikit-learn API compatibility; neither used nor validated.

        Returns
        -------
        ndarray of shape (n_features_out_,), object
            One str per feature column.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The featurizer is not fitted.
        """
        check_is_fitted(self, "unet_")
        # From the fitted taps, not the ``blocks`` parameter, which set_params may have changed since fit.
        kind = "up" if self.block_modules_ == tuple(f"up_blocks.{b}" for b in self.blocks_) else "out"
        names = [
            f"t{t}_{kind}{b}_c{c:03d}"
            for t in self.timesteps_
            for b, n_c in zip(self.blocks_, self.block_channels_)
            for c in range(n_c)
        ]
        return np.asarray(names, dtype=object)


class NoisyViewFunction:
    """Noisy features of pool rows, computed on demand (see :meth:`DiffusionFeaturizer.noisy_view_fn`).

    Attributes
    ----------
    n_rows : int
        Number of pool rows (``sum(len(p) for p in pixels)``).
    n_draws : int
    noises : torch.Tensor of shape (n_draws, 3, S_h, S_w)
        The fixed noise draws.
    """

    def __init__(self, featurizer: DiffusionFeaturizer, images: list[np.ndarray], pixels: list[np.ndarray], noises):
        self.featurizer = featurizer
        self.images = images
        self.pixels = pixels
        self.noises = noises
        self.n_draws = len(noises)
        self._offsets = np.concatenate([[0], np.cumsum([len(p) for p in pixels])]).astype(np.int64)
        self.n_rows = int(self._offsets[-1])

    def __call__(self, indices) -> np.ndarray:
        """Features of pool rows ``indices`` under each draw.

        Parameters
        ----------
        indices : 1-D int array-like
            Rows of ``transform(images, pixels)``, in ``[0, n_rows)``; repeats allowed.

        Returns
        -------
        ndarray of shape (n_draws, len(indices), D), the featurizer's ``output_dtype``

        Raises
        ------
        ValueError
            Non-integer, not 1-D, or out-of-range indices.
        """
        idx = check_row_indices(indices, self.n_rows)
        feat = self.featurizer
        uniq, inverse = np.unique(idx, return_inverse=True)  # sorted: grouped by image
        image_of = np.searchsorted(self._offsets, uniq, side="right") - 1
        images, jobs, row = [], [], 0
        grids = feat._grids(self.images)
        for img in np.unique(image_of):
            rows = uniq[image_of == img] - self._offsets[img]
            pix = torch.from_numpy(self.pixels[img][rows])
            jobs.append(_Job(len(images), row, pix, grids[img]))
            images.append(self.images[img])
            row += len(pix)
        out = np.empty((self.n_draws, len(uniq), feat.n_features_out_), dtype=feat.output_dtype)
        feat._run(images, jobs, self.noises, out, "noisy views")
        return out[:, inverse.reshape(-1)]
