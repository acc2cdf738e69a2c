"""GAN Lab live's parts: the sidebar settings and reset, and the redrawn figures with
captions that read this run's numbers."""

from __future__ import annotations

import numpy as np
import streamlit as st

from brainlab.live_gan import LOSSES, PRESET_NOTES, PRESETS, STARTS
from brainlab.viz.live_gan_plots import (
    accuracy_figure, distribution_figure, frechet_figure, losses_figure, strip_figure,
)

RATES = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2)
R1_WEIGHTS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
SETTINGS = {"lr_g": ("G learning rate", RATES), "lr_d": ("D learning rate", RATES),
            "r1_weight": ("R1 weight", R1_WEIGHTS)}
START_LABELS = {"gaussian": "the fitted Gaussian", "noise": "noise (random G)"}
RECENT = 20  # updates averaged in the captions


def _widget_key(name: str) -> str:
    return f"live_{name}"


def _options(values, current: float) -> list[float]:
    return sorted(set(values) | {float(current)})


def sync_widgets(live) -> None:
    """Set the settings widgets to the LiveGan's configuration (after a reset)."""
    for name in (*SETTINGS, "loss"):
        st.session_state[_widget_key(name)] = getattr(live.config, name)


def settings_sidebar(live) -> None:
    """Rates, loss and R1 weight, applied with ``live.set`` when changed; reset and presets."""
    for name in (*SETTINGS, "loss"):
        st.session_state.setdefault(_widget_key(name), getattr(live.config, name))
    with st.sidebar:
        st.markdown("### Settings (take effect at the next update)")
        values = {}
        for name, (label, options) in SETTINGS.items():
            values[name] = st.select_slider(
                label, _options(options, st.session_state[_widget_key(name)]),
                key=_widget_key(name), format_func=lambda v: f"{v:g}")
        values["loss"] = st.selectbox("Loss", LOSSES, key=_widget_key("loss"))
        changes = {k: v for k, v in values.items() if v != getattr(live.config, k)}
        if changes:
            live.set(**changes)
        st.markdown("### Start again")
        preset = st.selectbox("Preset", list(PRESETS), key="live_preset")
        st.caption(f"Measured on hcp-ya: {PRESET_NOTES[preset]}.")
        st.radio("Generator starts from", STARTS, key="live_start",
                         format_func=START_LABELS.get, horizontal=True)

        def reset() -> None:  # runs before the next run: read the choices made since
            live.reset(start=st.session_state["live_start"],
                       preset=st.session_state["live_preset"])
            sync_widgets(live)

        st.button("Reset", on_click=reset, icon=":material/restart_alt:", key="live_reset")
        st.slider("Updates per tick while playing", 1, 20, 3, key="live_per_tick",
                  help="Each tick (every 0.3 s) runs this many D+G updates, then redraws.")


def _recent(values, spec: str = ".3g") -> str:
    """The mean of the last ``RECENT`` finite values, formatted; '—' before any update."""
    finite = np.asarray(values[-RECENT:], dtype=float)
    finite = finite[np.isfinite(finite)]
    return format(float(finite.mean()), spec) if finite.size else "—"


def draw_snapshot(snapshot: dict) -> None:
    """The distribution view beside the histories, then the strip of decoded brains."""
    history, update = snapshot["history"], snapshot["update"]
    config = snapshot["config"]
    real_xy, fake_xy = snapshot["real_xy"], snapshot["fake_xy"]
    left, right = st.columns([3, 2])
    with left:
        figure = distribution_figure(real_xy, fake_xy, snapshot["grid_x"], snapshot["grid_y"],
                                     snapshot["d_scores"], snapshot["d_score_kind"],
                                     heldout_xy=snapshot["heldout_xy"])
        figure.update_layout(height=560)
        st.plotly_chart(figure, key="live_distribution", width="stretch")
        finite = fake_xy[np.isfinite(fake_xy).all(1)]
        spread = float(finite.std(0).sum() / real_xy.std(0).sum()) if len(finite) else float("nan")
        offset = (float(np.linalg.norm(finite.mean(0) - real_xy.mean(0)) / real_xy.std(0).mean())
                  if len(finite) else float("nan"))
        variance = snapshot["explained_variance"]
        st.caption(
            f"Update {update}: the {len(real_xy)} real training codes (green) and "
            f"{len(fake_xy)} generated codes from fixed z (purple) on the PCA plane of the real "
            f"codes (PC 1 {variance[0]:.0%}, PC 2 {variance[1]:.0%} of their variance); "
            f"background: D's {'P(real)' if snapshot['d_score_kind'] == 'probability' else 'critic score'} "
            f"(blue = looks real). Right now the generated cloud's spread is {spread:.2f}x the "
            f"real codes' and its centre is {offset:.2f} real SDs away from theirs"
            + (f"; {len(fake_xy) - len(finite)} codes are not finite" if len(finite) < len(fake_xy)
               else "") + ".")
    updates = history["update"]
    with right:
        figure = losses_figure(updates, history["d_loss"], history["g_loss"], history["penalty"])
        st.plotly_chart(figure.update_layout(height=230), key="live_losses", width="stretch")
        st.caption(f"{config['loss']} loss, last {RECENT} updates on average: D "
                   f"{_recent(history['d_loss'])}, G {_recent(history['g_loss'])}, "
                   f"penalty {_recent(history['penalty'])} (R1 weight {config['r1_weight']:g}).")
        figure = accuracy_figure(updates, history["d_real_accuracy"], history["d_fake_accuracy"])
        st.plotly_chart(figure.update_layout(height=230), key="live_accuracy", width="stretch")
        st.caption(f"D's minibatch accuracy, last {RECENT} updates: "
                   f"{_recent(history['d_real_accuracy'], '.0%')} on real, "
                   f"{_recent(history['d_fake_accuracy'], '.0%')} on generated codes.")
        gaussian = snapshot["gaussian_frechet_ratio"]
        figure = frechet_figure(updates, history["frechet_ratio"], gaussian)
        st.plotly_chart(figure.update_layout(height=230), key="live_frechet", width="stretch")
        ratios = np.asarray(history["frechet_ratio"], dtype=float)
        best = float(np.nanmin(ratios)) if np.isfinite(ratios).any() else float("nan")
        st.caption(f"This run: normalised Fréchet {ratios[-1]:.3g} at update {update} "
                   f"(started at {ratios[0]:.3g}, lowest {best:.3g}). Held-out real = 1; the "
                   f"fitted Gaussian scores {gaussian:.2f} because it matches the training "
                   f"statistics exactly.")
    if snapshot["strip"] is not None:
        draw_strip(snapshot["strip"], snapshot)


def draw_strip(strip, snapshot: dict) -> None:
    """The decoded brains from fixed z and when each was decoded."""
    if strip is None:
        return
    config, decoded = snapshot["config"], snapshot["strip_decoded_at"]
    st.plotly_chart(strip_figure(strip).update_layout(height=330), key="live_strip",
                    width="stretch")
    st.caption(f"{len(decoded)} brains decoded from fixed z, refreshed every "
               f"{config['strip_every']} updates; last decoded at updates "
               f"{', '.join(str(int(n)) for n in decoded)} (now {snapshot['update']}).")
