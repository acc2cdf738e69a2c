"""Progress reporting shared by long-running jobs (cohort builds, training).

A progress callback takes ``(fraction_done in [0, 1], message)``. The CLI wraps
it in a tqdm bar, the app in ``st.progress``; library code only calls it.

Jobs that count items (subjects of a cohort build) report through ``CountProgress``,
whose messages read ``"subjects 320/1113 · 12 s elapsed · ETA 25 s"``: a caller
that shows the message (``st.progress(fraction, text=message)``) shows the ETA.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

ProgressCallback = Optional[Callable[[float, str], None]]


def report(progress: ProgressCallback, fraction: float, message: str = "") -> None:
    """Call ``progress`` if given, clamping the fraction into [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def format_seconds(seconds: float) -> str:
    """``"8 s"``, ``"1 min 05 s"``: a duration as a person reads it."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s"


class CountProgress:
    """Reports ``done`` of ``total`` items as a fraction in [start, stop] with an ETA.

    The ETA extrapolates the rate since this object was made (so set-up work done
    before it, such as loading a template, does not distort the rate).
    """

    def __init__(self, progress: ProgressCallback, total: int, unit: str = "items",
                 start: float = 0.0, stop: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.progress, self.total, self.unit = progress, max(int(total), 1), unit
        self.start, self.stop, self.clock = start, stop, clock
        self.began = clock()
        self.done = 0

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.began

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far; None before the first item is done."""
        if self.done <= 0:
            return None
        return self.elapsed_s * (self.total - self.done) / self.done

    def message(self) -> str:
        text = f"{self.unit} {self.done}/{self.total} · {format_seconds(self.elapsed_s)} elapsed"
        eta = self.eta_s
        return text + (f" · ETA {format_seconds(eta)}" if eta is not None else "")

    def update(self, done: int) -> None:
        """Record that ``done`` items are finished and report it."""
        self.done = min(max(int(done), 0), self.total)
        fraction = self.start + (self.stop - self.start) * self.done / self.total
        report(self.progress, fraction, self.message())


def tqdm_progress(description: str):
    """Return (callback, close) driving a tqdm bar from fraction-done reports."""
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=description, unit="‰", leave=False)

    def callback(fraction: float, message: str = "") -> None:
        bar.n = int(round(fraction * 1000))
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return callback, bar.close
