"""Home: what brainlab does, the cohort in use, the models available, links to pages."""

import pandas as pd
import streamlit as st

from app_pages._catalog import existing_pages, page_link
from app_pages._cohort_picker import current_cohort, source_label
from app_pages._models import model_rows

st.title("brainlab")
st.markdown(
    "Explore what generative models learn about the brain. brainlab trains autoencoders, "
    "a 3D GAN with an encoder, and sex/age classifiers on brain MRI, then lets you look "
    "inside them: reconstructions, latent maps, interpolations and attribute edits. "
    "The default data is a **synthetic phantom cohort** whose true sex and age effects are "
    "known, so every result can be checked against the truth; your own data (HCP tensors, "
    "NIfTI + participants.tsv, FreeSurfer CSVs) works the same way."
)

st.subheader("Current cohort")
cohort, source = current_cohort(progress_bar=True)  # while it builds: a progress bar, then stop
table = cohort.table
counts = table["sex"].value_counts()
ages = table["age"].dropna()
columns = st.columns(5)
columns[0].metric("subjects", f"{len(cohort)}")
columns[1].metric("women / men", f"{int(counts.get('F', 0))} / {int(counts.get('M', 0))}")
columns[2].metric("age range", f"{int(ages.min())}–{int(ages.max())} y" if len(ages) else "bins only")
columns[3].metric("grid", "×".join(map(str, cohort.grid_shape)) if cohort.grid_shape else "table only")
columns[4].metric("morphometry", f"{len(cohort.morphometry_columns)} features")
st.caption(f"{source_label(source)} · fingerprint `{cohort.fingerprint}`"
           + (" · ground truth available" if cohort.truth is not None else ""))
for note in cohort.notes:
    st.info(note)

st.subheader("Models")
rows, problem = model_rows(cohort, source)
if problem:
    st.warning(problem)
if not rows:
    st.info("No models yet. Train them with `python -m brainlab train all` "
            "(or use the shipped checkpoints once they are in `checkpoints/`).")
else:
    # Coloured text rather than emoji: emoji fonts are missing on many Linux browsers.
    colours = {"good": "#1a7f37", "fair": "#9a6700", "poor": "#cf222e"}
    styled = pd.DataFrame(rows).style.map(
        lambda level: f"color: {colours.get(level, 'inherit')}; font-weight: bold",
        subset=["quality"])
    st.dataframe(styled, hide_index=True, width="stretch",
                 column_config={"verdict": st.column_config.TextColumn(width="large")})
    st.caption("Quality is judged on held-out data; a poor verdict is shown as poor, "
               "not hidden. Retrain with `python -m brainlab train <model>`.")

st.subheader("Pages")
for page in existing_pages()[1:]:
    page_link(page, cohort=source)
    st.caption(page.blurb)
