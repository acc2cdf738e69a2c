"""Latent space: maps of each representation, and how well it encodes sex and age."""

import streamlit as st

import pandas as pd

from brainlab.analysis import derived_results
from brainlab.analysis.latent_maps import (
    REPRESENTATIONS, available_representations, colour_values, colour_variables,
)
from brainlab.analysis.probes import SEED_STUDY_REFERENCE
from brainlab.viz.latent_plots import latent_scatter, probe_comparison, probe_table_view
from app_pages._cohort_picker import current_cohort
from app_pages._models import checkpoints_for, model_picker
from app_pages._results import checkpoint, derived_result, stored_result, task_for
from app_pages._state import sync_query, url_choice, url_slider
from app_pages._subject_panel import subject_panel
from app_pages._subjects import new_pick, subject_choice

PROJECTIONS = {"pca": "PCA", "umap": "UMAP"}

cohort, source = current_cohort()
table = cohort.table
has_images = cohort.images is not None
st.title("Latent space")
st.markdown("Each subject as a point: raw data or a model's latent code, projected to 2D or "
            "3D. Do sex and age organise the map, and does the latent keep what the raw "
            "data knows? The probe table below answers with numbers.")

model_types = {t for t in ("mri-ae", "morph-ae", "encoder") if checkpoints_for(t, cohort)}
keys = available_representations(cohort, model_types)
# Latents a checkpoint would add: only where the cohort has the raw data they are built on.
possible = available_representations(cohort, {r.model_type for r in REPRESENTATIONS.values()})
missing = [REPRESENTATIONS[k] for k in possible if k not in keys
           and REPRESENTATIONS[k].raw_pair in possible]
if not keys:
    st.info(f"Cohort **{cohort.name}** has neither images nor morphometry columns to map.")
    st.stop()
colours = colour_variables(cohort)
with st.sidebar:
    st.markdown("### Map")
    rep_key = url_choice(st.selectbox, "Representation", keys, "rep", keys[0],
                         format_func=lambda k: REPRESENTATIONS[k].label)
    method = url_choice(st.radio, "Projection", list(PROJECTIONS), "proj", "pca",
                        format_func=PROJECTIONS.get, horizontal=True)
    dims = url_choice(st.radio, "Dimensions", [2, 3], "dims", 2, horizontal=True,
                      format_func=lambda d: f"{d}D", help="Click a point to open it (2D only).")
    neighbors, min_dist = 15, 0.1
    if method == "umap":
        neighbors = url_slider("UMAP neighbours", 2, 100, "nn", 15,
                               help="Small: local detail; large: global layout.")
        min_dist = url_slider("UMAP min distance", 0.0, 1.0, "md", 0.1, step=0.05,
                              help="How tightly points may pack.")
    colour = url_choice(st.selectbox, "Colour by", list(colours), "colour",
                        "age" if "age" in colours else "sex",
                        format_func=lambda n: n if colours[n] == "subject" else f"{n} ({colours[n]})")
    if missing:
        st.caption("Train " + ", ".join(f"`{r.model_type}`" for r in missing)
                   + " to add " + ", ".join(r.label for r in missing) + ".")
sync_query(nn=neighbors if method == "umap" else None, md=min_dist if method == "umap" else None)

rep = REPRESENTATIONS[rep_key]
model, card = model_picker(rep.model_type, cohort, source) if rep.model_type else (None, None)
if rep.model_type is not None and model is None:
    st.stop()
model_checkpoint = checkpoint(model, card)
ids = cohort.subject_ids
variable = colour_values(cohort, colour)
map_key = f"map_{rep_key}_{method}"
# A click on the 2D map is in its selection state before the map is drawn, so the
# subject (and its circle on the map) is settled first, without an extra rerun.
selection = st.session_state.get(map_key) if dims == 2 else None
points = selection["selection"]["points"] if selection else []
clicked = new_pick("map_point", points[0]["customdata"][0]
                   if points and points[0].get("customdata") else None)
map_column, subject_column = st.columns([3, 2]) if has_images else (st.container(), st.container())
subject = subject_choice(ids, picked=clicked, container=subject_column)
with map_column:
    # PCA/UMAP coordinates from memory or disk at once, else computed in the background:
    # a progress bar stands in for the map, the subject panel and probes stay usable.
    coords = derived_result(
        derived_results.projection, cohort, rep_key, model_checkpoint, method, dims, neighbors,
        min_dist, label=f"{PROJECTIONS[method]} {dims}D of {rep.label}",
        error_text=lambda error: f"Could not project {len(cohort)} subjects with "
                                 f"{PROJECTIONS[method]}: {error}. Choose PCA, or a cohort "
                                 "with more subjects.")
    if coords is not None:
        fig = latent_scatter(coords, ids, table["sex"].to_numpy(), table["age"].to_numpy(),
                             variable.values, colour, variable.kind == "categorical",
                             axis_title="PC" if method == "pca" else "UMAP", highlight=subject,
                             title=f"{rep.label} · {PROJECTIONS[method]} {dims}D")
        if dims == 2:
            st.plotly_chart(fig, on_select="rerun", selection_mode="points", width="stretch",
                            key=map_key)
        else:
            st.plotly_chart(fig, width="stretch", key=f"map3d_{rep_key}_{method}")
        st.caption(f"One point per subject, coloured by {colour}: look for gradients or "
                   "clusters that follow the colour (the representation encodes it) and for "
                   "outliers. " + ("Click a point to open that subject." if dims == 2 else
                                   "Drag to rotate; pick a subject with the Subject box."))
with subject_column:
    subject_panel(cohort, source, subject, colour, variable,
                  *((model, card) if rep_key == "mri-ae" else (None, None)))

st.header("Probes: what the representation encodes")
pairing = (f"**{REPRESENTATIONS[rep.raw_pair].label}** vs **{rep.label}**"
           if rep.raw_pair else f"**{rep.label}** alone (choose a latent to compare with it)")
st.markdown("Logistic regression, random forest, KNN and a decision tree predict sex and age "
            f"bin from {pairing}, scored by stratified 5-fold cross-validation with fixed "
            "folds (mean ± sd). The seed study's published figures sit in their own column "
            "for reference; they were not computed here.")
probe_args = (derived_results.probe_table, cohort, rep_key, model_checkpoint)
probes = stored_result(*probe_args)
if probes is None and (task_for(*probe_args) is not None
                       or st.session_state.get("_probe_request") == rep_key):
    probes = derived_result(*probe_args, label="Probes",
                            show_partial=lambda rows: st.dataframe(
                                probe_table_view(pd.DataFrame(rows)), hide_index=True,
                                width="stretch"),
                            error_text=lambda error: f"Could not run the probes on "
                                                     f"{len(cohort)} subjects: {error}")
    if probes is None:
        st.caption("The table fills in row by row; every other control stays usable.")
elif probes is None:
    # A callback (not the button's return value) so the request survives any rerun.
    st.button("Run probes", type="primary",
              on_click=lambda: st.session_state.update(_probe_request=rep_key),
              help="Runs in the background; the result is kept on disk for this cohort "
                   "and model.")
    st.caption("Press **Run probes** to fill the table.")
if probes is not None:
    view = probe_table_view(probes)
    st.dataframe(view, hide_index=True, width="stretch", height=min(36 * (len(view) + 1) + 4, 560))
    st.caption("Compare each raw row with its latent row: a latent close to raw keeps the "
               "information; the majority rate is what always guessing the commonest class "
               "scores (balanced accuracy's chance is 1 / classes); the last column is the seed "
               "study's published figure on real HCP data, for reference only: where ours is "
               "near chance it says so, and no agreement is implied.")
    left, _ = st.columns([1, 1])
    with left:
        st.plotly_chart(probe_comparison(probes), width="stretch", key="probe_bars")
        st.caption("Logistic-regression accuracy per target (± sd over folds): bars well above "
                   "the chance dash mean the representation encodes that variable.")
with st.expander("Seed study reference figures"):
    st.dataframe(SEED_STUDY_REFERENCE[["data", "representation", "target", "model", "reference"]],
                 hide_index=True, width="stretch")
    st.caption("Published logistic-regression accuracies (HCP young adults, 5-fold CV); "
               "reference only, not recomputed by brainlab.")
