"""Background runner: progress, partial results, shared computations, errors."""

import threading

import pytest

from brainlab.background import DONE, ERROR, BackgroundRunner
from brainlab.errors import BrainlabInputError
from brainlab.result_store import ResultKey


def _gated(gate: threading.Event, calls: list):
    """A job that reports progress and rows, then waits for ``gate`` before finishing."""
    def job(n, progress=None, partial=None):
        calls.append(n)
        for i in range(n):
            partial({"row": i})
            progress((i + 1) / (n + 1), f"row {i + 1} of {n}")
        assert gate.wait(10)
        return n * 10
    return job


def test_progress_and_partial_results_are_visible_while_running():
    runner = BackgroundRunner()
    gate, calls = threading.Event(), []
    task = runner.submit("k", _gated(gate, calls), 3, label="probes")
    for _ in range(200):
        if len(task.snapshot()["partial"]) == 3:
            break
        threading.Event().wait(0.01)
    snap = task.snapshot()
    assert snap["state"] == "running" and snap["label"] == "probes"
    assert snap["partial"] == [{"row": 0}, {"row": 1}, {"row": 2}]
    assert snap["fraction"] == pytest.approx(0.75)
    assert snap["message"] == "row 3 of 3"
    assert snap["eta_s"] is not None and snap["eta_s"] >= 0
    gate.set()
    assert task.wait(10) == 30
    assert task.snapshot()["state"] == DONE and task.snapshot()["fraction"] == 1.0


def test_two_submitters_share_one_computation():
    runner = BackgroundRunner(max_workers=2)
    gate, calls = threading.Event(), []
    key = ResultKey("probe-table", "fp", {"model": "d"}, {"folds": 5})
    first = runner.submit(key, _gated(gate, calls), 2)
    second = runner.submit(ResultKey("probe-table", "fp", {"model": "d"}, {"folds": 5}),
                           _gated(gate, calls), 2)
    assert second is first
    gate.set()
    assert first.wait(10) == 20
    third = runner.submit(key, _gated(gate, calls), 2)  # done: still the same task
    assert third is first
    assert calls == [2]
    other = runner.submit(ResultKey("probe-table", "fp", {"model": "d"}, {"folds": 4}),
                          _gated(gate, calls), 1)
    assert other is not first and other.wait(10) == 10


def test_errors_are_surfaced_with_their_message_and_can_be_retried():
    runner = BackgroundRunner()
    attempts = []

    def failing():
        attempts.append(1)
        raise BrainlabInputError("labels 'sex' have one class only; a probe needs >= 2")

    task = runner.submit("bad", failing)
    with pytest.raises(RuntimeError, match="one class only"):
        task.wait(10)
    snap = task.snapshot()
    assert snap["state"] == ERROR and "one class only" in snap["error"]
    assert "BrainlabInputError" in task.details
    kept = runner.submit("bad", failing, retry_errors=False)
    assert kept is task and len(attempts) == 1
    retried = runner.submit("bad", failing)
    assert retried is not task
    with pytest.raises(RuntimeError):
        retried.wait(10)
    assert len(attempts) == 2


def test_functions_without_callbacks_are_called_plainly():
    runner = BackgroundRunner()
    task = runner.submit("plain", lambda a, b=1: a + b, 2, b=3)
    assert task.wait(10) == 5
    assert runner.get("plain") is task and runner.tasks() == [task]
    runner.forget("plain")
    assert runner.get("plain") is None
