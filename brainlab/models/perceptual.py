"""A texture loss for 3D reconstructions: multi-scale band-pass detail and its local energy.

Why not a "perceptual" network: nothing can be downloaded, a random-init 3D conv
extractor measures arbitrary filters, and features of brainlab's own classifiers tie
the autoencoder to another checkpoint (and its cohort fingerprint). A fixed
Laplacian-pyramid loss is parameter-free, deterministic and cheap on CPU, and its two
terms target what the plain voxel loss gives up:

- ``band``: L1 between the band-pass images (``x - blur(x)``) at scales 1, 2, 4, so
  edges and folds are matched where the code can predict them;
- ``energy``: L1 between the *local energies* of those bands (their squares blurred),
  which is blind to the phase of the texture: noise-like detail that is not in the same
  place as the real noise still earns credit, so the decoder is not pushed to the
  blurred mean that L1/MSE prefer when the detail cannot be predicted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _blur(x: torch.Tensor) -> torch.Tensor:
    """3x3x3 box blur with border voxels averaged over the inside only."""
    return F.avg_pool3d(x, 3, stride=1, padding=1, count_include_pad=False)


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return values.mean()
    if weight.shape[2:] != values.shape[2:]:
        weight = F.adaptive_avg_pool3d(weight, values.shape[2:])
    weight = weight.expand_as(values)
    return (values * weight).sum() / weight.sum().clamp_min(1e-8)


class TextureLoss(nn.Module):
    """(B, 1, D, H, W) x2 (+ optional (1 or B, 1, D, H, W) voxel weights) -> dict of scalars.

    Returns ``{"band", "energy", "texture"}`` (fp32), ``texture = band + energy_weight *
    energy`` averaged over ``scales`` (1 = the input grid, 2 and 4 = 2x / 4x block averages).
    """

    def __init__(self, scales: tuple[int, ...] = (1, 2, 4), energy_weight: float = 4.0):
        super().__init__()
        self.scales = tuple(int(s) for s in scales)
        self.energy_weight = float(energy_weight)

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor,
                weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        x_hat, x = x_hat.float(), x.float()
        band_terms, energy_terms = [], []
        for scale in self.scales:
            a = x_hat if scale == 1 else F.avg_pool3d(x_hat, scale, ceil_mode=True)
            b = x if scale == 1 else F.avg_pool3d(x, scale, ceil_mode=True)
            band_a, band_b = a - _blur(a), b - _blur(b)
            band_terms.append(_weighted_mean((band_a - band_b).abs(), weight))
            # Square roots of the local energies keep the term in intensity units.
            energy_a = (_blur(band_a * band_a) + 1e-8).sqrt()
            energy_b = (_blur(band_b * band_b) + 1e-8).sqrt()
            energy_terms.append(_weighted_mean((energy_a - energy_b).abs(), weight))
        band = torch.stack(band_terms).mean()
        energy = torch.stack(energy_terms).mean()
        return {"band": band, "energy": energy, "texture": band + self.energy_weight * energy}
