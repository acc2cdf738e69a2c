"""Maps of a representation: 2D/3D scatter of projected subjects, and the probe table.

``latent_scatter`` puts each subject's id, sex and age in ``customdata`` (id first),
so an app can tell which subject a clicked point is.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from brainlab.errors import BrainlabInputError
from brainlab.viz.style import LAYOUT_DEFAULTS, SEQUENTIAL_SCALE, SEX_COLOURS, apply_layout

# Categorical colours beyond the sexes: Okabe-Ito, then plotly's defaults.
CATEGORY_COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#F0E442", "#0072B2",
                    "#D55E00", "#999999", "#636EFA", "#EF553B", "#00CC96", "#AB63FA"]
_SEX_LABEL_COLOURS = {"female": SEX_COLOURS["F"], "male": SEX_COLOURS["M"],
                      "F": SEX_COLOURS["F"], "M": SEX_COLOURS["M"]}
_HOVER = ("<b>%{customdata[0]}</b><br>sex %{customdata[1]} · age %{customdata[2]}"
          "<br>%{meta}: %{customdata[3]}<extra></extra>")


def _customdata(subject_ids, sexes, ages, colour_text) -> np.ndarray:
    age_text = [f"{a:.1f}" if isinstance(a, (int, float)) and np.isfinite(a) else "n/a" for a in ages]
    return np.stack([np.asarray(subject_ids, dtype=str), np.asarray(sexes, dtype=str),
                     np.asarray(age_text, dtype=str), np.asarray(colour_text, dtype=str)], axis=-1)


def latent_scatter(coords, subject_ids: Sequence[str], sexes: Sequence[str], ages: Sequence[float],
                   colour, colour_name: str, categorical: bool, axis_title: str = "PC",
                   title: str | None = None, highlight: str | None = None,
                   height: int = 520) -> go.Figure:
    """A 2D or 3D scatter of (n, 2|3) ``coords``, one point per subject.

    Points are coloured by ``colour`` (n values): one legend entry per category when
    ``categorical``, else a continuous colour bar (NaN values drawn grey). Hover shows
    subject id, sex, age and the colour value; ``customdata`` holds
    [subject_id, sex, age, colour value] per point. ``highlight`` (a subject id) is
    circled.
    """
    coords = np.asarray(coords, dtype=float)
    n = len(subject_ids)
    if coords.ndim != 2 or coords.shape[1] not in (2, 3) or len(coords) != n:
        raise BrainlabInputError(
            f"coords must be (n, 2) or (n, 3) with n = {n} subjects; found shape {coords.shape}")
    colour = np.asarray(colour)
    if len(colour) != n or len(sexes) != n or len(ages) != n:
        raise BrainlabInputError(
            f"subject_ids, sexes, ages and colour must have one entry per point ({n}); found "
            f"{len(sexes)}, {len(ages)}, {len(colour)}")
    three_d = coords.shape[1] == 3
    scatter = go.Scatter3d if three_d else go.Scattergl
    ids = np.asarray(subject_ids, dtype=str)
    ages = np.asarray(ages, dtype=float)
    size = 4 if three_d else 7

    def axes(mask):
        values = {"x": coords[mask, 0], "y": coords[mask, 1]}
        if three_d:
            values["z"] = coords[mask, 2]
        return values

    traces = []
    if categorical:
        labels = colour.astype(str)
        categories = sorted(set(labels.tolist()), key=_natural_key)
        for number, category in enumerate(categories):
            mask = labels == category
            colour_hex = _SEX_LABEL_COLOURS.get(category, CATEGORY_COLOURS[number % len(CATEGORY_COLOURS)])
            traces.append(scatter(
                mode="markers", name=f"{category} (n={int(mask.sum())})", **axes(mask),
                marker=dict(size=size, color=colour_hex, opacity=0.85, line=dict(width=0)),
                customdata=_customdata(ids[mask], np.asarray(sexes)[mask], ages[mask], labels[mask]),
                hovertemplate=_HOVER, meta=colour_name))
    else:
        values = colour.astype(float)
        finite = np.isfinite(values)
        text = np.array([f"{v:.4g}" if np.isfinite(v) else "n/a" for v in values])
        if (~finite).any():
            traces.append(scatter(
                mode="markers", name=f"{colour_name} missing", **axes(~finite),
                marker=dict(size=size, color="#bbbbbb", opacity=0.7),
                customdata=_customdata(ids[~finite], np.asarray(sexes)[~finite], ages[~finite],
                                       text[~finite]),
                hovertemplate=_HOVER, meta=colour_name))
        traces.append(scatter(
            mode="markers", name=colour_name, showlegend=False, **axes(finite),
            marker=dict(size=size, color=values[finite], colorscale=SEQUENTIAL_SCALE, opacity=0.9,
                        colorbar=dict(title=dict(text=colour_name, side="right"), thickness=12)),
            customdata=_customdata(ids[finite], np.asarray(sexes)[finite], ages[finite], text[finite]),
            hovertemplate=_HOVER, meta=colour_name))
    if highlight is not None and highlight in set(ids.tolist()):
        mask = ids == highlight
        traces.append(scatter(
            mode="markers", name=f"selected: {highlight}", **axes(mask),
            marker=dict(size=size * 2.4, color="rgba(0,0,0,0)", line=dict(width=2.5, color="black")),
            customdata=_customdata(ids[mask], np.asarray(sexes)[mask], ages[mask], [highlight]),
            hovertemplate=_HOVER, meta="selected"))
    fig = go.Figure(traces)
    titles = [f"{axis_title} {k}" for k in range(1, coords.shape[1] + 1)]
    layout = dict(height=height, title=dict(text=title) if title else None,
                  legend=dict(LAYOUT_DEFAULTS["legend"], title=dict(text=colour_name)))
    if three_d:
        layout["scene"] = dict(xaxis_title=titles[0], yaxis_title=titles[1], zaxis_title=titles[2])
        layout["margin"] = dict(l=0, r=0, t=50 if title else 30, b=0)
    else:
        layout["xaxis_title"], layout["yaxis_title"] = titles[0], titles[1]
        layout["dragmode"] = "pan"
        layout["clickmode"] = "event+select"
    return apply_layout(fig, **layout)


def _natural_key(label: str):
    """Sort '2-9' before '10-19' and 'bin 2' before 'bin 10'."""
    digits = "".join(ch for ch in label.split("-")[0] if ch.isdigit())
    return (0, int(digits), label) if digits else (1, 0, label)


def probe_table_view(table: pd.DataFrame) -> pd.DataFrame:
    """A probe table (``brainlab.analysis.probes``) formatted for display: accuracy as
    "mean ± sd", the majority rate, and the seed study's published figure kept in its own column; the
    rows of one probe (raw, latent) are adjacent."""
    required = {"representation", "target", "model", "strategy", "accuracy_mean", "accuracy_sd"}
    missing = required - set(table.columns)
    if missing:
        raise BrainlabInputError(f"probe table lacks columns {sorted(missing)}")
    view = pd.DataFrame({
        "target": table["target"], "model": table["model"], "strategy": table["strategy"],
        "representation": table["representation"],
        "accuracy (5-fold CV)": [f"{m:.3f} ± {s:.3f}" for m, s in
                                 zip(table["accuracy_mean"], table["accuracy_sd"])],
    })
    if "balanced_accuracy_mean" in table:
        view["balanced accuracy"] = table["balanced_accuracy_mean"].round(3)
    if "chance" in table:
        # The majority-class rate: what always guessing the commonest class scores
        # (balanced accuracy's chance level is 1 / classes instead).
        view["majority rate"] = table["chance"].round(3)
    if "folds" in table:
        view["folds"] = table["folds"]
    # The seed study's published column (analysis.probes.SEED_COLUMN) keeps its name.
    for column in (c for c in table.columns if str(c).startswith("seed study")):
        view[column] = table[column].fillna("—")
    # Raw and latent rows of one probe next to each other (first-seen order kept).
    order = [pd.Categorical(view[c], categories=list(dict.fromkeys(view[c])), ordered=True).codes
             for c in ("target", "model", "strategy", "representation")]
    view = view.iloc[np.lexsort(order[::-1])]
    return view.reset_index(drop=True)


def probe_comparison(table: pd.DataFrame, model: str = "logistic regression") -> go.Figure:
    """Grouped bars of one probe model's accuracy (mean ± sd) per target, raw vs latent,
    with chance as a dashed line per target."""
    rows = table[table["model"] == model]
    rows = rows[rows["strategy"].isin(["binary", "multiclass"])]
    if rows.empty:
        raise BrainlabInputError(f"probe table has no rows for model {model!r}")
    fig = go.Figure()
    for number, (representation, group) in enumerate(rows.groupby("representation", sort=False)):
        fig.add_bar(name=representation, x=group["target"], y=group["accuracy_mean"],
                    error_y=dict(type="data", array=group["accuracy_sd"]),
                    marker_color=CATEGORY_COLOURS[number % len(CATEGORY_COLOURS)],
                    hovertemplate="%{x}: %{y:.3f}<extra>" + representation + "</extra>")
    for target, group in rows.groupby("target", sort=False):
        fig.add_scatter(x=[target], y=[group["chance"].iloc[0]], mode="markers", showlegend=False,
                        marker=dict(symbol="line-ew-open", size=40, color="#555"),
                        hovertemplate="chance %{y:.3f}<extra></extra>")
    return apply_layout(fig, barmode="group", height=320, yaxis=dict(title="accuracy", range=[0, 1]),
                        title=dict(text=f"{model[:1].upper()}{model[1:]}"),
                        legend=dict(LAYOUT_DEFAULTS["legend"], y=-0.25, yanchor="top", x=0.5,
                                    xanchor="center"))
