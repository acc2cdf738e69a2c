"""The Train page's parts: the start form, one job's live view, and the job list.

Everything shown comes from ``brainlab.jobs`` (the registry on disk), so a reload, a
new browser session and ``python -m brainlab jobs list`` all see the same jobs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from brainlab import jobs
from brainlab.checkpoints import quality_verdict, read_card
from brainlab.registry import MODEL_TYPES
from brainlab.viz.training_plots import loss_curves_figure, validation_figure
from app_pages._models import MODEL_NAMES, VERDICT_ICONS, checkpoints_for, metric_summary

STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/sync:",
                "done": ":material/check_circle:", "failed": ":material/error:",
                "cancelled": ":material/cancel:"}
SHOWN_PREVIEWS = 3


def display_name(model_type: str) -> str:
    return getattr(MODEL_TYPES.get(model_type), "display_name", MODEL_NAMES.get(model_type, model_type))


def _duration(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(float(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def start_form(cohort, source: str) -> dict | None:
    """Sidebar: model type, cohort source, the hyperparameters that matter; the request
    (``start_job`` keywords) when Start is pressed, else None."""
    with st.sidebar:
        st.markdown("### New training job")
        model_type = st.selectbox("Model type", list(MODEL_TYPES), key="train_model",
                                  format_func=display_name)
        spec = MODEL_TYPES[model_type]
        defaults = spec.default_train_config
        with st.form("train_form"):
            job_source = st.text_input("Cohort", source, key=f"train_source_{source}",
                                       help="A phantom preset or a path on the server; "
                                            "default: the cohort picked above.")
            minutes = st.number_input("Time budget (minutes)", 0.1, 240.0,
                                      float(defaults.minutes or 5.0), 0.5,
                                      key=f"train_minutes_{model_type}",
                                      help=f"Default {defaults.minutes} for this model type; "
                                           "training stops at the budget or the epoch cap.")
            epochs = st.number_input("Epochs (cap)", 1, 10_000, int(defaults.epochs), 1,
                                     key=f"train_epochs_{model_type}",
                                     help=f"Default {defaults.epochs}.")
            batch_size = st.number_input("Batch size", 1, 1024, int(defaults.batch_size), 1,
                                         key=f"train_batch_{model_type}",
                                         help=f"Subjects (or codes) per step; default "
                                              f"{defaults.batch_size}.")
            seed = st.number_input("Seed", 0, 2**31 - 1, 0, 1, key="train_seed",
                                   help="Same seed, same run (on CPU).")
            submitted = st.form_submit_button("Start training", type="primary",
                                              icon=":material/play_arrow:")
    for dependency in spec.depends_on:
        if job_source == source and not checkpoints_for(dependency, cohort):
            st.warning(f"A {display_name(model_type)} builds on a {display_name(dependency)}, "
                       f"and none fits cohort **{cohort.name}** yet: train that first, or "
                       f"this job will fail.", icon=":material/link_off:")
    if not submitted:
        return None
    return {"model_type": model_type, "cohort": job_source.strip() or source,
            "cohort_name": cohort.name if job_source == source else None,
            "fingerprint": cohort.fingerprint if job_source == source else None,
            "minutes": float(minutes), "epochs": int(epochs), "batch_size": int(batch_size),
            "seed": int(seed)}


def _verdict_line(job: dict) -> None:
    """For a finished job: where its checkpoint went and the card's verdict."""
    try:
        card = read_card(job["checkpoint"])
        level, sentence = quality_verdict(card)
    except Exception as error:  # noqa: BLE001 — a broken card must not break the page
        st.warning(f"Saved to `{job['checkpoint']}`, but its card could not be read: {error}")
        return
    text = (f"Saved to `{job['checkpoint']}` and listed in every {display_name(job['model_type'])} "
            f"picker. **{level}**: {sentence} (test split: "
            f"{metric_summary(card.get('metrics'), limit=5, skip=('split',)) or 'no metrics'})")
    {"good": st.success, "fair": st.warning}.get(level, st.error)(
        text, icon=VERDICT_ICONS.get(level, ":material/info:"))


def live_view(job: dict) -> None:
    """Progress, ETA, loss curves, validation metrics and previews of one job."""
    progress = jobs.job_progress(job)
    status = progress["status"]
    st.subheader(f"{display_name(job['model_type'])} on {job['cohort']} · job {job['id']}")
    total = progress["total_steps"]
    eta = progress["eta_seconds"] if status == "running" else None
    text = (f"{status} · step {progress['step']}" + (f" of {total}" if total else "")
            + f" · epoch {progress['epoch']} · {_duration(progress['elapsed'])} elapsed"
            + (f" · about {_duration(eta)} left" if eta is not None else ""))
    st.progress(progress["fraction"], text=text)
    if status == "done":
        _verdict_line(job)
    if status in ("failed", "cancelled"):
        (st.error if status == "failed" else st.info)(progress["message"] or status,
                                                      icon=STATUS_ICONS[status])
    if status == "failed":
        st.code(jobs.log_tail(job, 30) or "(the log is empty)", language=None)
    if not progress["losses"]:
        st.caption("No training step logged yet (loading the cohort and the model) …")
        return
    curves, metrics = st.columns(2)
    with curves:
        st.plotly_chart(loss_curves_figure(progress["losses"]), key="train_losses")
        last = {name: series["value"][-1] for name, series in progress["losses"].items()}
        st.caption(f"Losses logged every few steps; latest at step {progress['step']}: "
                   + ", ".join(f"{k} {v:.3g}" for k, v in last.items()) + ".")
    with metrics:
        if progress["val_metrics"]:
            spec = MODEL_TYPES.get(job["model_type"])
            judged = {rule.metric for rule in spec.quality_targets + spec.fallback_targets} \
                if spec is not None else set()
            shown = judged & set(progress["val_metrics"][-1]) or None
            st.plotly_chart(validation_figure(progress["val_metrics"], shown),
                            key="train_validation")
            st.caption(f"Validation metrics after each evaluated epoch"
                       + (" (the ones its verdict judges)" if shown else "") + "; epoch "
                       f"{progress['val_metrics'][-1]['epoch']}: "
                       f"{metric_summary(progress['val_metrics'][-1], 4, ('step', 'epoch', 'n', 'split'))}.")
        else:
            st.caption("Validation metrics appear after the first evaluated epoch.")
    if previews := [p for p in progress["samples"] if p and Path(p).exists()][-SHOWN_PREVIEWS:]:
        st.image(previews, caption=[f"preview {Path(p).stem}" for p in previews], width=260)
        st.caption("Decoded samples from fixed z, written after each epoch: the newest on "
                   "the right.")


def jobs_table(job_list: list[dict]) -> None:
    """Every job on this machine, newest first."""
    rows = [{"job": j["id"],
             "model": display_name(j["model_type"]), "cohort": j["cohort"],
             "status": j["status"], "started": (j.get("started_at") or "")[:19].replace("T", " "),
             "ended": (j.get("ended_at") or "")[:19].replace("T", " "),
             "message": j.get("message") or ""} for j in job_list]
    st.dataframe(pd.DataFrame(rows), hide_index=True,
                 width="stretch", key="train_jobs_table")
