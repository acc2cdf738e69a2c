"""GAN lab: sample synthetic brains, walk between two of them, and edit age or sex."""

import numpy as np
import streamlit as st

from brainlab.analysis import attribute_edits, derived_results
from brainlab.analysis.gan_walks import render_frames
from brainlab.analysis.judged_subjects import judged_subjects
from brainlab.data.grid import mni_affine
from brainlab.errors import BrainlabInputError
from brainlab.viz import PLANES
from brainlab.viz.gan_plots import sample_grid_figure
from app_pages._checkpoint_identity import checkpoint_key
from app_pages._cohort_picker import current_cohort
from app_pages._cohort_views import phantom_effect_maps
from app_pages._gan_computations import MAX_STRENGTH, endpoint_latent, walk_frames
from app_pages._gan_conditional import conditional_section
from app_pages._gan_directions import edit_models, fitted_direction
from app_pages._gan_edit_views import edit_views
from app_pages._gan_quality import gan_quality
from app_pages._gan_walk import frame_viewer, walk_downloads
from app_pages._models import model_picker
from app_pages._results import checkpoint, derived_result
from app_pages._state import query_value, sync_query, url_checkbox, url_choice, url_number

ENDS = {"seeds": "two random seeds", "subjects": "two real subjects (encoded)"}
DIRECTION_SOURCES = {"real": "encoded real subjects",
                     "samples": "GAN samples labelled by the classifiers", "both": "both together"}
EDIT_STARTS = {"sample": "a GAN sample", "subject": "an encoded real subject"}
MAX_SEED = 2**31 - 1
SECTIONS = {"samples": "Samples", "generate": "Generate: sex, age", "walk": "Interpolation",
            "edit": "Attribute directions"}

# The settings each section keeps in the URL: a link from before the sections (or one
# without ?section=) opens the section its settings belong to.
SECTION_PARAMS = {"edit": ("dsource", "attribute", "conditional", "estart", "eseed", "esubject",
                           "strength"),
                  "walk": ("ends", "from", "to", "refine", "method", "frames", "frame"),
                  "generate": ("csex", "cage", "cn", "cseed", "cframes")}


def linked_section() -> str:
    """The section a link's settings point to (Samples when they name none)."""
    return next((name for name, params in SECTION_PARAMS.items()
                 if any(p in st.query_params for p in params)), "samples")


cohort, source = current_cohort()
st.title("GAN lab")
st.markdown("Sample synthetic brains from the GAN (at a chosen sex and age), walk between two of "
            "them (or two real subjects), and push a brain along an age or sex direction in z.")
if cohort.images is None:
    st.info("This cohort is table-only (no images); the GAN lab needs a cohort with brain images.")
    st.stop()
gan, gan_card = model_picker("gan", cohort, source)
if gan is None:
    st.stop()
gan_key, affine = checkpoint_key(gan_card), mni_affine(tuple(gan.grid_shape))
with st.sidebar:  # the view shared by every plot below
    plane = url_choice(st.selectbox, "Slice plane", list(PLANES), "plane", "axial",
                       help="Plane of the sample grid, animation and thumbnails.")
# One section per run: drawing all four (a dozen figures, eight decodes) took 5 s.
section = url_choice(st.radio, "Section", list(SECTIONS), "section", linked_section(),
                     horizontal=True, format_func=SECTIONS.get, label_visibility="collapsed")


def heldout_subjects() -> tuple[list[str], list[str]]:
    """All subject ids, and those the GAN's judges never trained on (all when none)."""
    ids = cohort.subject_ids
    return ids, [ids[i] for i in judged_subjects(cohort, gan_card).indices] or ids


def samples_section() -> None:
    """The seeded sample grid beside the GAN's held-out quality."""
    st.header("Samples")
    controls = st.columns([1, 1, 4])
    seed = url_number(controls[0].number_input, "Seed", 0, MAX_SEED, "seed", 0, step=1,
                      help="Same seed, same samples: the seed is in the URL.")
    n_samples = url_number(controls[1].slider, "Samples", 2, 32, "n", 8)
    grid_col, quality_col = st.columns([3, 2])
    with grid_col:
        # Fast enough to render here; kept on disk like every derived result.
        samples = derived_result(derived_results.gan_samples, checkpoint(gan, gan_card), n_samples,
                                 seed, background=False, label="Generating samples")["volumes"]
        st.plotly_chart(sample_grid_figure(samples, labels=[f"#{i}" for i in range(n_samples)],
                                           plane=plane, columns=min(4, n_samples)),
                        width="stretch", key="sample_grid")
        st.caption(f"Mid-{plane} slices of {n_samples} samples from seed {seed}: look for brain-like "
                   "anatomy, variety between samples, and artefacts (blur, checkerboards).")
    with quality_col:
        gan_quality(gan_card)


def walk_section() -> None:
    """Interpolation between two seeds or two encoded subjects."""
    ids, heldout_ids = heldout_subjects()
    encoder, encoder_card = None, None
    st.header("Interpolation")
    ends = url_choice(st.radio, "Endpoints", list(ENDS), "ends", "seeds", horizontal=True,
                      format_func=ENDS.get)
    if ends == "subjects":
        encoder, encoder_card = model_picker("encoder", cohort, source, show_card=False)
        if encoder is None:
            ends = "seeds"
            st.caption("Falling back to two random seeds.")
    columns, refine = st.columns(5), 0
    if ends == "seeds":
        start = f"seed:{url_number(columns[0].number_input, 'From seed', 0, MAX_SEED, 'from', 0, step=1)}"
        end = f"seed:{url_number(columns[1].number_input, 'To seed', 0, MAX_SEED, 'to', 1, step=1)}"
    else:
        start = f"subject:{url_choice(columns[0].selectbox, 'From subject', ids, 'from', heldout_ids[0])}"
        end = f"subject:{url_choice(columns[1].selectbox, 'To subject', ids, 'to', heldout_ids[-1])}"
        refine = url_number(columns[2].slider, "Refinement steps", 0, 100, "refine", 10,
                            help="Adam steps on z after encoding, so G(z) matches the subject more "
                                 "closely (slower).")
    method = url_choice(columns[3].radio, "Path", ["slerp", "lerp"], "method", "slerp", horizontal=True,
                        help="slerp stays on the shell where N(0, I) latents live; lerp cuts "
                             "through the middle (often blurrier midpoints).")
    n_frames = url_number(columns[4].slider, "Frames", 2, 32, "frames", 8)
    walk_key = (gan_key, checkpoint_key(encoder_card), cohort.fingerprint, start, end, refine, method,
                n_frames)
    try:
        with st.spinner("Rendering frames …"):
            path, frames, seconds = walk_frames(*walk_key, gan, encoder, cohort)
        frame_viewer(frames, path, seconds, affine, plane)
        walk_downloads(frames, affine, walk_key, f"walk_{start.split(':', 1)[1]}_to_"
                       f"{end.split(':', 1)[1]}_{method}_{n_frames}")
    except BrainlabInputError as error:
        st.error(f"Could not build the walk: {error}")


def edit_section() -> None:
    """An attribute direction fitted in z, and one brain edited along it."""
    ids, heldout_ids = heldout_subjects()
    st.header("Attribute directions")
    st.markdown("InterFaceGAN-style directions in z: a linear model of sex or age on labelled "
                "latents; moving a latent along its normal should change that attribute only.")
    dir_columns = st.columns(3)
    direction_source = url_choice(dir_columns[0].radio, "Fit on", list(DIRECTION_SOURCES), "dsource",
                                  "real", format_func=DIRECTION_SOURCES.get)
    attribute = url_choice(dir_columns[1].radio, "Attribute", ["age", "sex"], "attribute", "age",
                           horizontal=True)
    conditional = url_checkbox(dir_columns[1].checkbox, "Age orthogonal to sex", "conditional", True,
                               disabled=attribute != "age",
                               help="Remove the sex direction's component from the age direction, "
                                    "so an age edit leaves sex unchanged.")
    edit_start = url_choice(dir_columns[2].radio, "Start from", list(EDIT_STARTS), "estart", "sample",
                            format_func=EDIT_STARTS.get)
    models = edit_models(cohort, source, None, None,
                         needs_encoder=direction_source in ("real", "both") or edit_start == "subject")
    encoder, encoder_key = models.encoder, models.keys[0]
    model_keys = (gan_key,) + models.keys
    name = "age_given_sex" if attribute == "age" and conditional else attribute
    gan_checkpoint = checkpoint(gan, gan_card)
    directions = fitted_direction(models, name, direction_source, cohort, gan_checkpoint)
    if directions is not None:
        direction = directions.get(name)
        direction_key = "|".join((name, direction_source, cohort.fingerprint) + model_keys)
        cosine = directions.cosine_sex_age()
        st.caption(f"Fitted on {directions.source}"
                   + (f"; cos(sex, age) = {cosine:+.2f}" if cosine is not None else "")
                   + ". Strength is in units of z's standard deviation along the direction.")
        start_columns = st.columns([1, 1, 3])
        if edit_start == "sample":
            edit_seed = url_number(start_columns[0].number_input, "Sample seed", 0, MAX_SEED, "eseed",
                                   query_value("seed", 0, int), step=1)
            start_spec, _ = f"seed:{edit_seed}", sync_query(esubject=None)
        else:
            edit_subject = url_choice(start_columns[0].selectbox, "Subject", ids, "esubject",
                                      heldout_ids[0])
            start_spec, _ = f"subject:{edit_subject}", sync_query(eseed=None)
        strength = url_number(start_columns[1].slider, "Strength", -MAX_STRENGTH, MAX_STRENGTH,
                              "strength", 2.0, step=0.25)
        z_start = endpoint_latent(gan_key, encoder_key, cohort.fingerprint, start_spec, 0, gan,
                                  encoder, cohort)
        z_edited = attribute_edits.edit(z_start, direction, strength).astype(np.float32)
        start_volume, edited_volume = render_frames(gan, np.stack([z_start, z_edited]))
        truth = (phantom_effect_maps(source) or {}).get("sex" if attribute == "sex" else "age")
        edit_views(gan, affine, start_volume, edited_volume, strength, attribute, name,
                   direction_key, lambda: derived_result(
                       derived_results.edit_curve, cohort, gan_checkpoint, name, start_spec,
                       direction_source, *models.checkpoints, label="Scoring the edit over strength"),
                   direction, models.sex, models.age, truth)


SECTION_VIEWS = {"samples": samples_section,
                 "generate": lambda: conditional_section(gan, gan_key, cohort, affine, plane),
                 "walk": walk_section, "edit": edit_section}
SECTION_VIEWS[section]()
