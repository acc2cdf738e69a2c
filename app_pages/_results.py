"""Derived results for the pages: from memory, from the disk store, or in the background.

``derived_result(function, *args, ...)`` takes one of the functions of
``brainlab.analysis.derived_results`` (the same ones and keys ``python -m brainlab
warm`` uses) and returns its value when it is in this process's memory or in the
result store on disk. Otherwise it starts (or joins) the background task for that
key and draws a progress bar with message and ETA inside ``st.fragment(run_every=1)``;
the page goes on drawing everything else, and when the task ends the fragment reruns
the page, which then finds the result. Two sessions asking for the same result share
one task. The memory layer (``st.cache_resource``, bounded) sits on top of the disk.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

import streamlit as st

from brainlab.analysis.derived_results import open_checkpoint, request, result_key
from brainlab.background import DONE, ERROR, QUEUED, runner
from brainlab.data.progress import format_seconds
from brainlab.result_store import default_store

MAX_RESULTS = 24        # values kept in memory (some hold stacks of volumes)
POLL_SECONDS = 1.0      # how often a progress bar asks its task how far it is
_MISSING = object()


@st.cache_resource(show_spinner=False)
def _memory() -> dict:
    return {"results": OrderedDict(), "lock": threading.Lock()}


def _remember(name: str, value) -> None:
    memory = _memory()
    with memory["lock"]:
        memory["results"][name] = value
        memory["results"].move_to_end(name)
        while len(memory["results"]) > MAX_RESULTS:
            memory["results"].popitem(last=False)


def _recall(name: str):
    memory = _memory()
    with memory["lock"]:
        if name in memory["results"]:
            memory["results"].move_to_end(name)
            return memory["results"][name]
    return _MISSING


@st.cache_resource(show_spinner=False, max_entries=64)
def _opened(path: str, identity: str, _model):
    return open_checkpoint(path, model=_model)


def checkpoint(model, card: dict | None):
    """The ``derived_results`` checkpoint of a model loaded by ``model_picker`` (its card
    carries the folder), opened once per process; None without a model."""
    if model is None or not card or not card.get("path"):
        return None
    from app_pages._checkpoint_identity import checkpoint_key

    return _opened(str(card["path"]), checkpoint_key(card), model)


def stored_result(function: Callable, *args, **kwargs):
    """The result if it is in memory or on disk, else None; never computes."""
    name = str(result_key(function, *args, **kwargs))
    value = _recall(name)
    if value is not _MISSING:
        return value
    key = result_key(function, *args, **kwargs)
    value = default_store().get(key, _MISSING)
    if value is _MISSING:
        task = runner().get(name)
        if task is None or task.state != DONE:
            return None
        value = task.result
    _remember(name, value)
    return value


def task_for(function: Callable, *args, **kwargs):
    """The background task of this result, if one was started (by anyone), else None."""
    return runner().get(str(result_key(function, *args, **kwargs)))


def derived_result(function: Callable, *args, label: str, background: bool = True,
                   show_partial: Callable[[list], None] | None = None,
                   error_text: Callable[[str], str] | None = None, **kwargs):
    """``function(*args, **kwargs)``'s value, or None while it is computed in the background.

    ``background=False``: compute it here with a progress bar (for results that take
    well under a second). ``show_partial(items)`` draws the task's partial results
    under its progress bar (e.g. the probe table row by row). A failed task shows
    ``error_text(message)`` (default: the label and the message) and returns None.
    """
    value = stored_result(function, *args, **kwargs)
    if value is not None:
        return value
    name = str(result_key(function, *args, **kwargs))
    if not background:
        bar = st.progress(0.0, text=label)
        try:
            value = function(*args, progress=lambda fraction, message="": bar.progress(
                min(1.0, max(0.0, float(fraction))), text=f"{label} {message}".strip()), **kwargs)
        finally:
            bar.empty()
        _remember(name, value)
        return value
    task = runner().get(name)
    if task is None or task.state != ERROR:
        task = request(function, *args, label=label, **kwargs)
    if task.state == DONE:
        _remember(name, task.result)
        return task.result
    if task.state == ERROR:
        text = error_text(task.error) if error_text else f"Could not compute {label}: {task.error}"
        st.error(text)
        st.button("Try again", key=f"retry_{name}", on_click=runner().forget, args=(name,))
        return None
    task_progress(name, label, show_partial)
    return None


def describe(snapshot: dict) -> str:
    """``"message · 12 s elapsed · ETA 30 s"`` of a task snapshot (or why it waits)."""
    if snapshot["state"] == QUEUED:
        running = [t.label for t in runner().tasks() if t.state == "running"]
        return "waiting for " + (running[0] if running else "the task before it")
    parts = [snapshot["message"] or "working"]
    if snapshot["elapsed_s"] is not None:
        parts.append(f"{format_seconds(snapshot['elapsed_s'])} elapsed")
    if snapshot["eta_s"] is not None:
        parts.append(f"ETA {format_seconds(snapshot['eta_s'])}")
    return " · ".join(parts)


@st.fragment(run_every=POLL_SECONDS)
def task_progress(name: str, label: str, show_partial: Callable[[list], None] | None = None):
    """A progress bar of task ``name`` that polls it; reruns the page when it ends."""
    task = runner().get(name)
    if task is None or task.done:
        st.rerun()
    snapshot = task.snapshot()
    st.progress(min(1.0, max(0.0, snapshot["fraction"])), text=f"{label}: {describe(snapshot)}")
    if show_partial is not None and snapshot["partial"]:
        show_partial(snapshot["partial"])
