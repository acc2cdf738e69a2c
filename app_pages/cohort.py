"""Cohort: who is in it, what a brain looks like, and how sex and age change it."""

import numpy as np
import pandas as pd
import streamlit as st

from brainlab.analysis.means import difference_map
from brainlab.viz import (
    age_histogram, difference_figure, feature_vs_age, sex_by_age_bin,
    triplanar_figure, triplanar_grid,
)
from pages._shared import (
    bin_label, cohort_mean_images, cohort_sidebar, intensity_range, phantom_effect_maps,
    phantom_true_curves, query_value, sync_query,
)

cohort, source = cohort_sidebar()
table = cohort.table
labels = list(cohort.age_bin_labels or ())
has_images = cohort.images is not None

st.title("Cohort")
st.markdown("Who is in the cohort, what one brain looks like, and how sex and age change "
            "the average brain and its measured volumes.")

# ---------------------------------------------------------------- demographics
st.header("Demographics")
left, right = st.columns([3, 2])
with left:
    st.plotly_chart(age_histogram(table, labels), width="stretch")
    st.caption("Look for how ages are spread and whether one sex dominates some ages "
               "(a confound for any age effect).")
with right:
    st.plotly_chart(sex_by_age_bin(table, labels), width="stretch")
    st.caption("Counts per sex × age bin: small cells (e.g. the oldest bin) give noisy means.")


# ---------------------------------------------------------------- subject viewer
def _subject_table() -> pd.DataFrame:
    view = table[["subject_id", "sex", "age"]].copy()
    view["age bin"] = [bin_label(cohort, int(c)) for c in table["age_bin"]]
    for column in cohort.morphometry_columns[:4]:
        view[column] = table[column]
    return view


@st.fragment
def subject_viewer() -> None:
    """Subject picker, slice sliders and viewer; rerun alone when only the subject changes."""
    ids = cohort.subject_ids
    picker = f"subject_picker_{cohort.fingerprint}"
    if st.session_state.get(picker) not in ids:
        start = st.session_state.get("brainlab_subject") or query_value("subject")
        st.session_state[picker] = start if start in ids else ids[0]
    st.caption("Click a row to view that subject (or use the selector below the table).")
    view = _subject_table()
    numbers = {column: st.column_config.NumberColumn(format="%.1f")
               for column in view.columns if column not in ("subject_id", "sex", "age bin")}
    event = st.dataframe(view, on_select="rerun", selection_mode="single-row",
                         hide_index=True, height=240, width="stretch", column_config=numbers,
                         key=f"subject_table_{cohort.fingerprint}")
    rows = event.selection.rows if event is not None else []
    table_pick = ids[rows[0]] if rows else None
    if table_pick is not None and table_pick != st.session_state.get("_brainlab_table_pick"):
        st.session_state[picker] = table_pick  # a new click in the table wins
    st.session_state["_brainlab_table_pick"] = table_pick
    subject = st.selectbox("Subject", ids, key=picker)
    st.session_state["brainlab_subject"] = subject
    sync_query(subject=subject)
    if not has_images:
        st.info("This cohort is table-only (no images), so there is no brain to show.")
        return

    shape = cohort.grid_shape
    names = ("x: left → right", "y: posterior → anterior", "z: inferior → superior")
    cursor = []
    columns = st.columns(3)
    for axis, (column, name, size) in enumerate(zip(columns, names, shape)):
        key = f"slice_{'xyz'[axis]}_{'x'.join(map(str, shape))}"
        if key not in st.session_state:
            start = query_value("xyz"[axis], size // 2, int)
            st.session_state[key] = int(np.clip(start, 0, size - 1))
        cursor.append(column.slider(name, 0, size - 1, key=key))
    cursor = tuple(cursor)
    sync_query(x=cursor[0], y=cursor[1], z=cursor[2])

    index = cohort.index_of(subject)
    row = table.iloc[index]
    age = f"{row['age']:.1f} y" if pd.notna(row["age"]) else bin_label(cohort, int(row["age_bin"]))
    st.plotly_chart(
        triplanar_figure(cohort.images[index], cohort.affine, cursor=cursor,
                         value_range=intensity_range(cohort),
                         title=f"{subject} · {'female' if row['sex'] == 'F' else 'male'} · {age}"),
        width="stretch", key="viewer")
    st.caption("Axial (anterior up), coronal and sagittal (superior up), left on the left; "
               "the colour range is fixed for the cohort so subjects compare fairly. "
               "Hover for intensity and MNI coordinates.")
    # The mean and difference views below follow the same slices: redraw them when the
    # cursor moved in a fragment-only rerun (a subject change alone does not need it).
    if st.session_state.get("brainlab_cursor") != cursor:
        st.session_state["brainlab_cursor"] = cursor
        if not st.session_state.get("_brainlab_full_run", False):
            st.rerun(scope="app")


st.header("Subjects")
st.session_state["_brainlab_full_run"] = True
subject_viewer()
st.session_state["_brainlab_full_run"] = False
cursor = st.session_state.get("brainlab_cursor")

# ---------------------------------------------------------------- mean brains and effects
if has_images:
    st.header("Mean brains")
    means = cohort_mean_images(cohort)
    if means is not None:
        value_range = intensity_range(cohort)
        by_sex, by_bin = st.tabs(["by sex", "by age bin"])
        with by_sex:
            counts = table["sex"].value_counts()
            st.plotly_chart(triplanar_grid(
                {f"{'female' if s == 'F' else 'male'} (n={counts.get(s, 0)})": v
                 for s, v in means["sex"].items()},
                cohort.affine, cursor=cursor, value_range=value_range, row_height=250),
                width="stretch")
            st.caption("Average brain of each sex at the same slices: look for overall size "
                       "(men's brains are larger on average) rather than shape.")
        with by_bin:
            st.plotly_chart(triplanar_grid(
                {f"{label} (n={means['age_bin_counts'][label]})": v
                 for label, v in means["age_bin"].items()},
                cohort.affine, cursor=cursor, value_range=value_range, row_height=230),
                width="stretch")
            st.caption("Average brain per age bin: look for wider ventricles and sulci in "
                       "older bins (subtle in a young-adult cohort).")

        st.header("Sex and age effects")
        truth = phantom_effect_maps(source)
        if truth is None:
            st.caption("No ground-truth effect map is available for this cohort (only the "
                       "phantom presets have one), so only the observed difference is shown.")
        bins = list(means["age_bin"])
        males, females = means["sex"].get("M"), means["sex"].get("F")
        pairs = [("M − F", None if males is None or females is None
                  else difference_map(males, females), "sex",
                  "Red where men's average is brighter, blue where women's is; compare the "
                  "pattern with the true effect, not the absolute numbers.")]
        if len(bins) >= 2:
            old, young = bins[-1], bins[0]
            cells = means["sex_by_age_bin"]
            # Compare like with like: the oldest and youngest bins can hold very
            # different shares of women (HCP: 9/13 vs 84/231), so the age contrast is
            # taken within each sex and then averaged, or sex would pose as ageing.
            within = [difference_map(cells[f"{old}|{sex}"], cells[f"{young}|{sex}"])
                      for sex in ("F", "M") if f"{old}|{sex}" in cells and f"{young}|{sex}" in cells]
            if within:
                pairs.append((f"{old} − {young}", np.mean(within, axis=0), "age",
                              f"Oldest minus youngest bin (n={means['age_bin_counts'][old]} vs "
                              f"{means['age_bin_counts'][young]}), within each sex then averaged: "
                              "blue where tissue is lost with age, red where CSF grows."))
        for name, difference, effect, caption in pairs:
            if difference is None:
                st.info(f"{name}: one of the groups is empty in this cohort.")
                continue
            true_map = truth.get(effect) if truth else None
            st.plotly_chart(difference_figure(
                difference, cohort.affine, cursor=cursor, truth=true_map,
                labels=(f"observed {name}", f"true {effect} effect"),
                title=f"{name} mean difference", row_height=240), width="stretch")
            st.caption(caption)

# ---------------------------------------------------------------- morphometry
st.header("Morphometry")


@st.fragment
def morphometry_explorer() -> None:
    features = cohort.morphometry_columns
    if not features:
        st.info("This cohort has no morphometry columns.")
        return
    key = f"morphometry_feature_{cohort.fingerprint}"
    if st.session_state.get(key) not in features:
        start = query_value("feature", features[0])
        st.session_state[key] = start if start in features else features[0]
    feature = st.selectbox("Feature", features, key=key)
    sync_query(feature=feature)
    ages = table["age"].dropna()
    curves = None
    if len(ages):
        grid = np.linspace(ages.min(), ages.max(), 60)
        curves = phantom_true_curves(source, feature, grid)
    st.plotly_chart(feature_vs_age(table, feature, true_curves=curves, bin_labels=labels),
                    width="stretch")
    st.caption("Each dot is a subject: look for the sex gap and the slope with age"
               + ("; dashed lines are the phantom's true generating curves." if curves else
                  " (no true curve is known for this cohort or feature)."))


morphometry_explorer()
