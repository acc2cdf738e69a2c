"""Small 3D CNNs that judge brains: a sex classifier and a brain-age model.

Both share ``VolumeCnn``: a space-to-depth stem, ``levels - 1`` down blocks and a
linear head on the flattened bottom feature map (its size computed from the padded
grid). Optional Gaussian-noise augmentation of training images follows the seed
study. They also judge synthetic and edited brains later (P(male), predicted age).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brainlab.config import BrainAgeConfig, ClassifierConfig
from brainlab.errors import BrainlabInputError
from brainlab.models.base import BrainlabModel
from brainlab.models.blocks import (ConvNormAct, DownBlock, SpaceToDepth, check_volume_batch,
                                    level_channels, pad_to_shape, padded_shape)

AGE_TARGETS = ("auto", "years", "bin")


class VolumeCnn(nn.Module):
    """(B, 1, D, H, W) -> (B, n_outputs) logits / values.

    Pads the grid centrally to a multiple of ``2**levels``, folds 2x2x2 cubes into
    channels, convolves down ``levels - 1`` more times and applies a linear head to
    the flattened (channels x bottom grid) feature map.
    """

    def __init__(self, grid_shape, n_outputs: int, base_channels: int, max_channels: int,
                 levels: int, dropout: float):
        super().__init__()
        if levels < 1:
            raise BrainlabInputError(f"levels must be >= 1; found {levels}")
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.padded_shape = padded_shape(self.grid_shape, 2 ** levels)
        bottom = tuple(s // 2 ** levels for s in self.padded_shape)
        channels = level_channels(base_channels, levels - 1, max_channels)
        self.features = nn.Sequential(
            SpaceToDepth(), ConvNormAct(8, channels[0]),
            *[DownBlock(channels[i], channels[i + 1]) for i in range(levels - 1)])
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(channels[-1] * math.prod(bottom), n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pad_to_shape(x, self.padded_shape)))


class _VolumeModel(BrainlabModel):
    """Shared plumbing: grid checks, noise augmentation, batched prediction."""

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        check_volume_batch(x, self.grid_shape, type(self).__name__)
        with self.autocast():
            return self.network(self.prepare_images(x)).float()

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.noise_sd > 0:
            x = (x + self.config.noise_sd * torch.randn_like(x)).clamp(0.0, 1.0)
        return x

    def extra_state(self) -> dict:
        return {"grid_shape": list(self.grid_shape)}


class SexClassifier(_VolumeModel):
    """(B, 1, D, H, W) in [0, 1] -> (B,) logit of P(male); ``predict_proba`` gives P(male)."""

    model_type = "sex-clf"
    batch_fields = ("image", "sex")

    def __init__(self, config: ClassifierConfig, grid_shape):
        super().__init__(config)
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.network = VolumeCnn(self.grid_shape, 1, config.base_channels, config.max_channels,
                                 config.levels, config.dropout)

    @classmethod
    def from_cohort(cls, cohort, config: ClassifierConfig | None = None) -> "SexClassifier":
        if cohort.grid_shape is None:
            raise BrainlabInputError(
                f"cohort {cohort.name!r} has no images; the sex classifier needs 3D volumes")
        return cls(config or ClassifierConfig(), cohort.grid_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(x)[:, 0]

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) -> (B,) P(male)."""
        return torch.sigmoid(self(x))

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """Binary cross-entropy of P(male) on noise-augmented images."""
        logits = self(self._augment(batch["image"]))
        return {"loss": F.binary_cross_entropy_with_logits(
            logits, batch["sex"].to(logits.device).float())}


class BrainAgeModel(_VolumeModel):
    """(B, 1, D, H, W) -> (B, 1) standardised age, or (B, n_bins) age-bin logits.

    ``target="years"`` regresses years (standardised with the training subjects' mean
    and sd, buffers); ``target="bin"`` classifies the ordinal age bin (cohorts with
    bins only, like HCP's unrestricted ages). ``predict_age`` gives years, or the
    expected bin index in bin mode.
    """

    model_type = "age-model"
    batch_fields = ("image", "age", "age_bin")

    def __init__(self, config: BrainAgeConfig, grid_shape, target: str = "years", n_bins: int = 4):
        super().__init__(config)
        if target not in ("years", "bin"):
            raise BrainlabInputError(f"age target must be 'years' or 'bin'; found {target!r}")
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.target = target
        self.n_bins = int(n_bins)
        outputs = 1 if target == "years" else self.n_bins
        self.network = VolumeCnn(self.grid_shape, outputs, config.base_channels,
                                 config.max_channels, config.levels, config.dropout)
        self.register_buffer("age_mean", torch.tensor(0.0))
        self.register_buffer("age_std", torch.tensor(1.0))

    @classmethod
    def from_cohort(cls, cohort, config: BrainAgeConfig | None = None) -> "BrainAgeModel":
        config = config or BrainAgeConfig()
        if cohort.grid_shape is None:
            raise BrainlabInputError(
                f"cohort {cohort.name!r} has no images; the brain-age model needs 3D volumes")
        if config.target not in AGE_TARGETS:
            raise BrainlabInputError(
                f"BrainAgeConfig.target must be one of {AGE_TARGETS}; found {config.target!r}")
        ages = cohort.table["age"].to_numpy(dtype=float, na_value=np.nan)
        target = config.target
        if target == "auto":
            target = "years" if np.isfinite(ages).mean() >= 0.5 else "bin"
        bins = cohort.table["age_bin"].to_numpy(dtype=float, na_value=np.nan)
        n_bins = max(len(cohort.age_bin_labels),
                     int(np.nanmax(bins)) + 1 if np.isfinite(bins).any() else 1)
        return cls(config, cohort.grid_shape, target=target, n_bins=n_bins)

    def extra_state(self) -> dict:
        return {"grid_shape": list(self.grid_shape), "target": self.target, "n_bins": self.n_bins}

    @torch.no_grad()
    def set_statistics(self, age_mean: float, age_std: float) -> None:
        """Standardisation of the years target (training subjects' mean and sd)."""
        self.age_mean.fill_(float(age_mean))
        self.age_std.fill_(float(age_std) if age_std > 0 else 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(x)

    @torch.no_grad()
    def predict_age(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) -> (B,) predicted years, or the expected age-bin index in bin mode."""
        out = self(x)
        if self.target == "years":
            return out[:, 0] * self.age_std + self.age_mean
        bins = torch.arange(self.n_bins, device=out.device, dtype=out.dtype)
        return (out.softmax(dim=1) * bins).sum(dim=1)

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor] | None:
        """MSE of standardised years (or cross-entropy of age bins) on subjects whose
        target is known; None when the batch has none."""
        out = self(self._augment(batch["image"]))
        if self.target == "years":
            age = batch["age"].to(out.device).float()
            known = torch.isfinite(age)
            if not known.any():
                return None
            target = (age[known] - self.age_mean) / self.age_std
            return {"loss": F.mse_loss(out[known, 0], target)}
        bins = batch["age_bin"].to(out.device)
        known = bins >= 0
        if not known.any():
            return None
        return {"loss": F.cross_entropy(out[known], bins[known])}
