"""Sharpness metrics of reconstructions (issue 11): high-frequency energy ratio and the
texture two-sample AUC with its CI, and the MRI autoencoder's card showing both beside
the PCA baseline."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from brainlab.analysis.evaluation import evaluate_autoencoder
from brainlab.analysis.metrics import (high_frequency_energy, high_frequency_ratio,
                                       texture_two_sample_auc)
from brainlab.errors import BrainlabInputError
from test_autoencoder_sharp import fitted

SHAPE = (12, 14, 16)
MASK = np.zeros(SHAPE, bool)
MASK[2:10, 2:12, 3:13] = True


def noisy_volumes(n, seed):
    rng = np.random.default_rng(seed)
    smooth = np.stack([gaussian_filter(rng.random(SHAPE), 2.0) for _ in range(n)])
    return smooth + 0.05 * rng.standard_normal((n, *SHAPE))


def test_high_frequency_ratio_is_one_for_real_and_low_for_blurred():
    real = noisy_volumes(6, 0)
    blurred = np.stack([gaussian_filter(v, 1.5) for v in real])
    assert high_frequency_ratio(real, real, MASK)["hf_energy_ratio"] == pytest.approx(1.0)
    assert high_frequency_ratio(blurred, real, MASK)["hf_energy_ratio"] < 0.3
    assert high_frequency_energy(real, MASK).shape == (6,)


def test_texture_auc_separates_blurred_but_not_equally_noisy_volumes():
    real, other = noisy_volumes(12, 0), noisy_volumes(12, 1)
    blurred = np.stack([gaussian_filter(v, 1.5) for v in real])
    groups = np.r_[np.arange(12), np.arange(12)]
    sharp = texture_two_sample_auc(real, blurred, MASK, groups=groups)
    same = texture_two_sample_auc(real, other, MASK)
    assert sharp["auc"] > 0.95 and sharp["low"] <= sharp["auc"] <= sharp["high"]
    assert same["low"] < 0.5 + 0.3 and same["auc"] < sharp["auc"]
    assert sharp["n_real"] == sharp["n_generated"] == 12


def test_texture_auc_checks_its_inputs():
    real = noisy_volumes(4, 0)
    with pytest.raises(BrainlabInputError, match="need >= 2 real and >= 2 generated volumes; found 4 and 1"):
        texture_two_sample_auc(real, real[:1], MASK)
    with pytest.raises(BrainlabInputError, match=r"groups must give one label per volume \(8\)"):
        texture_two_sample_auc(real, real, MASK, groups=np.arange(3))
    with pytest.raises(BrainlabInputError, match="mask has shape"):
        high_frequency_energy(real, MASK[:5])


def test_autoencoder_card_shows_sharpness_beside_the_pca_baseline(small_cohort):
    model, _ = fitted(small_cohort)
    model.eval()
    split = small_cohort.split(0)
    metrics = evaluate_autoencoder(model, small_cohort, split.test, train_indices=split.train)
    for key in ("hf_energy_ratio", "baseline_pca_hf_energy_ratio"):
        assert np.isfinite(metrics[key]) and metrics[key] > 0
    assert len(split.test) >= 4  # enough subjects for the two-sample test to run
    for prefix in ("", "baseline_pca_"):
        low, auc, high = (metrics[f"{prefix}texture_auc{s}"] for s in ("_low", "", "_high"))
        assert 0.0 <= low <= auc <= high <= 1.0
