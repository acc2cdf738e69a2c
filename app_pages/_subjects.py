"""The page's subject: from a click in a table or map, a selectbox, or ``?subject=``."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages._state import query_value, sync_query


def subject_choice(ids: list[str], picked: str | None = None, label: str = "Subject",
                   key: str = "explorer_subject", container=None) -> str:
    """``picked`` (a fresh click elsewhere) wins, else the last choice, else ``?subject=``,
    else the first id; shown as a selectbox and kept in the URL."""
    current = st.session_state.get(key) or query_value("subject")
    if picked in ids:
        current = picked
    if current not in ids:
        current = ids[0]
    widget_key = f"{key}_box"
    if picked in ids or st.session_state.get(widget_key) not in ids:
        st.session_state[widget_key] = current
    subject = (container or st).selectbox(label, ids, key=widget_key)
    st.session_state[key] = subject
    sync_query(subject=subject)
    return subject


def new_pick(name: str, value) -> object | None:
    """``value`` if it differs from the previous run's ``name`` pick, else None.

    Table/plot selections persist across reruns; only a fresh click should move the
    page's subject, so later selectbox choices are not overridden by an old click.
    """
    previous = st.session_state.get(f"_pick_{name}")
    st.session_state[f"_pick_{name}"] = value
    return value if value is not None and value != previous else None


def table_click(event, ids) -> str | None:
    """The subject id of the row clicked in a selectable ``st.dataframe``, or None."""
    rows = event.selection.rows if event is not None else []
    return str(ids[rows[0]]) if rows else None


def describe_subject(table: pd.DataFrame, index: int) -> str:
    """``"sub-0001 · female · 27.0 y"`` for row ``index`` of a cohort table."""
    row = table.iloc[index]
    age = f"{row['age']:.1f} y" if pd.notna(row["age"]) else "age n/a"
    sex = {"F": "female", "M": "male"}.get(str(row["sex"]), "sex n/a")
    return f"{row['subject_id']} · {sex} · {age}"
