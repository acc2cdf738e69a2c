"""Paths between two latent vectors: linear (lerp) and spherical (slerp).

A GAN's z is drawn from a standard normal, whose mass sits on a thin shell of
radius ≈ sqrt(latent_dim); a straight line between two samples cuts through
the low-norm interior the generator rarely saw in training, while slerp stays
on the shell. Latents of any shape are accepted; the path has shape
``t.shape + z0.shape``.
"""

from __future__ import annotations

import numpy as np

from brainlab.errors import BrainlabInputError

# Below this angle (radians) two directions count as parallel, within this of pi
# as antiparallel: sin(angle) would be too small to divide by.
_PARALLEL_TOLERANCE = 1e-6


def _endpoints(z0, z1) -> tuple[np.ndarray, np.ndarray]:
    z0 = np.asarray(z0, dtype=np.float64)
    z1 = np.asarray(z1, dtype=np.float64)
    if z0.shape != z1.shape:
        raise BrainlabInputError(
            f"interpolation endpoints must have the same shape; found {z0.shape} and {z1.shape}")
    if z0.size == 0:
        raise BrainlabInputError("interpolation endpoints are empty; expected latent vectors")
    if not (np.isfinite(z0).all() and np.isfinite(z1).all()):
        raise BrainlabInputError("interpolation endpoints contain NaN or infinite values")
    return z0, z1


def _fractions(t) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    if t.ndim > 1:
        raise BrainlabInputError(f"t must be a scalar or 1D array; found shape {t.shape}")
    if not np.isfinite(t).all():
        raise BrainlabInputError("t contains NaN or infinite values")
    return t


def lerp(z0, z1, t) -> np.ndarray:
    """Linear interpolation ``(1 - t) z0 + t z1``.

    ``t`` scalar -> shape of ``z0``; ``t`` of shape (k,) -> (k, *z0.shape). Values
    outside [0, 1] extrapolate.
    """
    z0, z1 = _endpoints(z0, z1)
    t = _fractions(t)
    tt = t.reshape(t.shape + (1,) * z0.ndim)
    return (1.0 - tt) * z0 + tt * z1


def slerp(z0, z1, t) -> np.ndarray:
    """Spherical interpolation: direction along the great circle, norm linear in t.

    Equals ``z0`` at t=0 and ``z1`` at t=1; for endpoints of equal norm every point
    keeps that norm (the classic slerp). Parallel endpoints reduce to lerp;
    antiparallel ones turn through a fixed, deterministic perpendicular direction
    (the great circle is not unique there). A zero endpoint has no direction, so
    the path is the lerp. Shapes as in :func:`lerp`.
    """
    z0, z1 = _endpoints(z0, z1)
    t = _fractions(t)
    shape = z0.shape
    a, b = z0.ravel(), z1.ravel()
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    if norm_a == 0.0 or norm_b == 0.0:
        return lerp(z0, z1, t)
    u0, u1 = a / norm_a, b / norm_b
    angle = float(np.arccos(np.clip(u0 @ u1, -1.0, 1.0)))
    tt = t.reshape(t.shape + (1,))
    if angle < _PARALLEL_TOLERANCE:
        direction = (1.0 - tt) * u0 + tt * u1
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    elif angle > np.pi - _PARALLEL_TOLERANCE:
        # Turn towards the coordinate axis u0 leans on least, made orthogonal to u0.
        axis = np.zeros_like(u0)
        axis[np.argmin(np.abs(u0))] = 1.0
        perpendicular = axis - (axis @ u0) * u0
        perpendicular /= np.linalg.norm(perpendicular)
        direction = np.cos(np.pi * tt) * u0 + np.sin(np.pi * tt) * perpendicular
    else:
        direction = (np.sin((1.0 - tt) * angle) * u0 + np.sin(tt * angle) * u1) / np.sin(angle)
    radius = (1.0 - tt) * norm_a + tt * norm_b
    return (radius * direction).reshape(t.shape + shape)


def interpolation_path(z0, z1, n_frames: int, method: str = "slerp") -> np.ndarray:
    """``n_frames`` evenly spaced points from ``z0`` to ``z1`` (both included).

    Returns (n_frames, *z0.shape), float32 (what a generator takes).
    """
    if isinstance(n_frames, bool) or int(n_frames) != n_frames or n_frames < 2:
        raise BrainlabInputError(f"n_frames must be an integer >= 2; found {n_frames!r}")
    methods = {"slerp": slerp, "lerp": lerp}
    if method not in methods:
        raise BrainlabInputError(f"method must be one of {sorted(methods)}; found {method!r}")
    t = np.linspace(0.0, 1.0, int(n_frames))
    return methods[method](z0, z1, t).astype(np.float32)
