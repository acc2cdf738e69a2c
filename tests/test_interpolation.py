"""lerp / slerp paths between latents."""

import numpy as np
import pytest

from brainlab.analysis.interpolation import interpolation_path, lerp, slerp
from brainlab.errors import BrainlabInputError


def _equal_norm_pair(d=10, seed=0):
    rng = np.random.default_rng(seed)
    z0, z1 = rng.normal(size=d), rng.normal(size=d)
    return z0, z1 * np.linalg.norm(z0) / np.linalg.norm(z1)


def test_slerp_keeps_norm_and_hits_endpoints():
    z0, z1 = _equal_norm_pair()
    path = slerp(z0, z1, np.linspace(0, 1, 9))
    assert path.shape == (9, 10)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(z0), rtol=1e-10)
    np.testing.assert_allclose(path[0], z0, atol=1e-12)
    np.testing.assert_allclose(path[-1], z1, atol=1e-12)
    # Not the straight line: the midpoint of lerp is shorter than the endpoints.
    assert np.linalg.norm(lerp(z0, z1, 0.5)) < np.linalg.norm(slerp(z0, z1, 0.5)) - 1e-3


def test_slerp_midpoint_angle_is_half():
    z0, z1 = np.array([1.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0])
    mid = slerp(z0, z1, 0.5)
    assert mid.shape == (3,)
    np.testing.assert_allclose(mid / np.linalg.norm(mid), [np.sqrt(0.5), np.sqrt(0.5), 0], atol=1e-12)
    assert np.linalg.norm(mid) == pytest.approx(1.5)  # norm interpolated linearly


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["parallel", "antiparallel"])
def test_slerp_handles_parallel_vectors(sign):
    z0 = np.array([3.0, 4.0, 0.0, 0.0])
    z1 = sign * z0
    path = slerp(z0, z1, np.linspace(0, 1, 7))
    assert np.isfinite(path).all()
    np.testing.assert_allclose(path[0], z0, atol=1e-9)
    np.testing.assert_allclose(path[-1], z1, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 5.0, rtol=1e-9)


def test_lerp_shapes_and_values():
    z0, z1 = np.zeros((2, 3)), np.ones((2, 3))
    assert lerp(z0, z1, 0.25).shape == (2, 3)
    path = lerp(z0, z1, [0.0, 0.5, 1.0])
    assert path.shape == (3, 2, 3)
    np.testing.assert_allclose(path[1], 0.5)


def test_slerp_with_zero_endpoint_is_lerp():
    z1 = np.array([1.0, 2.0])
    np.testing.assert_allclose(slerp(np.zeros(2), z1, [0.0, 0.5, 1.0]), lerp(np.zeros(2), z1, [0, 0.5, 1]))


@pytest.mark.parametrize("method", ["slerp", "lerp"])
def test_interpolation_path(method):
    z0, z1 = _equal_norm_pair(d=6)
    path = interpolation_path(z0, z1, 5, method=method)
    assert path.shape == (5, 6) and path.dtype == np.float32
    np.testing.assert_allclose(path[0], z0, rtol=1e-6)
    np.testing.assert_allclose(path[-1], z1, rtol=1e-6)


def test_interpolation_errors():
    with pytest.raises(BrainlabInputError, match="same shape"):
        slerp(np.zeros(3), np.zeros(4), 0.5)
    with pytest.raises(BrainlabInputError, match="n_frames must be an integer >= 2"):
        interpolation_path(np.ones(3), np.ones(3), 1)
    with pytest.raises(BrainlabInputError, match="method must be one of"):
        interpolation_path(np.ones(3), np.ones(3), 4, method="cubic")
    with pytest.raises(BrainlabInputError, match="NaN"):
        lerp(np.array([np.nan, 1.0]), np.ones(2), 0.5)
