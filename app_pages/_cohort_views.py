"""Cached per-cohort results the pages draw: mean brains, a colour range, phantom truth.

Keyed on the cohort fingerprint (or preset name), so moving between subjects and
pages stays fast; the computations themselves live in ``brainlab``.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from brainlab.analysis import derived_results
from brainlab.data import PRESET_NAMES, Cohort


@st.cache_resource(show_spinner=False, max_entries=8)
def _means(fingerprint: str, _cohort: Cohort) -> dict:
    return derived_results.cohort_means(_cohort)  # on disk after the first time (or warm)


def cohort_mean_images(cohort: Cohort) -> dict:
    """``brainlab.analysis.cohort_means.sex_and_age_means`` once per cohort (read-only),
    kept in the result store."""
    with st.spinner(f"Averaging {len(cohort)} brains (once per cohort) …"):
        return _means(cohort.fingerprint, cohort)


@st.cache_data(show_spinner=False, max_entries=16)
def _intensity_range(fingerprint: str, _cohort: Cohort) -> tuple[float, float]:
    sample = np.asarray(_cohort.images[np.linspace(0, len(_cohort) - 1, min(16, len(_cohort))).astype(int)])
    high = float(np.quantile(sample[sample > 0], 0.995)) if np.any(sample > 0) else 1.0
    return 0.0, max(high, 1e-6)


def intensity_range(cohort: Cohort) -> tuple[float, float]:
    """A fixed colour range for the cohort's images (0 to the 99.5th percentile of brain voxels)."""
    return _intensity_range(cohort.fingerprint, cohort)


@st.cache_resource(show_spinner="Rendering the phantom's ground-truth effect maps (once) …",
                   max_entries=4)
def phantom_effect_maps(preset: str) -> dict | None:
    """The phantom's ground-truth effect maps ``{"sex": vol, "age": vol}``, or None."""
    if preset not in PRESET_NAMES:
        return None
    from brainlab.data.phantom import expected_effect_maps

    return expected_effect_maps(preset)


def phantom_true_curves(preset: str, feature: str, ages: np.ndarray) -> dict | None:
    """``{"F": (ages, values), "M": (ages, values)}`` of the phantom's generating curve, or None."""
    if preset not in PRESET_NAMES:
        return None
    from brainlab.data.phantom import true_curve

    curves = {}
    for sex in ("F", "M"):
        values = true_curve(preset, feature, ages, sex)
        if values is not None:
            curves[sex] = (ages, np.asarray(values, dtype=float))
    return curves or None
