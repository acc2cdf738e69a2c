"""Cohort-level plots: demographics and morphometry against age (pure plotly builders).

Every function takes a cohort table (``subject_id``, ``sex``, ``age``, ``age_bin``,
morphometry columns) and returns a ``go.Figure``; nothing here reads files or
knows about the app.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from brainlab.errors import BrainlabInputError
from brainlab.viz.style import SEQUENTIAL_SCALE, SEX_COLOURS, SEX_NAMES, TRUTH_DASH, apply_layout

SEXES = ("F", "M")


def _require_columns(table: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BrainlabInputError(
            f"{where}: table is missing columns {missing}; found {list(table.columns)[:12]}"
        )


def _bin_label(labels: Sequence[str] | None, code) -> str:
    code = int(code)
    if labels is not None and 0 <= code < len(labels):
        return str(labels[code])
    return f"bin {code}"


def age_histogram(table: pd.DataFrame, bin_labels: Sequence[str] | None = None,
                  title: str | None = "Age by sex") -> go.Figure:
    """Overlaid age histograms for women and men (1-year bins).

    Cohorts with only age bins (``age`` all NaN) get grouped bars per age bin
    instead, labelled with ``bin_labels``.
    """
    _require_columns(table, ["sex", "age", "age_bin"], "age_histogram")
    fig = go.Figure()
    if table["age"].notna().any():
        ages = table["age"].dropna()
        start, end = np.floor(ages.min()), np.ceil(ages.max()) + 1
        size = 1.0 if end - start <= 40 else 5.0
        for sex in SEXES:
            rows = table[(table["sex"] == sex) & table["age"].notna()]
            fig.add_trace(go.Histogram(
                x=rows["age"], name=f"{SEX_NAMES[sex]} ({len(rows)})",
                marker_color=SEX_COLOURS[sex],
                xbins=dict(start=start, end=end, size=size),
                hovertemplate="age %{x}<br>%{y} subjects<extra>" + SEX_NAMES[sex] + "</extra>",
            ))
        # Side by side, not overlaid: blended overlaps read as a third group.
        fig.update_layout(barmode="group", xaxis_title="age (years)")
    else:
        counts = sex_by_age_bin_counts(table, bin_labels)
        for sex in SEXES:
            fig.add_trace(go.Bar(x=list(counts.columns), y=counts.loc[SEX_NAMES[sex]].to_numpy(),
                                 name=SEX_NAMES[sex], marker_color=SEX_COLOURS[sex]))
        fig.update_layout(barmode="group", xaxis_title="age bin")
    return apply_layout(fig, title=title, yaxis_title="subjects", height=320, bargap=0.1,
                        bargroupgap=0.0)


def sex_by_age_bin_counts(table: pd.DataFrame,
                          bin_labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Counts of subjects by sex (rows 'female', 'male') and age bin (labelled columns)."""
    _require_columns(table, ["sex", "age_bin"], "sex_by_age_bin_counts")
    codes = sorted(int(c) for c in table["age_bin"].dropna().unique())
    if bin_labels is not None:
        codes = sorted(set(codes) | set(range(len(bin_labels))))
    counts = pd.crosstab(table["sex"], table["age_bin"].astype(int))
    counts = counts.reindex(index=list(SEXES), columns=codes, fill_value=0)
    counts.index = [SEX_NAMES[s] for s in SEXES]
    counts.columns = [_bin_label(bin_labels, c) for c in codes]
    return counts


def sex_by_age_bin(table: pd.DataFrame, bin_labels: Sequence[str] | None = None,
                   title: str | None = "Subjects by sex and age bin") -> go.Figure:
    """A heatmap of subject counts, sex x age bin, with the count written in each cell."""
    counts = sex_by_age_bin_counts(table, bin_labels)
    fig = go.Figure(go.Heatmap(
        z=counts.to_numpy(), x=list(counts.columns), y=list(counts.index),
        colorscale=SEQUENTIAL_SCALE, texttemplate="%{z}", textfont=dict(size=14),
        hovertemplate="%{y}, %{x}: %{z} subjects<extra></extra>", colorbar=dict(title="n"),
    ))
    return apply_layout(fig, title=title, xaxis_title="age bin", height=260,
                        yaxis=dict(autorange="reversed"))


def feature_vs_age(table: pd.DataFrame, feature: str,
                   true_curves: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
                   bin_labels: Sequence[str] | None = None,
                   title: str | None = None) -> go.Figure:
    """Scatter of ``feature`` against age, one colour per sex, hover with subject id.

    ``true_curves`` maps 'F'/'M' to (ages, values) of the generating curve (the
    phantom's ground truth) and is drawn as dashed lines in the sex's colour.
    Cohorts without ages in years are plotted against the age bin, jittered.
    """
    _require_columns(table, ["subject_id", "sex", "age", "age_bin", feature], "feature_vs_age")
    values = pd.to_numeric(table[feature], errors="coerce")
    if values.notna().sum() == 0:
        raise BrainlabInputError(f"feature_vs_age: column {feature!r} has no numeric values")
    has_age = table["age"].notna().any()
    if has_age:
        x = table["age"].to_numpy(dtype=float)
    else:
        # Deterministic jitter so points in one bin do not sit on top of each other.
        jitter = np.random.default_rng(0).uniform(-0.25, 0.25, len(table))
        x = table["age_bin"].to_numpy(dtype=float) + jitter
    fig = go.Figure()
    for sex in SEXES:
        mask = (table["sex"] == sex).to_numpy()
        fig.add_trace(go.Scatter(
            x=x[mask], y=values[mask], mode="markers", name=f"{SEX_NAMES[sex]} ({mask.sum()})",
            marker=dict(color=SEX_COLOURS[sex], size=6, opacity=0.7),
            customdata=table.loc[mask, ["subject_id"]].to_numpy(),
            hovertemplate="%{customdata[0]}<br>age %{x:.1f}<br>" + feature
                          + " %{y:.4g}<extra>" + SEX_NAMES[sex] + "</extra>",
        ))
    for sex, (ages, curve) in (true_curves or {}).items():
        if sex not in SEX_COLOURS:
            raise BrainlabInputError(f"true_curves keys must be 'F' or 'M'; found {sex!r}")
        fig.add_trace(go.Scatter(
            x=np.asarray(ages, dtype=float), y=np.asarray(curve, dtype=float), mode="lines",
            name=f"true curve ({SEX_NAMES[sex]})",
            line=dict(color=SEX_COLOURS[sex], dash=TRUTH_DASH, width=2.5),
            hovertemplate="true " + feature + " %{y:.4g} at %{x:.1f} y<extra></extra>",
        ))
    xaxis = dict(title="age (years)")
    if not has_age:
        codes = sorted(int(c) for c in table["age_bin"].unique())
        xaxis = dict(title="age bin", tickvals=codes,
                     ticktext=[_bin_label(bin_labels, c) for c in codes])
    return apply_layout(fig, title=title if title is not None else f"{feature} vs age",
                        xaxis=xaxis, yaxis_title=feature, height=380)
