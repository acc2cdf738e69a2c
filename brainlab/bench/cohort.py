"""Benchmark of the phantom cohort: cold build, warm load, peak memory.

Each phase runs in a fresh Python subprocess so that its peak resident memory
(``ru_maxrss``) and import costs are its own. The cold build uses an empty cache
folder (so it includes resampling the template, as on a fresh machine); the warm
load reopens that cache in a new process. The load average is recorded because
on a shared machine it, not the code, often decides the wall time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_PHASE = r"""
import json, resource, sys, time
start = time.perf_counter()
from brainlab.data.phantom import load_phantom
imported = time.perf_counter() - start
cpu = time.process_time()
start = time.perf_counter()
cohort = load_phantom(sys.argv[1])
seconds = time.perf_counter() - start
cpu = time.process_time() - cpu
_ = cohort.images[0]
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "import_seconds": imported,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "n_subjects": len(cohort), "grid": list(cohort.grid_shape),
                  "fingerprint": cohort.fingerprint}))
"""


def _run_phase(preset: str, cache_dir: Path) -> dict:
    env = dict(os.environ, BRAINLAB_CACHE=str(cache_dir))
    repo_root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", _PHASE, preset], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark phase for {preset!r} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(preset: str = "hcp-ya", cache_dir: str | Path | None = None) -> dict:
    """Cold build, warm load and peak memory of ``preset``, each in a subprocess.

    ``cache_dir``: an empty folder to build into (kept); by default a temporary
    folder that is deleted afterwards.
    """
    from brainlab.data.phantom import PHANTOM_PRESETS  # validates the name early
    from brainlab.data.phantom.presets import resolve_config

    resolve_config(preset)
    owned = cache_dir is None
    folder = Path(tempfile.mkdtemp(prefix="brainlab-bench-")) if owned else Path(cache_dir)
    try:
        load_before = os.getloadavg()
        cold = _run_phase(preset, folder)
        warm = _run_phase(preset, folder)
        load_after = os.getloadavg()
    finally:
        if owned:
            shutil.rmtree(folder, ignore_errors=True)
    import torch

    return {
        "preset": preset,
        "n_subjects": cold["n_subjects"],
        "grid": cold["grid"],
        "fingerprint": cold["fingerprint"],
        "cold_build_s": round(cold["seconds"], 2),
        "cold_build_cpu_s": round(cold["cpu_seconds"], 2),
        "warm_load_s": round(warm["seconds"], 3),
        "import_s": round(warm["import_seconds"], 2),
        "peak_memory_mb_build": round(cold["peak_rss_mb"], 1),
        "peak_memory_mb_warm": round(warm["peak_rss_mb"], 1),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "preset_names": sorted(PHANTOM_PRESETS),
    }


def format_report(result: dict) -> str:
    """A short human-readable report of ``run``'s result."""
    grid = "x".join(str(n) for n in result["grid"])
    lines = [
        f"phantom cohort {result['preset']!r}: {result['n_subjects']} subjects on {grid} "
        f"(fingerprint {result['fingerprint']})",
        f"  cold build   {result['cold_build_s']:8.2f} s   (CPU {result['cold_build_cpu_s']:.1f} s, "
        f"incl. template resampling)",
        f"  warm load    {result['warm_load_s']:8.3f} s   (+ import {result['import_s']:.2f} s)",
        f"  peak memory  {result['peak_memory_mb_build']:8.0f} MB build, "
        f"{result['peak_memory_mb_warm']:.0f} MB warm load",
        f"  machine      {result['cpu_count']} CPUs, torch threads {result['torch_threads']}, "
        f"load average {result['load_average_before'][0]:.1f} -> {result['load_average_after'][0]:.1f}",
    ]
    if result["load_average_before"][0] > (result["cpu_count"] or 1):
        lines.append("  note: the machine was busy (load > CPUs); wall times are inflated")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m brainlab.bench.cohort [preset]
    print(format_report(run(sys.argv[1] if len(sys.argv) > 1 else "hcp-ya")))
