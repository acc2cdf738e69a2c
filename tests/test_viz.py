"""Figure builders in brainlab.viz: shapes, orientation, hover, colour ranges, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from brainlab.data.grid import mni_affine, voxel_to_mm
from brainlab.errors import BrainlabInputError
from brainlab.viz import (
    age_histogram, difference_figure, feature_vs_age, plane_slice, sex_by_age_bin,
    sex_by_age_bin_counts, triplanar_figure, triplanar_grid,
)
from brainlab.viz.style import SEX_COLOURS, symmetric_limit

SHAPE = (12, 14, 16)  # unequal on purpose: transposed axes change the shapes


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(0).uniform(0.0, 0.5, SHAPE).astype(np.float32)


@pytest.fixture
def affine() -> np.ndarray:
    return mni_affine(SHAPE)


def heatmaps(fig: go.Figure) -> list[go.Heatmap]:
    return [trace for trace in fig.data if isinstance(trace, go.Heatmap)]


def test_triplanar_has_three_heatmaps_with_display_shapes(volume, affine):
    fig = triplanar_figure(volume, affine, cursor=(3, 4, 5), value_range=(0.0, 1.0))
    maps = heatmaps(fig)
    assert [m.name.split()[-1] for m in maps] == ["axial", "coronal", "sagittal"]
    # Rows are the vertical axis: axial (y, x), coronal (z, x), sagittal (z, y).
    assert [np.asarray(m.z).shape for m in maps] == [(14, 12), (16, 12), (16, 14)]
    assert [len(m.x) for m in maps] == [12, 12, 14]
    assert [len(m.y) for m in maps] == [14, 16, 16]


@pytest.mark.parametrize("plane, expected", [
    ("axial", lambda v, c: v[:, :, c[2]].T),
    ("coronal", lambda v, c: v[:, c[1], :].T),
    ("sagittal", lambda v, c: v[c[0], :, :].T),
])
def test_each_plane_shows_the_slice_through_the_cursor(volume, affine, plane, expected):
    cursor = (2, 9, 13)
    fig = triplanar_figure(volume, affine, cursor=cursor)
    trace = next(m for m in heatmaps(fig) if m.name.endswith(plane))
    np.testing.assert_array_equal(np.asarray(trace.z), expected(volume, cursor))
    fixed_axis = {"sagittal": 0, "coronal": 1, "axial": 2}[plane]
    np.testing.assert_array_equal(plane_slice(volume, plane, cursor[fixed_axis]),
                                  expected(volume, cursor))


def test_orientation_left_anterior_superior_voxel_lands_where_expected(affine):
    volume = np.zeros(SHAPE, np.float32)
    voxel = (1, 12, 14)  # left (low x), anterior (high y), superior (high z)
    volume[voxel] = 1.0
    fig = triplanar_figure(volume, affine, cursor=voxel)
    axial, coronal, sagittal = heatmaps(fig)
    x_mm, y_mm, z_mm = voxel_to_mm(affine, voxel)
    for trace, (horizontal, vertical) in ((axial, (x_mm, y_mm)), (coronal, (x_mm, z_mm)),
                                          (sagittal, (y_mm, z_mm))):
        row, col = np.unravel_index(np.argmax(np.asarray(trace.z)), np.asarray(trace.z).shape)
        assert trace.x[col] == pytest.approx(horizontal)
        assert trace.y[row] == pytest.approx(vertical)
    # Coordinates increase left->right and bottom->top, and no axis is flipped, so
    # left is on the left, anterior (axial) and superior (coronal/sagittal) are up.
    for trace in (axial, coronal, sagittal):
        assert np.all(np.diff(trace.x) > 0) and np.all(np.diff(trace.y) > 0)
    for axis in ("yaxis", "yaxis2", "yaxis3", "xaxis", "xaxis2", "xaxis3"):
        assert fig.layout[axis].autorange in (None, True)


def test_equal_aspect_in_millimetres(volume):
    affine = np.diag([2.0, 3.0, 1.5, 1.0])  # anisotropic voxels
    fig = triplanar_figure(volume, affine)
    for n in ("", "2", "3"):
        assert fig.layout[f"xaxis{n}"].scaleanchor == f"y{n}"
        assert fig.layout[f"xaxis{n}"].scaleratio == 1
    axial = heatmaps(fig)[0]
    assert axial.x[1] - axial.x[0] == pytest.approx(2.0)
    assert axial.y[1] - axial.y[0] == pytest.approx(3.0)


def test_hover_shows_value_and_mm_coordinates(volume, affine):
    cursor = (3, 4, 5)
    fig = triplanar_figure(volume, affine, cursor=cursor)
    axial = heatmaps(fig)[0]
    x_mm, y_mm, z_mm = voxel_to_mm(affine, cursor)
    # Axial: x and y are the pixel's own (the heatmap axes are in mm), z the slice's.
    assert axial.hovertemplate.startswith(f"x %{{x:.1f}} mm, y %{{y:.1f}} mm, z {z_mm:.1f} mm")
    assert "%{z" in axial.hovertemplate
    sagittal = heatmaps(fig)[2]
    assert sagittal.hovertemplate.startswith(f"x {x_mm:.1f} mm, y %{{x:.1f}} mm, z %{{y:.1f}} mm")
    custom = np.asarray(axial.customdata)
    assert custom.shape == (14, 12, 3) and custom.dtype == np.int16
    # Pixel (row j=7, column i=10) of the axial slice at k=5 is voxel (10, 7, 5), and the
    # heatmap's axes put it at that voxel's mm.
    np.testing.assert_array_equal(custom[7, 10], [10, 7, 5])
    np.testing.assert_allclose((axial.x[10], axial.y[7]), voxel_to_mm(affine, (10, 7, 5))[:2])


def test_fixed_value_range_and_crosshair_at_cursor(volume, affine):
    cursor = (3, 4, 5)
    fig = triplanar_figure(volume, affine, cursor=cursor, value_range=(0.0, 2.0))
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 2.0)
    x_mm, y_mm, z_mm = voxel_to_mm(affine, cursor)
    vertical_lines = sorted(s.x0 for s in fig.layout.shapes if s.x0 == s.x1)
    assert vertical_lines == pytest.approx(sorted([x_mm, x_mm, y_mm]))


def test_difference_figure_is_symmetric_and_diverging(volume, affine):
    difference = volume - 0.1
    fig = difference_figure(difference, affine, truth=-volume)
    assert len(heatmaps(fig)) == 6
    for axis in (fig.layout.coloraxis, fig.layout.coloraxis2):
        assert axis.cmin == pytest.approx(-axis.cmax) and axis.cmax > 0
        assert axis.cmid == 0
        assert axis.colorscale[0][1] != axis.colorscale[-1][1]
    assert fig.layout.coloraxis.cmax == pytest.approx(symmetric_limit(difference))
    only_observed = difference_figure(difference, affine, limit=0.3)
    assert len(heatmaps(only_observed)) == 3
    assert only_observed.layout.coloraxis.cmax == pytest.approx(0.3)


def test_symmetric_limit_ignores_nan_and_is_never_zero():
    assert symmetric_limit(np.zeros(5)) > 0
    assert symmetric_limit([np.nan, -2.0, 1.0], quantile=1.0) == pytest.approx(2.0)


@pytest.mark.parametrize("call, message", [
    (lambda v, a: triplanar_figure(v[None], a), "expected a 3D volume"),
    (lambda v, a: triplanar_figure(v, a, cursor=(0, 0, 16)), "outside the volume"),
    (lambda v, a: triplanar_figure(v, a, cursor=(0, 0)), "3 voxel indices"),
    (lambda v, a: triplanar_figure(v, np.eye(3)), "4x4"),
    (lambda v, a: triplanar_figure(v, np.diag([-2.0, 2.0, 2.0, 1.0])), "axis-aligned RAS"),
    (lambda v, a: triplanar_grid({"a": v, "b": v[:-1]}, a), "expected \\(12, 14, 16\\)"),
    (lambda v, a: triplanar_grid({}, a), "at least one volume"),
    (lambda v, a: plane_slice(v, "oblique", 0), "plane must be one of"),
])
def test_bad_inputs_raise_clear_errors(volume, affine, call, message):
    with pytest.raises(BrainlabInputError, match=message):
        call(volume, affine)


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 40
    sex = np.where(np.arange(n) % 3 == 0, "M", "F")
    age = rng.uniform(22, 36, n)
    return pd.DataFrame({
        "subject_id": [f"sub-{i:03d}" for i in range(n)], "sex": sex, "age": age,
        "age_bin": np.digitize(age, [26, 31, 36]),
        "icv": 1500 + 200 * (sex == "M") + rng.normal(0, 50, n),
    })


def test_age_histogram_one_trace_per_sex_with_all_subjects(table):
    fig = age_histogram(table)
    assert [t.marker.color for t in fig.data] == [SEX_COLOURS["F"], SEX_COLOURS["M"]]
    assert [len(t.x) for t in fig.data] == [(table.sex == "F").sum(), (table.sex == "M").sum()]


def test_age_histogram_falls_back_to_bins_without_ages(table):
    fig = age_histogram(table.assign(age=np.nan), ["22-25", "26-30", "31-35", "36+"])
    assert all(isinstance(t, go.Bar) for t in fig.data)
    assert sum(sum(t.y) for t in fig.data) == len(table)


def test_sex_by_age_bin_counts_match_the_table_including_empty_bins(table):
    labels = ["22-25", "26-30", "31-35", "36+", "unused"]
    counts = sex_by_age_bin_counts(table, labels)
    assert list(counts.columns) == labels and list(counts.index) == ["female", "male"]
    expected = pd.crosstab(table.sex, table.age_bin)
    assert counts.loc["male", "26-30"] == expected.loc["M", 1]
    assert counts["unused"].tolist() == [0, 0]
    assert int(counts.to_numpy().sum()) == len(table)
    fig = sex_by_age_bin(table, labels)
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), counts.to_numpy())


def test_feature_vs_age_colours_by_sex_and_overlays_true_curves(table):
    ages = np.linspace(22, 36, 5)
    fig = feature_vs_age(table, "icv", true_curves={"F": (ages, ages * 0 + 1500),
                                                    "M": (ages, ages * 0 + 1700)})
    markers = [t for t in fig.data if t.mode == "markers"]
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(markers) == 2 and len(lines) == 2
    assert sum(len(t.x) for t in markers) == len(table)
    assert all(t.line.dash == "dash" for t in lines)
    males = markers[1]
    assert set(np.asarray(males.customdata)[:, 0]) == set(table.subject_id[table.sex == "M"])


def test_feature_vs_age_uses_bins_when_ages_are_missing(table):
    fig = feature_vs_age(table.assign(age=np.nan), "icv", bin_labels=["22-25", "26-30", "31-35", "36+"])
    assert list(fig.layout.xaxis.ticktext)[0] == "22-25"


@pytest.mark.parametrize("call, message", [
    (lambda t: feature_vs_age(t, "nope"), "missing columns \\['nope'\\]"),
    (lambda t: feature_vs_age(t.assign(icv="x"), "icv"), "no numeric values"),
    (lambda t: feature_vs_age(t, "icv", true_curves={"X": ([1], [1])}), "'F' or 'M'"),
    (lambda t: age_histogram(t.drop(columns="age")), "missing columns \\['age'\\]"),
])
def test_cohort_plot_errors(table, call, message):
    with pytest.raises(BrainlabInputError, match=message):
        call(table)


def test_triplanar_grid_lays_out_subplots_as_make_subplots_does(volume, affine):
    """The figure is assembled as one dict; its axes and plane titles are make_subplots'."""
    from plotly.subplots import make_subplots

    fig = triplanar_grid({"a": volume, "b": volume + 1.0}, affine, cursor=(2, 3, 4))
    layout = fig.layout.to_plotly_json()
    widths = [fig.layout[f"xaxis{s}"].domain[1] - fig.layout[f"xaxis{s}"].domain[0]
              for s in ("", "2", "3")]
    reference = make_subplots(rows=2, cols=3, column_widths=widths, horizontal_spacing=0.03,
                              vertical_spacing=0.08).layout
    for suffix in ("", "2", "3", "4", "5", "6"):
        for axis in ("xaxis", "yaxis"):
            assert layout[f"{axis}{suffix}"]["anchor"] == reference[f"{axis}{suffix}"].anchor
            np.testing.assert_allclose(layout[f"{axis}{suffix}"]["domain"],
                                       reference[f"{axis}{suffix}"].domain, atol=1e-9)
    titles = [a for a in layout["annotations"] if a.get("xref") == "paper"]
    assert [t["text"].split()[0] for t in titles] == ["axial", "coronal", "sagittal"]
    for title, suffix in zip(titles, ("", "2", "3")):
        assert title["x"] == pytest.approx(sum(layout[f"xaxis{suffix}"]["domain"]) / 2)
        assert title["y"] == pytest.approx(layout["yaxis"]["domain"][1])
    assert layout["yaxis"]["title"]["text"] == "a" and layout["yaxis4"]["title"]["text"] == "b"
