"""Figures of a training run (``brainlab.jobs.job_progress``): series in, ``go.Figure`` out.

- ``loss_curves_figure``: every logged loss against the training step (log scale when
  all values are positive, so early and late parts of the curve are both readable);
- ``validation_figure``: the validation metrics recorded at the end of each epoch.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from brainlab.errors import BrainlabInputError
from brainlab.viz.style import apply_layout


def _check_series(name: str, series: dict) -> tuple[np.ndarray, np.ndarray]:
    steps = np.asarray(series.get("step", []), dtype=float)
    values = np.asarray(series.get("value", []), dtype=float)
    if steps.shape != values.shape or steps.ndim != 1:
        raise BrainlabInputError(
            f"loss {name!r} needs as many steps as values; found {len(steps)} steps and "
            f"{len(values)} values")
    return steps, values


def loss_curves_figure(losses: dict, title: str = "Training losses") -> go.Figure:
    """``losses``: ``{name: {"step": [...], "value": [...]}}`` (``job_progress``'s)."""
    fig = go.Figure()
    positive = True
    for name, series in losses.items():
        steps, values = _check_series(name, series)
        finite = values[np.isfinite(values)]
        positive = positive and bool(len(finite)) and bool((finite > 0).all())
        fig.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=str(name)))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="loss", type="log" if losses and positive else "linear")
    return apply_layout(fig, title=title, uirevision="losses", height=320)


def validation_figure(val_metrics: list[dict], metrics=None,
                      title: str = "Validation metrics") -> go.Figure:
    """``val_metrics``: one dict per epoch with ``step``, ``epoch`` and scalar metrics.

    ``metrics``: the names to draw (e.g. the ones a verdict judges); default every scalar
    metric except counts (``n``, ``n_*``).
    """
    names = []
    for row in val_metrics:
        for key, value in row.items():
            if key not in ("step", "epoch", "split", "n") and not key.startswith("n_") \
                    and key not in names and (metrics is None or key in metrics) \
                    and isinstance(value, (int, float)) and not isinstance(value, bool):
                names.append(key)
    epochs = [int(row.get("epoch", n + 1)) for n, row in enumerate(val_metrics)]
    fig = go.Figure()
    for name in names:
        values = [float(row[name]) if isinstance(row.get(name), (int, float)) else None
                  for row in val_metrics]
        fig.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=name))
    fig.update_xaxes(title="epoch", dtick=1 if len(epochs) <= 12 else None)
    fig.update_yaxes(title=names[0] if len(names) == 1 else "value")
    return apply_layout(fig, title=title, uirevision="validation", height=320,
                        showlegend=True)
