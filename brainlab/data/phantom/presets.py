"""Phantom presets and the constants a warm load needs (no torch import here)."""

from __future__ import annotations

import hashlib
import json

from brainlab.config import PhantomConfig, config_from_dict, config_to_dict
from brainlab.errors import BrainlabInputError

# Bump whenever sampling, synthesis or measurement changes: it is in every fingerprint.
PHANTOM_VERSION = 5

# Raw intensities: WM ≈ 1000 like the HCP tensors, clipped at RAW_MAX; the [0, 1]
# view models see is raw / RAW_MAX (so WM ≈ 0.625 and bias/noise never clip).
WM_RAW = 1000.0
RAW_MAX = 1600.0

LIFESPAN_EDGES = (20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
LIFESPAN_LABELS = ("20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-90")

PHANTOM_PRESETS: dict[str, PhantomConfig] = {
    # The seed study's cohort: HCP Young Adult counts per sex x age bin (PHANTOM.md).
    "hcp-ya": PhantomConfig(),
    # Teaching ageing: 20-90 y, balanced sex, decade bins.
    "lifespan": PhantomConfig(
        name="lifespan", n_subjects=400, age_bin_edges=LIFESPAN_EDGES,
        age_bin_labels=LIFESPAN_LABELS, female_counts=(), male_counts=()),
    # Tests: a handful of subjects on a tiny unequal grid.
    "tiny": PhantomConfig(
        name="tiny", n_subjects=24, grid_shape=(12, 14, 16), age_bin_edges=LIFESPAN_EDGES,
        age_bin_labels=LIFESPAN_LABELS, female_counts=(), male_counts=()),
}


def resolve_config(preset_or_config) -> PhantomConfig:
    """A PhantomConfig from a preset name, a config, or a config dict; checked."""
    if isinstance(preset_or_config, PhantomConfig):
        config = preset_or_config
    elif isinstance(preset_or_config, dict):
        config = config_from_dict(PhantomConfig, preset_or_config)
    elif isinstance(preset_or_config, str):
        if preset_or_config not in PHANTOM_PRESETS:
            raise BrainlabInputError(
                f"unknown phantom preset {preset_or_config!r}; expected one of "
                f"{', '.join(sorted(PHANTOM_PRESETS))}")
        config = PHANTOM_PRESETS[preset_or_config]
    else:
        raise BrainlabInputError(
            f"phantom source must be a preset name or PhantomConfig; found "
            f"{type(preset_or_config).__name__}")
    check_config(config)
    return config


def check_config(config: PhantomConfig) -> None:
    """Raise BrainlabInputError for a config the generator cannot honour."""
    shape = tuple(config.grid_shape)
    if len(shape) != 3 or min(shape) < 4:
        raise BrainlabInputError(f"phantom grid_shape must be 3 ints >= 4; found {shape}")
    edges = list(config.age_bin_edges)
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise BrainlabInputError(f"age_bin_edges must increase; found {edges}")
    n_bins = len(edges) - 1
    if len(config.age_bin_labels) != n_bins:
        raise BrainlabInputError(
            f"{n_bins} age bins but {len(config.age_bin_labels)} age_bin_labels")
    if config.female_counts or config.male_counts:
        if len(config.female_counts) != n_bins or len(config.male_counts) != n_bins:
            raise BrainlabInputError(
                f"female_counts/male_counts need {n_bins} entries each (one per age bin); "
                f"found {len(config.female_counts)} and {len(config.male_counts)}")
        if sum(config.female_counts) + sum(config.male_counts) < 3:
            raise BrainlabInputError("a phantom cohort needs at least 3 subjects")
    elif config.n_subjects < 3:
        raise BrainlabInputError(f"n_subjects must be >= 3; found {config.n_subjects}")
    if config.storage not in ("uint16", "float16"):
        raise BrainlabInputError(f"storage must be 'uint16' or 'float16'; found {config.storage!r}")


def fingerprint(config: PhantomConfig) -> str:
    """Hash of the config and the generator/anatomy versions (never of wall time)."""
    from brainlab.data.phantom.anatomy import ANATOMY_VERSION

    payload = {"config": config_to_dict(config), "phantom": PHANTOM_VERSION,
               "anatomy": ANATOMY_VERSION}
    text = json.dumps(payload, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
