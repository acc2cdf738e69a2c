"""Reconstruction figures: original | reconstruction | error, features, R² per feature."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, sequential

from brainlab.errors import BrainlabInputError
from brainlab.viz.slices import PLANES, triplanar_grid
from brainlab.viz.style import SEX_COLOURS, apply_layout

# Absolute error: dark = exact, bright = large error. Inferno as rgb() stops: the
# browser's plotly misreads Inferno's first hex stop ("#000004") and draws 0 as pink.
ERROR_SCALE = [[k / (len(sequential.Inferno) - 1), "rgb({}, {}, {})".format(*hex_to_rgb(colour))]
               for k, colour in enumerate(sequential.Inferno)]


def reconstruction_triplanar(original: np.ndarray, reconstruction: np.ndarray, affine: np.ndarray,
                             cursor: Sequence[int] | None = None,
                             value_range: tuple[float, float] | None = None,
                             error_limit: float | None = None, title: str | None = None,
                             row_height: int = 230) -> go.Figure:
    """Three rows through the same ``cursor``: original, reconstruction, |difference|.

    Original and reconstruction share ``value_range`` (default: the original's range);
    the error row has its own scale from 0 to ``error_limit`` (default: the 99.5th
    percentile of the error), drawn with ``ERROR_SCALE``.
    """
    original = np.asarray(original, dtype=np.float32)
    reconstruction = np.asarray(reconstruction, dtype=np.float32)
    if original.ndim != 3 or original.shape != reconstruction.shape:
        raise BrainlabInputError(
            f"expected original and reconstruction of the same 3D shape; found "
            f"{original.shape} and {reconstruction.shape}")
    error = np.abs(original - reconstruction)
    if value_range is None:
        value_range = (float(original.min()), max(float(original.max()), float(original.min()) + 1e-6))
    if error_limit is None:
        error_limit = float(max(np.quantile(error, 0.995), 1e-6))
    fig = triplanar_grid({"original": original, "reconstruction": reconstruction,
                          "|error|": error}, affine, cursor=cursor,
                         row_ranges=[value_range, value_range, (0.0, error_limit)],
                         title=title, row_height=row_height)
    _lift_plane_titles(fig)
    fig.update_layout(coloraxis3=dict(colorscale=ERROR_SCALE,
                                      colorbar=dict(fig.layout.coloraxis3.colorbar.to_plotly_json(),
                                                    title=dict(text="|error|", side="right"))))
    return fig


def feature_comparison(original: pd.Series, reconstructed: pd.Series, unit: str = "z-score",
                       title: str | None = None, max_features: int = 60) -> go.Figure:
    """Original vs reconstructed value of each feature for one subject (grouped bars).

    Pass values on a common scale (e.g. z-scores from ``standardised_features``) so
    features in cc and mm share the axis. More than ``max_features`` features: the
    ones reconstructed worst (largest |difference|) are shown.
    """
    if list(original.index) != list(reconstructed.index):
        raise BrainlabInputError("original and reconstructed must have the same features")
    names = list(original.index)
    if len(names) > max_features:
        gap = (original - reconstructed).abs().sort_values(ascending=False)
        names = [n for n in names if n in set(gap.index[:max_features])]
    fig = go.Figure()
    fig.add_bar(name="original", x=names, y=original[names], marker_color="#444444")
    fig.add_bar(name="reconstruction", x=names, y=reconstructed[names], marker_color="#E69F00")
    return apply_layout(fig, barmode="group", height=360, bargap=0.25,
                        title=dict(text=title) if title else None,
                        yaxis=dict(title=unit), xaxis=dict(tickangle=-45, tickfont=dict(size=10)))


def r2_bars(r2: pd.Series, title: str | None = None, good: float = 0.9) -> go.Figure:
    """Horizontal bars of R² per feature (worst at the top), a dashed line at ``good``.

    Bars are clipped at -1 on the axis (hover shows the true value); NaN features
    (no variance) are left out.
    """
    r2 = r2.dropna().sort_values()
    if r2.empty:
        raise BrainlabInputError("no finite R² values to plot")
    colours = ["#009E73" if v >= good else "#E69F00" if v >= 0.5 else "#D55E00" for v in r2]
    fig = go.Figure(go.Bar(x=np.maximum(r2.to_numpy(), -1.0), y=list(r2.index), orientation="h",
                           marker_color=colours, customdata=r2.to_numpy(),
                           hovertemplate="%{y}: R² %{customdata:.3f}<extra></extra>"))
    fig.add_vline(x=good, line=dict(dash="dash", color="#555"))
    return apply_layout(fig, height=max(260, 13 * len(r2) + 80), showlegend=False,
                        title=dict(text=title) if title else None,
                        xaxis=dict(title="R² (held-out)", range=[min(-0.05, float(max(r2.min(), -1.0))), 1.0]),
                        yaxis=dict(tickfont=dict(size=10), automargin=True),
                        margin=dict(l=10, r=20, t=50 if title else 20, b=40))


def error_by_subject(errors: pd.DataFrame, metric: str = "ssim", selected: str | None = None) -> go.Figure:
    """Strip of one error metric over subjects, coloured by sex; ``selected`` circled."""
    if metric not in errors.columns:
        raise BrainlabInputError(f"errors table lacks {metric!r}; found {list(errors.columns)}")
    fig = go.Figure()
    for sex, group in errors.groupby("sex"):
        fig.add_scatter(x=group[metric], y=[sex] * len(group), mode="markers", name=sex,
                        marker=dict(color=SEX_COLOURS.get(sex, "#777"), size=8, opacity=0.7),
                        customdata=group["subject_id"],
                        hovertemplate="%{customdata}: %{x:.3f}<extra></extra>")
    if selected is not None and selected in set(errors["subject_id"]):
        row = errors[errors["subject_id"] == selected].iloc[0]
        fig.add_scatter(x=[row[metric]], y=[row["sex"]], mode="markers", name=selected,
                        marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(width=2, color="black")))
    return apply_layout(fig, height=200, xaxis=dict(title=metric.upper()),
                        margin=dict(l=40, r=20, t=30, b=40))


def compact_triplanar(volumes: dict, affine: np.ndarray, value_range=None,
                      row_height: int = 170) -> go.Figure:
    """``triplanar_grid`` for a narrow column: plane titles shortened to the slice
    position ("z = 19 mm") in a smaller font so they do not run into each other."""
    fig = triplanar_grid(volumes, affine, value_range=value_range, row_height=row_height)
    for annotation in fig.layout.annotations:
        words = (annotation.text or "").split(" ", 1)
        if len(words) == 2 and words[0] in PLANES:
            annotation.text = words[1]
            annotation.font = dict(size=10)
    # A narrow column has no room for L/R/P/A letters and a colour bar per row: they
    # cover the small images. One shared range needs only one bar, and none fits.
    fig.layout.annotations = [a for a in fig.layout.annotations
                              if (a.text or "") not in ("L", "R", "P", "A", "S", "I")]
    if value_range is not None:
        fig.update_coloraxes(showscale=False)
    return _lift_plane_titles(fig)


def _lift_plane_titles(fig: go.Figure, shift: int = 12) -> go.Figure:
    # The plane titles sit on the image's top edge; lift them clear of it.
    for annotation in fig.layout.annotations:
        text = annotation.text or ""
        if text.split(" ", 1)[0] in PLANES or text[:4] in ("x = ", "y = ", "z = "):
            annotation.yshift = shift
    return fig
