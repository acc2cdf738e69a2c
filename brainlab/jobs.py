"""Background training jobs: a registry on disk, one job at a time per machine.

A job is the training CLI run as a subprocess (``python -m brainlab train MODEL
--cohort SOURCE --out DIR ...``), so the app, another browser session and the
``jobs`` CLI all see the same jobs. Layout under ``<brainlab cache>/jobs/``::

    lock                 # flock held by the running job's supervisor (one job per machine)
    <id>/job.json        # the record (written atomically): status, pids, command, times
    <id>/log.txt         # stdout and stderr of the supervisor and the training CLI
    <id>/work/<model>/   # staging folder the CLI trains into (--out); events.jsonl lives here
    <id>/work/<dep>      # a link to the checkpoint this model builds on (e.g. mri-ae for gan)

``start_job`` spawns a supervisor (``python -m brainlab jobs supervise ID``) in a new
session. The supervisor runs the training CLI as its child, waits, and records the
outcome. Only when the CLI exits 0 and the staging folder holds a complete card
(test-split metrics and weights) is the folder moved into
``brainlab.paths.user_checkpoints()/<name>`` with one ``os.replace``, so a crashed,
killed or cancelled job never leaves a checkpoint that ``checkpoints.available()`` lists.

A second ``start_job`` while one runs is refused (``JobRunningError`` names the running
job); there is no queue. ``cancel_job`` sends SIGTERM to the job's process group and
SIGKILL after a grace period.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from brainlab import paths
from brainlab.atomic import atomic_write
from brainlab.errors import BrainlabInputError
from brainlab.registry import model_spec

JOB_NAME = "job.json"
LOG_NAME = "log.txt"
LOCK_NAME = "lock"
WORK_NAME = "work"
STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
# Checkpoints a model type trains on top of (the recipe looks for them beside --out).
# Training CLI flags a job passes through (keyword -> flag).
TRAIN_FLAGS = {"epochs": "--epochs", "minutes": "--minutes", "batch_size": "--batch-size",
               "seed": "--seed", "threads": "--threads", "storage": "--storage"}
CANCEL_GRACE_SECONDS = 5.0

_children: list[subprocess.Popen] = []  # supervisors started here; polled so none stays a zombie


class JobRunningError(BrainlabInputError):
    """A job was started while another one runs on this machine."""


def jobs_root() -> Path:
    """``<brainlab cache>/jobs``: one folder per job."""
    return paths.cache_root() / "jobs"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _job_dir(job_id: str) -> Path:
    return jobs_root() / str(job_id)


def _write_record(record: dict) -> None:
    atomic_write(Path(record["folder"]) / JOB_NAME,
                 lambda temp: temp.write_text(json.dumps(record, indent=2) + "\n"))


def _read_record(job: str | Path) -> dict:
    """The record of a job id (in ``jobs_root()``) or of a job folder."""
    folder = Path(job) if os.sep in str(job) else _job_dir(job)
    path = folder / JOB_NAME
    if not path.exists():
        known = ", ".join(j["id"] for j in list_jobs()[:5]) or "none"
        raise BrainlabInputError(f"no job {str(job)!r} in {jobs_root()}; recent jobs: {known}")
    return json.loads(path.read_text())


def _update_record(record: dict, **changes) -> dict:
    """Re-read ``record``'s file, apply ``changes``, write it back; the new record."""
    record = _read_record(record["folder"])
    record.update(changes)
    _write_record(record)
    return record


def _reap_children() -> None:
    for child in list(_children):
        if child.poll() is not None:
            _children.remove(child)


def _process_alive(pid) -> bool:
    """True while ``pid`` runs (a zombie counts as ended)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _refresh(record: dict) -> dict:
    """Mark a job failed when its supervisor is gone without having recorded an end."""
    if record.get("status") in FINISHED:
        return record
    pid = record.get("pid")
    if pid is None:
        # Queued: the supervisor has not recorded itself yet; give it a moment.
        created = datetime.fromisoformat(record["created_at"])
        if (datetime.now(timezone.utc) - created).total_seconds() < 60:
            return record
    elif _process_alive(pid):
        return record
    record = _read_record(record["folder"])  # it may have just written its end
    if record.get("status") in FINISHED:
        return record
    return _update_record(record, status="failed", ended_at=_now(),
                          message="the job's process ended without recording a result "
                                  "(killed or crashed); nothing was added to the checkpoints")


def get_job(job_id: str) -> dict:
    """The record of job ``job_id`` (status refreshed from the process table)."""
    _reap_children()
    return _refresh(_read_record(job_id))


def list_jobs() -> list[dict]:
    """Every job on this machine, newest first."""
    _reap_children()
    root = jobs_root()
    if not root.exists():
        return []
    records = []
    for path in root.glob(f"*/{JOB_NAME}"):
        try:
            records.append(_refresh(json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError, KeyError, ValueError):
            continue
    return sorted(records, key=lambda r: (r.get("created_at", ""), r.get("created_ns", 0)),
                  reverse=True)


def running_job() -> dict | None:
    """The queued or running job, if any."""
    for record in list_jobs():
        if record.get("status") not in FINISHED:
            return record
    return None


def _lock_holder_message() -> str:
    active = running_job()
    if active is None:
        return "another job holds the jobs lock"
    return (f"job {active['id']} ({active['model_type']} on {active['cohort']}) is "
            f"{active['status']} since {active.get('started_at') or active['created_at']}")


def _dependency_links(model_type: str, cohort_name: str, fingerprint: str | None) -> dict:
    """For each checkpoint ``model_type`` builds on, a matching one from the pickers."""
    from brainlab.checkpoints import available

    links = {}
    for dependency in model_spec(model_type).depends_on:
        for entry in available():
            if entry["model_type"] != dependency or entry["cohort"] != cohort_name:
                continue
            if fingerprint is not None and entry["fingerprint"] != fingerprint:
                continue
            links[dependency] = entry["path"]
            break
    return links


def train_command(model_type: str, cohort: str, out_dir, **hyperparameters) -> list[str]:
    """The CLI a job runs: ``python -m brainlab train MODEL --cohort ... --out ... --quiet``."""
    command = [sys.executable, "-m", "brainlab", "train", model_type, "--cohort", str(cohort),
               "--out", str(out_dir), "--quiet"]
    unknown = sorted(set(hyperparameters) - set(TRAIN_FLAGS))
    if unknown:
        raise BrainlabInputError(
            f"unknown training options {unknown}; expected some of {sorted(TRAIN_FLAGS)}")
    for key, flag in TRAIN_FLAGS.items():
        value = hyperparameters.get(key)
        if value is not None:
            command += [flag, str(value)]
    return command


def start_job(model_type: str, cohort: str = "hcp-ya", name: str | None = None,
              cohort_name: str | None = None, fingerprint: str | None = None,
              **hyperparameters) -> dict:
    """Start training ``model_type`` on ``cohort`` (a preset or a path) in the background.

    ``hyperparameters``: epochs, minutes, batch_size, seed, threads, storage (None = the
    recipe's default). The finished checkpoint goes to ``user_checkpoints()/<name>``
    (default ``<cohort>/<model>-<job id>``). A model that builds on another checkpoint
    (gan on mri-ae, encoder on gan) uses the first matching one the pickers list for
    ``cohort_name`` (default: the preset name) and ``fingerprint`` (when given).
    Raises ``JobRunningError`` naming the running job when one is running. Returns
    the job record.
    """
    from brainlab.train_recipes import TRAINERS

    if model_type not in TRAINERS:
        raise BrainlabInputError(
            f"unknown model type {model_type!r}; expected one of {', '.join(sorted(TRAINERS))}")
    source = str(cohort)
    if Path(source).expanduser().exists():
        source = str(Path(source).expanduser().resolve())
    cohort_name = cohort_name or Path(source).stem
    job_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
    name = name or f"{cohort_name}/{model_type}-{job_id}"
    final_dir = paths.user_checkpoints() / name
    if final_dir.exists():
        raise BrainlabInputError(
            f"a checkpoint named {name!r} already exists at {final_dir}; choose another name")

    root = jobs_root()
    root.mkdir(parents=True, exist_ok=True)
    lock = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobRunningError(
                f"one training job runs at a time on this machine and {_lock_holder_message()}; "
                f"wait for it or cancel it (python -m brainlab jobs cancel ID)") from None
        folder = _job_dir(job_id)
        work = folder / WORK_NAME
        work.mkdir(parents=True)
        for dependency, target in _dependency_links(model_type, cohort_name, fingerprint).items():
            (work / dependency).symlink_to(Path(target).resolve(), target_is_directory=True)
        out_dir = work / model_type
        record = {
            "id": job_id, "folder": str(folder), "status": "queued", "model_type": model_type, "cohort": cohort_name,
            "source": source, "name": name, "hyperparameters": {
                k: v for k, v in hyperparameters.items() if v is not None},
            "command": train_command(model_type, source, out_dir, **hyperparameters),
            "out_dir": str(out_dir), "checkpoint": str(final_dir),
            "log": str(folder / LOG_NAME), "created_at": _now(),
            # Orders two jobs created within one second (created_at has second precision).
            "created_ns": time.time_ns(), "started_at": None,
            "ended_at": None, "pid": None, "train_pid": None, "returncode": None,
            "message": None, "cancel_requested": False,
        }
        _write_record(record)
        with open(folder / LOG_NAME, "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "brainlab", "jobs", "supervise", str(folder)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=(lock,), cwd=str(paths.REPO_ROOT),
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        _children.append(child)
        return _update_record(record, status="running", pid=child.pid, started_at=_now())
    finally:
        os.close(lock)  # the supervisor holds its own copy of the lock until it exits


def _wait_for_pid(folder, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = _read_record(folder)
        if record.get("pid") is not None or time.monotonic() > deadline:
            return record
        time.sleep(0.05)


def _checkpoint_complete(folder: Path) -> str | None:
    """None when ``folder`` holds a finished checkpoint, else what is missing."""
    from brainlab.checkpoints import CARD_NAME, WEIGHTS_NAME

    if not (folder / WEIGHTS_NAME).exists():
        return f"no {WEIGHTS_NAME} in {folder}"
    try:
        card = json.loads((folder / CARD_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return f"no readable {CARD_NAME} in {folder}"
    if (card.get("metrics") or {}).get("split") != "test":
        return f"the card in {folder} has no test-split metrics (training did not finish)"
    return None


def supervise(folder) -> int:
    """Run the training CLI of the job in ``folder``, wait, record the outcome, and move
    a complete checkpoint into place.

    Runs inside the job's own session (``start_job`` starts it); holds the jobs lock
    (inherited file descriptor) until it exits.
    """
    record = _wait_for_pid(Path(folder))
    job_id = record["id"]
    cancelled = {"flag": False}
    child: subprocess.Popen | None = None

    def on_term(signum, frame):
        cancelled["flag"] = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    print(f"[job {job_id}] {' '.join(record['command'])}", flush=True)
    child = subprocess.Popen(record["command"], stdin=subprocess.DEVNULL,
                             cwd=str(paths.REPO_ROOT))
    record = _update_record(record, train_pid=child.pid)
    while True:
        try:
            returncode = child.wait()
            break
        except InterruptedError:
            continue
    record = _read_record(record["folder"])
    changes = {"returncode": int(returncode), "ended_at": _now()}
    if cancelled["flag"] or record.get("cancel_requested"):
        changes.update(status="cancelled", message="cancelled; nothing was added to the checkpoints")
    elif returncode != 0:
        changes.update(status="failed",
                       message=f"the training CLI exited with code {int(returncode)}; "
                               f"see the log tail")
    else:
        out_dir, final_dir = Path(record["out_dir"]), Path(record["checkpoint"])
        problem = _checkpoint_complete(out_dir)
        if problem is None and final_dir.exists():
            problem = f"{final_dir} appeared while the job ran; the checkpoint stays in {out_dir}"
        if problem is None:
            final_dir.parent.mkdir(parents=True, exist_ok=True)
            os.replace(out_dir, final_dir)
            changes.update(status="done", message=f"checkpoint saved to {final_dir}")
        else:
            changes.update(status="failed", message=problem)
    print(f"[job {job_id}] {changes['status']}: {changes['message']}", flush=True)
    _update_record(record, **changes)
    return 0 if changes["status"] == "done" else 1


def cancel_job(job_id: str, grace_seconds: float = CANCEL_GRACE_SECONDS) -> dict:
    """Stop job ``job_id``: SIGTERM to its process group, SIGKILL after ``grace_seconds``.

    A finished job is returned unchanged. Returns the updated record.
    """
    record = get_job(job_id)
    if record["status"] in FINISHED:
        return record
    record = _update_record(record, cancel_requested=True)
    if record.get("pid") is None:
        record = _wait_for_pid(record["folder"], timeout=grace_seconds)
    pid = record.get("pid")
    if pid is not None:
        _signal_group(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while _process_alive(pid) and time.monotonic() < deadline:
            _reap_children()
            time.sleep(0.05)
        if _process_alive(pid):
            _signal_group(int(pid), signal.SIGKILL)
            while _process_alive(pid) and time.monotonic() < deadline + grace_seconds:
                _reap_children()
                time.sleep(0.05)
    train_pid = record.get("train_pid")
    if train_pid is not None and _process_alive(train_pid):
        _signal_group(int(train_pid), signal.SIGKILL)
    _reap_children()
    record = _read_record(record["folder"])
    if record["status"] not in FINISHED:
        record = _update_record(record, status="cancelled", ended_at=_now(),
                                message="cancelled; nothing was added to the checkpoints")
    return record


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(os.getpgid(pid), signum)
    except (ProcessLookupError, PermissionError):
        pass


def log_tail(job: dict | str, lines: int = 40) -> str:
    """The last ``lines`` lines of a job's log (carriage-return progress lines split)."""
    record = get_job(job) if isinstance(job, str) else job
    path = Path(record["log"])
    if not path.exists():
        return ""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64_000))
        text = handle.read().decode("utf-8", errors="replace")
    rows = [row for row in text.replace("\r", "\n").splitlines() if row.strip()]
    return "\n".join(rows[-int(lines):])


def job_events(job: dict) -> list[dict]:
    """The training events of a job (from its staging folder, or its checkpoint once done)."""
    from brainlab.training import read_events

    for folder in (job.get("out_dir"), job.get("checkpoint")):
        if folder and (Path(folder) / "events.jsonl").exists():
            return read_events(folder)
    return []


def job_progress(job: dict | str) -> dict:
    """What a live view shows, from the job's events.

    Keys: status, fraction (0-1: the larger of steps/total and elapsed/budget),
    step, total_steps, epoch, elapsed, eta_seconds, losses ({name: {"step": [...],
    "value": [...]}}), val_metrics (one scalar dict per epoch, with its step),
    test_metrics (once done), samples (preview PNG paths), message.
    """
    record = get_job(job) if isinstance(job, str) else _refresh(job)
    events = job_events(record)
    losses: dict[str, dict[str, list]] = {}
    val_metrics, samples = [], []
    last: dict = {}
    test_metrics = None
    for event in events:
        kind = event.get("type")
        if kind in ("step", "epoch", "done"):
            last = event
        if kind == "step":
            for key, value in (event.get("losses") or {}).items():
                if isinstance(value, (int, float)):
                    series = losses.setdefault(key, {"step": [], "value": []})
                    series["step"].append(event["step"])
                    series["value"].append(float(value))
        elif kind == "epoch" and event.get("metrics"):
            val_metrics.append({"step": event["step"], "epoch": event["epoch"],
                                **event["metrics"]})
        elif kind == "sample":
            samples.append(event.get("path"))
        elif kind == "done":
            test_metrics = event.get("metrics")
    step, total = int(last.get("step", 0)), last.get("total_steps")
    elapsed = float(last.get("elapsed", 0.0))
    fraction = step / total if total else 0.0
    minutes = (record.get("hyperparameters") or {}).get("minutes")
    if minutes:
        fraction = max(fraction, elapsed / (60.0 * float(minutes)))
    if record["status"] == "done":
        fraction = 1.0
    if samples and record["status"] == "done":
        # Preview paths point into the staging folder, which moved with the checkpoint.
        samples = [str(Path(record["checkpoint"]) / Path(p).relative_to(record["out_dir"]))
                   if p and p.startswith(record["out_dir"]) else p for p in samples]
    return {"status": record["status"], "fraction": float(min(max(fraction, 0.0), 1.0)),
            "step": step, "total_steps": total, "epoch": int(last.get("epoch", 0)),
            "elapsed": elapsed, "eta_seconds": last.get("eta_seconds"), "losses": losses,
            "val_metrics": val_metrics, "test_metrics": test_metrics, "samples": samples,
            "message": record.get("message")}


def wait_for_job(job_id: str, timeout: float = 600.0, poll: float = 0.2) -> dict:
    """Block until job ``job_id`` finishes (or ``timeout`` seconds pass); its record."""
    deadline = time.monotonic() + timeout
    while True:
        record = get_job(job_id)
        if record["status"] in FINISHED or time.monotonic() > deadline:
            return record
        time.sleep(poll)
