"""Tri-planar views of 3D volumes as plotly figures (pure: arrays in, ``go.Figure`` out).

Volumes are indexed ``volume[i, j, k]`` on an axis-aligned RAS grid: i runs left ->
right (x), j posterior -> anterior (y), k inferior -> superior (z), and ``affine``
maps voxel indices to MNI millimetres. Slices are drawn in neurological convention
(subject's left on the left), anterior up in the axial view and superior up in the
coronal and sagittal views, with one millimetre the same length on both axes.
"""

from __future__ import annotations

import functools
import json
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from brainlab.errors import BrainlabInputError
from brainlab.viz.style import (
    DIVERGING_SCALE, INTENSITY_SCALE, LAYOUT_DEFAULTS, symmetric_limit,
)

PLANES = ("axial", "coronal", "sagittal")
# For each plane: the voxel axis held fixed, then the horizontal and vertical axes.
_PLANE_AXES = {"axial": (2, 0, 1), "coronal": (1, 0, 2), "sagittal": (0, 1, 2)}
_AXIS_NAMES = ("x", "y", "z")
# Letters at the (low, high) ends of the horizontal axis of each plane.
_EDGE_LETTERS = {"axial": ("L", "R"), "coronal": ("L", "R"), "sagittal": ("P", "A")}
_CROSSHAIR = dict(color="rgba(255, 214, 0, 0.75)", width=1)

def _hover_template(plane: str, fixed_mm: float) -> str:
    """Value, MNI mm and voxel of the pixel under the mouse: the two in-plane mm come
    from the heatmap's own x/y, the slice's from ``fixed_mm``, the voxel from customdata."""
    fixed, horizontal, vertical = _PLANE_AXES[plane]
    mm = {fixed: f"{fixed_mm:.1f}", horizontal: "%{x:.1f}", vertical: "%{y:.1f}"}
    return (", ".join(f"{_AXIS_NAMES[a]} {mm[a]} mm" for a in range(3))
            + "<br>voxel (%{customdata[0]}, %{customdata[1]}, %{customdata[2]})"
            "<br>%{meta}: %{z:.3f}<extra></extra>")


def grid_geometry(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(origin_mm, spacing_mm) of an axis-aligned RAS affine; raises otherwise."""
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4):
        raise BrainlabInputError(f"affine must be 4x4; found shape {affine.shape}")
    linear = affine[:3, :3]
    spacing = np.diag(linear).copy()
    if not np.allclose(linear, np.diag(spacing)) or np.any(spacing <= 0):
        raise BrainlabInputError(
            "tri-planar views need an axis-aligned RAS affine (positive diagonal); "
            f"found linear part {np.round(linear, 3).tolist()}"
        )
    return affine[:3, 3].copy(), spacing


def _check_volume(volume, where: str) -> np.ndarray:
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise BrainlabInputError(f"{where}: expected a 3D volume (D, H, W); found shape {volume.shape}")
    return volume


def _check_cursor(cursor, shape) -> tuple[int, int, int]:
    if cursor is None:
        return tuple(int(n // 2) for n in shape)
    if len(cursor) != 3:
        raise BrainlabInputError(f"cursor must be 3 voxel indices (i, j, k); found {cursor!r}")
    cursor = tuple(int(c) for c in cursor)
    for axis, (c, n) in enumerate(zip(cursor, shape)):
        if not 0 <= c < n:
            raise BrainlabInputError(
                f"cursor index {c} on axis {'ijk'[axis]} is outside the volume of shape {tuple(shape)}"
            )
    return cursor


def plane_slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The 2D slice of ``volume`` at ``index`` through ``plane``, ready for display.

    Rows run along the vertical axis (bottom row first: posterior for axial, inferior
    for coronal/sagittal), columns along the horizontal axis. Shapes for a volume of
    shape (D, H, W): axial (H, D), coronal (W, D), sagittal (W, H).
    """
    if plane not in _PLANE_AXES:
        raise BrainlabInputError(f"plane must be one of {PLANES}; found {plane!r}")
    fixed = _PLANE_AXES[plane][0]
    return np.take(volume, index, axis=fixed).T


def _axis_mm(origin, spacing, axis: int, n: int) -> np.ndarray:
    return origin[axis] + spacing[axis] * np.arange(n)


def _plane_customdata(shape, plane: str, index: int) -> np.ndarray:
    """(rows, cols, 3) int16: voxel i, j, k of every displayed pixel.

    Small integers on purpose: the figure goes to the browser on every slider move,
    and per-pixel float64 mm coordinates made up most of its 0.8 MB.
    """
    fixed, horizontal, vertical = _PLANE_AXES[plane]
    rows, cols = shape[vertical], shape[horizontal]
    voxel = np.empty((rows, cols, 3), dtype=np.int16)
    voxel[..., horizontal] = np.arange(cols)[None, :]
    voxel[..., vertical] = np.arange(rows)[:, None]
    voxel[..., fixed] = index
    return voxel


def _axis_suffix(row: int, col: int) -> str:
    """plotly's axis name suffix ('' for the first subplot) in a 3-column grid."""
    n = (row - 1) * 3 + col
    return "" if n == 1 else str(n)


@functools.lru_cache(maxsize=32)
def _subplot_axis_domains(rows: int, widths: tuple[float, ...], vertical_spacing: float) -> str:
    """make_subplots' axes (anchors and domains) of a rows x 3 grid, as JSON."""
    figure = make_subplots(rows=rows, cols=3, column_widths=list(widths), horizontal_spacing=0.03,
                           vertical_spacing=vertical_spacing)
    axes = {name: value for name, value in figure.layout.to_plotly_json().items()
            if name.startswith(("xaxis", "yaxis"))}
    return json.dumps(axes)


def _subplot_axes(rows: int, widths: tuple[float, ...], vertical_spacing: float) -> dict:
    """A fresh copy of the grid's axis layout (computed once per geometry)."""
    return json.loads(_subplot_axis_domains(rows, widths, vertical_spacing))


def triplanar_grid(volumes: Mapping[str, np.ndarray], affine: np.ndarray,
                   cursor: Sequence[int] | None = None,
                   value_range: tuple[float, float] | None = None,
                   colorscale: str = INTENSITY_SCALE, symmetric: bool = False,
                   row_ranges: Sequence[tuple[float, float]] | None = None,
                   value_name: str = "intensity", title: str | None = None,
                   row_height: int = 300, crosshair: bool = True) -> go.Figure:
    """One row of axial / coronal / sagittal heatmaps per named volume.

    ``volumes`` maps a row label to a (D, H, W) array on the grid of ``affine``.
    ``cursor`` (i, j, k) picks the slices (centre by default) and is drawn as a
    crosshair. Colour range: ``row_ranges`` per row, else ``value_range`` for all
    rows, else per row from the data (symmetric around 0 when ``symmetric``, for
    difference maps). Hover shows the value and the MNI mm coordinates.
    """
    if not volumes:
        raise BrainlabInputError("triplanar_grid needs at least one volume; found none")
    labels = list(volumes)
    arrays = [_check_volume(volumes[name], f"volume {name!r}") for name in labels]
    shape = arrays[0].shape
    for name, array in zip(labels, arrays):
        if array.shape != shape:
            raise BrainlabInputError(
                f"volume {name!r} has shape {array.shape}; expected {shape} like {labels[0]!r}"
            )
    if row_ranges is not None and len(row_ranges) != len(arrays):
        raise BrainlabInputError(
            f"row_ranges has {len(row_ranges)} entries; expected one per volume ({len(arrays)})"
        )
    origin, spacing = grid_geometry(affine)
    cursor = _check_cursor(cursor, shape)
    cursor_mm = origin + spacing * np.asarray(cursor)
    extent = spacing * np.asarray(shape)
    # Column widths follow the physical width of each plane so the aspect stays true.
    widths = [extent[_PLANE_AXES[p][1]] for p in PLANES]

    # Plane and slice position above each column; the row's label goes on its left axis.
    titles = [f"{plane} {_AXIS_NAMES[_PLANE_AXES[plane][0]]} = {cursor_mm[_PLANE_AXES[plane][0]]:.0f} mm"
              for plane in PLANES]
    # The figure is assembled as one dict and validated once: plotly's update_layout on
    # a make_subplots figure re-validated every axis, shape and annotation (6x slower).
    layout = _subplot_axes(len(labels), tuple(float(w) for w in widths),
                           min(0.08, 0.3 / max(1, len(labels))))
    annotations = [dict(font=dict(size=16), showarrow=False, text=text,
                        x=sum(layout[f"xaxis{_axis_suffix(1, col)}"]["domain"]) / 2,
                        xanchor="center", xref="paper", y=layout["yaxis"]["domain"][1],
                        yanchor="bottom", yref="paper")
                   for col, text in enumerate(titles, start=1)]
    shapes = []
    traces = []
    customdata = {p: _plane_customdata(shape, p, cursor[_PLANE_AXES[p][0]]) for p in PLANES}
    hover = {p: _hover_template(p, cursor_mm[_PLANE_AXES[p][0]]) for p in PLANES}

    for row, (name, array) in enumerate(zip(labels, arrays), start=1):
        if row_ranges is not None:
            low, high = row_ranges[row - 1]
        elif value_range is not None:
            low, high = value_range
        elif symmetric:
            limit = symmetric_limit(array)
            low, high = -limit, limit
        else:
            finite = array[np.isfinite(array)]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            if high <= low:
                high = low + 1e-6
        axis_name = "coloraxis" if row == 1 else f"coloraxis{row}"
        for col, plane in enumerate(PLANES, start=1):
            fixed, horizontal, vertical = _PLANE_AXES[plane]
            suffix = _axis_suffix(row, col)
            traces.append(dict(
                type="heatmap", z=plane_slice(array, plane, cursor[fixed]),
                x=_axis_mm(origin, spacing, horizontal, shape[horizontal]),
                y=_axis_mm(origin, spacing, vertical, shape[vertical]),
                customdata=customdata[plane], hovertemplate=hover[plane], meta=value_name,
                coloraxis=axis_name, name=f"{name} {plane}", xaxis=f"x{suffix}", yaxis=f"y{suffix}",
            ))
            if crosshair:
                x_lo = origin[horizontal]
                x_hi = x_lo + spacing[horizontal] * (shape[horizontal] - 1)
                y_lo = origin[vertical]
                y_hi = y_lo + spacing[vertical] * (shape[vertical] - 1)
                line = dict(type="line", xref=f"x{suffix}", yref=f"y{suffix}", line=_CROSSHAIR)
                shapes.append(dict(line, x0=cursor_mm[horizontal], x1=cursor_mm[horizontal],
                                   y0=y_lo, y1=y_hi))
                shapes.append(dict(line, x0=x_lo, x1=x_hi, y0=cursor_mm[vertical],
                                   y1=cursor_mm[vertical]))
            for letter, side in zip(_EDGE_LETTERS[plane], (0.0, 1.0)):
                annotations.append(dict(text=letter, showarrow=False, font=dict(size=11, color="#bbb"),
                                        xref=f"x{suffix} domain", yref=f"y{suffix} domain", x=side,
                                        y=0.5, xanchor="left" if side == 0 else "right"))
            # One mm is one mm: anchor each subplot's x scale to its y scale.
            layout[f"xaxis{suffix}"].update(scaleanchor=f"y{suffix}", scaleratio=1,
                                            constrain="domain", showticklabels=False, ticks="",
                                            showgrid=False, zeroline=False)
            layout[f"yaxis{suffix}"].update(constrain="domain", showticklabels=False, ticks="",
                                            showgrid=False, zeroline=False)
            if col == 1 and name:
                layout[f"yaxis{suffix}"]["title"] = dict(text=name, font=dict(size=12))
        # A colour bar per row, placed beside that row.
        domain = layout[f"yaxis{_axis_suffix(row, 1)}"]["domain"]
        coloraxis = dict(colorscale=colorscale, cmin=low, cmax=high,
                         colorbar=dict(title=dict(text=value_name, side="right"),
                                       y=(domain[0] + domain[1]) / 2, len=(domain[1] - domain[0]),
                                       yanchor="middle", thickness=12))
        if symmetric:
            coloraxis["cmid"] = 0.0
        layout[axis_name] = coloraxis

    # No plotly template here (copying one costs more than the rest of the figure);
    # the app's theme styles the page, the backgrounds below are set explicitly.
    layout.update(
        shapes=shapes, annotations=annotations, font=LAYOUT_DEFAULTS["font"],
        height=row_height * len(labels) + (60 if title else 30),
        margin=dict(l=10, r=10, t=60 if title else 30, b=10),
        paper_bgcolor="white",
        plot_bgcolor="black" if colorscale == INTENSITY_SCALE else "white")
    if title:
        layout["title"] = dict(text=title)
    fig = go.Figure(data=traces, layout=layout)
    return fig


def triplanar_figure(volume: np.ndarray, affine: np.ndarray,
                     cursor: Sequence[int] | None = None,
                     value_range: tuple[float, float] | None = None,
                     colorscale: str = INTENSITY_SCALE, title: str | None = None,
                     value_name: str = "intensity", row_height: int = 320) -> go.Figure:
    """Axial, coronal and sagittal slices of one (D, H, W) volume through ``cursor``.

    Returns a figure with exactly three heatmaps (axial, coronal, sagittal), a
    crosshair at the cursor, hover with value and MNI mm coordinates, and the
    colour range fixed to ``value_range`` when given (pass the cohort's range so
    switching subjects does not rescale the colours).
    """
    return triplanar_grid({"": volume}, affine, cursor=cursor, value_range=value_range,
                          colorscale=colorscale, title=title, value_name=value_name,
                          row_height=row_height)


def difference_figure(difference: np.ndarray, affine: np.ndarray,
                      cursor: Sequence[int] | None = None,
                      truth: np.ndarray | None = None,
                      labels: tuple[str, str] = ("observed", "ground truth"),
                      limit: float | None = None, title: str | None = None,
                      value_name: str = "difference", row_height: int = 280) -> go.Figure:
    """A difference map on a diverging scale symmetric around 0, optionally above the truth.

    ``difference`` (and ``truth`` if given) are (D, H, W). Each row gets its own
    symmetric colour range (``limit`` for the observed map if given), because the
    observed difference and a ground-truth effect map can be in different units;
    compare where they are red/blue, not the absolute numbers.
    """
    volumes = {labels[0]: difference}
    observed_limit = limit if limit is not None else symmetric_limit(difference)
    ranges = [(-observed_limit, observed_limit)]
    if truth is not None:
        volumes[labels[1]] = truth
        truth_limit = symmetric_limit(truth)
        ranges.append((-truth_limit, truth_limit))
    return triplanar_grid(volumes, affine, cursor=cursor, colorscale=DIVERGING_SCALE,
                          symmetric=True, row_ranges=ranges, value_name=value_name,
                          title=title, row_height=row_height)
