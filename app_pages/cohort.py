"""Cohort: who is in it, what a brain looks like, and how sex and age change it."""

import numpy as np
import streamlit as st

from brainlab.analysis.cohort_means import age_contrast, age_contrast_problem, sex_contrast
from brainlab.viz import (
    age_histogram, difference_figure, feature_vs_age, sex_by_age_bin, triplanar_grid,
)
from app_pages._cohort_picker import current_cohort
from app_pages._cohort_subject_viewer import subject_viewer
from app_pages._cohort_views import (
    cohort_mean_images, intensity_range, phantom_effect_maps, phantom_true_curves,
)
from app_pages._state import url_choice

cohort, source = current_cohort()
table = cohort.table
labels = list(cohort.age_bin_labels or ())
has_images = cohort.images is not None

st.title("Cohort")
st.markdown("Who is in the cohort, what one brain looks like, and how sex and age change "
            "the average brain and its measured volumes.")

st.header("Demographics")
left, right = st.columns([3, 2])
with left:
    st.plotly_chart(age_histogram(table, labels), width="stretch")
    st.caption("Look for how ages are spread and whether one sex dominates some ages "
               "(a confound for any age effect).")
with right:
    st.plotly_chart(sex_by_age_bin(table, labels), width="stretch")
    st.caption("Counts per sex × age bin: small cells (e.g. the oldest bin) give noisy means.")


@st.fragment
def brain_views() -> None:
    """Subjects, mean brains and effect maps: one fragment, because they share the slice
    cursor, so a slice move reruns these three (one script run), not the whole page."""
    st.header("Subjects")
    cursor = subject_viewer(cohort)
    if has_images:
        mean_brains_and_effects(cursor)


def mean_brains_and_effects(cursor) -> None:
    """The mean brains and one effect map at the viewer's slices."""
    st.header("Mean brains")
    means = cohort_mean_images(cohort)
    value_range = intensity_range(cohort)
    # A radio, not tabs: tabs render both grids on every slice move, a radio only the one shown.
    grouping = url_choice(st.radio, "Mean brains", ["by sex", "by age bin"], "means", "by sex",
                          horizontal=True, label_visibility="collapsed")
    if grouping == "by sex":
        st.plotly_chart(triplanar_grid(
            {f"{'female' if s == 'F' else 'male'} (n={means['sex_counts'][s]})": v
             for s, v in means["sex"].items()},
            cohort.affine, cursor=cursor, value_range=value_range, row_height=250),
            width="stretch")
        st.caption("Average brain of each sex at the same slices: look for overall size "
                   "(men's brains are larger on average) rather than shape.")
    else:
        st.plotly_chart(triplanar_grid(
            {f"{label} (n={means['age_bin_counts'][label]})": v
             for label, v in means["age_bin"].items()},
            cohort.affine, cursor=cursor, value_range=value_range, row_height=230),
            width="stretch")
        st.caption("Average brain per age bin: look for wider ventricles and sulci in "
                   "older bins (subtle in a young-adult cohort).")

    st.header("Sex and age effects")
    truth = phantom_effect_maps(source) or {}
    if not truth:
        st.caption("No ground-truth effect map is available for this cohort (only the "
                   "phantom presets have one), so only the observed difference is shown.")
    effects = [("M − F", sex_contrast(means), "sex",
                "Red where men's average is brighter, blue where women's is; compare the "
                "pattern with the true effect, not the absolute numbers.")]
    ageing = age_contrast(means)
    if ageing is not None:
        old, young, difference = ageing
        counts = means["age_bin_counts"]
        effects.append((f"{old} − {young}", difference, "age",
                        f"Oldest minus youngest bin (n={counts[old]} vs {counts[young]}), within "
                        "each sex then averaged: blue where tissue is lost with age, red where "
                        "CSF grows."))
    else:
        st.info(age_contrast_problem(means))
    # One effect at a time, like the mean brains: a slice move redraws one figure.
    shown = url_choice(st.radio, "Effect", [e[2] for e in effects], "effect", "sex",
                       horizontal=True, label_visibility="collapsed",
                       format_func={e[2]: e[0] for e in effects}.get) if len(effects) > 1 else "sex"
    for name, difference, effect, caption in effects:
        if effect != shown:
            continue
        if difference is None:
            st.info(f"{name}: one of the groups is empty in this cohort.")
            continue
        st.plotly_chart(difference_figure(
            difference, cohort.affine, cursor=cursor, truth=truth.get(effect),
            labels=(f"observed {name}", f"true {effect} effect"),
            title=f"{name} mean difference", row_height=240), width="stretch")
        st.caption(caption)


brain_views()

st.header("Morphometry")


@st.fragment
def morphometry_explorer() -> None:
    """Feature picker and its scatter against age, with the phantom's true curves."""
    features = cohort.morphometry_columns
    if not features:
        st.info("This cohort has no morphometry columns.")
        return
    feature = url_choice(st.selectbox, "Feature", features, "feature", features[0])
    ages = table["age"].dropna()
    curves = (phantom_true_curves(source, feature, np.linspace(ages.min(), ages.max(), 60))
              if len(ages) else None)
    st.plotly_chart(feature_vs_age(table, feature, true_curves=curves, bin_labels=labels),
                    width="stretch")
    st.caption("Each dot is a subject: look for the sex gap and the slope with age"
               + ("; dashed lines are the phantom's true generating curves." if curves else
                  " (no true curve is known for this cohort or feature)."))


morphometry_explorer()
