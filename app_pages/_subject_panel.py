"""The subject beside a map: its description and, with images, its MRI and reconstruction."""

from __future__ import annotations

import streamlit as st

from brainlab.data import Cohort
from brainlab.errors import BrainlabInputError
from brainlab.viz.reconstruction_plots import compact_triplanar
from app_pages._cohort_views import intensity_range
from app_pages._models import checkpoints_for, load_model, train_command
from app_pages._subject_reconstruction import subject_reconstruction
from app_pages._subjects import describe_subject


def subject_panel(cohort: Cohort, source: str, subject: str, colour: str, variable,
                  mri_ae=None, mri_ae_card: dict | None = None) -> None:
    """Describe ``subject`` (with its ``colour`` value) and show its centre slices above its
    MRI-AE reconstruction (``mri_ae`` with its card, else the first fitting MRI-AE
    checkpoint)."""
    index = cohort.index_of(subject)
    value = variable.values[index]
    colour_text = f"{value:.4g}" if variable.kind == "continuous" else str(value)
    st.markdown(f"**{describe_subject(cohort.table, index).replace(' · ', '** · ', 1)} · "
                f"{colour}: {colour_text}")
    if cohort.images is None:
        return
    volumes = {"MRI": cohort.images[index]}
    entries = checkpoints_for("mri-ae", cohort)
    if entries:
        try:
            model, card = ((mri_ae, mri_ae_card) if mri_ae is not None
                           else load_model(entries[0]["path"]))
            volumes["MRI-AE reconstruction"] = subject_reconstruction(cohort, model, card, index)[1]
        except BrainlabInputError as error:  # e.g. saved by an older architecture
            st.warning(f"No reconstruction: {error}")
    st.plotly_chart(compact_triplanar(volumes, cohort.affine, value_range=intensity_range(cohort)),
                    width="stretch", key="subject_views")
    if len(volumes) > 1:
        st.caption("The subject's axial, coronal and sagittal centre slices above its MRI-AE "
                   "reconstruction: look for what the code keeps (size, ventricles) and blurs.")
    else:
        st.caption("The subject's axial, coronal and sagittal centre slices. No MRI "
                   f"autoencoder yet: `{train_command('mri-ae', source)}`.")
