"""Background work in the app: progress and partial results on the page, one computation
shared by two sessions, Home while the cohort builds, the warm-up on first start.

Slow work is faked with functions that wait on events, so each test controls exactly
when the work advances; nothing is timed.
"""

from __future__ import annotations

import sys
import threading

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

import app_helpers  # noqa: E402
from app_helpers import APP, rerun, run_settled  # noqa: E402
from conftest import make_small_cohort  # noqa: E402

sys.path.insert(0, str(app_helpers.REPO_ROOT))
from app_pages import _cohort_picker as picker  # noqa: E402
from brainlab.analysis import derived_results  # noqa: E402
from brainlab.result_store import ResultKey  # noqa: E402

TIMEOUT = 300  # per AppTest run: the first one imports torch and brainlab on a busy machine


class SlowRows:
    """A fake derived result: three table rows, each released by ``step``."""

    def __init__(self) -> None:
        self.calls = 0
        self.steps = threading.Semaphore(0)

    def key(self, name: str) -> ResultKey:
        return ResultKey("test-slow-rows", "", {}, {"name": name})

    def __call__(self, name: str, progress=None, partial=None):
        self.calls += 1
        rows = []
        for n in range(3):
            assert self.steps.acquire(timeout=30), "the test never released the next row"
            rows.append({"row": n, "name": name})
            partial(rows[-1])
            progress((n + 1) / 3, f"row {n + 1}/3")
        return rows


SCRIPT = """
import pandas as pd
import streamlit as st
from app_pages._results import derived_result
from test_app_background import SLOW

rows = derived_result(SLOW, "{name}", label="Slow rows",
                      show_partial=lambda items: st.dataframe(pd.DataFrame(items)))
if rows is not None:
    st.success(f"all {{len(rows)}} rows")
"""
SLOW = SlowRows()


@pytest.fixture
def slow(monkeypatch):
    global SLOW
    SLOW = SlowRows()
    monkeypatch.setitem(derived_results.KEY_FUNCTIONS, SLOW, SLOW.key)
    return SLOW


def session(name: str) -> AppTest:
    at = AppTest.from_string(SCRIPT.format(name=name), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def wait_for_rows(task, n: int) -> None:
    while len(task.snapshot()["partial"]) < n:
        task._done.wait(0.02)


def test_progress_and_partial_rows_show_until_the_result_is_there(slow, tmp_path):
    from brainlab.background import runner

    at = session(f"progress-{tmp_path.name}")
    task = runner().get(str(slow.key(f"progress-{tmp_path.name}")))
    assert task is not None and not task.done
    assert len(at.get("progress")) == 1 and len(at.dataframe) == 0 and not at.success
    slow.steps.release()
    wait_for_rows(task, 1)
    at.run()
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 1  # the first row shows
    assert "Slow rows: row 1/3" in at.get("progress")[0].proto.text
    slow.steps.release(2)
    task.wait(30)
    run_settled(at)
    assert [s.value for s in at.success] == ["all 3 rows"] and not at.get("progress")


def test_two_sessions_share_one_computation(slow, tmp_path):
    from brainlab.background import runner

    name = f"shared-{tmp_path.name}"
    first, second = session(name), session(name)
    assert slow.calls <= 1 and len(first.get("progress")) == len(second.get("progress")) == 1
    slow.steps.release(3)
    runner().get(str(slow.key(name))).wait(30)
    for at in (first, second):
        run_settled(at)
        assert [s.value for s in at.success] == ["all 3 rows"]
    assert slow.calls == 1


@pytest.fixture
def slow_build(monkeypatch):
    """``load`` of source "slow-build" waits for ``release``; it reports progress first."""
    picker._store.clear()
    release = threading.Event()
    real_load = picker.load

    def fake_load(source, progress=None):
        if source != "slow-build":
            return real_load(source, progress=progress)
        progress(0.25, "subjects 6/24 · 1 s elapsed · ETA 3 s")
        assert release.wait(60), "the slow build was never released"
        return make_small_cohort(name="slow-build")

    monkeypatch.setattr(picker, "load", fake_load)
    yield release
    release.set()
    picker._store.clear()


def test_home_shows_the_build_progress_and_other_pages_say_it_is_building(slow_build):
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["cohort"] = "slow-build"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["brainlab"]  # Home at once, not a blank page
    bars = at.get("progress")
    assert len(bars) == 1 and "subjects 6/24" in bars[0].proto.text and "ETA 3 s" in bars[0].proto.text
    at.switch_page("app_pages/cohort.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("is building (subjects 6/24" in i.value for i in at.info)
    assert not at.get("plotly_chart")
    slow_build.set()
    rerun(at)
    assert at.get("plotly_chart") and not any("is building" in i.value for i in at.info)


def test_a_failed_build_shows_its_error_once(monkeypatch):
    picker._store.clear()

    def broken_load(source, progress=None):
        raise ValueError(f"cannot read {source}")

    monkeypatch.setattr(picker, "load", broken_load)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["cohort"] = "broken"
    rerun(at)
    assert any("cannot read broken" in e.value for e in at.error)
    picker._store.clear()


def test_the_default_cohort_warms_once_per_process_with_a_sidebar_line(monkeypatch):
    """Two sessions on the default cohort start one warm-up; its items run as the tasks of
    their own store keys (so a page asking for one joins it)."""
    from app_pages import _warm
    from brainlab.background import runner

    picker._store.clear()
    _warm._warm_up.clear()
    cohort = make_small_cohort(name="warm-default")
    monkeypatch.setenv("BRAINLAB_DEFAULT_COHORT", "warm-default")
    monkeypatch.setattr(picker, "load", lambda source, progress=None: cohort)
    go, plans = threading.Event(), []

    def item(progress=None, store=None):
        assert go.wait(30), "the test never let the warm-up item finish"
        return [1, 2, 3]

    key = ResultKey("test-warm-item", cohort.fingerprint, {}, {})

    def fake_plan(warmed, evaluations=True):
        plans.append((warmed, evaluations))
        return [derived_results.WarmItem("fake item", key, item)]

    monkeypatch.setattr(derived_results, "warm_plan", fake_plan)
    sessions = []
    for _ in range(2):
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        sessions.append(at)
    while runner().get(str(key)) is None:  # the warm thread has listed the plan
        threading.Event().wait(0.02)
    assert len(plans) == 1 and plans[0][0] is cohort
    assert plans[0][1] is False  # no page shows evaluations: the warm-up leaves them out
    at.run()
    assert any("Preparing results 0/1 · fake item" in p.proto.text
               for p in at.sidebar.get("progress"))
    go.set()
    assert runner().get(str(key)).wait(30) == [1, 2, 3]
    _warm.warm_up(cohort).finished.wait(30)
    rerun(at)
    assert not at.sidebar.get("progress")  # done: the line (and its polling) is gone
    _warm._warm_up.clear()
    picker._store.clear()
