"""Figures of GAN Lab for brains (``brainlab.live_gan``): arrays in, ``go.Figure`` out.

- ``distribution_figure``: GAN Lab's layered distribution view — the discriminator's
  score as a background heatmap over a 2D PCA plane, real codes and generated codes on top;
- ``losses_figure``, ``accuracy_figure``, ``frechet_figure``: histories over updates
  (the Fréchet with the fitted-Gaussian baseline as a constant line and real = 1);
- ``strip_figure``: decoded brains from fixed z (middle slices), one column per brain.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from brainlab.errors import BrainlabInputError
from brainlab.viz.style import INTENSITY_SCALE, apply_layout

REAL_COLOUR = "#009E73"       # bluish green (Okabe-Ito): real codes
FAKE_COLOUR = "#CC79A7"       # reddish purple: generated codes
HELDOUT_COLOUR = "#56B4E9"    # sky blue: held-out real codes
GAUSSIAN_COLOUR = "#7F7F7F"   # grey: the fitted-Gaussian baseline
SCORE_SCALE = "RdBu"          # D's score: red = looks fake, blue = looks real


def _points(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != 2:
        raise BrainlabInputError(f"{name} must have shape (N, 2); found {values.shape}")
    return values


def _series(values, name: str, length: int) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.shape != (length,):
        raise BrainlabInputError(
            f"{name} must have one value per update ({length}); found shape {values.shape}")
    return values


def distribution_figure(real_xy, fake_xy, grid_x, grid_y, d_scores,
                        score_kind: str = "probability", heldout_xy=None,
                        axis_labels: Sequence[str] = ("PC 1", "PC 2"),
                        title: str | None = None) -> go.Figure:
    """D's score on the plane (``d_scores`` (len(grid_y), len(grid_x))) behind the real
    (``real_xy`` (N, 2)) and generated (``fake_xy`` (M, 2)) codes.

    ``score_kind``: 'probability' (D's P(real), colour range fixed to [0, 1], so the
    colours mean the same every update) or 'critic' (a WGAN critic's raw score).
    """
    real_xy, fake_xy = _points(real_xy, "real_xy"), _points(fake_xy, "fake_xy")
    grid_x, grid_y = np.asarray(grid_x, dtype=float), np.asarray(grid_y, dtype=float)
    d_scores = np.asarray(d_scores, dtype=float)
    if d_scores.shape != (len(grid_y), len(grid_x)):
        raise BrainlabInputError(
            f"d_scores must have shape (len(grid_y), len(grid_x)) = "
            f"({len(grid_y)}, {len(grid_x)}); found {d_scores.shape}")
    if score_kind not in ("probability", "critic"):
        raise BrainlabInputError(
            f"score_kind must be 'probability' or 'critic'; found {score_kind!r}")
    if score_kind == "probability":
        colour_range = dict(zmin=0.0, zmax=1.0, zmid=0.5)
        bar_title = "D: P(real)"
    else:
        finite = d_scores[np.isfinite(d_scores)]
        centre = float(np.median(finite)) if finite.size else 0.0
        spread = float(np.max(np.abs(finite - centre))) if finite.size else 1.0
        colour_range = dict(zmin=centre - spread, zmax=centre + spread, zmid=centre)
        bar_title = "critic score"
    fig = go.Figure()
    fig.add_trace(go.Heatmap(x=grid_x, y=grid_y, z=d_scores, colorscale=SCORE_SCALE,
                             opacity=0.55, name="discriminator", hoverinfo="skip",
                             colorbar=dict(title=bar_title, thickness=12), **colour_range))
    fig.add_trace(go.Scatter(x=real_xy[:, 0], y=real_xy[:, 1], mode="markers", name="real",
                             marker=dict(size=5, color=REAL_COLOUR, opacity=0.7)))
    if heldout_xy is not None:
        heldout_xy = _points(heldout_xy, "heldout_xy")
        fig.add_trace(go.Scatter(x=heldout_xy[:, 0], y=heldout_xy[:, 1], mode="markers",
                                 name="held-out real", visible="legendonly",
                                 marker=dict(size=5, color=HELDOUT_COLOUR, opacity=0.7)))
    fig.add_trace(go.Scatter(x=fake_xy[:, 0], y=fake_xy[:, 1], mode="markers", name="generated",
                             marker=dict(size=5, color=FAKE_COLOUR, opacity=0.8,
                                         line=dict(width=0.5, color="white"))))
    fig.update_xaxes(title=axis_labels[0], range=[grid_x[0], grid_x[-1]])
    fig.update_yaxes(title=axis_labels[1], range=[grid_y[0], grid_y[-1]])
    return apply_layout(fig, title=title or "Real and generated codes over D's decision",
                        uirevision="distribution")


def _history_figure(updates, series: dict, title: str, y_title: str) -> go.Figure:
    updates = np.asarray(updates, dtype=float)
    fig = go.Figure()
    for name, (values, colour) in series.items():
        fig.add_trace(go.Scatter(x=updates, y=_series(values, name, len(updates)),
                                 mode="lines", name=name, line=dict(color=colour)))
    fig.update_xaxes(title="update")
    fig.update_yaxes(title=y_title)
    return apply_layout(fig, title=title, uirevision=title)


def losses_figure(updates, d_loss, g_loss, penalty=None) -> go.Figure:
    """D's and G's adversarial losses per update (and the R1/GP penalty when given)."""
    series = {"D loss": (d_loss, REAL_COLOUR), "G loss": (g_loss, FAKE_COLOUR)}
    if penalty is not None:
        series["penalty (R1 / GP)"] = (penalty, GAUSSIAN_COLOUR)
    return _history_figure(updates, series, "Losses", "loss")


def accuracy_figure(updates, real_accuracy, fake_accuracy) -> go.Figure:
    """D's accuracy on the real and on the generated codes of each minibatch; 0.5 = chance."""
    fig = _history_figure(updates, {"on real": (real_accuracy, REAL_COLOUR),
                                    "on generated": (fake_accuracy, FAKE_COLOUR)},
                          "Discriminator accuracy", "accuracy")
    fig.add_hline(y=0.5, line=dict(color=GAUSSIAN_COLOUR, dash="dot"),
                  annotation_text="chance", annotation_position="bottom right")
    fig.update_yaxes(range=[-0.02, 1.02])
    return fig


def frechet_figure(updates, frechet_ratio, gaussian_ratio: float) -> go.Figure:
    """Normalised Fréchet (generated vs train over held-out vs train) per update, with the
    fitted Gaussian as a constant line and held-out real codes at 1 (log scale)."""
    updates = np.asarray(updates, dtype=float)
    ratio = _series(frechet_ratio, "frechet_ratio", len(updates))
    fig = go.Figure(go.Scatter(x=updates, y=ratio, mode="lines", name="GAN",
                               line=dict(color=FAKE_COLOUR)))
    # On a log axis plotly places a shape's annotation at y = the value's exponent, so
    # the labels are separate annotations at log10 of their line.
    for value, colour, dash, label, shift in (
            (float(gaussian_ratio), GAUSSIAN_COLOUR, "dash",
             f"fitted Gaussian {float(gaussian_ratio):.2f}", -8),
            (1.0, HELDOUT_COLOUR, "dot", "held-out real = 1", 8)):
        fig.add_hline(y=value, line=dict(color=colour, dash=dash))
        if value > 0:
            fig.add_annotation(x=1.0, xref="paper", xanchor="right", y=float(np.log10(value)),
                               yref="y", yshift=shift, text=label, showarrow=False,
                               font=dict(size=10, color=colour))
    fig.update_xaxes(title="update")
    fig.update_yaxes(title="Fréchet / held-out Fréchet", type="log")
    return apply_layout(fig, title="Normalised Fréchet distance (codes)",
                        uirevision="frechet")


def strip_figure(strip, labels: Sequence[str] | None = None, gap: int = 2) -> go.Figure:
    """Decoded brains from fixed z: ``strip`` (B, 3, S, S) middle slices (axial, coronal,
    sagittal, as ``live_gan.middle_slices`` returns) -> one grey image, a column per brain."""
    strip = np.asarray(strip, dtype=float)
    if strip.ndim != 4 or strip.shape[1] != 3 or strip.shape[2] != strip.shape[3]:
        raise BrainlabInputError(f"strip must have shape (B, 3, S, S); found {strip.shape}")
    n, _, side, _ = strip.shape
    tile = side + gap
    mosaic = np.full((3 * tile - gap, n * tile - gap), np.nan)
    for column in range(n):
        for row in range(3):
            view = np.rot90(strip[column, row])  # superior / anterior up
            mosaic[row * tile:row * tile + side, column * tile:column * tile + side] = view
    fig = go.Figure(go.Heatmap(z=mosaic[::-1], colorscale=INTENSITY_SCALE, zmin=0.0, zmax=1.0,
                               showscale=False, hoverinfo="skip"))
    labels = list(labels) if labels is not None else [f"z{index}" for index in range(n)]
    if len(labels) != n:
        raise BrainlabInputError(f"labels: expected {n} (one per brain); found {len(labels)}")
    fig.update_xaxes(tickvals=[column * tile + side / 2 for column in range(n)],
                     ticktext=labels, showgrid=False, zeroline=False)
    fig.update_yaxes(tickvals=[(2 - row) * tile + side / 2 for row in range(3)],
                     ticktext=["axial", "coronal", "sagittal"], showgrid=False, zeroline=False,
                     scaleanchor="x")
    return apply_layout(fig, title="Decoded brains from fixed z",
                        margin=dict(l=70, r=10, t=40, b=30))
