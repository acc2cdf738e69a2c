"""Training steps of the MRI autoencoder v2: reconstruction + texture + patch adversary.

The AutoencoderKL recipe of latent-diffusion models, sized for a 2-core CPU:

- the loss of ``MriAutoencoder.loss`` (brain-weighted L1 + local SSIM) plus
  ``texture_weight`` x ``perceptual.TextureLoss`` (multi-scale band-pass detail and
  its local energy), from the first step;
- after ``disc_start`` steps of that warm-up, a ``PatchDiscriminator3d`` with the hinge
  loss: one D step per batch on the real volumes and the (detached) reconstructions,
  and a generator term ``-D(x_hat).mean()`` scaled by ``adversarial_weight`` x the
  adaptive weight ``||grad rec|| / ||grad adv||`` at the decoder's last layer, so
  the adversary never outweighs reconstruction whatever the scale of its logits.

The mean brain and the PCA basis are fitted by ``steps.AutoencoderSteps``. The
discriminator exists only here: it is not part of the model's checkpoint; its weights
travel with the optimiser state (``train_state.pt``) so a resumed run keeps it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brainlab.models.patch_discriminator import PatchDiscriminator3d
from brainlab.models.perceptual import TextureLoss
from brainlab.precision import autocast
from brainlab.training.steps import AutoencoderSteps, backward_and_step

DISCRIMINATOR_STATE = "discriminator_weights"


def adaptive_weight(reconstruction: torch.Tensor, adversarial: torch.Tensor,
                    last_layer: torch.Tensor, limit: float = 1e4) -> torch.Tensor:
    """``||d rec / d w|| / ||d adv / d w||`` at ``last_layer`` (AutoencoderKL's balance),
    clamped to [0, ``limit``] and detached."""
    rec_grad = torch.autograd.grad(reconstruction, last_layer, retain_graph=True)[0]
    adv_grad = torch.autograd.grad(adversarial, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (adv_grad.norm() + 1e-4)
    return weight.clamp(0.0, limit).detach()


class SharpAutoencoderSteps(AutoencoderSteps):
    """MRI autoencoder v2: AdamW on the autoencoder, Adam on a patch discriminator."""

    def __init__(self, model, train_config=None):
        super().__init__(model, train_config)
        self.texture = TextureLoss()
        self.discriminator: PatchDiscriminator3d | None = None
        self.steps_done = 0

    # ---- optimisers -----------------------------------------------------------
    def uses_adversary(self) -> bool:
        return float(self.model.config.adversarial_weight) > 0

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """AdamW for the autoencoder; with an adversary, Adam(betas 0.5, 0.9) for D."""
        super().configure_optimizers()
        if self.uses_adversary():
            config = self.model.config
            if self.discriminator is None:
                self.discriminator = PatchDiscriminator3d(int(config.disc_channels))
            self.discriminator.to(self.model.device)
            self.optimizers["discriminator"] = torch.optim.Adam(
                self.discriminator.parameters(), lr=float(config.disc_lr), betas=(0.5, 0.9))
        return self.optimizers

    def optimizer_state(self) -> dict:
        state = super().optimizer_state()
        state["steps_done"] = self.steps_done
        if self.discriminator is not None:
            state[DISCRIMINATOR_STATE] = self.discriminator.state_dict()
        return state

    def load_optimizer_state(self, state: dict) -> None:
        if self.discriminator is not None and DISCRIMINATOR_STATE in state:
            self.discriminator.load_state_dict(state[DISCRIMINATOR_STATE])
        self.steps_done = int(state.get("steps_done", 0))
        super().load_optimizer_state(state)

    # ---- losses ---------------------------------------------------------------
    def discriminate(self, volumes: torch.Tensor) -> torch.Tensor:
        """Patch logits (fp32) of (B, 1, D, H, W) volumes, in the model's precision."""
        with autocast(self.model.device, self.model.use_bf16):
            return self.discriminator(volumes).float()

    def generator_losses(self, batch: dict, adversarial: bool) -> tuple[dict, torch.Tensor]:
        """The autoencoder's loss terms on ``batch`` and its reconstruction (unclamped).

        ``adversarial``: add the discriminator's generator term with the adaptive weight.
        """
        model = self.model
        x = batch["image"].to(model.device).float()
        x_hat = model.decode_unclamped(model.encode(x))
        terms = model.loss(x, x_hat)
        total = terms["loss"]
        weight = model.voxel_weights()
        if model.config.texture_weight > 0:
            texture = self.texture(x_hat, x, weight)
            terms.update({f"texture_{key}" if key != "texture" else key: value
                          for key, value in texture.items()})
            total = total + model.config.texture_weight * texture["texture"]
        if adversarial:
            self.discriminator.requires_grad_(False)
            g_loss = -self.discriminate(x_hat).mean()
            self.discriminator.requires_grad_(True)
            balance = adaptive_weight(total, g_loss, model.decoder.head[0].weight)
            terms["g_loss"], terms["adaptive_weight"] = g_loss, balance
            total = total + model.config.adversarial_weight * balance * g_loss
        terms["loss"] = total
        return terms, x_hat

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """One hinge-loss step of D on real volumes and detached reconstructions."""
        real_logits = self.discriminate(real.to(self.model.device).float())
        fake_logits = self.discriminate(fake.detach())
        d_loss = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        backward_and_step(self.optimizers["discriminator"], d_loss)
        return {"d_loss": float(d_loss.detach()),
                "d_real": float(real_logits.detach().mean()),
                "d_fake": float(fake_logits.detach().mean())}

    def step(self, batch: dict) -> dict[str, float]:
        """Reconstruction (+ texture) step; after the warm-up, the adversarial terms and a D step."""
        if not self.optimizers:
            self.configure_optimizers()
        adversarial = (self.discriminator is not None
                       and self.steps_done >= int(self.model.config.disc_start))
        terms, x_hat = self.generator_losses(batch, adversarial)
        backward_and_step(self.optimizers["main"], terms["loss"])
        losses = {name: float(value.detach()) for name, value in terms.items()}
        if adversarial:
            losses.update(self.discriminator_step(batch["image"], x_hat))
        self.steps_done += 1
        return losses
