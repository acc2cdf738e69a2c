"""The MRI autoencoder: a linear (PCA-initialised) path plus a 3D conv residual.

Measured on the hcp-ya phantom (held-out subjects): the training mean brain alone
scores SSIM 0.89; linear PCA with 128 components on 2x block-averaged volumes,
upsampled onto the mean, scores 0.95; a conv autoencoder trained from scratch for
5 CPU-minutes reached only 0.71-0.89. So the autoencoder is built to start where
PCA ends and spend its CPU minutes on what PCA misses:

- code: ``z = [B (pool(x) - pool(mean)), conv_encoder(x)]``: the first
  ``linear_dim`` entries are PCA coefficients (the rows of ``B`` are the principal
  axes of the training volumes at half resolution, fitted by ``brainlab.training.steps`` and
  kept fixed), the rest come from the conv encoder. Keeping them apart matters:
  when the conv encoder's output was added onto the PCA coefficients, Adam's first
  steps moved them far enough to undo PCA (held-out loss x7 within 10 steps);
- reconstruction: ``x_hat = p + s * conv_decoder(z, p)`` with the PCA image
  ``p = mean + upsample(B^T z_pca)``, the conv decoder's head starting at zero and
  ``s = residual_scale``. The basis is tied between encoder and decoder, which keeps
  the checkpoint small.

v2 (issue 11, "a sharp decoder"): the shipped v1 scored held-out in-brain SSIM 0.893,
below its own PCA half and below full-resolution PCA of the same code size (0.935):
its conv decoder had to redraw, from 128 numbers, the detail that the half-resolution
PCA image loses. The v2 decoder is *guided*: it also receives ``p`` (folded 2x2x2 into
8 channels at half resolution) next to its last up block, so its job is to sharpen a
picture it can see. Training (``brainlab.training.autoencoder_steps``) weights the loss
to the brain (the background is 78% of the box), uses L1 + local SSIM, adds a texture
loss (``brainlab.models.perceptual``) and, after a warm-up, a patch discriminator
(``brainlab.models.patch_discriminator``) with latent diffusion's adaptive weight.

Masked full-resolution PCA (``pca_resolution="masked-full"``, the default): the
half-resolution PCA image above cost 0.05 SSIM before training started (held-out
in-brain SSIM 0.902 vs 0.949 for full-resolution PCA of the same code size), and a
full-resolution basis over the whole 58x70x58 box would be ~60 MB in float16. So the
basis spans only the voxels of ``mask`` (the training mean brain above
``BRAIN_THRESHOLD``: the mask the metrics score; 58k of 235k voxels on hcp-ya v2),
stored as a bool buffer:
``z_pca = (x[mask] - mean[mask]) B^T`` and ``p = mean`` with ``mean[mask] + z_pca B``
scattered into the mask. ``pca_resolution="half"`` is the PCA described above (cards
from before the field rebuild it).

Conv encoder: a space-to-depth stem (2x2x2 cubes -> 8 channels, then a conv at half
resolution), then ``levels - 1`` down blocks (strided conv, GroupNorm, SiLU)
doubling the width up to ``max_channels``, then a linear layer to ``latent_dim``.
Conv decoder: the mirror image, upsampling by nearest-neighbour resize then
convolution (no checkerboards) and a conv predicting each 2x2x2 cube
(depth-to-space). No convolution runs at full resolution: on a 2-core CPU without
bf16 that is where most of the time went. Any grid works: volumes are padded
centrally to a multiple of ``2**levels`` (58x70x58 -> 64x80x64) for the conv path
and cropped back.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from brainlab.config import MriAutoencoderConfig
from brainlab.models.base import BrainlabModel
from brainlab.models.blocks import (Conv3d, ConvNormAct, DepthToSpace, DownBlock, SpaceToDepth, UpBlock,
                                    check_volume_batch, crop_to, group_count, level_channels,
                                    pad_to_shape, padded_shape)
from brainlab.errors import BrainlabInputError


# Mean-brain intensity above which a voxel counts as brain in the training loss; the
# same value as brainlab.analysis.metrics.BRAIN_MASK_THRESHOLD (models sit below analysis).
BRAIN_THRESHOLD = 0.05
# Where the PCA basis lives: 'masked-full' (full resolution inside the brain mask) or
# 'half' (2x block averages over the whole box, upsampled; cards from before it).
PCA_RESOLUTIONS = ("masked-full", "half")


def pca_mask(mean: torch.Tensor, dilation: int = 0) -> torch.Tensor:
    """(D, H, W) or (1, 1, D, H, W) mean brain -> (D, H, W) bool: voxels above
    ``BRAIN_THRESHOLD``, dilated by ``dilation`` voxels (a 3x3x3 max per step).

    No dilation by default: on hcp-ya v2 one voxel took the mask from 58k to 71k voxels
    and the float16 checkpoint from ~14 to 17.6 MB, for voxels the metrics do not score."""
    mean = torch.as_tensor(mean, dtype=torch.float32)
    brain = (mean.reshape(1, 1, *mean.shape[-3:]) > BRAIN_THRESHOLD).float()
    for _ in range(int(dilation)):
        brain = F.max_pool3d(brain, 3, stride=1, padding=1)
    return brain[0, 0] > 0


def local_ssim_loss(x: torch.Tensor, y: torch.Tensor, window: int = 5,
                    weight: torch.Tensor | None = None) -> torch.Tensor:
    """1 - mean local SSIM with a ``window``-voxel box window (differentiable, fp32),
    averaged with voxel ``weight`` (broadcast to x) when given.

    A cheap training-time surrogate; reported metrics use the Gaussian-window SSIM
    of ``brainlab.analysis.metrics``.
    """
    x, y = x.float(), y.float()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    pool = lambda t: F.avg_pool3d(t, window, stride=1, padding=window // 2,  # noqa: E731
                                  count_include_pad=False)
    mu_x, mu_y = pool(x), pool(y)
    var_x = pool(x * x) - mu_x ** 2
    var_y = pool(y * y) - mu_y ** 2
    cov = pool(x * y) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    if weight is None:
        return 1.0 - ssim.mean()
    weight = weight.float().expand_as(ssim)
    return 1.0 - (ssim * weight).sum() / weight.sum()


class MriEncoder(nn.Module):
    """(B, 1, *padded_shape) -> (B, latent_dim).

    Space-to-depth stem (no full-resolution conv), then ``len(channels) - 1`` down blocks.
    """

    def __init__(self, channels: list[int], bottom_shape: tuple[int, int, int], latent_dim: int):
        super().__init__()
        self.stem = nn.Sequential(SpaceToDepth(), ConvNormAct(8, channels[0]))
        self.down = nn.Sequential(*[DownBlock(channels[i], channels[i + 1])
                                    for i in range(len(channels) - 1)])
        self.to_latent = nn.Linear(channels[-1] * math.prod(bottom_shape), latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(torch.flatten(self.down(self.stem(x)), 1))


class MriDecoder(nn.Module):
    """(B, latent_dim) [, guide (B, 1, *padded_shape)] -> (B, 1, *padded_shape) residual
    intensities (unbounded).

    Resize-then-conv up blocks; the last conv predicts each 2x2x2 cube's 8 voxels at
    half resolution (depth-to-space), so no conv runs at full resolution. With
    ``guided``, the guide (the PCA image) is folded into 8 half-resolution channels
    (space-to-depth, lossless) and joined to the up blocks' output by a 1x1x1 conv.
    The head starts at zero, so the residual starts at zero.
    """

    def __init__(self, channels: list[int], bottom_shape: tuple[int, int, int], latent_dim: int,
                 guided: bool = False):
        super().__init__()
        self.bottom_shape = tuple(bottom_shape)
        self.bottom_channels = channels[-1]
        self.guided = bool(guided)
        self.from_latent = nn.Linear(latent_dim, channels[-1] * math.prod(bottom_shape))
        self.up = nn.Sequential(*[UpBlock(channels[i + 1], channels[i])
                                  for i in reversed(range(len(channels) - 1))])
        if self.guided:
            self.fold = SpaceToDepth()
            # A 1x1x1 join: a 3x3x3 one cost +40% decode time; the head's 3x3x3 conv
            # already gives the guide spatial context.
            self.join = nn.Sequential(Conv3d(channels[0] + 8, channels[0], 1, bias=False),
                                      nn.GroupNorm(group_count(channels[0]), channels[0]),
                                      nn.SiLU())
        self.head = nn.Sequential(Conv3d(channels[0], 8, 3, padding=1), DepthToSpace())
        nn.init.zeros_(self.head[0].weight)
        nn.init.zeros_(self.head[0].bias)

    def forward(self, z: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        x = self.from_latent(z).view(-1, self.bottom_channels, *self.bottom_shape)
        x = self.up(F.silu(x))
        if self.guided:
            if guide is None:
                raise BrainlabInputError("MriDecoder: a guided decoder needs the guide image; found None")
            folded = self.fold(guide).to(x.dtype)
            x = self.join(torch.cat([x, folded.contiguous(memory_format=x_format(x))], dim=1))
        return self.head(x).float()


def x_format(x: torch.Tensor) -> torch.memory_format:
    """The memory format ``x`` is in (channels_last_3d or contiguous), so a concat keeps it."""
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous():
        return torch.channels_last_3d
    return torch.contiguous_format


class MriAutoencoder(BrainlabModel):
    """(B, 1, D, H, W) float in [0, 1] -> (B, 1, D, H, W) reconstruction in [0, 1].

    ``encode``: (B, 1, D, H, W) -> (B, latent_dim); ``decode``: (B, latent_dim) ->
    (B, 1, D, H, W); both return fp32. Loss (``loss``): brain-weighted L1 (or MSE) plus
    ``ssim_weight`` x (1 - local SSIM); the texture and adversarial terms are added by
    ``brainlab.training.autoencoder_steps``.
    Buffers ``mean`` (1, 1, D, H, W), ``mask`` (D, H, W) bool and ``basis``
    (linear_dim, mask voxels) -- or, with ``pca_resolution="half"``, ``half_mean`` and
    ``basis`` (linear_dim, d*h*w at half resolution) -- are set by ``set_statistics``
    from the training subjects. ``mask_voxels`` sizes the basis when a checkpoint is
    rebuilt (its card's ``extra_state``).
    """

    model_type = "mri-ae"
    batch_fields = ("image",)

    def __init__(self, config: MriAutoencoderConfig, grid_shape, mask_voxels: int = 0):
        super().__init__(config)
        grid_shape = tuple(int(s) for s in grid_shape)
        if len(grid_shape) != 3 or min(grid_shape) < 1:
            raise BrainlabInputError(f"grid_shape must be 3 positive ints; found {grid_shape}")
        if config.levels < 1 or config.latent_dim < 1:
            raise BrainlabInputError(
                f"MriAutoencoderConfig needs levels >= 1 and latent_dim >= 1; found "
                f"levels={config.levels}, latent_dim={config.latent_dim}")
        self.grid_shape = grid_shape
        self.latent_dim = int(config.latent_dim)
        self.padded_shape = padded_shape(grid_shape, 2 ** config.levels)
        bottom = tuple(s // 2 ** config.levels for s in self.padded_shape)
        # Level 0 is the space-to-depth stem at half resolution; each later level halves again.
        channels = level_channels(config.base_channels, config.levels - 1, config.max_channels)
        self.linear_dim = int(min(config.linear_dim, config.latent_dim - 1))
        if self.linear_dim < 1:
            raise BrainlabInputError(
                f"MriAutoencoderConfig needs latent_dim >= 2 and linear_dim >= 1; found "
                f"latent_dim={config.latent_dim}, linear_dim={config.linear_dim}")
        self.encoder = MriEncoder(channels, bottom, config.latent_dim - self.linear_dim)
        self.decoder = MriDecoder(channels, bottom, config.latent_dim,
                                  guided=bool(config.guided_decoder))
        if config.reconstruction not in ("l1", "mse"):
            raise BrainlabInputError(
                f"MriAutoencoderConfig.reconstruction must be 'l1' or 'mse'; "
                f"found {config.reconstruction!r}")
        if config.pca_resolution not in PCA_RESOLUTIONS:
            raise BrainlabInputError(
                f"MriAutoencoderConfig.pca_resolution must be one of {PCA_RESOLUTIONS}; "
                f"found {config.pca_resolution!r}")
        self.masked = config.pca_resolution == "masked-full"
        self.half_shape = tuple(math.ceil(s / 2) for s in grid_shape)
        self.register_buffer("mean", torch.zeros(1, 1, *grid_shape))
        if self.masked:
            # The basis covers only the voxels of ``mask`` (~23% of the box on hcp-ya), so a
            # full-resolution basis costs what a half-resolution one over the box did.
            mask_voxels = int(mask_voxels)
            if mask_voxels < 0 or mask_voxels > math.prod(grid_shape):
                raise BrainlabInputError(
                    f"mask_voxels must be in [0, {math.prod(grid_shape)}]; found {mask_voxels}")
            self.register_buffer("mask", torch.zeros(grid_shape, dtype=torch.bool))
            width = mask_voxels
        else:
            self.register_buffer("half_mean", torch.zeros(1, 1, *self.half_shape))
            width = math.prod(self.half_shape)
        # A buffer, not a parameter: Adam's per-element steps (~lr) dwarf the basis
        # entries (~1/sqrt(29k)) and wrecked it within 30 steps when it was trained.
        self.register_buffer("basis", torch.zeros(self.linear_dim, width))

    @classmethod
    def from_cohort(cls, cohort, config: MriAutoencoderConfig | None = None) -> "MriAutoencoder":
        if cohort.grid_shape is None:
            raise BrainlabInputError(
                f"cohort {cohort.name!r} has no images; the MRI autoencoder needs 3D volumes")
        return cls(config or MriAutoencoderConfig(), cohort.grid_shape)

    def extra_state(self) -> dict:
        extra = {"grid_shape": list(self.grid_shape)}
        if self.masked and self.basis.shape[1]:  # sizes the basis before a checkpoint loads
            extra["mask_voxels"] = int(self.basis.shape[1])
        return extra

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A fresh masked model does not know its mask size yet (resuming loads a trained
        # model's state into one): take the stored basis width.
        stored = state_dict.get(prefix + "basis")
        if self.masked and stored is not None and stored.shape[1] != self.basis.shape[1]:
            self.basis = self.basis.new_zeros(self.linear_dim, stored.shape[1])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def set_statistics(self, mean: torch.Tensor, basis: torch.Tensor,
                       mask: torch.Tensor | None = None) -> None:
        """Set the mean brain (D, H, W) and the first ``len(basis)`` principal axes; the
        remaining rows of the basis are zero.

        ``pca_resolution="masked-full"``: ``mask`` (D, H, W) bool and ``basis``
        (k, mask.sum()) over the voxels of the mask in C order; ``"half"``: ``basis``
        (k, d*h*w at half resolution) and no mask. ``brainlab.training.steps`` fits them
        on the training subjects (``pca_mask`` gives the mask).
        """
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(self.mean.shape))
        basis = torch.as_tensor(basis, dtype=torch.float32)
        if self.masked:
            if mask is None:
                raise BrainlabInputError(
                    "MriAutoencoder.set_statistics: a masked-full PCA needs the mask; found None")
            mask = torch.as_tensor(mask).to(torch.bool)
            if tuple(mask.shape) != self.grid_shape:
                raise BrainlabInputError(
                    f"MriAutoencoder.set_statistics: expected a mask of shape {self.grid_shape}; "
                    f"found {tuple(mask.shape)}")
            width = int(mask.sum())
            self.mask.copy_(mask)
            if self.basis.shape[1] != width:
                self.basis = self.basis.new_zeros(self.linear_dim, width)
        else:
            self.half_mean.copy_(self.half_resolution(self.mean))
            width = self.basis.shape[1]
        if basis.dim() != 2 or basis.shape[1] != width or len(basis) > self.linear_dim:
            raise BrainlabInputError(
                f"MriAutoencoder.set_statistics: expected a basis of shape (<= {self.linear_dim}, "
                f"{width}); found {tuple(basis.shape)}")
        self.basis.zero_()
        self.basis[:len(basis)] = basis.to(self.basis.device)

    def half_resolution(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) -> (B, 1, *half_shape) by 2x2x2 block averages."""
        return F.avg_pool3d(x.float(), 2, ceil_mode=True)

    def pca_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) -> (B, basis width): the voxels the PCA basis spans (the mask's
        voxels at full resolution, or every voxel at half resolution)."""
        if self.masked:
            return x.float().flatten(1)[:, self.mask.flatten().to(x.device)]
        return self.half_resolution(x).flatten(1)

    def pca_image(self, z_linear: torch.Tensor) -> torch.Tensor:
        """(B, linear_dim) PCA coefficients -> (B, 1, D, H, W) ``mean + basis^T z``
        (the mean outside the mask; upsampled from half resolution in 'half' mode)."""
        linear = z_linear @ self.basis
        if self.masked:
            image = self.mean.flatten(1).expand(len(z_linear), -1).clone()
            image[:, self.mask.flatten()] += linear
            return image.view(-1, 1, *self.grid_shape)
        linear = F.interpolate(linear.view(-1, 1, *self.half_shape), size=self.grid_shape,
                               mode="trilinear", align_corners=False)
        return self.mean + linear

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) in [0, 1] -> (B, latent_dim) fp32 codes."""
        check_volume_batch(x, self.grid_shape, "MriAutoencoder.encode")
        x = x.to(self.device).float()
        centre = self.pca_inputs(self.mean) if self.masked else self.half_mean.flatten(1)
        linear = (self.pca_inputs(x) - centre) @ self.basis.T
        with self.autocast():
            conv = self.encoder(pad_to_shape(self.prepare_images(x), self.padded_shape)).float()
        return torch.cat([linear, conv], dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, 1, D, H, W) fp32 volumes in [0, 1]."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise BrainlabInputError(
                f"MriAutoencoder.decode: expected codes of shape (B, {self.latent_dim}); "
                f"found {tuple(z.shape)}")
        return self.decode_unclamped(z).clamp(0.0, 1.0)

    def decode_unclamped(self, z: torch.Tensor) -> torch.Tensor:
        """Like ``decode`` without clipping to [0, 1], so training keeps its gradients."""
        z = z.to(self.device).float()
        pca_image = self.pca_image(z[:, :self.linear_dim])
        guide = None
        if self.decoder.guided:
            guide = pad_to_shape(self.prepare_images(pca_image), self.padded_shape)
        with self.autocast():
            residual = crop_to(self.decoder(z, guide), self.grid_shape).float()
        return pca_image + self.config.residual_scale * residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def voxel_weights(self) -> torch.Tensor:
        """(1, 1, D, H, W) loss weights: 1 inside the mean-brain mask, ``background_weight``
        outside (all ones before ``set_statistics``, when the mean is still zero)."""
        brain = (self.mean > BRAIN_THRESHOLD).float()
        if not bool(brain.any()):
            return torch.ones_like(self.mean)
        background = float(self.config.background_weight)
        return background + (1.0 - background) * brain

    def loss(self, x: torch.Tensor, x_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Brain-weighted L1 or MSE (+ ``ssim_weight`` x (1 - local SSIM)), in fp32;
        ``mse`` (unweighted) is always reported."""
        x = x.to(x_hat.device).float()
        weight = self.voxel_weights()
        error = x_hat - x
        terms = {"mse": F.mse_loss(x_hat, x)}
        voxel = error.abs() if self.config.reconstruction == "l1" else error * error
        terms["voxel_loss"] = (voxel * weight).sum() / (weight.sum() * len(x))
        total = terms["voxel_loss"]
        if self.config.ssim_weight > 0:
            terms["ssim_loss"] = local_ssim_loss(x_hat, x, weight=weight)
            total = total + self.config.ssim_weight * terms["ssim_loss"]
        terms["loss"] = total
        return terms

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """Loss terms on ``batch["image"]`` (reconstruction before clipping, so gradients flow)."""
        x = batch["image"]
        return self.loss(x, self.decode_unclamped(self.encode(x)))
