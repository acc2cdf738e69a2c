"""A folder of 3D NIfTI volumes plus a BIDS ``participants.tsv``.

Volumes (``.nii`` / ``.nii.gz``, searched recursively, hidden files ignored) are
matched to ``participants.tsv`` rows by subject: the label after ``sub-`` in the
file name (``sub-0042_T1w.nii.gz`` -> ``0042``), else the file stem. The table's
``participant_id`` may carry the ``sub-`` prefix or not; ``age`` is years or a
bin string, ``sex`` is M/F, male/female or 1/0 (1 = male). Cohort subject ids
are the bare labels (no ``sub-``).

Each volume is resampled (trilinear, nilearn) onto the cohort grid with the MNI
affine and intensity-normalised per subject:

- ``intensity="auto"`` (default): volumes written by ``brainlab`` export (header
  description ``brainlab:unit``) are already in [0, 1] and are only clipped;
  others are divided by the 99.5th percentile of their brain (> 0) voxels and
  clipped to [0, 1];
- ``"percentile"``: always the percentile rule; ``"none"``: clip only.

Files that cannot be used (corrupt gzip, not NIfTI, 4D, NaN/Inf, empty, no
participants row) are skipped and listed in ``cohort.notes`` and
``cohort.metadata["skipped"]``; only when none remain is it an error. The
resampled stack is cached under ``cache_root()/nifti`` keyed by the files'
names, sizes and modification times, the grid and the intensity rule.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from brainlab.data.cohort import Cohort, ImageArray, table_fingerprint
from brainlab.data.grid import HCP_GRID_SHAPE, mni_affine
from brainlab.data.progress import ProgressCallback, report
from brainlab.data.tables import parse_age, parse_sex, read_table
from brainlab.errors import BrainlabInputError
from brainlab.paths import cache_root

# Header description that marks volumes already on brainlab's [0, 1] scale.
BRAINLAB_UNIT_DESCRIPTION = "brainlab:unit"
INTENSITY_MODES = ("auto", "percentile", "none")
NORMALISING_PERCENTILE = 99.5
CACHE_VERSION = 1
_SUBJECT_PATTERN = re.compile(r"sub-([A-Za-z0-9]+)")


def subject_label(text: str) -> str:
    """The BIDS label of a subject id or file name: ``sub-0042_T1w`` -> ``0042``."""
    match = _SUBJECT_PATTERN.search(text)
    return match.group(1) if match else text


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_volumes(folder: Path) -> list[Path]:
    """All ``.nii``/``.nii.gz`` files under ``folder`` (hidden ones ignored), sorted."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.name.lower().endswith((".nii", ".nii.gz")):
            found.append(path)
    return found


def read_volume(path: str | Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Read one 3D NIfTI -> (float32 data, affine, header description).

    Raises ``BrainlabInputError`` for a corrupt gzip, a file that is not NIfTI,
    a 4D volume (a trailing axis of length 1 is dropped) and NaN/Inf voxels.
    """
    path = Path(path)
    try:
        image = nib.load(str(path))
        data = np.asarray(image.dataobj, dtype=np.float32)
    except (gzip.BadGzipFile, zlib.error, EOFError) as error:
        raise BrainlabInputError(f"volume {path.name}: corrupt gzip ({error}); expected a readable .nii.gz") from None
    except nib.filebasedimages.ImageFileError:
        if path.name.lower().endswith(".gz") and not _gzip_intact(path):
            raise BrainlabInputError(
                f"volume {path.name}: corrupt gzip (truncated or damaged); expected a readable .nii.gz"
            ) from None
        raise BrainlabInputError(
            f"volume {path.name} is not a NIfTI image (no NIfTI header found)") from None
    except (OSError, ValueError) as error:
        raise BrainlabInputError(f"volume {path.name} could not be read: {error}") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise BrainlabInputError(
            f"volume {path.name} has shape {data.shape}; expected a 3D volume"
        )
    if not np.isfinite(data).all():
        raise BrainlabInputError(
            f"volume {path.name} holds {int((~np.isfinite(data)).sum())} NaN/Inf voxels; "
            f"expected finite intensities"
        )
    description = image.header.get("descrip", b"")
    description = description.item().decode("ascii", "ignore") if hasattr(description, "item") else ""
    return data, image.affine, description


def _gzip_intact(path: Path) -> bool:
    """True when the whole gzip stream decompresses (only asked after a failed read)."""
    try:
        with gzip.open(path) as stream:
            while stream.read(1 << 20):
                pass
    except (gzip.BadGzipFile, zlib.error, EOFError, OSError):
        return False
    return True


def normalise_intensity(volume: np.ndarray, percentile: float = NORMALISING_PERCENTILE) -> np.ndarray:
    """Divide by the ``percentile`` of the brain (> 0) voxels and clip to [0, 1]."""
    brain = volume[volume > 0]
    if brain.size == 0:
        raise BrainlabInputError("volume has no voxels above 0; expected a skull-stripped brain")
    reference = float(np.percentile(brain, percentile))
    return np.clip(volume / reference, 0.0, 1.0).astype(np.float32)


def resample_to_grid(data: np.ndarray, affine: np.ndarray, grid_shape: tuple[int, int, int]) -> np.ndarray:
    """Trilinear resampling of a volume onto ``grid_shape`` with the MNI affine.

    Volumes much finer than the grid are smoothed first to avoid aliasing.
    """
    from nilearn.image import resample_img

    target = mni_affine(grid_shape)
    if data.shape == tuple(grid_shape) and np.allclose(affine, target, atol=1e-4):
        return data.astype(np.float32)
    # Anti-alias before downsampling (e.g. 1 mm -> 3.1 mm): a Gaussian whose FWHM
    # makes up the difference in resolution, so the result resembles partial volume.
    source_mm = np.linalg.norm(affine[:3, :3], axis=0)
    target_mm = np.abs(np.diag(target)[:3])
    ratio = target_mm.max() / max(source_mm.min(), 1e-6)
    if ratio > 1.5:
        fwhm_mm = np.sqrt(np.maximum(target_mm.max() ** 2 - source_mm ** 2, 0.0))
        sigma_voxels = fwhm_mm / 2.3548 / source_mm
        data = ndimage.gaussian_filter(data, sigma=sigma_voxels, mode="constant")
    resampled = resample_img(nib.Nifti1Image(data, affine), target_affine=target,
                             target_shape=tuple(grid_shape), interpolation="linear",
                             force_resample=True, copy_header=True)
    return np.asarray(resampled.dataobj, dtype=np.float32)


def load_nifti_folder(folder: str | Path, grid_shape: tuple[int, int, int] = HCP_GRID_SHAPE,
                      participants: str = "participants.tsv", progress: ProgressCallback = None,
                      intensity: str = "auto", male_values=None, rebuild: bool = False) -> Cohort:
    """A Cohort from NIfTI volumes in ``folder`` and its ``participants.tsv``.

    See the module docstring for matching, resampling, normalisation, skipping
    and caching. ``male_values`` names the sex values meaning male when the
    table is coded otherwise; ``rebuild`` ignores the cache.
    """
    folder = Path(folder)
    grid_shape = tuple(int(s) for s in grid_shape)
    if len(grid_shape) != 3 or min(grid_shape) < 2:
        raise BrainlabInputError(f"grid_shape must be 3 sizes >= 2; found {grid_shape}")
    if intensity not in INTENSITY_MODES:
        raise BrainlabInputError(f"unknown intensity rule {intensity!r}; expected one of {list(INTENSITY_MODES)}")
    if not folder.is_dir():
        raise BrainlabInputError(f"NIfTI folder {folder} does not exist or is not a folder")
    table_path = folder / participants
    if not table_path.is_file():
        raise BrainlabInputError(
            f"NIfTI folder {folder}: no {participants}; expected a BIDS participants table "
            f"(participant_id, age, sex); found {sorted(p.name for p in folder.iterdir())[:12]}"
        )
    volumes = find_volumes(folder)
    if not volumes:
        raise BrainlabInputError(f"NIfTI folder {folder}: no .nii or .nii.gz files found; expected 3D volumes")
    subjects = _read_participants(table_path, male_values)

    key = _cache_key(folder, volumes, table_path, grid_shape, intensity, male_values)
    cache_dir = cache_root() / "nifti" / key
    cached = None if rebuild else _read_cache(cache_dir)
    if cached is None:
        _build_cache(cache_dir, folder, volumes, subjects, grid_shape, intensity, progress)
        cached = _read_cache(cache_dir)
        if cached is None:
            raise BrainlabInputError(f"NIfTI cache {cache_dir} could not be read back after building")
    table, stack, meta = cached
    report(progress, 1.0, f"{len(table)} volumes ready")
    return Cohort(
        name=folder.name or "nifti",
        table=table,
        affine=mni_affine(grid_shape),
        images=ImageArray(stack, scale=1.0),
        # The cache key covers the files' names, sizes and times, the grid and the rule.
        fingerprint=hashlib.sha256(f"{key}|{table_fingerprint(table, grid_shape)}".encode()).hexdigest()[:16],
        age_bin_labels=tuple(meta["age_bin_labels"]),
        source=str(folder),
        notes=list(meta["notes"]),
        metadata={"kind": "nifti", "skipped": meta["skipped"], "cache_dir": str(cache_dir),
                  "intensity": intensity, "grid_shape": list(grid_shape)},
    )


def _read_participants(path: Path, male_values) -> pd.DataFrame:
    """The participants table indexed by BIDS label.

    ``age`` gives years or bins; when an integer ``age_bin`` column is present
    (brainlab's own exports), those ordinal bins and their ``age_bin_label``
    names are used instead of binning the ages again. An extra ``subject_id`` column (also
    written by export) gives the cohort's subject ids; otherwise the bare labels.
    """
    frame = read_table(path, string_columns=["participant_id", "subject_id"])
    needed = ["participant_id", "age", "sex"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise BrainlabInputError(
            f"{path.name}: missing columns {missing}; expected {needed}, found {list(frame.columns)}"
        )
    where = path.name
    labels = frame["participant_id"].astype("string").str.strip().map(
        lambda v: v if v is pd.NA else subject_label(v))
    given_bins = pd.to_numeric(frame.get("age_bin", pd.Series(dtype=float)), errors="coerce")
    if "age_bin" in frame.columns and given_bins.notna().all() and (given_bins % 1 == 0).all():
        # brainlab's own export: keep its ordinal bins and their names.
        age = pd.to_numeric(frame["age"], errors="coerce").astype(float)
        age_bin = given_bins.astype(float)
        names = {}
        if "age_bin_label" in frame.columns:
            names = dict(zip(given_bins.astype(int), frame["age_bin_label"].astype(str)))
        bin_labels = tuple(str(names.get(b, b)) for b in range(int(given_bins.max()) + 1))
    else:
        age, age_bin, bin_labels = parse_age(frame["age"], where=f"{where} column 'age'")
    ids = frame["subject_id"].astype("string") if "subject_id" in frame.columns else labels
    table = pd.DataFrame({
        "label": labels.astype(object),
        "subject_id": ids.fillna(labels).astype(object),
        "sex": parse_sex(frame["sex"], male_values, where=f"{where} column 'sex'"),
        "age": age,
        "age_bin": age_bin,
    })
    duplicated = table["label"].dropna().duplicated()
    if duplicated.any():
        raise BrainlabInputError(
            f"{where}: duplicate participant ids {table['label'].dropna()[duplicated].tolist()[:5]}")
    table.attrs["age_bin_labels"] = bin_labels
    return table.set_index("label")


def _cache_key(folder, volumes, table_path, grid_shape, intensity, male_values) -> str:
    digest = hashlib.sha256()
    for path in [table_path, *volumes]:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    digest.update(json.dumps([list(grid_shape), intensity, CACHE_VERSION,
                              sorted(map(str, male_values)) if male_values else None]).encode())
    return digest.hexdigest()[:24]


def _read_cache(cache_dir: Path):
    """(table, memmapped stack, meta) or None when absent or inconsistent."""
    meta_path = cache_dir / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        table = pd.read_csv(cache_dir / "table.csv", dtype={"subject_id": str, "sex": str})
        stack = np.load(cache_dir / "images.npy", mmap_mode="r")
    except (OSError, ValueError):
        shutil.rmtree(cache_dir, ignore_errors=True)
        return None
    if stack.ndim != 4 or stack.shape[0] != len(table) or list(stack.shape) != meta.get("shape"):
        shutil.rmtree(cache_dir, ignore_errors=True)
        return None
    return table, stack, meta


def _build_cache(cache_dir: Path, folder: Path, volumes: list[Path], subjects: pd.DataFrame,
                 grid_shape, intensity: str, progress: ProgressCallback) -> None:
    """Resample every usable volume into a temporary folder, then rename it into place."""
    skipped: list[dict] = []
    usable: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for path in volumes:
        label = subject_label(_stem(path))
        reason = None
        if label not in subjects.index or pd.isna(subjects.loc[label, "sex"]) \
                or pd.isna(subjects.loc[label, "age_bin"]):
            reason = f"no complete row for subject {label!r} in participants.tsv"
        elif label in seen:
            reason = f"second volume for subject {label!r}; the first one is used"
        if reason:
            skipped.append({"file": str(path.relative_to(folder)), "reason": reason})
        else:
            usable.append((path, label))
            seen.add(label)

    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    # A unique folder per build: two processes building one cache never share it.
    building = Path(tempfile.mkdtemp(dir=cache_dir.parent, prefix=f".{cache_dir.name}.",
                                     suffix=".building"))
    building.chmod(0o755)  # mkdtemp's folder is private; the cache is not
    try:
        stack = np.lib.format.open_memmap(building / "images.npy", mode="w+", dtype=np.float16,
                                          shape=(max(1, len(usable)), *grid_shape))
        kept: list[str] = []
        for i, (path, label) in enumerate(usable):
            try:
                data, affine, description = read_volume(path)
                resampled = resample_to_grid(data, affine, grid_shape)
                unit = intensity == "none" or (
                    intensity == "auto" and description.startswith(BRAINLAB_UNIT_DESCRIPTION))
                volume = np.clip(resampled, 0.0, 1.0) if unit else normalise_intensity(resampled)
            except BrainlabInputError as error:
                skipped.append({"file": str(path.relative_to(folder)), "reason": str(error)})
                continue
            stack[len(kept)] = volume
            kept.append(label)
            report(progress, (i + 1) / max(1, len(usable)), f"resampled {path.name}")
        stack.flush()
        del stack
        if not kept:
            reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:5])
            raise BrainlabInputError(
                f"NIfTI folder {folder}: none of {len(volumes)} volumes could be used "
                f"(the cohort would be empty); {reasons}"
            )
        _trim_stack(building / "images.npy", len(kept), grid_shape)
        table = subjects.loc[kept].reset_index(drop=True)
        table["age_bin"] = table["age_bin"].astype(int)
        table.to_csv(building / "table.csv", index=False)
        notes = [f"{len(kept)} volumes resampled to grid {tuple(grid_shape)} (MNI affine); "
                 f"intensity rule {intensity!r}"]
        if skipped:
            notes.append(f"skipped {len(skipped)} files: " + "; ".join(
                f"{s['file']} ({s['reason']})" for s in skipped[:10]))
        unmatched = sorted(set(subjects.index.dropna()) - set(kept))
        if unmatched:
            notes.append(f"{len(unmatched)} participants.tsv rows have no usable volume: {unmatched[:10]}")
        meta = {"shape": [len(kept), *grid_shape], "skipped": skipped, "notes": notes,
                "age_bin_labels": list(subjects.attrs["age_bin_labels"])}
        (building / "meta.json").write_text(json.dumps(meta, indent=1))
        shutil.rmtree(cache_dir, ignore_errors=True)
        os.replace(building, cache_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _trim_stack(path: Path, count: int, grid_shape) -> None:
    """Rewrite ``images.npy`` to its first ``count`` volumes when some were skipped."""
    full = np.load(path, mmap_mode="r")
    if full.shape[0] == count:
        return
    trimmed_path = path.with_name(f".images.{uuid.uuid4().hex[:8]}.trim.npy")
    trimmed = np.lib.format.open_memmap(trimmed_path, mode="w+", dtype=full.dtype,
                                        shape=(count, *grid_shape))
    trimmed[:] = full[:count]
    trimmed.flush()
    del trimmed, full
    os.replace(trimmed_path, path)
