"""App-side helpers shared by every page: the cohort picker, cached loaders, URL state.

This module is app code (it imports streamlit); ``brainlab`` itself never does.
A page starts with::

    from pages._shared import cohort_sidebar
    cohort, source = cohort_sidebar()

and then reads shareable state with ``query_value`` / writes it with ``sync_query``.
Heavy results are cached per cohort fingerprint (``cohort_mean_images``,
``intensity_range``) so that moving between subjects and pages stays fast.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import streamlit as st

from brainlab.analysis.means import group_mean_images
from brainlab.data import DEFAULT_PRESET, PRESET_NAMES, Cohort, load
from brainlab.errors import BrainlabInputError

APP_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PageInfo:
    """A page of the app: file (relative to app.py), title, icon, one-line purpose."""

    path: str
    title: str
    icon: str
    blurb: str


# Every page the app may show, in menu order; app.py registers those whose file exists.
PAGES = (
    PageInfo("pages/home.py", "Home", ":material/home:", "What brainlab does and what is loaded."),
    PageInfo("pages/cohort.py", "Cohort", ":material/groups:",
             "Demographics, a tri-planar viewer, mean brains, sex and age effects, morphometry."),
    PageInfo("pages/reconstructions.py", "Reconstructions", ":material/compare:",
             "Original vs autoencoder reconstruction and their error."),
    PageInfo("pages/latent_space.py", "Latent space", ":material/scatter_plot:",
             "PCA/UMAP maps of each representation and how well they encode sex and age."),
    PageInfo("pages/gan_lab.py", "GAN lab", ":material/science:",
             "Sample, interpolate and edit synthetic brains."),
    PageInfo("pages/classifiers.py", "Classifiers", ":material/fact_check:",
             "Sex and age classifiers on real vs synthetic brains."),
)

PRESET_DESCRIPTIONS = {
    "hcp-ya": "HCP-YA phantom (22–37 y)",
    "lifespan": "lifespan phantom (20–90 y)",
    "tiny": "tiny phantom (for tests)",
}
UPLOAD_PREFIX = "upload:"
_SOURCE_KEY = "brainlab_source"
_UPLOADS_KEY = "brainlab_uploads"
_PICKER_KEY = "brainlab_cohort_picker"


def existing_pages() -> list[PageInfo]:
    """The pages in ``PAGES`` whose file exists (later pages are added by other work)."""
    return [page for page in PAGES if (APP_ROOT / page.path).is_file()]


def default_source() -> str:
    """The cohort shown when the URL names none: ``$BRAINLAB_DEFAULT_COHORT`` or hcp-ya."""
    return os.environ.get("BRAINLAB_DEFAULT_COHORT", "").strip() or DEFAULT_PRESET


# ---------------------------------------------------------------- query params

def query_value(name: str, default: Any = None, cast: Callable[[str], Any] = str) -> Any:
    """``st.query_params[name]`` converted with ``cast``; ``default`` if absent or invalid."""
    raw = st.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except (TypeError, ValueError):
        return default


def sync_query(**values: Any) -> None:
    """Write values into the URL so a copied link reproduces the view (None removes a key).

    Only changed keys are written, so calling this on every run is cheap.
    """
    for name, value in values.items():
        if value is None:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != str(value):
            st.query_params[name] = str(value)


# ---------------------------------------------------------------- cohorts

@st.cache_resource(show_spinner=False)
def _cohort_store() -> dict:
    """Process-wide store of loaded cohorts (images are memory-mapped, so cheap to keep)."""
    return {"cohorts": {}, "lock": threading.Lock()}


def _resolve(source: str) -> str:
    """Turn a picker source into what ``brainlab.data.load`` understands."""
    if source.startswith(UPLOAD_PREFIX):
        uploads = st.session_state.get(_UPLOADS_KEY, {})
        entry = uploads.get(source[len(UPLOAD_PREFIX):])
        if entry is None:
            raise BrainlabInputError(
                f"cohort {source!r} was uploaded in another browser session and is not "
                "available here; upload the file again or pick a preset"
            )
        return entry["path"]
    return source


def get_cohort(source: str) -> Cohort:
    """Load ``source`` once per server process; the first build shows a progress bar."""
    store = _cohort_store()
    target = _resolve(source)
    with store["lock"]:
        cohort = store["cohorts"].get(target)
        if cohort is not None:
            return cohort
        bar = st.progress(0.0, text=f"Loading cohort {source} …")

        def progress(fraction: float, message: str = "") -> None:
            bar.progress(min(1.0, max(0.0, fraction)), text=f"{source}: {message or 'building'}")

        try:
            cohort = load(target, progress=progress)
        finally:
            bar.empty()
        store["cohorts"][target] = cohort
        return cohort


def _remember_upload(uploaded) -> str | None:
    """Extract an uploaded CSV/zip once (keyed by content hash); returns its source name."""
    data = uploaded.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:12]
    uploads = st.session_state.setdefault(_UPLOADS_KEY, {})
    if digest not in uploads:
        try:
            from brainlab.data.upload import extract_upload
        except ImportError:
            st.sidebar.error("Uploads are not supported in this build (brainlab.data.upload missing).")
            return None
        try:
            path = extract_upload(data, uploaded.name)
        except (BrainlabInputError, ValueError, OSError) as error:
            st.sidebar.error(f"Could not read {uploaded.name}: {error}")
            return None
        uploads[digest] = {"path": str(path), "name": uploaded.name}
    return UPLOAD_PREFIX + digest


def source_label(source: str) -> str:
    """Human-readable name of a picker source."""
    if source in PRESET_DESCRIPTIONS:
        return PRESET_DESCRIPTIONS[source]
    if source.startswith(UPLOAD_PREFIX):
        entry = st.session_state.get(_UPLOADS_KEY, {}).get(source[len(UPLOAD_PREFIX):])
        return f"upload · {entry['name']}" if entry else f"upload · {source}"
    return f"path · {source}"


def current_source() -> str:
    """The cohort source of this session (URL on first visit, then the picker)."""
    if _SOURCE_KEY not in st.session_state:
        st.session_state[_SOURCE_KEY] = query_value("cohort", default_source())
    return st.session_state[_SOURCE_KEY]


def set_source(source: str) -> None:
    """Switch this session to another cohort; per-cohort selections are reset."""
    if source != st.session_state.get(_SOURCE_KEY):
        st.session_state[_SOURCE_KEY] = source
        st.session_state.pop("brainlab_subject", None)


def _leave_legacy_page_mode() -> None:
    """Make sure pages run under app.py's ``st.navigation``, even on a deep link.

    Because the folder is called ``pages/``, Streamlit starts in its legacy multipage
    mode and, until some session has run app.py, serves a first request for
    ``/cohort`` by running ``pages/cohort.py`` on its own (no page config, every file
    of the folder in the menu). Leaving that mode and rerunning goes through app.py.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # internal module moved: the legacy mode is gone too
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def cohort_sidebar() -> tuple[Cohort, str]:
    """Render the sidebar cohort picker, load the cohort, keep ``?cohort=`` in the URL.

    Returns ``(cohort, source)``. On a load error the page shows the message and
    stops, with the picker still usable to choose another cohort.
    """
    _leave_legacy_page_mode()
    with st.sidebar:
        st.markdown("### Cohort")
        # The picker is drawn above the upload box but decided after it, so that a
        # new upload or path can set the picker's value before it is instantiated.
        picker_slot = st.container()
        with st.expander("Upload or open your own data"):
            uploaded = st.file_uploader(
                "A CSV table, or a .zip of NIfTI volumes with participants.tsv",
                type=["csv", "zip"])
            path_text = st.text_input("…or a path on the server",
                                      placeholder="/data/hcp_tensors or table.csv")
    new_source = None
    if uploaded is not None and st.session_state.get("_brainlab_last_upload") != uploaded.file_id:
        st.session_state["_brainlab_last_upload"] = uploaded.file_id
        new_source = _remember_upload(uploaded)
    elif path_text and st.session_state.get("_brainlab_last_path") != path_text:
        st.session_state["_brainlab_last_path"] = path_text
        new_source = path_text.strip()
    if new_source:
        set_source(new_source)
    elif st.session_state.get(_PICKER_KEY, current_source()) != current_source():
        set_source(st.session_state[_PICKER_KEY])  # the user changed the picker
    source = current_source()
    uploads = st.session_state.get(_UPLOADS_KEY, {})
    options = list(PRESET_NAMES) + [UPLOAD_PREFIX + key for key in uploads]
    if source not in options:
        options.append(source)
    # A keyed widget whose value we set (not a changing ``index``), so every choice sticks.
    st.session_state[_PICKER_KEY] = source
    with picker_slot:
        choice = st.selectbox("Cohort", options, key=_PICKER_KEY, format_func=source_label,
                              label_visibility="collapsed",
                              help="Phantom presets are synthetic brains with known ground truth.")
    set_source(choice)
    sync_query(cohort=choice)
    try:
        cohort = get_cohort(choice)
    except (BrainlabInputError, ValueError, OSError) as error:
        st.error(f"Could not load cohort **{source_label(choice)}**: {error}")
        st.stop()
    with st.sidebar:
        st.caption(f"{len(cohort)} subjects · fingerprint `{cohort.fingerprint[:10]}`")
    return cohort, choice


# ---------------------------------------------------------------- cached results

@st.cache_resource(show_spinner=False, max_entries=8)
def _mean_images(fingerprint: str, _cohort: Cohort) -> dict:
    table = _cohort.table
    bins = table["age_bin"].astype(int).to_numpy()
    groups = table["sex"].astype(str).to_numpy() + "|" + bins.astype(str)
    cells = group_mean_images(_cohort.images, groups, chunk=64)
    counts = {label: int((groups == label).sum()) for label in cells}

    def pooled(labels):
        total = sum(counts[label] for label in labels)
        return sum(cells[label] * (counts[label] / total) for label in labels).astype(np.float32)

    by_sex = {sex: pooled([g for g in cells if g.startswith(sex + "|")]) for sex in ("F", "M")
              if any(g.startswith(sex + "|") for g in cells)}
    by_bin = {}
    for code in sorted(set(bins.tolist())):
        members = [g for g in cells if g.endswith(f"|{code}")]
        if members:
            by_bin[bin_label(_cohort, code)] = pooled(members)
    cells_by_bin = {bin_label(_cohort, int(g.split("|")[1])) + "|" + g.split("|")[0]: v
                    for g, v in cells.items()}
    return {"sex": by_sex, "age_bin": by_bin, "sex_by_age_bin": cells_by_bin,
            "age_bin_counts": {bin_label(_cohort, c): int((bins == c).sum()) for c in sorted(set(bins.tolist()))}}


def cohort_mean_images(cohort: Cohort) -> dict:
    """Mean brains per sex and per age bin, cached per cohort fingerprint.

    Returns ``{"sex": {"F": vol, "M": vol}, "age_bin": {label: vol},
    "sex_by_age_bin": {"<bin label>|<sex>": vol}, "age_bin_counts": {label: n}}``
    (volumes (D, H, W) float32; treat as read-only).
    """
    if cohort.images is None:
        raise BrainlabInputError(f"cohort {cohort.name!r} has no images (table-only)")
    with st.spinner(f"Averaging {len(cohort)} brains (once per cohort) …"):
        return _mean_images(cohort.fingerprint, cohort)


def bin_label(cohort: Cohort, code: int) -> str:
    """The cohort's label for ordinal age bin ``code``."""
    labels = cohort.age_bin_labels or ()
    return str(labels[code]) if 0 <= code < len(labels) else f"bin {code}"


@st.cache_data(show_spinner=False, max_entries=16)
def _intensity_range(fingerprint: str, _cohort: Cohort) -> tuple[float, float]:
    sample = _cohort.images[np.linspace(0, len(_cohort) - 1, min(16, len(_cohort))).astype(int)]
    high = float(np.quantile(sample[sample > 0], 0.995)) if np.any(sample > 0) else 1.0
    return 0.0, max(high, 1e-6)


def intensity_range(cohort: Cohort) -> tuple[float, float]:
    """A fixed colour range for the cohort's images (0 to the 99.5th percentile of brain voxels)."""
    return _intensity_range(cohort.fingerprint, cohort)


@st.cache_resource(show_spinner="Rendering the phantom's ground-truth effect maps (once) …",
                   max_entries=4)
def phantom_effect_maps(preset: str) -> dict | None:
    """The phantom's ground-truth effect maps ``{"sex": vol, "age": vol}``, or None."""
    if preset not in PRESET_NAMES:
        return None
    try:
        from brainlab.data.phantom import expected_effect_maps
    except ImportError:
        return None
    return expected_effect_maps(preset)


def phantom_true_curves(preset: str, feature: str, ages: np.ndarray) -> dict | None:
    """``{"F": (ages, values), "M": (ages, values)}`` of the phantom's generating curve, or None."""
    if preset not in PRESET_NAMES:
        return None
    try:
        from brainlab.data.phantom import true_curve
    except ImportError:
        return None
    curves = {}
    for sex in ("F", "M"):
        values = true_curve(preset, feature, ages, sex)
        if values is not None:
            curves[sex] = (ages, np.asarray(values, dtype=float))
    return curves or None


def available_models() -> tuple[list[dict], str | None]:
    """``(models, problem)``: the checkpoints brainlab can find, never raising.

    ``problem`` is a sentence when listing failed (module missing, broken card).
    """
    try:
        from brainlab.checkpoints import available
    except ImportError:
        return [], None
    try:
        return list(available()), None
    except Exception as error:  # a broken card must not take the Home page down
        return [], f"Could not list checkpoints: {error}"


def quality_verdict(card: dict) -> tuple[str, str]:
    """``(level, sentence)`` for a model card, via ``brainlab.checkpoints.quality_verdict``."""
    verdict = card.get("quality") or card.get("verdict")
    if isinstance(verdict, str) and card.get("quality_sentence") is not None:
        return verdict, str(card["quality_sentence"])
    if isinstance(verdict, (list, tuple)) and len(verdict) == 2:
        return str(verdict[0]), str(verdict[1])
    if isinstance(verdict, dict) and "level" in verdict:
        return str(verdict["level"]), str(verdict.get("sentence", ""))
    try:
        from brainlab.checkpoints import quality_verdict as verdict_of
        level, sentence = verdict_of(card)
        return str(level), str(sentence)
    except Exception:
        return "unknown", "no quality check recorded"


def page_link(path: str, **kwargs) -> None:
    """``st.page_link`` that keeps the current cohort in the URL; skips missing pages."""
    info = next((p for p in PAGES if p.path == path), None)
    if not (APP_ROOT / path).is_file():
        return
    st.page_link(path, label=kwargs.pop("label", info.title if info else path),
                 icon=kwargs.pop("icon", info.icon if info else None),
                 query_params={"cohort": current_source()}, **kwargs)
