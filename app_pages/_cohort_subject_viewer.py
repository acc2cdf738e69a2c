"""The Cohort page's subject table, picker and tri-planar viewer."""

import pandas as pd
import streamlit as st

from brainlab.analysis.cohort_means import age_bin_label
from brainlab.viz import triplanar_figure
from app_pages._cohort_views import intensity_range
from app_pages._slices import slice_cursor
from app_pages._subjects import describe_subject, new_pick, subject_choice, table_click


@st.cache_data(show_spinner=False, max_entries=8)
def _subject_view(fingerprint: str, _cohort) -> pd.DataFrame:
    """The subject table as shown: built once per cohort, not on every pick or slider move."""
    rows = _cohort.table
    return rows[["subject_id", "sex", "age"]].assign(
        **{"age bin": [age_bin_label(_cohort, int(c)) for c in rows["age_bin"]]},
        **{column: rows[column] for column in _cohort.morphometry_columns[:4]})


def subject_viewer(cohort) -> tuple[int, int, int] | None:
    """Subject table, picker, slice sliders and viewer; returns the slice cursor (None
    for a table-only cohort)."""
    table, has_images = cohort.table, cohort.images is not None
    st.caption("Click a row to view that subject (or use the selector below the table).")
    view = _subject_view(cohort.fingerprint, cohort)
    numbers = {column: st.column_config.NumberColumn(format="%.1f")
               for column in view.columns if column not in ("subject_id", "sex", "age bin")}
    event = st.dataframe(view, on_select="rerun", selection_mode="single-row",
                         hide_index=True, height=240, width="stretch", column_config=numbers,
                         key=f"subject_table_{cohort.fingerprint}")
    clicked = new_pick("cohort_table", table_click(event, cohort.subject_ids))
    subject = subject_choice(cohort.subject_ids, picked=clicked)
    if not has_images:
        st.info("This cohort is table-only (no images), so there is no brain to show.")
        return None
    cursor = slice_cursor(cohort.grid_shape)
    st.plotly_chart(
        triplanar_figure(cohort.images[cohort.index_of(subject)], cohort.affine, cursor=cursor,
                         value_range=intensity_range(cohort),
                         title=describe_subject(table, cohort.index_of(subject))),
        width="stretch", key="viewer")
    st.caption("Axial (anterior up), coronal and sagittal (superior up), left on the left; "
               "the colour range is fixed for the cohort so subjects compare fairly. "
               "Hover for intensity and MNI coordinates.")
    return cursor
