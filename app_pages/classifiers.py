"""Classifiers: do GAN samples look real to brainlab's sex classifier and brain-age model?"""

import hashlib
import json

import numpy as np
import pandas as pd
import streamlit as st

from brainlab.analysis.real_vs_synthetic import compare_real_synthetic, realism_order
from brainlab.errors import BrainlabInputError
from brainlab.viz import PLANES
from brainlab.viz.gan_plots import (calibration_figure, confusion_matrix_figure,
                                    fraction_bars_figure, memorisation_figure,
                                    sample_grid_figure, score_distributions_figure)
from pages._models import MODEL_NAMES, model_picker
from pages._shared import cohort_sidebar, query_value, sync_query

CHOICES = {"sex-clf": "sex classifier", "age-model": "brain-age model"}

cohort, source = cohort_sidebar()
st.title("Classifiers")
st.markdown("brainlab's sex classifier or brain-age model on held-out real brains and on GAN "
            "samples: if the samples were realistic, both would get the same answers.")
if cohort.images is None:
    st.info("This cohort is table-only (no images); the classifiers need brain images.")
    st.stop()


def init_state(key: str, value) -> None:
    """Seed a widget's session state from the URL the first time the page runs."""
    if key not in st.session_state:
        st.session_state[key] = value


def card_key(card) -> str:
    return hashlib.sha1(json.dumps(card, sort_keys=True, default=str).encode()).hexdigest()[:16]


with st.sidebar:
    st.markdown("### Comparison")
    init_state("clf_model", query_value("model", "sex-clf") if query_value("model") in CHOICES
               else "sex-clf")
    model_type = st.radio("Model", list(CHOICES), format_func=CHOICES.get, key="clf_model")
    init_state("clf_n", int(np.clip(query_value("n", 64, int), 8, 256)))
    n_samples = int(st.slider("GAN samples", 8, 256, step=8, key="clf_n",
                              help="More samples: steadier fractions and AUC, slower."))
    init_state("clf_seed", query_value("seed", 0, int))
    seed = int(st.number_input("Sample seed", 0, 2**31 - 1, step=1, key="clf_seed"))
    init_state("clf_plane", query_value("plane", "axial") if query_value("plane") in PLANES
               else "axial")
    plane = st.selectbox("Gallery plane", PLANES, key="clf_plane")
sync_query(model=model_type, n=n_samples, seed=seed, plane=plane)

classifier, classifier_card = model_picker(model_type, cohort, source)
gan, gan_card = model_picker("gan", cohort, source, show_card=False)
if classifier is None or gan is None:
    st.stop()


# An entry holds up to 256 sample volumes (~240 MB on the HCP grid): keep few.
@st.cache_data(show_spinner=False, max_entries=4)
def comparison(classifier_key: str, gan_key: str, fingerprint: str, n: int, sample_seed: int,
               split_seed: int, _classifier, _gan) -> dict:
    split = cohort.split(split_seed)
    bar = st.progress(0.0, text="Comparing real and synthetic brains …")
    try:
        return compare_real_synthetic(
            _classifier, _gan, cohort, n_samples=n, seed=sample_seed,
            heldout_indices=split.test, train_indices=split.train,
            progress=lambda fraction, message="": bar.progress(min(1.0, fraction), text=message))
    finally:
        bar.empty()


split_seed = int(classifier_card.get("cohort", {}).get("split_seed", 0))
try:
    result = comparison(card_key(classifier_card), card_key(gan_card), cohort.fingerprint,
                        n_samples, seed, split_seed, classifier, gan)
except BrainlabInputError as error:
    st.error(f"Could not compare: {error}")
    st.stop()
summary = result["summary"]
kind = result["kind"]
name = MODEL_NAMES[model_type]

# ---------------------------------------------------------------- outputs
st.header("What the classifier says")
left, right = st.columns([3, 2])
with left:
    st.plotly_chart(score_distributions_figure(result["scores_real"], result["scores_synthetic"], kind),
                    width="stretch", key="distributions")
    st.caption("Distributions of the output on real vs synthetic brains: samples bunched in one "
               "place (e.g. P(male) all near 0.5) mean the GAN misses what the classifier uses.")
with right:
    if kind == "sex":
        st.plotly_chart(fraction_bars_figure({
            "real (true)": summary["male_fraction_real_true"],
            "real (predicted)": summary["male_fraction_real_predicted"],
            "GAN samples (predicted)": summary["male_fraction_synthetic"]}),
            width="stretch", key="fractions")
        st.caption("Share of brains called male (P ≥ 0.5): the GAN's share should match the real "
                   "cohort's, or the sampler over-produces one sex.")
    else:
        unit = summary["age_unit"]
        bars = {"real (predicted)": summary["mean_predicted_real"],
                "GAN samples (predicted)": summary["mean_predicted_synthetic"]}
        if "mean_true_age_real" in summary:
            bars = {"real (true)": summary["mean_true_age_real"], **bars}
        st.plotly_chart(fraction_bars_figure(bars, title=f"mean age ({unit})", percent=False),
                        width="stretch", key="fractions")
        st.caption(f"Mean age ({unit}) of real and synthetic brains: the samples' predicted ages "
                   f"should span the real ones (sd real {summary['sd_predicted_real']:.2g}, "
                   f"samples {summary['sd_predicted_synthetic']:.2g}).")

# ---------------------------------------------------------------- on real brains
st.header(f"The {name} on held-out real brains")
metric_text = {k: v for k, v in result["metrics_real"].items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
st.caption("Held-out metrics: " + ", ".join(f"{k} {v:.3g}" for k, v in metric_text.items())
           + f" (n={summary['n_real']} real brains).")
left, right = st.columns(2)
with left:
    if result["confusion"] is not None:
        st.plotly_chart(confusion_matrix_figure(result["confusion"], result["confusion_labels"]),
                        width="stretch", key="confusion")
        st.caption("True (rows) vs predicted (columns) on held-out real brains: counts off the "
                   "diagonal are mistakes" + ("." if kind == "sex" else
                                              "; predicted ages are put in the cohort's bins."))
    else:
        st.info("No confusion matrix: the held-out brains have no known age bins, or predicted "
                "years cannot be put into them (no known ages, no numeric bin labels).")
with right:
    if result["calibration"] is not None:
        st.plotly_chart(calibration_figure(result["calibration"], kind), width="stretch",
                        key="calibration")
        st.caption("Calibration: points on the dashed diagonal mean the output can be taken at "
                   "face value (marker size = brains in the bin).")
    else:
        st.info("No calibration curve: the held-out brains have no known ages in years.")

# ---------------------------------------------------------------- realism
st.header("Real or synthetic?")
memo = result["memorisation"]
columns = st.columns(3)
columns[0].metric("Two-sample AUC", f"{summary.get('two_sample_auc', float('nan')):.2f}",
                  help="Cross-validated AUC of PCA + logistic regression telling samples from "
                       "held-out real brains: 0.5 = indistinguishable, 1 = always told apart.")
if memo is not None:
    columns[1].metric("Suspected copies", f"{memo['n_suspected']} of {memo['n_generated']}",
                      help=f"Samples closer to a training brain than {100 - memo['percentile']:.0f}% "
                           "of held-out real brains are; about 5% is expected by chance.")
    columns[2].metric("Median distance ratio", f"{memo['median_ratio']:.2f}",
                      help="Median nearest-training distance of samples / of held-out real "
                           "brains; < 1 means samples hug the training set.")
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(memorisation_figure(memo["generated_distances"], memo["heldout_distances"],
                                            memo["threshold"]), width="stretch", key="memorisation")
        st.caption("Each brain's distance to its nearest training brain: samples left of the "
                   "threshold are closer than almost any new real brain — possible copies.")
    with right:
        table = pd.DataFrame({
            "sample": np.arange(memo["n_generated"]),
            "nearest training subject": memo["generated_nearest_train_id"],
            "distance": memo["generated_distances"],
            "copy?": memo["suspected"],
        }).sort_values("distance")
        st.dataframe(table, hide_index=True, height=320, width="stretch",
                     column_config={"distance": st.column_config.NumberColumn(format="%.4f")})
        st.caption("Each sample's nearest training subject, closest first.")

st.subheader("Most and least realistic samples")
if result["realism"] is not None:
    order = realism_order(result)
    count = min(8, len(order) // 2 if len(order) >= 4 else len(order))
    suspected = memo["suspected"] if memo is not None else np.zeros(len(order), bool)
    score = result["scores_synthetic"]
    score_name = "P(male)" if kind == "sex" else "age"
    for title, picked, key in (("most realistic", order[:count], "gallery_most"),
                               ("least realistic", order[::-1][:count], "gallery_least")):
        labels = [f"#{i} · P(real) {result['realism'][i]:.2f}<br>{score_name} {score[i]:.2f}"
                  for i in picked]
        st.markdown(f"**{title.capitalize()}**")
        st.plotly_chart(sample_grid_figure(result["samples"][picked], labels=labels, plane=plane,
                                           columns=count, highlight=suspected[picked], tile_px=118),
                        width="stretch", key=key)
    st.caption("Ranked by the out-of-fold probability that the real-vs-synthetic discriminator "
               "(PCA + logistic regression, the two-sample test above) calls the sample real; "
               "orange frames mark suspected copies of a training brain.")
