"""The morphometry autoencoder: an MLP on standardised FreeSurfer-style features.

Features are standardised with the training subjects' means and standard
deviations (buffers, saved with the weights); missing values (NaN) are filled with
the mean (0 after standardising) on the way in and left out of the loss. Works on
table-only cohorts (an HCP FreeSurfer CSV) as well as on the phantom.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brainlab.config import MorphometryAutoencoderConfig
from brainlab.errors import BrainlabInputError
from brainlab.models.base import BrainlabModel


def _mlp(widths: list[int], dropout: float, last_activation: bool) -> nn.Sequential:
    """Linear-LayerNorm-SiLU(-Dropout) stack through ``widths``; a plain Linear last."""
    layers: list[nn.Module] = []
    for i, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(width_in, width_out))
        if i < len(widths) - 2 or last_activation:
            layers += [nn.LayerNorm(width_out), nn.SiLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MorphometryAutoencoder(BrainlabModel):
    """(B, F) raw features -> (B, F) reconstructed raw features; codes are (B, latent_dim).

    ``latent_dim`` is the config's, capped at the feature count F.
    """

    model_type = "morph-ae"
    batch_fields = ("features",)
    needs_images = False

    def __init__(self, config: MorphometryAutoencoderConfig, feature_names):
        super().__init__(config)
        self.feature_names = [str(name) for name in feature_names]
        n_features = len(self.feature_names)
        if n_features < 1:
            raise BrainlabInputError("the morphometry autoencoder needs at least 1 feature; found 0")
        self.latent_dim = int(min(config.latent_dim, n_features))
        widths = [n_features, *config.hidden, self.latent_dim]
        self.encoder = _mlp(widths, config.dropout, last_activation=False)
        self.decoder = _mlp(widths[::-1], config.dropout, last_activation=False)
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))

    @classmethod
    def from_cohort(cls, cohort, config: MorphometryAutoencoderConfig | None = None,
                    feature_names=None) -> "MorphometryAutoencoder":
        """A model over ``feature_names`` (the numeric morphometry columns of the cohort,
        ``brainlab.data.batches.numeric_feature_columns``, as the training layer passes)."""
        if not feature_names:
            raise BrainlabInputError(
                f"cohort {cohort.name!r} has no numeric morphometry columns; the morphometry "
                f"autoencoder needs some (found columns {list(cohort.table.columns)[:8]})")
        return cls(config or MorphometryAutoencoderConfig(), feature_names)

    def extra_state(self) -> dict:
        return {"feature_names": list(self.feature_names)}

    @torch.no_grad()
    def set_statistics(self, mean, std) -> None:
        """Standardisation buffers: (F,) means and standard deviations (non-finite mean -> 0,
        non-positive or non-finite sd -> 1)."""
        mean = torch.as_tensor(mean, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        self.feature_mean.copy_(torch.where(torch.isfinite(mean), mean, torch.zeros_like(mean)))
        self.feature_std.copy_(torch.where(torch.isfinite(std) & (std > 0), std,
                                           torch.ones_like(std)))

    def standardise(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F) raw -> ((B, F) standardised with NaN -> 0, (B, F) observed mask)."""
        if features.dim() != 2 or features.shape[1] != len(self.feature_names):
            raise BrainlabInputError(
                f"MorphometryAutoencoder: expected features of shape (B, {len(self.feature_names)}); "
                f"found {tuple(features.shape)}")
        features = features.to(self.device).float()
        observed = torch.isfinite(features)
        scaled = (features - self.feature_mean) / self.feature_std
        return torch.where(observed, scaled, torch.zeros_like(scaled)), observed

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F) raw features -> (B, latent_dim) codes."""
        return self.encoder(self.standardise(features)[0])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, F) raw-scale features."""
        return self.decoder(z.to(self.device)) * self.feature_std + self.feature_mean

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(features))

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """MSE of the standardised reconstruction on observed (non-NaN) features."""
        scaled, observed = self.standardise(batch["features"])
        recon = self.decoder(self.encoder(scaled))
        return {"loss": F.mse_loss(recon[observed], scaled[observed])}
