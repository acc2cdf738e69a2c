"""One real-browser smoke test: serve the app, open the Cohort page in headless chromium.

Uses the Playwright pip package with Debian's chromium (``/usr/bin/chromium``, or
``$BRAINLAB_CHROMIUM``); browsers are never downloaded. Skips with a reason when
either is missing. The screenshot is saved under pytest's tmp dir and, when
``$BRAINLAB_SCREENSHOT_DIR`` is set, copied there too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("BRAINLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cohort_source(tmp_path: Path) -> str:
    """The tiny phantom when it exists, else a small HCP-tensor folder."""
    try:
        from brainlab.data.phantom import load_phantom  # noqa: F401
        return "tiny"
    except ImportError:
        rng = np.random.default_rng(0)
        shape = (12, 14, 16)
        np.save(tmp_path / "images.npy", rng.uniform(0, 1, (8,) + shape).astype(np.float32))
        np.save(tmp_path / "sex.npy", (np.arange(8) % 2).astype(np.uint8))
        np.save(tmp_path / "age.npy", (np.arange(8) % 4).astype(np.uint8))
        return str(tmp_path)


def wait_until_idle(page, timeout_s: float) -> None:
    """Wait until Streamlit's running indicator has been gone for a moment."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.5:
                return
        else:
            quiet_since = None
        time.sleep(0.25)
    raise AssertionError(f"the app was still running after {timeout_s:.0f} s")


@pytest.fixture
def served_app(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
    port = free_port()
    env = dict(os.environ, BRAINLAB_DEFAULT_COHORT=cohort_source(tmp_path))
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def test_cohort_page_renders_in_chromium(served_app, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # A deep link as the first request: must still go through app.py's navigation.
            page.goto(f"{served_app}/cohort", wait_until="domcontentloaded")
            page.wait_for_selector(".st-key-viewer .js-plotly-plot", timeout=180_000)
            wait_until_idle(page, timeout_s=180)
            assert page.locator('[data-testid="stException"]').count() == 0, \
                page.locator('[data-testid="stException"]').first.inner_text()
            assert page.locator("h1").first.inner_text().strip() == "Cohort"
            nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
            assert "Home" in nav and "shared" not in nav.lower()
            # Three slices in the viewer, drawn by plotly in the browser.
            assert page.locator(".st-key-viewer .heatmaplayer image, .st-key-viewer .hm").count() >= 3
            shot = tmp_path / "cohort.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            target = os.environ.get("BRAINLAB_SCREENSHOT_DIR")
            if target:
                Path(target).mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, Path(target) / "cohort.png")
        finally:
            browser.close()
