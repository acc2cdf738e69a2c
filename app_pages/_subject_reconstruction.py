"""One subject's MRI-AE reconstruction and its scores, computed once per model and subject.

Shared by the Reconstructions page and the subject panel beside the Latent space map:
moving a slider, changing colour or revisiting a subject never runs the model again.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from brainlab.analysis.reconstructions import brain_mask_of, reconstruct_subjects, volume_errors
from brainlab.data import Cohort
from brainlab.errors import BrainlabInputError
from app_pages._checkpoint_identity import checkpoint_key


@st.cache_resource(show_spinner=False, max_entries=64)
def _reconstruction(identity: str, fingerprint: str, index: int, _model, _cohort):
    originals, recons = reconstruct_subjects(_model, _cohort, [index])
    return originals[0], recons[0], volume_errors(originals[0], recons[0], brain_mask_of(_model))


def subject_reconstruction(cohort: Cohort, model, card: dict, index: int
                           ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(original, reconstruction, scores) of subject ``index`` through ``model``, whose
    ``card`` keys the cache."""
    if not card:
        raise BrainlabInputError("a cached reconstruction needs the model's card (it keys "
                                 "the cache); found none")
    return _reconstruction(checkpoint_key(card), str(cohort.fingerprint), int(index), model, cohort)
