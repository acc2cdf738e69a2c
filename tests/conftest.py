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


def pytest_report_header(config):
    from brainlab.precision import BF16_ENV, cpu_has_bf16_instructions, resolve_bf16

    flags = "has" if cpu_has_bf16_instructions() else "has no"
    return (f"brainlab precision: this CPU {flags} AVX-512 BF16/AMX; "
            f"{BF16_ENV}={os.environ.get(BF16_ENV, '(unset)')} -> "
            f"bf16 {'on' if resolve_bf16('auto') else 'off'} for training")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.exists():
        pytest.skip(f"shared material not found at {SHARED_DIR}")
    return SHARED_DIR


@pytest.fixture(scope="session")
def fixture_csv(shared_dir) -> Path:
    return shared_dir / "fixtures" / "hcp_unrestricted_like.csv"


def make_small_cohort(n: int = 24, grid=(12, 14, 16), seed: int = 0, name: str = "small"):
    """A tiny in-memory cohort on an unequal grid: blurred blobs whose size depends on
    sex and age, a table with ages in years, age bins and 3 morphometry columns."""
    import numpy as np
    import pandas as pd

    from brainlab.data.cohort import Cohort, ImageArray
    from brainlab.data.grid import mni_affine

    rng = np.random.default_rng(seed)
    sex = np.array(["F", "M"] * (n // 2) + ["F"] * (n % 2))
    age = rng.uniform(22, 40, n).round(1)
    age_bin = np.digitize(age, [26, 31, 36])
    axes = np.meshgrid(*[np.linspace(-1, 1, s) for s in grid], indexing="ij")
    radius = np.sqrt(sum(a ** 2 for a in axes))
    size = 0.55 + 0.15 * (sex == "M") - 0.012 * (age - 30) + 0.02 * rng.standard_normal(n)
    images = np.stack([np.clip(1.2 - radius / s, 0, 1) for s in size]).astype(np.float32)
    images *= (0.9 + 0.1 * rng.random((n, 1, 1, 1))).astype(np.float32)
    table = pd.DataFrame({
        "subject_id": [f"sub-{i:03d}" for i in range(n)], "sex": sex, "age": age,
        "age_bin": age_bin.astype(int),
        "volume_total": images.sum(axis=(1, 2, 3)),
        "thickness_mean": 2.5 - 0.01 * (age - 30) + 0.05 * rng.standard_normal(n),
        "volume_hippocampus": 4000 + 400 * (sex == "M") + 50 * rng.standard_normal(n),
    })
    return Cohort(name=name, table=table, affine=mni_affine(grid), images=ImageArray(images))


@pytest.fixture
def one_torch_thread():
    """Run the test on one torch thread (restored afterwards).

    The test machine is shared: two spinning OpenMP threads per process slow tiny
    models down by 10-50x under load. Use with ``pytest.mark.usefixtures``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_cohort():
    """24 subjects on a 12x14x16 grid (see ``make_small_cohort``)."""
    return make_small_cohort()


TINY_FIXTURE_TYPES = ("mri-ae", "gan", "encoder", "morph-ae", "sex-clf", "age-model")


@pytest.fixture(scope="session")
def tiny_checkpoints() -> Path:
    """Every model type trained for a few steps on the ``tiny`` phantom (seconds each).

    Written to ``user_checkpoints() / "tiny-fixture" / <type>`` (inside the test cache),
    so ``brainlab.checkpoints.available()`` and the app's model picker find them.
    Returns that folder.
    """
    from brainlab import paths
    from brainlab.data import load
    from brainlab.registry import train_all_order
    from brainlab.train_recipes import RecipeOptions, train

    root = paths.user_checkpoints() / "tiny-fixture"
    cohort = load("tiny")
    for model_type in train_all_order():
        if model_type not in TINY_FIXTURE_TYPES:
            continue
        out = root / model_type
        if (out / "model_card.json").exists():
            continue
        options = RecipeOptions(out=out, out_root=root, epochs=1, minutes=0.5,
                                batch_size=8, seed=0)
        train(model_type, cohort, options)
    return root


# ---- page tests (AppTest) on the ``tiny`` phantom; helpers are in app_helpers.py

@pytest.fixture(scope="module")
def tiny():
    try:
        from brainlab.data import load
        return load("tiny")
    except ImportError:
        pytest.skip("the phantom generator is not available")


@pytest.fixture
def with_models(tiny, tiny_checkpoints, monkeypatch, tmp_path):
    """Only the fixture's tiny checkpoints are listed (not shipped ones for other cohorts)."""
    import streamlit as st

    from brainlab import paths

    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", tmp_path / "no-shipped")
    st.cache_data.clear()
    yield tiny_checkpoints
    st.cache_data.clear()


@pytest.fixture
def without_models(tiny, monkeypatch, tmp_path):
    """No checkpoint anywhere: both listing folders are empty."""
    import streamlit as st

    from brainlab import paths

    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", tmp_path / "no-shipped")
    monkeypatch.setattr(paths, "user_checkpoints", lambda: tmp_path / "no-user-checkpoints")
    st.cache_data.clear()
    yield
    st.cache_data.clear()
