"""Phantom v2 (PHANTOM.md "v2 targets"): directions and rough sizes of the effects as
re-measured from the images, on a small HCP-YA-like cohort on a coarse grid."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from brainlab.analysis.cohort_validation import (
    adjusted_d, allometry_slope, partial_correlation, standard_measures,
)
from brainlab.data.phantom import PHANTOM_PRESETS, load_phantom

# HCP-YA ages and sex mix, 300 subjects on a ≈6 mm grid: seconds, not minutes.
HCP_SMALL = dataclasses.replace(PHANTOM_PRESETS["hcp-ya"], name="hcp-small",
                                grid_shape=(29, 35, 29), female_counts=(30, 65, 65, 2),
                                male_counts=(50, 50, 36, 2))


@pytest.fixture(scope="module")
def small():
    cohort = load_phantom(HCP_SMALL)
    measures, _ = standard_measures(cohort)
    return cohort, measures, cohort.male_mask()


def _age_rate(measures, cohort, male, name):
    """Log change per 4.5 years of ``name``, adjusted for sex and ICV (OLS)."""
    years = cohort.table["age"].to_numpy(float)
    design = np.column_stack([np.ones(len(years)), years / 4.5, male.astype(float),
                              np.log(measures["icv"])])
    coef, *_ = np.linalg.lstsq(design, np.log(measures[name].to_numpy(float)), rcond=None)
    return coef[1]


def test_new_columns_are_measured(small):
    cohort, measures, _ = small
    for column in ("amygdala_cc", "putamen_cc", "accumbens_cc", "cortical_thickness_mm"):
        assert column in cohort.table.columns, column
        # A ≈6 mm grid can miss the amygdala in a subject; on average it is there.
        assert (cohort.table[column] >= 0).all() and cohort.table[column].mean() > 0, column
    # SubCortGray-like: nuclei + hippocampus + amygdala, tens of cc (v1 measured ≈ 11).
    assert 35 < measures["subcortical_gm"].mean() < 90


def test_men_have_more_grey_matter_than_their_head_size_predicts(small):
    _, measures, male = small
    assert adjusted_d(measures["total_gm"], measures["icv"], male) > 0.1  # v1: −0.02
    # ...but not larger ventricles beyond their head size (v1: +0.24).
    assert abs(adjusted_d(measures["ventricles"], measures["icv"], male)) < 0.5


def test_grey_matter_scales_less_than_icv_and_thickness_not_at_all(small):
    _, measures, male = small
    slope = allometry_slope(measures["total_gm"], measures["icv"], male)
    assert 0.3 < slope < 0.85  # v1: 0.97
    thickness = allometry_slope(measures["thickness"], measures["icv"], male)
    assert abs(thickness) < 0.2  # v1: 0.30, the proxy scaled with head size
    ratio = measures["total_gm"] / measures["icv"]
    assert ratio[~male].mean() > ratio[male].mean()


def test_grey_and_white_matter_share_a_brain_size_factor(small):
    _, measures, male = small
    r = partial_correlation(measures["total_gm"], measures["cerebral_wm"], measures["icv"], male)
    assert r > 0.1  # v1: −0.35


def test_ageing_within_young_adults(small):
    cohort, measures, male = small
    assert _age_rate(measures, cohort, male, "cerebral_wm") > 0
    assert _age_rate(measures, cohort, male, "ventricles") > 0
    assert _age_rate(measures, cohort, male, "cortical_gm") < 0


def test_brains_sit_lower_and_men_lower_than_women():
    from brainlab.data.phantom import generator

    assert generator.CENTRE_SHIFT_MM < 0 and generator.SEX_SHIFT_VOXELS > 0
    cohort = load_phantom(HCP_SMALL)
    images = np.asarray(cohort.images[:], dtype=np.float32)
    male = cohort.male_mask()
    z = np.arange(images.shape[-1])

    def centre_z(chosen):
        mass = (images[chosen] > 0).sum(axis=(0, 1, 2)).astype(float)
        return float((mass * z).sum() / mass.sum())

    assert centre_z(male) < centre_z(~male)


def test_the_cerebrum_is_drawn_back_from_the_mask_keeping_its_ribbon_and_its_centre():
    """A ball of WM in a 3-voxel GM ribbon, filling its mask: afterwards the ribbon starts
    SHELL_MM inside the mask, keeps its thickness, the core is untouched and CSF fills
    the gap; a region listed as kept (here the lower half, as 'cerebellum') stays put."""
    from brainlab.data.phantom import anatomy

    n, radius = 64, 26.0
    grid = np.indices((n, n, n), dtype=np.float32) - (n - 1) / 2
    r = np.sqrt((grid ** 2).sum(0))
    mask = (r <= radius).astype(np.float32)
    gm = ((r > radius - 3) & (r <= radius)).astype(np.float32)
    wm = (r <= radius - 3).astype(np.float32)
    t1 = wm + 0.73 * gm
    labels = np.where(mask > 0, anatomy.REGION_ID["frontal_left"], 0).astype(np.int16)
    labels[(mask > 0) & (grid[2] < -10)] = anatomy.REGION_ID["cerebellum_left"]
    gm2, wm2, csf2, t12, labels2 = anatomy._draw_back_cerebrum(gm, wm, t1, labels, mask)

    top = (slice(None), slice(None), slice(n // 2 + 2, None))  # the drawn-back half
    ray = [r[top][(gm2[top] > 0.5)].max(), r[top][(gm2[top] > 0.5)].min()]
    assert radius - anatomy.SHELL_MM - 1.5 <= ray[0] <= radius - anatomy.SHELL_MM + 1.0
    assert 2.0 <= ray[0] - ray[1] <= 4.5  # the ribbon keeps its thickness
    core = r < radius - anatomy.SHELL_DEEP_MM + 1
    np.testing.assert_allclose(wm2[core], wm[core], atol=1e-5)
    assert (csf2[top][(r[top] > radius - 2) & (mask[top] > 0)] > 0.9).mean() > 0.9
    np.testing.assert_allclose(gm2 + wm2 + csf2, mask, atol=1e-4)  # the mask is unchanged
    bottom = (mask > 0) & (grid[2] < -24)  # deep inside the kept region, far from the rest
    np.testing.assert_allclose(gm2[bottom], gm[bottom], atol=1e-3)
    # Nearest-neighbour labels next to a linearly interpolated mask leave a thin edge of
    # unlabelled voxels (0.07% of the real template's GM); none may be more than that.
    assert (labels2[mask > 0] == 0).mean() < 0.01


def test_thickness_proxy_divides_by_a_hyperscaling_area(small):
    """Cortical GM over (GM + WM)^CORTEX_AREA_EXPONENT, one scale for every subject."""
    from brainlab.data.phantom.morphometry import CORTEX_AREA_EXPONENT

    cohort, _, _ = small
    t = cohort.table
    ratio = t["cortical_thickness_mm"] / (t["cortical_gm_cc"]
                                          / (t["gm_cc"] + t["wm_cc"]) ** CORTEX_AREA_EXPONENT)
    assert ratio.std() / ratio.mean() < 1e-6


def test_brain_extent_is_read_on_tissue_not_on_the_csf_around_it():
    from brainlab.analysis.cohort_validation import tissue_masks

    image = np.zeros((1, 20, 20, 20), np.float32)
    image[0, 3:17, 3:17, 3:17] = 0.31   # CSF rim that a brain mask may keep
    image[0, 6:14, 6:14, 6:14] = 1.0    # WM
    image[0, 6:14, 6:14, 6] = 0.73      # a GM face
    tissue = tissue_masks(image)[0]
    assert tissue.sum() == 8 * 8 * 8
    assert not tissue[3:6].any()
