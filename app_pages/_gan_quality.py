"""The GAN's held-out quality figures from its model card, beside the sample grid."""

from __future__ import annotations

import streamlit as st


def _metric(metrics: dict, label: str, key: str, target, fmt: str = "{:.3g}", help_text=None):
    value = metrics.get(key)
    st.metric(label, "—" if value is None else fmt.format(value), help=help_text,
              delta=target, delta_color="off", delta_arrow="off")


def gan_quality(card: dict) -> None:
    """Fréchet ratio, two-sample AUC, diversity and copies with their targets; the baseline."""
    metrics = card.get("metrics", {})
    st.markdown("**Held-out quality (from the model card)**")
    first, second = st.columns(2)
    with first:
        _metric(metrics, "Fréchet ratio", "frechet_ratio", "target ≤ 2",
                help_text="PCA-Fréchet distance of samples vs held-out real, divided by the "
                          "real-vs-real floor (1 = as close as new real brains).")
        real = metrics.get("diversity_real")
        _metric(metrics, "Diversity (samples)", "diversity_generated",
                f"real {real:.3g}" if real else None,
                help_text="Mean pairwise RMS distance; far below the real value = mode collapse.")
    with second:
        _metric(metrics, "Two-sample AUC", "two_sample_auc", "target ≤ 0.75",
                help_text="Cross-validated AUC of a classifier telling samples from real brains "
                          "(0.5 = indistinguishable).")
        _metric(metrics, "Suspected copies", "memorisation_fraction_suspected", "≈5% by chance",
                fmt="{:.0%}",
                help_text="Samples closer to a training brain than 95% of held-out real brains are.")
    if "gaussian_frechet_ratio" in metrics:
        st.caption(f"Baseline (fitted Gaussian in the autoencoder's code space): Fréchet ratio "
                   f"{metrics['gaussian_frechet_ratio']:.3g}, two-sample AUC "
                   f"{metrics.get('gaussian_two_sample_auc', float('nan')):.3g}. "
                   f"Computed on n={metrics.get('n', '?')} held-out brains.")
    if "normalised_frechet" in metrics:
        st.caption(f"Calibrated (held-out real brains score 1.0; two real sets of this size "
                   f"differ by about 20%): normalised Fréchet {metrics['normalised_frechet']:.3g} "
                   f"± {metrics.get('normalised_frechet_sd', float('nan')):.2g} vs the Gaussian's "
                   f"{metrics.get('gaussian_normalised_frechet', float('nan')):.3g} ± "
                   f"{metrics.get('gaussian_normalised_frechet_sd', float('nan')):.2g} over "
                   f"{metrics.get('normalised_frechet_seeds', '?')} seeds; copies flagged "
                   f"{metrics.get('memorisation_fraction_flagged', float('nan')):.0%} (held-out "
                   f"real {metrics.get('memorisation_heldout_flagged', float('nan')):.0%}, planted "
                   f"copies found {metrics.get('memorisation_planted_recall', float('nan')):.0%}).")
    st.caption("The verdict above the grid compares these with the project's targets and "
               "with the Gaussian baseline.")
