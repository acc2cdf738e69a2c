"""MRI autoencoder v2 (issue 11): the guided decoder starts at PCA, the texture and
adversarial terms run and are finite in fp32 and bf16, the adversary changes the
decoder's gradient, and save -> load keeps outputs identical."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from brainlab.checkpoints import load_checkpoint, save_checkpoint
from brainlab.config import MriAutoencoderConfig, TrainConfig
from brainlab.errors import BrainlabInputError
from brainlab.models.autoencoder import MriAutoencoder
from brainlab.precision import cpu_has_bf16_instructions
from brainlab.registry import model_spec
from brainlab.training.autoencoder_steps import SharpAutoencoderSteps, adaptive_weight

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = MriAutoencoderConfig(latent_dim=8, base_channels=4, max_channels=16, levels=2,
                            disc_channels=4, disc_start=0)
PRECISIONS = [False, pytest.param(True, marks=pytest.mark.skipif(
    not cpu_has_bf16_instructions(), reason="this CPU has no AVX-512 BF16 / AMX"))]


def fitted(cohort, config=TINY, bf16=False):
    model = MriAutoencoder.from_cohort(cohort, config)
    steps = SharpAutoencoderSteps(model, TrainConfig(lr=1e-3))
    steps.fit_statistics(cohort, cohort.split(0).train)
    model.set_precision(bf16, channels_last=bf16)
    steps.configure_optimizers()
    return model, steps


def batch_of(cohort, n=4):
    return {"image": torch.from_numpy(np.asarray(cohort.images[:n]))[:, None]}


def test_registry_trains_mri_ae_with_the_sharp_steps():
    assert model_spec("mri-ae").steps_class() is SharpAutoencoderSteps


def test_guided_decoder_starts_exactly_at_the_pca_image(small_cohort):
    """The zero-initialised head: before any step, decode = mean + the masked PCA image."""
    model, _ = fitted(small_cohort)
    z = torch.randn(3, TINY.latent_dim)
    with torch.no_grad():
        unguided = model.mean.repeat(3, 1, 1, 1, 1)
        unguided[:, 0, model.mask] += z[:, :model.linear_dim] @ model.basis
        assert torch.allclose(model.decode_unclamped(z), unguided, atol=1e-6)
        assert not torch.equal(unguided, model.mean.repeat(3, 1, 1, 1, 1))


@pytest.mark.parametrize("bf16", PRECISIONS, ids=["fp32", "bf16"])
def test_texture_and_adversarial_terms_run_and_are_finite(small_cohort, bf16):
    model, steps = fitted(small_cohort, bf16=bf16)
    for _ in range(2):
        losses = steps.step(batch_of(small_cohort))
    expected = {"loss", "voxel_loss", "ssim_loss", "texture", "texture_band", "texture_energy",
                "g_loss", "adaptive_weight", "d_loss", "d_real", "d_fake", "mse"}
    assert expected <= set(losses)
    assert all(np.isfinite(value) for value in losses.values()), losses
    assert losses["adaptive_weight"] > 0


def test_the_adversarial_term_changes_the_decoder_gradient(small_cohort):
    model, steps = fitted(small_cohort)
    batch = batch_of(small_cohort)
    grads = []
    for adversarial in (False, True):
        torch.manual_seed(0)
        model.zero_grad(set_to_none=True)
        terms, _ = steps.generator_losses(batch, adversarial)
        terms["loss"].backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.decoder.parameters()
                                if p.grad is not None]))
    assert not torch.allclose(grads[0], grads[1])
    # The discriminator is only read in the generator pass: it gets no gradient there.
    assert all(p.grad is None for p in steps.discriminator.parameters())


def test_warm_up_trains_no_discriminator(small_cohort):
    model, steps = fitted(small_cohort, dataclasses.replace(TINY, disc_start=2))
    first = steps.step(batch_of(small_cohort))
    steps.step(batch_of(small_cohort))
    third = steps.step(batch_of(small_cohort))
    assert "d_loss" not in first and "d_loss" in third


def test_adaptive_weight_is_the_ratio_of_gradient_norms():
    w = torch.ones(3, requires_grad=True)
    weight = adaptive_weight((2 * w).sum(), (0.5 * w).sum(), w)
    assert weight.item() == pytest.approx(4.0, rel=1e-3)


def test_resume_keeps_the_discriminator(small_cohort):
    model, steps = fitted(small_cohort)
    steps.step(batch_of(small_cohort))
    state = steps.optimizer_state()
    _, again = fitted(small_cohort)
    again.load_optimizer_state(state)
    assert again.steps_done == 1
    for a, b in zip(steps.discriminator.parameters(), again.discriminator.parameters()):
        assert torch.equal(a, b)


def test_save_load_gives_identical_reconstructions(small_cohort, tmp_path):
    model, steps = fitted(small_cohort)
    for _ in range(2):
        steps.step(batch_of(small_cohort))
    model.eval()
    save_checkpoint(model, tmp_path, small_cohort, 0, {}, {})
    loaded, card = load_checkpoint(tmp_path, expected_type="mri-ae")
    x = batch_of(small_cohort, 3)["image"]
    with torch.no_grad():
        assert torch.equal(model(x), loaded.eval()(x))
    assert card["config"]["guided_decoder"] is True
    assert not any(key.startswith("discriminator") for key in loaded.state_dict())


def test_unknown_reconstruction_loss_is_refused():
    with pytest.raises(BrainlabInputError, match="reconstruction must be 'l1' or 'mse'; found 'l3'"):
        MriAutoencoder(dataclasses.replace(TINY, reconstruction="l3"), (12, 14, 16))


def test_guided_decoder_refuses_a_missing_guide():
    model = MriAutoencoder(TINY, (12, 14, 16))
    with pytest.raises(BrainlabInputError, match="needs the guide image"):
        model.decoder(torch.zeros(1, TINY.latent_dim))


def test_cards_from_before_v2_rebuild_the_v1_model():
    """A stored config without the v2 fields (a shipped v1 card) gives the unguided decoder
    and the v1 loss; an empty dict still means today's defaults."""
    from brainlab.config import config_from_dict

    v1_card = {"latent_dim": 8, "linear_dim": 6, "residual_scale": 0.1, "base_channels": 4,
               "max_channels": 16, "levels": 2, "ssim_weight": 0.2}
    config = config_from_dict(MriAutoencoderConfig, v1_card)
    assert (config.guided_decoder, config.reconstruction, config.adversarial_weight) == (False, "mse", 0.0)
    assert not hasattr(MriAutoencoder(config, (12, 14, 16)).decoder, "join")
    assert config_from_dict(MriAutoencoderConfig, {}) == MriAutoencoderConfig()
