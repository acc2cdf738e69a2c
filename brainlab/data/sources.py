"""``load(source)``: one entry point from a preset name or a path to a Cohort."""

from __future__ import annotations

from pathlib import Path

from brainlab.data.cohort import Cohort
from brainlab.data.progress import ProgressCallback
from brainlab.errors import BrainlabInputError

PRESET_NAMES = ("hcp-ya", "lifespan", "tiny")
DEFAULT_PRESET = "hcp-ya"


def load(source: str | Path = DEFAULT_PRESET, progress: ProgressCallback = None,
         **options) -> Cohort:
    """Load a cohort from a phantom preset name or a path.

    - a preset name (``hcp-ya``, ``lifespan``, ``tiny``): the synthetic phantom,
      built once and cached;
    - a folder with ``images.npy``/``sex.npy``/``age.npy``: HCP tensors
      (``options``: ``coding``, ``male_code``, ...);
    - a folder of NIfTI volumes with ``participants.tsv``: a BIDS-like cohort;
    - a ``.csv`` file: an HCP unrestricted table (``Subject``, ``Gender``, ``Age``,
      ``FS_*``) or a generic table (``options``: ``id_column``, ``sex_column``,
      ``age_column``).
    """
    text = str(source)
    if text in PRESET_NAMES:
        from brainlab.data.phantom import load_phantom

        return load_phantom(text, progress=progress, **options)
    path = Path(text).expanduser()
    if not path.exists():
        raise BrainlabInputError(
            f"unknown cohort source {text!r}: not a preset ({', '.join(PRESET_NAMES)}) "
            f"and no such file or folder"
        )
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv"):
        from brainlab.data.tables import load_table_cohort

        return load_table_cohort(path, **options)
    if path.is_dir():
        if (path / "images.npy").exists():
            from brainlab.data.hcp import load_hcp_tensors

            return load_hcp_tensors(path, progress=progress, **options)
        from brainlab.data.nifti import load_nifti_folder

        return load_nifti_folder(path, progress=progress, **options)
    raise BrainlabInputError(
        f"cohort source {text!r}: expected a preset name, a .csv file, a folder with "
        f"images.npy, or a folder of NIfTI files with participants.tsv"
    )
