"""Driving the app in tests: AppTest helpers, and app.py served for a real browser.

Imported by the page tests (``from app_helpers import open_page, ...``) the way they
import ``conftest``. Streamlit is imported only where it is needed, so browser tests
can skip cleanly without it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pytest

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parents[1]
APP = REPO_ROOT / "app.py"
CHROMIUM = Path(os.environ.get("BRAINLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# ---------------------------------------------------------------- AppTest

def open_page(source: str, page: str, *, timeout: float, **params) -> AppTest:
    """Run app.py with ``?cohort=source&...`` and switch to ``app_pages/<page>.py``.

    ``timeout`` is AppTest's default per-run timeout in seconds.
    """
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=timeout)
    at.query_params["cohort"] = source
    for name, value in params.items():
        at.query_params[name] = str(value)
    run_settled(at)
    if page != "home":
        run_settled(at.switch_page(f"app_pages/{page}.py"))
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun(at: AppTest) -> AppTest:
    run_settled(at)
    assert not at.exception, [e.value for e in at.exception]
    return at


def background_busy() -> bool:
    """Whether a cohort build or a background task of this process is still running."""
    sys.path.insert(0, str(REPO_ROOT))
    from app_pages._cohort_picker import _store
    from brainlab.background import runner

    builds = list(_store()["builds"].values())
    return (any(not b.finished.is_set() for b in builds)
            or any(not t.done for t in runner().tasks()))


def wait_for_background(timeout: float = 180) -> None:
    """Block until every cohort build and background task of this process has ended."""
    sys.path.insert(0, str(REPO_ROOT))
    from app_pages._cohort_picker import _store
    from brainlab.background import runner

    deadline = time.monotonic() + timeout
    while background_busy():
        if time.monotonic() > deadline:
            raise AssertionError(f"background work still running after {timeout:.0f} s")
        for build in list(_store()["builds"].values()):
            build.finished.wait(0.05)
        for task in runner().tasks():
            task._done.wait(0.05)


def run_settled(at: AppTest, timeout: float = 180) -> AppTest:
    """``at.run()``, then rerun as a browser would (the progress fragments rerun the page)
    until no cohort build or background task the page waits for is left."""
    from brainlab.background import runner

    for _ in range(30):
        began = time.monotonic()
        at.run()
        wait_for_background(timeout)
        finished_since = any(t.finished is not None and t.finished >= began
                             for t in runner().tasks())
        building = "brainlab_cohort" in at.session_state and at.session_state["brainlab_cohort"] is None
        if not finished_since and not building:
            return at
    raise AssertionError("the page kept waiting for background work after 30 reruns")


def widget(elements, label):
    matches = [e for e in elements if e.label == label]
    assert matches, f"no widget labelled {label!r}; found {[e.label for e in elements]}"
    return matches[0]


def query(at: AppTest, name: str):
    value = at.query_params.get(name)
    return value[0] if isinstance(value, list) else value


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def array(value, dtype=None) -> np.ndarray:
    """A plotly JSON array: a list (read as ``dtype``), or plotly>=6's base64 typed array."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = tuple(int(n) for n in str(value.get("shape", len(flat))).split(","))
        return flat.reshape(shape)
    return np.asarray(value, dtype=dtype)


# ---------------------------------------------------------------- real browser

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_SCRIPT_STATE = ("() => { const app = document.querySelector('[data-test-script-state]');"
                 " return app ? app.getAttribute('data-test-script-state') : null; }")


def wait_until_idle(page, timeout_s: float) -> None:
    """Wait until no script run has been going for a moment (Streamlit's script state on
    the app element; the status widget is hidden by the minimal toolbar)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        if (page.evaluate(_SCRIPT_STATE) not in ("initial", "running")
                and page.locator('[data-testid="stStatusWidget"]').count() == 0):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.5:
                return
        else:
            quiet_since = None
        time.sleep(0.25)
    raise AssertionError(f"the app was still running after {timeout_s:.0f} s")


@contextmanager
def serve_app(default_cohort: str, log_path: Path | None = None) -> Iterator[str]:
    """``streamlit run app.py`` on a free local port; yields its URL once it is healthy.

    The server opens ``default_cohort`` (``BRAINLAB_DEFAULT_COHORT``) and shares this
    process's environment, so it sees the same ``BRAINLAB_CACHE``. Its output goes to
    ``log_path`` (quoted when it fails to start) or nowhere. Stopped on exit.
    """
    port = free_port()
    env = dict(os.environ, BRAINLAB_DEFAULT_COHORT=default_cohort)
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true",
               "--browser.gatherUsageStats", "false"]
    if log_path is None:
        server = subprocess.Popen(command, cwd=REPO_ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        with open(log_path, "w") as log:
            server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    if log_path is None:
                        pytest.fail("streamlit did not start")
                    pytest.fail(f"streamlit did not start:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def save_screenshot(page, folder: Path, stem: str) -> None:
    """A full-page screenshot ``folder/<stem>.png`` (checked non-trivial), also copied to
    ``$BRAINLAB_SCREENSHOT_DIR`` when that is set, to look at after a run."""
    shot = folder / f"{stem}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    target = os.environ.get("BRAINLAB_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)
