"""URL state: widgets whose first value comes from ``st.query_params`` and go back there.

A copied link reproduces the view. Each helper seeds a keyed widget's session state
from ``?name=`` once (checked against the options or clipped to the range, falling
back to the default) and writes the widget's value back to the URL on every run.
Keyed widgets keep consecutive choices (an unkeyed widget whose default follows the
URL gets a new identity each time the URL changes and can drop the next click).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import streamlit as st


def query_value(name: str, default: Any = None, cast: Callable[[str], Any] = str) -> Any:
    """``st.query_params[name]`` converted with ``cast``; ``default`` if absent or invalid."""
    raw = st.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except (TypeError, ValueError):
        return default


def sync_query(**values: Any) -> None:
    """Write values into the URL (None removes a key); only changed keys are written."""
    for name, value in values.items():
        if value is None:
            if name in st.query_params:
                del st.query_params[name]
            continue
        text = str(int(value)) if isinstance(value, bool) else str(value)
        if st.query_params.get(name) != text:
            st.query_params[name] = text


def _cast_for(default: Any) -> Callable[[str], Any]:
    if isinstance(default, bool):
        return lambda raw: raw == "1"
    return type(default) if default is not None else str


def url_state(name: str, default: Any, options=None, low=None, high=None) -> str:
    """The session-state key ``url_<name>``, seeded from ``?name=`` when unset or invalid.

    Pages share session state, so a value another page left under the same name is
    re-seeded when it is not among ``options`` or outside ``low``..``high``.
    """
    key = f"url_{name}"
    current = st.session_state.get(key, None)
    out_of_range = (low is not None and high is not None and current is not None
                    and not low <= current <= high)
    if current is None or out_of_range or (options is not None and current not in options):
        value = query_value(name, default, _cast_for(default))
        if options is not None and value not in options:
            value = default
        if low is not None and high is not None:
            value = type(default)(np.clip(value, low, high))
        st.session_state[key] = value
    return key


def url_choice(widget: Callable, label: str, options: list, name: str, default, **kwargs):
    """A selectbox/radio (``widget``, e.g. ``st.radio`` or ``column.selectbox``) kept in ``?name=``."""
    value = widget(label, options, key=url_state(name, default, options=options), **kwargs)
    sync_query(**{name: value})
    return value


def url_number(widget: Callable, label: str, low, high, name: str, default, sync: bool = True,
               **kwargs):
    """A slider/number_input (``widget``) between ``low`` and ``high`` kept in ``?name=``."""
    value = widget(label, low, high, key=url_state(name, default, low=low, high=high), **kwargs)
    value = type(default)(value)
    if sync:
        sync_query(**{name: value})
    return value


def url_slider(label: str, low, high, name: str, default, sync: bool = False, **kwargs):
    """``st.slider`` kept in ``?name=`` (written back only with ``sync``)."""
    return url_number(st.slider, label, low, high, name, default, sync=sync, **kwargs)


def url_checkbox(widget: Callable, label: str, name: str, default: bool, **kwargs) -> bool:
    """A checkbox kept in ``?name=`` as 1/0."""
    value = bool(widget(label, key=url_state(name, default), **kwargs))
    sync_query(**{name: value})
    return value
