"""App-side helpers of the explorer pages (Reconstructions, Latent space).

- ``checkpoint_key(card)``: a stable identity of a loaded checkpoint for cache keys.
- ``cached_result(kind, key, compute)``: a per-process store for results that take
  seconds and report progress (``st.cache_data`` cannot drive a progress bar made
  outside it); bounded, oldest dropped first.
- ``slice_cursor(shape)``: one set of x/y/z sliders, kept in the URL.
- ``subject_choice(...)``: the subject of this page, from a table click, a selectbox
  or the URL.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

import numpy as np
import streamlit as st

from pages._shared import query_value, sync_query

MAX_RESULTS = 24


def checkpoint_key(card: dict | None) -> str:
    """Model type, cohort fingerprint, creation time and size: differs between checkpoints."""
    if not card:
        return "none"
    cohort = card.get("cohort", {})
    return "|".join(str(part) for part in (card.get("model_type"), cohort.get("fingerprint"),
                                           card.get("created_at"), card.get("n_parameters"),
                                           card.get("training", {}).get("steps")))


@st.cache_resource(show_spinner=False)
def _result_store() -> dict:
    return {"results": OrderedDict(), "lock": threading.Lock()}


def cached_result(kind: str, key: tuple, compute: Callable, message: str):
    """``compute(progress)`` once per ``(kind, key)`` per server process, with a progress bar."""
    store = _result_store()
    full_key = (kind,) + tuple(key)
    with store["lock"]:
        if full_key in store["results"]:
            store["results"].move_to_end(full_key)
            return store["results"][full_key]
    bar = st.progress(0.0, text=message)

    def progress(fraction: float, text: str = "") -> None:
        bar.progress(float(min(1.0, max(0.0, fraction))), text=f"{message} {text}".strip())

    try:
        result = compute(progress)
    finally:
        bar.empty()
    with store["lock"]:
        store["results"][full_key] = result
        while len(store["results"]) > MAX_RESULTS:
            store["results"].popitem(last=False)
    return result


def peek_result(kind: str, key: tuple):
    """A result ``cached_result`` already holds, or None (never computes)."""
    return _result_store()["results"].get((kind,) + tuple(key))


def slice_cursor(shape: tuple[int, int, int], prefix: str = "") -> tuple[int, int, int]:
    """Three sliders (x, y, z voxel index) that drive every tri-planar view of the page."""
    names = ("x: left → right", "y: posterior → anterior", "z: inferior → superior")
    cursor = []
    for axis, (column, name, size) in enumerate(zip(st.columns(3), names, shape)):
        key = f"{prefix}slice_{'xyz'[axis]}_{'x'.join(map(str, shape))}"
        if key not in st.session_state:
            start = query_value("xyz"[axis], size // 2, int)
            st.session_state[key] = int(np.clip(start, 0, size - 1))
        cursor.append(column.slider(name, 0, size - 1, key=key))
    sync_query(x=cursor[0], y=cursor[1], z=cursor[2])
    return tuple(cursor)


def subject_choice(ids: list[str], picked: str | None = None, label: str = "Subject",
                   key: str = "explorer_subject") -> str:
    """The page's subject: ``picked`` (a click elsewhere) wins, else the last choice,
    else ``?subject=``, else the first id; shown as a selectbox and kept in the URL."""
    current = st.session_state.get(key) or query_value("subject")
    if picked in ids:
        current = picked
    if current not in ids:
        current = ids[0]
    widget_key = f"{key}_box"
    if picked in ids or st.session_state.get(widget_key) not in ids:
        st.session_state[widget_key] = current
    subject = st.selectbox(label, ids, key=widget_key)
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


def url_choice(widget: Callable, label: str, options: list, name: str, default, **kwargs):
    """A keyed selectbox/radio whose first value comes from ``?name=`` and whose choice
    is written back to the URL.

    Keyed, so consecutive choices stick (an unkeyed widget whose default follows the
    URL gets a new identity each time the URL changes and can drop the next click).
    """
    key = f"url_{name}"
    if st.session_state.get(key) not in options:
        value = query_value(name, default, type(default) if default is not None else str)
        st.session_state[key] = value if value in options else default
    value = widget(label, options, key=key, **kwargs)
    sync_query(**{name: value})
    return value


def url_slider(label: str, low, high, name: str, default, step=None, **kwargs):
    """A keyed slider whose first value comes from ``?name=`` (clipped to its range)."""
    key = f"url_{name}"
    if key not in st.session_state:
        value = query_value(name, default, type(default))
        st.session_state[key] = type(default)(np.clip(value, low, high))
    return st.slider(label, low, high, step=step, key=key, **kwargs)
