"""AppTests of the GAN Lab live page on the ``tiny`` phantom (tiny fixture checkpoints):
the step buttons move the session's LiveGan, settings from the widgets take effect,
reset and presets start again, and nothing raises."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("streamlit")

import app_helpers  # noqa: E402
from app_helpers import rerun, widget  # noqa: E402

TIMEOUT = 120


def open_live():
    at = app_helpers.open_page("tiny", "gan_live", timeout=TIMEOUT)
    deadline = time.monotonic() + 90  # the codes are encoded in the background once
    while "gan_live" not in at.session_state and time.monotonic() < deadline:
        time.sleep(0.3)
        at = rerun(at)
    assert "gan_live" in at.session_state, "the LiveGan was never built"
    return at


def _press(at, label: str):
    widget(at.button, label).click()
    return rerun(at)


def charts(at) -> set[str]:
    return {chart.proto.id.rsplit("-", 1)[-1] for chart in at.get("plotly_chart")}


@pytest.mark.usefixtures("one_torch_thread")
def test_steps_move_the_live_gan(with_models):
    at = open_live()
    live = at.session_state["gan_live"]
    assert {"live_distribution", "live_losses", "live_accuracy", "live_frechet",
            "live_strip"} <= charts(at)
    assert live.updates == 0
    before = live.generated_codes().copy()
    at = _press(at, "One D update")
    assert (live.d_steps, live.g_steps) == (1, 0)
    assert (live.generated_codes() == before).all()  # D moved, G did not
    at = _press(at, "One G update")
    assert (live.d_steps, live.g_steps) == (1, 1)
    assert not (live.generated_codes() == before).all()
    at = _press(at, "One of each")
    assert (live.d_steps, live.g_steps, live.updates) == (2, 2, 3)
    assert any("Update 3" in m.value for m in at.markdown)
    assert any("normalised Fréchet" in c.value and "at update 3" in c.value for c in at.caption)


@pytest.mark.usefixtures("one_torch_thread")
def test_settings_apply_while_running_and_reset_starts_again(with_models):
    at = open_live()
    live = at.session_state["gan_live"]
    widget(at.select_slider, "G learning rate").set_value(2e-3)
    widget(at.select_slider, "R1 weight").set_value(0.0)
    widget(at.selectbox, "Loss").set_value("hinge")
    at = rerun(at)
    assert (live.config.lr_g, live.config.r1_weight, live.config.loss) == (2e-3, 0.0, "hinge")
    assert live.optimizers["g"].param_groups[0]["lr"] == 2e-3
    at = _press(at, "One of each")
    assert live.updates == 1
    widget(at.selectbox, "Preset").set_value("no R1")
    widget(at.radio, "Generator starts from").set_value("noise")
    at = _press(at, "Reset")
    assert (live.updates, live.start, live.preset) == (0, "noise", "no R1")
    assert live.config.r1_weight == 0.0 and live.config.lr_d == 3e-3
    # The widgets now show the preset's settings.
    assert widget(at.select_slider, "D learning rate").value == 3e-3
    assert widget(at.selectbox, "Loss").value == "non-saturating"


@pytest.mark.usefixtures("one_torch_thread")
def test_play_runs_updates_per_tick(with_models):
    at = open_live()
    live = at.session_state["gan_live"]
    widget(at.slider, "Updates per tick while playing").set_value(4)
    at = _press(at, "Play")
    assert live.updates == 4  # the first tick ran with the page
    assert widget(at.button, "Pause") is not None
    at = _press(at, "Pause")
    updates = live.updates
    at = rerun(at)
    assert live.updates == updates


@pytest.mark.usefixtures("one_torch_thread")
def test_save_as_checkpoint_lands_in_the_gan_pickers(with_models):
    from brainlab.background import runner
    from brainlab.checkpoints import available, read_card

    at = open_live()
    at = _press(at, "One of each")
    at = _press(at, "Save as checkpoint")
    (key,) = at.session_state["gan_live_saves"]
    saved = runner().get(key).wait(timeout=240)
    assert "/tiny/gan-live-" in saved and saved.endswith("-u1")
    card = read_card(saved)
    assert card["training"]["live"] and card["training"]["updates"] == 1
    assert card["metrics"]["split"] == "test"
    assert saved in [e["path"] for e in available() if e["model_type"] == "gan"]
    at = rerun(at)
    assert any(saved in s.value for s in at.success)
