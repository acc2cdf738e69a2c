"""Figure builders of GAN Lab (brainlab.viz.live_gan_plots): trace structure and errors."""

from __future__ import annotations

import numpy as np
import pytest

from brainlab.errors import BrainlabInputError
from brainlab.viz import live_gan_plots as plots

RNG = np.random.default_rng(0)
GRID_X, GRID_Y = np.linspace(-3, 3, 7), np.linspace(-2, 2, 5)  # unequal on purpose


def test_the_distribution_view_layers_heatmap_real_and_generated():
    scores = RNG.random((5, 7))
    fig = plots.distribution_figure(RNG.normal(size=(30, 2)), RNG.normal(size=(20, 2)),
                                    GRID_X, GRID_Y, scores, heldout_xy=RNG.normal(size=(8, 2)))
    kinds = [(trace.type, trace.name) for trace in fig.data]
    assert kinds == [("heatmap", "discriminator"), ("scatter", "real"),
                     ("scatter", "held-out real"), ("scatter", "generated")]
    heatmap = fig.data[0]
    np.testing.assert_array_equal(np.asarray(heatmap.z), scores)
    assert (heatmap.zmin, heatmap.zmax) == (0.0, 1.0)  # P(real): colours fixed across updates
    assert len(fig.data[1].x) == 30 and len(fig.data[3].x) == 20
    assert tuple(fig.layout.xaxis.range) == (-3.0, 3.0)


def test_a_critic_heatmap_is_centred_on_its_median():
    scores = np.arange(35, dtype=float).reshape(5, 7) - 3.0
    fig = plots.distribution_figure(np.zeros((3, 2)), np.ones((3, 2)), GRID_X, GRID_Y, scores,
                                    score_kind="critic")
    heatmap = fig.data[0]
    assert heatmap.zmid == pytest.approx(np.median(scores))
    assert heatmap.zmax - heatmap.zmid == pytest.approx(heatmap.zmid - heatmap.zmin)


@pytest.mark.parametrize("call, match", [
    (lambda: plots.distribution_figure(np.zeros((3, 3)), np.zeros((3, 2)), GRID_X, GRID_Y,
                                       np.zeros((5, 7))), r"real_xy must have shape \(N, 2\)"),
    (lambda: plots.distribution_figure(np.zeros((3, 2)), np.zeros((3, 2)), GRID_X, GRID_Y,
                                       np.zeros((7, 5))), r"d_scores must have shape .*\(5, 7\)"),
    (lambda: plots.distribution_figure(np.zeros((3, 2)), np.zeros((3, 2)), GRID_X, GRID_Y,
                                       np.zeros((5, 7)), score_kind="logit"), "score_kind"),
    (lambda: plots.losses_figure([0, 1, 2], [1.0, 2.0], [1.0, 2.0, 3.0]),
     r"D loss must have one value per update \(3\)"),
    (lambda: plots.strip_figure(np.zeros((2, 3, 16, 12))), r"strip must have shape \(B, 3, S, S\)"),
    (lambda: plots.strip_figure(np.zeros((2, 3, 8, 8)), labels=["a"]), "expected 2"),
])
def test_bad_inputs_name_what_was_expected(call, match):
    with pytest.raises(BrainlabInputError, match=match):
        call()


def test_history_figures_have_one_line_per_series():
    updates = [0, 1, 2, 5]
    losses = plots.losses_figure(updates, [1.4, 1.3, 1.2, 1.0], [0.7, 0.8, 0.9, 1.1],
                                 penalty=[0.0, 0.1, 0.1, 0.2])
    assert [t.name for t in losses.data] == ["D loss", "G loss", "penalty (R1 / GP)"]
    assert list(losses.data[1].x) == updates
    accuracy = plots.accuracy_figure(updates, [0.5, 0.6, 0.7, 0.9], [0.4, 0.5, 0.5, 0.8])
    assert [t.name for t in accuracy.data] == ["on real", "on generated"]
    assert tuple(accuracy.layout.yaxis.range) == (-0.02, 1.02)


def test_the_frechet_figure_draws_the_gaussian_and_real_lines():
    fig = plots.frechet_figure([0, 1, 2], [0.66, 0.8, 1.4], gaussian_ratio=0.66)
    assert [t.name for t in fig.data] == ["GAN"]
    lines = sorted(shape.y0 for shape in fig.layout.shapes)
    assert lines == [pytest.approx(0.66), 1.0]
    assert fig.layout.yaxis.type == "log"
    # Labels sit at their lines: on a log axis an annotation's y is the exponent.
    labels = {a.text: a.y for a in fig.layout.annotations}
    assert labels["held-out real = 1"] == 0.0
    assert labels["fitted Gaussian 0.66"] == pytest.approx(np.log10(0.66))


def test_the_strip_is_one_image_with_a_column_per_brain():
    strip = RNG.random((3, 3, 16, 16))
    fig = plots.strip_figure(strip, labels=["a", "b", "c"])
    (image,) = fig.data
    z = np.asarray(image.z, dtype=float)
    assert z.shape == (3 * 18 - 2, 3 * 18 - 2)
    assert list(fig.layout.xaxis.ticktext) == ["a", "b", "c"]
    # The top row of the figure (last row of z, flipped for plotly) is brain 0's axial view.
    np.testing.assert_allclose(z[::-1][:16, :16], np.rot90(strip[0, 0]))
