"""The synthetic phantom cohort: T1-like brains with known ground truth.

``load_phantom("hcp-ya")`` builds (once, then from the cache) a cohort following
``PHANTOM.md``: the ICBM152 template warped per subject by sex, age, head size and
correlated structure factors, rendered as skull-stripped T1 at the HCP tensor grid,
and *re-measured* into a morphometry table. ``expected_effect_maps`` and
``true_curve`` give the noise-free truth to show beside what an analysis finds.

Images are stored raw (uint16, WM ≈ 1000, background 0, clipped at ``RAW_MAX``)
and read as ``raw / RAW_MAX`` in [0, 1] (WM ≈ 0.625).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from brainlab.atomic import atomic_write
from brainlab.config import PhantomConfig, config_to_dict
from brainlab.data import cache
from brainlab.data.cohort import Cohort, ImageArray
from brainlab.data.grid import mni_affine
from brainlab.data.phantom.presets import (
    PHANTOM_PRESETS, PHANTOM_VERSION, RAW_MAX, WM_RAW, fingerprint, resolve_config,
)
from brainlab.data.progress import ProgressCallback, report
from brainlab.errors import BrainlabInputError
from brainlab.paths import cache_root

__all__ = ["load_phantom", "expected_effect_maps", "true_curve", "PHANTOM_PRESETS",
           "PhantomConfig", "RAW_MAX", "WM_RAW", "cohort_folder", "fingerprint"]

def cohort_folder(config: PhantomConfig) -> Path:
    return cache_root() / "cohorts" / fingerprint(config)


def load_phantom(preset_or_config: str | PhantomConfig = "hcp-ya",
                 progress: ProgressCallback = None, rebuild: bool = False) -> Cohort:
    """The phantom cohort for a preset name or config: from the cache, else built.

    A cache entry that is missing, partial or fails its checks is rebuilt, never
    used. ``rebuild=True`` forces a fresh build. ``progress(fraction, message)``
    is called during a build: set-up stages, then messages like
    ``"subjects 320/1113 · 12 s elapsed · ETA 25 s"`` (see ``data.progress``).
    """
    config = resolve_config(preset_or_config)
    folder = cohort_folder(config)
    ok, reason = (False, "rebuild requested") if rebuild else cache.verify(folder)
    if ok:
        try:
            return _read_cohort(folder, config)
        except (OSError, ValueError, KeyError) as error:
            reason = f"unreadable entry: {error}"
    report(progress, 0.0, f"building phantom {config.name!r} ({reason})")
    from brainlab.data.phantom.build import build_into

    cache.build_atomically(folder, lambda tmp: build_into(tmp, config, progress))
    report(progress, 1.0, "done")
    return _read_cohort(folder, config)


def _read_cohort(folder: Path, config: PhantomConfig) -> Cohort:
    manifest = cache.read_manifest(folder)
    images = np.load(folder / "images.npy", mmap_mode="r")
    shape = tuple(manifest["shape"])
    if images.shape != shape or str(images.dtype) != manifest["dtype"]:
        raise ValueError(f"images are {images.shape} {images.dtype}; manifest says "
                         f"{shape} {manifest['dtype']}")
    table = pd.read_csv(folder / "table.csv", dtype={"subject_id": str, "sex": str})
    truth = pd.read_csv(folder / "truth.csv", dtype={"subject_id": str, "sex": str})
    if len(table) != shape[0] or len(truth) != shape[0]:
        raise ValueError(f"{len(table)} table rows for {shape[0]} images")
    return Cohort(
        name=config.name, table=table, affine=mni_affine(config.grid_shape),
        images=ImageArray(images, scale=1.0 / RAW_MAX), truth=truth,
        fingerprint=manifest["fingerprint"], age_bin_labels=tuple(config.age_bin_labels),
        source=f"phantom:{config.name}",
        notes=[f"synthetic phantom (PHANTOM.md), version {PHANTOM_VERSION}; morphometry "
               f"re-measured from the images, sampled truth in .truth"],
        metadata={"preset": config.name, "config": json.loads(json.dumps(config_to_dict(config))),
                  "raw_max": RAW_MAX, "wm_raw": WM_RAW, "folder": str(folder)},
    )


# ---- noise-free truth for the app ----------------------------------------------------

def _truth_file(config: PhantomConfig) -> Path:
    return cache_root() / "cohorts" / f"{fingerprint(config)}-truth.npz"


_TRUTH_MEMORY: dict[str, dict] = {}


def _noise_free_truth(config: PhantomConfig) -> dict:
    """Effect maps and expected feature curves; computed once, cached beside the cohort."""
    key = str(_truth_file(config))
    if key in _TRUTH_MEMORY:
        return _TRUTH_MEMORY[key]
    path = _truth_file(config)
    values = None
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                values = {k: data[k] for k in data.files}
        except (OSError, ValueError):
            values = None
    if values is None:
        from brainlab.data.phantom.build import noise_free_truth

        values = noise_free_truth(config)

        def write(temporary: Path) -> None:
            with open(temporary, "wb") as stream:
                np.savez(stream, **values)

        atomic_write(path, write)
    _TRUTH_MEMORY[key] = values
    return values


def expected_effect_maps(config_or_preset: str | PhantomConfig = "hcp-ya") -> dict[str, np.ndarray]:
    """Ground-truth effect maps in the [0, 1] image scale, each (D, H, W) float32.

    ``"sex"``: mean male minus mean female noise-free image (the same latent draws
    rendered as each sex); ``"age"``: oldest-bin minus youngest-bin mid-age (same
    draws and sexes), i.e. the pure ageing effect.
    """
    config = resolve_config(config_or_preset)
    values = _noise_free_truth(config)
    return {"sex": values["effect_sex"].astype(np.float32),
            "age": values["effect_age"].astype(np.float32)}


def true_curve(config_or_preset: str | PhantomConfig, feature: str, ages, sex: str):
    """Noise-free expected value of a morphometry ``feature`` at ``ages`` for ``sex``.

    The expected subject (mean head size for the sex, mean latent factors) is
    rendered without noise at a grid of ages and measured like every image, so the
    curve sits in the same units and measurement as the table. None when the
    feature is not a phantom morphometry column.
    """
    if sex not in ("F", "M"):
        raise BrainlabInputError(f"sex must be 'F' or 'M'; found {sex!r}")
    config = resolve_config(config_or_preset)
    values = _noise_free_truth(config)
    names = [str(n) for n in values["curve_features"]]
    if feature not in names:
        return None
    column = names.index(feature)
    curve = values[f"curve_{sex}"][:, column]
    ages = np.asarray(ages, dtype=float)
    return np.interp(ages, values["curve_ages"], curve)
