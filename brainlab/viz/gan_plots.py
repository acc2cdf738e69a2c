"""Figures for the GAN lab and the real-vs-synthetic comparison (arrays in, ``go.Figure`` out).

Mosaics (sample grids, thumbnail strips, galleries) tile one slice per volume into a
single heatmap, drawn in the orientation of ``slices.plane_slice`` (anterior /
superior up, left on the left), which is much faster than one subplot per volume.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from brainlab.errors import BrainlabInputError
from brainlab.viz.slices import PLANES, grid_geometry, plane_slice
from brainlab.viz.style import INTENSITY_SCALE, LAYOUT_DEFAULTS, SEQUENTIAL_SCALE

REAL_COLOUR = "#009E73"       # bluish green (Okabe-Ito)
SYNTHETIC_COLOUR = "#CC79A7"  # reddish purple (Okabe-Ito)
_FIXED_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


def _check_stack(volumes, what: str = "volumes") -> np.ndarray:
    volumes = np.asarray(volumes, dtype=np.float32)
    if volumes.ndim != 4 or len(volumes) == 0:
        raise BrainlabInputError(f"{what} must be a non-empty stack (n, D, H, W); found shape {volumes.shape}")
    return volumes


def _layout(fig: go.Figure, **overrides) -> go.Figure:
    settings = {k: v for k, v in LAYOUT_DEFAULTS.items() if k != "template"}
    fig.update_layout(**{**settings, "paper_bgcolor": "white", **overrides})
    return fig


def mid_slices(volumes, plane: str = "axial", index: int | None = None) -> list[np.ndarray]:
    """One display slice per volume through ``plane`` (the middle one by default)."""
    volumes = _check_stack(volumes)
    if plane not in PLANES:
        raise BrainlabInputError(f"plane must be one of {PLANES}; found {plane!r}")
    axis = _FIXED_AXIS[plane]
    index = volumes.shape[axis + 1] // 2 if index is None else int(index)
    if not 0 <= index < volumes.shape[axis + 1]:
        raise BrainlabInputError(
            f"slice {index} is outside the {plane} axis of length {volumes.shape[axis + 1]}")
    return [plane_slice(volume, plane, index) for volume in volumes]


def mosaic(slices: Sequence[np.ndarray], columns: int, gap: int = 1) -> np.ndarray:
    """Tile equal-shape 2D slices into rows of ``columns`` (row 0 of the result at the
    bottom, as heatmaps draw it; the first tile at the top left), NaN in the gaps."""
    if columns < 1:
        raise BrainlabInputError(f"columns must be >= 1; found {columns}")
    rows_n = int(np.ceil(len(slices) / columns))
    height, width = slices[0].shape
    canvas = np.full((rows_n * (height + gap) - gap, columns * (width + gap) - gap), np.nan,
                     dtype=np.float32)
    for n, tile in enumerate(slices):
        row = rows_n - 1 - n // columns  # first row of tiles drawn on top
        col = n % columns
        canvas[row * (height + gap): row * (height + gap) + height,
               col * (width + gap): col * (width + gap) + width] = tile
    return canvas


def sample_grid_figure(volumes, labels: Sequence[str] | None = None, plane: str = "axial",
                       columns: int = 4, value_range: tuple[float, float] = (0.0, 1.0),
                       highlight: Sequence[bool] | None = None, title: str | None = None,
                       tile_px: int = 150, colorscale: str = INTENSITY_SCALE) -> go.Figure:
    """Mid-slices of (n, D, H, W) volumes as a grid, one label under each tile.

    ``highlight`` (n,) draws an orange frame around the flagged tiles (e.g. suspected
    copies). One heatmap for the whole mosaic keeps the figure light.
    """
    volumes = _check_stack(volumes)
    slices = mid_slices(volumes, plane)
    columns = max(1, min(int(columns), len(slices)))
    # Labels of two or more lines would cover the top of the brain: give each tile a
    # black band above the slice, about 13 px (one 10 px text line) per line.
    lines = max((str(label).count("<br>") + 1 for label in labels), default=1) if labels else 1
    if lines > 1:
        band = int(np.ceil(lines * 13 * slices[0].shape[1] / max(tile_px, 1)))
        # Heatmaps draw row 0 at the bottom, so the band goes after the last row.
        slices = [np.vstack([tile, np.full((band, tile.shape[1]), value_range[0], tile.dtype)])
                  for tile in slices]
    canvas = mosaic(slices, columns)
    height, width = slices[0].shape
    rows_n = int(np.ceil(len(slices) / columns))
    fig = go.Figure(go.Heatmap(z=canvas, colorscale=colorscale, zmin=value_range[0],
                               zmax=value_range[1], showscale=False, hoverongaps=False,
                               hovertemplate="%{z:.3f}<extra></extra>"))
    annotations, shapes = [], []
    for n in range(len(slices)):
        row = rows_n - 1 - n // columns
        col = n % columns
        x0, y0 = col * (width + 1) - 0.5, row * (height + 1) - 0.5
        if labels is not None:
            annotations.append(dict(x=x0 + width / 2, y=y0 + height, text=str(labels[n]),
                                    showarrow=False, yanchor="top", font=dict(size=10, color="#ffd600")))
        if highlight is not None and highlight[n]:
            shapes.append(dict(type="rect", x0=x0, x1=x0 + width, y0=y0, y1=y0 + height,
                               line=dict(color="#E69F00", width=3)))
    aspect = (rows_n * height) / max(columns * width, 1)
    fig_width = columns * tile_px
    _layout(fig, annotations=annotations, shapes=shapes,
            height=int(min(900, max(160, fig_width * aspect + (50 if title else 20)))),
            margin=dict(l=5, r=5, t=40 if title else 5, b=5),
            title=dict(text=title) if title else None, plot_bgcolor="black")
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1, constrain="domain")
    return fig


def thumbnail_strip_figure(frames, plane: str = "axial", current: int | None = None,
                           value_range: tuple[float, float] = (0.0, 1.0),
                           tile_px: int = 90, labels: Sequence[str] | None = None) -> go.Figure:
    """Every frame's mid-slice in one row, the ``current`` frame framed in yellow; tiles
    are labelled by ``labels`` (e.g. ages) or by frame number."""
    frames = _check_stack(frames, "frames")
    if labels is None:
        labels = [str(n) for n in range(len(frames))]
    elif len(labels) != len(frames):
        raise BrainlabInputError(f"{len(frames)} frames need {len(frames)} labels; found {len(labels)}")
    labels = [str(label) for label in labels]
    fig = sample_grid_figure(frames, labels=labels, plane=plane, columns=len(frames),
                             value_range=value_range, tile_px=tile_px)
    if current is not None:
        if not 0 <= int(current) < len(frames):
            raise BrainlabInputError(f"current frame {current} is outside 0..{len(frames) - 1}")
        height, width = mid_slices(frames[:1], plane)[0].shape
        x0 = int(current) * (width + 1) - 0.5
        fig.add_shape(type="rect", x0=x0, x1=x0 + width, y0=-0.5, y1=height - 0.5,
                      line=dict(color="#ffd600", width=3))
    return fig


def animation_figure(frames, affine, plane: str = "axial", index: int | None = None,
                     value_range: tuple[float, float] = (0.0, 1.0), frame_ms: int = 150,
                     height: int = 420, title: str | None = None) -> go.Figure:
    """One slice through every frame as a plotly animation with play / pause and a slider."""
    frames = _check_stack(frames, "frames")
    origin, spacing = grid_geometry(affine)
    slices = mid_slices(frames, plane, index)
    axes = {"axial": (0, 1), "coronal": (0, 2), "sagittal": (1, 2)}[plane]
    x_mm = origin[axes[0]] + spacing[axes[0]] * np.arange(slices[0].shape[1])
    y_mm = origin[axes[1]] + spacing[axes[1]] * np.arange(slices[0].shape[0])

    def heatmap(tile):
        return go.Heatmap(z=tile, x=x_mm, y=y_mm, colorscale=INTENSITY_SCALE, zmin=value_range[0],
                          zmax=value_range[1], showscale=False,
                          hovertemplate="%{x:.0f}, %{y:.0f} mm: %{z:.3f}<extra></extra>")

    fig = go.Figure(data=[heatmap(slices[0])],
                    frames=[go.Frame(data=[heatmap(tile)], name=str(n)) for n, tile in enumerate(slices)])
    play = dict(label="▶ play", method="animate",
                args=[None, dict(frame=dict(duration=frame_ms, redraw=True), fromcurrent=True,
                                 transition=dict(duration=0), mode="immediate")])
    pause = dict(label="❚❚ pause", method="animate",
                 args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")])
    steps = [dict(method="animate", label=str(n),
                  args=[[str(n)], dict(frame=dict(duration=0, redraw=True), mode="immediate")])
             for n in range(len(slices))]
    # Buttons above the image, the frame slider below it, so neither covers the other.
    _layout(fig, height=height, margin=dict(l=10, r=10, t=50, b=70),
            title=dict(text=title, x=0.3) if title else None, plot_bgcolor="black",
            updatemenus=[dict(type="buttons", direction="left", buttons=[play, pause], x=0.0, y=1.02,
                              xanchor="left", yanchor="bottom", showactive=False,
                              pad=dict(b=4))],
            sliders=[dict(steps=steps, active=0, x=0.0, len=1.0, y=0.0, yanchor="top",
                          currentvalue=dict(prefix="frame ", font=dict(size=12)),
                          pad=dict(t=10))])
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1, constrain="domain")
    return fig


def effectiveness_figure(strengths, series: Mapping[str, np.ndarray | None],
                         current: float | None = None, attribute: str = "",
                         min_span: float = 1.0) -> go.Figure:
    """One panel per classifier output (e.g. P(male), predicted age) over edit strength.

    P(male) panels span [0, 1]; other panels at least ``min_span`` (e.g. one year).
    """
    strengths = np.asarray(strengths, dtype=float)
    shown = {name: np.asarray(values, dtype=float) for name, values in series.items()
             if values is not None}
    if not shown:
        raise BrainlabInputError("effectiveness_figure needs at least one series; all were None")
    for name, values in shown.items():
        if values.shape != strengths.shape:
            raise BrainlabInputError(
                f"series {name!r} has shape {values.shape}; expected {strengths.shape} like strengths")
    fig = make_subplots(rows=1, cols=len(shown), subplot_titles=list(shown),
                        horizontal_spacing=0.12)
    for col, (name, values) in enumerate(shown.items(), start=1):
        fig.add_trace(go.Scatter(x=strengths, y=values, mode="lines+markers", name=name,
                                 line=dict(color="#0072B2"), showlegend=False,
                                 hovertemplate="strength %{x:.2f}: %{y:.3f}<extra></extra>"),
                      row=1, col=col)
        if name.lower().startswith("p(") or "male" in name.lower():
            fig.update_yaxes(range=[-0.02, 1.02], row=1, col=col)
        elif np.ptp(values) < min_span:
            # A flat curve should look flat, not like noise blown up to fill the panel.
            middle = float(np.mean(values))
            fig.update_yaxes(range=[middle - min_span / 2, middle + min_span / 2], row=1, col=col)
        fig.update_xaxes(title_text=f"edit strength {attribute}".strip(), row=1, col=col)
        if current is not None:
            fig.add_vline(x=float(current), line=dict(color="#E69F00", dash="dot"), row=1, col=col)
    return _layout(fig, height=300, margin=dict(l=40, r=20, t=40, b=40), plot_bgcolor="white")


def score_distributions_figure(real, synthetic, kind: str) -> go.Figure:
    """Overlaid histograms of a classifier's output on real vs synthetic brains."""
    real = np.asarray(real, dtype=float)
    synthetic = np.asarray(synthetic, dtype=float)
    label = "P(male)" if kind == "sex" else "predicted age"
    fig = go.Figure()
    if kind == "sex":
        bins = dict(start=0.0, end=1.0, size=0.05)
    else:
        # Shared bins (at least a year wide in total) so both sets line up and a set of
        # identical predictions still shows as a bar.
        everything = np.concatenate([real, synthetic])
        low, high = float(np.min(everything)), float(np.max(everything))
        middle, span = (low + high) / 2, max(high - low, 1.0)
        size = span / 20
        bins = dict(start=middle - span / 2 - size, end=middle + span / 2 + size, size=size)
    for name, values, colour in (("held-out real", real, REAL_COLOUR),
                                 ("GAN samples", synthetic, SYNTHETIC_COLOUR)):
        fig.add_trace(go.Histogram(x=values, name=f"{name} (n={len(values)})", xbins=bins,
                                   histnorm="probability", opacity=0.6, marker_color=colour))
    _layout(fig, barmode="overlay", height=320, xaxis_title=label, yaxis_title="fraction",
            plot_bgcolor="white")
    if kind == "sex":
        fig.add_vline(x=0.5, line=dict(color="#666", dash="dot"))
    return fig


def fraction_bars_figure(values: Mapping[str, float], title: str = "male fraction",
                         percent: bool = True) -> go.Figure:
    """Bars of a few named numbers (e.g. male fraction of real truth / real predicted / samples)."""
    names = list(values)
    numbers = [float(values[n]) for n in names]
    colours = [SYNTHETIC_COLOUR if "sample" in n.lower() or "synthetic" in n.lower() else REAL_COLOUR
               for n in names]
    text = [f"{v:.0%}" if percent else f"{v:.1f}" for v in numbers]
    fig = go.Figure(go.Bar(x=names, y=numbers, marker_color=colours, text=text,
                           textposition="outside"))
    _layout(fig, height=320, yaxis_title=title, plot_bgcolor="white", showlegend=False)
    if percent:
        fig.update_yaxes(range=[0, 1.1], tickformat=".0%")
    return fig


def confusion_matrix_figure(matrix, labels: Sequence[str], title: str | None = None) -> go.Figure:
    """Counts of true (rows) vs predicted (columns) classes, numbers written in each cell."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(labels):
        raise BrainlabInputError(
            f"confusion matrix must be square with one row per label ({len(labels)}); "
            f"found shape {matrix.shape}")
    fig = go.Figure(go.Heatmap(z=matrix, x=list(labels), y=list(labels), colorscale=SEQUENTIAL_SCALE,
                               text=matrix, texttemplate="%{text}", showscale=False,
                               hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    _layout(fig, height=320, xaxis_title="predicted", yaxis_title="true",
            title=dict(text=title) if title else None, plot_bgcolor="white")
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return fig


def calibration_figure(points: Mapping[str, np.ndarray], kind: str = "sex") -> go.Figure:
    """Reliability diagram (sex: fraction male vs mean P(male)) or, for age, mean predicted
    vs mean true age per bin; the diagonal is perfect calibration."""
    fig = go.Figure()
    if kind == "sex":
        x, y = points["mean_predicted"], points["fraction_positive"]
        low, high = 0.0, 1.0
        x_title, y_title = "mean P(male) in bin", "fraction male in bin"
    else:
        x, y = points["mean_true"], points["mean_predicted"]
        low = float(min(np.min(x), np.min(y)))
        high = float(max(np.max(x), np.max(y)))
        x_title, y_title = "mean true age in bin", "mean predicted age in bin"
    counts = np.asarray(points["count"])
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="perfect",
                             line=dict(color="#999", dash="dash")))
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="held-out real",
                             marker=dict(size=6 + 14 * counts / max(counts.max(), 1), color=REAL_COLOUR),
                             customdata=counts,
                             hovertemplate="%{x:.2f} → %{y:.2f} (n=%{customdata})<extra></extra>"))
    return _layout(fig, height=320, xaxis_title=x_title, yaxis_title=y_title, plot_bgcolor="white")


def memorisation_figure(generated_distances, heldout_distances, threshold: float) -> go.Figure:
    """Nearest-training-brain distances of samples vs held-out real brains, with the
    suspected-copy threshold (samples left of it sit closer than almost any new real brain)."""
    sets = [("held-out real", np.asarray(heldout_distances, dtype=float), REAL_COLOUR),
            ("GAN samples", np.asarray(generated_distances, dtype=float), SYNTHETIC_COLOUR)]
    # Shared bins over both sets (and the threshold), so a set of identical distances
    # still gets a visible bar and both histograms line up.
    everything = np.concatenate([values for _, values, _ in sets] + [[float(threshold)]])
    low, high = float(np.min(everything)), float(np.max(everything))
    width = max(high - low, 1e-9) / 30
    bins = dict(start=low - width, end=high + width, size=width)
    fig = go.Figure()
    for name, values, colour in sets:
        fig.add_trace(go.Histogram(x=values, name=f"{name} (n={len(values)})", opacity=0.6,
                                   histnorm="probability", marker_color=colour, xbins=bins))
    fig.add_vline(x=float(threshold), line=dict(color="#E69F00", dash="dash"),
                  annotation_text="copy threshold", annotation_position="top")
    return _layout(fig, barmode="overlay", height=320, plot_bgcolor="white",
                   xaxis_title="RMS distance to nearest training brain", yaxis_title="fraction")

