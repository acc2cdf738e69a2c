"""Training steps of the conditional code-space GAN (sex and age).

``ConditionalLatentGanSteps`` extends ``LatentGanSteps``: besides each training
subject's code it banks the subject's condition features (sex, age in years or age
bin, as the GAN's ``ConditionSpec`` encodes them), fits the class-conditional Gaussian
(the baseline and G at step 0), and in every adversarial step pairs real codes with
their own conditions and fake codes with conditions drawn from the real ones, so G is
trained at the conditions the cohort has. An unconditional GAN falls back to the
parent's steps.

``condition_config_for(cohort)`` is what the recipe conditions on: age in years where
the cohort has ages in years spread over more than one bin (``lifespan``), else the
age bin (``hcp-ya``'s 4 bins), and every sex the cohort has.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from brainlab.config import GanConfig
from brainlab.data.cohort import HCP_AGE_BINS
from brainlab.errors import BrainlabInputError
from brainlab.training.steps import (LatentGanSteps, backward_and_step, code_discriminator_loss,
                                     single_thread)


def condition_config_for(cohort, config: GanConfig | None = None) -> GanConfig:
    """``config`` conditioned on the sexes and age encoding ``cohort`` supports."""
    config = config or GanConfig()
    table = cohort.table
    sexes = tuple(sorted(set(table["sex"].astype(str)) & {"F", "M"}))
    ages = table["age"].to_numpy(dtype=float, na_value=np.nan)
    labels = tuple(cohort.age_bin_labels)
    if np.isfinite(ages).all() and tuple(labels) != HCP_AGE_BINS:
        # Years: the training range, rounded out to whole years.
        return replace(config, sexes=sexes, age_encoding="years",
                       age_range=(float(np.floor(ages.min())), float(np.ceil(ages.max()))),
                       age_bin_labels=())
    return replace(config, sexes=sexes, age_encoding="bins", age_range=(0.0, 0.0),
                   age_bin_labels=labels)


def cohort_conditions(gan, cohort, rows) -> torch.Tensor:
    """(len(rows), condition_dim) condition features of cohort ``rows``."""
    table = cohort.table.iloc[np.asarray(rows, dtype=np.int64)]
    return gan.subject_conditions(table["sex"], table["age"], table["age_bin"])


class ConditionalLatentGanSteps(LatentGanSteps):
    """Conditional code-space GAN: real (code, condition) pairs vs G(z, condition)."""

    def fit_statistics(self, cohort, train_indices=None, batch_size: int = 16) -> None:
        gan = self.model
        super().fit_statistics(cohort, train_indices, batch_size)
        if not gan.conditional:
            return
        rows = np.arange(len(cohort)) if train_indices is None else np.asarray(train_indices)
        self.conditions = dict(zip(rows.tolist(), cohort_conditions(gan, cohort, rows)))
        self.fit_conditional(gan.bank_codes(), self.bank_conditions())

    def fit_conditional(self, codes: torch.Tensor, conditions: torch.Tensor) -> None:
        """Code statistics and the class-conditional Gaussian from (codes, conditions)."""
        self.model.set_condition_statistics(codes, conditions)

    def bank_conditions(self) -> torch.Tensor:
        """(N, condition_dim) conditions in the bank's row order."""
        return torch.stack([self.conditions[k] for k in sorted(self.conditions)])

    def step(self, batch: dict) -> dict[str, float]:
        gan = self.model
        if not gan.conditional:
            return super().step(batch)
        if not getattr(self, "conditions", None):
            raise BrainlabInputError("conditional GAN: call fit_statistics(cohort, train_indices) "
                                     "before training (the conditions are banked there)")
        if not self.optimizers:
            self.configure_optimizers()
        real_bank = gan.whiten(gan.bank_codes()).to(gan.device)
        condition_bank = self.bank_conditions().to(gan.device)
        totals: dict[str, float] = {}
        for _ in range(int(gan.config.steps_per_batch)):
            for key, value in self.conditional_step(real_bank, condition_bank).items():
                totals[key] = totals.get(key, 0.0) + value
        return {key: value / max(int(gan.config.steps_per_batch), 1)
                for key, value in totals.items()}

    def conditional_step(self, real_bank: torch.Tensor, condition_bank: torch.Tensor,
                         batch_size: int | None = None) -> dict[str, float]:
        """One D step (R1 on real codes) and one G step: ``real_bank`` (N, code_dim)
        whitened codes with their ``condition_bank`` (N, condition_dim)."""
        if not self.optimizers:
            self.configure_optimizers()
        if real_bank.device.type != "cpu":
            return self._conditional_step(real_bank, condition_bank, batch_size)
        with single_thread():
            return self._conditional_step(real_bank, condition_bank, batch_size)

    def _conditional_step(self, real_bank, condition_bank, batch_size) -> dict[str, float]:
        gan = self.model
        config = gan.config
        device = real_bank.device
        batch = min(int(batch_size or config.code_batch), len(real_bank))

        def draw():
            rows = torch.randint(len(real_bank), (batch,), device=device)
            return rows, torch.randn(batch, config.latent_dim, device=device)

        rows, z = draw()
        real, real_condition = real_bank[rows], condition_bank[rows]
        fake_rows, _ = draw()  # fakes at conditions drawn independently of the real batch
        fake_condition = condition_bank[fake_rows]
        gan.discriminator.requires_grad_(True)
        with torch.no_grad():
            fake = gan.whitened_from_latent(z, fake_condition, ema=False)
        real = real.detach().requires_grad_(config.r1_gamma > 0)
        d_loss, r1 = code_discriminator_loss(gan.discriminator(real, real_condition),
                                             gan.discriminator(fake, fake_condition), real, config)
        backward_and_step(self.optimizers["discriminator"], d_loss + 0.5 * config.r1_gamma * r1)

        gan.discriminator.requires_grad_(False)
        g_rows, g_z = draw()
        g_condition = condition_bank[g_rows]
        fake_logit = gan.discriminator(gan.whitened_from_latent(g_z, g_condition, ema=False),
                                       g_condition)
        g_loss = -fake_logit.mean() if config.loss == "hinge" else F.softplus(-fake_logit).mean()
        backward_and_step(self.optimizers["generator"], g_loss)
        gan.discriminator.requires_grad_(True)
        gan.update_ema()
        g_value, d_value = float(g_loss.detach()), float(d_loss.detach())
        return {"loss": g_value + d_value, "d_loss": d_value, "g_loss": g_value,
                "r1": float(r1.detach())}
