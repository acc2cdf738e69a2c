"""Models: shapes on unequal grids, input checks, overfitting four volumes, blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlab.config import (BrainAgeConfig, ClassifierConfig, MorphometryAutoencoderConfig,
                             MriAutoencoderConfig, TrainConfig)
from brainlab.errors import BrainlabInputError
from brainlab.models.autoencoder import MriAutoencoder
from brainlab.models.blocks import (DepthToSpace, DownBlock, SpaceToDepth, UpBlock,
                                    crop_to, pad_to_shape, padded_shape)
from brainlab.models.classifiers import BrainAgeModel, SexClassifier
from brainlab.models.morphometry import MorphometryAutoencoder
from brainlab.registry import MODEL_TYPES, model_class, model_spec
from brainlab.training import build_model
from conftest import make_small_cohort

GRIDS = [(12, 14, 16), (9, 7, 11)]

TINY_CONFIGS = {
    # One half-resolution PCA axis, so the conv path has something to overfit: a masked
    # full-resolution PCA of 3 axes reconstructs 4 subjects exactly, and with 1-2 axes the
    # loss stalled at 0.44x its start (the blobs reach past the mean-brain mask).
    "mri-ae": MriAutoencoderConfig(latent_dim=8, linear_dim=1, pca_resolution="half",
                                   base_channels=4, max_channels=16, levels=2),
    "morph-ae": MorphometryAutoencoderConfig(latent_dim=4, hidden=(16,)),
    "sex-clf": ClassifierConfig(base_channels=4, max_channels=16, levels=2, dropout=0.0),
    "age-model": BrainAgeConfig(base_channels=4, max_channels=16, levels=2, dropout=0.0),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest


def tiny_model(model_type, cohort):
    """A fresh ``model_type`` built for ``cohort`` with its ``TINY_CONFIGS`` entry."""
    return build_model(model_type, cohort, TINY_CONFIGS[model_type])


def steps_for(model, train_config=None):
    """The registry's ``TrainingSteps`` for ``model`` (statistics, optimisers, step)."""
    return model_spec(model.model_type).steps_class()(model, train_config or TrainConfig())


@pytest.fixture(scope="module", params=GRIDS, ids=lambda g: "x".join(map(str, g)))
def grid_cohort(request):
    return make_small_cohort(n=8, grid=request.param, name=f"grid{request.param}")


def test_registry_resolves_every_type():
    assert model_class("mri-ae") is MriAutoencoder
    assert model_class("morph-ae") is MorphometryAutoencoder
    assert model_class("sex-clf") is SexClassifier
    assert model_class("age-model") is BrainAgeModel
    with pytest.raises(BrainlabInputError, match="unknown model type 'vae'"):
        model_class("vae")


@pytest.mark.parametrize("model_type", sorted(MODEL_TYPES))
def test_every_registry_entry_resolves_to_code_that_fits_together(model_type):
    from brainlab.training.steps import TrainingSteps

    spec = model_spec(model_type)
    cls = spec.model_class()
    assert cls.model_type == model_type
    assert issubclass(spec.steps_class(), TrainingSteps)
    assert callable(spec.evaluation()) and callable(spec.trainer())
    assert spec.quality_targets, f"{model_type} has no quality target"
    assert cls.needs_images == spec.needs_images


def test_mri_autoencoder_shapes(grid_cohort):
    model = MriAutoencoder.from_cohort(grid_cohort, TINY_CONFIGS["mri-ae"])
    x = torch.rand(3, 1, *grid_cohort.grid_shape)
    z = model.encode(x)
    assert z.shape == (3, 8) and z.dtype == torch.float32
    x_hat = model.decode(z)
    assert x_hat.shape == x.shape
    assert float(x_hat.detach().min()) >= 0.0 and float(x_hat.detach().max()) <= 1.0
    assert model(x).shape == x.shape


def test_default_mri_autoencoder_pads_hcp_grid():
    model = MriAutoencoder(MriAutoencoderConfig(), (58, 70, 58))
    assert model.padded_shape == (64, 80, 64)
    assert model.extra_state() == {"grid_shape": [58, 70, 58]}


def test_classifier_and_age_shapes(grid_cohort):
    x = torch.rand(2, 1, *grid_cohort.grid_shape)
    clf = SexClassifier.from_cohort(grid_cohort, TINY_CONFIGS["sex-clf"]).eval()
    p = clf.predict_proba(x)
    assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all()
    age = BrainAgeModel.from_cohort(grid_cohort, TINY_CONFIGS["age-model"]).eval()
    assert age.target == "years"
    assert age(x).shape == (2, 1) and age.predict_age(x).shape == (2,)
    bins = BrainAgeModel.from_cohort(grid_cohort, BrainAgeConfig(
        base_channels=4, max_channels=16, levels=2, target="bin")).eval()
    assert bins(x).shape == (2, 4)
    expected_bin = bins.predict_age(x)
    assert ((expected_bin >= 0) & (expected_bin <= 3)).all()


def test_age_model_uses_bins_when_ages_are_unknown():
    cohort = make_small_cohort(n=8)
    cohort.table["age"] = np.nan
    model = BrainAgeModel.from_cohort(cohort, TINY_CONFIGS["age-model"])
    assert model.target == "bin" and model.n_bins == 4


def test_morphometry_autoencoder_shapes_and_latent_cap(small_cohort):
    model = build_model("morph-ae", small_cohort, MorphometryAutoencoderConfig())
    assert model.feature_names == ["volume_total", "thickness_mean", "volume_hippocampus"]
    assert model.latent_dim == 3  # seed's 80 capped at the feature count
    features = torch.tensor(small_cohort.table[model.feature_names].to_numpy(np.float32)[:5])
    assert model.encode(features).shape == (5, 3)
    assert model(features).shape == (5, 3)


def test_morphometry_autoencoder_ignores_missing_values(small_cohort):
    model = tiny_model("morph-ae", small_cohort)
    features = torch.tensor([[1.0, float("nan"), 3.0]])
    assert torch.isfinite(model(features)).all()


@pytest.mark.parametrize("model_type", ["mri-ae", "sex-clf", "age-model"])
def test_wrong_grid_is_a_clear_error(model_type, small_cohort):
    model = tiny_model(model_type, small_cohort)
    forward = model.encode if model_type == "mri-ae" else model
    with pytest.raises(BrainlabInputError, match=r"expected a batch of shape \(B, 1, 12, 14, 16\)"):
        forward(torch.rand(2, 1, 16, 14, 12))


def test_decode_checks_code_size(small_cohort):
    model = MriAutoencoder.from_cohort(small_cohort, TINY_CONFIGS["mri-ae"])
    with pytest.raises(BrainlabInputError, match=r"expected codes of shape \(B, 8\)"):
        model.decode(torch.zeros(2, 9))


def test_image_models_need_images(small_cohort):
    table_only = type(small_cohort)(name="table", table=small_cohort.table,
                                    affine=small_cohort.affine)
    with pytest.raises(BrainlabInputError, match="has no images"):
        MriAutoencoder.from_cohort(table_only)
    with pytest.raises(BrainlabInputError, match="has no images"):
        SexClassifier.from_cohort(table_only)


@pytest.mark.parametrize("model_type,steps", [
    ("mri-ae", 150), ("morph-ae", 60), ("sex-clf", 30), ("age-model", 200)])
def test_overfits_four_subjects(model_type, steps, small_cohort):
    torch.manual_seed(0)
    model = tiny_model(model_type, small_cohort)
    rows = np.array([0, 1, 2, 3])
    trainer = steps_for(model, TrainConfig(lr=3e-3))
    trainer.fit_statistics(small_cohort, rows)
    model.set_precision(False)
    trainer.configure_optimizers()
    batch = next(iter(trainer.batches(small_cohort, rows, 4)))
    model.train()
    losses = [trainer.step(batch)["loss"] for _ in range(steps)]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.4 * losses[0], (losses[0], losses[-3:])


def test_blocks_pad_crop_and_space_to_depth_round_trip():
    x = torch.rand(2, 3, 9, 7, 11)
    shape = padded_shape(x.shape[2:], 4)
    assert shape == (12, 8, 12)
    padded = pad_to_shape(x, shape)
    assert padded.shape == (2, 3, 12, 8, 12)
    assert torch.equal(crop_to(padded, (9, 7, 11)), x)
    folded = SpaceToDepth()(padded)
    assert folded.shape == (2, 24, 6, 4, 6)
    assert torch.equal(DepthToSpace()(folded), padded)


def test_blocks_change_resolution_as_documented():
    x = torch.rand(2, 4, 4, 6, 8)
    assert DownBlock(4, 8)(x).shape == (2, 8, 2, 3, 4)
    assert UpBlock(4, 2)(x).shape == (2, 2, 8, 12, 16)


def test_autoencoder_starts_from_the_pca_of_its_training_subjects(small_cohort):
    """After the statistics and before any step, held-out reconstructions beat the mean brain."""
    from brainlab.analysis.metrics import reconstruction_metrics
    from brainlab.training.steps import AutoencoderSteps

    split = small_cohort.split(0)
    model = MriAutoencoder.from_cohort(small_cohort, MriAutoencoderConfig(latent_dim=8))
    AutoencoderSteps(model).fit_statistics(small_cohort, split.train)
    model.eval()
    held_out = small_cohort.images[split.test]
    mean_brain = small_cohort.images[split.train].mean(axis=0)
    with torch.no_grad():
        recons = model(torch.from_numpy(held_out)[:, None])[:, 0].numpy()
    assert np.allclose(model.mean[0, 0].numpy(), mean_brain, atol=1e-5)
    pca_error = np.mean((recons - held_out) ** 2)
    mean_error = np.mean((mean_brain[None] - held_out) ** 2)
    assert pca_error < 0.5 * mean_error
    assert reconstruction_metrics(held_out, recons)["ssim"] > reconstruction_metrics(
        held_out, np.repeat(mean_brain[None], len(held_out), 0))["ssim"]
