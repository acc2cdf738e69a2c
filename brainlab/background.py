"""Background work: heavy analyses run off the page, shared by everyone who asks.

One process-wide :class:`BackgroundRunner` (``runner()``) keeps a registry of
tasks keyed like the result store (``ResultKey`` or any string). ``submit(key,
function, ...)`` starts ``function`` on a small thread pool unless a task with
that key is already queued, running or done, in which case the existing task is
returned: two browser sessions asking for the same probe table share one
computation. A task reports progress (fraction, message, ETA), partial results
(e.g. the probe table row by row), and ends done (with its result) or with an
error (its message). Pages poll ``task.snapshot()`` from
``st.fragment(run_every=...)``; the functions themselves write the result store.

``function`` is called as ``function(*args, progress=..., partial=..., **kwargs)``;
``progress(fraction, message)`` and ``partial(item)`` are passed only when the
function's signature names them.
"""

from __future__ import annotations

import inspect
import threading
import time
import traceback
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

QUEUED, RUNNING, DONE, ERROR = "queued", "running", "done", "error"
# Finished tasks kept in the registry (their results are on disk anyway).
KEEP_FINISHED = 64


@dataclass
class Task:
    """One unit of background work and what it has reported so far."""

    key: str
    label: str = ""
    state: str = QUEUED
    fraction: float = 0.0
    message: str = ""
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    details: str | None = None       # the traceback of an unexpected error
    result: Any = None
    partial: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    # ---- called by the worker
    def report(self, fraction: float, message: str = "") -> None:
        """Progress callback: fraction done in [0, 1] and what is happening."""
        with self._lock:
            self.fraction = min(1.0, max(self.fraction, float(fraction)))
            if message:
                self.message = str(message)

    def add_partial(self, item) -> None:
        """Partial-result callback: one more finished piece (e.g. a probe-table row)."""
        with self._lock:
            self.partial.append(item)

    # ---- read by anyone
    @property
    def done(self) -> bool:
        return self.state in (DONE, ERROR)

    def eta_seconds(self) -> float | None:
        """Seconds left, extrapolated from the time so far and the fraction done."""
        with self._lock:
            if self.state != RUNNING or self.started is None or self.fraction <= 0.02:
                return 0.0 if self.state == DONE else None
            elapsed = time.monotonic() - self.started
            return max(0.0, elapsed * (1.0 - self.fraction) / self.fraction)

    def snapshot(self) -> dict:
        """A consistent copy of the task's public state (safe to show or to JSON)."""
        eta = self.eta_seconds()
        with self._lock:
            elapsed = None
            if self.started is not None:
                elapsed = (self.finished or time.monotonic()) - self.started
            return {"key": self.key, "label": self.label, "state": self.state,
                    "fraction": self.fraction, "message": self.message, "eta_s": eta,
                    "elapsed_s": elapsed, "error": self.error, "partial": list(self.partial)}

    def wait(self, timeout: float | None = None):
        """Block until done; returns the result, raises ``RuntimeError`` on error or
        ``TimeoutError`` when ``timeout`` passes first."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"task {self.label or self.key} still running after {timeout} s")
        if self.state == ERROR:
            raise RuntimeError(self.error)
        return self.result


def _accepts(function: Callable, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class BackgroundRunner:
    """A registry of tasks and the thread pool that runs them.

    ``max_workers`` defaults to 2, one per core of a class laptop: the app's warm-up
    (two lanes) mixes one-core work (UMAP, forests, numpy) with torch's, so two at a
    time fill both cores; a page's own request queues behind at most two tasks.
    """

    def __init__(self, max_workers: int = 2):
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="brainlab-bg")
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._lock = threading.Lock()

    def submit(self, key, function: Callable, *args, label: str = "", retry_errors: bool = True,
               **kwargs) -> Task:
        """The task for ``key``: the existing one (queued, running or done), else a new
        one running ``function(*args, **kwargs)`` in the background.

        A task that ended in an error is started afresh when ``retry_errors``.
        """
        name = str(key)
        with self._lock:
            task = self._tasks.get(name)
            if task is not None and not (task.state == ERROR and retry_errors):
                self._tasks.move_to_end(name)
                return task
            task = Task(key=name, label=label or name)
            self._tasks[name] = task
            self._forget_old()
        if _accepts(function, "progress"):
            kwargs["progress"] = task.report
        if _accepts(function, "partial"):
            kwargs["partial"] = task.add_partial
        self._pool.submit(self._run, task, function, args, kwargs)
        return task

    def _run(self, task: Task, function, args, kwargs) -> None:
        with task._lock:
            task.state, task.started = RUNNING, time.monotonic()
        try:
            result = function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 — every failure is shown to the user
            with task._lock:
                task.error = str(error) or type(error).__name__
                task.details = traceback.format_exc()
                task.state, task.finished = ERROR, time.monotonic()
        else:
            with task._lock:
                task.result, task.fraction = result, 1.0
                task.state, task.finished = DONE, time.monotonic()
        finally:
            task._done.set()

    def _forget_old(self) -> None:
        finished = [k for k, t in self._tasks.items() if t.done]
        for name in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self._tasks[name]

    def get(self, key) -> Task | None:
        """The task registered under ``key``, or None."""
        with self._lock:
            return self._tasks.get(str(key))

    def tasks(self) -> list[Task]:
        """Every registered task, oldest first."""
        with self._lock:
            return list(self._tasks.values())

    def forget(self, key) -> None:
        """Drop a finished task from the registry (a later submit starts afresh)."""
        with self._lock:
            task = self._tasks.get(str(key))
            if task is not None and task.done:
                del self._tasks[str(key)]


_runner: BackgroundRunner | None = None
_runner_lock = threading.Lock()


def runner() -> BackgroundRunner:
    """The process-wide runner (created on first use)."""
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = BackgroundRunner()
        return _runner


def submit(key, function: Callable, *args, **kwargs) -> Task:
    """``runner().submit(...)``: see :meth:`BackgroundRunner.submit`."""
    return runner().submit(key, function, *args, **kwargs)
