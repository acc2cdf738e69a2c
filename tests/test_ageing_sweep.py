"""The ageing sweep: one z across ages, the cohort's true frames and the change sizes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from brainlab.analysis.ageing_sweep import (ageing_summary, ageing_sweep, brain_volume_cc,
                                            changed_voxels, nearest_bins, parse_sweep,
                                            sweep_ages, voxel_cc)
from brainlab.errors import BrainlabInputError
from brainlab.models.gan import LatentGan
from brainlab.training.gan_steps import ConditionalLatentGanSteps, condition_config_for
from tests.test_gan import GRID, TINY_GAN, fitted_autoencoder, toy_cohort


@pytest.fixture(scope="module")
def cohort():
    """The toy cohort with two age bins that follow its ages (22-29, 30-36 years)."""
    toy = toy_cohort()
    table = toy.table.assign(age_bin=(toy.table["age"] >= 30).astype(int))
    return replace(toy, table=table, age_bin_labels=("20-29", "30-39"))


@pytest.fixture(scope="module")
def gan(cohort):
    torch.manual_seed(0)
    model = LatentGan.from_autoencoder(fitted_autoencoder(cohort),
                                       condition_config_for(cohort, TINY_GAN))
    ConditionalLatentGanSteps(model).fit_statistics(cohort, np.arange(16))
    return model


@pytest.mark.parametrize("text, expected", [("20:90:8", (20.0, 90.0, 8)),
                                            ("30:40:2", (30.0, 40.0, 2))])
def test_parse_sweep(text, expected):
    assert parse_sweep(text) == expected


@pytest.mark.parametrize("text", ["20:90", "90:20:4", "20:90:1", "a:b:c"])
def test_parse_sweep_rejects(text):
    with pytest.raises(BrainlabInputError, match="START:STOP:FRAMES|STOP > START"):
        parse_sweep(text)


def test_sweep_ages_stay_in_the_model_range(gan):
    low, high = gan.condition_spec.age_range
    assert sweep_ages(gan, count=3) == pytest.approx([low, (low + high) / 2, high], abs=0.05)
    with pytest.raises(BrainlabInputError, match="outside the conditioned range"):
        sweep_ages(gan, low - 5, high, 3)


def test_sweep_holds_z_and_moves_age(gan, cohort):
    ages = sweep_ages(gan, count=4)
    sweep = ageing_sweep(gan, "M", ages, seed=3, cohort=cohort)
    assert sweep.generated.shape == (4, *GRID)
    assert sweep.true.shape == (4, *GRID)
    assert sweep.voxels_changed[0] == 0
    assert not np.allclose(sweep.generated[0], sweep.generated[-1])
    # Youngest frame's true brain is the mean of the young men.
    young = nearest_bins(cohort, ages[:1], "years", "M")[0]
    rows = (cohort.table["sex"] == "M").to_numpy() & (cohort.table["age_bin"] == young).to_numpy()
    expected = np.mean([cohort.images[int(r)] for r in np.flatnonzero(rows)], axis=0)
    assert np.allclose(sweep.true[0], expected, atol=1e-5)
    assert "voxels change" in ageing_summary(sweep)
    assert -1.0 <= sweep.map_correlation <= 1.0
    assert f"r = {sweep.map_correlation:+.2f}" in ageing_summary(sweep)


def test_sweep_reads_true_frames_from_the_cohort_means(gan, cohort):
    from brainlab.analysis.cohort_means import sex_and_age_means

    ages = sweep_ages(gan, count=3)
    means = sex_and_age_means(cohort)
    computed = ageing_sweep(gan, "F", ages, seed=1, cohort=cohort)
    stored = ageing_sweep(gan, "F", ages, seed=1, cohort=cohort, means=means)
    assert np.allclose(stored.true, computed.true, atol=1e-5)
    # The frames are the stored cells themselves, not a fresh average of the images.
    marked = {"sex_by_age_bin": {label: np.full_like(cell, float(i + 1))
                                 for i, (label, cell) in enumerate(means["sex_by_age_bin"].items())}}
    frames = ageing_sweep(gan, "F", ages, seed=1, cohort=cohort, means=marked).true
    bins = nearest_bins(cohort, ages, "years", "F")
    labels = list(means["sex_by_age_bin"])
    expected = [labels.index(f"{cohort.age_bin_labels[b]}|F") + 1.0 for b in bins]
    assert [float(frame.flat[0]) for frame in frames] == expected
    # A means dict without the needed cells falls back to averaging the images.
    partial = {"sex_by_age_bin": {}}
    assert np.allclose(ageing_sweep(gan, "F", ages, seed=1, cohort=cohort, means=partial).true,
                       computed.true, atol=1e-5)


def test_nearest_bins_skip_bins_without_that_sex(cohort):
    only_young_women = cohort.table[(cohort.table["sex"] == "M") | (cohort.table["age_bin"] == 0)]
    thinned = replace(cohort, table=only_young_women.reset_index(drop=True), images=None)
    assert nearest_bins(thinned, [35.0], "years", "F") == [0]
    assert nearest_bins(thinned, [1], "bins", "F") == [0]
    assert nearest_bins(thinned, [35.0], "years", "M") == [1]


def test_change_sizes_count_voxels_and_cc():
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    assert voxel_cc(affine) == pytest.approx(0.01)
    volumes = np.zeros((2, 3, 4, 5), dtype=np.float32)
    volumes[1, 0, 0, :2] = 0.5
    assert changed_voxels(volumes, volumes[0]) == [0, 2]
    assert brain_volume_cc(volumes, affine) == pytest.approx([0.0, 0.02])
