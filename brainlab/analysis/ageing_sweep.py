"""The ageing sweep: one z, one sex, the requested age moved from young to old.

``ageing_sweep`` decodes the same latent at a series of ages (years on ``lifespan``,
every bin on ``hcp-ya``) and, beside it, the *true* ageing of the cohort: the mean brain
of the same sex in the age bin nearest each requested age (``cohort_means``; the
phantom's ground truth as the cohort shows it, without re-rendering the phantom). Each
frame's change from the first is measured in voxels (|Δ| > ``VOXEL_THRESHOLD``) and in
brain volume (cc, from the voxel size of the cohort's affine), so the claim "the brain
ages" can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainlab.analysis.cohort_means import age_bin_label
from brainlab.analysis.conditional_generation import generate_conditioned, require_conditional
from brainlab.analysis.directions import direction_correlation
from brainlab.errors import BrainlabInputError

VOXEL_THRESHOLD = 0.05  # |Δ intensity| that counts a voxel as changed (intensities in [0, 1])
BRAIN_THRESHOLD = 0.15  # intensity above which a voxel counts as brain for volumes in cc


@dataclass(frozen=True)
class AgeingSweep:
    """Generated and true frames of one sweep; (T, D, H, W) float32 each."""

    ages: list                   # requested ages (years, or bin indices on 'bins')
    labels: list[str]            # a label per frame, e.g. '20 y' or '26-30'
    sex: str
    generated: np.ndarray        # G(z, sex, age) per frame
    true: np.ndarray | None      # the cohort's mean brain of that sex, nearest age bin
    voxels_changed: list[int]    # per frame: voxels differing from frame 0 by > threshold
    brain_cc: list[float]        # per frame: generated brain volume in cc
    true_brain_cc: list[float] | None
    map_correlation: float | None  # r of the generated and true last − first maps (in the brain)


def parse_sweep(text: str) -> tuple[float, float, int]:
    """'20:90:8' -> (20.0, 90.0, 8): start, stop, number of frames (>= 2)."""
    parts = str(text).split(":")
    try:
        start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise BrainlabInputError(
            f"--sweep-age {text!r}: expected START:STOP:FRAMES, e.g. 20:90:8") from None
    if count < 2 or stop <= start:
        raise BrainlabInputError(f"--sweep-age {text!r}: expected STOP > START and FRAMES >= 2")
    return start, stop, count


def sweep_ages(gan, start=None, stop=None, count: int = 8) -> list:
    """Ages of a sweep: ``count`` years from start to stop ('years'), every bin ('bins')."""
    spec = gan.condition_spec
    if spec.age_encoding == "bins":
        return list(range(len(spec.age_bin_labels)))
    if spec.age_encoding != "years":
        raise BrainlabInputError("this GAN is not conditioned on age; expected one trained "
                                 "on a cohort with ages")
    low, high = spec.age_range
    start = low if start is None else start
    stop = high if stop is None else stop
    for value in (start, stop):
        spec.check_age(value)
    return np.linspace(start, stop, int(count)).round(1).tolist()


def voxel_cc(affine) -> float:
    """Volume of one voxel in cc (mm³ / 1000) from a 4×4 affine."""
    return float(abs(np.linalg.det(np.asarray(affine, dtype=float)[:3, :3]))) / 1000.0


def brain_volume_cc(volumes: np.ndarray, affine) -> list[float]:
    """Per volume: voxels above ``BRAIN_THRESHOLD`` times the voxel volume, in cc."""
    counts = (np.asarray(volumes) > BRAIN_THRESHOLD).reshape(len(volumes), -1).sum(1)
    return [float(c) * voxel_cc(affine) for c in counts]


def changed_voxels(volumes: np.ndarray, reference: np.ndarray) -> list[int]:
    """Per volume: voxels whose intensity differs from ``reference`` by > VOXEL_THRESHOLD."""
    diff = np.abs(np.asarray(volumes) - np.asarray(reference)[None])
    return [int(n) for n in (diff > VOXEL_THRESHOLD).reshape(len(diff), -1).sum(1)]


def nearest_bins(cohort, ages, encoding: str, sex: str | None = None) -> list[int]:
    """The cohort's age bin nearest each requested age, among bins that hold subjects
    (of ``sex`` when given): by the bin's median age, or by index on 'bins'."""
    table = cohort.table if sex is None else cohort.table[cohort.table["sex"] == sex]
    if table.empty:
        return []
    if encoding == "bins":
        present = np.array(sorted(table["age_bin"].unique()))
        return [int(present[np.argmin(np.abs(present - int(a)))]) for a in ages]
    medians = table.groupby("age_bin")["age"].median()
    return [int(medians.index[np.argmin(np.abs(medians.to_numpy() - float(a)))]) for a in ages]


def true_frames(cohort, sex: str, bins: list[int], means: dict | None = None
                ) -> np.ndarray | None:
    """(T, D, H, W) mean brains of ``sex`` in each of ``bins`` (None without images).

    ``means``: the cohort's ``sex_and_age_means``, when already computed (or stored).
    """
    if cohort is None or cohort.images is None or not bins:
        return None
    cells = (means or {}).get("sex_by_age_bin", {})
    stored = [cells.get(f"{age_bin_label(cohort, code)}|{sex}") for code in bins]
    if all(cell is not None for cell in stored):
        return np.stack(stored).astype(np.float32)
    table = cohort.table
    averaged = {}
    for code in sorted(set(bins)):
        rows = np.flatnonzero((table["sex"] == sex).to_numpy()
                              & (table["age_bin"] == code).to_numpy())
        if len(rows) == 0:
            return None
        averaged[code] = np.mean([cohort.images[int(r)] for r in rows], axis=0, dtype=np.float64)
    return np.stack([averaged[b] for b in bins]).astype(np.float32)


def ageing_sweep(gan, sex: str, ages, seed: int = 0, cohort=None, affine=None,
                 means: dict | None = None) -> AgeingSweep:
    """One z (from ``seed``) at every age of ``ages``; the true frames from ``cohort``
    (from its ``sex_and_age_means`` when ``means`` holds them)."""
    require_conditional(gan)
    spec = gan.condition_spec
    sex = spec.check_sex(sex)
    z = gan.sample_latent(1, seed).repeat(len(ages), 1)
    generated = generate_conditioned(gan, [sex] * len(ages), ages, z=z)
    if spec.age_encoding == "bins":
        labels = [spec.age_bin_labels[int(a)] for a in ages]
    else:
        labels = [f"{a:g} y" for a in ages]
    affine = affine if affine is not None else (cohort.affine if cohort is not None
                                                else np.eye(4))
    true = None
    if cohort is not None:
        true = true_frames(cohort, sex, nearest_bins(cohort, ages, spec.age_encoding, sex),
                           means)
    correlation = None
    if true is not None and true.shape == generated.shape:
        mask = (true[0] > BRAIN_THRESHOLD) | (generated[0] > BRAIN_THRESHOLD)
        correlation = direction_correlation(generated[-1] - generated[0], true[-1] - true[0],
                                            mask=mask)
    return AgeingSweep(
        ages=list(ages), labels=labels, sex=sex, generated=generated, true=true,
        map_correlation=correlation,
        voxels_changed=changed_voxels(generated, generated[0]),
        brain_cc=brain_volume_cc(generated, affine),
        true_brain_cc=None if true is None else brain_volume_cc(true, affine))


def ageing_summary(sweep: AgeingSweep) -> str:
    """One sentence of what this sweep's numbers show."""
    text = (f"From {sweep.labels[0]} to {sweep.labels[-1]} ({sweep.sex}), "
            f"{sweep.voxels_changed[-1]} voxels change by more than {VOXEL_THRESHOLD}; "
            f"generated brain volume {sweep.brain_cc[0]:.0f} -> {sweep.brain_cc[-1]:.0f} cc")
    if sweep.true_brain_cc is not None:
        text += (f", the cohort's mean brains {sweep.true_brain_cc[0]:.0f} -> "
                 f"{sweep.true_brain_cc[-1]:.0f} cc")
    if sweep.map_correlation is not None:
        text += (f"; the generated ageing map correlates r = {sweep.map_correlation:+.2f} with "
                 "the cohort's")
    return text + "."
