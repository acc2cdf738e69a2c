"""Age and sex directions in a GAN's latent z, edits along them, and whether the edits work.

InterFaceGAN style (Shen et al., CVPR 2020): label latents with an attribute, fit a
linear model in z, and move a latent along its unit normal. Labelled latents come
from two places:

- real subjects encoded into z by the GAN's encoder (labels: the table's sex and
  age; no refinement, for speed), or
- GAN samples labelled by brainlab's classifiers (P(male) >= 0.5 -> male; the
  brain-age model's predicted age).

The conditional age direction is the age direction made orthogonal to the sex
direction (editing age then leaves the linear sex score unchanged). An edit's
effectiveness is checked by the classifiers themselves: predicted age / P(male)
of the edited brains as a curve over edit strength. On the phantom, an edit's
difference map is compared with the true effect map by correlation
(``directions.direction_correlation``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from brainlab.analysis.directions import edit, fit_direction, orthogonalize
from brainlab.analysis.gan_walks import render_frames
from brainlab.analysis.real_vs_synthetic import classifier_outputs, generate_samples
from brainlab.errors import BrainlabInputError

ATTRIBUTES = ("sex", "age", "age_given_sex")
ATTRIBUTE_NAMES = {"sex": "sex (→ male)", "age": "age (→ older)",
                   "age_given_sex": "age ⟂ sex (→ older, sex unchanged)"}


@dataclass(frozen=True)
class AttributeDirections:
    """Unit directions (latent_dim,) in z; None where that attribute had no usable labels."""

    sex: np.ndarray | None          # towards male
    age: np.ndarray | None          # towards older
    age_given_sex: np.ndarray | None  # age with its sex component removed
    source: str                     # where the labelled latents came from
    n_latents: int                  # how many labelled latents were used
    age_unit: str = "years"         # 'years', or 'age bin' when only bins were known
    notes: tuple[str, ...] = field(default_factory=tuple)  # why a direction is missing

    def get(self, name: str) -> np.ndarray:
        """The direction called ``name`` (one of ``ATTRIBUTES``); raises when missing."""
        if name not in ATTRIBUTES:
            raise BrainlabInputError(f"direction must be one of {ATTRIBUTES}; found {name!r}")
        direction = getattr(self, name)
        if direction is None:
            why = "; ".join(self.notes) or "no labels for it"
            raise BrainlabInputError(f"no {name} direction was fitted ({why})")
        return direction

    def available(self) -> list[str]:
        """Names of the directions that were fitted."""
        return [name for name in ATTRIBUTES if getattr(self, name) is not None]

    def cosine_sex_age(self) -> float | None:
        """cos(angle) between the sex and the (unconditional) age direction."""
        if self.sex is None or self.age is None:
            return None
        return float(self.sex @ self.age)


@torch.inference_mode()
def encode_subjects(encoder, cohort, indices, batch_size: int = 16) -> np.ndarray:
    """E(x) for the cohort's ``indices`` (no refinement): (n, latent_dim) float32."""
    if cohort.images is None:
        raise BrainlabInputError(f"cohort {cohort.name!r} has no images to encode")
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise BrainlabInputError("no subjects to encode; expected at least one index")
    latents = []
    for start in range(0, len(indices), batch_size):
        images = torch.from_numpy(np.asarray(cohort.images[indices[start:start + batch_size]]))
        latents.append(encoder.encode(images[:, None]).float().cpu().numpy())
    return np.concatenate(latents).astype(np.float32)


def _codes_of(encoder, cohort, indices, codes: np.ndarray | None) -> np.ndarray:
    if codes is None:
        return encode_subjects(encoder, cohort, indices)
    codes = np.asarray(codes, dtype=np.float32)
    if codes.ndim != 2 or len(codes) != len(cohort):
        raise BrainlabInputError(f"codes must be (n_subjects={len(cohort)}, latent_dim); "
                                 f"found shape {codes.shape}")
    return codes[np.asarray(indices, dtype=np.int64)]


def subject_labels(cohort, indices) -> tuple[np.ndarray, np.ndarray, str]:
    """``(male 0/1, age, unit)`` of the cohort's ``indices``.

    Age is in years when at least half the subjects have one, else the ordinal age
    bin (unit 'age bin'); unknown entries are NaN.
    """
    table = cohort.table.iloc[np.asarray(indices, dtype=np.int64)]
    male = (table["sex"].astype(str).to_numpy() == "M").astype(float)
    ages = table["age"].to_numpy(dtype=float, na_value=np.nan)
    if np.isfinite(ages).mean() >= 0.5:
        return male, ages, "years"
    bins = table["age_bin"].to_numpy(dtype=float, na_value=np.nan)
    bins[bins < 0] = np.nan
    return male, bins, "age bin"


def label_samples(gan, n: int, seed: int = 0, sex_model=None, age_model=None
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``n`` GAN samples labelled by the classifiers: (latents, P(male) or None, age or None)."""
    if sex_model is None and age_model is None:
        raise BrainlabInputError(
            "labelling GAN samples needs a sex classifier or a brain-age model; found neither")
    latents, volumes = generate_samples(gan, n, seed)
    p_male = classifier_outputs(sex_model, volumes) if sex_model is not None else None
    ages = classifier_outputs(age_model, volumes) if age_model is not None else None
    return latents, p_male, ages


def fit_attribute_directions(latents, male=None, age=None, regularization: float = 1.0,
                             source: str = "labelled latents", age_unit: str = "years"
                             ) -> AttributeDirections:
    """Fit sex (logistic) and age (ridge) directions on labelled ``latents`` (n, d).

    ``male`` holds 0/1 labels or probabilities (thresholded at 0.5); ``age`` holds
    years (NaN = unknown, dropped). A direction whose labels are missing, constant
    or one-class is left None with a note saying why.
    """
    latents = np.asarray(latents, dtype=np.float64)
    if latents.ndim != 2 or len(latents) < 2:
        raise BrainlabInputError(
            f"latents must be (n >= 2, latent_dim); found shape {latents.shape}")
    notes = []
    sex_direction = age_direction = conditional = None
    if male is not None:
        male = np.asarray(male, dtype=float)
        if male.shape != (len(latents),):
            raise BrainlabInputError(
                f"male must have one entry per latent ({len(latents)}); found shape {male.shape}")
        known = np.isfinite(male)
        labels = (male[known] >= 0.5).astype(int)
        if len(np.unique(labels)) == 2 and min(np.bincount(labels)) >= 2:
            sex_direction = fit_direction(latents[known], labels, "binary", regularization)
        else:
            notes.append(f"sex labels of the {source} hold fewer than 2 of each sex "
                         f"({int(labels.sum())} male of {len(labels)})")
    if age is not None:
        age = np.asarray(age, dtype=float)
        if age.shape != (len(latents),):
            raise BrainlabInputError(
                f"age must have one entry per latent ({len(latents)}); found shape {age.shape}")
        known = np.isfinite(age)
        if known.sum() >= 3 and np.ptp(age[known]) > 0:
            age_direction = fit_direction(latents[known], age[known], "continuous", regularization)
        else:
            notes.append(f"fewer than 3 distinct known ages among the {source}")
    if sex_direction is not None and age_direction is not None:
        try:
            conditional = orthogonalize(age_direction, sex_direction)
        except BrainlabInputError:
            notes.append("the age direction is parallel to the sex direction")
    return AttributeDirections(sex=sex_direction, age=age_direction, age_given_sex=conditional,
                               source=source, n_latents=int(len(latents)), age_unit=age_unit,
                               notes=tuple(notes))


def directions_from_real(encoder, cohort, indices, regularization: float = 1.0,
                         codes: np.ndarray | None = None) -> AttributeDirections:
    """Directions fitted on real subjects (``indices``, e.g. the train split) encoded by E.

    ``codes``: E(x) of every cohort subject, (n_subjects, latent_dim), when already
    computed (the stored encoder latents); else the subjects are encoded here.
    """
    latents = _codes_of(encoder, cohort, indices, codes)
    male, age, unit = subject_labels(cohort, indices)
    return fit_attribute_directions(latents, male, age, regularization,
                                    source=f"{len(latents)} encoded real subjects", age_unit=unit)


def directions_from_samples(gan, n: int, seed: int = 0, sex_model=None, age_model=None,
                            regularization: float = 1.0) -> AttributeDirections:
    """Directions fitted on ``n`` GAN samples labelled by the classifiers."""
    latents, p_male, ages = label_samples(gan, n, seed, sex_model, age_model)
    unit = "years" if age_model is None or getattr(age_model, "target", "years") == "years" \
        else "age bin"
    return fit_attribute_directions(latents, p_male, ages, regularization,
                                    source=f"{n} classifier-labelled GAN samples", age_unit=unit)


def directions_from_both(encoder, cohort, indices, gan, n: int, seed: int = 0, sex_model=None,
                         age_model=None, regularization: float = 1.0,
                         codes: np.ndarray | None = None) -> AttributeDirections:
    """Directions fitted on encoded real subjects and classifier-labelled GAN samples together.

    A sample without a classifier for an attribute counts as unlabelled (NaN) for it;
    predicted ages join the real ones only when both are in the same unit. ``codes``
    as in ``directions_from_real``.
    """
    real = _codes_of(encoder, cohort, indices, codes)
    male, age, unit = subject_labels(cohort, indices)
    if sex_model is None and age_model is None:
        return fit_attribute_directions(real, male, age, regularization,
                                        source=f"{len(real)} encoded real subjects", age_unit=unit)
    latents, p_male, ages = label_samples(gan, n, seed, sex_model, age_model)
    sample_unit = "years" if getattr(age_model, "target", "years") == "years" else "age bin"
    unlabelled = np.full(len(latents), np.nan)
    sample_age = ages if ages is not None and sample_unit == unit else unlabelled
    return fit_attribute_directions(
        np.concatenate([real, latents]),
        np.concatenate([male, p_male if p_male is not None else unlabelled]),
        np.concatenate([age, sample_age]), regularization,
        source=f"{len(real)} encoded real subjects and {n} labelled GAN samples", age_unit=unit)


def edit_path(gan, z, direction, strengths) -> tuple[np.ndarray, np.ndarray]:
    """Latents ``z + s * direction`` for each strength and their volumes (m, D, H, W)."""
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 1:
        raise BrainlabInputError(f"z must be one latent (latent_dim,); found shape {z.shape}")
    strengths = np.atleast_1d(np.asarray(strengths, dtype=np.float64))
    path = edit(z, direction, strengths).astype(np.float32)
    return path, render_frames(gan, path)


def effectiveness_curve(gan, z, direction, strengths, sex_model=None, age_model=None) -> dict:
    """What the classifiers say about brains edited along ``direction``.

    Returns ``{"strength": (m,), "p_male": (m,) or None, "age": (m,) or None,
    "volumes": (m, D, H, W)}``: a working sex edit raises P(male) with the strength,
    a working age edit the predicted age.
    """
    strengths = np.atleast_1d(np.asarray(strengths, dtype=np.float64))
    _, volumes = edit_path(gan, z, direction, strengths)
    return {"strength": strengths,
            "p_male": classifier_outputs(sex_model, volumes) if sex_model is not None else None,
            "age": classifier_outputs(age_model, volumes) if age_model is not None else None,
            "volumes": volumes}


def mean_edit_effect(gan, direction, strength: float, n: int = 16, seed: int = 0) -> np.ndarray:
    """Mean of G(z + s·d) − G(z) over ``n`` random z: the edit's average difference map.

    Averaging over starting points removes what is specific to one brain, so this
    is what to compare with a true (population) effect map.
    """
    if int(n) < 1:
        raise BrainlabInputError(f"n must be >= 1; found {n}")
    z = np.asarray(gan.sample_latent(int(n), int(seed)), dtype=np.float32)
    moved = edit(z, direction, float(strength)).astype(np.float32)
    return (render_frames(gan, moved) - render_frames(gan, z)).mean(axis=0)
