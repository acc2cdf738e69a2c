"""Plotly figure builders: pure functions, arrays and tables in, ``go.Figure`` out.

- ``slices``: tri-planar views (``triplanar_figure``, ``triplanar_grid``,
  ``difference_figure``).
- ``cohort_plots``: demographics and morphometry (``age_histogram``,
  ``sex_by_age_bin``, ``feature_vs_age``).
- ``style``: shared colours and layout defaults.
"""

from brainlab.viz.cohort_plots import (
    age_histogram, feature_vs_age, sex_by_age_bin, sex_by_age_bin_counts,
)
from brainlab.viz.slices import (
    PLANES, difference_figure, plane_slice, triplanar_figure, triplanar_grid,
)

__all__ = [
    "PLANES", "age_histogram", "difference_figure", "feature_vs_age", "plane_slice",
    "sex_by_age_bin", "sex_by_age_bin_counts", "triplanar_figure", "triplanar_grid",
]
