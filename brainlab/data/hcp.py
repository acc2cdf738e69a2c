"""HCP tensors as used in the seed study: ``images.npy``, ``sex.npy``, ``age.npy``.

The images are float32 (N, 58, 70, 58) or (N, 1, 58, 70, 58), skull-stripped,
intensities 0 to about 1000 with a few small negatives from interpolation. They
are memory-mapped, checked once for NaN/Inf in chunks (the result is cached by
file size and modification time), and shown to models as ``stored / max``
clipped to [0, 1].

The seed study's label codes are not what one would guess (PHANTOM.md), so the
coding is a named option and always recorded in ``cohort.notes``:

- ``coding="seed"``: sex 1 = male, 0 = female; age codes in order of first
  appearance, 0 = 26-30, 1 = 22-25, 2 = 31-35, 3 = 36+.
- ``coding="ordinal"``: sex 1 = male; age codes already ordinal,
  0 = 22-25, 1 = 26-30, 2 = 31-35, 3 = 36+.
- ``male_code`` and ``age_map`` (code -> ordinal bin or bin label) override either.

An optional ``subjects.txt`` (one id per line) names the subjects; otherwise
they are ``s0000``, ``s0001``, ...
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from brainlab.data.cohort import HCP_AGE_BINS, Cohort, ImageArray, table_fingerprint
from brainlab.data.grid import mni_affine
from brainlab.atomic import atomic_write
from brainlab.data.progress import ProgressCallback, report
from brainlab.errors import BrainlabInputError
from brainlab.paths import cache_root

LABEL_CODINGS = {
    # coding name -> (male code, {age code: ordinal age_bin})
    "seed": (1, {0: 1, 1: 0, 2: 2, 3: 3}),
    "ordinal": (1, {0: 0, 1: 1, 2: 2, 3: 3}),
}
# Voxels read per chunk when scanning a stack for NaN/Inf (~64 MB of float32).
SCAN_CHUNK_VOXELS = 16_000_000


class ClippedImageArray(ImageArray):
    """An ``ImageArray`` whose scaled values are clipped to [0, 1].

    Raw HCP tensors hold small negative values from interpolation and a few
    voxels above the scaling maximum would otherwise leave [0, 1].
    """

    def __getitem__(self, index) -> np.ndarray:
        return np.clip(super().__getitem__(index), 0.0, 1.0)


def load_hcp_tensors(folder: str | Path, coding: str = "seed", male_code: int | None = None,
                     age_map: dict | None = None, progress: ProgressCallback = None) -> Cohort:
    """A Cohort from a folder with ``images.npy``, ``sex.npy`` and ``age.npy``.

    ``coding`` names the label coding (``"seed"`` or ``"ordinal"``, see the module
    docstring); ``male_code`` (the ``sex.npy`` value meaning male) and ``age_map``
    (``age.npy`` code -> ordinal bin 0..3 or a label such as ``"22-25"``) override
    it. Ages in years are unknown (NaN); only the bins are.
    """
    folder = Path(folder)
    if coding not in LABEL_CODINGS:
        raise BrainlabInputError(
            f"unknown label coding {coding!r}; expected one of {sorted(LABEL_CODINGS)}"
        )
    needed = ("images.npy", "sex.npy", "age.npy")
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise BrainlabInputError(
            f"HCP tensor folder {folder}: missing {missing}; expected {list(needed)}, "
            f"found {found[:12]}"
        )
    stored = _open_images(folder / "images.npy")
    n = stored.shape[0]
    sex_codes = _read_labels(folder / "sex.npy", n)
    age_codes = _read_labels(folder / "age.npy", n)

    default_male, default_ages = LABEL_CODINGS[coding]
    male = default_male if male_code is None else int(male_code)
    bins = default_ages if age_map is None else _parse_age_map(age_map)
    sex = _map_sex(sex_codes, male)
    age_bin = _map_ages(age_codes, bins)

    scan = _scan_images(folder / "images.npy", stored, progress)
    ids = _subject_ids(folder, n)
    table = pd.DataFrame({"subject_id": ids, "sex": sex, "age": np.nan, "age_bin": age_bin})

    coding_text = _describe_coding(coding, male, bins, male_code is not None or age_map is not None)
    notes = [coding_text,
             f"images scaled by 1/{scan['max']:.4g} (stack maximum) and clipped to [0, 1]"]
    if scan["min"] < 0:
        notes.append(f"raw minimum {scan['min']:.4g} < 0 (interpolation); clipped to 0")
    digest = hashlib.sha256()
    digest.update(table_fingerprint(table, stored.shape[1:]).encode())
    digest.update(json.dumps([scan["sum"], scan["max"], scan["min"]]).encode())
    return Cohort(
        name=folder.name or "hcp",
        table=table,
        affine=mni_affine(stored.shape[1:]),
        images=ClippedImageArray(stored, scale=1.0 / scan["max"]),
        fingerprint=digest.hexdigest()[:16],
        age_bin_labels=HCP_AGE_BINS,
        source=str(folder),
        notes=notes,
        metadata={
            "kind": "hcp-tensors",
            "coding": {"name": coding, "male_code": male,
                       "age_map": {int(k): int(v) for k, v in bins.items()},
                       "overridden": male_code is not None or age_map is not None},
            "raw_range": [scan["min"], scan["max"]],
            "cache_dir": str(_scan_cache_dir()),
        },
    )


def _open_images(path: Path) -> np.ndarray:
    try:
        stored = np.load(path, mmap_mode="r")
    except ValueError as error:
        raise BrainlabInputError(f"{path.name} could not be read as a .npy array: {error}") from None
    if stored.ndim == 5:
        if stored.shape[1] != 1:
            raise BrainlabInputError(
                f"{path.name} has shape {stored.shape}; expected (N, 58, 70, 58) or "
                f"(N, 1, 58, 70, 58) with one channel, found {stored.shape[1]} channels"
            )
        stored = stored[:, 0]
    if stored.ndim != 4:
        raise BrainlabInputError(
            f"{path.name} has shape {stored.shape} ({stored.ndim}D); expected "
            f"(N, 58, 70, 58) or (N, 1, 58, 70, 58)"
        )
    if stored.shape[0] == 0:
        raise BrainlabInputError(f"{path.name} holds 0 volumes; expected at least one")
    if not np.issubdtype(stored.dtype, np.number) or np.issubdtype(stored.dtype, np.complexfloating):
        raise BrainlabInputError(f"{path.name} has dtype {stored.dtype}; expected float32 intensities")
    return stored


def _read_labels(path: Path, n: int) -> np.ndarray:
    labels = np.load(path, allow_pickle=False)
    if labels.ndim != 1:
        labels = labels.squeeze()
    if labels.ndim != 1:
        raise BrainlabInputError(f"{path.name} has shape {labels.shape}; expected ({n},)")
    if len(labels) != n:
        raise BrainlabInputError(
            f"{path.name} has {len(labels)} labels but images.npy has {n} volumes; "
            f"expected one label per volume"
        )
    if not np.issubdtype(labels.dtype, np.number) or not np.all(np.isfinite(labels)) \
            or not np.all(labels == np.round(labels)):
        raise BrainlabInputError(f"{path.name} must hold integer codes; found dtype {labels.dtype}")
    return labels.astype(np.int64)


def _parse_age_map(age_map: dict) -> dict[int, int]:
    """``{code: bin}`` where bin is an ordinal int or an HCP bin label."""
    parsed = {}
    for code, value in age_map.items():
        if isinstance(value, str) and value.strip() in HCP_AGE_BINS:
            value = HCP_AGE_BINS.index(value.strip())
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise BrainlabInputError(
                f"age_map value {value!r} for code {code!r}; expected an ordinal bin "
                f"0..{len(HCP_AGE_BINS) - 1} or one of {list(HCP_AGE_BINS)}"
            ) from None
        if not 0 <= value < len(HCP_AGE_BINS):
            raise BrainlabInputError(
                f"age_map bin {value} for code {code!r} out of range; expected "
                f"0..{len(HCP_AGE_BINS) - 1} ({', '.join(HCP_AGE_BINS)})"
            )
        parsed[int(code)] = value
    return parsed


def _map_sex(codes: np.ndarray, male: int) -> np.ndarray:
    found = sorted(set(codes.tolist()))
    if male not in found and len(found) == 2:
        raise BrainlabInputError(f"sex.npy male code {male} not present; found codes {found}")
    if len(found) > 2:
        raise BrainlabInputError(f"sex.npy holds codes {found}; expected two codes (e.g. 0/1)")
    return np.where(codes == male, "M", "F").astype(object)


def _map_ages(codes: np.ndarray, bins: dict[int, int]) -> np.ndarray:
    unknown = sorted(set(codes.tolist()) - set(bins))
    if unknown:
        raise BrainlabInputError(
            f"age.npy holds codes {unknown} that the age map does not cover; "
            f"expected codes {sorted(bins)}"
        )
    return np.array([bins[c] for c in codes.tolist()], dtype=np.int64)


def _describe_coding(coding: str, male: int, bins: dict[int, int], overridden: bool) -> str:
    ages = ", ".join(f"{code}={HCP_AGE_BINS[b]}" for code, b in sorted(bins.items()))
    source = f"coding={coding!r} with explicit overrides" if overridden else f"coding={coding!r}"
    return f"labels read with {source}: sex {male} = male; age codes {ages}"


def _subject_ids(folder: Path, n: int) -> list[str]:
    listing = folder / "subjects.txt"
    if not listing.is_file():
        return [f"s{i:04d}" for i in range(n)]
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if len(ids) != n:
        raise BrainlabInputError(
            f"subjects.txt lists {len(ids)} ids but images.npy has {n} volumes; "
            f"expected one id per volume"
        )
    return ids


def _scan_cache_dir() -> Path:
    return cache_root() / "hcp-scan"


def _scan_images(path: Path, stored: np.ndarray, progress: ProgressCallback) -> dict:
    """Min, max and sum of the stack, read in chunks; NaN/Inf raise.

    The result is cached by path, size and modification time so a warm load
    does not re-read a gigabyte of images.
    """
    stat = path.stat()
    key = hashlib.sha256(
        f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stored.shape}".encode()
    ).hexdigest()[:24]
    cached = _scan_cache_dir() / f"{key}.json"
    if cached.is_file():
        try:
            return json.loads(cached.read_text())
        except (OSError, ValueError):
            pass  # rescan below and overwrite the broken entry
    n = stored.shape[0]
    per_volume = int(np.prod(stored.shape[1:]))
    step = max(1, SCAN_CHUNK_VOXELS // per_volume)
    low, high, total = np.inf, -np.inf, 0.0
    for start in range(0, n, step):
        block = np.asarray(stored[start:start + step], dtype=np.float32)
        finite = np.isfinite(block)
        if not finite.all():
            volume = start + int(np.argmin(finite.reshape(len(block), -1).all(axis=1)))
            raise BrainlabInputError(
                f"{path.name}: volume {volume} holds NaN or Inf voxels "
                f"({int((~finite).sum())} in volumes {start}..{start + len(block) - 1}); "
                f"expected finite intensities"
            )
        low = min(low, float(block.min()))
        high = max(high, float(block.max()))
        total += float(block.sum(dtype=np.float64))
        report(progress, (start + len(block)) / n, f"checked {start + len(block)}/{n} volumes")
    if high <= 0:
        raise BrainlabInputError(f"{path.name}: every voxel is <= 0 (max {high}); expected T1 intensities")
    result = {"min": low, "max": high, "sum": total}
    atomic_write(cached, lambda temporary: temporary.write_text(json.dumps(result)))
    return result
