"""``bench app``: the report puts every figure beside its goal; CPU time is read from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from brainlab.bench import app as bench_app


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_process_tree_cpu_counts_children():
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nend = time.time() + 0.6\nwhile time.time() < end: pass"])
    before = bench_app._process_tree_cpu_seconds(os.getpid())
    time.sleep(0.4)
    during = bench_app._process_tree_cpu_seconds(os.getpid())
    child.wait()
    assert during - before > 0.1  # the busy child's CPU is counted under this process


def test_report_marks_missed_goals():
    result = {"goals": bench_app.GOALS, "first_page_warm_s": 4.0, "first_page_cold_s": 75.0,
              "pages": {"Home": 0.8, "Cohort": 3.5},
              "controls": {"Cohort": {"slider": 0.4, "select": 1.6}},
              "idle_cpu_percent": 0.3, "idle_seconds": 60, "logs": "/tmp/x"}
    report = bench_app.format_report(result)
    assert "first page cold: 75.0 s (goal <= 60 s: MISSED)" in report
    assert "page Home: first render 0.80 s (goal <= 3 s: met)" in report
    assert "page Cohort: first render 3.50 s (goal <= 3 s: MISSED)" in report
    assert "select: settles in 1.60 s (goal <= 1 s: MISSED)" in report
    assert "idle server: 0.3 % of one core over 60 s (goal <= 2 %: met)" in report
