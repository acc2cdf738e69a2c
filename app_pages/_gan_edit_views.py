"""The attribute-edit results of GAN lab: brains, the classifiers' curve, the truth check."""

from __future__ import annotations

from typing import Callable

import numpy as np
import streamlit as st

from brainlab.analysis.ageing_sweep import VOXEL_THRESHOLD, brain_volume_cc, changed_voxels
from brainlab.analysis.directions import direction_correlation
from brainlab.viz import difference_figure, triplanar_grid
from brainlab.viz.gan_plots import effectiveness_figure
from app_pages._gan_computations import average_edit


def edit_views(gan, affine, start_volume, edited_volume, strength: float, attribute: str,
               name: str, direction_key: str, curve: Callable[[], dict | None], direction,
               sex_model, age_model, truth) -> None:
    """Start vs edited brain, what the classifiers say over strength, and the difference
    map beside the phantom's true effect (``truth``, or None off the phantom).
    ``curve()``: the edit curve (``derived_results.edit_curve``), or None while it is
    computed in the background (it draws its progress bar); ``direction_key`` names the
    direction in the in-process caches."""
    difference = edited_volume - start_volume
    brain_col, curve_col = st.columns([3, 2])
    with brain_col:
        st.plotly_chart(triplanar_grid({"start": start_volume,
                                        f"edited ({strength:+.2f})": edited_volume},
                                       affine, value_range=(0.0, 1.0), row_height=230),
                        width="stretch", key="edit_brains")
        st.caption("The starting brain and the edited one at the same slices: an age edit "
                   "should widen ventricles and sulci, a sex edit mostly change overall size.")
    with curve_col:
        values = None
        if sex_model is None and age_model is None:
            st.info("Train the sex classifier or the brain-age model to see whether the edit "
                    "changes what they predict.")
        else:
            values = curve()
        if values is not None:
            unit = "age bin" if getattr(age_model, "target", "years") != "years" else "years"
            st.plotly_chart(effectiveness_figure(values["strength"],
                                                 {"P(male)": values["p_male"],
                                                  f"predicted age ({unit})": values["age"]},
                                                 current=strength),
                            width="stretch", key="edit_effectiveness")
            target = "P(male)" if attribute == "sex" else "predicted age"
            st.caption(f"What the classifiers say about the edited brain over edit strength: a "
                       f"working {attribute} edit moves {target} steadily"
                       + (" while P(male) stays flat." if name == "age_given_sex" else "."))
    changed = changed_voxels(edited_volume[None], start_volume)[0]
    start_cc, edited_cc = brain_volume_cc(np.stack([start_volume, edited_volume]), affine)
    st.caption(f"Size of this edit: {changed} voxels change by more than {VOXEL_THRESHOLD} "
               f"and the brain volume goes {start_cc:.0f} → {edited_cc:.0f} cc "
               f"({edited_cc - start_cc:+.1f} cc).")
    largest_change = float(np.abs(difference).max())
    if largest_change < 1e-3:
        st.warning(f"This edit barely changes the brain (largest voxel change "
                   f"{largest_change:.1e} on the 0–1 intensity scale): the generator ignores "
                   "this direction — typical of a collapsed or undertrained GAN (compare its "
                   "sample diversity with the real diversity above).")
    if truth is None or truth.shape != difference.shape:
        st.plotly_chart(difference_figure(difference, affine, labels=("edited − start", "")),
                        width="stretch", key="edit_difference")
        st.caption("The edit's difference map on a diverging scale (red = brighter after the "
                   "edit). Only phantom cohorts have a true effect map to compare with.")
        return
    mask = (np.abs(truth) > 1e-6) | (start_volume > 0.05)
    mean_effect = average_edit(direction_key, strength, gan, direction)
    truth_label = "true sex effect (M − F)" if attribute == "sex" else "true ageing effect"
    st.plotly_chart(difference_figure(difference, affine, truth=truth,
                                      labels=("edited − start", truth_label), row_height=230),
                    width="stretch", key="edit_difference")
    metric_columns = st.columns(2)
    metric_columns[0].metric("Correlation with the true effect (this brain)",
                             f"{direction_correlation(difference, truth, mask=mask):+.2f}")
    metric_columns[1].metric("…averaged over 16 samples",
                             f"{direction_correlation(mean_effect, truth, mask=mask):+.2f}")
    st.caption("The edit's difference map (diverging scale, red = brighter) beside the "
               "phantom's true effect map: a faithful edit has the same red/blue pattern "
               "(correlation near +1 for positive strengths, −1 for negative).")
