"""Representations of a cohort to map and probe, and the variables to colour maps by.

``REPRESENTATIONS`` lists what the Latent space page (and the CLI) can project:
raw MRI voxels, the MRI autoencoder's latent, raw morphometry, the morphometry
autoencoder's latent and the GAN encoder's latent. ``representation_features``
turns one of them into an (n_subjects, n_features) matrix; ``colour_variables``
lists what a map can be coloured by (age, age bin, sex, each morphometry column
and, on a phantom, each ground-truth variable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from brainlab.analysis.latents import encode_cohort, voxel_features
from brainlab.data.cohort import Cohort
from brainlab.data.progress import ProgressCallback
from brainlab.errors import BrainlabInputError


@dataclass(frozen=True)
class Representation:
    """One way to describe each subject as a feature vector."""

    key: str                  # short id used in URLs and caches
    label: str                # what the page shows
    model_type: str | None    # checkpoint type that produces it; None = raw data
    needs_images: bool        # True when it reads the MRI volumes
    raw_pair: str | None      # for a latent: the raw representation it is probed against
    probe_name: str           # name in the probe table (matches the seed-study reference)


REPRESENTATIONS: dict[str, Representation] = {r.key: r for r in (
    Representation("voxels", "raw MRI voxels (PCA)", None, True, None, "raw MRI"),
    Representation("mri-ae", "MRI-AE latent", "mri-ae", True, "voxels", "mri-ae latent"),
    Representation("morphometry", "raw morphometry", None, False, None, "raw morphometry"),
    Representation("morph-ae", "morph-AE latent", "morph-ae", False, "morphometry",
                   "morph-ae latent"),
    Representation("encoder", "GAN-encoder latent", "encoder", True, "voxels", "encoder latent"),
)}

# Raw voxels are averaged over 2^3 blocks (as in the probes) before PCA/UMAP.
VOXEL_BLOCK = 2


def get_representation(key: str) -> Representation:
    """The ``REPRESENTATIONS`` entry for ``key``; a clear error for unknown keys."""
    if key not in REPRESENTATIONS:
        raise BrainlabInputError(
            f"unknown representation {key!r}; expected one of {', '.join(REPRESENTATIONS)}")
    return REPRESENTATIONS[key]


def available_representations(cohort: Cohort, model_types=()) -> list[str]:
    """Keys of the representations ``cohort`` supports, given the checkpoint types at hand."""
    model_types = set(model_types)
    keys = []
    for key, rep in REPRESENTATIONS.items():
        if rep.needs_images and cohort.images is None:
            continue
        if key == "morphometry" and not cohort.morphometry_columns:
            continue
        if rep.model_type is not None and rep.model_type not in model_types:
            continue
        keys.append(key)
    return keys


@torch.inference_mode()
def _morph_ae_codes(model, cohort: Cohort) -> np.ndarray:
    # The model's own feature list (NaN allowed: it masks missing inputs itself).
    names = list(model.extra_state()["feature_names"])
    raw = cohort.table[names].to_numpy(dtype=np.float32, na_value=np.nan)
    model.eval()
    return model.encode(torch.from_numpy(raw)).float().cpu().numpy()


def representation_features(key: str, cohort: Cohort, model=None,
                            progress: ProgressCallback = None) -> np.ndarray:
    """(n_subjects, n_features) float32 for representation ``key`` of ``cohort``.

    Latent representations need ``model`` (a checkpoint of the representation's
    ``model_type``). Raw morphometry uses the numeric morphometry columns; missing
    values are filled with the column median (PCA/UMAP need complete rows).
    """
    rep = get_representation(key)
    if rep.needs_images and cohort.images is None:
        raise BrainlabInputError(
            f"{rep.label} needs images, but cohort {cohort.name!r} is table-only")
    if rep.model_type is not None:
        found = getattr(model, "model_type", None)
        if found != rep.model_type:
            raise BrainlabInputError(
                f"{rep.label} needs a {rep.model_type!r} model; found {found!r}")
    if key == "voxels":
        return voxel_features(cohort, block=VOXEL_BLOCK, progress=progress)
    if key == "morphometry":
        return numeric_morphometry(cohort).to_numpy(dtype=np.float32)
    if key == "morph-ae":
        return _morph_ae_codes(model, cohort)
    return encode_cohort(model, cohort, progress=progress).astype(np.float32)


def numeric_morphometry(cohort: Cohort) -> pd.DataFrame:
    """The numeric morphometry columns, NaN filled with each column's median."""
    table = cohort.table
    columns = [c for c in cohort.morphometry_columns
               if pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]
    if not columns:
        raise BrainlabInputError(f"cohort {cohort.name!r} has no numeric morphometry columns")
    values = table[columns].astype(float)
    values = values.fillna(values.median()).fillna(0.0)
    return values


# ---------------------------------------------------------------- colour variables

@dataclass(frozen=True)
class ColourVariable:
    """Values to colour a map by: one per subject, numeric ('continuous') or labels."""

    name: str
    values: np.ndarray
    kind: str  # 'continuous' or 'categorical'


def colour_variables(cohort: Cohort) -> dict[str, str]:
    """Names of the variables a map can be coloured by -> their group.

    Groups: "subject" (age, age bin, sex), "morphometry" (each column) and
    "ground truth" (each numeric column of a phantom's ``cohort.truth``, prefixed
    "truth: ").
    """
    options = {"age": "subject", "age bin": "subject", "sex": "subject"}
    if cohort.table["age"].isna().all():
        options.pop("age")
    for column in cohort.morphometry_columns:
        options[column] = "morphometry"
    for column in _truth_columns(cohort):
        options[f"truth: {column}"] = "ground truth"
    return options


# Truth columns that repeat the table (or are bookkeeping) are not offered.
_TRUTH_SKIP = ("subject_id", "sex", "age", "age_bin", "seed")


def _truth_columns(cohort: Cohort) -> list[str]:
    truth = cohort.truth
    if truth is None or len(truth) != len(cohort):
        return []
    return [c for c in truth.columns if c not in _TRUTH_SKIP
            and pd.api.types.is_numeric_dtype(truth[c]) and not pd.api.types.is_bool_dtype(truth[c])]


def colour_values(cohort: Cohort, name: str) -> ColourVariable:
    """The per-subject values of colour variable ``name`` (see ``colour_variables``)."""
    table = cohort.table
    if name == "sex":
        return ColourVariable(name, table["sex"].map({"F": "female", "M": "male"})
                              .fillna(table["sex"]).astype(str).to_numpy(), "categorical")
    if name == "age bin":
        labels = list(cohort.age_bin_labels or ())
        codes = table["age_bin"].astype(int).to_numpy()
        values = np.array([labels[c] if 0 <= c < len(labels) else f"bin {c}" for c in codes])
        return ColourVariable(name, values, "categorical")
    if name.startswith("truth: ") and name[len("truth: "):] in _truth_columns(cohort):
        column = cohort.truth[name[len("truth: "):]]
        return ColourVariable(name, column.to_numpy(dtype=float), "continuous")
    if name == "age" or name in cohort.morphometry_columns:
        column = table[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            return ColourVariable(name, column.to_numpy(dtype=float), "continuous")
        return ColourVariable(name, column.astype(str).to_numpy(), "categorical")
    raise BrainlabInputError(
        f"unknown colour variable {name!r} for cohort {cohort.name!r}; expected one of "
        f"{', '.join(list(colour_variables(cohort))[:8])} …")


# ---------------------------------------------------------------- probes

def probe_features(key: str, cohort: Cohort, model=None,
                   progress: ProgressCallback = None) -> dict[str, np.ndarray]:
    """Features to probe for representation ``key``: the raw one alone, or a latent
    together with the raw representation it compresses (named as in the probe table)."""
    rep = get_representation(key)
    features = {}
    if rep.raw_pair is not None:
        raw = get_representation(rep.raw_pair)
        features[raw.probe_name] = representation_features(raw.key, cohort, progress=progress)
    features[rep.probe_name] = representation_features(key, cohort, model, progress=progress)
    return features


def representation_probe_table(key: str, cohort: Cohort, model=None, n_splits: int = 5,
                               seed: int = 0, progress: ProgressCallback = None) -> pd.DataFrame:
    """The seed study's probe table (raw vs latent for ``key``) with a reference column.

    Same probes, labels and fixed folds as ``brainlab.analysis.probe_runs``.
    """
    from brainlab.analysis.probe_runs import probe_groups, probe_labels
    from brainlab.analysis.probes import probe_table, with_seed_reference

    table = probe_table(probe_features(key, cohort, model, progress), probe_labels(cohort),
                        n_splits=n_splits, seed=seed, groups=probe_groups(cohort))
    return with_seed_reference(table)
