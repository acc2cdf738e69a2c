"""Shared look of every brainlab figure: sex colours, colour scales, layout defaults.

Colours come from the Okabe-Ito palette so that F/M stay distinguishable for
colour-blind readers; the diverging scale is symmetric around zero by construction
(callers pass ``zmid=0`` and a symmetric range, see ``symmetric_limit``).
"""

from __future__ import annotations

import numpy as np

SEX_COLOURS = {"F": "#D55E00", "M": "#0072B2"}  # vermillion / blue (Okabe-Ito)
SEX_NAMES = {"F": "female", "M": "male"}
INTENSITY_SCALE = "gray"          # anatomical images
DIVERGING_SCALE = "RdBu_r"        # differences: blue < 0 < red, white at 0
SEQUENTIAL_SCALE = "Viridis"      # counts and other non-negative quantities
TRUTH_DASH = "dash"               # line style for ground-truth curves

LAYOUT_DEFAULTS = dict(
    template="plotly_white",
    margin=dict(l=40, r=20, t=50, b=40),
    font=dict(size=12),
    legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1.0),
)


def apply_layout(fig, **overrides):
    """Apply ``LAYOUT_DEFAULTS`` then ``overrides`` to ``fig``; returns ``fig``."""
    fig.update_layout(**{**LAYOUT_DEFAULTS, **overrides})
    return fig


def symmetric_limit(values, quantile: float = 0.995) -> float:
    """A positive bound L so that [-L, L] covers ``values`` (robust to outliers).

    Uses the ``quantile`` of |values| over finite entries, so a few extreme voxels
    do not wash out the map; never returns 0 (a flat map gets L = 1e-6).
    """
    magnitude = np.abs(np.asarray(values, dtype=float))
    magnitude = magnitude[np.isfinite(magnitude)]
    if magnitude.size == 0:
        return 1e-6
    return float(max(np.quantile(magnitude, quantile), 1e-6))
