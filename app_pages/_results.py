"""A per-process store for results that take seconds and report progress.

``st.cache_data`` cannot drive a progress bar made outside it, so these results are
kept here, bounded (oldest dropped first) and shared by every session.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

import streamlit as st

MAX_RESULTS = 24


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
