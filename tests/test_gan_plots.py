"""Figure builders of the GAN lab and Classifiers pages: tiling, frames, checks."""

from __future__ import annotations

import numpy as np
import pytest

from brainlab.data.grid import mni_affine
from brainlab.errors import BrainlabInputError
from brainlab.viz.gan_plots import (
    animation_figure, calibration_figure, confusion_matrix_figure, effectiveness_figure,
    memorisation_figure, mid_slices, mosaic, sample_grid_figure, score_distributions_figure,
    thumbnail_strip_figure,
)

SHAPE = (12, 14, 16)


def stack(n=5):
    return np.stack([np.full(SHAPE, i / 10, np.float32) for i in range(n)])


def test_mid_slices_follow_plane_shapes():
    d, h, w = SHAPE
    assert mid_slices(stack(2), "axial")[0].shape == (h, d)
    assert mid_slices(stack(2), "coronal")[0].shape == (w, d)
    assert mid_slices(stack(2), "sagittal")[0].shape == (w, h)
    with pytest.raises(BrainlabInputError, match="slice 40 is outside the axial axis of length 16"):
        mid_slices(stack(2), "axial", index=40)


def test_mosaic_puts_the_first_tile_top_left():
    tiles = [np.full((2, 3), float(i)) for i in range(3)]
    canvas = mosaic(tiles, columns=2)
    assert canvas.shape == (2 * 2 + 1, 2 * 3 + 1)
    # Heatmaps draw row 0 at the bottom: the first tile sits in the last rows.
    assert canvas[-1, 0] == 0 and canvas[-1, -1] == 1 and canvas[0, 0] == 2
    assert np.isnan(canvas[0, -1]) and np.isnan(canvas[2, 0])


def test_sample_grid_and_strip():
    fig = sample_grid_figure(stack(5), labels=list("abcde"), columns=3, highlight=[0, 1, 0, 0, 0])
    assert len(fig.data) == 1 and [a.text for a in fig.layout.annotations] == list("abcde")
    assert len(fig.layout.shapes) == 1
    # Two-line labels get a band above each slice instead of covering the brain.
    one_line = np.asarray(sample_grid_figure(stack(3), labels=list("abc"), columns=3).data[0].z)
    two_lines = np.asarray(sample_grid_figure(stack(3), labels=["a<br>b"] * 3, columns=3,
                                              tile_px=40).data[0].z)
    assert two_lines.shape[0] > one_line.shape[0] and two_lines.shape[1] == one_line.shape[1]
    band = two_lines[one_line.shape[0]:]
    assert np.all((band == 0) | np.isnan(band))
    strip = thumbnail_strip_figure(stack(4), current=2)
    assert len(strip.layout.shapes) == 1
    with pytest.raises(BrainlabInputError, match="current frame 4 is outside 0..3"):
        thumbnail_strip_figure(stack(4), current=4)
    with pytest.raises(BrainlabInputError, match=r"volumes must be a non-empty stack"):
        sample_grid_figure(np.zeros(SHAPE))


def test_animation_has_one_frame_per_volume():
    fig = animation_figure(stack(6), mni_affine(SHAPE), plane="coronal")
    assert len(fig.frames) == 6 and len(fig.layout.sliders[0].steps) == 6
    assert np.asarray(fig.frames[3].data[0].z)[0, 0] == pytest.approx(0.3)


def test_effectiveness_and_classifier_figures():
    strengths = np.linspace(-1, 1, 5)
    fig = effectiveness_figure(strengths, {"P(male)": strengths / 2 + 0.5, "age": None}, current=0.5)
    assert len(fig.data) == 1
    with pytest.raises(BrainlabInputError, match="at least one series"):
        effectiveness_figure(strengths, {"age": None})
    with pytest.raises(BrainlabInputError, match=r"series 'age' has shape \(3,\); expected \(5,\)"):
        effectiveness_figure(strengths, {"age": np.zeros(3)})
    assert len(score_distributions_figure([0.1, 0.9], [0.5], "sex").data) == 2
    ages = score_distributions_figure([25.0, 31.0, 48.0], [40.0, 40.0], "age")
    assert ages.data[0].xbins.size == ages.data[1].xbins.size == pytest.approx(23.0 / 20)
    assert confusion_matrix_figure([[3, 1], [0, 4]], ["F", "M"]).data[0].z.shape == (2, 2)
    with pytest.raises(BrainlabInputError, match="one row per label"):
        confusion_matrix_figure([[3, 1], [0, 4]], ["F", "M", "X"])
    points = {"mean_predicted": np.array([0.2, 0.8]), "fraction_positive": np.array([0.1, 0.9]),
              "count": np.array([5, 7])}
    assert len(calibration_figure(points, "sex").data) == 2
    age_points = {"mean_true": np.array([25.0, 35.0]), "mean_predicted": np.array([27.0, 33.0]),
                  "count": np.array([4, 4])}
    assert calibration_figure(age_points, "age").layout.xaxis.title.text == "mean true age in bin"
    assert len(memorisation_figure([0.2, 0.3], [0.1, 0.25], 0.12).data) == 2
    # Identical distances (a collapsed GAN) still get a bin of non-zero width.
    same = memorisation_figure([0.05] * 8, [0.1, 0.2], 0.08)
    assert same.data[1].xbins.size > 0 and same.data[1].xbins.start < 0.05


def test_flat_effectiveness_curves_keep_a_minimum_span():
    strengths = np.linspace(-1, 1, 5)
    fig = effectiveness_figure(strengths, {"predicted age": np.full(5, 40.0) + 1e-6 * strengths},
                               min_span=2.0)
    assert tuple(fig.layout.yaxis.range) == pytest.approx((39.0, 41.0))
