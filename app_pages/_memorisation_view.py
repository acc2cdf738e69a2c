"""Did the GAN copy its training brains? The memorisation check of the Classifiers page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from brainlab.viz.gan_plots import memorisation_figure


def memorisation_view(memo: dict | None, slots) -> None:
    """Two metrics in ``slots`` (two columns), the distance histogram and the nearest-subject
    table; without a check (``memo`` None) one sentence saying why."""
    if memo is None:
        slots[0].caption("No memorisation check: the GAN was not trained on this cohort, so "
                         "its samples cannot be copies of these brains.")
    else:
        slots[0].metric("Suspected copies", f"{memo['n_suspected']} of {memo['n_generated']}",
                        help=f"Samples closer to a training brain than {100 - memo['percentile']:.0f}% "
                             "of held-out real brains are; about 5% is expected by chance.")
        slots[1].metric("Median distance ratio", f"{memo['median_ratio']:.2f}",
                        help="Median nearest-training distance of samples / of held-out real "
                             "brains; < 1 means samples hug the training set.")
        left, right = st.columns([3, 2])
        with left:
            st.plotly_chart(memorisation_figure(memo["generated_distances"], memo["heldout_distances"],
                                                memo["threshold"]), width="stretch", key="memorisation")
            st.caption("Each brain's distance to its nearest training brain: samples left of the "
                       "threshold are closer than almost any new real brain — possible copies.")
        with right:
            nearest = pd.DataFrame({"sample": np.arange(memo["n_generated"]),
                                    "nearest training subject": memo["generated_nearest_train_id"],
                                    "distance": memo["generated_distances"], "copy?": memo["suspected"]})
            st.dataframe(nearest.sort_values("distance"), hide_index=True, height=320, width="stretch",
                         column_config={"distance": st.column_config.NumberColumn(format="%.4f")})
            st.caption("Each sample's nearest training subject, closest first.")

