"""GAN walk frames: one batched decode, bf16 only where asked for and the CPU has it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlab.analysis.gan_walks import render_frames, walk
from brainlab.errors import BrainlabInputError
from brainlab.models.gan import LatentGan
from brainlab.training.steps import LatentGanSteps
from tests.test_gan import TINY_GAN, fitted_autoencoder, toy_cohort


@pytest.fixture(scope="module")
def gan() -> LatentGan:
    torch.manual_seed(0)
    cohort = toy_cohort()
    model = LatentGan.from_autoencoder(fitted_autoencoder(cohort), TINY_GAN)
    LatentGanSteps(model).fit_statistics(cohort, np.arange(16))
    return model.eval()


def test_batching_does_not_change_the_frames(gan):
    z = np.asarray(gan.sample_latent(5, 3))
    whole = render_frames(gan, z, batch_size=16)
    assert whole.shape == (5, 12, 14, 16) and whole.dtype == np.float32
    np.testing.assert_allclose(render_frames(gan, z, batch_size=2), whole, atol=1e-6)
    np.testing.assert_allclose(whole[3], gan.generate(torch.from_numpy(z[3:4]))[0, 0].numpy(),
                               atol=1e-6)


def test_walk_uses_bf16_only_where_the_precision_setting_allows(gan, monkeypatch):
    z0, z1 = (np.asarray(gan.sample_latent(1, s))[0] for s in (1, 2))
    monkeypatch.setenv("BRAINLAB_BF16", "off")
    _, frames = walk(gan, z0, z1, 4)
    np.testing.assert_allclose(frames[[0, -1]], render_frames(gan, np.stack([z0, z1])), atol=1e-6)
    monkeypatch.setenv("BRAINLAB_BF16", "on")
    with pytest.warns(UserWarning) if not _native_bf16() else _no_warning():
        _, fast = walk(gan, z0, z1, 4)
    assert fast.shape == frames.shape
    np.testing.assert_allclose(fast, frames, atol=0.05)  # bf16 rounding, not another image


def test_render_frames_rejects_a_bad_batch(gan):
    with pytest.raises(BrainlabInputError, match="batch_size must be >= 1"):
        render_frames(gan, np.asarray(gan.sample_latent(2, 0)), batch_size=0)
    with pytest.raises(BrainlabInputError, match="latents must be"):
        render_frames(gan, np.zeros((2, gan.latent_dim + 1), np.float32))


def _native_bf16() -> bool:
    from brainlab.precision import bf16_supported

    return bf16_supported("cpu")


def _no_warning():
    import contextlib

    return contextlib.nullcontext()
