"""GAN Lab live: train the latent GAN in the browser and watch real and generated codes."""

import streamlit as st

from brainlab.checkpoints import read_card

from app_pages._cohort_picker import current_cohort
from app_pages._gan_live_session import save_tasks, session_live_gan, start_save
from app_pages._gan_live_views import draw_snapshot, draw_strip, settings_sidebar
from app_pages._models import checkpoints_for, model_picker

TICK_SECONDS = 0.3
STRIP_SECONDS = 2.0
_PLAYING_KEY = "live_playing"

cohort, source = current_cohort()
st.title("GAN Lab live")
st.markdown("Train brainlab's latent GAN live, one small update at a time, and watch the "
            "generated codes move against the real ones over the discriminator's decision "
            "(after GAN Lab, Kahng et al. 2018). The GAN works in the MRI autoencoder's "
            "code space, so an update takes milliseconds.")
if cohort.images is None:
    st.info("This cohort is table-only (no images); GAN Lab live needs brain images.")
    st.stop()
autoencoder, card = model_picker("mri-ae", cohort, source, show_card=False, key="live_pick_ae")
if autoencoder is None:
    st.stop()
path = next(e["path"] for e in checkpoints_for("mri-ae", cohort)  # the picked one's folder
            if read_card(e["path"]).get("created_at") == card.get("created_at"))
live, codes = session_live_gan(cohort, autoencoder, path)


@st.fragment(run_every=1.0)
def wait_for_codes() -> None:
    """Progress of the codes' encoding; the page redraws once they are ready."""
    snapshot = codes.snapshot()
    if snapshot["state"] == "done":
        st.rerun()
    if snapshot["state"] == "error":
        st.error(f"Encoding the training codes failed: {snapshot['error']}")
        return
    st.progress(snapshot["fraction"], text=f"Encoding the {cohort.name} subjects with the MRI "
                                           f"autoencoder (once per cohort and checkpoint) …")


if live is None:
    wait_for_codes()
    st.stop()

settings_sidebar(live)
playing = bool(st.session_state.get(_PLAYING_KEY, False))


def toggle_play() -> None:
    st.session_state[_PLAYING_KEY] = not st.session_state.get(_PLAYING_KEY, False)


controls = st.columns([1, 1, 1, 1, 2])
controls[0].button("Pause" if playing else "Play", on_click=toggle_play, type="primary",
                   icon=":material/pause:" if playing else ":material/play_arrow:",
                   key="live_play", width="stretch")


@st.fragment(run_every=TICK_SECONDS if playing else None)
def live_panel() -> None:
    """Step buttons, a few updates per tick while playing, and the redrawn view."""
    if controls[1].button("One D update", key="live_step_d", width="stretch"):
        live.step("d")
    if controls[2].button("One G update", key="live_step_g", width="stretch"):
        live.step("g")
    if controls[3].button("One of each", key="live_step_both", width="stretch"):
        live.step("both")
    if playing:
        live.step("both", int(st.session_state.get("live_per_tick", 3)))
    snapshot = live.snapshot(strip=not playing)  # while playing the strip has its own tick
    controls[4].markdown(
        f"**Update {snapshot['update']}** · {snapshot['d_steps']} D and {snapshot['g_steps']} "
        f"G steps · from {snapshot['start']} · preset {snapshot['preset'] or 'default'}")
    draw_snapshot(snapshot)


live_panel()


@st.fragment(run_every=STRIP_SECONDS)
def strip_panel() -> None:
    """While playing: the decoded brains, redrawn less often (decoding is the costly part)."""
    for _ in range(live.config.n_strip):  # decode every brain due since the last redraw
        live.decoded_strip()
    draw_strip(live.decoded_strip(), live.snapshot(strip=False))


if playing:
    strip_panel()

st.subheader("Save this run")
st.markdown("Saves the generator as it is now as a `gan` checkpoint with a card (held-out "
            "metrics, verdict), in the background; it then appears in the GAN pickers.")
if st.button("Save as checkpoint", icon=":material/save:", key="live_save"):
    start_save(live)


@st.fragment(run_every=2.0 if any(not t.done for t in save_tasks()) else None)
def save_status() -> None:
    for task in save_tasks():
        snapshot = task.snapshot()
        if snapshot["state"] == "done":
            st.success(f"Saved to `{task.result}`: listed in the GAN pickers.",
                       icon=":material/check_circle:")
        elif snapshot["state"] == "error":
            st.error(f"Saving failed: {snapshot['error']}")
        else:
            st.progress(snapshot["fraction"], text=f"{snapshot['label']}: "
                                                   f"{snapshot['message'] or 'queued'}")


save_status()
