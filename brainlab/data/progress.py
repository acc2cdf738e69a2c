"""Progress reporting shared by long-running jobs (cohort builds, training).

A progress callback takes ``(fraction_done in [0, 1], message)``. The CLI wraps
it in a tqdm bar, the app in ``st.progress``; library code only calls it.
"""

from __future__ import annotations

from typing import Callable, Optional

ProgressCallback = Optional[Callable[[float, str], None]]


def report(progress: ProgressCallback, fraction: float, message: str = "") -> None:
    """Call ``progress`` if given, clamping the fraction into [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


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
