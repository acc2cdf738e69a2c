"""AppTests of the Train page on the ``tiny`` phantom.

The jobs it starts train the morphometry autoencoder on the shared 60-row HCP-like
table (typed into the form's cohort field: table-only, nothing to build), in a
registry and checkpoint folder of the test's own.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("streamlit")

import app_helpers  # noqa: E402
from app_helpers import rerun, widget  # noqa: E402
from brainlab import jobs, paths  # noqa: E402

TIMEOUT = 120
LONG = dict(epochs=300, minutes=1.0, batch_size=4, threads=1)


@pytest.fixture
def job_cache(tmp_path, monkeypatch, with_models):
    """A fresh jobs registry per test (checkpoints: the tiny fixture's)."""
    monkeypatch.setattr(jobs, "jobs_root", lambda: tmp_path / "jobs")
    yield tmp_path
    for record in jobs.list_jobs():
        if record["status"] not in jobs.FINISHED:
            jobs.cancel_job(record["id"], grace_seconds=2)


def open_train():
    return app_helpers.open_page("tiny", "train", timeout=TIMEOUT)


def _fill_form(at, source: str):
    at.selectbox(key="train_model").set_value("morph-ae")
    at = rerun(at)
    at.text_input(key="train_source_tiny").set_value(source)
    at.number_input(key="train_minutes_morph-ae").set_value(1.0)
    at.number_input(key="train_epochs_morph-ae").set_value(300)
    at.number_input(key="train_batch_morph-ae").set_value(4)
    return at


def _press(at, label: str):
    widget(at.button, label).click()
    return rerun(at)


def test_form_shows_the_registry_defaults(job_cache):
    from brainlab.registry import MODEL_TYPES

    at = open_train()
    assert at.title[0].value == "Train"
    defaults = MODEL_TYPES["mri-ae"].default_train_config
    assert widget(at.number_input, "Time budget (minutes)").value == float(defaults.minutes)
    assert widget(at.number_input, "Epochs (cap)").value == defaults.epochs
    assert widget(at.number_input, "Batch size").value == defaults.batch_size
    assert widget(at.text_input, "Cohort").value == "tiny"
    assert any("No training job" in info.value for info in at.info)
    # Another model type: its own defaults.
    at.selectbox(key="train_model").set_value("gan")
    at = rerun(at)
    assert widget(at.number_input, "Time budget (minutes)").value == \
        float(MODEL_TYPES["gan"].default_train_config.minutes)
    assert widget(at.number_input, "Batch size").value == \
        MODEL_TYPES["gan"].default_train_config.batch_size


def test_start_lists_shows_progress_and_cancels(job_cache, fixture_csv):
    earlier = jobs.cancel_job(jobs.start_job("morph-ae", str(fixture_csv), **LONG)["id"])
    at = _fill_form(open_train(), str(fixture_csv))
    assert widget(at.selectbox, "Job").value == earlier["id"]  # the only job so far
    at = _press(at, "Start training")
    listed = [job for job in jobs.list_jobs() if job["id"] != earlier["id"]]
    assert len(listed) == 1 and listed[0]["model_type"] == "morph-ae"
    assert listed[0]["hyperparameters"]["epochs"] == 300
    assert listed[0]["source"] == str(fixture_csv.resolve())
    job_id = listed[0]["id"]
    table = at.dataframe[0].value
    assert list(table["job"]) == [job_id, earlier["id"]] and table["status"][0] == "running"
    assert at.get("progress"), "no progress bar for the running job"
    assert widget(at.selectbox, "Job").value == job_id
    # The job trains meanwhile: the page shows its logged steps.
    deadline = time.monotonic() + 90
    while not jobs.job_progress(job_id)["losses"] and time.monotonic() < deadline:
        time.sleep(0.5)
    at = rerun(at)
    assert "train_losses" in [c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")]
    at = _press(at, "Cancel this job")
    assert jobs.get_job(job_id)["status"] == "cancelled"
    assert at.dataframe[0].value["status"][0] == "cancelled"
    assert not any(b.label == "Cancel this job" for b in at.button)
    assert not list((paths.user_checkpoints()).rglob(f"*{job_id}*"))


def test_a_second_start_is_refused_naming_the_running_job(job_cache, fixture_csv):
    running = jobs.start_job("morph-ae", str(fixture_csv), **LONG)
    at = _fill_form(open_train(), str(fixture_csv))
    at = _press(at, "Start training")
    errors = [e.value for e in at.error]
    assert any(e.startswith("Refused:") and running["id"] in e for e in errors), errors
    assert [j["id"] for j in jobs.list_jobs()] == [running["id"]]


def test_training_figures_draw_the_job_series():
    from brainlab.errors import BrainlabInputError
    from brainlab.viz.training_plots import loss_curves_figure, validation_figure

    losses = {"loss": {"step": [1, 5, 10], "value": [2.0, 1.0, 0.5]},
              "d_loss": {"step": [1, 5, 10], "value": [1.4, -0.2, 1.3]}}
    fig = loss_curves_figure(losses)
    assert [t.name for t in fig.data] == ["loss", "d_loss"]
    assert fig.layout.yaxis.type == "linear"  # a negative value: no log scale
    assert loss_curves_figure({"loss": losses["loss"]}).layout.yaxis.type == "log"
    with pytest.raises(BrainlabInputError, match="as many steps as values"):
        loss_curves_figure({"loss": {"step": [1, 2], "value": [1.0]}})
    rows = [{"step": 10, "epoch": 1, "ssim": 0.5, "psnr": 20.0, "n_heldout": 16},
            {"step": 20, "epoch": 2, "ssim": 0.6, "psnr": 22.0, "n_heldout": 16}]
    every = validation_figure(rows)
    assert [t.name for t in every.data] == ["ssim", "psnr"]  # counts left out
    judged = validation_figure(rows, {"ssim"})
    assert [t.name for t in judged.data] == ["ssim"] and list(judged.data[0].x) == [1, 2]


def test_a_new_checkpoint_shows_in_the_pickers_at_once(with_models, tmp_path):
    """A finished job moves its folder in with os.replace: the cached listing notices."""
    import os
    import shutil

    from app_pages._models import _listing

    before = {e["path"] for e in _listing()}
    staged = tmp_path / "staged"
    shutil.copytree(with_models / "morph-ae", staged)
    final = paths.user_checkpoints() / "tiny" / f"morph-ae-{tmp_path.name}"
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, final)
    try:
        after = {e["path"] for e in _listing()}
        assert after - before == {str(final)}
    finally:
        shutil.rmtree(final)
