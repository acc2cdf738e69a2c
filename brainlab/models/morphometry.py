"""The morphometry autoencoder: an MLP on standardised FreeSurfer-style features.

Features are standardised with the training subjects' means and standard
deviations (buffers, saved with the weights); missing values (NaN) are filled with
the mean (0 after standardising) on the way in and left out of the loss. Works on
table-only cohorts (an HCP FreeSurfer CSV) as well as on the phantom.
"""

from __future__ import annotations

import numpy as np
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
    config_class = MorphometryAutoencoderConfig
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
    def from_cohort(cls, cohort, config: MorphometryAutoencoderConfig | None = None):
        from brainlab.training import numeric_feature_columns

        names = numeric_feature_columns(cohort)
        if not names:
            raise BrainlabInputError(
                f"cohort {cohort.name!r} has no numeric morphometry columns; the morphometry "
                f"autoencoder needs some (found columns {list(cohort.table.columns)[:8]})")
        return cls(config or MorphometryAutoencoderConfig(), names)

    def extra_state(self) -> dict:
        return {"feature_names": list(self.feature_names)}

    def fit_statistics(self, cohort, train_indices) -> None:
        """Means and standard deviations of the training subjects (NaN ignored)."""
        values = cohort.table[self.feature_names].to_numpy(dtype=np.float64, na_value=np.nan)
        values = values[np.asarray(train_indices)]
        with np.errstate(all="ignore"):
            mean = np.nanmean(values, axis=0)
            std = np.nanstd(values, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(std, dtype=torch.float32))

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

    def training_step(self, batch: dict) -> dict[str, float]:
        scaled, observed = self.standardise(batch["features"])
        recon = self.decoder(self.encoder(scaled))
        loss = F.mse_loss(recon[observed], scaled[observed])
        self.backward_and_step(loss)
        return {"loss": float(loss.detach())}

    @torch.no_grad()
    def evaluate(self, cohort, indices, max_subjects: int | None = None) -> dict:
        """Per-feature and mean R² (sklearn ``r2_score``) and standardised MSE on ``indices``."""
        from sklearn.metrics import r2_score

        indices = np.asarray(indices)[:max_subjects]
        raw = cohort.table[self.feature_names].to_numpy(dtype=np.float32, na_value=np.nan)[indices]
        features = torch.from_numpy(raw)
        recon = self(features).cpu().numpy()
        scaled, observed = self.standardise(features)
        scaled_recon = (recon - self.feature_mean.cpu().numpy()) / self.feature_std.cpu().numpy()
        mask = observed.cpu().numpy()
        mse = float(np.mean((scaled_recon[mask] - scaled.cpu().numpy()[mask]) ** 2))
        per_feature = {}
        for j, name in enumerate(self.feature_names):
            rows = mask[:, j]
            if rows.sum() >= 2 and np.ptp(raw[rows, j]) > 0:
                per_feature[name] = float(r2_score(raw[rows, j], recon[rows, j]))
        mean_r2 = float(np.mean(list(per_feature.values()))) if per_feature else None
        return {"mean_r2": mean_r2, "mse": mse, "per_feature_r2": per_feature,
                "n": int(len(indices))}
