"""GAN lab's conditional part: generate at a sex and age, and the ageing sweep of one z."""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from brainlab.analysis.ageing_sweep import (VOXEL_THRESHOLD, ageing_summary, ageing_sweep,
                                            brain_volume_cc, changed_voxels, sweep_ages)
from brainlab.analysis.conditional_generation import generate_conditioned
from brainlab.analysis.gan_walks import frames_to_nifti_bytes
from brainlab.viz import difference_figure, triplanar_grid
from brainlab.viz.gan_plots import sample_grid_figure, thumbnail_strip_figure
from app_pages._cohort_views import cohort_mean_images
from app_pages._state import url_choice, url_number


@st.cache_data(show_spinner=False, max_entries=8)
def _conditioned(gan_key: str, sex: str, age, n: int, seed: int, _gan) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    volumes = generate_conditioned(_gan, [sex] * n, [age] * n, seed=seed)
    return volumes, time.perf_counter() - start


@st.cache_data(show_spinner=False, max_entries=8)
def _swapped(gan_key: str, sex: str, age, n: int, seed: int, _gan) -> np.ndarray:
    """The first of ``_conditioned``'s samples (same z: the first of the n drawn) at ``sex``."""
    z = _gan.sample_latent(n, seed)[:1]
    return generate_conditioned(_gan, [sex], [age], z=z)[0]


@st.cache_data(show_spinner=False, max_entries=8)
def _sweep(gan_key: str, cohort_key: str, sex: str, ages: tuple, seed: int, _gan, _cohort,
           _means):
    return ageing_sweep(_gan, sex, list(ages), seed=seed, cohort=_cohort, means=_means)


def _age_control(gan, column):
    spec = gan.condition_spec
    if spec.age_encoding == "bins":
        labels = list(spec.age_bin_labels)
        label = url_choice(column.selectbox, "Age bin", labels, "cage", labels[0])
        return labels.index(label), label
    low, high = spec.age_range
    age = url_number(column.slider, "Age (years)", int(np.ceil(low)), int(np.floor(high)),
                     "cage", int(round((low + high) / 2)))
    return float(age), f"{age} y"


def conditional_section(gan, gan_key: str, cohort, affine, plane: str) -> None:
    """'Generate: sex, age' controls, the samples, a sex swap at the same z and the sweep."""
    st.header("Generate: sex, age")
    if not getattr(gan, "conditional", False):
        st.info("This GAN is not conditional (trained before sex/age conditioning): retrain "
                "it with `python -m brainlab train gan` to ask for a sex and an age.")
        return
    spec = gan.condition_spec
    st.markdown(f"This GAN is {spec.describe()}. Pick a sex and an age; the same seed gives "
                "the same latents, so only the condition changes between requests.")
    columns = st.columns([1, 2, 1, 1])
    sex = url_choice(columns[0].radio, "Sex", list(spec.sexes), "csex", spec.sexes[-1],
                     horizontal=True)
    age, age_label = _age_control(gan, columns[1])
    n = url_number(columns[2].slider, "Conditioned samples", 2, 16, "cn", 8)
    seed = url_number(columns[3].number_input, "Condition seed", 0, 2**31 - 1, "cseed", 0, step=1)
    volumes, seconds = _conditioned(gan_key, sex, age, n, seed, gan)
    st.plotly_chart(sample_grid_figure(volumes, labels=[f"{sex} {age_label} #{i}"
                                                        for i in range(n)],
                                       plane=plane, columns=min(4, n)),
                    width="stretch", key="conditioned_grid")
    st.caption(f"{n} samples at {sex}, {age_label} (seed {seed}), generated in "
               f"{seconds * 1000:.0f} ms ({seconds * 1000 / n:.1f} ms per sample).")
    _sex_swap(gan, gan_key, volumes[0], sex, age, age_label, n, seed, affine)
    _sweep_view(gan, gan_key, cohort, sex, seed, affine, plane)


def _sex_swap(gan, gan_key, first, sex, age, age_label, n, seed, affine) -> None:
    """The first sample (``first``) beside the same z with the other sex: the size of
    the change."""
    others = [s for s in gan.condition_spec.sexes if s != sex]
    if not others:
        return
    other = others[0]
    swapped = _swapped(gan_key, other, age, n, seed, gan)
    changed = changed_voxels(swapped[None], first)[0]
    cc = brain_volume_cc(np.stack([first, swapped]), affine)
    st.plotly_chart(triplanar_grid({f"{sex}, {age_label}": first,
                                    f"{other}, {age_label} (same z)": swapped},
                                   affine, value_range=(0.0, 1.0), row_height=200),
                    width="stretch", key="conditioned_swap")
    st.caption(f"Only the sex changes: {changed} voxels differ by more than {VOXEL_THRESHOLD}; "
               f"brain volume {cc[0]:.0f} cc ({sex}) vs {cc[1]:.0f} cc ({other}), "
               f"{cc[1] - cc[0]:+.1f} cc.")


def _sweep_view(gan, gan_key, cohort, sex, seed, affine, plane) -> None:
    st.subheader("Ageing sweep")
    spec = gan.condition_spec
    frames = 8
    if spec.age_encoding == "years":
        frames = url_number(st.slider, "Sweep frames", 3, 16, "cframes", 8)
    ages = tuple(sweep_ages(gan, count=frames))
    with st.spinner("Sweeping age …"):
        means = cohort_mean_images(cohort) if cohort.images is not None else None
        sweep = _sweep(gan_key, cohort.fingerprint, sex, ages, seed, gan, cohort, means)
    st.plotly_chart(thumbnail_strip_figure(sweep.generated, plane=plane, labels=sweep.labels),
                    width="stretch", key="sweep_generated")
    st.caption("Generated: one z, " + " → ".join(sweep.labels) + ". Changed voxels vs the first "
               "frame: " + ", ".join(str(v) for v in sweep.voxels_changed) + "; brain cc: "
               + ", ".join(f"{v:.0f}" for v in sweep.brain_cc) + ".")
    if sweep.true is not None:
        st.plotly_chart(thumbnail_strip_figure(sweep.true, plane=plane, labels=sweep.labels),
                        width="stretch", key="sweep_true")
        st.caption("True ageing: the cohort's mean brain of the same sex in the nearest age "
                   "bin; brain cc: " + ", ".join(f"{v:.0f}" for v in sweep.true_brain_cc) + ".")
        st.plotly_chart(difference_figure(
            sweep.generated[-1] - sweep.generated[0], affine,
            truth=sweep.true[-1] - sweep.true[0],
            labels=("generated: last − first", "true: last − first"), row_height=200),
            width="stretch", key="sweep_maps")
        st.caption("Ageing maps (oldest − youngest, red = brighter with age): in this run "
                   f"they correlate r = {sweep.map_correlation:+.2f} inside the brain "
                   "(+1 would be the same pattern as the cohort's).")
    st.markdown(ageing_summary(sweep))
    st.download_button("Download the sweep (4D NIfTI)",
                       frames_to_nifti_bytes(sweep.generated, affine),
                       file_name=f"ageing_sweep_{sex}_seed{seed}.nii.gz",
                       mime="application/gzip", key="sweep_download")
