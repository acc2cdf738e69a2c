"""A small 3D PatchGAN discriminator (pix2pix / latent-diffusion's AutoencoderKL style).

It scores overlapping patches rather than whole volumes: each output logit sees a
receptive field of 26 voxels (≈ 8 cm at 3.1 mm; 3 stride-1 layers after 2 stride-2), so it judges local texture and
edges, which is what the autoencoder's decoder blurs, and it is cheap: strided
4x4x4 convs, GroupNorm (batches are 4 volumes, too few for BatchNorm), LeakyReLU.
Used only during training (it lives in ``brainlab.training.autoencoder_steps``, not in
the autoencoder's checkpoint).
"""

from __future__ import annotations

from torch import nn

from brainlab.models.blocks import group_count


class PatchDiscriminator3d(nn.Module):
    """(B, 1, D, H, W) float -> (B, 1, d, h, w) real/fake logits, one per patch.

    ``n_layers`` stride-2 convs (each side floor-halves), then a stride-1 conv and a
    1-channel conv; widths ``channels * 2**i`` capped at ``8 * channels``. Any grid of at
    least ``2**n_layers`` voxels per side works.
    """

    def __init__(self, channels: int = 16, n_layers: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv3d(1, channels, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2)]
        width = channels
        for i in range(1, n_layers):
            out = channels * min(2 ** i, 8)
            layers += [nn.Conv3d(width, out, 4, stride=2, padding=1, bias=False),
                       nn.GroupNorm(group_count(out), out), nn.LeakyReLU(0.2)]
            width = out
        out = channels * min(2 ** n_layers, 8)
        layers += [nn.Conv3d(width, out, 3, padding=1, bias=False),
                   nn.GroupNorm(group_count(out), out), nn.LeakyReLU(0.2),
                   nn.Conv3d(out, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
