"""Table-only cohorts from CSV/TSV files, and the label parsing shared by all loaders.

Two kinds of table are understood:

- the HCP Young Adult *unrestricted* behavioural table (``Subject``, ``Gender``,
  ``Age`` as bin strings like ``22-25`` or ``36+``, and FreeSurfer ``FS_*``
  columns), detected automatically: the ``FS_*`` columns become the morphometry
  features and rows with any missing FS value are dropped (the count goes into
  ``cohort.notes``);
- a generic table whose id, sex and age columns the user names; every other
  numeric column is a feature.

Sex values understood: ``M``/``F``, ``male``/``female``, ``man``/``woman`` (any
case), and the numeric codes ``1`` = male, ``0`` = female unless ``male_values``
says which values mean male. Age may be years (numbers) or bin strings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from brainlab.data.cohort import HCP_AGE_BINS, Cohort
from brainlab.errors import BrainlabInputError

HCP_TABLE_COLUMNS = ("Subject", "Gender", "Age")
# HCP's restricted table names families so; merged into the unrestricted table, it is
# picked up as the grouping column (relatives then never straddle a fold).
HCP_FAMILY_COLUMN = "Family_ID"
FREESURFER_PREFIX = "FS_"
MALE_WORDS = {"m", "male", "man", "1"}
FEMALE_WORDS = {"f", "female", "woman", "0"}
# Ages (years) inside this range are binned with the HCP Young Adult bins.
HCP_AGE_RANGE = (22.0, 40.0)

_BIN_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:-\s*(\d+(?:\.\d+)?)|\+)\s*$")


def parse_sex(values: pd.Series, male_values: Iterable | None = None,
              where: str = "table") -> pd.Series:
    """Map raw sex values to 'M'/'F'; missing values stay NaN.

    Without ``male_values``: M/F, male/female, man/woman (any case), and 1 = male,
    0 = female. With ``male_values``: those values mean male and the single other
    value present means female.
    """
    text = values.astype("string").str.strip()
    present = text.dropna()
    if male_values is not None:
        male_set = {str(v).strip().lower() for v in male_values}
        # "1.0" and "1" are the same code when the column was read as floats.
        male_set |= {s[:-2] for s in male_set if s.endswith(".0")}
        lowered = present.str.lower().str.replace(r"\.0$", "", regex=True)
        others = sorted(set(lowered) - male_set)
        if len(others) > 1:
            raise BrainlabInputError(
                f"{where}: sex column has values {sorted(set(present))[:8]}; with "
                f"male values {sorted(male_set)} expected exactly one other (female) "
                f"value, found {others[:8]}"
            )
        mapped = lowered.map(lambda v: "M" if v in male_set else "F")
    else:
        lowered = present.str.lower().str.replace(r"\.0$", "", regex=True)
        unknown = sorted(set(lowered) - MALE_WORDS - FEMALE_WORDS)
        if unknown:
            raise BrainlabInputError(
                f"{where}: sex values {unknown[:8]} not understood; expected M/F, "
                f"male/female or 1/0 (1 = male), or name the male values explicitly"
            )
        mapped = lowered.map(lambda v: "M" if v in MALE_WORDS else "F")
    out = pd.Series(np.nan, index=values.index, dtype=object)
    out.loc[mapped.index] = mapped.astype(object)
    return out


def parse_age_bin_label(label: str) -> tuple[float, float] | None:
    """``'22-25'`` -> (22, 25); ``'36+'`` -> (36, inf); anything else -> None."""
    match = _BIN_PATTERN.match(str(label))
    if not match:
        return None
    low = float(match.group(1))
    high = float(match.group(2)) if match.group(2) else float("inf")
    return low, high


def parse_age(values: pd.Series, where: str = "table") -> tuple[pd.Series, pd.Series, tuple[str, ...]]:
    """Ages as years or bin strings -> (age years or NaN, ordinal age_bin, bin labels).

    Bin strings (``22-25``, ``36+``) are ordered by their lower bound; the HCP
    bins keep the ordinal codes 0 = 22-25 ... 3 = 36+ when they are a subset.
    Years inside 22-40 use the HCP bins; other years use decades (``20-29``, ...).
    Missing values give NaN in both outputs.
    """
    present = values.dropna()
    numeric = pd.to_numeric(present, errors="coerce")
    if numeric.notna().all():
        years = pd.to_numeric(values, errors="coerce").astype(float)
        return years, *_bin_years(years)
    labels = present.astype(str).str.strip()
    bounds = {label: parse_age_bin_label(label) for label in set(labels)}
    bad = sorted(label for label, bound in bounds.items() if bound is None)
    if bad:
        raise BrainlabInputError(
            f"{where}: age values {bad[:8]} are neither years nor bin strings; "
            f"expected numbers or bins like '22-25' or '36+'"
        )
    if set(bounds) <= set(HCP_AGE_BINS):
        ordered = HCP_AGE_BINS
    else:
        ordered = tuple(sorted(bounds, key=lambda label: bounds[label]))
    code = {label: i for i, label in enumerate(ordered)}
    bins = pd.Series(np.nan, index=values.index, dtype=float)
    bins.loc[labels.index] = labels.map(code).astype(float)
    years = pd.Series(np.nan, index=values.index, dtype=float)
    return years, bins, ordered


def _bin_years(years: pd.Series) -> tuple[pd.Series, tuple[str, ...]]:
    present = years.dropna()
    if len(present) and present.min() >= HCP_AGE_RANGE[0] and present.max() < HCP_AGE_RANGE[1]:
        edges = np.array([26.0, 31.0, 36.0])
        bins = pd.Series(np.searchsorted(edges, years.to_numpy(), side="right"),
                         index=years.index, dtype=float)
        bins[years.isna()] = np.nan
        return bins, HCP_AGE_BINS
    first = int(present.min() // 10 * 10) if len(present) else 0
    last = int(present.max() // 10 * 10) if len(present) else 0
    labels = tuple(f"{d}-{d + 9}" for d in range(first, last + 10, 10))
    bins = (years // 10 * 10 - first) / 10
    return bins, labels


def read_table(path: str | Path, string_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read a .csv or .tsv (by suffix) with clear errors on bad files.

    ``string_columns`` are read as text so ids such as ``0042`` keep their zeros.
    """
    path = Path(path)
    separator = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        frame = pd.read_csv(path, sep=separator, dtype={c: str for c in string_columns})
    except FileNotFoundError:
        raise BrainlabInputError(f"table {path} not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise BrainlabInputError(
            f"table {path.name} could not be read as {'TSV' if separator == chr(9) else 'CSV'}: "
            f"{error}"
        ) from None
    if frame.shape[1] == 0:
        raise BrainlabInputError(f"table {path.name} has no columns; expected a header row")
    return frame


def is_hcp_unrestricted(frame: pd.DataFrame) -> bool:
    """True when the table looks like the HCP unrestricted behavioural table."""
    return (all(c in frame.columns for c in HCP_TABLE_COLUMNS)
            and any(str(c).startswith(FREESURFER_PREFIX) for c in frame.columns))


def load_table_cohort(path: str | Path, id_column: str | None = None,
                      sex_column: str | None = None, age_column: str | None = None,
                      male_values: Iterable | None = None,
                      drop_non_numeric: bool = False, group_column: str | None = None) -> Cohort:
    """A table-only cohort (``images`` None) from an HCP unrestricted or generic CSV.

    With no column names given, the table must be the HCP unrestricted table
    (``Subject``, ``Gender``, ``Age``, ``FS_*``): the ``FS_*`` columns are the
    features and rows with any missing FS value are dropped. Otherwise the named
    id/sex/age columns are used and every other column is a feature; non-numeric
    feature columns raise an error, or are dropped with a note when
    ``drop_non_numeric`` is true. Rows with missing feature values are dropped
    (all-empty columns first) and counted in ``cohort.notes``. ``group_column`` (or
    ``Family_ID`` in an HCP table) becomes the table's ``family`` column, not a feature:
    probes then use family-grouped folds.
    """
    path = Path(path)
    frame = read_table(path, string_columns=[id_column] if id_column else [])
    where = f"table {path.name}"
    notes: list[str] = []
    hcp = id_column is None and sex_column is None and age_column is None and is_hcp_unrestricted(frame)
    if hcp:
        id_column, sex_column, age_column = HCP_TABLE_COLUMNS
        feature_columns = [c for c in frame.columns if str(c).startswith(FREESURFER_PREFIX)]
        notes.append(f"HCP unrestricted table: {len(feature_columns)} FreeSurfer (FS_*) "
                     f"columns used as morphometry features")
    else:
        named = {"id_column": id_column, "sex_column": sex_column, "age_column": age_column}
        unnamed = [k for k, v in named.items() if v is None]
        if unnamed:
            raise BrainlabInputError(
                f"{where} is not an HCP unrestricted table (expected columns "
                f"{list(HCP_TABLE_COLUMNS)} and FS_* columns); name the columns to use "
                f"with {', '.join(unnamed)}; found columns {list(frame.columns)[:20]}"
            )
        feature_columns = [c for c in frame.columns if c not in (id_column, sex_column, age_column)]
    if group_column is None and hcp and HCP_FAMILY_COLUMN in frame.columns:
        group_column = HCP_FAMILY_COLUMN
    feature_columns = [c for c in feature_columns if c != group_column]
    missing = [c for c in (id_column, sex_column, age_column, group_column)
               if c is not None and c not in frame.columns]
    if missing:
        raise BrainlabInputError(
            f"{where}: missing columns {missing}; found columns {list(frame.columns)[:20]}"
        )
    if len(frame) == 0:
        raise BrainlabInputError(f"{where}: the table has a header but no rows; expected at least one subject")

    features, feature_notes = _numeric_features(frame[feature_columns], where, drop_non_numeric)
    notes.extend(feature_notes)
    table = pd.DataFrame({
        "subject_id": _id_strings(frame[id_column]),
        "sex": parse_sex(frame[sex_column], male_values, where=f"{where} column {sex_column!r}"),
    })
    age, age_bin, bin_labels = parse_age(frame[age_column], where=f"{where} column {age_column!r}")
    table["age"] = age
    table["age_bin"] = age_bin
    if group_column is not None:
        table["family"] = _id_strings(frame[group_column])
    table = pd.concat([table, features], axis=1)

    keep = table["subject_id"].notna() & table["sex"].notna() & table["age_bin"].notna()
    if group_column is not None:
        keep &= table["family"].notna()
    if (~keep).any():
        what = "id, sex, age or family" if group_column is not None else "id, sex or age"
        notes.append(f"dropped {int((~keep).sum())} rows with a missing {what}")
    incomplete = features.isna().any(axis=1) & keep
    if incomplete.any():
        kind = "FS" if hcp else "feature"
        notes.append(f"dropped {int(incomplete.sum())} of {len(frame)} rows with missing {kind} values")
    table = table[keep & ~incomplete].reset_index(drop=True)
    if len(table) == 0:
        raise BrainlabInputError(
            f"{where}: no complete rows left (0 of {len(frame)}); every row misses an id, "
            f"sex, age or feature value"
        )
    table["age_bin"] = table["age_bin"].astype(int)
    if group_column is not None:
        notes.append(f"families from column {group_column!r}: {table['family'].nunique()} "
                     f"families; probes use family-grouped folds")
    return Cohort(
        name=path.stem,
        table=table,
        affine=np.eye(4),
        images=None,
        source=str(path),
        age_bin_labels=bin_labels,
        notes=notes,
        metadata={"kind": "hcp-unrestricted" if hcp else "table",
                  "columns": {"id": id_column, "sex": sex_column, "age": age_column,
                              "family": group_column},
                  "rows_in_file": int(len(frame))},
    )


def _id_strings(values: pd.Series) -> pd.Series:
    """Subject ids as strings; integral floats (ids read beside NaN) lose their '.0'."""
    if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("Int64")
    return values.astype("string").str.strip().astype(object)


def _numeric_features(frame: pd.DataFrame, where: str,
                      drop_non_numeric: bool) -> tuple[pd.DataFrame, list[str]]:
    """Numeric feature columns; non-numeric ones raise or are dropped (with a note)."""
    notes = []
    numeric = {}
    non_numeric = []
    for column in frame.columns:
        values = frame[column]
        converted = pd.to_numeric(values, errors="coerce")
        if (converted.isna() & values.notna()).any():
            non_numeric.append(column)
        else:
            numeric[column] = converted.astype(float)
    if non_numeric and not drop_non_numeric:
        examples = {c: str(frame[c].dropna().iloc[0]) for c in non_numeric[:3]}
        raise BrainlabInputError(
            f"{where}: feature columns must be numeric; found non-numeric columns "
            f"{non_numeric[:10]} (e.g. {examples}); drop them from the file or "
            f"pass drop_non_numeric=True (--drop-non-numeric)"
        )
    if non_numeric:
        notes.append(f"dropped {len(non_numeric)} non-numeric columns: {non_numeric[:10]}")
    features = pd.DataFrame(numeric, index=frame.index)
    empty = [c for c in features.columns if features[c].isna().all()]
    if empty:
        features = features.drop(columns=empty)
        notes.append(f"dropped {len(empty)} feature columns with no values: {empty[:10]}")
    return features, notes
