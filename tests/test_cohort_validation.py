"""cohort validation on tables with planted effects (phantom and FreeSurfer column names)."""

import numpy as np
import pandas as pd
import pytest

from brainlab.analysis.cohort_validation import (Residualiser, adjusted_d, cohen_d,
                                                 standard_measures, summary, validate_cohort)
from brainlab.data.cohort import Cohort
from brainlab.data.grid import mni_affine
from brainlab.errors import BrainlabInputError

GRID = (12, 14, 16)


def planted_table(n=900, seed=0, sex_beyond_icv=True):
    """Morphometry with HCP-YA-like effects planted: ICV d ≈ 1.7; GM ∝ ICV^0.6 with an
    ICV-adjusted sex d of 0.8 (or ICV^1 and no sex effect beyond ICV); GM and WM
    residuals correlated +0.49; WM +2% per 4.5 years of age."""
    rng = np.random.default_rng(seed)
    male = rng.random(n) < 0.45
    age = rng.uniform(22, 37, n)
    log_icv = np.log(1471) + male * np.log(1708 / 1471) + rng.normal(0, 0.085, n)
    delta = log_icv - np.log(1471)
    shared = rng.normal(size=n)
    gm_slope, gm_sex = (0.6, 0.8 * 0.04) if sex_beyond_icv else (1.0, 0.0)
    log_gm = (np.log(646) + gm_slope * delta + gm_sex * male
              + 0.04 * (0.7 * shared + 0.714 * rng.normal(size=n)))
    log_wm = (np.log(415) + 0.9 * delta + 0.5 * 0.05 * male + np.log(1.02) * age / 4.5
              + 0.05 * (0.7 * shared + 0.714 * rng.normal(size=n)))
    hippocampus = np.exp(np.log(4.25) + 0.5 * delta + rng.normal(0, 0.09, (2, n)))
    table = pd.DataFrame({
        "subject_id": [f"s{i:04d}" for i in range(n)], "sex": np.where(male, "M", "F"),
        "age": age.round(2), "age_bin": np.digitize(age, [26, 31, 36]),
        "icv_cc": np.exp(log_icv), "gm_cc": np.exp(log_gm), "cerebral_wm_cc": np.exp(log_wm),
        "hippocampus_left_cc": hippocampus[0], "hippocampus_right_cc": hippocampus[1],
        "hippocampus_cc": hippocampus.sum(0),
    })
    table["brain_cc"] = table["gm_cc"] + table["cerebral_wm_cc"]
    return table


def _cohort(table, name="planted"):
    return Cohort(name, table, mni_affine(GRID))


def _rows(cohort, **options):
    return {row.name: row for row in validate_cohort(cohort, **options)}


@pytest.fixture(scope="module")
def planted_rows():
    return _rows(_cohort(planted_table()))


def test_planted_effects_are_recovered(planted_rows):
    rows = planted_rows
    assert rows["ICV d (M vs F)"].measured == pytest.approx(1.75, abs=0.2)
    gm = rows["ICV-adjusted sex d, total GM"]
    assert gm.measured == pytest.approx(0.8, abs=0.15) and gm.passed
    assert rows["ICV-adjusted sex d, cerebral WM"].measured == pytest.approx(0.5, abs=0.15)
    assert rows["GM allometry slope vs ICV"].measured == pytest.approx(0.6, abs=0.06)
    assert rows["corr(GM, WM | sex, ICV)"].measured == pytest.approx(0.49, abs=0.08)
    assert rows["ageing rate per bin, cerebral WM (%)"].measured == pytest.approx(2.0, abs=0.6)
    assert rows["hippocampus L+R log-SD"].measured < 0.09  # two sides' noise averages out
    assert rows["GM/ICV higher in women"].measured > 0


def test_no_sex_effect_beyond_icv_fails_the_targets():
    rows = _rows(_cohort(planted_table(sex_beyond_icv=False, seed=1)))
    gm = rows["ICV-adjusted sex d, total GM"]
    assert abs(gm.measured) < 0.2 and gm.passed is False
    slope = rows["GM allometry slope vs ICV"]
    assert slope.measured == pytest.approx(1.0, abs=0.06) and slope.passed is False
    # Without sex effects beyond head size, ICV-residualised features are near chance.
    assert rows["sex LR, all features, ICV regressed out"].measured < 0.6


def test_missing_inputs_are_reported_not_raised(planted_rows):
    rows = planted_rows
    assert rows["ICV-adjusted sex d, amygdala"].measured is None
    assert rows["ICV-adjusted sex d, amygdala"].note == "n/a (needs amygdala volume)"
    assert rows["thickness sex d, raw"].note == "n/a (needs mean cortical thickness)"
    assert rows["grid"].note == "n/a (needs images)"
    assert rows["deep GM / WM intensity, mean image"].note == "n/a (needs images on the MNI grid)"
    assert rows["lifespan ageing rates"].passed is None  # ages stop at 37
    counts = summary(list(rows.values()))
    assert counts["total"] == len(rows) and counts["not_available"] > 5
    assert counts["passed"] + counts["failed"] + counts["reported"] + counts["not_available"] == len(rows)


def test_freesurfer_names_map_to_the_same_measures():
    table = planted_table(n=200, seed=2)
    fs = table[["subject_id", "sex", "age", "age_bin"]].copy()
    fs["FS_IntraCranial_Vol"] = table["icv_cc"] * 1000
    fs["FS_Total_GM_Vol"] = table["gm_cc"] * 1000
    fs["FS_Tot_WM_Vol"] = table["cerebral_wm_cc"] * 1000
    fs["FS_L_Hippo_Vol"] = table["hippocampus_left_cc"] * 1000
    fs["FS_R_Hippo_Vol"] = table["hippocampus_right_cc"] * 1000
    fs["FS_L_Insula_Thck"], fs["FS_R_Insula_Thck"] = 2.5, 2.8
    fs["FS_L_Insula_Area"], fs["FS_R_Insula_Area"] = 1000.0, 3000.0
    measures, source = standard_measures(_cohort(fs))
    np.testing.assert_allclose(measures["icv"], table["icv_cc"])
    np.testing.assert_allclose(measures["hippocampus"], table["hippocampus_cc"])
    np.testing.assert_allclose(measures["thickness"], 2.725)  # area-weighted
    assert "mm³ -> cc" in source["icv"] and "area-weighted" in source["thickness"]
    phantom_rows, fs_rows = _rows(_cohort(table)), _rows(_cohort(fs))
    name = "ICV-adjusted sex d, total GM"
    assert fs_rows[name].measured == pytest.approx(phantom_rows[name].measured)


def test_column_overrides_and_errors():
    table = planted_table(n=120, seed=3).rename(columns={"icv_cc": "eTIV"})
    rows = _rows(_cohort(table))
    assert rows["ICV d (M vs F)"].note == "n/a (needs icv volume)"
    rows = _rows(_cohort(table), columns={"icv": "eTIV"})
    assert rows["ICV d (M vs F)"].measured > 1
    with pytest.raises(BrainlabInputError, match="column 'TIV' given for icv"):
        validate_cohort(_cohort(table), columns={"icv": "TIV"})
    with pytest.raises(BrainlabInputError, match="unknown measure names"):
        validate_cohort(_cohort(table), columns={"skull": "eTIV"})
    bare = table[["subject_id", "sex", "age", "age_bin"]]
    with pytest.raises(BrainlabInputError, match="no morphometry columns"):
        validate_cohort(_cohort(bare))
    one_sex = table.assign(sex="F")
    with pytest.raises(BrainlabInputError, match="needs at least 2 of each sex"):
        validate_cohort(_cohort(one_sex))


def test_effect_size_helpers():
    male = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    values = np.r_[np.full(50, 1.0), np.full(50, 0.0)] + np.tile([-1.0, 1.0], 50)
    assert cohen_d(values, male) == pytest.approx(1.0, abs=0.02)
    size = np.exp(np.random.default_rng(4).normal(0, 0.1, 100))
    # A measure exactly proportional to size has no effect beyond it.
    noise = np.exp(np.random.default_rng(5).normal(0, 0.01, 100))
    assert abs(adjusted_d(2.0 * size * noise, size, male)) < 0.5


def test_residualiser_removes_the_covariate_inside_a_fold():
    rng = np.random.default_rng(6)
    covariate = rng.normal(size=(40, 1))
    features = 3.0 * covariate + rng.normal(0, 0.1, (40, 2))
    residuals = Residualiser(1).fit(np.hstack([covariate, features])).transform(
        np.hstack([covariate, features]))
    assert residuals.shape == (40, 2)
    assert abs(np.corrcoef(residuals[:, 0], covariate[:, 0])[0, 1]) < 1e-6


def test_tiny_phantom_with_images(tiny):
    rows = _rows(tiny)
    assert rows["grid"].passed is False and "12x14x16" in rows["grid"].note
    assert rows["ICV d (M vs F)"].measured > 0.5
    ratio = rows["deep GM / WM intensity, mean image"]
    assert ratio.measured is not None and 0.5 < ratio.measured < 1.1
    assert rows["brain extent / v1 hcp-ya extent"].note.startswith("n/a (needs the 58×70×58")


def test_a_lifespan_table_is_judged_on_its_young_adults():
    young = planted_table(n=300, seed=7)
    old = planted_table(n=200, seed=8).assign(age=lambda t: t["age"] + 40.0)
    old["subject_id"] = "old-" + old["subject_id"]
    old["gm_cc"] *= np.exp(-0.007 * (old["age"] - 60))  # -0.7%/y after 60
    rows = _rows(_cohort(pd.concat([young, old], ignore_index=True)))
    assert rows["HCP-YA targets measured on ages 22-37 only"].measured == 300
    assert rows["ICV-adjusted sex d, total GM"].measured == pytest.approx(0.8, abs=0.25)
    late = rows["ageing rate, total GM, ages 60-90 (%/y)"]
    assert late.measured == pytest.approx(-0.7, abs=0.15) and late.passed
    assert rows["WM peak age (y)"].passed is not True  # no inverted U was planted


def test_repeated_cv_is_steadier_than_one_split_and_says_so():
    """The LR figures average several fold seeds: their spread over seeds is reported, and
    the mean sits closer to the many-seed figure than a single split typically does."""
    from brainlab.analysis.cohort_validation import (CV_REPEATS, _balanced_accuracy,
                                                     cross_validated_probabilities,
                                                     repeated_cv_scores)

    rng = np.random.default_rng(7)
    n = 300
    y = (rng.random(n) < 0.5).astype(int)
    x = y[:, None] * 0.5 + rng.normal(size=(n, 3))
    singles = [_balanced_accuracy(y, cross_validated_probabilities(x, y, fold_seed=s))
               for s in range(40)]
    scores = repeated_cv_scores(x, y)
    assert scores["balanced_accuracy_sd"] > 0.0  # the seeds do differ on this table
    assert scores["balanced_accuracy"] == pytest.approx(np.mean(singles[:CV_REPEATS]))
    assert 0.5 < scores["auc"] <= 1.0
    # The repeated mean's error against the long-run figure is below one split's typical error.
    long_run = float(np.mean(singles))
    assert abs(scores["balanced_accuracy"] - long_run) < np.std(singles)


def test_sex_lr_rows_report_their_spread_over_fold_seeds(planted_rows):
    row = planted_rows["sex LR, all features"]
    assert "fold seeds (sd " in row.note
    assert "fold seeds (sd " in planted_rows["youngest vs oldest AUC, F"].note
