"""The sidebar cohort picker, drawn once by ``app.py`` before the page runs.

``cohort_sidebar()`` shows the picker (presets, uploads, a server path), loads the
chosen cohort and keeps ``?cohort=`` in the URL; pages read the result with
``current_cohort()``. Loading is shared by the whole server process: one background
build per source, so a build never blocks pages (Home shows its progress bar and
ETA, other pages say the cohort is building), pages of other cohorts are served
meanwhile, and sessions asking for the same source share that one build. The
default cohort also starts the derived results' warm-up (``_warm.py``). Uploads are stored by
``brainlab.data.upload`` under ``<cache>/uploads/<hash>/``: the source of an upload
is that real path, so a suggested CLI command works when copied. A session's
uploads are released when it uploads another file or ends; the cache is pruned to
its size cap and age limit on start and on each new upload.
"""

from __future__ import annotations

import os
import threading
import weakref

import streamlit as st

from brainlab.data import DEFAULT_PRESET, PRESET_NAMES, Cohort, load
from brainlab.data.upload import extract_upload, prune_uploads, remove_upload, upload_folder
from brainlab.errors import BrainlabInputError
from app_pages._state import query_value, sync_query

PRESET_DESCRIPTIONS = {
    "hcp-ya": "HCP-YA phantom (22–37 y)",
    "lifespan": "lifespan phantom (20–90 y)",
    "tiny": "tiny phantom (for tests)",
}
_SOURCE_KEY = "brainlab_source"
_PICKER_KEY = "brainlab_cohort_picker"
_LOADED_KEY = "brainlab_cohort"
_UPLOADS_KEY = "brainlab_uploads"     # {path: original file name} of this session
_LEASE_KEY = "brainlab_upload_lease"
BUILD_WAIT_S = 1.5      # a warm load finishes in this time; a cold build goes on in the background


def default_source() -> str:
    """The cohort shown when the URL names none: ``$BRAINLAB_DEFAULT_COHORT`` or hcp-ya."""
    return os.environ.get("BRAINLAB_DEFAULT_COHORT", "").strip() or DEFAULT_PRESET


# ---------------------------------------------------------------- loading, shared by sessions

@st.cache_resource(show_spinner=False)
def _store() -> dict:
    """Process-wide: loaded cohorts, builds in progress, upload use counts."""
    prune_uploads()  # on start: anything beyond the cap or age limit left by earlier runs
    return {"cohorts": {}, "builds": {}, "guard": threading.Lock(), "uploads_in_use": {}}


class CohortBuild:
    """One cohort load in a background thread: its progress, then the cohort or the error."""

    def __init__(self, source: str, store: dict) -> None:
        self.source, self.fraction, self.message = source, 0.0, "starting"
        self.error: Exception | None = None
        self.finished = threading.Event()
        self._store = store
        threading.Thread(target=self._run, name=f"brainlab-cohort-{source}", daemon=True).start()

    def _report(self, fraction: float, message: str = "") -> None:
        self.fraction = min(1.0, max(self.fraction, float(fraction)))
        self.message = message or self.message

    def _run(self) -> None:
        try:
            cohort = load(self.source, progress=self._report)
            with self._store["guard"]:
                self._store["cohorts"][self.source] = cohort
        except Exception as error:  # shown to whoever asks for the cohort next
            self.error = error
        finally:
            with self._store["guard"]:
                if self._store["builds"].get(self.source) is self and self.error is None:
                    del self._store["builds"][self.source]
            self.finished.set()


def cohort_or_build(source: str, wait_s: float = 0.0) -> tuple[Cohort | None, CohortBuild | None]:
    """``(cohort, None)`` once ``source`` is loaded, else ``(None, build)`` while it builds.

    The load runs once per server process in a background thread (one per source:
    a build never blocks pages of other cohorts; sessions asking for the same source
    share it). ``wait_s``: how long to wait for it here first (a warm load takes well
    under a second). A failed build raises its error once, to the next caller.
    """
    store = _store()
    with store["guard"]:
        cohort = store["cohorts"].get(source)
        build = store["builds"].get(source)
        if cohort is None and build is None:
            build = store["builds"][source] = CohortBuild(source, store)
    if cohort is not None:
        return cohort, None
    build.finished.wait(wait_s)
    if build.finished.is_set():
        if build.error is not None:
            with store["guard"]:
                if store["builds"].get(source) is build:
                    del store["builds"][source]
            raise build.error
        return store["cohorts"][source], None
    return None, build


def get_cohort(source: str) -> Cohort:
    """``source`` loaded once per server process, waiting for its build to finish."""
    cohort, build = cohort_or_build(source)
    while cohort is None:
        build.finished.wait()
        cohort, build = cohort_or_build(source)
    return cohort


# ---------------------------------------------------------------- uploads

class _UploadLease:
    """Held in a session's state; when the session ends its uploads are released."""

    def __init__(self, store: dict) -> None:
        self.paths: set[str] = set()
        weakref.finalize(self, _release_all, self.paths, store)


def _release(path: str, store: dict) -> None:
    """One session stops using ``path``; the last user removes it and drops the cohort."""
    with store["guard"]:
        users = store["uploads_in_use"].get(path, 0) - 1
        if users > 0:
            store["uploads_in_use"][path] = users
            return
        store["uploads_in_use"].pop(path, None)
        store["cohorts"].pop(path, None)
    remove_upload(path)


def _release_all(paths: set[str], store: dict) -> None:
    for path in list(paths):
        _release(path, store)
    paths.clear()


def _store_upload(uploaded) -> str | None:
    """Extract an upload into the cache, release this session's previous one; its path."""
    try:
        path = str(extract_upload(uploaded.getvalue(), uploaded.name))
    except (BrainlabInputError, OSError) as error:
        st.sidebar.error(f"Could not read {uploaded.name}: {error}")
        return None
    store = _store()
    lease = st.session_state.setdefault(_LEASE_KEY, _UploadLease(store))
    if path not in lease.paths:
        for old in list(lease.paths):  # replaced: the previous upload of this session goes
            lease.paths.discard(old)
            st.session_state.get(_UPLOADS_KEY, {}).pop(old, None)
            _release(old, store)
        with store["guard"]:
            store["uploads_in_use"][path] = store["uploads_in_use"].get(path, 0) + 1
        lease.paths.add(path)
        with store["guard"]:
            in_use = list(store["uploads_in_use"])
        prune_uploads(keep=in_use)
    st.session_state.setdefault(_UPLOADS_KEY, {})[path] = uploaded.name
    return path


def source_label(source: str) -> str:
    """Human-readable name of a picker source."""
    if source in PRESET_DESCRIPTIONS:
        return PRESET_DESCRIPTIONS[source]
    name = st.session_state.get(_UPLOADS_KEY, {}).get(source)
    if name is not None or upload_folder(source) is not None:
        return f"upload · {name or os.path.basename(source)}"
    return f"path · {source}"


# ---------------------------------------------------------------- the picker

def _set_source(source: str) -> None:
    """Switch this session to another cohort; per-cohort selections and slices reset."""
    if source != st.session_state.get(_SOURCE_KEY):
        if _SOURCE_KEY in st.session_state:
            for name in ("subject", "x", "y", "z"):
                st.query_params.pop(name, None)
        st.session_state[_SOURCE_KEY] = source
        for key in [k for k in st.session_state if str(k).startswith(("slice_", "explorer_subject"))]:
            del st.session_state[key]  # a new cohort opens its first subject at centre slices


def cohort_sidebar() -> None:
    """Draw the picker, load the cohort for this run; on a load error explain and stop."""
    if _SOURCE_KEY not in st.session_state:
        st.session_state[_SOURCE_KEY] = query_value("cohort", default_source())
    with st.sidebar:
        st.markdown("### Cohort")
        # Drawn above the upload box but decided after it, so that a new upload or path
        # can set the picker's value before the picker is instantiated.
        picker_slot = st.container()
        with st.expander("Upload or open your own data"):
            uploaded = st.file_uploader(
                "A CSV table, or a .zip of NIfTI volumes with participants.tsv",
                type=["csv", "zip"])
            path_text = st.text_input("…or a path on the server",
                                      placeholder="/data/hcp_tensors or table.csv")
    if uploaded is not None and st.session_state.get("_brainlab_last_upload") != uploaded.file_id:
        st.session_state["_brainlab_last_upload"] = uploaded.file_id
        new_source = _store_upload(uploaded)
    elif path_text and st.session_state.get("_brainlab_last_path") != path_text:
        st.session_state["_brainlab_last_path"] = path_text
        new_source = path_text.strip()
    else:
        new_source = None
    if new_source:
        _set_source(new_source)
    elif st.session_state.get(_PICKER_KEY, st.session_state[_SOURCE_KEY]) != st.session_state[_SOURCE_KEY]:
        _set_source(st.session_state[_PICKER_KEY])  # the user changed the picker
    source = st.session_state[_SOURCE_KEY]
    options = list(PRESET_NAMES) + list(st.session_state.get(_UPLOADS_KEY, {}))
    if source not in options:
        options.append(source)
    st.session_state[_PICKER_KEY] = source
    with picker_slot:
        st.selectbox("Cohort", options, key=_PICKER_KEY, format_func=source_label,
                     label_visibility="collapsed",
                     help="Phantom presets are synthetic brains with known ground truth.")
    sync_query(cohort=source)
    try:
        cohort, build = cohort_or_build(source, wait_s=BUILD_WAIT_S)
    except (BrainlabInputError, ValueError, OSError) as error:
        st.error(f"Could not load cohort **{source_label(source)}**: {error}")
        st.stop()
    st.session_state[_LOADED_KEY] = (cohort, source) if cohort is not None else None
    if cohort is None:
        return
    with st.sidebar:
        st.caption(f"{len(cohort)} subjects · fingerprint `{cohort.fingerprint[:10]}`")
    if source == default_source():
        from app_pages._warm import warm_sidebar

        warm_sidebar(cohort)


# Each poll is a small script run; on a 2-core laptop 1 Hz polling cost the build ~15%
# of a core, for a bar whose ETA moves in seconds anyway.
BUILD_POLL_S = 2.0


@st.fragment(run_every=BUILD_POLL_S)
def build_progress(source: str, bar: bool) -> None:
    """While ``source`` builds: a progress bar (``bar``) or one line; reruns the page when
    the build ends."""
    build = _store()["builds"].get(source)
    if build is None or build.finished.is_set():
        st.rerun()
    text = f"The cohort **{source_label(source)}** is building ({build.message})"
    if bar:
        st.progress(build.fraction, text=text)
        st.caption("Built once and cached: later starts load it in about a second. The other "
                   "pages open when it is ready.")
    else:
        st.info(text + "; this page opens when it is ready.", icon=":material/hourglass_top:")


def current_cohort(progress_bar: bool = False) -> tuple[Cohort, str]:
    """``(cohort, source)`` chosen by the picker in this run (``app.py`` draws it first).

    While the cohort still builds, says so (with the subjects done and the ETA; a
    progress bar when ``progress_bar``) and stops the page; it reruns when the build ends.
    """
    loaded = st.session_state.get(_LOADED_KEY)
    if loaded is None:
        build_progress(st.session_state[_SOURCE_KEY], progress_bar)
        st.stop()
    return loaded
