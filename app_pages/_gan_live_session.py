"""GAN Lab live's state: one ``LiveGan`` per browser session, on cached codes.

Encoding the real training codes is the slow part (~100 s on hcp-ya under load), so the
codes are the ``mri-ae`` latents of ``brainlab.analysis.derived_results`` (the result
store, keyed by the cohort fingerprint and the checkpoint digest; computed in the
background once per server and shared with the Latent space page and ``warm``). Building
a ``LiveGan`` on them takes well under a second. Saving runs in the background on a
frozen copy, staged outside the checkpoint folders and moved in with one ``os.replace``.
"""

from __future__ import annotations

import copy
import os
import shutil
from datetime import datetime, timezone

import streamlit as st

from brainlab import paths
from brainlab.analysis.derived_results import latents, open_checkpoint, request
from brainlab.background import runner
from brainlab.live_gan import LiveGan, LiveGanConfig

from app_pages._results import stored_result

LIVE_KEY = "gan_live"              # session_state: the session's LiveGan
IDENTITY_KEY = "gan_live_identity"  # (cohort fingerprint, checkpoint digest) it was built on
SAVES_KEY = "gan_live_saves"       # keys of this session's save tasks, oldest first


def codes_task(cohort, checkpoint):
    """The background task computing (or reading) the cohort's mri-ae codes."""
    return request(latents, cohort, "mri-ae", checkpoint,
                   label=f"encoding {cohort.name} with the MRI autoencoder")


def session_live_gan(cohort, autoencoder, checkpoint_path: str):
    """This session's ``LiveGan`` (built once the codes are ready) and, while they are
    computed, their background task (else None)."""
    checkpoint = open_checkpoint(checkpoint_path)
    identity = (str(cohort.fingerprint), checkpoint.digest)
    live = st.session_state.get(LIVE_KEY)
    if live is not None and st.session_state.get(IDENTITY_KEY) == identity:
        return live, None
    # Stored codes are read here: through a background task the page drew a progress
    # bar and redrew itself a poll later, even when the codes were on disk.
    codes = stored_result(latents, cohort, "mri-ae", checkpoint)
    if codes is None:
        task = codes_task(cohort, checkpoint)
        if task.state != "done":
            return None, task
        codes = task.result
    split = cohort.split(checkpoint.split_seed)
    live = LiveGan(autoencoder, cohort, LiveGanConfig(), split=split,
                   train_codes=codes[split.train], heldout_codes=codes[split.val],
                   split_seed=checkpoint.split_seed)
    st.session_state[LIVE_KEY] = live
    st.session_state[IDENTITY_KEY] = identity
    return live, None


def frozen_copy(live: LiveGan) -> LiveGan:
    """A copy whose generator and histories no longer move (cohort, codes: shared)."""
    frozen = copy.copy(live)
    frozen.gan = copy.deepcopy(live.gan)
    frozen.history = {key: list(values) for key, values in live.history.items()}
    return frozen


def _save_into_checkpoints(frozen: LiveGan, name: str, progress=None) -> str:
    staging = paths.cache_root() / "live-gan-staging" / name.replace("/", "_")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    frozen.save(staging, progress=progress)
    final = paths.user_checkpoints() / name
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, final)  # listed by the pickers only once complete
    return str(final)


def start_save(live: LiveGan):
    """Save the live GAN as it is now, in the background; the task."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = f"{live.cohort.name}/gan-live-{stamp}-u{live.updates}"
    task = runner().submit(f"live-gan-save/{name}", _save_into_checkpoints, frozen_copy(live),
                           name, label=f"saving the live GAN as {name}")
    st.session_state.setdefault(SAVES_KEY, []).append(task.key)
    return task


def save_tasks() -> list:
    """This session's save tasks, newest first."""
    tasks = [runner().get(key) for key in st.session_state.get(SAVES_KEY, [])]
    return [task for task in reversed(tasks) if task is not None]
