"""brainlab's latent-space GAN and the seed study's DCGAN, on a tiny 12x14x16 cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from brainlab.checkpoints import load_checkpoint, save_checkpoint
from brainlab.config import GanConfig, MriAutoencoderConfig, SeedGanConfig, TrainConfig
from brainlab.data.cohort import Cohort, ImageArray
from brainlab.data.grid import mni_affine
from brainlab.errors import BrainlabInputError, CheckpointMismatchError
from brainlab.models.autoencoder import MriAutoencoder
from brainlab.models.gan import LatentGan
from brainlab.models.seed_reference import (SeedDcgan, SeedDiscriminator, SeedGenerator,
                                            count_parameters, from_seed_cube, to_seed_cube)
from brainlab.registry import model_class
from brainlab.training.steps import AutoencoderSteps, LatentGanSteps, SeedGanSteps

GRID = (12, 14, 16)
TINY_AE = MriAutoencoderConfig(latent_dim=8, base_channels=4, max_channels=8, levels=2)
TINY_GAN = GanConfig(hidden_dim=32, code_batch=32, steps_per_batch=2)
TINY_SEED = SeedGanConfig(generator_widths=(8, 4), discriminator_widths=(4, 8), image_size=8,
                          pad_size=0)


def toy_cohort(n: int = 24, grid=GRID, seed: int = 0) -> Cohort:
    """Blurry ellipsoids of varying size and brightness: 'brains' with two factors."""
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(-1, 1, s) for s in grid], indexing="ij")
    radius = np.sqrt(sum(a ** 2 for a in axes))
    images = np.stack([
        np.clip((0.55 + 0.25 * rng.random()) - radius, 0, 1) * (1.2 + rng.random())
        for _ in range(n)]).clip(0, 1).astype(np.float32)
    table = pd.DataFrame({"subject_id": [f"sub-{i:02d}" for i in range(n)],
                          "sex": ["F", "M"] * (n // 2), "age": rng.uniform(22, 36, n),
                          "age_bin": rng.integers(0, 4, n)})
    return Cohort(f"toy{grid}", table, mni_affine(grid), ImageArray(images))


def fitted_autoencoder(cohort: Cohort) -> MriAutoencoder:
    """An untrained tiny MRI AE with its mean brain and PCA basis fitted, as training does
    before the first step (so decoded codes differ between subjects)."""
    autoencoder = MriAutoencoder.from_cohort(cohort, TINY_AE)
    AutoencoderSteps(autoencoder).fit_statistics(cohort, np.arange(16))
    return autoencoder


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return toy_cohort()


@pytest.fixture(scope="module")
def tiny_gan(cohort) -> LatentGan:
    torch.manual_seed(0)
    autoencoder = fitted_autoencoder(cohort)
    gan = LatentGan.from_autoencoder(autoencoder, TINY_GAN)
    LatentGanSteps(gan).fit_statistics(cohort, np.arange(16))
    return gan


# ---- the seed study's DCGAN ------------------------------------------------------


def test_seed_architecture_is_the_published_one():
    generator, discriminator = SeedGenerator(), SeedDiscriminator()
    # MEASURED.md: G 4.4M parameters, D 2.8M at 64³.
    assert 4.3e6 < count_parameters(generator) < 4.5e6
    assert 2.7e6 < count_parameters(discriminator) < 2.9e6
    assert generator.project[0].out_features == 256 * 4 ** 3
    assert discriminator.head[1].in_features == 256 * 4 ** 3
    generator.eval()
    with torch.no_grad():
        volume = generator(torch.rand(1, 100))
        probability = SeedDiscriminator().eval()(volume)
    assert volume.shape == (1, 1, 64, 64, 64)
    assert 0 <= float(volume.min()) and float(volume.max()) <= 1
    assert probability.shape == (1, 1)


@pytest.mark.parametrize("widths,size", [((8, 4), 8), ((8, 4, 4), 16), ((4, 4, 4, 4), 32)])
def test_seed_generator_and_discriminator_shapes(widths, size):
    generator = SeedGenerator(100, widths, size)
    discriminator = SeedDiscriminator(tuple(reversed(widths)), size)
    volume = generator(torch.rand(3, 100))
    assert volume.shape == (3, 1, size, size, size)
    assert discriminator(volume).shape == (3, 1)


def test_seed_image_size_must_divide():
    with pytest.raises(BrainlabInputError, match="multiple of 4"):
        SeedGenerator(100, (8, 4), image_size=10)


@pytest.mark.parametrize("grid", [GRID, (58, 70, 58)])
def test_seed_cube_round_trip_keeps_grid(grid):
    volumes = torch.rand(2, 1, *grid)
    cubes = to_seed_cube(volumes, pad_size=70 if grid[1] == 70 else 0, image_size=16)
    assert cubes.shape == (2, 1, 16, 16, 16)
    back = from_seed_cube(cubes, grid, pad_size=70 if grid[1] == 70 else 0)
    assert back.shape == (2, 1, *grid)
    # Without resizing the round trip is exact.
    exact = from_seed_cube(to_seed_cube(volumes, 0, max(grid)), grid, 0)
    assert torch.equal(exact, volumes)


def test_seed_dcgan_generates_on_cohort_grid_and_trains(cohort):
    torch.manual_seed(0)
    model = SeedDcgan.from_cohort(cohort, TINY_SEED)
    z = model.sample_latent(4, 0)
    assert 0 <= float(z.min()) and float(z.max()) <= 1  # seed: z ~ U(0, 1)
    assert model.generate(z).shape == (4, 1, *GRID)
    steps = SeedGanSteps(model, TrainConfig())
    steps.configure_optimizers()
    before = [p.detach().clone() for p in model.generator.parameters()]
    batch = {"image": torch.from_numpy(cohort.images[np.arange(4)])[:, None]}
    losses = steps.step(batch)
    assert {"d_loss", "g_loss", "d_accuracy", "d_skipped"} <= set(losses)
    assert all(np.isfinite(v) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.generator.parameters()))


def test_seed_dcgan_skips_discriminator_step_when_too_accurate(cohort):
    model = SeedDcgan.from_cohort(cohort, TINY_SEED.__class__(
        **{**TINY_SEED.__dict__, "d_accuracy_threshold": -1.0}))
    steps = SeedGanSteps(model, TrainConfig())
    before = [p.detach().clone() for p in model.discriminator.parameters()]
    losses = steps.step({"image": torch.from_numpy(cohort.images[np.arange(4)])[:, None]})
    assert losses["d_skipped"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.discriminator.parameters()))


# ---- brainlab's latent GAN ---------------------------------------------------------


def test_gan_generates_on_cohort_grid(tiny_gan):
    z = tiny_gan.sample_latent(3, 0)
    assert z.shape == (3, 100) and tiny_gan.latent_dim == 100
    assert torch.equal(z, tiny_gan.sample_latent(3, 0))  # reproducible per seed
    volumes = tiny_gan.generate(z)
    assert volumes.shape == (3, 1, *GRID)
    assert volumes.dtype == torch.float32
    assert 0 <= float(volumes.min()) and float(volumes.max()) <= 1


def test_untrained_gan_is_the_fitted_gaussian(tiny_gan):
    z = tiny_gan.sample_latent(500, 1)
    with torch.no_grad():
        assert torch.allclose(tiny_gan.codes_from_latent(z), tiny_gan.gaussian_codes(z))


def test_code_statistics_whiten_and_colour():
    gan = LatentGan(GanConfig(code_dim=8, hidden_dim=16), MriAutoencoder(TINY_AE, GRID))
    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(8, 8, generator=generator)
    codes = torch.randn(4000, 8, generator=generator) @ mixing + 3.0
    gan.set_code_statistics(codes)
    white = gan.whiten(codes).double()
    assert torch.allclose(white.mean(0), torch.zeros(8, dtype=torch.double), atol=1e-4)
    assert torch.allclose(torch.cov(white.T), torch.eye(8, dtype=torch.double), atol=1e-3)
    # Colouring N(0, I) with the basis reproduces the codes' covariance.
    with torch.no_grad():
        sampled = gan.gaussian_codes(torch.randn(20000, 100, generator=generator))
    relative = (torch.cov(sampled.T) - torch.cov(codes.T)).norm() / torch.cov(codes.T).norm()
    assert float(relative) < 0.05


def _skewness(x: torch.Tensor) -> float:
    centred = x - x.mean()
    return float(centred.pow(3).mean() / centred.pow(2).mean().pow(1.5))


def test_gan_learns_a_non_gaussian_code_distribution():
    """Real whitened codes are skewed along axis 0 (Exp(1) - 1); G starts as the fitted
    Gaussian (skewness 0) and only the adversarial game can bend it towards the skew."""
    autoencoder = MriAutoencoder(TINY_AE, GRID)
    torch.manual_seed(0)  # after the autoencoder, so its architecture does not shift G's draws
    config = GanConfig(code_dim=8, hidden_dim=64, code_batch=64, lr_generator=1e-3,
                       lr_discriminator=1e-3, ema_decay=0.9)
    gan = LatentGan(config, autoencoder)
    steps = LatentGanSteps(gan, TrainConfig())
    real = torch.randn(512, 8)
    real[:, 0] = torch.empty(512).exponential_() - 1
    z = torch.randn(2000, 100)
    with torch.no_grad():
        before = _skewness(gan.generator_ema(z)[:, 0])
    for _ in range(400):
        steps.adversarial_step(real)
    with torch.no_grad():
        after = _skewness(gan.generator_ema(z)[:, 0])
    assert abs(before) < 0.2 < 1.5 < _skewness(real[:, 0])
    assert after > 0.6


def test_gan_training_step_banks_codes_and_updates_generator(cohort):
    torch.manual_seed(0)
    gan = LatentGan.from_autoencoder(MriAutoencoder.from_cohort(cohort, TINY_AE), TINY_GAN)
    assert not bool(gan.statistics_ready)
    steps = LatentGanSteps(gan, TrainConfig())
    batch = {"image": torch.from_numpy(cohort.images[np.arange(8)])[:, None],
             "index": torch.arange(8)}
    before = [p.detach().clone() for p in gan.generator.parameters()]
    ae_before = [p.detach().clone() for p in gan.autoencoder.parameters()]
    losses = steps.step(batch)
    assert bool(gan.statistics_ready) and len(gan.bank_codes()) == 8
    assert {"d_loss", "g_loss", "r1"} <= set(losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.generator.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(ae_before, gan.autoencoder.parameters()))


def test_gan_rejects_bad_latent(tiny_gan):
    with pytest.raises(BrainlabInputError, match=r"\(B, 100\)"):
        tiny_gan.generate(torch.zeros(2, 99))


@pytest.mark.parametrize("which", ["gan", "dcgan-seed"])
def test_save_load_gives_identical_outputs(which, tiny_gan, cohort, tmp_path):
    model = tiny_gan if which == "gan" else SeedDcgan.from_cohort(cohort, TINY_SEED)
    model.eval()
    z = model.sample_latent(2, 3)
    with torch.no_grad():
        expected = model.generate(z)
    folder = save_checkpoint(model, tmp_path / which, cohort, 0, {"n": 0}, {"steps": 0})
    loaded, card = load_checkpoint(folder, expected_type=which, cohort=cohort)
    assert type(loaded) is model_class(which)
    assert card["model_type"] == which
    with torch.no_grad():
        assert torch.equal(loaded.generate(z), expected)


def test_mismatched_checkpoint_errors(tiny_gan, cohort, tmp_path):
    folder = save_checkpoint(tiny_gan, tmp_path / "gan", cohort, 0, {"n": 0}, {"steps": 0})
    with pytest.raises(CheckpointMismatchError, match="holds a 'gan' model; expected 'encoder'"):
        load_checkpoint(folder, expected_type="encoder")
    with pytest.raises(CheckpointMismatchError, match=r"expects grid \(12, 14, 16\)"):
        load_checkpoint(folder, expected_type="gan", cohort=toy_cohort(grid=(16, 14, 12)))


def test_gan_fit_and_evaluate_end_to_end(cohort, tmp_path):
    from brainlab.training import fit

    torch.manual_seed(0)
    gan = LatentGan.from_autoencoder(MriAutoencoder.from_cohort(cohort, TINY_AE), TINY_GAN)
    summary = fit(gan, cohort, train_config=TrainConfig(epochs=2, batch_size=8, bf16="off",
                                                        num_threads=1),
                  out_dir=tmp_path / "run")
    metrics = summary["metrics"]
    for key in ("frechet_ratio", "two_sample_auc", "gaussian_frechet_ratio", "n"):
        assert key in metrics
    assert metrics["n"] == len(cohort.split(0).test)
    loaded, card = load_checkpoint(tmp_path / "run", expected_type="gan", cohort=cohort)
    assert card["metrics"]["n"] == metrics["n"]
    previews = sorted((tmp_path / "run" / "previews").glob("samples_step*.png"))
    assert len(previews) == 2  # one per epoch
    from PIL import Image

    assert Image.open(previews[-1]).size[0] > GRID[0]


def test_gan_without_banked_codes_asks_for_statistics(cohort):
    gan = LatentGan.from_autoencoder(MriAutoencoder.from_cohort(cohort, TINY_AE), TINY_GAN)
    with pytest.raises(BrainlabInputError, match="2 training subjects have no banked code"):
        LatentGanSteps(gan, TrainConfig()).step({"index": torch.arange(2)})


def test_gan_panel_on_isometric_coordinates_equals_the_voxel_metrics():
    """evaluate_*gan score on N-column coordinates; every figure must match the voxels'."""
    from brainlab.analysis.evaluation import gan_panel, isometric_coordinates
    from brainlab.analysis.metrics import gan_metrics

    rng = np.random.default_rng(0)
    # Brain-like spectrum (a few strong modes) so every PCA solver finds the same axes.
    modes = rng.standard_normal((16, int(np.prod(GRID)))) * 0.6 ** np.arange(16)[:, None]

    def volumes(n, shift=0.0):
        flat = 0.5 + shift + 0.02 * rng.standard_normal((n, 16)) @ modes
        return flat.reshape(n, *GRID).astype(np.float32)

    train, heldout, generated = volumes(40), volumes(12), volumes(12, shift=0.01)
    expected = gan_metrics(train, heldout, generated, seed=0)
    coordinates = isometric_coordinates(train, heldout, generated)
    assert [c.shape for c in coordinates] == [(40, 64), (12, 64), (12, 64)]
    found = gan_panel(*coordinates, n_voxels=int(np.prod(GRID)), seed=0)
    assert sorted(found) == sorted(expected)
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, rel=1e-4, abs=1e-9), key  # fp32 voxels
