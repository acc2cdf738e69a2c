"""GAN lab: sample synthetic brains, walk between two of them, and edit age or sex."""

import hashlib
import json
import time

import numpy as np
import streamlit as st

from brainlab.analysis import attribute_edits
from brainlab.analysis.directions import direction_correlation
from brainlab.analysis.gan_walks import (frames_to_nifti_bytes, frames_to_png_strip,
                                         render_frames, seed_latent, subject_latent, walk)
from brainlab.data.grid import mni_affine
from brainlab.errors import BrainlabInputError
from brainlab.viz import PLANES, difference_figure, triplanar_figure, triplanar_grid
from brainlab.viz.gan_plots import (animation_figure, effectiveness_figure, sample_grid_figure,
                                    thumbnail_strip_figure)
from pages._models import model_picker
from pages._shared import cohort_sidebar, phantom_effect_maps, query_value, sync_query

MAX_STRENGTH = 3.0
CURVE_STRENGTHS = np.linspace(-MAX_STRENGTH, MAX_STRENGTH, 9)

cohort, source = cohort_sidebar()
st.title("GAN lab")
st.markdown("Sample synthetic brains from the GAN, walk between two of them (or two real "
            "subjects), and push a brain along an age or sex direction in the GAN's latent space.")
if cohort.images is None:
    st.info("This cohort is table-only (no images); the GAN lab needs a cohort with brain images.")
    st.stop()

gan, gan_card = model_picker("gan", cohort, source)
if gan is None:
    st.stop()


def card_key(card) -> str:
    """A short digest of a model card: identifies the checkpoint in cache keys."""
    if card is None:
        return "none"
    return hashlib.sha1(json.dumps(card, sort_keys=True, default=str).encode()).hexdigest()[:16]


def init_state(key: str, value) -> None:
    """Seed a widget's session state from the URL the first time the page runs."""
    if key not in st.session_state:
        st.session_state[key] = value


gan_key = card_key(gan_card)
affine = mni_affine(tuple(gan.grid_shape))
ids = cohort.subject_ids
split = cohort.split(int(gan_card.get("cohort", {}).get("split_seed", 0)))
heldout_ids = [ids[i] for i in split.test] or ids

with st.sidebar:
    st.markdown("### View")
    init_state("gl_plane", query_value("plane", "axial") if query_value("plane") in PLANES else "axial")
    plane = st.selectbox("Slice plane", PLANES, key="gl_plane",
                         help="Plane of the sample grid, animation and thumbnails.")
sync_query(plane=plane)


# ---------------------------------------------------------------- cached computations
# Entries hold volume stacks (up to ~30 MB each on the HCP grid): keep few of them.
@st.cache_data(show_spinner=False, max_entries=8)
def sample_volumes(model_key: str, seed: int, n: int, _gan) -> np.ndarray:
    latents = np.asarray(_gan.sample_latent(n, seed), dtype=np.float32)
    return render_frames(_gan, latents)


@st.cache_data(show_spinner=False, max_entries=64)
def endpoint_latent(model_key: str, encoder_key: str, fingerprint: str, spec: str,
                    refine: int, _gan, _encoder) -> np.ndarray:
    """z of a seed ('seed:7') or of a real subject ('subject:sub-0001') encoded by E."""
    kind, value = spec.split(":", 1)
    if kind == "seed":
        return seed_latent(_gan, int(value))
    return subject_latent(_encoder, cohort, value, refine)


@st.cache_data(show_spinner=False, max_entries=8)
def walk_frames(model_key: str, encoder_key: str, fingerprint: str, start: str, end: str,
                refine: int, method: str, n_frames: int, _gan, _encoder):
    z_start = endpoint_latent(model_key, encoder_key, fingerprint, start, refine, _gan, _encoder)
    z_end = endpoint_latent(model_key, encoder_key, fingerprint, end, refine, _gan, _encoder)
    began = time.perf_counter()
    path, frames = walk(_gan, z_start, z_end, n_frames, method=method)
    return path, frames, time.perf_counter() - began


@st.cache_data(show_spinner=False, max_entries=4)
def nifti_bytes(model_key: str, start: str, end: str, refine: int, method: str, n_frames: int,
                _frames) -> bytes:
    return frames_to_nifti_bytes(_frames, affine)


@st.cache_data(show_spinner=False, max_entries=16)
def fitted_directions(model_key: str, encoder_key: str, sex_key: str, age_key: str,
                      fingerprint: str, source_name: str, n_samples: int,
                      _gan, _encoder, _sex, _age):
    if source_name == "real":
        return attribute_edits.directions_from_real(_encoder, cohort, split.train)
    if source_name == "both":
        return attribute_edits.directions_from_both(_encoder, cohort, split.train, _gan, n_samples,
                                                    seed=0, sex_model=_sex, age_model=_age)
    return attribute_edits.directions_from_samples(_gan, n_samples, seed=0, sex_model=_sex,
                                                   age_model=_age)


@st.cache_data(show_spinner=False, max_entries=32)
def effectiveness(model_key: str, sex_key: str, age_key: str, direction_key: str,
                  start_key: str, _gan, _z, _direction, _sex, _age) -> dict:
    curve = attribute_edits.effectiveness_curve(_gan, _z, _direction, CURVE_STRENGTHS, _sex, _age)
    curve.pop("volumes")
    return curve


@st.cache_data(show_spinner=False, max_entries=32)
def average_edit(model_key: str, direction_key: str, strength: float, _gan, _direction):
    return attribute_edits.mean_edit_effect(_gan, _direction, strength, n=16, seed=0)


# ---------------------------------------------------------------- 1. samples
st.header("Samples")
controls = st.columns([1, 1, 4])
init_state("gl_seed", query_value("seed", 0, int))
init_state("gl_n", int(np.clip(query_value("n", 8, int), 2, 32)))
seed = int(controls[0].number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="gl_seed",
                                    help="Same seed, same samples: the seed is in the URL."))
n_samples = int(controls[1].slider("Samples", 2, 32, key="gl_n"))
sync_query(seed=seed, n=n_samples)

grid_col, quality_col = st.columns([3, 2])
with grid_col:
    with st.spinner("Generating samples …"):
        samples = sample_volumes(gan_key, seed, n_samples, gan)
    st.plotly_chart(sample_grid_figure(samples, labels=[f"#{i}" for i in range(n_samples)],
                                       plane=plane, columns=min(4, n_samples)),
                    width="stretch", key="sample_grid")
    st.caption(f"Mid-{plane} slices of {n_samples} samples from seed {seed}: look for brain-like "
               "anatomy, variety between samples, and artefacts (blur, checkerboards).")
with quality_col:
    metrics = gan_card.get("metrics", {})
    st.markdown("**Held-out quality (from the model card)**")

    def show(label, key, target, fmt="{:.3g}", help_text=None):
        value = metrics.get(key)
        st.metric(label, "—" if value is None else fmt.format(value), help=help_text,
                  delta=target, delta_color="off", delta_arrow="off")

    first, second = st.columns(2)
    with first:
        show("Fréchet ratio", "frechet_ratio", "target ≤ 2",
             help_text="PCA-Fréchet distance of samples vs held-out real, divided by the "
                       "real-vs-real floor (1 = as close as new real brains).")
        show("Diversity (samples)", "diversity_generated",
             f"real {metrics['diversity_real']:.3g}" if metrics.get("diversity_real") else None,
             help_text="Mean pairwise RMS distance; far below the real value = mode collapse.")
    with second:
        show("Two-sample AUC", "two_sample_auc", "target ≤ 0.75",
             help_text="Cross-validated AUC of a classifier telling samples from real brains "
                       "(0.5 = indistinguishable).")
        show("Suspected copies", "memorisation_fraction_suspected", "≈5% by chance", fmt="{:.0%}",
             help_text="Samples closer to a training brain than 95% of held-out real brains are.")
    if "gaussian_frechet_ratio" in metrics:
        st.caption(f"Baseline (fitted Gaussian in the autoencoder's code space): Fréchet ratio "
                   f"{metrics['gaussian_frechet_ratio']:.3g}, two-sample AUC "
                   f"{metrics.get('gaussian_two_sample_auc', float('nan')):.3g}. "
                   f"Computed on n={metrics.get('n', '?')} held-out brains.")
    st.caption("The verdict above the grid compares these with the project's targets.")

# ---------------------------------------------------------------- 2. interpolation
st.header("Interpolation")
encoder, encoder_card = None, None
init_state("gl_ends", query_value("ends", "seeds") if query_value("ends") in ("seeds", "subjects")
           else "seeds")
ends = st.radio("Endpoints", ["seeds", "subjects"], horizontal=True, key="gl_ends",
                format_func={"seeds": "two random seeds",
                             "subjects": "two real subjects (encoded)"}.get)
refine = 0
if ends == "subjects":
    encoder, encoder_card = model_picker("encoder", cohort, source, show_card=False)
    if encoder is None:
        ends = "seeds"
        st.caption("Falling back to two random seeds.")
encoder_key = card_key(encoder_card)
columns = st.columns(5)
if ends == "seeds":
    init_state("gl_from", query_value("from", 0, int))
    init_state("gl_to", query_value("to", 1, int))
    start_seed = int(columns[0].number_input("From seed", 0, 2**31 - 1, step=1, key="gl_from"))
    end_seed = int(columns[1].number_input("To seed", 0, 2**31 - 1, step=1, key="gl_to"))
    start, end = f"seed:{start_seed}", f"seed:{end_seed}"
    sync_query(**{"from": start_seed, "to": end_seed})
else:
    first_id = query_value("from", heldout_ids[0])
    second_id = query_value("to", heldout_ids[min(1, len(heldout_ids) - 1)])
    init_state("gl_from_subject", first_id if first_id in ids else heldout_ids[0])
    init_state("gl_to_subject", second_id if second_id in ids else ids[-1])
    start_id = columns[0].selectbox("From subject", ids, key="gl_from_subject")
    end_id = columns[1].selectbox("To subject", ids, key="gl_to_subject")
    init_state("gl_refine", int(np.clip(query_value("refine", 10, int), 0, 100)))
    refine = int(columns[2].slider("Refinement steps", 0, 100, key="gl_refine",
                                   help="Adam steps on z after encoding, so G(z) matches the "
                                        "subject more closely (slower)."))
    start, end = f"subject:{start_id}", f"subject:{end_id}"
    sync_query(**{"from": start_id, "to": end_id, "refine": refine})
init_state("gl_method", query_value("method", "slerp") if query_value("method") in ("slerp", "lerp")
           else "slerp")
method = columns[3].radio("Path", ["slerp", "lerp"], key="gl_method", horizontal=True,
                          help="slerp stays on the shell where N(0, I) latents live; lerp cuts "
                               "through the middle (often blurrier midpoints).")
init_state("gl_frames", int(np.clip(query_value("frames", 8, int), 2, 32)))
n_frames = int(columns[4].slider("Frames", 2, 32, key="gl_frames"))
sync_query(ends=ends, method=method, frames=n_frames)

try:
    with st.spinner("Rendering frames …"):
        path, frames, render_seconds = walk_frames(gan_key, encoder_key, cohort.fingerprint,
                                                   start, end, refine, method, n_frames, gan,
                                                   encoder)
except BrainlabInputError as error:
    st.error(f"Could not build the walk: {error}")
    frames = None


@st.fragment
def frame_viewer(frames: np.ndarray, path: np.ndarray, render_seconds: float) -> None:
    """Frame slider, the chosen frame, the animation and the strip; reruns alone."""
    n_frames = len(frames)
    init_state("gl_frame", int(np.clip(query_value("frame", 0, int), 0, n_frames - 1)))
    if st.session_state["gl_frame"] > n_frames - 1:
        st.session_state["gl_frame"] = n_frames - 1
    frame = int(st.slider("Frame", 0, n_frames - 1, key="gl_frame"))
    sync_query(frame=frame)
    view_col, anim_col = st.columns([3, 2])
    with view_col:
        st.plotly_chart(triplanar_figure(frames[frame], affine, value_range=(0.0, 1.0),
                                         title=f"frame {frame} of {n_frames - 1} "
                                               f"(t = {frame / (n_frames - 1):.2f}, |z| = "
                                               f"{np.linalg.norm(path[frame]):.1f})",
                                         row_height=280),
                        width="stretch", key="walk_frame")
        st.caption("The brain at the chosen frame: look for a smooth change of anatomy from "
                   "start to end, without jumps or frames that stop looking like a brain.")
    with anim_col:
        st.plotly_chart(animation_figure(frames, affine, plane=plane, height=330),
                        width="stretch", key="walk_animation")
        st.caption("Press ▶ play to watch the walk; a good latent space morphs smoothly.")
    st.plotly_chart(thumbnail_strip_figure(frames, plane=plane, current=frame),
                    width="stretch", key="walk_strip")
    st.caption("Every frame's mid-slice; the yellow frame is the one shown above. "
               f"The {n_frames} frames were decoded once in {render_seconds * 1000:.0f} ms "
               f"({render_seconds * 1000 / n_frames:.1f} ms per frame) and are cached.")


if frames is not None:
    frame_viewer(frames, path, render_seconds)
    downloads = st.columns(2)
    stem = f"walk_{start.split(':', 1)[1]}_to_{end.split(':', 1)[1]}_{method}_{n_frames}"
    downloads[0].download_button(
        "Download 4D NIfTI", nifti_bytes(gan_key, start, end, refine, method, n_frames, frames),
        file_name=f"{stem}.nii.gz", mime="application/gzip",
        help="Frames as the 4th dimension, on the cohort grid with its MNI affine.",
        on_click="ignore")
    downloads[1].download_button("Download PNG strip", frames_to_png_strip(frames),
                                 file_name=f"{stem}.png", mime="image/png", on_click="ignore")

# ---------------------------------------------------------------- 3. attribute directions
st.header("Attribute directions")
st.markdown("InterFaceGAN-style directions in z: a linear model of sex or age on labelled "
            "latents; moving a latent along its normal should change that attribute only.")
dir_columns = st.columns(3)
DIRECTION_SOURCES = {"real": "encoded real subjects (train split)",
                     "samples": "GAN samples labelled by the classifiers",
                     "both": "both together"}
init_state("gl_dsource", query_value("dsource", "real") if query_value("dsource") in DIRECTION_SOURCES
           else "real")
direction_source = dir_columns[0].radio("Fit on", list(DIRECTION_SOURCES), key="gl_dsource",
                                        format_func=DIRECTION_SOURCES.get)
init_state("gl_attribute", query_value("attribute", "age") if query_value("attribute") in ("age", "sex")
           else "age")
attribute = dir_columns[1].radio("Attribute", ["age", "sex"], key="gl_attribute", horizontal=True)
init_state("gl_conditional", query_value("conditional", "1") == "1")
conditional = dir_columns[1].checkbox("Age orthogonal to sex", key="gl_conditional",
                                      disabled=attribute != "age",
                                      help="Remove the sex direction's component from the age "
                                           "direction, so an age edit leaves sex unchanged.")
init_state("gl_estart", query_value("estart", "sample") if query_value("estart") in ("sample", "subject")
           else "sample")
edit_start = dir_columns[2].radio("Start from", ["sample", "subject"], key="gl_estart",
                                  format_func={"sample": "a GAN sample",
                                               "subject": "an encoded real subject"}.get)
sync_query(dsource=direction_source, attribute=attribute, conditional=int(conditional),
           estart=edit_start)

classifier_columns = st.columns(2)
with classifier_columns[0]:
    sex_model, sex_card = model_picker("sex-clf", cohort, source, show_card=False)
with classifier_columns[1]:
    age_model, age_card = model_picker("age-model", cohort, source, show_card=False)
needs_encoder = direction_source in ("real", "both") or edit_start == "subject"
if needs_encoder and encoder is None:
    encoder, encoder_card = model_picker("encoder", cohort, source, show_card=False)
    encoder_key = card_key(encoder_card)

directions = None
if needs_encoder and encoder is None:
    st.info("Encoded real subjects need the GAN latent encoder (see above); choose "
            "'GAN samples labelled by the classifiers' and 'a GAN sample' to go on without it.")
elif direction_source == "samples" and sex_model is None and age_model is None:
    st.info("Labelling GAN samples needs the sex classifier or the brain-age model (see above).")
else:
    try:
        with st.spinner("Fitting directions (once per checkpoint and cohort) …"):
            directions = fitted_directions(gan_key, encoder_key, card_key(sex_card),
                                           card_key(age_card), cohort.fingerprint,
                                           direction_source, 256, gan, encoder, sex_model,
                                           age_model)
    except BrainlabInputError as error:
        st.error(f"Could not fit the directions: {error}")

name = "age_given_sex" if attribute == "age" and conditional else attribute
if directions is not None and name not in directions.available():
    reason = "; ".join(directions.notes) or "no labels for it"
    st.warning(f"No {attribute_edits.ATTRIBUTE_NAMES[name]} direction could be fitted from "
               f"the {directions.source}: {reason}.")
    directions = None

if directions is not None:
    direction = directions.get(name)
    direction_key = "|".join([name, direction_source, encoder_key, card_key(sex_card),
                              card_key(age_card), cohort.fingerprint])
    cosine = directions.cosine_sex_age()
    st.caption(f"Fitted on {directions.source}"
               + (f"; cos(sex, age) = {cosine:+.2f}" if cosine is not None else "")
               + ". Strength is in units of z's standard deviation along the direction.")
    start_columns = st.columns([1, 1, 3])
    if edit_start == "sample":
        init_state("gl_eseed", query_value("eseed", seed, int))
        edit_seed = int(start_columns[0].number_input("Sample seed", 0, 2**31 - 1, step=1,
                                                      key="gl_eseed"))
        start_spec = f"seed:{edit_seed}"
        sync_query(eseed=edit_seed, esubject=None)
    else:
        wanted = query_value("esubject", heldout_ids[0])
        init_state("gl_esubject", wanted if wanted in ids else heldout_ids[0])
        edit_subject = start_columns[0].selectbox("Subject", ids, key="gl_esubject")
        start_spec = f"subject:{edit_subject}"
        sync_query(esubject=edit_subject, eseed=None)
    init_state("gl_strength", float(np.clip(query_value("strength", 2.0, float),
                                            -MAX_STRENGTH, MAX_STRENGTH)))
    strength = float(start_columns[1].slider("Strength", -MAX_STRENGTH, MAX_STRENGTH, step=0.25,
                                             key="gl_strength"))
    sync_query(strength=strength)
    z_start = endpoint_latent(gan_key, encoder_key, cohort.fingerprint, start_spec, 0, gan, encoder)
    z_edited = attribute_edits.edit(z_start, direction, strength).astype(np.float32)
    start_volume, edited_volume = render_frames(gan, np.stack([z_start, z_edited]))
    difference = edited_volume - start_volume

    brain_col, curve_col = st.columns([3, 2])
    with brain_col:
        st.plotly_chart(triplanar_grid({"start": start_volume,
                                        f"edited ({strength:+.2f})": edited_volume},
                                       affine, value_range=(0.0, 1.0), row_height=230),
                        width="stretch", key="edit_brains")
        st.caption("The starting brain and the edited one at the same slices: an age edit "
                   "should widen ventricles and sulci, a sex edit mostly change overall size.")
    with curve_col:
        if sex_model is None and age_model is None:
            st.info("Train the sex classifier or the brain-age model to see whether the edit "
                    "changes what they predict.")
        else:
            curve = effectiveness(gan_key, card_key(sex_card), card_key(age_card), direction_key,
                                  start_spec, gan, z_start, direction, sex_model, age_model)
            unit = "years" if age_model is None or getattr(age_model, "target", "years") == "years" \
                else "age bin"
            st.plotly_chart(effectiveness_figure(curve["strength"],
                                                 {"P(male)": curve["p_male"],
                                                  f"predicted age ({unit})": curve["age"]},
                                                 current=strength),
                            width="stretch", key="edit_effectiveness")
            target = "P(male)" if attribute == "sex" else "predicted age"
            st.caption(f"What the classifiers say about the edited brain over edit strength: a "
                       f"working {attribute} edit moves {target} steadily"
                       + (" while P(male) stays flat." if name == "age_given_sex" else "."))

    largest_change = float(np.abs(difference).max())
    if largest_change < 1e-3:
        st.warning(f"This edit barely changes the brain (largest voxel change "
                   f"{largest_change:.1e} on the 0–1 intensity scale): the generator ignores "
                   "this direction — typical of a collapsed or undertrained GAN (compare its "
                   "sample diversity with the real diversity above).")
    truth_maps = phantom_effect_maps(source)
    truth = None if truth_maps is None else truth_maps["sex" if attribute == "sex" else "age"]
    if truth is not None and truth.shape == difference.shape:
        mask = (np.abs(truth) > 1e-6) | (start_volume > 0.05)
        correlation = direction_correlation(difference, truth, mask=mask)
        mean_effect = average_edit(gan_key, direction_key, strength, gan, direction)
        mean_correlation = direction_correlation(mean_effect, truth, mask=mask)
        truth_label = "true sex effect (M − F)" if attribute == "sex" else "true ageing effect"
        st.plotly_chart(difference_figure(difference, affine, truth=truth,
                                          labels=("edited − start", truth_label), row_height=230),
                        width="stretch", key="edit_difference")
        metric_columns = st.columns(2)
        metric_columns[0].metric("Correlation with the true effect (this brain)", f"{correlation:+.2f}")
        metric_columns[1].metric("…averaged over 16 samples", f"{mean_correlation:+.2f}")
        st.caption("The edit's difference map (diverging scale, red = brighter) beside the "
                   "phantom's true effect map: a faithful edit has the same red/blue pattern "
                   "(correlation near +1 for positive strengths, −1 for negative).")
    else:
        st.plotly_chart(difference_figure(difference, affine, labels=("edited − start", "")),
                        width="stretch", key="edit_difference")
        st.caption("The edit's difference map on a diverging scale (red = brighter after the "
                   "edit). Only phantom cohorts have a true effect map to compare with.")
