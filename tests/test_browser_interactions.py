"""Real-browser end-to-end: one interaction per page, on the tiny phantom with its models.

One served app and one headless chromium for the whole walk (browser start-up is the
costly part). Each step opens a page by deep link, waits for its key element, drives
one widget the way a user would (found by its ``.st-key-<widget key>`` class), waits
until the app settles and checks the visible effect and that no exception is shown.
Skips like ``test_browser.py`` when chromium or playwright is missing. Screenshots go
under pytest's tmp dir and, when ``$BRAINLAB_SCREENSHOT_DIR`` is set, there too.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from app_helpers import CHROMIUM, CHROMIUM_ARGS, save_screenshot, serve_app, wait_until_idle

SLOW = 180_000  # ms: generous waits for a loaded 2-core machine (no timed assertions)


def settle(page, timeout_s: float = 240) -> None:
    """Wait until no script runs, the app is connected and no exception is shown."""
    wait_until_idle(page, timeout_s=timeout_s)
    # The status widget also shows a lost connection, so idle means connected too.
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()


def open_page(page, url: str, title: str, key_selector: str) -> None:
    """Deep link to a page; wait for its title and its key element, then settle."""
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector(key_selector, timeout=SLOW)
    settle(page)
    assert page.locator("h1").first.inner_text().strip() == title


def pick_option(page, widget_key: str, index: int) -> str:
    """Open the selectbox (a react-aria combobox) with key ``widget_key``, click its ``index``-th option; its text."""
    open_listbox(page, widget_key)
    option = page.locator('[role="listbox"] [role="option"]').nth(index)
    text = option.inner_text().strip()
    option.click()
    return text


def open_listbox(page, widget_key: str) -> None:
    """Click the combobox's Open button until its options show (a click that lands while
    the page reruns can be lost)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.monotonic() + SLOW / 1000
    while True:
        page.locator(f".st-key-{widget_key} button[aria-haspopup='listbox']").click()
        try:
            page.locator('[role="listbox"] [role="option"]').first.wait_for(timeout=5_000)
            return
        except PlaywrightTimeout:
            if time.monotonic() > deadline:
                raise
            page.keyboard.press("Escape")
            wait_until_idle(page, timeout_s=240)


def selected_text(page, widget_key: str) -> str:
    return page.locator(f".st-key-{widget_key} input[role='combobox']").input_value().strip()


def screenshot(page, tmp_path: Path, name: str) -> None:
    save_screenshot(page, tmp_path, f"interaction_{name}")


def pick_another_subject(page, url: str, title: str, viewer: str) -> None:
    """Open a page, pick the second subject in its Subject box: the box and the URL follow."""
    open_page(page, url, title, viewer)
    first = selected_text(page, "explorer_subject_box")
    second = pick_option(page, "explorer_subject_box", 1)
    assert second != first
    settle(page)
    assert selected_text(page, "explorer_subject_box") == second
    assert f"subject={second}" in page.url


def wait_for_text(page, selector: str, pattern: str, timeout_s: float = 240) -> re.Match:
    """Poll ``selector``'s text until ``pattern`` matches; the match."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        locator = page.locator(selector)
        text = (locator.first.text_content() or "") if locator.count() else ""  # SVG too
        match = re.search(pattern, text)
        if match:
            return match
        time.sleep(0.3)
    raise AssertionError(f"{pattern!r} never appeared in {selector}; last text: {text[-300:]!r}")


@pytest.fixture
def served_tiny_app(request, tmp_path):
    """The app on ``tiny`` with the tiny checkpoints (trained only when a browser exists)."""
    if not CHROMIUM.exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
    request.getfixturevalue("tiny")
    request.getfixturevalue("tiny_checkpoints")
    with serve_app("tiny", tmp_path / "streamlit.log") as url:
        yield url


def test_one_interaction_per_page(served_tiny_app, tmp_path):
    from playwright.sync_api import sync_playwright

    base = served_tiny_app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(SLOW)

            # Cohort: another subject in the Subject box; its id shows in the box and the URL.
            pick_another_subject(page, f"{base}/cohort?cohort=tiny", "Cohort",
                                 ".st-key-viewer .js-plotly-plot")
            screenshot(page, tmp_path, "cohort")

            # Latent space: 2D -> 3D; the 2D map gives way to a 3D one.
            open_page(page, f"{base}/latent_space?cohort=tiny", "Latent space",
                      "[class*='st-key-map_'] .js-plotly-plot")
            page.locator(".st-key-url_dims label", has_text="3").click()
            page.wait_for_selector("[class*='st-key-map3d_'] .js-plotly-plot", timeout=SLOW)
            settle(page)
            assert page.locator("[class*='st-key-map3d_'] .gl-container, "
                                "[class*='st-key-map3d_'] canvas").count() >= 1
            assert "dims=3" in page.url
            screenshot(page, tmp_path, "latent_space")

            # GAN lab: move the interpolation's frame slider; the shown frame follows.
            open_page(page, f"{base}/gan_lab?cohort=tiny&section=walk", "GAN lab",
                      ".st-key-walk_frame .js-plotly-plot")
            wait_for_text(page, ".st-key-walk_frame .gtitle", r"^frame 0 of")
            page.locator(".st-key-url_frame input[type='range']").focus()
            page.keyboard.press("ArrowRight")
            wait_for_text(page, ".st-key-walk_frame .gtitle", r"^frame 1 of")
            settle(page)
            assert "frame=1" in page.url
            screenshot(page, tmp_path, "gan_lab")

            # Train: start a morphometry-AE job with a long epoch cap, then cancel it.
            open_page(page, f"{base}/train?cohort=tiny", "Train", ".st-key-train_model")
            open_listbox(page, "train_model")
            page.locator('[role="listbox"] [role="option"]',
                         has_text="morphometry autoencoder").first.click()
            settle(page)
            page.locator(".st-key-train_epochs_morph-ae input").fill("10000")
            page.locator(".st-key-train_minutes_morph-ae input").fill("2")
            page.get_by_role("button", name=re.compile("Start training")).click()
            cancel = page.locator("[class*='st-key-cancel_'] button")
            cancel.wait_for(timeout=SLOW)
            assert "morphometry autoencoder on tiny" in selected_text(page, "train_job_choice")
            # The job panel reruns every few seconds, which can swallow a click: click
            # again while the button is still there and the job not yet cancelled.
            # The select's closed text can keep an option's old label, so the job's state is
            # read from the registry the served app shares (same BRAINLAB_CACHE) and from
            # the page's live view.
            from brainlab import jobs

            job_id = selected_text(page, "train_job_choice").split(" ")[0]
            deadline = time.monotonic() + 240
            while jobs.get_job(job_id)["status"] != "cancelled" or cancel.count():
                assert time.monotonic() < deadline, jobs.get_job(job_id)["status"]
                if cancel.count():
                    try:
                        cancel.click(timeout=5_000)
                    except Exception:  # re-rendered between count() and click()
                        pass
                time.sleep(3)
            wait_for_text(page, "[data-testid='stMain']", r"cancelled")
            settle(page)
            assert page.locator("[class*='st-key-cancel_'] button").count() == 0
            screenshot(page, tmp_path, "train")

            # GAN Lab live: play until the update counter reaches 20, then pause.
            open_page(page, f"{base}/gan_live?cohort=tiny", "GAN Lab live",
                      ".st-key-live_play button")
            page.locator(".st-key-live_play button").click()
            page.locator(".st-key-live_play button", has_text="Pause").wait_for(timeout=SLOW)
            wait_for_text(page, "[data-testid='stMain']", r"Update (?:[2-9]\d|\d{3,})\b")
            # The running view reruns every update, which can swallow a click: press Pause
            # again while the button still says Pause (no timed assertion: a deadline only
            # bounds the wait).
            play = page.locator(".st-key-live_play button")
            deadline = time.monotonic() + 240
            while not page.locator(".st-key-live_play button", has_text="Play").count():
                assert time.monotonic() < deadline, "the live GAN never paused"
                if play.filter(has_text="Pause").count():
                    play.click()
                page.wait_for_timeout(3000)
            settle(page)
            paused_at = int(wait_for_text(page, "[data-testid='stMain']", r"Update (\d+)").group(1))
            assert paused_at >= 20
            screenshot(page, tmp_path, "gan_live")

            # Reconstructions: another subject.
            pick_another_subject(page, f"{base}/reconstructions?cohort=tiny", "Reconstructions",
                                 ".st-key-recon_viewer .js-plotly-plot")
            screenshot(page, tmp_path, "reconstructions")

            # Classifiers: the real-vs-synthetic comparison appears once its work finishes.
            open_page(page, f"{base}/classifiers?cohort=tiny", "Classifiers",
                      ".st-key-distributions .js-plotly-plot")
            assert page.locator(".st-key-fractions .js-plotly-plot").count() == 1
            screenshot(page, tmp_path, "classifiers")

            # Teaching tour: the next step, then its Open button switches to its page.
            open_page(page, f"{base}/tour?cohort=tiny", "Teaching tour", ".st-key-open_1 button")
            page.locator(".st-key-url_step label", has_text="2. ").first.click()
            page.wait_for_selector(".st-key-open_2 button", timeout=SLOW)
            settle(page)
            assert page.locator("h2", has_text="Step 2 of").count() == 1
            target = page.locator(".st-key-open_2 button").inner_text().strip()
            screenshot(page, tmp_path, "tour")
            page.locator(".st-key-open_2 button").click()
            expected = target.split("Open", 1)[1].strip()
            page.wait_for_function(
                "title => document.querySelector('h1') && "
                "document.querySelector('h1').innerText.trim() === title", arg=expected,
                timeout=SLOW)
            settle(page)
            screenshot(page, tmp_path, "tour_opened")
        finally:
            browser.close()
