"""The seed study's 3D DCGAN and GAN-inverting latent encoder, reproduced exactly.

These are the baselines brainlab's own GAN and encoder are compared with (``dcgan-seed``
model type, ``python -m brainlab bench models``). Architecture, as published:

- generator: z ~ U(0, 1)^100 -> Linear(100 -> 256·4³) + BatchNorm + ReLU, then
  ConvTranspose3d(k4, s2, p1) 256 -> 128 -> 64 -> 32 -> 1 with BatchNorm + ReLU between,
  Sigmoid -> 64³;
- discriminator: Conv3d(k4, s2, p1) 1 -> 32 -> 64 -> 128 -> 256 with BatchNorm +
  LeakyReLU(0.2), Linear(256·4³ -> 1), Sigmoid;
- Adam(lr 5e-5, betas (0.5, 0.999)) for both; the discriminator step is skipped while its
  accuracy on the current batch is above a threshold;
- data: each volume zero-padded (centred) to a 70³ cube and resized to 64³.
- latent encoder: 1×1×1 conv to 16 channels, three residual blocks (32, 64, 128 channels)
  each followed by 2× max-pooling, a fully connected layer to 100; trained with MSE on
  (z, G(z)) pairs.

The widths and cube sizes are config fields only so that tests can run tiny versions;
their defaults are the seed's. Everything runs in fp32, as the seed did.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brainlab.config import SeedGanConfig
from brainlab.errors import BrainlabInputError
from brainlab.models.base import BrainlabModel
from brainlab.models.blocks import Conv3d

SEED_LATENT_DIM = 100
SEED_IMAGE_SIZE = 64
SEED_PAD_SIZE = 70


# ---- pre/post-processing: pad to a cube, resize, and back ------------------------


def seed_cube_side(grid_shape, pad_size: int) -> int:
    """The cube side volumes are padded to: ``pad_size`` or the largest grid side."""
    return max(int(pad_size), *(int(s) for s in grid_shape))


def to_seed_cube(volumes: torch.Tensor, pad_size: int = SEED_PAD_SIZE,
                 image_size: int = SEED_IMAGE_SIZE) -> torch.Tensor:
    """(B, 1, D, H, W) -> (B, 1, S, S, S): centred zero-pad to a cube, trilinear resize to S."""
    if volumes.ndim != 5 or volumes.shape[1] != 1:
        raise BrainlabInputError(
            f"expected volumes of shape (B, 1, D, H, W); found {tuple(volumes.shape)}")
    side = seed_cube_side(volumes.shape[2:], pad_size)
    pads = []
    for size in reversed(volumes.shape[2:]):  # F.pad wants the last axis first
        before = (side - size) // 2
        pads += [before, side - size - before]
    cube = F.pad(volumes, pads)
    if side == image_size:
        return cube
    return F.interpolate(cube, size=(image_size,) * 3, mode="trilinear", align_corners=False)


def from_seed_cube(cubes: torch.Tensor, grid_shape, pad_size: int = SEED_PAD_SIZE) -> torch.Tensor:
    """Inverse of :func:`to_seed_cube`: (B, 1, S, S, S) -> (B, 1, D, H, W) on ``grid_shape``."""
    side = seed_cube_side(grid_shape, pad_size)
    if cubes.shape[-1] != side:
        cubes = F.interpolate(cubes, size=(side,) * 3, mode="trilinear", align_corners=False)
    slices = [slice(None), slice(None)]
    for size in grid_shape:
        before = (side - int(size)) // 2
        slices.append(slice(before, before + int(size)))
    return cubes[tuple(slices)]


# ---- networks ---------------------------------------------------------------------


def _levels(image_size: int, n_levels: int) -> int:
    base = image_size // 2 ** n_levels
    if base < 1 or base * 2 ** n_levels != image_size:
        raise BrainlabInputError(
            f"seed image_size must be a multiple of {2 ** n_levels}; found {image_size}")
    return base


class SeedGenerator(nn.Module):
    """The seed DCGAN generator: (B, latent_dim) -> (B, 1, S, S, S) in [0, 1], S = 64 by default."""

    def __init__(self, latent_dim: int = SEED_LATENT_DIM, widths=(256, 128, 64, 32),
                 image_size: int = SEED_IMAGE_SIZE):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        self.base = _levels(image_size, len(widths))
        self.widths = widths
        self.project = nn.Sequential(
            nn.Linear(latent_dim, widths[0] * self.base ** 3),
            nn.BatchNorm1d(widths[0] * self.base ** 3),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        channels = list(widths) + [1]
        for level, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            layers.append(nn.ConvTranspose3d(c_in, c_out, kernel_size=4, stride=2, padding=1))
            if level < len(widths) - 1:
                layers += [nn.BatchNorm3d(c_out), nn.ReLU(inplace=True)]
        layers.append(nn.Sigmoid())
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(-1, self.widths[0], self.base, self.base, self.base)
        return self.upsample(x)


class SeedDiscriminator(nn.Module):
    """The seed DCGAN discriminator: (B, 1, S, S, S) -> (B, 1) probability of "real"."""

    def __init__(self, widths=(32, 64, 128, 256), image_size: int = SEED_IMAGE_SIZE):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        base = _levels(image_size, len(widths))
        layers: list[nn.Module] = []
        channels = [1] + list(widths)
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [Conv3d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                       nn.BatchNorm3d(c_out), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * base ** 3, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SeedResidualBlock(nn.Module):
    """Two 3×3×3 conv + BN layers with a 1×1×1 projection shortcut, ReLU, then 2× max-pool.

    (B, c_in, D, H, W) -> (B, c_out, D/2, H/2, W/2)
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(
            Conv3d(c_in, c_out, 3, padding=1), nn.BatchNorm3d(c_out), nn.ReLU(inplace=True),
            Conv3d(c_out, c_out, 3, padding=1), nn.BatchNorm3d(c_out),
        )
        self.shortcut = Conv3d(c_in, c_out, 1)
        self.pool = nn.MaxPool3d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.body(x) + self.shortcut(x)))


class SeedLatentEncoder(nn.Module):
    """The seed latent encoder: (B, 1, S, S, S) -> (B, latent_dim), S = 64 by default."""

    def __init__(self, latent_dim: int = SEED_LATENT_DIM, stem_channels: int = 16,
                 widths=(32, 64, 128), image_size: int = SEED_IMAGE_SIZE):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        side = _levels(image_size, len(widths))
        self.stem = Conv3d(1, stem_channels, kernel_size=1)
        channels = [stem_channels] + list(widths)
        self.blocks = nn.Sequential(*[SeedResidualBlock(a, b)
                                      for a, b in zip(channels[:-1], channels[1:])])
        self.head = nn.Linear(widths[-1] * side ** 3, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).flatten(1))


def seed_sample_latent(n: int, seed_or_generator=0, latent_dim: int = SEED_LATENT_DIM) -> torch.Tensor:
    """z ~ U(0, 1)^latent_dim as the seed sampled it: (n, latent_dim) float32."""
    generator = _torch_generator(seed_or_generator)
    return torch.rand(int(n), latent_dim, generator=generator)


def _torch_generator(seed_or_generator) -> torch.Generator:
    if isinstance(seed_or_generator, torch.Generator):
        return seed_or_generator
    if isinstance(seed_or_generator, np.random.Generator):
        seed_or_generator = int(seed_or_generator.integers(0, 2 ** 31 - 1))
    generator = torch.Generator()
    generator.manual_seed(int(seed_or_generator))
    return generator


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def seed_discriminator_accuracy(real_prob: torch.Tensor, fake_prob: torch.Tensor) -> float:
    """Fraction of real (p > 0.5) and fake (p <= 0.5) volumes the discriminator gets right."""
    correct = (real_prob > 0.5).float().sum() + (fake_prob <= 0.5).float().sum()
    return float(correct) / float(real_prob.numel() + fake_prob.numel())


__all__ = [
    "SEED_LATENT_DIM", "SEED_IMAGE_SIZE", "SEED_PAD_SIZE", "SeedGenerator",
    "SeedDiscriminator", "SeedLatentEncoder", "SeedResidualBlock", "to_seed_cube",
    "from_seed_cube", "seed_sample_latent", "seed_discriminator_accuracy", "count_parameters",
]


# ---- the seed DCGAN as a trainable brainlab model ---------------------------------

class SeedDcgan(BrainlabModel):
    """The seed study's DCGAN (``dcgan-seed``): (B, 100) z ~ U(0, 1) -> (B, 1, D, H, W) in [0, 1].

    Trains at the seed's 64³ (volumes padded to 70³ and resized), in fp32, with the
    seed's BCE losses and skipped discriminator steps; :meth:`generate` maps the 64³
    output back onto the cohort grid (resize to the padded cube, centre crop).
    """

    model_type = "dcgan-seed"

    def __init__(self, config: SeedGanConfig, grid_shape):
        super().__init__(config)
        if len(grid_shape) != 3:
            raise BrainlabInputError(
                f"grid_shape must be the cohort grid (D, H, W); found {grid_shape}")
        self._grid_shape = tuple(int(s) for s in grid_shape)
        self.generator = SeedGenerator(config.latent_dim, config.generator_widths,
                                       config.image_size)
        self.discriminator = SeedDiscriminator(config.discriminator_widths, config.image_size)

    @classmethod
    def from_cohort(cls, cohort, config: SeedGanConfig | None = None) -> "SeedDcgan":
        if cohort.grid_shape is None:
            raise BrainlabInputError(f"cohort {cohort.name!r} has no images for a GAN")
        return cls(config or SeedGanConfig(), cohort.grid_shape)

    def extra_state(self) -> dict:
        return {"grid_shape": list(self._grid_shape)}

    @property
    def latent_dim(self) -> int:
        return int(self.config.latent_dim)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return self._grid_shape

    def sample_latent(self, n: int, seed_or_generator=0) -> torch.Tensor:
        """z ~ U(0, 1), as the seed sampled it: (n, latent_dim)."""
        return seed_sample_latent(n, seed_or_generator, self.latent_dim)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, 1, D, H, W) float32 in [0, 1] on the cohort grid."""
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise BrainlabInputError(
                f"latent must have shape (B, {self.latent_dim}); found {tuple(z.shape)}")
        with self.autocast():
            cubes = self.generator(z.to(self.device)).float()
        return from_seed_cube(cubes, self.grid_shape, self.config.pad_size).clamp(0, 1)
