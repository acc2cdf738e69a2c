"""Classifiers: do GAN samples look real to brainlab's sex classifier and brain-age model?"""

import numpy as np
import streamlit as st

from brainlab.analysis import derived_results
from brainlab.analysis.judged_subjects import judged_subjects
from brainlab.analysis.real_vs_synthetic import realism_order
from brainlab.viz import PLANES
from brainlab.viz.gan_plots import (
    calibration_figure, confusion_matrix_figure, fraction_bars_figure, sample_grid_figure,
    score_distributions_figure,
)
from app_pages._cohort_picker import current_cohort
from app_pages._memorisation_view import memorisation_view
from app_pages._models import MODEL_NAMES, metric_summary, model_picker
from app_pages._results import checkpoint, derived_result
from app_pages._state import url_choice, url_number

CHOICES = {"sex-clf": "sex classifier", "age-model": "brain-age model"}

cohort, source = current_cohort()
st.title("Classifiers")
st.markdown("brainlab's sex classifier or brain-age model on real brains it never saw and on "
            "GAN samples: if the samples were realistic, both would get the same answers.")
if cohort.images is None:
    st.info("This cohort is table-only (no images); the classifiers need brain images.")
    st.stop()
with st.sidebar:
    st.markdown("### Comparison")
    model_type = url_choice(st.radio, "Model", list(CHOICES), "model", "sex-clf",
                            format_func=CHOICES.get)
    n_samples = url_number(st.slider, "GAN samples", 8, 256, "n", 64, step=8,
                           help="More samples: steadier fractions and AUC, slower.")
    seed = url_number(st.number_input, "Sample seed", 0, 2**31 - 1, "seed", 0, step=1)
    plane = url_choice(st.selectbox, "Gallery plane", list(PLANES), "plane", "axial")

classifier, classifier_card = model_picker(model_type, cohort, source)
gan, gan_card = model_picker("gan", cohort, source, show_card=False)
if classifier is None or gan is None:
    st.stop()
judged = judged_subjects(cohort, classifier_card)
# From memory or disk at once (``python -m brainlab warm`` and the app's warm-up store the
# default comparison), else computed in the background while the sidebar stays usable.
result = derived_result(
    derived_results.real_vs_synthetic, cohort, checkpoint(classifier, classifier_card),
    checkpoint(gan, gan_card), n_samples, seed,
    label=f"Comparing {n_samples} GAN samples with real brains",
    error_text=lambda error: f"Could not compare on {judged.description}: {error}")
if result is None:
    st.stop()
summary, kind, name = result["summary"], result["kind"], MODEL_NAMES[model_type]

st.header("What the classifier says")
left, right = st.columns([3, 2])
with left:
    st.plotly_chart(score_distributions_figure(result["scores_real"], result["scores_synthetic"], kind),
                    width="stretch", key="distributions")
    st.caption("Distributions of the output on real vs synthetic brains: samples bunched in one "
               "place (e.g. P(male) all near 0.5) mean the GAN misses what the classifier uses.")
with right:
    if kind == "sex":
        bars = {"real (true)": summary["male_fraction_real_true"],
                "real (predicted)": summary["male_fraction_real_predicted"],
                "GAN samples (predicted)": summary["male_fraction_synthetic"]}
        st.plotly_chart(fraction_bars_figure(bars), width="stretch", key="fractions")
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

st.header(f"The {name} on real brains it never saw")
st.caption(f"Judged on {judged.description}"
           + ("" if judged.trained_here else " (capped at 256)" if len(judged.indices) > 256 else "")
           + f". Metrics: {metric_summary(result['metrics_real'], 8, skip=('n',)) or 'none'} "
             f"(n={summary['n_real']} real brains).")
left, right = st.columns(2)
with left:
    if result["confusion"] is not None:
        st.plotly_chart(confusion_matrix_figure(result["confusion"], result["confusion_labels"]),
                        width="stretch", key="confusion")
        st.caption("True (rows) vs predicted (columns): counts off the diagonal are mistakes"
                   + ("." if kind == "sex" else "; predicted ages are put in the cohort's bins."))
    else:
        st.info("No confusion matrix: the judged brains have no known age bins, or predicted "
                "years cannot be put into them (no known ages, no numeric bin labels).")
with right:
    if result["calibration"] is not None:
        st.plotly_chart(calibration_figure(result["calibration"], kind), width="stretch",
                        key="calibration")
        st.caption("Calibration: points on the dashed diagonal mean the output can be taken at "
                   "face value (marker size = brains in the bin).")
    else:
        st.info("No calibration curve: the judged brains have no known ages in years.")

st.header("Real or synthetic?")
memo = result["memorisation"]
columns = st.columns(3)
columns[0].metric("Two-sample AUC", f"{summary.get('two_sample_auc', float('nan')):.2f}",
                  help="Cross-validated AUC of PCA + logistic regression telling samples from "
                       "real brains: 0.5 = indistinguishable, 1 = always told apart.")
memorisation_view(memo, columns[1:])

st.subheader("Most and least realistic samples")
if result["realism"] is not None:
    order = realism_order(result)
    count = min(8, len(order) // 2 if len(order) >= 4 else len(order))
    suspected = memo["suspected"] if memo is not None else np.zeros(len(order), bool)
    score, score_name = result["scores_synthetic"], "P(male)" if kind == "sex" else "age"
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
else:
    st.info(f"No realism ranking: the real-vs-synthetic discriminator needs more real brains "
            f"than the {summary['n_real']} judged here.")
