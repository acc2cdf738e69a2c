"""Does a cohort look like HCP Young Adult? Every "v2 target" of PHANTOM.md, measured.

``validate_cohort(cohort)`` returns one ``ValidationRow`` per target: its name,
the target as PHANTOM.md states it, the measured value, pass/fail and a note
that says how it was measured (or why it could not be: ``n/a (needs X)``).
It runs on any cohort with a morphometry table: the phantom presets (columns
such as ``icv_cc``) and FreeSurfer tables (``FS_*`` columns, mm³), mapped to one
set of named measures by ``standard_measures``.

How the figures are computed (the same for every cohort):
- Cohen's d is male minus female over the pooled within-sex sd.
- "ICV-adjusted d" (log-log adjustment): OLS of log(measure) on
  [1, log ICV, male]; d = male coefficient / residual sd (an ANCOVA d).
- allometry slopes: the log ICV coefficient of that same model (within sex).
- partial correlations: Pearson r of the residuals of log measures on
  [1, log ICV, male].
- sex classifiers: StandardScaler -> LogisticRegression, stratified 5-fold,
  balanced accuracy averaged over ``CV_REPEATS`` fold seeds; "residualised"
  pipelines regress the features on the size measures inside each training fold
  (``Residualiser``).
- brain extent: the bounding box of brain tissue (``tissue_masks``) present in more
  than half of the subjects, so CSF that a skull-stripped image keeps around the
  brain does not count.
- ageing: OLS of log(measure) on [1, age units, male, log ICV] over subjects
  aged 22-37, with age units = years / 4.5 (or the ordinal HCP age bin when only
  bins are known); rate = exp(coefficient) - 1 per bin.
- a cohort that is not young-adult (ages below 20 or from 40, e.g. ``lifespan``)
  is judged on its subjects aged 22-37 for the HCP-YA targets; its whole age
  range feeds the "lifespan ageing" group (PHANTOM.md's subject-variation table).
Pass ranges are brainlab's tolerance around PHANTOM.md's figures (each row
shows the range it used); where PHANTOM.md gives a range it is used as is.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainlab.data.cohort import HCP_AGE_BINS
from brainlab.data.grid import HCP_GRID_SHAPE, mni_affine
from brainlab.errors import BrainlabInputError

N_FOLDS = 5
FOLD_SEED = 0
# Cross-validation repeated over this many fold seeds and averaged: one 5-fold split
# moves an LR figure by ±0.01-0.03, enough to flip a pass at its bound.
CV_REPEATS = 5
# Subjects per class (and per fold) below which a classifier figure is not computed.
MIN_PER_CLASS = N_FOLDS
# "Per age bin" in PHANTOM.md: HCP bins are about 4.5 years apart.
YEARS_PER_BIN = 4.5
YOUNG_ADULT_AGES = (22.0, 37.0)
YOUNGEST_AGES, OLDEST_AGES = (22.0, 26.0), (31.0, 36.0)

# HCP Young Adult counts (PHANTOM.md presets): per bin 22-25, 26-30, 31-35, 36+.
HCP_FEMALE_COUNTS = (84, 265, 248, 9)
HCP_MALE_COUNTS = (147, 221, 135, 4)

# The v1 hcp-ya phantom's mean brain on the 58x70x58 grid (``image_geometry``,
# measured 2026-12-01, PHANTOM_VERSION 2): PHANTOM.md's extent and position
# targets are relative to it.
V1_EXTENT_MM = 153.3
V1_CENTRE_Z_MM = 9.7


@dataclass(frozen=True)
class ValidationRow:
    """One target: ``measured`` is None and ``passed`` None when it could not be measured;
    ``passed`` is None also for figures reported without a pass range."""

    group: str
    name: str
    target: str
    measured: float | None
    passed: bool | None
    note: str = ""
    low: float | None = None
    high: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ named measures

def _fs(*columns: str, scale: float = 1e-3):
    return ("sum", columns, scale)


# measure -> alternatives, first available wins: ("sum", columns, scale) or a function name.
MEASURES: dict[str, tuple] = {
    "icv": (_fs("icv_cc", scale=1.0), _fs("FS_IntraCranial_Vol")),
    "brain": (_fs("brain_cc", scale=1.0), _fs("FS_BrainSeg_Vol_No_Vent")),
    "total_gm": (_fs("gm_cc", scale=1.0), _fs("FS_Total_GM_Vol")),
    "cortical_gm": (_fs("cortical_gm_cc", scale=1.0), _fs("FS_TotCort_GM_Vol")),
    "cerebral_wm": (_fs("cerebral_wm_cc", scale=1.0), _fs("FS_Tot_WM_Vol"),
                    _fs("FS_L_WM_Vol", "FS_R_WM_Vol")),
    "subcortical_gm": (_fs("subcortical_gm_cc", scale=1.0), _fs("FS_SubCort_GM_Vol")),
    "hippocampus_left": (_fs("hippocampus_left_cc", scale=1.0), _fs("FS_L_Hippo_Vol")),
    "hippocampus_right": (_fs("hippocampus_right_cc", scale=1.0), _fs("FS_R_Hippo_Vol")),
    "hippocampus": (_fs("hippocampus_cc", scale=1.0), _fs("FS_L_Hippo_Vol", "FS_R_Hippo_Vol")),
    "cerebellar_gm": (_fs("cerebellum_gm_cc", scale=1.0),
                      _fs("FS_L_Cerebellum_Cort_Vol", "FS_R_Cerebellum_Cort_Vol")),
    "cerebellar_wm": (_fs("cerebellum_wm_cc", scale=1.0),
                      _fs("FS_L_Cerebellum_WM_Vol", "FS_R_Cerebellum_WM_Vol")),
    "amygdala": (_fs("amygdala_cc", scale=1.0), _fs("FS_L_Amygdala_Vol", "FS_R_Amygdala_Vol")),
    "putamen": (_fs("putamen_cc", scale=1.0), _fs("FS_L_Putamen_Vol", "FS_R_Putamen_Vol")),
    "accumbens": (_fs("accumbens_cc", scale=1.0),
                  _fs("FS_L_AccumbensArea_Vol", "FS_R_AccumbensArea_Vol")),
    "ventricles": (_fs("ventricles_cc", scale=1.0), _fs("FS_L_LatVent_Vol", "FS_R_LatVent_Vol")),
    "brainstem": (_fs("brainstem_cc", scale=1.0), _fs("FS_BrainStem_Vol")),
    "thickness": (_fs("cortical_thickness_mm", scale=1.0), _fs("mean_thickness_mm", scale=1.0),
                  ("freesurfer_mean_thickness",)),
    "surface": (_fs("brain_surface_cm2", scale=1.0), ("freesurfer_total_area",)),
}
MEASURE_UNITS = {"thickness": "mm", "surface": "cm²"}
# Measures of overall size: regressed out for the "size-residualised" sex classifier.
SIZE_MEASURES = ("icv", "brain", "total_gm", "cortical_gm", "cerebral_wm", "surface")


def _freesurfer_thickness_columns(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    thickness = [c for c in table.columns if str(c).startswith("FS_") and str(c).endswith("_Thck")]
    areas = [c[: -len("_Thck")] + "_Area" for c in thickness]
    if not thickness or not all(a in table.columns for a in areas):
        return [], []
    return thickness, areas


def _derived(kind: str, table: pd.DataFrame) -> pd.Series | None:
    thickness, areas = _freesurfer_thickness_columns(table)
    if not thickness:
        return None
    area = table[areas].to_numpy(float)
    if kind == "freesurfer_total_area":
        return pd.Series(area.sum(axis=1) / 100.0, index=table.index)  # mm² -> cm²
    # FreeSurfer's mean thickness is area-weighted over the parcels.
    weighted = (table[thickness].to_numpy(float) * area).sum(axis=1) / area.sum(axis=1)
    return pd.Series(weighted, index=table.index)


def standard_measures(cohort, columns: dict[str, str] | None = None
                      ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Named measures (cc, thickness in mm) from a cohort's morphometry table.

    Returns (frame with one column per measure found, {measure: how it was read}).
    ``columns`` maps a measure name to a column of the table, overriding the
    built-in phantom / FreeSurfer names.
    """
    table = cohort.table
    unknown = sorted(set(columns or {}) - set(MEASURES))
    if unknown:
        raise BrainlabInputError(
            f"unknown measure names {unknown}; expected some of {', '.join(MEASURES)}")
    out, source = {}, {}
    for name, alternatives in MEASURES.items():
        if columns and name in columns:
            column = columns[name]
            if column not in table.columns:
                raise BrainlabInputError(
                    f"column {column!r} given for {name} is not in the table of "
                    f"{cohort.name!r}; found columns such as {list(table.columns)[4:12]}")
            alternatives = (_fs(column, scale=1.0),)
        for spec in alternatives:
            if spec[0] == "sum":
                _, names, scale = spec
                if all(c in table.columns for c in names):
                    values = sum(pd.to_numeric(table[c], errors="coerce") for c in names) * scale
                    out[name] = values.astype(float)
                    source[name] = " + ".join(names) + (f" (mm³ -> cc)" if scale == 1e-3 else "")
                    break
            else:
                values = _derived(spec[0], table)
                if values is not None:
                    out[name] = values
                    source[name] = {"freesurfer_mean_thickness": "area-weighted mean of FS_*_Thck",
                                    "freesurfer_total_area": "sum of FS_*_Area (mm² -> cm²)"}[spec[0]]
                    break
    return pd.DataFrame(out, index=table.index), source


def feature_matrix(cohort) -> tuple[np.ndarray, list[str]]:
    """All numeric, finite, non-constant morphometry columns as (n, p) float."""
    table = cohort.table[cohort.morphometry_columns].apply(pd.to_numeric, errors="coerce")
    keep = [c for c in table.columns
            if table[c].notna().all() and np.isfinite(table[c]).all() and table[c].std() > 0]
    return table[keep].to_numpy(float), keep


# ------------------------------------------------------------------ statistics

def cohen_d(values, male) -> float:
    """Male minus female mean over the pooled within-sex sd."""
    values = np.asarray(values, float)
    male = np.asarray(male, bool)
    m, f = values[male], values[~male]
    pooled = math.sqrt(((len(m) - 1) * m.var(ddof=1) + (len(f) - 1) * f.var(ddof=1))
                       / (len(m) + len(f) - 2))
    return float((m.mean() - f.mean()) / pooled)


def _ols(y, covariates) -> tuple[np.ndarray, np.ndarray, float]:
    """(coefficients [intercept, covariates...], residuals, residual sd)."""
    design = np.column_stack([np.ones(len(y)), *covariates])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - design @ coef
    dof = max(len(y) - design.shape[1], 1)
    return coef, residuals, float(np.sqrt(residuals @ residuals / dof))


def adjusted_d(values, size, male) -> float:
    """Sex d after a log-log adjustment for ``size``: male coefficient / residual sd."""
    coef, _, sd = _ols(np.log(values), [np.log(size), np.asarray(male, float)])
    return float(coef[2] / sd)


def allometry_slope(values, size, male) -> float:
    """Within-sex log-log slope of ``values`` against ``size``."""
    coef, _, _ = _ols(np.log(values), [np.log(size), np.asarray(male, float)])
    return float(coef[1])


def partial_correlation(a, b, size, male) -> float:
    """r(log a, log b | log size, sex)."""
    covariates = [np.log(size), np.asarray(male, float)]
    _, ra, _ = _ols(np.log(a), covariates)
    _, rb, _ = _ols(np.log(b), covariates)
    return float(np.corrcoef(ra, rb)[0, 1])


class Residualiser(TransformerMixin, BaseEstimator):
    """Regress the feature columns on the first ``n_covariates`` columns (OLS, fitted
    on the training fold); returns the residuals of the features only."""

    def __init__(self, n_covariates: int = 1):
        self.n_covariates = n_covariates

    def fit(self, x, y=None):
        x = np.asarray(x, float)
        design = np.column_stack([np.ones(len(x)), x[:, : self.n_covariates]])
        self.coef_, *_ = np.linalg.lstsq(design, x[:, self.n_covariates:], rcond=None)
        return self

    def transform(self, x):
        x = np.asarray(x, float)
        design = np.column_stack([np.ones(len(x)), x[:, : self.n_covariates]])
        return x[:, self.n_covariates:] - design @ self.coef_


def cross_validated_probabilities(x, y, n_covariates: int = 0,
                                  fold_seed: int = FOLD_SEED) -> np.ndarray:
    """Out-of-fold P(y = 1) of StandardScaler -> LogisticRegression (seeded folds);
    with ``n_covariates`` the first columns are regressed out inside each fold."""
    steps = [Residualiser(n_covariates)] if n_covariates else []
    model = make_pipeline(*steps, StandardScaler(), LogisticRegression(max_iter=5000))
    folds = StratifiedKFold(N_FOLDS, shuffle=True, random_state=fold_seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on tiny, collinear tables
        return cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]


def repeated_cv_scores(x, y, n_covariates: int = 0, repeats: int = CV_REPEATS) -> dict:
    """Balanced accuracy and ROC AUC of ``cross_validated_probabilities``, each the mean
    over ``repeats`` fold seeds, with its sd over the seeds (``*_sd``)."""
    scores = {"balanced_accuracy": [], "auc": []}
    for seed in range(FOLD_SEED, FOLD_SEED + repeats):
        p = cross_validated_probabilities(x, y, n_covariates, fold_seed=seed)
        scores["balanced_accuracy"].append(_balanced_accuracy(y, p))
        scores["auc"].append(float(roc_auc_score(y, p)))
    out = {name: float(np.mean(v)) for name, v in scores.items()}
    out.update({f"{name}_sd": float(np.std(v)) for name, v in scores.items()})
    return out


def _repeats_note(scores: dict, metric: str) -> str:
    return f"mean of {CV_REPEATS} fold seeds (sd {scores[metric + '_sd']:.3f})"


def _balanced_accuracy(y, p) -> float:
    return float(balanced_accuracy_score(y, (p >= 0.5).astype(int)))


# ------------------------------------------------------------------ the checks

class _Rows:
    """Collects rows; ``check`` compares a value with a pass range."""

    def __init__(self):
        self.rows: list[ValidationRow] = []
        self.group = ""

    def check(self, name, target, value, low=None, high=None, note=""):
        if value is None or not np.isfinite(value):
            self.rows.append(ValidationRow(self.group, name, target, None, None,
                                           note or "n/a (not computable)", low, high))
            return
        passed = None
        if low is not None or high is not None:
            passed = bool((low is None or value >= low) and (high is None or value <= high))
        self.rows.append(ValidationRow(self.group, name, target, float(value), passed, note,
                                       low, high))

    def missing(self, name, target, needs, low=None, high=None):
        self.rows.append(ValidationRow(self.group, name, target, None, None,
                                       f"n/a (needs {needs})", low, high))


def _needs(measures: pd.DataFrame, *names) -> str | None:
    absent = [n for n in names if n not in measures.columns or not measures[n].notna().all()]
    if absent:
        return " and ".join(absent) + (" volume" if len(absent) == 1 else " volumes")
    return None


def _sex_effects(rows: _Rows, measures, male):
    rows.group = "sex beyond head size"
    icv = measures.get("icv")
    if icv is None:
        rows.missing("ICV d (M vs F)", "≈ 1.6 (keep)", "icv volume", 1.3, 1.9)
    else:
        rows.check("ICV d (M vs F)", "≈ 1.6 (keep)", cohen_d(icv, male), 1.3, 1.9,
                   "Cohen's d, raw")
    targets = [
        ("total_gm", "total GM", "+0.8", 0.6, 1.0),
        ("cortical_gm", "cortical GM", "+0.6", 0.4, 0.8),
        ("cerebral_wm", "cerebral WM", "+0.5", 0.3, 0.7),
        ("subcortical_gm", "subcortical GM", "+0.6", 0.4, 0.8),
        ("hippocampus_left", "hippocampus L", "+0.3", 0.1, 0.5),
        ("hippocampus_right", "hippocampus R", "+0.5", 0.3, 0.7),
        ("cerebellar_gm", "cerebellar GM", "+0.7", 0.5, 0.9),
        ("amygdala", "amygdala", "+0.6 to +0.8", 0.6, 0.8),
        ("ventricles", "lateral ventricles", "≈ 0", -0.2, 0.2),
    ]
    for measure, label, target, low, high in targets:
        name = f"ICV-adjusted sex d, {label}"
        needs = _needs(measures, measure, "icv")
        if needs:
            rows.missing(name, target, needs, low, high)
        else:
            rows.check(name, target, adjusted_d(measures[measure], measures["icv"], male),
                       low, high, "log-log ANCOVA on ICV")
    needs = _needs(measures, "thickness")
    if needs:
        rows.missing("thickness sex d, raw", "≈ 0.13", "mean cortical thickness", -0.07, 0.33)
        rows.missing("thickness sex d, adjusted for brain volume", "−0.27",
                     "mean cortical thickness", -0.47, -0.07)
    else:
        rows.check("thickness sex d, raw", "≈ 0.13", cohen_d(measures["thickness"], male),
                   -0.07, 0.33, "Cohen's d, raw")
        needs = _needs(measures, "brain")
        if needs:
            rows.missing("thickness sex d, adjusted for brain volume", "−0.27", needs, -0.47, -0.07)
        else:
            rows.check("thickness sex d, adjusted for brain volume", "−0.27",
                       adjusted_d(measures["thickness"], measures["brain"], male), -0.47, -0.07,
                       "log-log ANCOVA on brain volume")


def _structure(rows: _Rows, measures, male):
    rows.group = "structure of the variation"
    needs = _needs(measures, "brain", "icv")
    if needs:
        rows.missing("within-sex r(log brain, log ICV)", "< 1: brain volume is not a function of ICV",
                     needs, None, 0.95)
    else:
        _, rb, _ = _ols(np.log(measures["brain"]), [np.asarray(male, float)])
        _, ri, _ = _ols(np.log(measures["icv"]), [np.asarray(male, float)])
        rows.check("within-sex r(log brain, log ICV)", "< 1: brain volume is not a function of ICV",
                   float(np.corrcoef(rb, ri)[0, 1]), None, 0.95,
                   "pass range < 0.95 is brainlab's reading of 'not a function of ICV'")
    needs = _needs(measures, "total_gm", "icv")
    if needs:
        rows.missing("GM allometry slope vs ICV", "≈ 0.6", needs, 0.5, 0.7)
        rows.missing("GM/ICV higher in women", "≈ 2.8%", needs, 2.0, 3.6)
    else:
        rows.check("GM allometry slope vs ICV", "≈ 0.6",
                   allometry_slope(measures["total_gm"], measures["icv"], male), 0.5, 0.7,
                   "log-log slope, within sex")
        ratio = measures["total_gm"] / measures["icv"]
        higher = 100.0 * (ratio[~male].mean() / ratio[male].mean() - 1.0)
        rows.check("GM/ICV higher in women", "≈ 2.8%", higher, 2.0, 3.6,
                   "% difference of mean GM/ICV, F over M")
    needs = _needs(measures, "total_gm", "cerebral_wm", "icv")
    if needs:
        rows.missing("corr(GM, WM | sex, ICV)", "≈ +0.48", needs, 0.35, 0.6)
    else:
        rows.check("corr(GM, WM | sex, ICV)", "≈ +0.48",
                   partial_correlation(measures["total_gm"], measures["cerebral_wm"],
                                       measures["icv"], male), 0.35, 0.6,
                   "partial r of log GM and log cerebral WM")
    needs = _needs(measures, "thickness")
    for sex, flag, target, low, high in (("F", False, "2.63 mm", 2.53, 2.73),
                                         ("M", True, "2.64 mm", 2.54, 2.74)):
        name = f"mean cortical thickness, {sex}"
        if needs:
            rows.missing(name, target, "mean cortical thickness", low, high)
        else:
            rows.check(name, target, float(measures["thickness"][male == flag].mean()), low, high,
                       "mm")
    if needs:
        rows.missing("thickness within-sex sd", "0.08–0.09 mm", "mean cortical thickness", 0.07, 0.10)
    else:
        sd = _pooled_within_sex_sd(measures["thickness"].to_numpy(float), male)
        rows.check("thickness within-sex sd", "0.08–0.09 mm", sd, 0.07, 0.10, "mm, pooled over sexes")
    needs = needs or _needs(measures, "icv")
    if needs:
        rows.missing("thickness slope vs ICV", "≈ 0.06", needs, 0.0, 0.12)
    else:
        rows.check("thickness slope vs ICV", "≈ 0.06",
                   allometry_slope(measures["thickness"], measures["icv"], male), 0.0, 0.12,
                   "log-log slope, within sex")


def _pooled_within_sex_sd(values: np.ndarray, male) -> float:
    male = np.asarray(male, bool)
    parts = [values[male] - values[male].mean(), values[~male] - values[~male].mean()]
    residuals = np.concatenate(parts)
    return float(np.sqrt(residuals @ residuals / max(len(residuals) - 2, 1)))


FREESURFER_LEVELS = [  # measure, label, F cc, M cc (PHANTOM.md, HCP-YA FreeSurfer)
    ("icv", "ICV", 1471, 1708), ("total_gm", "total GM", 646, 733),
    ("cortical_gm", "cortical GM", 480, 546), ("cerebral_wm", "cerebral WM", 415, 480),
    ("subcortical_gm", "subcortical GM", 58.0, 64.4), ("ventricles", "lateral ventricles", 11.1, 14.2),
    ("hippocampus", "hippocampus L+R", 8.5, 9.4), ("brainstem", "brainstem", 20.8, 23.1),
    ("cerebellar_wm", "cerebellar WM", 27.7, 31.4),
]
LEVEL_TOLERANCE = 0.10  # pass within ±10% of the FreeSurfer mean


def _levels(rows: _Rows, measures, male):
    rows.group = "volumes at FreeSurfer levels"
    for measure, label, female_cc, male_cc in FREESURFER_LEVELS:
        for sex, flag, target_cc in (("F", False, female_cc), ("M", True, male_cc)):
            name = f"{label}, {sex} mean (cc)"
            target = f"{target_cc:g} cc"
            low, high = target_cc * (1 - LEVEL_TOLERANCE), target_cc * (1 + LEVEL_TOLERANCE)
            if measure not in measures:
                rows.missing(name, target, f"{measure} volume", low, high)
                continue
            rows.check(name, target, float(measures[measure][male == flag].mean()), low, high,
                       f"±{LEVEL_TOLERANCE:.0%}")


def _noise(rows: _Rows, measures, male):
    rows.group = "measurement noise (within-sex spread)"
    checks = [
        ("hippocampus", "hippocampus L+R log-SD", "≈ 0.09", 0.06, 0.12, "log"),
        ("subcortical_gm", "subcortical GM log-SD", "≈ 0.07", 0.05, 0.09, "log"),
        ("cerebellar_wm", "cerebellar WM CV", "≈ 0.12", 0.09, 0.15, "cv"),
        ("ventricles", "lateral ventricles log-SD", "≈ 0.47", 0.37, 0.57, "log"),
    ]
    for measure, name, target, low, high, kind in checks:
        needs = _needs(measures, measure)
        if needs:
            rows.missing(name, target, needs, low, high)
            continue
        values = measures[measure].to_numpy(float)
        if kind == "log":
            if (values <= 0).any():
                rows.check(name, target, None, low, high, "n/a (non-positive volumes)")
                continue
            rows.check(name, target, _pooled_within_sex_sd(np.log(values), male), low, high,
                       "sd of log volume, pooled within sex")
        else:
            cv = np.mean([values[male == f].std(ddof=1) / values[male == f].mean()
                          for f in (False, True)])
            rows.check(name, target, float(cv), low, high, "sd / mean, averaged over sexes")
    needs = _needs(measures, "hippocampus_left", "hippocampus_right")
    if needs:
        rows.missing("hippocampus L−R asymmetry sd", "≈ 0.07", needs, 0.04, 0.10)
    else:
        left, right = measures["hippocampus_left"], measures["hippocampus_right"]
        asymmetry = ((left - right) / ((left + right) / 2)).to_numpy(float)
        rows.check("hippocampus L−R asymmetry sd", "≈ 0.07",
                   _pooled_within_sex_sd(asymmetry, male), 0.04, 0.10,
                   "sd of (L − R) / mean(L, R), pooled within sex")


def _sex_classifiers(rows: _Rows, cohort, measures, male):
    rows.group = "sex from morphometry (LR, 5-fold, balanced accuracy)"
    y = np.asarray(male, int)
    features, names = feature_matrix(cohort)
    majority = max(y.mean(), 1 - y.mean())
    few = min(y.sum(), len(y) - y.sum()) < 2 * MIN_PER_CLASS
    specs = [("ICV only", "≈ 0.81", 0.76, 0.86), ("all features", "0.85–0.88", 0.85, 0.88),
             ("all features, ICV regressed out", "≈ 0.64", 0.59, 0.69),
             ("all features, every size measure regressed out", "≈ 0.57", 0.52, 0.62)]
    if few:
        for label, target, low, high in specs:
            rows.missing(f"sex LR, {label}", target, f">= {2 * MIN_PER_CLASS} subjects of each sex",
                         low, high)
        return
    note = f"majority rate {majority:.3f}; {features.shape[1]} features"
    label, target, low, high = specs[0]
    metric = "balanced_accuracy"
    if "icv" in measures:
        scores = repeated_cv_scores(measures[["icv"]].to_numpy(float), y)
        rows.check(f"sex LR, {label}", target, scores[metric], low, high,
                   f"{note}; {_repeats_note(scores, metric)}")
    else:
        rows.missing(f"sex LR, {label}", target, "icv volume", low, high)
    label, target, low, high = specs[1]
    scores = repeated_cv_scores(features, y)
    rows.check(f"sex LR, {label}", target, scores[metric], low, high,
               f"{note}; {_repeats_note(scores, metric)}")
    for (label, target, low, high), covariates in zip(specs[2:], (("icv",), SIZE_MEASURES)):
        present = [m for m in covariates if m in measures]
        if "icv" not in present:
            rows.missing(f"sex LR, {label}", target, "icv volume", low, high)
            continue
        size = measures[present].to_numpy(float)
        # Drop the table's own copies of the size measures from the features.
        own = {c for c in names for m in present if _same(cohort.table[c], measures[m])}
        kept = [i for i, c in enumerate(names) if c not in own]
        x = np.column_stack([size, features[:, kept]])
        scores = repeated_cv_scores(x, y, n_covariates=len(present))
        rows.check(f"sex LR, {label}", target, scores[metric], low, high,
                   f"{note}; regressed on {', '.join(present)} inside each fold; "
                   f"{_repeats_note(scores, metric)}")


def _same(column: pd.Series, measure: pd.Series) -> bool:
    values = pd.to_numeric(column, errors="coerce").to_numpy(float)
    target = measure.to_numpy(float)
    scale = np.nanmax(np.abs(target)) or 1.0
    for factor in (1.0, 1e3, 1e2):
        if np.allclose(values, target * factor, rtol=1e-6, atol=1e-9 * scale * factor):
            return True
    return False


def _age_units(cohort) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(age in bin units, in-range mask, description) or None without ages."""
    table = cohort.table
    years = pd.to_numeric(table["age"], errors="coerce").to_numpy(float)
    if np.isfinite(years).sum() >= 3:
        inside = (years >= YOUNG_ADULT_AGES[0]) & (years < YOUNG_ADULT_AGES[1])
        return years / YEARS_PER_BIN, inside, f"age in years / {YEARS_PER_BIN:g}, ages 22-37"
    if tuple(cohort.age_bin_labels) == HCP_AGE_BINS:
        bins = pd.to_numeric(table["age_bin"], errors="coerce").to_numpy(float)
        return bins, np.isfinite(bins), "ordinal HCP age bin (ages are bins only)"
    return None


def _ageing(rows: _Rows, cohort, measures, male):
    rows.group = "ageing within 22-37 (per age bin, adjusted for sex and ICV)"
    specs = [("cerebral_wm", "cerebral WM", "+2.0%", 1.0, 3.0),
             ("cortical_gm", "cortical GM", "−0.8%", -1.4, -0.2),
             ("ventricles", "lateral ventricles", "+7.8%", 4.0, 12.0),
             ("thickness", "mean cortical thickness", "−0.6%", -1.0, -0.2),
             ("putamen", "putamen", "declining", None, 0.0),
             ("accumbens", "accumbens", "declining", None, 0.0)]
    units = _age_units(cohort)
    for measure, label, target, low, high in specs:
        name = f"ageing rate per bin, {label} (%)"
        needs = _needs(measures, measure, "icv")
        if needs or units is None:
            rows.missing(name, target, needs or "ages or HCP age bins", low, high)
            continue
        age, inside, how = units
        inside = inside & np.isfinite(age)
        if inside.sum() < 10:
            rows.missing(name, target, ">= 10 subjects aged 22-37", low, high)
            continue
        y = np.log(measures[measure].to_numpy(float)[inside])
        coef, _, _ = _ols(y, [age[inside], np.asarray(male, float)[inside],
                              np.log(measures["icv"].to_numpy(float)[inside])])
        rows.check(name, target, 100.0 * (math.exp(coef[1]) - 1.0), low, high,
                   f"{how}; n = {int(inside.sum())}")
    _youngest_vs_oldest(rows, cohort, male)


def _age_groups(cohort) -> tuple[np.ndarray, np.ndarray] | None:
    table = cohort.table
    years = pd.to_numeric(table["age"], errors="coerce").to_numpy(float)
    if np.isfinite(years).sum() >= 3:
        return ((years >= YOUNGEST_AGES[0]) & (years < YOUNGEST_AGES[1]),
                (years >= OLDEST_AGES[0]) & (years < OLDEST_AGES[1]))
    labels = list(cohort.age_bin_labels)
    if "22-25" in labels and "31-35" in labels:
        bins = pd.to_numeric(table["age_bin"], errors="coerce").to_numpy(float)
        return bins == labels.index("22-25"), bins == labels.index("31-35")
    return None


def _youngest_vs_oldest(rows: _Rows, cohort, male):
    rows.group = "youngest (22-25) vs oldest (31-35), within sex, all features"
    groups = _age_groups(cohort)
    features, _ = feature_matrix(cohort)
    for sex, flag in (("F", False), ("M", True)):
        auc_name = f"youngest vs oldest AUC, {sex}"
        ba_name = f"youngest vs oldest balanced accuracy, {sex}"
        if groups is None:
            rows.missing(auc_name, "≈ 0.83–0.85", "ages or the bins 22-25 and 31-35", 0.80, 0.88)
            rows.missing(ba_name, "reported beside the majority rate", "ages or age bins")
            continue
        young, old = groups[0] & (male == flag), groups[1] & (male == flag)
        if min(young.sum(), old.sum()) < MIN_PER_CLASS:
            needs = f">= {MIN_PER_CLASS} {sex} subjects in each of 22-25 and 31-35"
            rows.missing(auc_name, "≈ 0.83–0.85", needs, 0.80, 0.88)
            rows.missing(ba_name, "reported beside the majority rate", needs)
            continue
        chosen = young | old
        y = old[chosen].astype(int)
        scores = repeated_cv_scores(features[chosen], y)
        majority = max(y.mean(), 1 - y.mean())
        note = f"n = {int(young.sum())} vs {int(old.sum())}; majority rate {majority:.3f}"
        rows.check(auc_name, "≈ 0.83–0.85", scores["auc"], 0.80, 0.88,
                   f"{note}; pass range widened from 0.83–0.85 for sampling error; "
                   f"{_repeats_note(scores, 'auc')}")
        rows.check(ba_name, "reported beside the majority rate", scores["balanced_accuracy"],
                   note=f"{note}; {_repeats_note(scores, 'balanced_accuracy')}")


def _counts_and_grid(rows: _Rows, cohort, male):
    rows.group = "kept from v1: counts and grid"
    if tuple(cohort.age_bin_labels) != HCP_AGE_BINS:
        rows.missing("subjects per sex x age bin", "HCP-YA: 606 F / 507 M, bins as PHANTOM.md",
                     "HCP age bins 22-25 ... 36+")
    else:
        bins = pd.to_numeric(cohort.table["age_bin"], errors="coerce").to_numpy(float)
        found_f = tuple(int(((bins == b) & ~male).sum()) for b in range(4))
        found_m = tuple(int(((bins == b) & male).sum()) for b in range(4))
        matches = found_f == HCP_FEMALE_COUNTS and found_m == HCP_MALE_COUNTS
        rows.rows.append(ValidationRow(
            rows.group, "subjects per sex x age bin", "HCP-YA: 606 F / 507 M, bins as PHANTOM.md",
            float(len(cohort)), matches,
            f"F {'/'.join(map(str, found_f))}, M {'/'.join(map(str, found_m))} "
            f"(HCP: F {'/'.join(map(str, HCP_FEMALE_COUNTS))}, M {'/'.join(map(str, HCP_MALE_COUNTS))})"))
    if cohort.images is None:
        rows.missing("grid", "58×70×58 on the MNI field of view", "images")
        return
    shape = tuple(cohort.grid_shape)
    ok = shape == HCP_GRID_SHAPE and np.allclose(cohort.affine, mni_affine(HCP_GRID_SHAPE), atol=1e-3)
    rows.rows.append(ValidationRow(rows.group, "grid", "58×70×58 on the MNI field of view",
                                   None, bool(ok), f"grid {'x'.join(map(str, shape))}"))



def validate_cohort(cohort, columns: dict[str, str] | None = None,
                    images: bool = True) -> list[ValidationRow]:
    """Every PHANTOM.md v2 target beside its measured value, as ``ValidationRow``s.

    Needs a morphometry table and both sexes; ``columns`` overrides which column
    holds a named measure (see ``MEASURES``). ``images=False`` skips the image
    checks (they read every volume once).
    """
    male = cohort.male_mask()
    n_male, n_female = int(male.sum()), int((~male).sum())
    if n_male < 2 or n_female < 2:
        raise BrainlabInputError(
            f"cohort {cohort.name!r} has {n_female} F and {n_male} M subjects; validation "
            f"needs at least 2 of each sex")
    if not cohort.morphometry_columns:
        raise BrainlabInputError(
            f"cohort {cohort.name!r} has no morphometry columns; validation needs a "
            f"morphometry table (phantom columns such as icv_cc, or FreeSurfer FS_* columns)")
    rows = _Rows()
    _counts_and_grid(rows, cohort, male)
    adults = young_adult_subset(cohort)
    if adults is not cohort:
        rows.rows.append(ValidationRow(
            rows.group, "HCP-YA targets measured on ages 22-37 only", "", float(len(adults)), None,
            f"{len(adults)} of {len(cohort)} subjects; the lifespan group uses all of them"))
    measures = _usable(standard_measures(adults, columns)[0])
    adult_male = adults.male_mask()
    _sex_effects(rows, measures, adult_male)
    _structure(rows, measures, adult_male)
    _levels(rows, measures, adult_male)
    _noise(rows, measures, adult_male)
    _sex_classifiers(rows, adults, measures, adult_male)
    _ageing(rows, adults, measures, adult_male)
    _lifespan(rows, cohort, _usable(standard_measures(cohort, columns)[0]), male)
    if images:
        _image_checks(rows, cohort, male)
    return rows.rows


def _usable(measures: pd.DataFrame) -> pd.DataFrame:
    """Measures with a positive value for every subject (they are logged)."""
    return measures.loc[:, [c for c in measures.columns
                            if measures[c].notna().all() and (measures[c] > 0).all()]]


# Subjects needed for the HCP-YA targets to be measured on the 22-37 subset alone.
MIN_YOUNG_ADULTS = 40


def young_adult_subset(cohort):
    """The cohort's subjects aged 22-37 when it is not a young-adult cohort (ages in
    years below 20 or from 40 on) and at least ``MIN_YOUNG_ADULTS`` are inside;
    otherwise the cohort itself (HCP-YA's few subjects of 37+ stay in)."""
    import dataclasses

    years = pd.to_numeric(cohort.table["age"], errors="coerce").to_numpy(float)
    known = np.isfinite(years)
    inside = known & (years >= YOUNG_ADULT_AGES[0]) & (years < YOUNG_ADULT_AGES[1])
    wide = known & ((years < 20.0) | (years >= 40.0))
    if known.sum() < 3 or not wide.any() or inside.sum() < MIN_YOUNG_ADULTS:
        return cohort
    sexes = cohort.table["sex"].to_numpy()[inside]
    if min((sexes == "M").sum(), (sexes == "F").sum()) < 2:
        return cohort
    table = cohort.table.loc[inside].reset_index(drop=True)
    return dataclasses.replace(cohort, name=f"{cohort.name} (22-37)", table=table, images=None,
                               truth=None, fingerprint="subset", notes=[])


# PHANTOM.md "subject variation" ageing figures, checked where ages reach 60+.
LIFESPAN_RATES = [  # measure, label, ages, target text, low, high (% per year)
    ("total_gm", "total GM, ages 35-60", (35.0, 60.0), "≈ −0.2%/y", -0.35, -0.05),
    ("total_gm", "total GM, ages 60-90", (60.0, 91.0), "−0.5 to −0.9%/y", -0.9, -0.5),
    ("hippocampus", "hippocampus, ages 60-90", (60.0, 91.0), "≈ −0.85%/y, accelerating", -1.2, -0.5),
    ("ventricles", "lateral ventricles, ages 70-90", (70.0, 91.0), "≈ +3%/y at 73-79", 2.0, 4.0),
]


def _lifespan(rows: _Rows, cohort, measures, male):
    rows.group = "lifespan ageing (PHANTOM.md subject variation; adjusted for sex and ICV)"
    years = pd.to_numeric(cohort.table["age"], errors="coerce").to_numpy(float)
    if not np.isfinite(years).any() or np.nanmax(years) < 60:
        rows.missing("lifespan ageing rates", "large ageing effects (lifespan preset)",
                     "ages in years reaching 60+")
        return
    for measure, label, (start, stop), target, low, high in LIFESPAN_RATES:
        name = f"ageing rate, {label} (%/y)"
        chosen = np.isfinite(years) & (years >= start) & (years < stop)
        needs = _needs(measures, measure, "icv")
        if needs or chosen.sum() < 10:
            rows.missing(name, target, needs or f">= 10 subjects aged {start:g}-{stop - 1:g}",
                         low, high)
            continue
        coef, _, _ = _ols(np.log(measures[measure].to_numpy(float)[chosen]),
                          [years[chosen], np.asarray(male, float)[chosen],
                           np.log(measures["icv"].to_numpy(float)[chosen])])
        rows.check(name, target, 100.0 * (math.exp(coef[1]) - 1.0), low, high,
                   f"n = {int(chosen.sum())}")
    known = np.isfinite(years)
    if _needs(measures, "thickness"):
        rows.missing("thickness change (mm/decade)", "−0.08 to −0.10", "mean cortical thickness",
                     -0.10, -0.08)
    else:
        coef, _, _ = _ols(measures["thickness"].to_numpy(float)[known],
                          [years[known], np.asarray(male, float)[known]])
        rows.check("thickness change (mm/decade)", "−0.08 to −0.10", 10.0 * coef[1], -0.10, -0.08,
                   f"linear in age, with sex; n = {int(known.sum())}")
    needs = _needs(measures, "cerebral_wm", "icv")
    if needs:
        rows.missing("WM peak age (y)", "inverted U, peak ≈ 29–45", needs, 29.0, 45.0)
    else:
        centred = years[known] - 50.0
        coef, _, _ = _ols(np.log(measures["cerebral_wm"].to_numpy(float)[known]),
                          [centred, centred**2, np.asarray(male, float)[known],
                           np.log(measures["icv"].to_numpy(float)[known])])
        peak = 50.0 - coef[1] / (2 * coef[2]) if coef[2] < 0 else float("nan")
        rows.check("WM peak age (y)", "inverted U, peak ≈ 29–45", peak, 29.0, 45.0,
                   "vertex of a quadratic in age" if coef[2] < 0 else "n/a (no inverted U: the "
                   "quadratic term is not negative)")


# Tissue: brighter than midway between CSF (0.31 of WM) and GM (0.73), against a WM
# level read as the 90th percentile of the non-zero voxels (WM is the brightest ≈ 28%
# of the intracranial volume in HCP-YA, 415 of 1471 cc, so that percentile lies in it).
TISSUE_THRESHOLD, WM_PERCENTILE = 0.52, 90


def tissue_masks(block: np.ndarray) -> np.ndarray:
    """Brain tissue (GM or WM, not CSF) of images (B, D, H, W): voxels brighter than
    ``TISSUE_THRESHOLD`` of each image's WM level (see above)."""
    levels = np.array([np.percentile(image[image > 0], WM_PERCENTILE) if (image > 0).any() else np.inf
                       for image in block], dtype=np.float32)
    return block > TISSUE_THRESHOLD * levels.reshape(-1, 1, 1, 1)


def image_geometry(cohort, chunk: int = 64) -> dict:
    """Mean-image figures of a cohort on an MNI grid, in one pass over the volumes.

    Brain probability map = fraction of subjects whose voxel is non-zero (images
    are skull-stripped). ``extent_mm``: mean over the three axes of the bounding
    box of the brain tissue (``tissue_masks``: GM or WM, not the CSF around the
    brain that a mask may keep) in more than half of the subjects; ``centre_z_mm``: its centre of mass in MNI z;
    ``male_minus_female_z_vox``: the same centre of mass, men minus women, in
    voxels. Intensity ratios use template ROIs (``brainlab.data.phantom.anatomy``
    on this grid): core cerebral WM (WM fraction > 0.9), deep GM (subcortical
    labels, GM fraction > 0.5) and the template's ventricles (CSF fraction > 0.5).
    """
    from brainlab.data.phantom.anatomy import REGION_ID, load_anatomy

    images, male = cohort.images, cohort.male_mask()
    sums = {flag: 0.0 for flag in (False, True)}
    masks = {flag: 0.0 for flag in (False, True)}
    tissue = 0.0
    for start in range(0, len(images), chunk):
        block = np.asarray(images[start:start + chunk], dtype=np.float32)
        tissue = tissue + tissue_masks(block).sum(axis=0, dtype=np.float64)
        for flag in (False, True):
            chosen = male[start:start + chunk] == flag
            if chosen.any():
                sums[flag] = sums[flag] + block[chosen].sum(axis=0, dtype=np.float64)
                masks[flag] = masks[flag] + (block[chosen] > 0).sum(axis=0, dtype=np.float64)
    counts = {flag: int((male == flag).sum()) for flag in (False, True)}
    mean = (sums[False] + sums[True]) / len(images)
    probability = (masks[False] + masks[True]) / len(images)
    spacing = np.abs(np.diag(cohort.affine)[:3])

    def centre_vox(p):
        weights = p / p.sum()
        return np.array([(weights.sum(axis=tuple(j for j in range(3) if j != axis))
                          * np.arange(p.shape[axis])).sum() for axis in range(3)])

    inside = tissue / len(images) > 0.5
    extent = [(np.ptp(np.flatnonzero(inside.any(axis=tuple(j for j in range(3) if j != axis)))) + 1)
              * spacing[axis] for axis in range(3)]
    centre_mm = centre_vox(probability) * spacing + cohort.affine[:3, 3]
    z_shift = (centre_vox(masks[True] / counts[True])[2] - centre_vox(masks[False] / counts[False])[2])
    anatomy = load_anatomy(tuple(cohort.grid_shape))
    cerebral = np.isin(anatomy.labels, [v for k, v in REGION_ID.items()
                                        if k.split("_")[0] in ("frontal", "parietal", "temporal",
                                                               "occipital")])
    wm_roi = (anatomy.wm > 0.9) & cerebral
    deep_ids = [REGION_ID["subcortical_left"], REGION_ID["subcortical_right"]]
    deep_roi = np.isin(anatomy.labels, deep_ids) & (anatomy.gm > 0.5)
    ventricle_roi = anatomy.csf_ventricle > 0.5
    wm_level = float(mean[wm_roi].mean()) if wm_roi.any() else float("nan")

    def ratio(roi):
        return float(mean[roi].mean()) / wm_level if roi.any() and wm_level > 0 else float("nan")

    return {"extent_mm": float(np.mean(extent)), "centre_z_mm": float(centre_mm[2]),
            "male_minus_female_z_vox": float(z_shift), "deep_gm_to_wm": ratio(deep_roi),
            "ventricles_to_wm": ratio(ventricle_roi), "n_wm_voxels": int(wm_roi.sum()),
            "n_deep_voxels": int(deep_roi.sum()), "n_ventricle_voxels": int(ventricle_roi.sum())}


def _image_checks(rows: _Rows, cohort, male):
    rows.group = "images (mean brain on the grid)"
    specs = [("deep_gm_to_wm", "deep GM / WM intensity, mean image", "≈ 0.96", 0.93, 0.99),
             ("ventricles_to_wm", "ventricle ROI / WM intensity, mean image", "≈ 0.80", 0.75, 0.85),
             ("extent_ratio", "brain extent / v1 hcp-ya extent", "≈ 0.90 (10% smaller)", 0.87, 0.93),
             ("centre_shift", "centre of mass z − v1 hcp-ya (mm)", "3–5 mm lower", -5.0, -3.0),
             ("sex_shift", "|M − F centre of mass z| (voxels)", "≈ 0.8 voxel", 0.5, 1.1)]
    on_grid = (cohort.images is not None
               and np.allclose(cohort.affine, mni_affine(cohort.grid_shape), atol=1e-3))
    if not on_grid:
        for _, name, target, low, high in specs:
            rows.missing(name, target, "images on the MNI grid", low, high)
    else:
        geometry = image_geometry(cohort)
        rows.check(specs[0][1], specs[0][2], geometry["deep_gm_to_wm"], *specs[0][3:],
                   note=f"template ROIs: {geometry['n_deep_voxels']} deep GM, "
                        f"{geometry['n_wm_voxels']} core WM voxels")
        rows.check(specs[1][1], specs[1][2], geometry["ventricles_to_wm"], *specs[1][3:],
                   note=f"template ventricles: {geometry['n_ventricle_voxels']} voxels")
        hcp_grid = tuple(cohort.grid_shape) == HCP_GRID_SHAPE
        for key, (_, name, target, low, high), reference, value in (
                ("extent", specs[2], V1_EXTENT_MM, geometry["extent_mm"]),
                ("centre", specs[3], V1_CENTRE_Z_MM, geometry["centre_z_mm"])):
            if not hcp_grid:
                rows.missing(name, target, "the 58×70×58 grid (v1 reference)", low, high)
                continue
            measured = value / reference if key == "extent" else value - reference
            rows.check(name, target, measured, low, high,
                       note=f"{value:.1f} mm (v1 {reference:.1f} mm); bounding box of "
                            f"P(tissue) > 0.5 (GM or WM, not CSF)" if key == "extent" else
                       f"{value:.1f} mm (v1 {reference:.1f} mm)")
        rows.check(specs[4][1], specs[4][2], abs(geometry["male_minus_female_z_vox"]),
                   *specs[4][3:], note=f"signed {geometry['male_minus_female_z_vox']:+.2f}")
    for name, target, needs in (
            ("cohort mean blurs into a cortical ribbon", "per-subject folding variability",
             "the real HCP mean brain to compare with"),
            ("M − F mean-difference map vs real", "not a symmetric rim",
             "the real HCP M − F map to compare with")):
        rows.missing(name, target, needs)


def summary(rows: list[ValidationRow]) -> dict:
    """Counts of passed, failed, reported-only and n/a rows."""
    return {"passed": sum(r.passed is True for r in rows),
            "failed": sum(r.passed is False for r in rows),
            "reported": sum(r.passed is None and r.measured is not None for r in rows),
            "not_available": sum(r.passed is None and r.measured is None for r in rows),
            "total": len(rows)}
