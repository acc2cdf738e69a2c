"""The app warms itself: on first start, the default cohort's derived results are computed.

Once per server process (not per session), when the result store lacks some of
``warm_plan(cohort, evaluations=False)`` (what the pages show by default with the
shipped models; no page shows evaluations), two lanes work through the missing items
(an item waits for the stored inputs it reads). Each item runs as the background task of
its own store key, so a page asking for the same result joins that task, and a
page asking for another result waits for one item, not for the whole warm-up.
A line in the sidebar shows how far it is while it runs; nothing polls once it is done.
Set ``BRAINLAB_APP_WARM=0`` to switch it off.
"""

from __future__ import annotations

import os
import threading
import time

import streamlit as st

from brainlab.background import runner
from brainlab.data.progress import format_seconds
from brainlab.result_store import default_store


class WarmUp:
    """The missing items of a cohort's warm plan, computed one after another."""

    def __init__(self, cohort) -> None:
        self.cohort = cohort
        self.total, self.done, self.current = 0, 0, "listing results"
        self.failed: dict[str, str] = {}
        self.started = time.monotonic()
        self.finished = threading.Event()
        threading.Thread(target=self._run, name="brainlab-warm", daemon=True).start()

    def _run(self) -> None:
        from brainlab.analysis.derived_results import run_plan, warm_plan

        try:
            store = default_store()
            # Evaluations (minutes each) are for the CLI and model cards; no page shows them.
            missing = [item for item in warm_plan(self.cohort, evaluations=False)
                       if not store.contains(item.key)]
            self.total = len(missing)
            running: list[str] = []
            lock = threading.Lock()

            def run_item(item) -> None:
                with lock:
                    running.append(item.label)
                    self.current = " + ".join(running)
                task = runner().submit(item.key, item.compute, label=item.label)
                try:
                    task.wait()
                except RuntimeError as error:  # one failing item does not stop the others
                    self.failed[item.label] = str(error)
                with lock:
                    running.remove(item.label)
                    self.current = " + ".join(running) or item.label
                    self.done += 1

            run_plan(missing, run_item)  # as many lanes as the runner has workers
        except Exception as error:  # e.g. an unreadable checkpoint folder
            self.failed["warm plan"] = str(error)
        finally:
            self.finished.set()

    def line(self) -> str:
        """``"preparing results 3/20 · UMAP 2D: MRI autoencoder · ETA 1 min 10 s"``."""
        text = f"Preparing results {self.done}/{self.total or '?'} · {self.current}"
        if self.done:
            elapsed = time.monotonic() - self.started
            text += f" · ETA {format_seconds(elapsed * (self.total - self.done) / self.done)}"
        return text


@st.cache_resource(show_spinner=False, max_entries=4)
def _warm_up(fingerprint: str, _cohort) -> WarmUp | None:
    if os.environ.get("BRAINLAB_APP_WARM", "1").strip() in ("0", "false", "no"):
        return None
    return WarmUp(_cohort)


def warm_up(cohort) -> WarmUp | None:
    """The process's warm-up of ``cohort`` (started on the first call), or None if off."""
    return _warm_up(str(cohort.fingerprint), cohort)


def warm_sidebar(cohort) -> None:
    """Start the warm-up once per process; a small progress line in the sidebar meanwhile."""
    warming = warm_up(cohort)
    if warming is None or warming.finished.is_set():
        return
    with st.sidebar:
        _warm_line(str(cohort.fingerprint), cohort)


# A line for a minutes-long warm-up: polled slowly, the polls' CPU goes to the warm-up.
WARM_POLL_S = 5.0


@st.fragment(run_every=WARM_POLL_S)
def _warm_line(fingerprint: str, _cohort) -> None:
    warming = warm_up(_cohort)
    if warming is None or warming.finished.is_set():
        st.rerun()  # once: the page redraws without this line, so nothing polls any more
    st.progress(warming.done / max(warming.total, 1), text=warming.line())
    st.caption("Pages find these results ready once they are done; what you open "
               "meanwhile is computed next.")
