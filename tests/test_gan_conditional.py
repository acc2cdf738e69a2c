"""The conditional latent GAN (sex and age): conditioning, a planted signal, save/load."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from brainlab.checkpoints import load_checkpoint, save_checkpoint
from brainlab.config import GanConfig, TrainConfig
from brainlab.errors import BrainlabInputError
from brainlab.models.autoencoder import MriAutoencoder
from brainlab.models.gan import ConditionSpec, LatentGan
from brainlab.training.gan_steps import (ConditionalLatentGanSteps, cohort_conditions,
                                         condition_config_for)
from tests.test_gan import GRID, TINY_AE, fitted_autoencoder, toy_cohort

YEARS = GanConfig(hidden_dim=32, code_batch=32, steps_per_batch=2, sexes=("F", "M"),
                  age_encoding="years", age_range=(20.0, 40.0))
BINS = replace(YEARS, age_encoding="bins", age_range=(0.0, 0.0),
               age_bin_labels=("22-25", "26-30", "31-35", "36+"))


@pytest.fixture(scope="module")
def cohort():
    return toy_cohort()


@pytest.fixture(scope="module")
def conditional_gan(cohort) -> LatentGan:
    torch.manual_seed(0)
    gan = LatentGan.from_autoencoder(fitted_autoencoder(cohort), YEARS)
    ConditionalLatentGanSteps(gan).fit_statistics(cohort, np.arange(16))
    return gan


def test_condition_config_follows_the_cohort(cohort):
    decades = replace(cohort, age_bin_labels=("20-29", "30-39"))  # lifespan-like bins
    years = condition_config_for(decades)
    assert years.age_encoding == "years" and years.sexes == ("F", "M")
    low, high = years.age_range
    ages = cohort.table["age"]
    assert low <= ages.min() and high >= ages.max() and high - low < 20
    bins = condition_config_for(cohort)  # the toy cohort has HCP's age bins
    assert bins.age_encoding == "bins" and len(bins.age_bin_labels) == 4


@pytest.mark.parametrize("config, dim, design", [(YEARS, 3, 6), (BINS, 5, 10),
                                                 (GanConfig(), 0, 1)])
def test_condition_feature_sizes(config, dim, design):
    spec = ConditionSpec.from_config(config)
    assert (spec.dim, spec.design_dim) == (dim, design)


def test_conditioning_changes_the_output(conditional_gan):
    z = conditional_gan.sample_latent(2, 0).repeat(2, 1)
    condition = conditional_gan.condition(["M", "M", "F", "F"], [22, 38, 22, 38])
    with torch.no_grad():
        volumes = conditional_gan.generate(z, condition)
    assert volumes.shape == (4, 1, *GRID)
    for a, b in ((0, 1), (0, 2), (1, 3)):
        assert float((volumes[a] - volumes[b]).abs().max()) > 1e-4


@pytest.mark.parametrize("sex, age, match", [
    ("X", 30, "unknown sex 'X'"), ("M", 95, "outside the conditioned range; expected 20 to 40"),
    ("F", "old", "outside the conditioned range")])
def test_bad_conditions_are_named(conditional_gan, sex, age, match):
    with pytest.raises(BrainlabInputError, match=match):
        conditional_gan.condition([sex], [age])


def test_bins_accept_labels_and_indices():
    spec = ConditionSpec.from_config(BINS)
    assert np.array_equal(spec.features(["F"], ["31-35"]), spec.features(["F"], [2]))
    with pytest.raises(BrainlabInputError, match="not an age bin"):
        spec.features(["F"], [7])


def test_untrained_conditional_gan_is_the_conditional_gaussian(conditional_gan):
    z = conditional_gan.sample_latent(64, 1)
    condition = conditional_gan.condition(["F", "M"] * 32, np.linspace(20, 40, 64))
    with torch.no_grad():
        assert torch.allclose(conditional_gan.codes_from_latent(z, condition=condition),
                              conditional_gan.gaussian_codes(z, condition), atol=1e-5)


def test_conditional_gaussian_recovers_a_linear_condition_effect():
    gan = LatentGan(replace(YEARS, code_dim=8), MriAutoencoder(TINY_AE, GRID))
    rng = np.random.default_rng(0)
    sexes = rng.choice(["F", "M"], 3000)
    ages = rng.uniform(20, 40, 3000)
    condition = gan.condition(sexes, ages)
    codes = torch.randn(3000, 8) * 0.3
    codes[:, 0] += 2.0 * condition[:, 0]  # sex shifts axis 0
    gan.set_condition_statistics(codes, condition)
    z = torch.randn(2000, 100)
    with torch.no_grad():
        male = gan.gaussian_codes(z, gan.condition(["M"] * 2000, [30] * 2000))
        female = gan.gaussian_codes(z, gan.condition(["F"] * 2000, [30] * 2000))
    assert float(male[:, 0].mean() - female[:, 0].mean()) == pytest.approx(4.0, abs=0.2)
    assert float(male[:, 0].std()) == pytest.approx(0.3, abs=0.05)


def test_a_planted_conditional_signal_is_recovered():
    """Whitened real codes sit in one of two clusters chosen by sex; the Gaussian part is
    zeroed so only the adversarial game can learn which cluster goes with which sex."""
    torch.manual_seed(0)
    config = replace(YEARS, code_dim=4, hidden_dim=64, code_batch=64, ema_decay=0.9,
                     age_encoding="none", age_range=(0.0, 0.0))
    gan = LatentGan(config, MriAutoencoder(TINY_AE, GRID))
    steps = ConditionalLatentGanSteps(gan, TrainConfig())
    sexes = np.array(["F", "M"] * 256)
    condition = gan.condition(sexes, [0] * len(sexes))
    real = 0.3 * torch.randn(len(sexes), 4)
    real[:, 0] += 2.0 * condition[:, 0]  # M at +2, F at -2 on axis 0
    gan.condition_weight.zero_()  # no Gaussian head start: G must learn the link
    for _ in range(600):
        steps.conditional_step(real, condition)
    z = torch.randn(500, 100)
    with torch.no_grad():
        male = gan.whitened_from_latent(z, gan.condition(["M"] * 500, [0] * 500))[:, 0]
        female = gan.whitened_from_latent(z, gan.condition(["F"] * 500, [0] * 500))[:, 0]
    assert float((male > 0).float().mean()) > 0.8
    assert float((female < 0).float().mean()) > 0.8


def test_cohort_conditions_match_the_table(conditional_gan, cohort):
    rows = np.array([0, 1, 5])
    features = cohort_conditions(conditional_gan, cohort, rows)
    table = cohort.table.iloc[rows]
    assert torch.equal(features, conditional_gan.condition(table["sex"], table["age"]).cpu())


def test_conditional_save_load_identity(conditional_gan, cohort, tmp_path):
    conditional_gan.eval()
    z = conditional_gan.sample_latent(3, 2)
    condition = conditional_gan.condition(["F", "M", "F"], [21, 30, 39])
    with torch.no_grad():
        expected = conditional_gan.generate(z, condition)
        expected_default = conditional_gan.generate(z)
    folder = save_checkpoint(conditional_gan, tmp_path / "gan", cohort, 0, {"n": 0}, {"steps": 0})
    loaded, card = load_checkpoint(folder, expected_type="gan", cohort=cohort)
    assert card["config"]["age_encoding"] == "years" and card["config"]["sexes"] == ["F", "M"]
    assert "conditioned on" in card["extra_state"]["condition"]
    with torch.no_grad():
        assert torch.equal(loaded.generate(z, condition), expected)
        assert torch.equal(loaded.generate(z), expected_default)


def test_conditional_gan_trains_and_evaluates(cohort, tmp_path):
    from brainlab.training import fit

    torch.manual_seed(0)
    gan = LatentGan.from_autoencoder(MriAutoencoder.from_cohort(cohort, TINY_AE),
                                     condition_config_for(cohort, YEARS))  # HCP bins
    summary = fit(gan, cohort, train_config=TrainConfig(epochs=1, batch_size=8, bf16="off",
                                                        num_threads=1),
                  out_dir=tmp_path / "run")
    metrics = summary["metrics"]
    assert metrics["condition"].startswith("conditioned on sex")
    assert np.isfinite(metrics["gaussian_frechet_ratio"])


def test_the_latent_encoder_inverts_a_conditional_gan(conditional_gan, cohort):
    """The encoder inverts at the GAN's default (training-average) condition."""
    from brainlab.config import EncoderConfig
    from brainlab.models.encoder import LatentEncoder
    from brainlab.training.steps import EncoderSteps

    torch.manual_seed(0)
    encoder = LatentEncoder.from_gan(conditional_gan, EncoderConfig(hidden_dim=32,
                                                                    pair_batch=16))
    images = torch.from_numpy(cohort.images[np.arange(4)])[:, None]
    losses = EncoderSteps(encoder, TrainConfig()).step({"image": images})
    assert np.isfinite(losses["loss"])
    z = encoder.invert(images, refine_steps=2)
    assert z.shape == (4, 100)
    with torch.no_grad():
        assert conditional_gan.generate(z).shape == (4, 1, *GRID)
