"""Shared fixtures: every test run gets its own brainlab cache, never the user's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def pytest_configure(config):
    # Set before any test imports brainlab so no test can touch the real cache.
    if "BRAINLAB_CACHE" not in os.environ or not os.environ.get("BRAINLAB_TEST_KEEP_CACHE"):
        import tempfile

        os.environ["BRAINLAB_CACHE"] = tempfile.mkdtemp(prefix="brainlab-test-cache-")
    os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.exists():
        pytest.skip(f"shared material not found at {SHARED_DIR}")
    return SHARED_DIR


@pytest.fixture(scope="session")
def fixture_csv(shared_dir) -> Path:
    return shared_dir / "fixtures" / "hcp_unrestricted_like.csv"
