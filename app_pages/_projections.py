"""2D/3D projections of a representation, cached per (features, settings) for the server."""

from __future__ import annotations

import numpy as np
import streamlit as st

from brainlab.analysis.projections import project, warm_umap


@st.cache_resource(show_spinner="Warming up UMAP (once per server) …")
def _umap_ready() -> bool:
    warm_umap()
    return True


@st.cache_data(show_spinner=False, max_entries=32)
def _projection(key: tuple, method: str, dims: int, neighbors: int, min_dist: float,
                _features: np.ndarray) -> np.ndarray:
    return project(_features, method=method, n_components=dims, umap_neighbors=neighbors,
                   umap_min_dist=min_dist)


def projection(key: tuple, features: np.ndarray, method: str, dims: int, neighbors: int = 15,
               min_dist: float = 0.1) -> np.ndarray:
    """(n, dims) coordinates of ``features``; ``key`` names them (representation, checkpoint,
    cohort fingerprint). UMAP's numba compilation is paid once per server."""
    if method == "umap":
        _umap_ready()
    with st.spinner(f"{method.upper()} of {len(features)} subjects …"):
        return _projection(key, method, dims, neighbors, min_dist, features)
