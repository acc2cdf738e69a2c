"""The GAN's held-out quality figures from its model card, beside the sample grid."""

from __future__ import annotations

import streamlit as st


def _fmt(value, fmt: str = "{:.3g}") -> str:
    return "—" if value is None else fmt.format(value)


def _metric(label: str, value, baseline: str | None, fmt: str = "{:.3g}", help_text=None):
    st.metric(label, _fmt(value, fmt), help=help_text, delta=baseline, delta_color="off",
              delta_arrow="off")


def _calibrated(metrics: dict) -> None:
    """Calibrated figures (issue targets), each with the baseline on the same subjects."""
    first, second = st.columns(2)
    sd = metrics.get("normalised_frechet_sd")
    with first:
        value = metrics["normalised_frechet"]
        _metric("Normalised Fréchet", value,
                f"Gaussian {_fmt(metrics.get('gaussian_normalised_frechet'))} · real 1.0",
                fmt="{:.2f}" + (f" ± {sd:.2f}" if sd is not None else ""),
                help_text="Fréchet distance to the training brains over that of unseen real "
                          "brains (1.0 = as real as new subjects; two real sets of this size "
                          "differ by about 20%). Target ≤ 1.5 and 20% below the Gaussian.")
        _metric("Diversity", metrics.get("diversity_ratio"), "× real (target ≥ 0.9)",
                fmt="{:.2f}×", help_text="Mean pairwise distance of samples over that of "
                                        "held-out real brains; far below 1 = mode collapse.")
    with second:
        _metric("Two-sample AUC", metrics.get("two_sample_auc"),
                f"Gaussian {_fmt(metrics.get('gaussian_two_sample_auc'))} · target ≤ 0.70",
                help_text="Cross-validated AUC of a classifier telling samples from real brains "
                          "(0.5 = indistinguishable).")
        _metric("Flagged as copies", metrics.get("memorisation_fraction_flagged"),
                f"held-out real {_fmt(metrics.get('memorisation_heldout_flagged'), '{:.0%}')}",
                fmt="{:.0%}",
                help_text="Samples closer to one of all training brains than the threshold "
                          "calibrated on held-out real brains; planted copies are found "
                          f"{_fmt(metrics.get('memorisation_planted_recall'), '{:.0%}')} of "
                          "the time.")
    low, high = metrics.get("two_sample_auc_low"), metrics.get("two_sample_auc_high")
    ci = f" (AUC 95% CI {low:.3f}–{high:.3f})" if low is not None and high is not None else ""
    st.caption(f"Baseline: a class-conditional Gaussian fitted to the same codes, decoded by "
               f"the same decoder. {metrics.get('normalised_frechet_seeds', '?')} seeds, "
               f"n={metrics.get('n', '?')} held-out brains{ci}.")


def _legacy(metrics: dict) -> None:
    """Cards from before the calibrated metrics: the uncalibrated ratio, said to be so."""
    first, second = st.columns(2)
    with first:
        _metric("Fréchet ratio (uncalibrated)", metrics.get("frechet_ratio"),
                f"Gaussian {_fmt(metrics.get('gaussian_frechet_ratio'))}")
    with second:
        _metric("Two-sample AUC", metrics.get("two_sample_auc"),
                f"Gaussian {_fmt(metrics.get('gaussian_two_sample_auc'))}")
    st.caption("This card predates the calibrated metrics: re-evaluate it with "
               "`python -m brainlab evaluate <checkpoint> --write-card`.")


def gan_quality(card: dict) -> None:
    """Held-out quality beside the Gaussian baseline (calibrated when the card has it)."""
    metrics = card.get("metrics", {})
    st.markdown("**Held-out quality (from the model card)**")
    if "normalised_frechet" in metrics:
        _calibrated(metrics)
    else:
        _legacy(metrics)
    st.caption("The verdict above the grid compares these with the project's targets and "
               "with the Gaussian baseline.")
