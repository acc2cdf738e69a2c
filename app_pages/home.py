"""Home: what brainlab does, the cohort in use, the models available, links to pages."""

import pandas as pd
import streamlit as st

from pages._shared import (
    available_models, cohort_sidebar, existing_pages, page_link, quality_verdict, source_label,
)

cohort, source = cohort_sidebar()

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
models, problem = available_models()
if problem:
    st.warning(problem)
if not models:
    st.info("No models yet. Train them with `python -m brainlab train all` "
            "(or use the shipped checkpoints once they are in `checkpoints/`).")
else:
    rows = []
    for card in models:
        level, sentence = quality_verdict(card)
        metrics = card.get("metrics") or {}
        scalars = [(k, v) for k, v in metrics.items()
                   if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
        shown = ", ".join(f"{k} {v:.3g}" if isinstance(v, (int, float)) else f"{k} {v}"
                          for k, v in scalars[:4])
        rows.append({
            "model": card.get("model_type", "?"),
            "quality": level,
            "verdict": sentence,
            "trained on": card.get("cohort", "?"),
            "this cohort": "yes" if str(card.get("fingerprint") or card.get("cohort", "")) in
                           (cohort.fingerprint, cohort.name, source) else "",
            "held-out metrics": shown or "—",
            "checkpoint": str(card.get("path", "")),
        })
    # Coloured text rather than emoji: emoji fonts are missing on many Linux browsers.
    colours = {"good": "#1a7f37", "fair": "#9a6700", "poor": "#cf222e"}
    table = pd.DataFrame(rows).style.map(
        lambda level: f"color: {colours.get(level, 'inherit')}; font-weight: bold",
        subset=["quality"])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"verdict": st.column_config.TextColumn(width="large")})
    st.caption("Quality is judged on held-out data; a poor verdict is shown as poor, "
               "not hidden. Retrain with `python -m brainlab train <model>`.")

st.subheader("Pages")
for page in existing_pages():
    if page.path == "pages/home.py":
        continue
    page_link(page.path)
    st.caption(page.blurb)
