"""Precision: bf16 is chosen from CPU flags, config and BRAINLAB_BF16, never a timing;
conv models train to finite losses under both settings where the CPU has BF16."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlab.config import MriAutoencoderConfig, TrainConfig
from brainlab.errors import BrainlabInputError
from brainlab.models.autoencoder import MriAutoencoder
from brainlab.models.blocks import Conv3d
from brainlab.precision import BF16_ENV, bf16_supported, cpu_has_bf16_instructions, resolve_bf16
from test_models import steps_for, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NO_BF16 = "this CPU has no AVX-512 BF16 / AMX, so the bf16 path cannot run here"
needs_bf16 = pytest.mark.skipif(not cpu_has_bf16_instructions(), reason=NO_BF16)


def test_auto_follows_the_cpu_flags(monkeypatch):
    monkeypatch.delenv(BF16_ENV, raising=False)
    assert bf16_supported("cpu") == cpu_has_bf16_instructions()
    assert resolve_bf16("auto") == cpu_has_bf16_instructions()
    # Asked twice, the same answer: there is no timing race to lose.
    assert all(resolve_bf16("auto") == resolve_bf16("auto") for _ in range(5))
    assert resolve_bf16("off") is False and resolve_bf16(False) is False
    with pytest.raises(BrainlabInputError, match="bf16 setting must be one of"):
        resolve_bf16("maybe")


def test_environment_overrides_the_setting(monkeypatch):
    monkeypatch.setenv(BF16_ENV, "off")
    assert resolve_bf16("on") is False
    monkeypatch.setenv(BF16_ENV, "on")
    if cpu_has_bf16_instructions():
        assert resolve_bf16("off") is True
    else:
        with pytest.warns(UserWarning, match="no native bf16"):
            assert resolve_bf16("off") is False
    monkeypatch.setenv(BF16_ENV, "sometimes")
    with pytest.raises(BrainlabInputError, match="BRAINLAB_BF16 must be one of"):
        resolve_bf16("auto")


@needs_bf16
@pytest.mark.parametrize("side", [2, 3, 5])
def test_conv_weight_gradient_matches_fp32_on_small_sides(side):
    """oneDNN's bf16 weight gradient for 3x3x3 kernels over sides of 2 is garbage;
    ``blocks.Conv3d`` computes those in fp32."""
    torch.manual_seed(0)
    conv = Conv3d(16, 8, 3, padding=1, bias=False).to(memory_format=torch.channels_last_3d)
    x = torch.randn(8, 16, side, side + 1, side).contiguous(memory_format=torch.channels_last_3d)
    grad_out = torch.randn(8, 8, side, side + 1, side)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
    (out.float() * grad_out).sum().backward()
    bf16_grad = conv.weight.grad.clone()
    conv.zero_grad()
    (conv(x) * grad_out).sum().backward()
    error = (bf16_grad - conv.weight.grad).abs().max() / conv.weight.grad.abs().max()
    assert torch.isfinite(error) and error < 0.05


@pytest.mark.parametrize("bf16", ["off", pytest.param("on", marks=needs_bf16)])
@pytest.mark.parametrize("model_type", ["mri-ae", "sex-clf", "age-model"])
def test_conv_models_train_finite_in_both_precisions(model_type, bf16, small_cohort):
    torch.manual_seed(0)
    if model_type == "mri-ae":  # three levels: a 2x2x2 bottleneck, where bf16 once gave NaN
        model = MriAutoencoder.from_cohort(small_cohort, MriAutoencoderConfig(
            latent_dim=8, base_channels=4, max_channels=16, levels=3))
    else:
        model = tiny_model(model_type, small_cohort)
    rows = np.arange(8)
    trainer = steps_for(model, TrainConfig())  # each model's default learning rate
    trainer.fit_statistics(small_cohort, rows)
    model.set_precision(resolve_bf16(bf16), channels_last=True)
    trainer.configure_optimizers()
    batch = next(iter(trainer.batches(small_cohort, rows, 8)))
    model.train()
    losses = [trainer.step(batch)["loss"] for _ in range(6)]
    assert np.isfinite(losses).all(), losses
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert losses[-1] < losses[0]
