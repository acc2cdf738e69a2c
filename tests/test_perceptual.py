"""Texture loss: zero for identical volumes, finite with gradients in fp32 and bf16, and
its energy term rewards texture that is not in the same place (phase-blind)."""

from __future__ import annotations

import pytest
import torch

from brainlab.models.perceptual import TextureLoss
from brainlab.precision import cpu_has_bf16_instructions


def volumes(seed=0, shape=(2, 1, 12, 14, 16)):
    generator = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool3d(torch.rand(shape, generator=generator), 3, 1, 1)
    return smooth, torch.randn(shape, generator=generator) * 0.05


def test_identical_volumes_have_zero_texture_loss():
    x, _ = volumes()
    terms = TextureLoss()(x, x)
    assert all(float(value) == pytest.approx(0.0, abs=1e-6) for value in terms.values())


def test_energy_prefers_misplaced_noise_to_none():
    """A real volume = smooth + noise. Against the blurred (noise-free) reconstruction,
    one with other noise of the same strength loses on the band term (the noise is in
    the wrong place) but wins on the energy term (the texture is as strong as real)."""
    smooth, noise = volumes(0)
    _, other_noise = volumes(1)
    loss = TextureLoss()
    real = smooth + noise
    textured, blurred = loss(smooth + other_noise, real), loss(smooth, real)
    assert textured["band"] > blurred["band"]
    assert textured["energy"] < 0.8 * blurred["energy"]


@pytest.mark.parametrize("bf16", [False, pytest.param(True, marks=pytest.mark.skipif(
    not cpu_has_bf16_instructions(), reason="this CPU has no AVX-512 BF16 / AMX"))],
    ids=["fp32", "bf16"])
def test_texture_loss_is_finite_and_differentiable(bf16):
    smooth, noise = volumes()
    x_hat = smooth.clone().requires_grad_(True)
    weight = torch.ones(1, 1, 12, 14, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        terms = TextureLoss()(x_hat * 1.0, smooth + noise, weight)
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in terms.values())
    terms["texture"].backward()
    assert torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0


def test_weights_restrict_the_loss_to_the_weighted_voxels():
    smooth, noise = volumes()
    weight = torch.zeros(1, 1, 12, 14, 16)
    weight[..., :6, :, :] = 1.0
    changed = smooth.clone()
    changed[..., 9:, :, :] += noise[..., 9:, :, :]  # far outside the weighted half
    band = TextureLoss(scales=(1,))(changed, smooth, weight)["band"]
    assert float(band) == pytest.approx(0.0, abs=1e-6)
