"""brainlab's latent encoder: inverts the GAN, real brain -> z with G(z) ≈ brain.

The seed study trained a 3D residual CNN from scratch on (z, G(z)) pairs (see
:class:`~brainlab.models.seed_reference.SeedLatentEncoder`). brainlab's GAN generates
through a frozen autoencoder decoder, so its encoder reuses the autoencoder's encoder
as image features and only learns the small map from codes back to z:

    x --(frozen AE encoder)--> code --(whiten)--> MLP --> z

trained on two losses at once:

- generated pairs: z ~ N(0, I), code = G(z) (cheap: no image needed; a few per step are
  also decoded and re-encoded so the encoder sees the decoder/encoder round trip), latent
  MSE ||E(G(z)) - z||²;
- real images through the frozen G: image MSE ||G(E(x)) - x||² (backpropagated through the
  frozen decoder), plus a small ||z||² prior pull so z stays where G was trained
  (training only: refinement optimises image fidelity alone and keeps the best z).

``invert(x, refine_steps=K)`` starts at E(x) and runs K Adam steps on z minimising the
image MSE through G (batched), which closes most of the remaining gap. Both fidelities
(before and after refinement) and the latent MSE on generated pairs go into the card.

Measured (hcp-ya phantom at half resolution, GAN on an autoencoder with held-out SSIM
0.57 on the same 16 test subjects; 150 training steps): G(E(x)) SSIM 0.579 directly,
0.581 after 30 refinement steps — at the autoencoder's own bound (the decoder is G's
image head), so the ≥0.85 target needs an autoencoder that reaches it; latent MSE on
generated pairs 0.13 (z has unit variance).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from brainlab.config import EncoderConfig, GanConfig, config_from_dict, config_to_dict
from brainlab.errors import BrainlabInputError
from brainlab.models.base import BrainlabModel
from brainlab.models.gan import LatentGan


class CodeToLatent(nn.Module):
    """(B, code_dim) whitened code -> (B, latent_dim) z; an MLP with a linear skip."""

    def __init__(self, code_dim: int, latent_dim: int, hidden_dim: int, layers: int):
        super().__init__()
        self.skip = nn.Linear(code_dim, latent_dim)
        blocks: list[nn.Module] = []
        width = code_dim
        for _ in range(max(1, layers) - 1):
            blocks += [nn.Linear(width, hidden_dim), nn.LeakyReLU(0.2)]
            width = hidden_dim
        blocks.append(nn.Linear(width, latent_dim))
        self.mlp = nn.Sequential(*blocks)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.skip(w) + self.mlp(w)


class LatentEncoder(BrainlabModel):
    """Inverts a :class:`~brainlab.models.gan.LatentGan`: (B, 1, D, H, W) in [0, 1] -> (B, 100) z.

    Holds a frozen copy of the GAN (and so of its autoencoder) to be self-contained.
    """

    model_type = "encoder"

    def __init__(self, config: EncoderConfig, gan: LatentGan):
        super().__init__(config)
        self.gan = gan
        self.gan.requires_grad_(False)
        self.gan.eval()
        self.mapper = CodeToLatent(gan.config.code_dim, config.latent_dim, config.hidden_dim,
                                   config.layers)

    # ---- construction ------------------------------------------------------------

    @classmethod
    def from_gan(cls, gan: LatentGan, config: EncoderConfig | None = None) -> "LatentEncoder":
        """An encoder for ``gan`` (copied in, frozen)."""
        if not isinstance(gan, LatentGan):
            raise BrainlabInputError(
                f"brainlab's encoder inverts a 'gan' (LatentGan) model; found "
                f"{type(gan).__name__}")
        config = replace(config or EncoderConfig(), latent_dim=gan.latent_dim,
                         gan_config=config_to_dict(gan.config))
        encoder = cls(config, copy.deepcopy(gan))
        encoder.set_precision(gan.use_bf16, gan.use_channels_last)
        return encoder

    @classmethod
    def from_cohort(cls, cohort, config: EncoderConfig | None = None) -> "LatentEncoder":
        """An untrained skeleton matching ``config.gan_config`` (for checkpoint loading)."""
        config = config or EncoderConfig()
        gan = LatentGan.from_cohort(cohort, config_from_dict(GanConfig, dict(config.gan_config)))
        return cls(replace(config, gan_config=config_to_dict(gan.config)), gan)

    @classmethod
    def from_extra_state(cls, config: EncoderConfig, extra_state: dict) -> "LatentEncoder":
        """Rebuild from a card: the GAN (and its autoencoder) from the stored configs."""
        gan_config = config_from_dict(GanConfig, dict(config.gan_config))
        gan = LatentGan.from_extra_state(gan_config, dict(extra_state.get("gan_extra", {})))
        return cls(config, gan)

    def extra_state(self) -> dict:
        return {"grid_shape": list(self.grid_shape), "gan_extra": self.gan.extra_state()}

    def set_precision(self, bf16: bool, channels_last: bool | None = None) -> None:
        super().set_precision(bf16, channels_last)
        self.gan.set_precision(bf16, channels_last)

    # ---- public API --------------------------------------------------------------

    @property
    def latent_dim(self) -> int:
        return int(self.config.latent_dim)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return self.gan.grid_shape

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) in [0, 1] -> (B, latent_dim) z = E(x), no refinement."""
        x = self._check_images(x)
        return self.encode_codes(self.gan.encode_images(x))

    def encode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, code_dim) codes of the GAN's frozen autoencoder -> (B, latent_dim) z: E
        after its image encoder, for codes that are already at hand."""
        return self.mapper(self.gan.whiten(codes.to(self.device).float()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def invert(self, x: torch.Tensor, refine_steps: int | None = None,
               lr: float | None = None) -> torch.Tensor:
        """(B, 1, D, H, W) -> (B, latent_dim): E(x), then ``refine_steps`` Adam steps on z
        minimising the image MSE of G(z) vs x; each subject keeps its best z."""
        steps = self.config.refine_steps if refine_steps is None else int(refine_steps)
        if steps < 0:
            raise BrainlabInputError(f"refine_steps must be >= 0; found {steps}")
        x = self._check_images(x)
        with torch.no_grad():
            z0 = self.encode(x)
        if steps == 0:
            return z0
        # Refinement needs autograd even when called under no_grad / inference_mode.
        with torch.inference_mode(False), torch.enable_grad():
            return self._refine(x.clone(), z0.clone(), steps, float(lr or self.config.refine_lr))

    def _refine(self, x: torch.Tensor, z0: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
        z = z0.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        best = z0.clone()
        best_loss = torch.full((len(x),), float("inf"), device=z.device)
        for step in range(steps + 1):  # step 0 scores E(x) itself; the last is not followed
            image = self.gan.decode(self.gan.codes_from_latent(z))
            per_subject = (image - x).pow(2).flatten(1).mean(1)
            with torch.no_grad():  # keep each subject's best z (Adam may overshoot)
                better = per_subject < best_loss
                best[better] = z.detach()[better]
                best_loss = torch.where(better, per_subject.detach(), best_loss)
            if step == steps:
                break
            optimizer.zero_grad(set_to_none=True)
            per_subject.sum().backward()
            optimizer.step()
        return best.detach()

    # ---- training ----------------------------------------------------------------

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """Latent MSE on generated pairs + image MSE of G(E(x)) vs x on the real batch.

        Only ``mapper`` needs optimising (the GAN and its autoencoder are frozen).
        """
        config = self.config
        gan = self.gan
        device = self.device
        with torch.no_grad():
            z_pairs = torch.randn(config.pair_batch, self.latent_dim, device=device)
            codes = gan.codes_from_latent(z_pairs)
            if config.image_pair_batch > 0:  # round trip through images for a few pairs
                k = min(config.image_pair_batch, config.pair_batch)
                codes = codes.clone()
                codes[:k] = gan.encode_images(gan.decode(codes[:k]))
            real = batch["image"].to(device).float()
            real_codes = gan.encode_images(real)
        pair_loss = F.mse_loss(self.mapper(gan.whiten(codes)), z_pairs)
        z_real = self.mapper(gan.whiten(real_codes))
        image_loss = F.mse_loss(gan.decode(gan.codes_from_latent(z_real)), real)
        prior = z_real.pow(2).mean()
        loss = (config.pair_weight * pair_loss + config.image_weight * image_loss
                + config.prior_weight * prior)
        return {"loss": loss, "latent_mse": pair_loss, "image_mse": image_loss}

    def train(self, mode: bool = True):
        super().train(mode)
        self.gan.eval()
        return self

    def _check_images(self, x) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.ndim == 4:
            x = x[:, None]
        if x.ndim != 5 or x.shape[1] != 1 or tuple(x.shape[2:]) != tuple(self.grid_shape):
            raise BrainlabInputError(
                f"images must have shape (B, 1, {', '.join(map(str, self.grid_shape))}); "
                f"found {tuple(x.shape)}")
        return x.to(self.device)
