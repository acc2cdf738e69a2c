"""The models an attribute edit needs, and the fitted direction (or why there is none)."""

from __future__ import annotations

from dataclasses import dataclass
import streamlit as st

from brainlab.analysis import attribute_edits, derived_results
from brainlab.data import Cohort
from brainlab.errors import BrainlabInputError
from app_pages._checkpoint_identity import checkpoint_key
from app_pages._models import model_picker
from app_pages._results import checkpoint, derived_result


@dataclass
class EditModels:
    """The encoder and classifiers of an edit (None where missing) and their cache keys."""

    encoder: object
    sex: object
    age: object
    needs_encoder: bool
    keys: tuple[str, str, str]   # checkpoint_key of encoder, sex classifier, age model
    checkpoints: tuple           # derived_results checkpoints of the same three (or None)


def edit_models(cohort: Cohort, source: str, encoder, encoder_card,
                needs_encoder: bool) -> EditModels:
    """Pick the sex classifier and brain-age model side by side, and the encoder if needed."""
    left, right = st.columns(2)
    with left:
        sex_model, sex_card = model_picker("sex-clf", cohort, source, show_card=False)
    with right:
        age_model, age_card = model_picker("age-model", cohort, source, show_card=False)
    if needs_encoder and encoder is None:
        encoder, encoder_card = model_picker("encoder", cohort, source, show_card=False)
    return EditModels(encoder, sex_model, age_model, needs_encoder,
                      (checkpoint_key(encoder_card), checkpoint_key(sex_card),
                       checkpoint_key(age_card)),
                      (checkpoint(encoder, encoder_card), checkpoint(sex_model, sex_card),
                       checkpoint(age_model, age_card)))


def fitted_direction(models: EditModels, name: str, direction_source: str, cohort: Cohort,
                     gan_checkpoint):
    """The fitted directions when they hold ``name``; otherwise say why (or show the
    background fit's progress) and return None."""
    if models.needs_encoder and models.encoder is None:
        st.info("Encoded real subjects need the GAN latent encoder (see above); choose "
                "'GAN samples labelled by the classifiers' and 'a GAN sample' to go on without it.")
        return None
    if direction_source == "samples" and models.sex is None and models.age is None:
        st.info("Labelling GAN samples needs the sex classifier or the brain-age model (see above).")
        return None
    encoder, sex_model, age_model = models.checkpoints
    try:
        directions = derived_result(
            derived_results.directions, cohort, gan_checkpoint, direction_source,
            encoder if direction_source != "samples" else None, sex_model, age_model,
            label="Fitting directions",
            error_text=lambda error: f"Could not fit the directions: {error}")
    except BrainlabInputError as error:
        st.error(f"Could not fit the directions: {error}")
        return None
    if directions is None:
        return None
    if name not in directions.available():
        st.warning(f"No {attribute_edits.ATTRIBUTE_NAMES[name]} direction could be fitted from the "
                   f"{directions.source}: {'; '.join(directions.notes) or 'no labels for it'}.")
        return None
    return directions
