"""Reconstructions: what the autoencoders keep and what they lose, subject by subject."""

import numpy as np
import pandas as pd
import streamlit as st

from brainlab.analysis.reconstructions import (
    heldout_indices, morphometry_reconstruction, per_feature_r2, reconstruct_subjects,
    reconstruction_errors, standardised_features, volume_errors,
)
from brainlab.viz.reconstruction_plots import (
    error_by_subject, feature_comparison, r2_bars, reconstruction_triplanar,
)
from pages._explorer import (
    cached_result, checkpoint_key, new_pick, slice_cursor, subject_choice, url_choice,
)
from pages._models import model_picker
from pages._shared import cohort_sidebar, intensity_range

SCOPES = {"test": "held-out (test split)", "all": "any subject"}

cohort, source = cohort_sidebar()
table = cohort.table
has_images = cohort.images is not None

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


def subject_ids_for(indices: np.ndarray) -> list[str]:
    return [str(s) for s in table["subject_id"].to_numpy()[indices]]


def describe(subject: str) -> str:
    row = table.iloc[cohort.index_of(subject)]
    age = f"{row['age']:.1f} y" if pd.notna(row["age"]) else "age n/a"
    return f"{subject} · {'female' if row['sex'] == 'F' else 'male'} · {age}"


subject = None

# ---------------------------------------------------------------- MRI autoencoder
st.header("MRI autoencoder")
if not has_images:
    st.info(f"Cohort **{cohort.name}** is table-only (no images), so there is no MRI "
            "reconstruction to show; the morphometry autoencoder below still works.")
else:
    model, card = model_picker("mri-ae", cohort, source)
    if model is not None:
        split_seed = int(card.get("cohort", {}).get("split_seed", 0))
        heldout = heldout_indices(cohort, split_seed, "test")
        key = (checkpoint_key(card), cohort.fingerprint, split_seed)
        errors = cached_result(
            "mri-errors", key,
            lambda progress: reconstruction_errors(model, cohort, heldout, progress=progress),
            f"Reconstructing {len(heldout)} held-out subjects (once per model) …")

        st.subheader(f"Held-out subjects (n={len(errors)})")
        st.caption("Sort by a column (click its header) to find the best and worst "
                   "reconstructed subjects; click a row to view that subject below.")
        shown = errors.drop(columns=["index"]).rename(columns={"mae": "mean |error|"})
        event = st.dataframe(
            shown, on_select="rerun", selection_mode="single-row", hide_index=True, height=230,
            width="stretch", key=f"errors_{cohort.fingerprint}",
            column_config={"ssim": st.column_config.NumberColumn("SSIM", format="%.3f"),
                           "psnr": st.column_config.NumberColumn("PSNR (dB)", format="%.1f"),
                           "mean |error|": st.column_config.NumberColumn(format="%.4f"),
                           "age": st.column_config.NumberColumn(format="%.1f")})
        rows = event.selection.rows if event is not None else []
        clicked = new_pick("errors_row", str(shown["subject_id"].iloc[rows[0]]) if rows else None)

        ids = subject_ids_for(heldout) if scope == "test" else cohort.subject_ids
        subject = subject_choice(ids, picked=clicked)
        index = cohort.index_of(subject)
        cursor = slice_cursor(cohort.grid_shape)
        originals, recons = reconstruct_subjects(model, cohort, [index])
        scores = volume_errors(originals[0], recons[0])
        in_heldout = index in set(heldout.tolist())

        left, middle, right, note = st.columns([1, 1, 1, 3])
        left.metric("SSIM", f"{scores['ssim']:.3f}",
                    help="Structural similarity, 1 = identical (3D Gaussian window).")
        middle.metric("PSNR", f"{scores['psnr']:.1f} dB", help="Peak signal-to-noise ratio.")
        right.metric("mean |error|", f"{scores['mae']:.4f}", help="Intensities are in [0, 1].")
        note.caption(("Held-out subject: the model never saw it in training."
                      if in_heldout else "**Not held out**: this subject may have been used "
                      "in training, so its reconstruction is optimistic.")
                     + f" Held-out mean SSIM {errors['ssim'].mean():.3f}, "
                       f"PSNR {errors['psnr'].replace(np.inf, np.nan).mean():.1f} dB.")
        st.markdown(f"**{describe(subject)}**")
        st.plotly_chart(reconstruction_triplanar(
            originals[0], recons[0], cohort.affine, cursor=cursor,
            value_range=intensity_range(cohort)),
            width="stretch", key="recon_viewer")
        st.caption("Same slices in all three rows: look for blur at edges and small structures "
                   "(hippocampus, ventricles) in the reconstruction, and where the error row is "
                   "bright.")
        st.plotly_chart(error_by_subject(errors, "ssim", selected=subject), width="stretch",
                        key="ssim_strip")
        st.caption("Held-out SSIM per subject by sex (the circled point is the subject above): "
                   "look for outliers and for one sex reconstructing worse.")

# ---------------------------------------------------------------- morphometry autoencoder
st.header("Morphometry autoencoder")
morph_model, morph_card = model_picker("morph-ae", cohort, source)
if morph_model is not None:
    split_seed = int(morph_card.get("cohort", {}).get("split_seed", 0))
    heldout = heldout_indices(cohort, split_seed, "test")
    key = (checkpoint_key(morph_card), cohort.fingerprint, split_seed)
    original, reconstructed = cached_result(
        "morph-recon", key, lambda progress: morphometry_reconstruction(morph_model, cohort, heldout),
        "Reconstructing morphometry …")
    r2 = per_feature_r2(original, reconstructed)
    if subject is None:
        ids = subject_ids_for(heldout) if scope == "test" else cohort.subject_ids
        subject = subject_choice(ids)
    subject_original, subject_recon = morphometry_reconstruction(
        morph_model, cohort, [cohort.index_of(subject)])
    # z-units of the held-out originals, so features in cc and mm share one axis.
    z_original = standardised_features(subject_original, original).iloc[0]
    z_recon = standardised_features(subject_recon, original).iloc[0]

    finite = r2.dropna()
    st.markdown(f"Held-out mean R² **{finite.mean():.3f}** over {len(finite)} features "
                f"(n={len(original)} subjects); worst: "
                + ", ".join(f"{name} ({value:.2f})" for name, value in finite.head(3).items()) + ".")
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(feature_comparison(
            z_original, z_recon, title=f"{describe(subject)}: original vs reconstruction"),
            width="stretch", key="feature_bars")
        st.caption("Each feature in z-units of the held-out subjects: bars of equal height "
                   "mean the feature survived the bottleneck; large gaps show what was lost.")
        with st.expander("Values in original units"):
            st.dataframe(pd.DataFrame({"original": subject_original.iloc[0],
                                       "reconstruction": subject_recon.iloc[0]}),
                         width="stretch")
    with right:
        st.plotly_chart(r2_bars(r2, title="R² per feature (held-out)"), width="stretch",
                        key="r2_bars")
        st.caption("R² of each feature over held-out subjects (worst at the top; dashed line = "
                   "0.9): features below 0 are reconstructed worse than the mean would be.")
