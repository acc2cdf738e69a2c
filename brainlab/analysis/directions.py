"""Attribute directions in a latent space (InterFaceGAN style) and edits along them.

InterFaceGAN (Shen et al., CVPR 2020) fits a linear boundary for an attribute in z
and moves a latent along the boundary's unit normal; a conditional direction is
the normal made orthogonal to another attribute's normal, so that editing one
attribute leaves the other (linearly) unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr
from sklearn.linear_model import LogisticRegression, Ridge

from brainlab.errors import BrainlabInputError


def _unit(vector: np.ndarray, what: str) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm < 1e-12:
        raise BrainlabInputError(f"{what} has zero (or non-finite) length; cannot make it a unit vector")
    return vector / norm


def fit_direction(latents, labels, kind: str = "binary", regularization: float = 1.0) -> np.ndarray:
    """Unit normal (d,) of a linear model of ``labels`` on ``latents`` (n, d).

    ``kind="binary"``: logistic regression on two classes; the direction points
    from the first to the second class in sorted order (e.g. 0 = female ->
    1 = male). ``kind="continuous"``: ridge regression; it points towards larger
    values (e.g. older). ``regularization`` is the ridge alpha, or 1/C for the
    logistic regression. Latents are not standardised, so the direction lives in
    the latent's own coordinates (where the edit happens).
    """
    x = np.asarray(latents, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2:
        raise BrainlabInputError(f"latents must be 2D (n, d); found shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise BrainlabInputError(
            f"labels must be 1D with one entry per latent ({len(x)}); found shape {y.shape}")
    if not np.isfinite(x).all():
        raise BrainlabInputError("latents contain NaN or infinite values")
    if regularization <= 0:
        raise BrainlabInputError(f"regularization must be > 0; found {regularization}")
    if kind == "binary":
        classes = np.unique(y)
        if len(classes) != 2:
            raise BrainlabInputError(
                f"a binary direction needs exactly 2 label classes; found {len(classes)}: "
                f"{classes.tolist()[:10]}")
        model = LogisticRegression(C=1.0 / regularization, max_iter=2000)
        model.fit(x, y)
        normal = model.coef_[0]
    elif kind == "continuous":
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise BrainlabInputError("continuous labels contain NaN or infinite values")
        if np.ptp(y) == 0:
            raise BrainlabInputError("continuous labels are constant; no direction to fit")
        normal = Ridge(alpha=regularization).fit(x, y).coef_
    else:
        raise BrainlabInputError(f"kind must be 'binary' or 'continuous'; found {kind!r}")
    return _unit(np.asarray(normal, dtype=np.float64), "the fitted direction")


def orthogonalize(direction, other) -> np.ndarray:
    """``direction`` with its component along ``other`` removed, as a unit vector.

    ``other`` is one direction (d,) or several (k, d); the result is orthogonal to
    all of them (e.g. an age direction that does not change sex).
    """
    direction = np.asarray(direction, dtype=np.float64)
    others = np.atleast_2d(np.asarray(other, dtype=np.float64))
    if direction.ndim != 1 or others.ndim != 2 or others.shape[1] != direction.shape[0]:
        raise BrainlabInputError(
            f"direction must be (d,) and other (d,) or (k, d); found {direction.shape} "
            f"and {np.asarray(other).shape}")
    basis, _ = np.linalg.qr(others.T)  # orthonormal basis of the span of `other`
    residual = direction - basis @ (basis.T @ direction)
    return _unit(residual, "direction after removing `other` (it lies in the span of other)")


def edit(z, direction, strength) -> np.ndarray:
    """``z + strength * direction``, broadcast.

    z (d,) with a scalar strength -> (d,); z (d,) with strengths (m,) -> (m, d)
    (a path along the direction); z (n, d) with a scalar or (n,) strengths -> (n, d).
    """
    z = np.asarray(z)
    direction = np.asarray(direction, dtype=np.float64)
    strength = np.asarray(strength, dtype=np.float64)
    if direction.ndim != 1 or z.shape[-1:] != direction.shape:
        raise BrainlabInputError(
            f"z must be (d,) or (n, d) matching direction (d,); found {z.shape} and {direction.shape}")
    if strength.ndim > 1:
        raise BrainlabInputError(f"strength must be a scalar or 1D; found shape {strength.shape}")
    if z.ndim == 2 and strength.ndim == 1 and len(strength) != len(z):
        raise BrainlabInputError(
            f"one strength per latent expected ({len(z)}); found {len(strength)}")
    edited = z + strength[..., None] * direction if strength.ndim else z + strength * direction
    return edited.astype(z.dtype if np.issubdtype(z.dtype, np.floating) else np.float64)


def direction_correlation(map_a, map_b, mask=None) -> float:
    """Pearson correlation of two 3D maps (inside ``mask`` if given).

    Used to compare an edit's difference map with the true effect map. NaN when
    either map is constant inside the mask (the correlation is undefined there).
    """
    a = np.asarray(map_a, dtype=np.float64)
    b = np.asarray(map_b, dtype=np.float64)
    if a.shape != b.shape:
        raise BrainlabInputError(f"maps must have the same shape; found {a.shape} and {b.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != a.shape:
            raise BrainlabInputError(f"mask shape {mask.shape} does not match maps {a.shape}")
        a, b = a[mask], b[mask]
    a, b = a.ravel(), b.ravel()
    finite = np.isfinite(a) & np.isfinite(b)
    a, b = a[finite], b[finite]
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(pearsonr(a, b).statistic)
