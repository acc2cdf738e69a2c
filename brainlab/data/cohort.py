"""The Cohort: images, a subject table, an affine and a fingerprint.

Every source (phantom preset, HCP tensors, NIfTI/BIDS folder, CSV table) is
turned into a ``Cohort`` so that models, analysis and pages see one shape of data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from brainlab.errors import BrainlabInputError

# Columns every cohort table has, in this order; morphometry columns follow.
ID_COLUMNS = ("subject_id", "sex", "age", "age_bin")
# Optional label columns that are never features: "family" groups relatives (HCP Family_ID).
LABEL_COLUMNS = ID_COLUMNS + ("family",)

# Ordinal age bins of HCP Young Adult (PHANTOM.md): 0 = 22-25 ... 3 = 36+.
HCP_AGE_BINS = ("22-25", "26-30", "31-35", "36+")


class ImageArray:
    """Lazily read stack of 3D volumes, float32 in [0, 1] on access.

    Wraps a (N, D, H, W) array (a ``np.memmap`` of uint16/float16/float32, or any
    array) plus the ``scale`` that maps stored values to [0, 1]. Indexing with an
    int gives (D, H, W); with a slice, list or array of ints gives (n, D, H, W).
    """

    def __init__(self, stored: np.ndarray, scale: float = 1.0):
        if stored.ndim != 4:
            raise BrainlabInputError(
                f"image stack must be 4D (N, D, H, W); found shape {stored.shape}"
            )
        self._stored = stored
        self._scale = float(scale)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self._stored.shape)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return tuple(self._stored.shape[1:])

    def __len__(self) -> int:
        return self._stored.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (list, tuple)):
            index = np.asarray(index, dtype=np.int64)
        if isinstance(index, np.ndarray) and index.dtype != bool:
            # Fancy-index memmaps in sorted order (sequential reads), then restore order.
            order = np.argsort(index, kind="stable")
            block = np.asarray(self._stored[index[order]])
            out = np.empty_like(block)
            out[order] = block
            block = out
        else:
            block = np.asarray(self._stored[index])
        return block.astype(np.float32) * np.float32(self._scale)

    def __getstate__(self) -> dict:
        """Pickle a memmap by its file, not its contents (DataLoader workers started by
        spawn reopen the file instead of receiving a copy of the whole cohort)."""
        stored = self._stored
        if isinstance(stored, np.memmap) and stored.filename is not None:
            return {"scale": self._scale, "file": (
                stored.filename, stored.dtype.str, stored.shape, stored.offset,
                "F" if stored.flags.f_contiguous and not stored.flags.c_contiguous else "C")}
        return {"scale": self._scale, "stored": stored}

    def __setstate__(self, state: dict) -> None:
        self._scale = state["scale"]
        if "file" in state:
            filename, dtype, shape, offset, order = state["file"]
            self._stored = np.memmap(filename, dtype=np.dtype(dtype), mode="r", shape=shape,
                                     offset=offset, order=order)
        else:
            self._stored = state["stored"]

    def __array__(self, dtype=None, copy=None):
        full = self[slice(None)]
        return full if dtype is None else full.astype(dtype)


@dataclass(frozen=True)
class Split:
    """Fixed train/val/test subject indices (positions into the cohort table)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass
class Cohort:
    """A cohort of subjects with optional 3D images.

    ``table`` has ``subject_id`` (str), ``sex`` ('F'/'M'), ``age`` (years or NaN),
    ``age_bin`` (int, ordinal) then morphometry columns. ``images`` is None for
    table-only cohorts. ``truth`` holds the phantom's sampled ground truth.
    """

    name: str
    table: pd.DataFrame
    affine: np.ndarray
    images: ImageArray | None = None
    truth: pd.DataFrame | None = None
    fingerprint: str = ""
    age_bin_labels: tuple[str, ...] = HCP_AGE_BINS
    source: str = ""
    notes: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        validate_table(self.table, where=self.name)
        if self.images is not None and len(self.images) != len(self.table):
            raise BrainlabInputError(
                f"cohort {self.name!r}: {len(self.images)} images but "
                f"{len(self.table)} table rows; expected one row per image"
            )
        if not self.fingerprint:
            self.fingerprint = table_fingerprint(self.table, self.grid_shape)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def grid_shape(self) -> tuple[int, int, int] | None:
        return None if self.images is None else self.images.grid_shape

    @property
    def morphometry_columns(self) -> list[str]:
        return [c for c in self.table.columns if c not in LABEL_COLUMNS]

    @property
    def subject_ids(self) -> list[str]:
        return self.table["subject_id"].tolist()

    def index_of(self, subject_id: str) -> int:
        """Row position of ``subject_id``; raises a clear error when unknown."""
        matches = np.flatnonzero(self.table["subject_id"].to_numpy() == str(subject_id))
        if len(matches) == 0:
            examples = ", ".join(self.subject_ids[:3])
            raise BrainlabInputError(
                f"unknown subject {subject_id!r} in cohort {self.name!r}; "
                f"ids look like: {examples}"
            )
        return int(matches[0])

    def split(self, seed: int = 0) -> Split:
        """Fixed 70/15/15 train/val/test split stratified by sex x age bin."""
        return stratified_split(self.table, seed=seed)

    def male_mask(self) -> np.ndarray:
        return (self.table["sex"] == "M").to_numpy()


def validate_table(table: pd.DataFrame, where: str = "cohort") -> None:
    """Check the columns and values every cohort table must have."""
    if len(table) == 0:
        raise BrainlabInputError(f"{where}: the cohort is empty (0 subjects); expected at least one")
    missing = [c for c in ID_COLUMNS if c not in table.columns]
    if missing:
        raise BrainlabInputError(
            f"{where}: missing columns {missing}; found {list(table.columns)[:12]}"
        )
    bad_sex = sorted(set(table["sex"].astype(str)) - {"F", "M"})
    if bad_sex:
        raise BrainlabInputError(f"{where}: sex must be 'F' or 'M'; found {bad_sex[:5]}")
    if table["subject_id"].duplicated().any():
        dupes = table.loc[table["subject_id"].duplicated(), "subject_id"].tolist()[:5]
        raise BrainlabInputError(f"{where}: duplicate subject ids {dupes}")


def table_fingerprint(table: pd.DataFrame, grid_shape: Sequence[int] | None) -> str:
    """Content hash of a table (and grid shape) for cohorts without a config."""
    digest = hashlib.sha256()
    digest.update(str(tuple(grid_shape) if grid_shape else None).encode())
    digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def stratified_split(table: pd.DataFrame, seed: int = 0,
                     fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)) -> Split:
    """Split rows 70/15/15, stratified by sex x age bin where every stratum allows it.

    Strata too small to be split fall back to sex alone, then to no stratification,
    so tiny cohorts still split deterministically.
    """
    n = len(table)
    positions = np.arange(n)
    if n < 3:
        raise BrainlabInputError(f"cannot split {n} subjects into train/val/test; need at least 3")
    train_frac, val_frac, test_frac = fractions
    holdout = val_frac + test_frac
    labels_options = [
        (table["sex"].astype(str) + "_" + table["age_bin"].astype(str)).to_numpy(),
        table["sex"].astype(str).to_numpy(),
        None,
    ]
    for labels in labels_options:
        try:
            train, rest = train_test_split(
                positions, test_size=holdout, random_state=seed, stratify=labels)
            rest_labels = None if labels is None else labels[rest]
            val, test = train_test_split(
                rest, test_size=test_frac / holdout, random_state=seed, stratify=rest_labels)
            break
        except ValueError:
            continue
    return Split(np.sort(train), np.sort(val), np.sort(test))
