"""Assemble raw-vs-latent probe inputs for a cohort and run the probe table.

The CLI (``python -m brainlab probe``) and the Latent space page call
``cohort_probe_table`` so both report the same numbers.
"""

from __future__ import annotations

import numpy as np

from brainlab.analysis.latents import encode_cohort, morphometry_features, voxel_features
from brainlab.analysis.probes import probe_table
from brainlab.data.cohort import Cohort
from brainlab.errors import BrainlabInputError


def probe_labels(cohort: Cohort) -> dict[str, np.ndarray]:
    """Targets of the seed study's probes: sex (1 = male) and ordinal age bin."""
    return {
        "sex": cohort.male_mask().astype(int),
        "age bin": cohort.table["age_bin"].to_numpy(dtype=int),
    }


def probe_groups(cohort: Cohort) -> np.ndarray | None:
    """Family ids for family-grouped folds (a real HCP table with a ``family`` column,
    e.g. loaded with ``--group-column Family_ID``), else None (plain stratified folds)."""
    if "family" not in cohort.table:
        return None
    return cohort.table["family"].astype(str).to_numpy()


def probe_representations(cohort: Cohort, model=None, progress=None) -> dict[str, np.ndarray]:
    """Raw features (and the model's latent, if a model is given) for probing.

    A morphometry AE pairs with raw morphometry; an image model (MRI AE, GAN
    encoder) pairs with block-averaged raw voxels. Without a model both raw
    representations the cohort has are returned.
    """
    model_type = getattr(model, "model_type", None)
    features: dict[str, np.ndarray] = {}
    wants_morph = model is None or model_type == "morph-ae"
    wants_voxels = (model is None or model_type != "morph-ae") and cohort.images is not None
    if wants_morph and cohort.morphometry_columns:
        features["raw morphometry"] = morphometry_features(cohort)
    if wants_voxels:
        features["raw MRI"] = voxel_features(cohort, progress=progress)
    if model is not None:
        features[f"{model_type} latent"] = encode_cohort(model, cohort, progress=progress)
    if not features:
        raise BrainlabInputError(
            f"cohort {cohort.name!r} has neither morphometry columns nor images to probe")
    return features


def cohort_probe_table(cohort: Cohort, model=None, n_splits: int = 5, seed: int = 0,
                       progress=None, n_jobs: int | None = None):
    """The probe table (pandas DataFrame) of raw vs latent features for a cohort.

    ``n_jobs`` processes score the rows (None: both cores for a large cohort);
    ``progress(fraction, message)`` follows the features, then the rows.
    """
    features = probe_representations(cohort, model, _part(progress, 0.0, 0.3))
    return probe_table(features, probe_labels(cohort), n_splits=n_splits, seed=seed,
                       n_jobs=n_jobs, progress=_part(progress, 0.3, 1.0),
                       groups=probe_groups(cohort))


def _part(progress, low: float, high: float):
    if progress is None:
        return None
    return lambda fraction, message="": progress(low + (high - low) * fraction, message)
