"""brainlab is the core: importing it (and every module in it) never pulls in streamlit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_importing_every_brainlab_module_does_not_import_streamlit():
    program = (
        "import importlib, pkgutil, sys\n"
        "import brainlab\n"
        "names = [m.name for m in pkgutil.walk_packages(brainlab.__path__, 'brainlab.')\n"
        "         if not m.name.endswith('__main__')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'streamlit' or m.startswith('streamlit.'))\n"
        "print(len(names), loaded[:3])\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split()[0]) > 40  # really walked the package


def test_the_cli_lists_every_command_group():
    result = subprocess.run([sys.executable, "-m", "brainlab", "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for command in ("cohort", "train", "evaluate", "probe", "interpolate", "compare", "bench"):
        assert command in result.stdout
