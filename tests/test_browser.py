"""Real-browser smoke tests: serve the app, open pages by deep link in headless chromium.

Uses the Playwright pip package with Debian's chromium (``/usr/bin/chromium``, or
``$BRAINLAB_CHROMIUM``); browsers are never downloaded. Skips with a reason when
either is missing. The screenshot is saved under pytest's tmp dir and, when
``$BRAINLAB_SCREENSHOT_DIR`` is set, copied there too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app_helpers import CHROMIUM, CHROMIUM_ARGS, save_screenshot, serve_app, wait_until_idle


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


@pytest.fixture
def served_app(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
    with serve_app(cohort_source(tmp_path), tmp_path / "streamlit.log") as url:
        yield url


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
            save_screenshot(page, tmp_path, "cohort")
        finally:
            browser.close()


def test_every_page_opens_by_deep_link(served_app, tmp_path):
    """Each page's URL path, as the first request of a fresh browser, opens that page
    (through app.py's navigation: its title, the cohort picker, no exception)."""
    from playwright.sync_api import sync_playwright

    from app_pages._catalog import existing_pages

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            pages = existing_pages()
            for info in pages:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{served_app}/{info.url_path}", wait_until="domcontentloaded")
                page.wait_for_selector("h1", timeout=180_000)
                wait_until_idle(page, timeout_s=240)
                title = "brainlab" if info.url_path == "home" else info.title
                assert page.locator("h1").first.inner_text().strip() == title, info.url_path
                assert page.locator('[data-testid="stException"]').count() == 0, \
                    page.locator('[data-testid="stException"]').first.inner_text()
                assert "cohort=" in page.url  # the picker ran and wrote its choice
                nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
                assert all(other.title in nav for other in pages)
                save_screenshot(page, tmp_path, info.url_path)
                page.close()
        finally:
            browser.close()
