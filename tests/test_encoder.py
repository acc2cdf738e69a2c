"""The GAN-inverting latent encoder (brainlab's and the seed's), on a 12x14x16 cohort."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlab.checkpoints import load_checkpoint, save_checkpoint
from brainlab.config import EncoderConfig, GanConfig, MriAutoencoderConfig, TrainConfig
from brainlab.errors import BrainlabInputError, CheckpointMismatchError
from brainlab.models.encoder import LatentEncoder
from brainlab.models.gan import LatentGan
from brainlab.models.seed_reference import SeedLatentEncoder
from brainlab.training.steps import AutoencoderSteps, EncoderSteps, LatentGanSteps
from test_gan import GRID, fitted_autoencoder, toy_cohort

TINY_AE = MriAutoencoderConfig(latent_dim=8, base_channels=4, max_channels=8, levels=2)
TINY_ENCODER = EncoderConfig(hidden_dim=32, pair_batch=32, image_pair_batch=1)


@pytest.fixture(scope="module")
def cohort():
    return toy_cohort(n=24)


@pytest.fixture(scope="module")
def trained_encoder(cohort) -> LatentEncoder:
    """A briefly trained AE -> GAN -> encoder chain (seconds)."""
    torch.manual_seed(0)
    images = torch.from_numpy(cohort.images[np.arange(16)])[:, None]
    autoencoder = fitted_autoencoder(cohort)
    autoencoder_steps = AutoencoderSteps(autoencoder, TrainConfig(lr=3e-3))
    for _ in range(15):
        autoencoder_steps.step({"image": images})
    autoencoder.eval()
    gan = LatentGan.from_autoencoder(autoencoder, GanConfig(hidden_dim=32, code_batch=16))
    LatentGanSteps(gan).fit_statistics(cohort, np.arange(16))
    encoder = LatentEncoder.from_gan(gan, TINY_ENCODER)
    encoder_steps = EncoderSteps(encoder, TrainConfig(lr=3e-3))
    for step in range(10):
        rows = np.arange(16)[(np.arange(8) + 8 * step) % 16]
        encoder_steps.step({"image": images[rows], "index": torch.from_numpy(rows)})
    encoder.eval()
    return encoder


@pytest.mark.parametrize("size,widths", [(8, (4, 4, 4)), (16, (8, 8, 8)), (32, (4, 8, 8))])
def test_seed_latent_encoder_shapes(size, widths):
    encoder = SeedLatentEncoder(100, 4, widths, size)
    assert encoder(torch.rand(2, 1, size, size, size)).shape == (2, 100)


def test_seed_latent_encoder_is_the_published_one():
    encoder = SeedLatentEncoder()
    assert encoder.stem.out_channels == 16 and encoder.stem.kernel_size == (1, 1, 1)
    assert [b.body[0].out_channels for b in encoder.blocks] == [32, 64, 128]
    assert encoder.head.in_features == 128 * 8 ** 3 and encoder.head.out_features == 100


def test_encoder_shapes(trained_encoder, cohort):
    x = torch.from_numpy(cohort.images[np.arange(3)])
    z = trained_encoder.encode(x[:, None])
    assert z.shape == (3, 100)
    assert torch.equal(trained_encoder.invert(x, refine_steps=0), z)  # (B, D, H, W) accepted
    assert trained_encoder.invert(x[:, None], refine_steps=2).shape == (3, 100)
    with torch.inference_mode():  # the app renders under inference mode; refinement still works
        assert trained_encoder.invert(x[:, None], refine_steps=2).shape == (3, 100)


def test_training_reduces_latent_error(cohort):
    torch.manual_seed(1)
    autoencoder = fitted_autoencoder(cohort)
    # z as wide as the 8-entry code: every latent entry shows in G(z), so it can be recovered.
    gan = LatentGan.from_autoencoder(autoencoder, GanConfig(hidden_dim=32, latent_dim=8))
    LatentGanSteps(gan).fit_statistics(cohort, np.arange(16))
    encoder = LatentEncoder.from_gan(gan, TINY_ENCODER)
    steps = EncoderSteps(encoder, TrainConfig(lr=3e-3))
    batch = {"image": torch.from_numpy(cohort.images[np.arange(4)])[:, None],
             "index": torch.arange(4)}
    first = steps.step(batch)
    mapper_only = {id(p) for group in steps.optimizers["main"].param_groups
                   for p in group["params"]}
    assert mapper_only == {id(p) for p in encoder.mapper.parameters()}  # GAN stays frozen
    for _ in range(40):
        last = steps.step(batch)
    assert last["latent_mse"] < 0.5 * first["latent_mse"]
    assert {"loss", "latent_mse", "image_mse"} <= set(last)


def test_refinement_improves_reconstruction(trained_encoder, cohort):
    """Refinement lowers the image error of G(z) vs x for every subject, on held-out real
    volumes and on generated ones (reachable by G); the tiny decoder here is barely
    trained, so the gains are small but must be strict."""
    real = torch.from_numpy(cohort.images[np.arange(16, 20)])[:, None]
    with torch.no_grad():
        generated = trained_encoder.gan.generate(trained_encoder.gan.sample_latent(4, 5))
    for x in (real, generated):
        with torch.no_grad():
            direct = trained_encoder.gan.generate(trained_encoder.encode(x))
        refined = trained_encoder.gan.generate(trained_encoder.invert(x, refine_steps=10, lr=0.1))
        error_direct = (direct - x).pow(2).flatten(1).mean(1)
        error_refined = (refined - x).pow(2).flatten(1).mean(1)
        assert bool((error_refined < error_direct).all())


def test_evaluate_reports_both_fidelities(trained_encoder, cohort):
    from brainlab.analysis.evaluation import evaluate_encoder

    metrics = evaluate_encoder(trained_encoder, cohort, np.arange(16, 24), max_subjects=4,
                               refine_steps=3)
    assert metrics["n"] == 4 and metrics["refine_steps"] == 3 and metrics["refined_n"] == 4
    for key in ("direct_ssim", "refined_ssim", "direct_psnr", "refined_psnr", "latent_mse",
                "direct_ssim_brain", "refined_ssim_brain"):
        assert np.isfinite(metrics[key])
    assert metrics["refined_ssim"] >= metrics["direct_ssim"] - 0.01
    assert metrics["direct_ssim_refined_subset"] == pytest.approx(metrics["direct_ssim"])
    subset = evaluate_encoder(trained_encoder, cohort, np.arange(16, 24), refine_steps=3,
                              max_refined=3)
    assert subset["n"] == 8 and subset["refined_n"] == 3


def test_save_load_gives_identical_latents(trained_encoder, cohort, tmp_path):
    x = torch.from_numpy(cohort.images[np.arange(2)])[:, None]
    with torch.no_grad():
        expected = trained_encoder.encode(x)
    folder = save_checkpoint(trained_encoder, tmp_path / "enc", cohort, 0, {"n": 0}, {})
    loaded, card = load_checkpoint(folder, expected_type="encoder", cohort=cohort)
    assert card["extra_state"]["grid_shape"] == list(GRID)
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), expected)
    with pytest.raises(CheckpointMismatchError, match="holds a 'encoder' model; expected 'gan'"):
        load_checkpoint(folder, expected_type="gan")


def test_encoder_input_errors(trained_encoder):
    with pytest.raises(BrainlabInputError, match=r"images must have shape \(B, 1, 12, 14, 16\)"):
        trained_encoder.invert(torch.zeros(1, 1, 16, 14, 12))
    with pytest.raises(BrainlabInputError, match="refine_steps must be >= 0"):
        trained_encoder.invert(torch.zeros(1, 1, *GRID), refine_steps=-1)
    with pytest.raises(BrainlabInputError, match="inverts a 'gan'"):
        LatentEncoder.from_gan(torch.nn.Linear(2, 2))
