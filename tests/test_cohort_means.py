"""Mean brains per sex and age bin, their contrasts, and which subjects judge a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_small_cohort

from brainlab.analysis.cohort_means import (
    age_bin_label, age_contrast, age_contrast_problem, sex_and_age_means, sex_contrast,
)
from brainlab.analysis.judged_subjects import fitting_subjects, judged_subjects, training_indices
from brainlab.errors import BrainlabInputError


def test_means_pool_cells_by_count(small_cohort):
    means = sex_and_age_means(small_cohort, chunk=5)
    images = np.asarray(small_cohort.images)
    table = small_cohort.table
    for sex in ("F", "M"):
        expected = images[(table["sex"] == sex).to_numpy()].mean(axis=0)
        np.testing.assert_allclose(means["sex"][sex], expected, rtol=1e-5, atol=1e-6)
        assert means["sex"][sex].shape == (12, 14, 16)
    codes = sorted(set(table["age_bin"]))
    assert list(means["age_bin"]) == [age_bin_label(small_cohort, c) for c in codes]
    first = age_bin_label(small_cohort, codes[0])
    np.testing.assert_allclose(means["age_bin"][first],
                               images[(table["age_bin"] == codes[0]).to_numpy()].mean(axis=0),
                               rtol=1e-5, atol=1e-6)
    assert sum(means["age_bin_counts"].values()) == len(small_cohort)
    assert means["sex_counts"] == {"F": 12, "M": 12}


def test_contrasts_follow_the_blob_sizes(small_cohort):
    means = sex_and_age_means(small_cohort)
    # Men's blobs are larger, so M − F is positive on average; older blobs are smaller.
    assert sex_contrast(means).mean() > 0
    old, young, ageing = age_contrast(means)
    assert (old, young) == (list(means["age_bin"])[-1], list(means["age_bin"])[0])
    assert ageing.mean() < 0 and ageing.dtype == np.float32


def test_age_contrast_needs_a_sex_in_both_end_bins():
    cohort = make_small_cohort(n=6)
    cohort.table["age_bin"] = [0, 0, 1, 1, 2, 3]   # oldest bin: one woman; youngest: two men
    cohort.table["sex"] = ["M", "M", "F", "M", "F", "F"]
    means = sex_and_age_means(cohort)
    assert age_contrast(means) is None
    assert age_contrast_problem(means) == (
        "No age effect: the oldest bin (36+) holds only women and the youngest (22-25) only "
        "men, so ageing cannot be told apart from sex; a cohort with both sexes in its youngest "
        "and oldest bins shows it.")
    cohort.table["sex"] = ["F", "M", "F", "M", "F", "F"]
    assert age_contrast(sex_and_age_means(cohort)) is not None
    one_bin = make_small_cohort(n=4)
    one_bin.table["age_bin"] = 2
    means = sex_and_age_means(one_bin)
    assert age_contrast(means) is None and "one age bin (31-35)" in age_contrast_problem(means)
    assert sex_contrast({"sex": {"F": means["sex"]["F"]}}) is None


def test_table_only_cohort_has_no_means(small_cohort):
    from dataclasses import replace

    with pytest.raises(BrainlabInputError, match=r"has no images .* expected a cohort with brain images"):
        sex_and_age_means(replace(small_cohort, images=None))


@pytest.mark.parametrize("trained_here", [True, False])
def test_judged_subjects_are_the_test_split_only_on_the_training_cohort(small_cohort, trained_here):
    fingerprint = small_cohort.fingerprint if trained_here else "elsewhere"
    card = {"cohort": {"name": "hcp-ya", "fingerprint": fingerprint, "split_seed": 1}}
    judged = judged_subjects(small_cohort, card)
    split = small_cohort.split(1)
    if trained_here:
        np.testing.assert_array_equal(judged.indices, split.test)
        np.testing.assert_array_equal(training_indices(small_cohort, card), split.train)
        np.testing.assert_array_equal(fitting_subjects(small_cohort, card), split.train)
        assert judged.trained_here and "held-out" in judged.description
    else:
        np.testing.assert_array_equal(judged.indices, np.arange(len(small_cohort)))
        assert training_indices(small_cohort, card) is None
        assert len(fitting_subjects(small_cohort, card)) == len(small_cohort)
        assert judged.description == ("all 24 subjects: the model was trained on cohort hcp-ya, "
                                      "not this one, so it saw none of them")
