"""Attribute directions, edits and map correlations."""

import numpy as np
import pytest

from brainlab.analysis.directions import direction_correlation, edit, fit_direction, orthogonalize
from brainlab.errors import BrainlabInputError


def _planted(d=16, n=400, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=d)
    truth /= np.linalg.norm(truth)
    z = rng.normal(size=(n, d))
    score = z @ truth
    return z, truth, score, rng


def test_binary_direction_recovers_planted_direction():
    z, truth, score, rng = _planted()
    labels = (score + 0.1 * rng.normal(size=len(z)) > 0).astype(int)
    direction = fit_direction(z, labels, kind="binary")
    assert np.linalg.norm(direction) == pytest.approx(1.0)
    assert direction @ truth > 0.9


def test_continuous_direction_recovers_planted_direction():
    z, truth, score, rng = _planted(seed=1)
    age = 30 + 5 * score + rng.normal(size=len(z))
    direction = fit_direction(z, age, kind="continuous")
    assert direction @ truth > 0.9


def test_shuffled_labels_give_no_direction():
    z, truth, score, rng = _planted(seed=2)
    labels = rng.permutation((score > 0).astype(int))
    assert abs(fit_direction(z, labels) @ truth) < 0.5


def test_orthogonalize_removes_other_component():
    rng = np.random.default_rng(3)
    age, sex = rng.normal(size=8), rng.normal(size=8)
    conditional = orthogonalize(age, sex)
    assert np.linalg.norm(conditional) == pytest.approx(1.0)
    assert conditional @ sex == pytest.approx(0.0, abs=1e-12)
    assert conditional @ age > 0
    several = orthogonalize(age, np.stack([sex, rng.normal(size=8)]))
    assert abs(several @ sex) < 1e-12
    with pytest.raises(BrainlabInputError, match="zero"):
        orthogonalize(sex, 2 * sex)


def test_edit_broadcasts():
    direction = np.array([0.0, 1.0, 0.0])
    z = np.array([1.0, 1.0, 1.0], dtype=np.float32)
    np.testing.assert_allclose(edit(z, direction, 2.0), [1, 3, 1])
    path = edit(z, direction, np.array([-1.0, 0.0, 1.0, 2.0]))
    assert path.shape == (4, 3) and path.dtype == np.float32
    np.testing.assert_allclose(path[:, 1], [0, 1, 2, 3])
    batch = edit(np.zeros((2, 3)), direction, np.array([1.0, -1.0]))
    np.testing.assert_allclose(batch[:, 1], [1, -1])
    with pytest.raises(BrainlabInputError, match="one strength per latent"):
        edit(np.zeros((2, 3)), direction, np.ones(3))
    with pytest.raises(BrainlabInputError, match="matching direction"):
        edit(np.zeros(4), direction, 1.0)


def test_direction_correlation():
    rng = np.random.default_rng(4)
    effect = rng.normal(size=(12, 14, 16))
    edit_map = 2.0 * effect + 0.1 * rng.normal(size=effect.shape)
    assert direction_correlation(edit_map, effect) > 0.99
    assert direction_correlation(-edit_map, effect) < -0.99
    mask = np.zeros(effect.shape, bool)
    mask[:6] = True
    noisy = effect.copy()
    noisy[~mask] = rng.normal(size=(~mask).sum())
    assert direction_correlation(noisy, effect, mask=mask) == pytest.approx(1.0)
    assert np.isnan(direction_correlation(np.zeros(effect.shape), effect))
    with pytest.raises(BrainlabInputError, match="same shape"):
        direction_correlation(effect, effect[:, :, :15])


def test_fit_direction_errors():
    z = np.zeros((6, 3))
    with pytest.raises(BrainlabInputError, match="exactly 2 label classes"):
        fit_direction(z, np.arange(6))
    with pytest.raises(BrainlabInputError, match="one entry per latent"):
        fit_direction(z, np.zeros(5))
    with pytest.raises(BrainlabInputError, match="kind must be"):
        fit_direction(z, np.r_[np.zeros(3), np.ones(3)], kind="ordinal")
    with pytest.raises(BrainlabInputError, match="constant"):
        fit_direction(np.ones((6, 3)), np.full(6, 30.0), kind="continuous")
