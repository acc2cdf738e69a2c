"""The MRI autoencoder's PCA half at full resolution inside the brain mask: an untrained
model reconstructs exactly what scikit-learn's PCA of the masked voxels does, the mask
and basis survive save -> load and resuming, the chunked fit applies the mask, and cards
from before the field rebuild the half-resolution PCA."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA, IncrementalPCA

from brainlab.checkpoints import load_checkpoint, save_checkpoint
from brainlab.config import MriAutoencoderConfig, config_from_dict
from brainlab.errors import BrainlabInputError
from brainlab.models.autoencoder import BRAIN_THRESHOLD, MriAutoencoder, pca_mask
from brainlab.training.steps import AutoencoderSteps

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = MriAutoencoderConfig(latent_dim=8, linear_dim=6, base_channels=4, max_channels=16,
                            levels=2)


def fitted(cohort, config=TINY, streaming_above=None):
    model = MriAutoencoder.from_cohort(cohort, config)
    steps = AutoencoderSteps(model)
    if streaming_above is not None:
        steps.streaming_pca_above = streaming_above
    steps.fit_statistics(cohort, cohort.split(0).train, chunk=7)
    return model.eval()


def masked_rows(cohort, indices, mask):
    return np.asarray(cohort.images[np.sort(indices)], dtype=np.float64)[:, mask]


def test_the_mask_is_the_mean_brain(small_cohort):
    model = fitted(small_cohort)
    mean = model.mean[0, 0]
    brain = mean > BRAIN_THRESHOLD
    assert model.mask.dtype == torch.bool and tuple(model.mask.shape) == (12, 14, 16)
    assert torch.equal(model.mask, brain) and 0 < int(brain.sum()) < brain.numel()
    assert model.basis.shape == (6, int(brain.sum()))
    dilated = pca_mask(mean, dilation=1)
    assert bool(dilated[brain].all()) and int(dilated.sum()) > int(brain.sum())


def test_untrained_reconstruction_equals_sklearn_pca_of_the_masked_voxels(small_cohort):
    split = small_cohort.split(0)
    model = fitted(small_cohort)
    mask = model.mask.numpy()
    pca = PCA(n_components=6, svd_solver="full").fit(masked_rows(small_cohort, split.train, mask))
    held_out = np.asarray(small_cohort.images[split.test], dtype=np.float32)
    expected = np.repeat(model.mean[0].numpy(), len(held_out), 0)
    expected[:, mask] = pca.inverse_transform(pca.transform(held_out[:, mask].astype(np.float64)))
    with torch.no_grad():
        recon = model.decode_unclamped(model.encode(torch.from_numpy(held_out)[:, None]))[:, 0]
    assert np.allclose(recon.numpy(), expected, atol=1e-4), np.abs(recon.numpy() - expected).max()
    outside = ~mask
    assert np.array_equal(recon.numpy()[:, outside], expected[:, outside])


def test_the_chunked_fit_applies_the_mask(small_cohort):
    """Above ``streaming_pca_above`` the basis comes from IncrementalPCA over the masked voxels."""
    split = small_cohort.split(0)
    model = fitted(small_cohort, streaming_above=4)
    exact = fitted(small_cohort)
    assert torch.equal(model.mask, exact.mask) and torch.allclose(model.mean, exact.mean)
    rows = masked_rows(small_cohort, split.train, model.mask.numpy())
    starts = list(range(0, len(rows), 7))
    if len(rows) - starts[-1] < 6:
        starts.pop()
    incremental = IncrementalPCA(n_components=6)
    for i, start in enumerate(starts):
        incremental.partial_fit(rows[start:starts[i + 1] if i + 1 < len(starts) else len(rows)])
    projector = model.basis.T.double() @ model.basis.double()
    reference = torch.from_numpy(incremental.components_.T) @ torch.from_numpy(incremental.components_)
    assert torch.allclose(projector, reference, atol=1e-4)


def test_save_load_and_resume_keep_the_mask_and_basis(small_cohort, tmp_path):
    model = fitted(small_cohort)
    folder = save_checkpoint(model, tmp_path / "ae", small_cohort, split_seed=0, metrics={},
                             training={})
    loaded, card = load_checkpoint(folder, cohort=small_cohort)
    assert card["extra_state"]["mask_voxels"] == int(model.mask.sum())
    x = torch.from_numpy(np.asarray(small_cohort.images[:3]))[:, None]
    with torch.no_grad():
        assert torch.equal(loaded.mask, model.mask)
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
        fresh = MriAutoencoder.from_cohort(small_cohort, TINY)  # what a resumed run builds
        assert fresh.basis.shape[1] == 0
        fresh.load_state_dict(model.state_dict())
        assert torch.allclose(fresh.eval()(x), model(x), atol=1e-6)


def test_cards_from_before_the_field_rebuild_the_half_resolution_pca(small_cohort):
    stored = {k: v for k, v in dataclasses.asdict(TINY).items() if k != "pca_resolution"}
    config = config_from_dict(MriAutoencoderConfig, stored)
    assert config.pca_resolution == "half"
    model = fitted(small_cohort, config)
    assert not hasattr(model, "mask") and model.basis.shape == (6, 6 * 7 * 8)
    assert "mask_voxels" not in model.extra_state()


def test_bad_pca_settings_are_clear_errors(small_cohort):
    with pytest.raises(BrainlabInputError, match="pca_resolution must be one of"):
        MriAutoencoder(dataclasses.replace(TINY, pca_resolution="quarter"), (12, 14, 16))
    model = MriAutoencoder(TINY, (12, 14, 16))
    with pytest.raises(BrainlabInputError, match=r"expected a mask of shape \(12, 14, 16\)"):
        model.set_statistics(torch.zeros(12, 14, 16), torch.zeros(0, 5),
                             torch.ones(12, 14, 15, dtype=torch.bool))
    with pytest.raises(BrainlabInputError, match="needs the mask"):
        model.set_statistics(torch.zeros(12, 14, 16), torch.zeros(0, 5))
