"""GAN lab computations, cached per checkpoint (``checkpoint_key``) and cohort fingerprint.

Thin ``st.cache_data`` wrappers over ``brainlab.analysis`` (gan_walks,
attribute_edits); arguments starting with ``_`` are the objects the keys name.
Entries hold volume stacks (up to ~30 MB each on the HCP grid): few are kept.
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from brainlab.analysis import attribute_edits
from brainlab.analysis.gan_walks import (
    frames_to_nifti_bytes, seed_latent, subject_latent, walk,
)

MAX_STRENGTH = 3.0


@st.cache_data(show_spinner=False, max_entries=64)
def endpoint_latent(gan_key: str, encoder_key: str, fingerprint: str, spec: str, refine: int,
                    _gan, _encoder, _cohort) -> np.ndarray:
    """z of a seed (``"seed:7"``) or of a real subject (``"subject:sub-0001"``) encoded by E."""
    kind, value = spec.split(":", 1)
    if kind == "seed":
        return seed_latent(_gan, int(value))
    return subject_latent(_encoder, _cohort, value, refine)


@st.cache_data(show_spinner=False, max_entries=8)
def walk_frames(gan_key: str, encoder_key: str, fingerprint: str, start: str, end: str,
                refine: int, method: str, n_frames: int, _gan, _encoder, _cohort):
    """``(path, frames, seconds)`` of the walk from ``start`` to ``end``."""
    z_start = endpoint_latent(gan_key, encoder_key, fingerprint, start, refine, _gan, _encoder, _cohort)
    z_end = endpoint_latent(gan_key, encoder_key, fingerprint, end, refine, _gan, _encoder, _cohort)
    began = time.perf_counter()
    path, frames = walk(_gan, z_start, z_end, n_frames, method=method)
    return path, frames, time.perf_counter() - began


@st.cache_data(show_spinner=False, max_entries=4)
def nifti_bytes(walk_key: tuple, _frames, _affine) -> bytes:
    """The walk's frames as a gzipped 4D NIfTI."""
    return frames_to_nifti_bytes(_frames, _affine)


@st.cache_data(show_spinner=False, max_entries=32)
def average_edit(direction_key: str, strength: float, _gan, _direction):
    """The edit's difference map averaged over 16 samples."""
    return attribute_edits.mean_edit_effect(_gan, _direction, strength, n=16, seed=0)
