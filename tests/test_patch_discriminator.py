"""Patch discriminator: one logit per patch on unequal grids, fp32 and bf16, trainable."""

from __future__ import annotations

import pytest
import torch

from brainlab.models.patch_discriminator import PatchDiscriminator3d
from brainlab.precision import cpu_has_bf16_instructions


@pytest.mark.parametrize("grid, logits", [((12, 14, 16), (3, 3, 4)), ((9, 7, 11), (2, 1, 2)),
                                          ((58, 70, 58), (14, 17, 14))])
def test_one_logit_per_patch(grid, logits):
    out = PatchDiscriminator3d(channels=4)(torch.rand(2, 1, *grid))
    assert out.shape == (2, 1, *logits)


@pytest.mark.parametrize("bf16", [False, pytest.param(True, marks=pytest.mark.skipif(
    not cpu_has_bf16_instructions(), reason="this CPU has no AVX-512 BF16 / AMX"))],
    ids=["fp32", "bf16"])
def test_hinge_steps_separate_real_from_blurred(bf16):
    """A few hinge steps teach D to score sharp (noisy) volumes above smoothed ones."""
    torch.manual_seed(0)
    disc = PatchDiscriminator3d(channels=4)
    optimiser = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.9))
    real = torch.rand(4, 1, 12, 14, 16)
    fake = torch.nn.functional.avg_pool3d(real, 3, 1, 1)
    for _ in range(30):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            real_logit, fake_logit = disc(real).float(), disc(fake).float()
        loss = torch.relu(1 - real_logit).mean() + torch.relu(1 + fake_logit).mean()
        assert torch.isfinite(loss)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        assert disc(real).mean() > disc(fake).mean()
