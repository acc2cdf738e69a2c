"""Background training jobs: start, list, finish, cancel, refuse a second job, expose a
failed job's log, never leave a half-written checkpoint.

The jobs train the morphometry autoencoder on the shared 60-row HCP-like table (a
table-only cohort: no phantom to build, seconds per run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brainlab import jobs, paths
from brainlab.checkpoints import available
from brainlab.errors import BrainlabInputError

REPO_ROOT = Path(__file__).resolve().parents[1]
# A short run: a few epochs of the morphometry autoencoder (tabular, seconds).
SHORT = dict(epochs=2, minutes=0.5, batch_size=8, threads=1)
# A run that would take a minute: long enough to cancel mid-way.
LONG = dict(epochs=300, minutes=1.0, batch_size=4, threads=1)


@pytest.fixture
def cohort_source(fixture_csv) -> str:
    return str(fixture_csv)


@pytest.fixture
def job_cache(tmp_path, monkeypatch):
    """A fresh jobs registry and checkpoint folder per test."""
    monkeypatch.setattr(jobs, "jobs_root", lambda: tmp_path / "jobs")
    monkeypatch.setattr(paths, "user_checkpoints", lambda: tmp_path / "checkpoints")
    yield tmp_path
    for record in jobs.list_jobs():
        if record["status"] not in jobs.FINISHED:
            jobs.cancel_job(record["id"], grace_seconds=2)


def _user_entries(tmp_path) -> list[dict]:
    return available([tmp_path / "checkpoints"])


def _wait_for(condition, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_job_trains_lists_and_lands_in_the_pickers(job_cache, cohort_source):
    record = jobs.start_job("morph-ae", cohort_source, **SHORT)
    assert record["status"] == "running" and record["pid"]
    assert record["command"][1:4] == ["-m", "brainlab", "train"]
    assert "--out" in record["command"] and record["out_dir"] in record["command"]
    assert [j["id"] for j in jobs.list_jobs()] == [record["id"]]

    finished = jobs.wait_for_job(record["id"], timeout=300)
    assert finished["status"] == "done", jobs.log_tail(finished)
    assert finished["returncode"] == 0
    assert not Path(finished["out_dir"]).exists()  # moved, not copied
    entries = _user_entries(job_cache)
    assert [Path(e["path"]) for e in entries] == [Path(finished["checkpoint"])]
    assert entries[0]["model_type"] == "morph-ae" and entries[0]["metrics"]["split"] == "test"
    assert entries[0]["quality"] in ("good", "fair", "poor")

    progress = jobs.job_progress(finished)
    assert progress["fraction"] == 1.0
    assert progress["step"] > 0 and progress["losses"]
    assert progress["test_metrics"]["split"] == "test"
    assert all(len(s["step"]) == len(s["value"]) for s in progress["losses"].values())


def test_a_second_job_is_refused_and_cancel_leaves_no_checkpoint(job_cache, cohort_source):
    first = jobs.start_job("morph-ae", cohort_source, **LONG)
    with pytest.raises(jobs.JobRunningError, match=first["id"]):
        jobs.start_job("morph-ae", cohort_source, **SHORT)
    # Let it write an epoch checkpoint into its staging folder first.
    card = Path(first["out_dir"]) / "model_card.json"
    assert _wait_for(card.exists), jobs.log_tail(first)
    cancelled = jobs.cancel_job(first["id"], grace_seconds=3)
    assert cancelled["status"] == "cancelled"
    assert not jobs._process_alive(cancelled["pid"])
    assert not jobs._process_alive(cancelled.get("train_pid"))
    assert _user_entries(job_cache) == []  # the staged epoch checkpoint is not offered
    assert not Path(cancelled["checkpoint"]).exists()
    # The lock is free again.
    second = jobs.start_job("morph-ae", cohort_source, **SHORT)
    assert second["status"] == "running"
    jobs.cancel_job(second["id"], grace_seconds=2)


def test_a_killed_training_process_fails_without_a_checkpoint(job_cache, cohort_source):
    record = jobs.start_job("morph-ae", cohort_source, **LONG)
    card = Path(record["out_dir"]) / "model_card.json"
    assert _wait_for(card.exists), jobs.log_tail(record)
    train_pid = jobs.get_job(record["id"])["train_pid"]
    os.kill(train_pid, signal.SIGKILL)
    finished = jobs.wait_for_job(record["id"], timeout=60)
    assert finished["status"] == "failed"
    assert finished["returncode"] == -signal.SIGKILL
    assert _user_entries(job_cache) == []


def test_a_failed_job_exposes_the_tail_of_its_log(job_cache):
    record = jobs.start_job("morph-ae", str(job_cache / "no-such-cohort"), **SHORT)
    finished = jobs.wait_for_job(record["id"], timeout=120)
    assert finished["status"] == "failed" and finished["returncode"] == 2
    assert "no such file or folder" in jobs.log_tail(finished)
    assert _user_entries(job_cache) == []


def test_a_vanished_supervisor_is_reported_failed(job_cache, cohort_source):
    record = jobs.start_job("morph-ae", cohort_source, **LONG)
    os.killpg(os.getpgid(record["pid"]), signal.SIGKILL)
    assert _wait_for(lambda: not jobs._process_alive(record["pid"]), timeout=30)
    assert jobs.get_job(record["id"])["status"] == "failed"
    assert "without recording" in jobs.get_job(record["id"])["message"]


@pytest.mark.parametrize("call, match", [
    (lambda: jobs.start_job("no-such-model", "hcp-ya"), "unknown model type 'no-such-model'"),
    (lambda: jobs.start_job("morph-ae", "hcp-ya", learning_rate=1.0), "unknown training options"),
    (lambda: jobs.get_job("20000101-000000-dead"), "no job '20000101-000000-dead'"),
])
def test_input_errors_name_what_was_expected(job_cache, call, match):
    with pytest.raises(BrainlabInputError, match=match):
        call()


def test_the_jobs_cli_lists_shows_and_cancels(job_cache, cohort_source):
    record = jobs.start_job("morph-ae", cohort_source, **LONG)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def cli(*args):
        # The CLI reads the same registry: point it at this test's folders.
        program = (
            "import sys; from pathlib import Path; from brainlab import jobs, paths\n"
            f"jobs.jobs_root = lambda: Path({str(job_cache / 'jobs')!r})\n"
            f"paths.user_checkpoints = lambda: Path({str(job_cache / 'checkpoints')!r})\n"
            "from brainlab.__main__ import main; sys.exit(main(sys.argv[1:]))\n")
        return subprocess.run([sys.executable, "-c", program, *args], capture_output=True,
                              text=True, cwd=REPO_ROOT, env=env, timeout=120)

    listed = cli("jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [record["id"]]
    shown = cli("jobs", "show", record["id"], "--json")
    assert json.loads(shown.stdout)["progress"]["status"] == "running"
    cancelled = cli("jobs", "cancel", record["id"])
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    missing = cli("jobs", "show", "nope")
    assert missing.returncode == 2 and "no job 'nope'" in missing.stderr
