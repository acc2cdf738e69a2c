"""Reconstruction errors, per-feature R², latent-map representations and their figures.

Uses stand-in models (identity / blurring autoencoders, an exact or noisy
morphometry AE) on the 12x14x16 ``small_cohort`` so the expected numbers are known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from brainlab.analysis.probes import SEED_COLUMN
from brainlab.analysis.latent_maps import (
    REPRESENTATIONS, available_representations, colour_values, colour_variables,
    probe_features, representation_features,
)
from brainlab.analysis.reconstructions import (
    heldout_indices, morphometry_reconstruction, per_feature_r2, reconstruct_subjects,
    reconstruction_errors, standardised_features, volume_errors,
)
from brainlab.errors import BrainlabInputError
from brainlab.viz import PLANES, plane_slice
from brainlab.viz.latent_plots import latent_scatter, probe_comparison, probe_table_view
from brainlab.viz.reconstruction_plots import (
    error_by_subject, feature_comparison, r2_bars, reconstruction_triplanar,
)


class FakeImageAE(nn.Module):
    """(B, 1, D, H, W) -> same shape: identity, or a scaled copy (a lossy 'reconstruction')."""

    model_type = "mri-ae"

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale

    def encode(self, x):
        return x.flatten(1)[:, :5] * self.scale


class FakeMorphAE(nn.Module):
    """(B, F) raw -> (B, F): the input plus ``noise`` times a fixed pattern per feature."""

    model_type = "morph-ae"

    def __init__(self, names, noise: float = 0.0):
        super().__init__()
        self.names = list(names)
        self.noise = noise

    def extra_state(self):
        return {"feature_names": self.names}

    def forward(self, x):
        pattern = torch.arange(x.shape[0], dtype=torch.float32)[:, None] * torch.ones(1, x.shape[1])
        return x + self.noise * pattern

    def encode(self, x):
        return torch.nan_to_num(x)[:, :2]


def test_heldout_indices_are_the_test_split(small_cohort):
    split = small_cohort.split(0)
    assert heldout_indices(small_cohort, 0, "test").tolist() == list(split.test)
    assert len(heldout_indices(small_cohort, 0, "all")) == len(small_cohort)
    with pytest.raises(BrainlabInputError, match="split must be one of"):
        heldout_indices(small_cohort, 0, "holdout")


def test_perfect_reconstruction_scores_ssim_one(small_cohort):
    errors = reconstruction_errors(FakeImageAE(1.0), small_cohort, [0, 3, 5], batch_size=2)
    assert errors["subject_id"].tolist() == ["sub-000", "sub-003", "sub-005"]
    assert errors["index"].tolist() == [0, 3, 5]
    np.testing.assert_allclose(errors["ssim"], 1.0, atol=1e-9)
    assert np.isinf(errors["psnr"]).all() and (errors["mae"] == 0).all()


def test_lossy_reconstruction_scores_worse(small_cohort):
    errors = reconstruction_errors(FakeImageAE(0.5), small_cohort, [0, 1])
    assert (errors["ssim"] < 0.99).all() and (errors["mae"] > 0).all()
    originals, recons = reconstruct_subjects(FakeImageAE(0.5), small_cohort, [1])
    assert originals.shape == recons.shape == (1, 12, 14, 16)
    expected = volume_errors(originals[0], recons[0])
    assert errors.loc[1, "ssim"] == pytest.approx(expected["ssim"])


def test_reconstruction_needs_images(small_cohort):
    table_only = type(small_cohort)(name="t", table=small_cohort.table, affine=small_cohort.affine)
    with pytest.raises(BrainlabInputError, match="table-only"):
        reconstruction_errors(FakeImageAE(), table_only, [0])
    with pytest.raises(BrainlabInputError, match="at least one subject"):
        reconstruction_errors(FakeImageAE(), small_cohort, [])


def test_per_feature_r2_exact_and_noisy(small_cohort):
    names = small_cohort.morphometry_columns
    indices = np.arange(12)
    original, recon = morphometry_reconstruction(FakeMorphAE(names), small_cohort, indices)
    assert list(original.columns) == names and original.index[0] == "sub-000"
    np.testing.assert_allclose(per_feature_r2(original, recon).to_numpy(), 1.0)
    _, noisy = morphometry_reconstruction(FakeMorphAE(names, noise=0.05), small_cohort, indices)
    r2 = per_feature_r2(original, noisy)
    # Same noise on each feature: the large-variance volume keeps R² near 1, thickness does not.
    assert r2["volume_total"] > 0.99 and r2["thickness_mean"] < 0.9
    assert r2.is_monotonic_increasing  # sorted worst first


def test_per_feature_r2_skips_nan_and_constant():
    original = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "b": [3.0, 3.0, 3.0, 3.0]})
    recon = pd.DataFrame({"a": [1.0, 2.0, 100.0, 4.0], "b": [3.0, 3.0, 3.0, 3.0]})
    r2 = per_feature_r2(original, recon)
    assert r2["a"] == pytest.approx(1.0) and np.isnan(r2["b"])
    with pytest.raises(BrainlabInputError, match="same features"):
        per_feature_r2(original, recon[["a"]])


def test_morphometry_reconstruction_needs_the_model_features(small_cohort):
    with pytest.raises(BrainlabInputError, match="lacks 1"):
        morphometry_reconstruction(FakeMorphAE(["volume_total", "not_a_column"]), small_cohort, [0])


def test_standardised_features_use_the_reference():
    reference = pd.DataFrame({"a": [0.0, 2.0], "b": [5.0, 5.0]})
    z = standardised_features(pd.DataFrame({"a": [2.0], "b": [5.0]}), reference)
    assert z.loc[0, "a"] == pytest.approx(1.0) and z.loc[0, "b"] == 0.0


# ---------------------------------------------------------------- latent maps

def test_available_representations(small_cohort):
    assert available_representations(small_cohort) == ["voxels", "morphometry"]
    assert available_representations(small_cohort, {"mri-ae", "morph-ae", "encoder"}) == list(REPRESENTATIONS)
    table_only = type(small_cohort)(name="t", table=small_cohort.table, affine=small_cohort.affine)
    assert available_representations(table_only, {"mri-ae", "morph-ae"}) == ["morphometry", "morph-ae"]


@pytest.mark.parametrize("key, model, width", [
    ("voxels", None, 6 * 7 * 8), ("morphometry", None, 3), ("mri-ae", FakeImageAE(), 5),
])
def test_representation_features_shapes(small_cohort, key, model, width):
    features = representation_features(key, small_cohort, model)
    assert features.shape == (len(small_cohort), width) and features.dtype == np.float32


def test_morph_ae_latent_uses_the_model_features(small_cohort):
    model = FakeMorphAE(["thickness_mean", "volume_total", "volume_hippocampus"])
    codes = representation_features("morph-ae", small_cohort, model)
    np.testing.assert_allclose(codes[:, 0], small_cohort.table["thickness_mean"], rtol=1e-6)


def test_representation_features_errors(small_cohort):
    with pytest.raises(BrainlabInputError, match="needs a 'mri-ae' model; found None"):
        representation_features("mri-ae", small_cohort)
    with pytest.raises(BrainlabInputError, match="unknown representation 'pixels'"):
        representation_features("pixels", small_cohort)


def test_probe_features_pair_latent_with_raw(small_cohort):
    features = probe_features("mri-ae", small_cohort, FakeImageAE())
    assert list(features) == ["raw MRI", "mri-ae latent"]
    assert list(probe_features("morphometry", small_cohort)) == ["raw morphometry"]


def test_colour_variables_and_values(small_cohort):
    options = colour_variables(small_cohort)
    assert list(options)[:3] == ["age", "age bin", "sex"]
    assert options["volume_total"] == "morphometry"
    sex = colour_values(small_cohort, "sex")
    assert sex.kind == "categorical" and set(sex.values) == {"female", "male"}
    age = colour_values(small_cohort, "age")
    assert age.kind == "continuous" and age.values.shape == (len(small_cohort),)
    with pytest.raises(BrainlabInputError, match="unknown colour variable 'height'"):
        colour_values(small_cohort, "height")


def test_truth_columns_become_colour_variables(small_cohort):
    truth = pd.DataFrame({"subject_id": small_cohort.subject_ids, "age": small_cohort.table["age"],
                          "z_icv": np.linspace(-1, 1, len(small_cohort))})
    cohort = type(small_cohort)(name="p", table=small_cohort.table, affine=small_cohort.affine,
                                truth=truth)
    options = colour_variables(cohort)
    assert options["truth: z_icv"] == "ground truth" and "truth: age" not in options
    np.testing.assert_allclose(colour_values(cohort, "truth: z_icv").values, truth["z_icv"])


# ---------------------------------------------------------------- figures

@pytest.mark.parametrize("dims, categorical", [(2, True), (2, False), (3, True), (3, False)])
def test_latent_scatter_carries_subject_ids(small_cohort, dims, categorical):
    n = len(small_cohort)
    coords = np.random.default_rng(0).normal(size=(n, dims))
    colour = colour_values(small_cohort, "sex" if categorical else "age").values
    fig = latent_scatter(coords, small_cohort.subject_ids, small_cohort.table["sex"],
                         small_cohort.table["age"], colour, "c", categorical, highlight="sub-004")
    data_traces = [t for t in fig.data if not t.name.startswith("selected")]
    ids = [row[0] for trace in data_traces for row in trace.customdata]
    assert sorted(ids) == sorted(small_cohort.subject_ids)
    assert fig.data[-1].name == "selected: sub-004"
    assert fig.data[0].type == ("scatter3d" if dims == 3 else "scattergl")


def test_latent_scatter_checks_shapes(small_cohort):
    with pytest.raises(BrainlabInputError, match=r"coords must be \(n, 2\) or \(n, 3\)"):
        latent_scatter(np.zeros((3, 4)), ["a", "b", "c"], ["F"] * 3, [1.0] * 3, [1, 2, 3], "c", False)


def test_reconstruction_triplanar_rows(small_cohort):
    volume = small_cohort.images[0]
    fig = reconstruction_triplanar(volume, volume * 0.5, small_cohort.affine, cursor=(1, 2, 3))
    assert len(fig.data) == 9
    error = np.abs(volume - volume * 0.5)
    for number, plane in enumerate(PLANES):
        fixed = {"axial": 2, "coronal": 1, "sagittal": 0}[plane]
        np.testing.assert_allclose(fig.data[6 + number].z,
                                   plane_slice(error, plane, (1, 2, 3)[fixed]), rtol=1e-6)
    assert fig.layout.coloraxis3.colorscale[0][1] != fig.layout.coloraxis.colorscale[0][1]
    with pytest.raises(BrainlabInputError, match="same 3D shape"):
        reconstruction_triplanar(volume, volume[:-1], small_cohort.affine)


def test_feature_and_r2_figures():
    original = pd.Series({"a": 1.0, "b": -0.5, "c": 0.0})
    fig = feature_comparison(original, original * 0.9, max_features=2)
    assert len(fig.data) == 2 and list(fig.data[0].x) == ["a", "b"]
    bars = r2_bars(pd.Series({"a": 0.95, "b": -3.0, "c": np.nan}))
    assert list(bars.data[0].y) == ["b", "a"] and bars.data[0].x[0] == -1.0
    with pytest.raises(BrainlabInputError, match="no finite"):
        r2_bars(pd.Series({"a": np.nan}))


def test_error_strip_and_probe_views():
    errors = pd.DataFrame({"subject_id": ["s1", "s2"], "sex": ["F", "M"], "ssim": [0.9, 0.8]})
    assert len(error_by_subject(errors, selected="s2").data) == 3
    probes = pd.DataFrame({
        "representation": ["raw MRI", "mri-ae latent"], "target": ["sex", "sex"],
        "model": ["logistic regression"] * 2, "strategy": ["binary"] * 2,
        "accuracy_mean": [0.9, 0.8], "accuracy_sd": [0.01, 0.02], "chance": [0.5, 0.5],
        SEED_COLUMN: ["0.937", "0.94"]})
    view = probe_table_view(probes)
    assert view["accuracy (5-fold CV)"].tolist() == ["0.900 ± 0.010", "0.800 ± 0.020"]
    assert view[SEED_COLUMN].tolist() == ["0.937", "0.94"]
    assert len(probe_comparison(probes).data) == 3
    with pytest.raises(BrainlabInputError, match="lacks columns"):
        probe_table_view(probes.drop(columns=["accuracy_sd"]))
    # Rows of the same probe are adjacent: raw then latent, model by model.
    two_models = pd.concat([probes, probes.assign(model="KNN")], ignore_index=True)
    view = probe_table_view(two_models)
    assert view["model"].tolist() == ["logistic regression"] * 2 + ["KNN"] * 2
    assert view["representation"].tolist() == ["raw MRI", "mri-ae latent"] * 2


def test_compact_triplanar_shortens_plane_titles(small_cohort):
    from brainlab.viz.reconstruction_plots import compact_triplanar

    volume = small_cohort.images[0]
    fig = compact_triplanar({"MRI": volume, "reconstruction": volume}, small_cohort.affine)
    titles = [a.text for a in fig.layout.annotations if "mm" in (a.text or "")]
    assert len(titles) == 3 and all(t[0] in "xyz" and t[1:4] == " = " for t in titles)
    assert len(fig.data) == 6
