"""Reconstructions: what the autoencoders keep and what they lose, subject by subject."""

import numpy as np
import streamlit as st

from brainlab.analysis import derived_results
from brainlab.analysis.judged_subjects import judged_subjects
from brainlab.analysis.reconstructions import brain_mask_of
from brainlab.viz.reconstruction_plots import error_by_subject, reconstruction_triplanar
from app_pages._cohort_picker import current_cohort
from app_pages._cohort_views import intensity_range
from app_pages._models import model_picker
from app_pages._morphometry_reconstruction import morphometry_section
from app_pages._results import checkpoint, derived_result
from app_pages._slices import slice_cursor
from app_pages._state import url_choice
from app_pages._subject_reconstruction import subject_reconstruction
from app_pages._subjects import describe_subject, new_pick, subject_choice, table_click

SCOPES = {"test": "unseen by the model", "all": "any subject"}
ERROR_COLUMNS = {"ssim": st.column_config.NumberColumn("SSIM (in brain)", format="%.3f"),
                 "psnr": st.column_config.NumberColumn("PSNR (dB, in brain)", format="%.1f"),
                 "mean |error|": st.column_config.NumberColumn(format="%.4f"),
                 "age": st.column_config.NumberColumn(format="%.1f")}

cohort, source = current_cohort()
table = cohort.table
st.title("Reconstructions")
st.markdown("Each autoencoder squeezes a subject through a small code and rebuilds it. "
            "Compare the original with the reconstruction on subjects the model never "
            "trained on, and see which structures and features it loses.")
with st.sidebar:
    st.markdown("### Subjects")
    scope = url_choice(st.radio, "Subjects", list(SCOPES), "subjects", "test",
                       format_func=SCOPES.get, label_visibility="collapsed",
                       help="Held-out subjects were not used to train the model; "
                            "training subjects usually reconstruct better.")


def offered_ids(judged) -> list[str]:
    """The subjects to choose from: the judged ones, or every subject."""
    indices = judged.indices if scope == "test" else np.arange(len(cohort))
    return [str(s) for s in table["subject_id"].to_numpy()[indices]]


@st.fragment
def reconstruction_viewer(original: np.ndarray, recon: np.ndarray) -> None:
    """Slice sliders and the tri-planar view: a slider reruns only this (the volumes
    are already in memory, so only the slices are cut and drawn)."""
    cursor = slice_cursor(cohort.grid_shape)
    st.plotly_chart(reconstruction_triplanar(original, recon, cohort.affine, cursor=cursor,
                                             value_range=intensity_range(cohort)),
                    width="stretch", key="recon_viewer")


subject = None
st.header("MRI autoencoder")
if cohort.images is None:
    st.info(f"Cohort **{cohort.name}** is table-only (no images), so there is no MRI "
            "reconstruction to show; the morphometry autoencoder below still works.")
    model = None
else:
    model, card = model_picker("mri-ae", cohort, source)
if model is not None:
    judged = judged_subjects(cohort, card)
    st.subheader(f"Judged on {judged.description}")
    # Held-out errors from memory or disk, else computed in the background (a progress bar
    # stands in for the table; the subject viewer below works meanwhile).
    errors = derived_result(derived_results.reconstructions, cohort, checkpoint(model, card),
                            "test" if judged.trained_here else "all",
                            label=f"Reconstructing {len(judged.indices)} subjects")
    clicked = None
    if errors is not None:
        st.caption("Sort by a column (click its header) to find the best and worst "
                   "reconstructed subjects; click a row to view that subject below.")
        shown = errors.drop(columns=["index"]).rename(columns={"mae": "mean |error|"})
        event = st.dataframe(shown, on_select="rerun", selection_mode="single-row",
                             hide_index=True, height=230, width="stretch",
                             key=f"errors_{cohort.fingerprint}", column_config=ERROR_COLUMNS)
        clicked = new_pick("errors_row", table_click(event, shown["subject_id"].to_numpy()))
    subject = subject_choice(offered_ids(judged), picked=clicked)
    index = cohort.index_of(subject)
    # Computed once per model and subject: a slider or a revisit never runs the model.
    original, recon, scores = subject_reconstruction(cohort, model, card, index)
    left, middle, right, note = st.columns([1, 1, 1, 3])
    where = " (in brain)" if brain_mask_of(model) is not None else " (whole box)"
    left.metric("SSIM" + where, f"{scores['ssim']:.3f}",
                help="Structural similarity, 1 = identical (3D Gaussian window), averaged "
                     "over the model's brain mask as on its card.")
    middle.metric("PSNR" + where, f"{scores['psnr']:.1f} dB", help="Peak signal-to-noise ratio.")
    right.metric("mean |error|", f"{scores['mae']:.4f}", help="Intensities are in [0, 1].")
    note.caption(("Unseen subject: the model never saw it in training."
                  if index in set(judged.indices.tolist()) else "**Not held out**: this subject "
                  "may have been used in training, so its reconstruction is optimistic.")
                 + ("" if errors is None else
                    f" Mean SSIM over the judged subjects {errors['ssim'].mean():.3f}, "
                    f"PSNR {errors['psnr'].replace(np.inf, np.nan).mean():.1f} dB."))
    st.markdown(f"**{describe_subject(table, index)}**")
    reconstruction_viewer(original, recon)
    st.caption("Same slices in all three rows: look for blur at edges and small structures "
               "(hippocampus, ventricles) in the reconstruction, and where the error row is "
               "bright.")
    if errors is not None:
        st.plotly_chart(error_by_subject(errors, "ssim", selected=subject), width="stretch",
                        key="ssim_strip")
        st.caption("SSIM per judged subject by sex (the circled point is the subject above): "
                   "look for outliers and for one sex reconstructing worse.")

morphometry_section(cohort, source, subject, offered_ids)
