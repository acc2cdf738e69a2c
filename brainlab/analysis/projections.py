"""2D/3D maps of a representation: PCA (instant) or UMAP (non-linear, slower).

Features are standardised first so that no single feature (e.g. intracranial
volume in cc next to thickness in mm) dominates. UMAP is imported lazily: its
cold import (numba compilation) takes ~15 s, so the app calls :func:`warm_umap`
once per server process, and nothing pays for it unless UMAP is used.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from brainlab.errors import BrainlabInputError

# UMAP inputs wider than this are first reduced by PCA: neighbour search on a
# few dozen components is much faster and loses little of the neighbourhood.
UMAP_PCA_ABOVE_DIMS = 50
# UMAP optimisation epochs: umap-learn's default for small data is 500; 200 reaches
# a stable layout for ~1000 subjects in well under half the time (the ≤3 s target).
UMAP_EPOCHS = 200
# Wider inputs (raw voxels) are standardised in float32 and reduced with randomized
# SVD: the first components of 1113 x 29k voxels in under a second instead of ~8 s.
WIDE_FEATURES = 500

# Reductions of wide inputs kept in memory (by content digest): a second UMAP of the
# same voxels (other seed, neighbours or min distance) skips the standardise + PCA.
_REDUCTION_CACHE_SIZE = 4
_reductions: "OrderedDict[tuple, np.ndarray]" = OrderedDict()

_umap_warm = False


def _standardized(features) -> np.ndarray:
    wide = np.ndim(features) == 2 and np.shape(features)[1] > WIDE_FEATURES
    x = np.asarray(features, dtype=np.float32 if wide else np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise BrainlabInputError(f"features must be 2D (n_subjects, n_features); found shape {x.shape}")
    if not np.isfinite(x).all():
        raise BrainlabInputError("features contain NaN or infinite values")
    return StandardScaler().fit_transform(x)


def _pca(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    k = int(min(k, x.shape[0], x.shape[1]))
    solver = "randomized" if x.shape[1] > WIDE_FEATURES else "auto"
    return PCA(n_components=k, random_state=seed, svd_solver=solver).fit_transform(x)


def project(features, method: str = "pca", n_components: int = 2, seed: int = 0,
            umap_neighbors: int = 15, umap_min_dist: float = 0.1) -> np.ndarray:
    """Standardise (n, d) features and project them to (n, n_components) float32.

    ``method="pca"``: principal components. With fewer features or subjects than
    ``n_components`` the missing columns are zeros. ``method="umap"``: UMAP with a
    fixed ``seed`` (reproducible, single-threaded); inputs wider than
    ``UMAP_PCA_ABOVE_DIMS`` are reduced by PCA first, and ``umap_neighbors`` is
    capped at n - 1.
    """
    if n_components not in (2, 3):
        raise BrainlabInputError(f"n_components must be 2 or 3; found {n_components!r}")
    # Wide UMAP inputs go through the cached reduction (which validates them) instead.
    wide = np.ndim(features) == 2 and np.shape(features)[1] > UMAP_PCA_ABOVE_DIMS
    x = None if method == "umap" and wide else _standardized(features)
    n = len(features)
    if method == "pca":
        coords = _pca(x, n_components, seed)
        if coords.shape[1] < n_components:
            coords = np.pad(coords, ((0, 0), (0, n_components - coords.shape[1])))
        return coords.astype(np.float32)
    if method != "umap":
        raise BrainlabInputError(f"method must be 'pca' or 'umap'; found {method!r}")
    if n < n_components + 2:
        raise BrainlabInputError(
            f"UMAP to {n_components}D needs at least {n_components + 2} subjects; found {n}")
    if umap_neighbors < 2 or not 0.0 <= umap_min_dist <= 1.0:
        raise BrainlabInputError(
            f"umap_neighbors must be >= 2 and umap_min_dist in [0, 1]; "
            f"found {umap_neighbors}, {umap_min_dist}")
    if x is None:
        x = umap_input(features, seed)
    import umap  # lazy: ~15 s cold import

    reducer = umap.UMAP(n_components=n_components, n_neighbors=int(min(umap_neighbors, n - 1)),
                        min_dist=float(umap_min_dist), random_state=seed, n_jobs=1,
                        n_epochs=UMAP_EPOCHS)
    return reducer.fit_transform(x).astype(np.float32)


def umap_input(features, seed: int = 0) -> np.ndarray:
    """What UMAP is fitted on for features wider than ``UMAP_PCA_ABOVE_DIMS``: the first
    ``UMAP_PCA_ABOVE_DIMS`` principal components of the standardised features.

    Computed once per content (and seed) in this process and then reused, so changing
    UMAP's own settings on a voxel map costs only the UMAP fit.
    """
    array = np.ascontiguousarray(features)
    key = (array.shape, array.dtype.str, int(seed),
           hashlib.blake2b(memoryview(array).cast("B"), digest_size=16).hexdigest())
    if key in _reductions:
        _reductions.move_to_end(key)
        return _reductions[key]
    reduced = _pca(_standardized(array), UMAP_PCA_ABOVE_DIMS, seed)
    reduced.setflags(write=False)
    _reductions[key] = reduced
    while len(_reductions) > _REDUCTION_CACHE_SIZE:
        _reductions.popitem(last=False)
    return reduced


def warm_umap() -> None:
    """Import UMAP and fit a tiny dataset once, so numba's compilation is paid up front."""
    global _umap_warm
    if _umap_warm:
        return
    rng = np.random.default_rng(0)
    project(rng.normal(size=(64, 8)), method="umap", n_components=2, seed=0)
    project(rng.normal(size=(64, 8)), method="umap", n_components=3, seed=0)
    _umap_warm = True


def explained_variance(features, k: int) -> np.ndarray:
    """Explained variance ratios (k,) of the first k principal components of the
    standardised features (fewer if there are fewer subjects or features)."""
    if k < 1:
        raise BrainlabInputError(f"k must be >= 1; found {k}")
    x = _standardized(features)
    k = int(min(k, x.shape[0], x.shape[1]))
    return PCA(n_components=k).fit(x).explained_variance_ratio_
