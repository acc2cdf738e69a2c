"""Attribute directions fitted from labelled latents, and the effectiveness of edits.

Stand-ins for the GAN and the classifiers make the truth known: the stub generator
brightens a box in proportion to z · planted, the stub classifiers read that box.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlab.analysis.attribute_edits import (
    AttributeDirections, directions_from_real, edit_path, effectiveness_curve,
    fit_attribute_directions, mean_edit_effect,
)
from brainlab.errors import BrainlabInputError

SHAPE = (12, 14, 16)
LATENT_DIM = 8


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=float)
    return vector / np.linalg.norm(vector)


PLANTED = unit([1.0, -2.0, 0.5, 0.0, 0.0, 1.0, 0.0, 0.3])


class StubGan:
    """z (B, 8) -> volumes whose box [2:6, 3:8, 4:10] has intensity sigmoid(z · PLANTED)."""

    latent_dim = LATENT_DIM
    grid_shape = SHAPE

    def sample_latent(self, n, seed=0):
        generator = torch.Generator().manual_seed(int(seed))
        return torch.randn(int(n), LATENT_DIM, generator=generator)

    def generate(self, z):
        z = torch.as_tensor(z, dtype=torch.float32)
        level = torch.sigmoid(z @ torch.as_tensor(PLANTED, dtype=torch.float32))
        volumes = torch.full((len(z), 1) + SHAPE, 0.1)
        volumes[:, 0, 2:6, 3:8, 4:10] = level[:, None, None, None]
        return volumes


class StubSexClassifier:
    """P(male) = mean intensity of the stub GAN's box."""

    model_type = "sex-clf"

    def predict_proba(self, x):
        return x[:, 0, 2:6, 3:8, 4:10].mean(dim=(1, 2, 3))


class StubAgeModel:
    """Age = 20 + 60 * box intensity (years)."""

    model_type = "age-model"
    target = "years"

    def predict_age(self, x):
        return 20.0 + 60.0 * x[:, 0, 2:6, 3:8, 4:10].mean(dim=(1, 2, 3))


def planted_latents(n=400, seed=0):
    """Latents with sex = sign of z · PLANTED and age linear in z · AGE_PLANTED."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, LATENT_DIM))
    age_planted = unit([0.0, 1.0, 0.0, 2.0, -1.0, 0.0, 0.5, 0.0])
    male = (z @ PLANTED > 0).astype(float)
    age = 40 + 8 * (z @ age_planted) + rng.normal(0, 0.5, n)
    return z, male, age, age_planted


def test_fit_recovers_planted_sex_and_age_directions():
    z, male, age, age_planted = planted_latents()
    directions = fit_attribute_directions(z, male, age)
    assert directions.available() == ["sex", "age", "age_given_sex"]
    assert directions.sex @ PLANTED > 0.95
    assert directions.age @ age_planted > 0.98
    for name in directions.available():
        assert np.linalg.norm(directions.get(name)) == pytest.approx(1.0)
    # The conditional age direction has no sex component but still points older.
    assert abs(directions.age_given_sex @ directions.sex) < 1e-9
    assert directions.age_given_sex @ age_planted > 0.9
    assert directions.cosine_sex_age() == pytest.approx(directions.sex @ directions.age)


def test_fit_on_shuffled_labels_finds_no_planted_direction():
    z, male, _, _ = planted_latents()
    shuffled = np.random.default_rng(1).permutation(male)
    directions = fit_attribute_directions(z, shuffled)
    assert abs(directions.sex @ PLANTED) < 0.5


def test_probabilities_are_thresholded_and_unknown_ages_dropped():
    z, male, age, age_planted = planted_latents()
    p_male = np.where(male == 1, 0.8, 0.3)
    age = age.copy()
    age[::3] = np.nan
    directions = fit_attribute_directions(z, p_male, age, source="samples")
    assert directions.sex @ PLANTED > 0.95
    assert directions.age @ age_planted > 0.95


def test_one_class_or_constant_labels_leave_the_direction_missing_with_a_note():
    z, _, _, _ = planted_latents(n=50)
    directions = fit_attribute_directions(z, np.zeros(50), np.full(50, 30.0), source="GAN samples")
    assert directions.available() == []
    assert any("fewer than 2 of each sex" in note for note in directions.notes)
    with pytest.raises(BrainlabInputError, match="no sex direction was fitted"):
        directions.get("sex")
    with pytest.raises(BrainlabInputError, match="direction must be one of"):
        directions.get("height")


@pytest.mark.parametrize("latents, male, match", [
    (np.zeros(8), None, r"latents must be \(n >= 2, latent_dim\)"),
    (np.zeros((10, 8)), np.zeros(9), r"male must have one entry per latent \(10\)"),
])
def test_fit_rejects_bad_shapes(latents, male, match):
    with pytest.raises(BrainlabInputError, match=match):
        fit_attribute_directions(latents, male)


def test_effectiveness_curve_is_monotonic_along_the_planted_direction():
    gan, sex, age = StubGan(), StubSexClassifier(), StubAgeModel()
    z = np.zeros(LATENT_DIM, dtype=np.float32)
    strengths = np.linspace(-3, 3, 7)
    curve = effectiveness_curve(gan, z, PLANTED, strengths, sex_model=sex, age_model=age)
    assert curve["volumes"].shape == (7,) + SHAPE
    assert np.all(np.diff(curve["p_male"]) > 0)
    assert np.all(np.diff(curve["age"]) > 0)
    assert curve["p_male"][3] == pytest.approx(0.5, abs=1e-6)  # strength 0 = the start
    # Along a direction orthogonal to the planted one, nothing changes.
    orthogonal = unit(np.r_[PLANTED[1], -PLANTED[0], np.zeros(LATENT_DIM - 2)])
    flat = effectiveness_curve(gan, z, orthogonal, strengths, sex_model=sex)
    assert np.ptp(flat["p_male"]) < 1e-6 and flat["age"] is None


def test_edit_path_and_mean_edit_effect_follow_the_direction():
    gan = StubGan()
    z = np.zeros(LATENT_DIM, dtype=np.float32)
    path, volumes = edit_path(gan, z, PLANTED, [0.0, 2.0])
    np.testing.assert_allclose(path[1], 2.0 * PLANTED, atol=1e-6)
    assert volumes.shape == (2,) + SHAPE
    effect = mean_edit_effect(gan, PLANTED, 2.0, n=8)
    assert effect.shape == SHAPE
    assert effect[3, 4, 5] > 0.05 and abs(effect[0, 0, 0]) < 1e-6
    with pytest.raises(BrainlabInputError, match="z must be one latent"):
        edit_path(gan, np.zeros((2, LATENT_DIM)), PLANTED, [1.0])


class StubEncoder:
    """E(x) = (brain size, three noise channels): size carries sex and age in small_cohort."""

    latent_dim = 4

    def encode(self, x):
        size = (x > 0.5).float().mean(dim=(1, 2, 3, 4))
        noise = torch.randn(len(x), 3, generator=torch.Generator().manual_seed(len(x)))
        return torch.cat([(size - 0.1)[:, None] * 20, noise * 0.01], dim=1)


def test_directions_from_real_use_the_table_labels(small_cohort):
    directions = directions_from_real(StubEncoder(), small_cohort, np.arange(len(small_cohort)))
    assert isinstance(directions, AttributeDirections)
    assert directions.n_latents == len(small_cohort) and directions.age_unit == "years"
    # Men are larger in small_cohort, so the sex direction points up the size axis.
    assert directions.sex[0] > 0.9


def test_directions_from_both_pool_real_and_labelled_samples(small_cohort):
    from brainlab.analysis.attribute_edits import directions_from_both

    class SizeGan(StubGan):
        latent_dim = 4

        def sample_latent(self, n, seed=0):
            generator = torch.Generator().manual_seed(int(seed))
            return torch.randn(int(n), 4, generator=generator)

        def generate(self, z):  # the stub encoder's 4-d latents, padded to the stub's 8
            return super().generate(torch.nn.functional.pad(torch.as_tensor(z), (0, 4)))

    indices = np.arange(len(small_cohort))
    directions = directions_from_both(StubEncoder(), small_cohort, indices, SizeGan(), 10,
                                      age_model=StubAgeModel())
    assert directions.n_latents == len(small_cohort) + 10
    assert "labelled GAN samples" in directions.source
    assert directions.sex[0] > 0.9  # sex comes from the real subjects only
