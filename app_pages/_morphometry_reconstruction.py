"""The Reconstructions page's morphometry-autoencoder section: R² per feature and one
subject's features before and after the bottleneck."""

import pandas as pd
import streamlit as st

from brainlab.analysis import derived_results
from brainlab.analysis.judged_subjects import judged_subjects
from brainlab.analysis.reconstructions import (morphometry_reconstruction, per_feature_r2,
                                               standardised_features)
from brainlab.viz.reconstruction_plots import feature_comparison, r2_bars
from app_pages._models import model_picker
from app_pages._results import checkpoint, derived_result
from app_pages._subjects import describe_subject, subject_choice


def morphometry_section(cohort, source, subject, offered_ids) -> None:
    """``subject``: the MRI section's pick (None: choose here from ``offered_ids(judged)``)."""
    table = cohort.table
    st.header("Morphometry autoencoder")
    morph_model = None
    if not cohort.morphometry_columns:
        st.info(f"Cohort **{cohort.name}** has no morphometry columns (regional volumes), so there "
                "is nothing for the morphometry autoencoder to reconstruct.")
    else:
        morph_model, morph_card = model_picker("morph-ae", cohort, source)
    if morph_model is not None:
        judged = judged_subjects(cohort, morph_card)
        # A small MLP over a table: fast enough to compute here (and keep on disk).
        morph = derived_result(derived_results.reconstructions, cohort,
                               checkpoint(morph_model, morph_card),
                               "test" if judged.trained_here else "all", background=False,
                               label="Reconstructing morphometry")
        original, reconstructed = morph["original"], morph["reconstructed"]
        r2 = per_feature_r2(original, reconstructed)
        if subject is None:
            subject = subject_choice(offered_ids(judged))
        subject_original, subject_recon = morphometry_reconstruction(
            morph_model, cohort, [cohort.index_of(subject)])
        # z-units of the judged originals, so features in cc and mm share one axis.
        z_original = standardised_features(subject_original, original).iloc[0]
        z_recon = standardised_features(subject_recon, original).iloc[0]
        finite = r2.dropna()
        if finite.empty:
            st.info(f"R² needs at least two judged subjects with varying features; found "
                    f"{len(original)} ({judged.description}).")
        else:
            st.markdown(f"Mean R² **{finite.mean():.3f}** over {len(finite)} features on "
                        f"{judged.description}; worst: "
                        + ", ".join(f"{name} ({value:.2f})" for name, value in finite.head(3).items())
                        + ".")
        left, right = st.columns([3, 2])
        with left:
            st.plotly_chart(feature_comparison(
                z_original, z_recon,
                title=f"{describe_subject(table, cohort.index_of(subject))}: original vs reconstruction"),
                width="stretch", key="feature_bars")
            st.caption("Each feature in z-units of the judged subjects: bars of equal height "
                       "mean the feature survived the bottleneck; large gaps show what was lost.")
            with st.expander("Values in original units"):
                st.dataframe(pd.DataFrame({"original": subject_original.iloc[0],
                                           "reconstruction": subject_recon.iloc[0]}),
                             width="stretch")
        with right:
            st.plotly_chart(r2_bars(r2, title="R² per feature (judged subjects)"), width="stretch",
                            key="r2_bars")
            st.caption("R² of each feature over the judged subjects (worst at the top; dashed "
                       "line = 0.9): features below 0 are reconstructed worse than the mean would be.")
