"""Write a cohort to disk as a BIDS-like folder, and summarise a cohort.

``export_cohort`` writes:

- ``sub-<label>_T1w.nii.gz`` per subject: float32 in the [0, 1] view models see,
  with the cohort's affine in both qform and sform (code 4, MNI), voxel units mm,
  and the header description ``brainlab:unit`` so that ``load_nifti_folder``
  keeps the intensities as they are; ``<label>`` is the subject id with a leading
  ``sub-`` removed and anything but letters and digits dropped (BIDS labels);
- ``participants.tsv`` (participant_id, age, sex, age_bin, age_bin_label, subject_id);
- ``morphometry.csv`` (subject_id + morphometry columns);
- ``truth.csv`` when the cohort has ground truth;
- ``cohort.json``: name, source, fingerprint, grid, affine, notes.

Every file is written under a temporary name in the output folder and renamed
into place, so an interrupted export never leaves a half-written file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from brainlab.atomic import atomic_write
from brainlab.data.cohort import Cohort
from brainlab.data.nifti import BRAINLAB_UNIT_DESCRIPTION
from brainlab.data.progress import ProgressCallback, report
from brainlab.errors import BrainlabInputError

MNI_XFORM_CODE = 4


def bids_label(subject_id: str) -> str:
    """A BIDS subject label: ``sub-`` prefix removed, only letters and digits kept."""
    text = str(subject_id)
    if text.startswith("sub-"):
        text = text[4:]
    return re.sub(r"[^A-Za-z0-9]", "", text)


def export_cohort(cohort: Cohort, out_dir: str | Path, progress: ProgressCallback = None) -> Path:
    """Write ``cohort`` to ``out_dir`` (created if needed); returns the folder."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BrainlabInputError(f"export target {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    table = cohort.table
    labels = [bids_label(s) for s in table["subject_id"]]
    empty = [s for s, label in zip(table["subject_id"], labels) if not label]
    if empty:
        raise BrainlabInputError(f"subject ids {empty[:5]} have no letters or digits; cannot name their files")
    clashes = pd.Series(labels)[pd.Series(labels).duplicated()].tolist()
    if clashes:
        raise BrainlabInputError(
            f"subject ids map to duplicate BIDS labels {clashes[:5]}; expected ids that "
            f"differ in their letters and digits"
        )

    if cohort.images is not None:
        affine = np.asarray(cohort.affine, dtype=float)
        for i, label in enumerate(labels):
            image = nib.Nifti1Image(np.asarray(cohort.images[i], dtype=np.float32), affine)
            image.set_qform(affine, code=MNI_XFORM_CODE)
            image.set_sform(affine, code=MNI_XFORM_CODE)
            image.header.set_xyzt_units("mm")
            image.header["descrip"] = BRAINLAB_UNIT_DESCRIPTION.encode()
            atomic_write(out_dir / f"sub-{label}_T1w.nii.gz",
                          lambda temporary, image=image: nib.save(image, str(temporary)))
            report(progress, (i + 1) / len(labels), f"wrote sub-{label}")

    bin_labels = list(cohort.age_bin_labels)
    participants = pd.DataFrame({
        "participant_id": [f"sub-{label}" for label in labels],
        "age": table["age"].to_numpy(),
        "sex": table["sex"].to_numpy(),
        "age_bin": table["age_bin"].to_numpy(),
        "age_bin_label": [bin_labels[b] if 0 <= b < len(bin_labels) else "" for b in table["age_bin"]],
        "subject_id": table["subject_id"].to_numpy(),
    })
    atomic_write(out_dir / "participants.tsv",
                  lambda t: participants.to_csv(t, sep="\t", index=False, na_rep="n/a"))
    morphometry = table[["subject_id", *cohort.morphometry_columns]]
    atomic_write(out_dir / "morphometry.csv", lambda t: morphometry.to_csv(t, index=False))
    if cohort.truth is not None:
        atomic_write(out_dir / "truth.csv", lambda t: cohort.truth.to_csv(t, index=False))
    summary = cohort_summary(cohort)
    atomic_write(out_dir / "cohort.json", lambda t: Path(t).write_text(json.dumps(summary, indent=1)))
    report(progress, 1.0, f"exported {len(table)} subjects")
    return out_dir


def cohort_summary(cohort: Cohort) -> dict:
    """A JSON-ready summary: counts by sex and age bin, grid, affine, notes, cache."""
    table = cohort.table
    labels = list(cohort.age_bin_labels)
    bins = table["age_bin"].value_counts().sort_index()
    age = table["age"].dropna()
    cache = next((cohort.metadata[k] for k in ("cache_dir", "cache_path", "cache", "folder")
                  if k in cohort.metadata), None)
    return {
        "name": cohort.name,
        "source": cohort.source,
        "n_subjects": int(len(table)),
        "sex_counts": {s: int(n) for s, n in table["sex"].value_counts().sort_index().items()},
        "age_bin_counts": {(labels[b] if 0 <= b < len(labels) else str(b)): int(n)
                           for b, n in bins.items()},
        "age_range": [float(age.min()), float(age.max())] if len(age) else None,
        "grid_shape": list(cohort.grid_shape) if cohort.grid_shape else None,
        "affine": np.asarray(cohort.affine, dtype=float).round(6).tolist(),
        "fingerprint": cohort.fingerprint,
        "n_morphometry_columns": len(cohort.morphometry_columns),
        "has_truth": cohort.truth is not None,
        "notes": list(cohort.notes),
        "cache_path": None if cache is None else str(cache),
    }
