"""App-side model selection: find, load once and present checkpoints with their quality.

Pages call ``model_picker("mri-ae", cohort)``; it lists the checkpoints that fit the
cohort (same fingerprint first, then same grid/features), lets the user choose in
the sidebar when there are several, loads the model once per server process and
shows the card's held-out metrics with an honest verdict. With no checkpoint it
says which model is missing and the command that trains it — never a traceback.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import streamlit as st

from brainlab.checkpoints import (
    available, check_cohort_compatible, load_checkpoint, metrics_beside_baselines, quality_verdict,
    read_card,
)
from brainlab.data import Cohort
from brainlab.errors import BrainlabInputError

MODEL_NAMES = {
    "mri-ae": "MRI autoencoder",
    "morph-ae": "morphometry autoencoder",
    "gan": "GAN",
    "dcgan-seed": "seed DCGAN (baseline)",
    "encoder": "GAN latent encoder",
    "sex-clf": "sex classifier",
    "age-model": "brain-age model",
}
VERDICT_ICONS = {"good": ":material/check_circle:", "fair": ":material/warning:",
                 "poor": ":material/error:"}


def train_command(model_type: str, cohort_source: str) -> str:
    """The CLI command that trains ``model_type`` on the current cohort."""
    return f"python -m brainlab train {model_type} --cohort {cohort_source}"


def _folders_stamp() -> tuple:
    """Modification times of the checkpoint roots and their cohort folders: a finished
    job or a saved live GAN moves its folder in with one ``os.replace``, which changes
    its parent's mtime, so a new checkpoint changes this stamp (a few ``stat`` calls)."""
    from brainlab import paths

    stamp = []
    for root in (paths.SHIPPED_CHECKPOINTS, paths.user_checkpoints()):
        root = Path(root)
        if root.is_dir():
            stamp.append((str(root), root.stat().st_mtime_ns))
            stamp.extend((str(p), p.stat().st_mtime_ns) for p in root.iterdir() if p.is_dir())
    return tuple(sorted(stamp))


@st.cache_data(ttl=30, show_spinner=False)
def _cached_listing(stamp: tuple) -> list[dict]:
    return available()


def _listing() -> list[dict]:
    # Re-listed when a checkpoint folder appears (the stamp) and at most every 30 s
    # otherwise, so that a model trained meanwhile shows without restarting the server.
    return _cached_listing(_folders_stamp())


def checkpoints_for(model_type: str, cohort: Cohort) -> list[dict]:
    """Checkpoints of ``model_type`` usable on ``cohort``: exact fingerprint first."""
    usable = []
    for entry in _listing():
        if entry["model_type"] != model_type:
            continue
        try:
            check_cohort_compatible(read_card(entry["path"]), cohort)
        except (BrainlabInputError, OSError):
            continue
        usable.append(dict(entry, exact=entry.get("fingerprint") == cohort.fingerprint))
    return sorted(usable, key=lambda e: (not e["exact"], not e.get("shipped"), e["path"]))


@st.cache_resource(show_spinner="Loading model …", max_entries=16)
def load_model(path: str):
    """``(model, card)`` loaded once per server process, eval mode, inference only; the
    card carries its folder as ``path`` (for the derived results' checkpoint digest)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, card = load_checkpoint(path)
    model.requires_grad_(False)
    return model, dict(card, path=str(path))


def _entry_label(entry: dict) -> str:
    where = "shipped" if entry.get("shipped") else "yours"
    match = "" if entry["exact"] else " · other cohort"
    return f"{entry['path'].rstrip('/').split('/')[-1]} ({where}, {entry['quality']}{match})"


def model_picker(model_type: str, cohort: Cohort, cohort_source: str | None = None,
                 show_card: bool = True, key: str | None = None):
    """Sidebar choice of a ``model_type`` checkpoint for ``cohort``; ``(model, card)`` or
    ``(None, None)`` after explaining what is missing."""
    name = MODEL_NAMES.get(model_type, model_type)
    entries = checkpoints_for(model_type, cohort)
    if not entries:
        st.info(f"No {name} checkpoint fits cohort **{cohort.name}** "
                f"(grid {cohort.grid_shape}). Train one with:\n\n"
                f"```\n{train_command(model_type, cohort_source or cohort.name)}\n```")
        return None, None
    choice = entries[0]
    if len(entries) > 1:
        labels = [_entry_label(e) for e in entries]
        widget_key = key or f"pick_{model_type}"
        # Streamlit forgets a widget's value in a run that does not draw it (a GAN lab
        # section without this picker); a plain key keeps the choice for the next draw.
        kept = f"_{widget_key}_kept"
        if widget_key not in st.session_state and st.session_state.get(kept) in labels:
            st.session_state[widget_key] = st.session_state[kept]
        picked = st.sidebar.selectbox(name.capitalize(), labels, key=widget_key)
        st.session_state[kept] = picked
        choice = entries[labels.index(picked)]
    try:
        model, card = load_model(choice["path"])
    except (BrainlabInputError, OSError) as error:  # e.g. saved by an older architecture
        st.error(f"Could not load the {name} checkpoint `{choice['path']}`: {error}\n\n"
                 f"Retrain it with:\n\n"
                 f"```\n{train_command(model_type, cohort_source or cohort.name)}\n```")
        return None, None
    if show_card:
        show_quality(card, choice, cohort)
    return model, card


def show_quality(card: dict, entry: dict, cohort: Cohort) -> None:
    """One line with the model's held-out quality verdict, metrics in an expander."""
    level, sentence = entry["quality"], entry["quality_sentence"]
    name = MODEL_NAMES.get(card["model_type"], card["model_type"])
    text = f"**{name}** — {level}: {sentence}"
    {"good": st.success, "fair": st.warning}.get(level, st.error)(text, icon=VERDICT_ICONS[level])
    beside = metrics_beside_baselines(card)
    st.caption(f"Held-out figures beside their baselines: {beside}." if beside
               else "No baseline recorded in this card (re-evaluate it with "
                    "`python -m brainlab evaluate CHECKPOINT --write-card`).")
    if not entry["exact"]:
        st.warning(f"This {name} was trained on cohort **{card['cohort']['name']}** "
                   f"(fingerprint {card['cohort']['fingerprint']}), not on the current one "
                   f"({cohort.fingerprint}); its card metrics do not describe this cohort.",
                   icon=":material/sync_problem:")
    with st.expander(f"{name} card"):
        training = card.get("training", {})
        st.json({"metrics": card.get("metrics", {}),
                 "training": {k: training.get(k) for k in ("seconds", "steps", "epochs", "device")},
                 "cohort": card.get("cohort", {}), "config": card.get("config", {}),
                 "parameters": card.get("n_parameters")}, expanded=False)


def _verdict(card: dict) -> tuple[str, str]:
    """``(level, sentence)`` of a listed card, never raising."""
    if isinstance(card.get("quality"), str) and card.get("quality_sentence") is not None:
        return card["quality"], str(card["quality_sentence"])
    try:
        level, sentence = quality_verdict(card)
        return str(level), str(sentence)
    except Exception:  # a broken card must not take the Home page down
        return "unknown", "no quality check recorded"


def metric_summary(metrics: dict, limit: int = 4, skip=()) -> str:
    """``"ssim 0.91, psnr 27.3"``: the first ``limit`` scalar metrics not in ``skip``."""
    scalars = [(k, v) for k, v in (metrics or {}).items()
               if isinstance(v, (int, float, str)) and not isinstance(v, bool) and k not in skip]
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, (int, float)) else f"{k} {v}"
                     for k, v in scalars[:limit])


def model_rows(cohort: Cohort, source: str) -> tuple[list[dict], str | None]:
    """``(rows, problem)``: one table row per checkpoint found; ``problem`` when listing failed."""
    try:
        cards = list(_listing())
    except Exception as error:  # a broken card must not take the Home page down
        return [], f"Could not list checkpoints: {error}"
    rows = []
    for card in cards:
        level, sentence = _verdict(card)
        rows.append({
            "model": card.get("model_type", "?"),
            "quality": level,
            "verdict": sentence,
            "trained on": card.get("cohort", "?"),
            "this cohort": "yes" if str(card.get("fingerprint") or card.get("cohort", "")) in
                           (cohort.fingerprint, cohort.name, source) else "",
            "held-out metrics (vs baselines)": (metrics_beside_baselines(card)
                                                or metric_summary(card.get("metrics")) or "—"),
            "checkpoint": str(card.get("path", "")),
        })
    return rows, None
