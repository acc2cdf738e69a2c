"""Real vs synthetic comparison: classifier outputs, memorisation of a planted copy, realism.

A stub GAN replays a fixed stack of volumes (row k of z picks volume k), so a
copy of a training brain can be planted among the samples.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from brainlab.analysis.real_vs_synthetic import (
    age_bin_edges, classifier_kind, classifier_outputs, compare_real_synthetic,
    realism_order, realism_scores,
)
from brainlab.errors import BrainlabInputError

SHAPE = (12, 14, 16)


class ReplayGan:
    """sample_latent(n) -> rows (k, 0, ...); generate -> self.volumes[k]."""

    latent_dim = 4

    def __init__(self, volumes):
        self.volumes = torch.as_tensor(np.asarray(volumes, dtype=np.float32))
        self.grid_shape = tuple(self.volumes.shape[1:])

    def sample_latent(self, n, seed=0):
        z = torch.zeros(int(n), self.latent_dim)
        z[:, 0] = torch.arange(int(n)) % len(self.volumes)
        return z

    def generate(self, z):
        return self.volumes[torch.as_tensor(z)[:, 0].long()][:, None]


class SizeSexClassifier:
    """P(male) rises with brain size (men are larger in small_cohort)."""

    model_type = "sex-clf"

    def predict_proba(self, x):
        size = (x > 0.5).float().mean(dim=(1, 2, 3, 4))
        return torch.sigmoid((size - size.median()) * 200)


class TrueAgeModel:
    """Predicts a constant age (years)."""

    model_type = "age-model"
    target = "years"

    def predict_age(self, x):
        return torch.full((len(x),), 31.0)


def synthetic_stack(cohort, indices, plant_at=None, plant_from=None, seed=0):
    """Blurred, noisy versions of cohort brains (not copies); optionally one exact copy."""
    rng = np.random.default_rng(seed)
    images = np.asarray(cohort.images[np.asarray(indices)], dtype=np.float32)
    fakes = np.stack([np.clip(gaussian_filter(image, 1.0) + rng.normal(0, 0.08, SHAPE), 0, 1)
                      for image in images]).astype(np.float32)
    if plant_at is not None:
        fakes[plant_at] = cohort.images[plant_from]
    return fakes


def test_classifier_kind_and_outputs(small_cohort):
    assert classifier_kind(SizeSexClassifier()) == "sex"
    assert classifier_kind(TrueAgeModel()) == "age"
    with pytest.raises(BrainlabInputError, match="expected a sex classifier .* found 'gan'"):
        classifier_kind(type("G", (), {"model_type": "gan"})())
    scores = classifier_outputs(SizeSexClassifier(), small_cohort.images[np.arange(10)], batch_size=4)
    assert scores.shape == (10,) and np.all((scores >= 0) & (scores <= 1))
    with pytest.raises(BrainlabInputError, match=r"volumes must be \(n, D, H, W\)"):
        classifier_outputs(TrueAgeModel(), np.zeros((2, 12, 14)))


def test_memorisation_flags_the_planted_copy(small_cohort):
    split = small_cohort.split(0)
    train, heldout = split.train, split.test
    copied = int(train[2])
    fakes = synthetic_stack(small_cohort, train[:12], plant_at=5, plant_from=copied)
    result = compare_real_synthetic(SizeSexClassifier(), ReplayGan(fakes), small_cohort,
                                    n_samples=12, heldout_indices=heldout, train_indices=train)
    memo = result["memorisation"]
    assert memo["suspected"][5]
    assert memo["generated_distances"][5] == pytest.approx(0.0, abs=1e-6)
    assert memo["generated_nearest_train_id"][5] == small_cohort.subject_ids[copied]
    assert memo["n_suspected"] == 1  # the noisy, blurred others are not copies
    assert result["summary"]["memorisation_n_suspected"] == 1


def test_sex_summary_confusion_and_calibration(small_cohort):
    split = small_cohort.split(0)
    fakes = synthetic_stack(small_cohort, split.train[:10])
    result = compare_real_synthetic(SizeSexClassifier(), ReplayGan(fakes), small_cohort,
                                    n_samples=10, heldout_indices=split.test,
                                    train_indices=split.train, memorisation=False)
    summary = result["summary"]
    male = (small_cohort.table["sex"].to_numpy()[split.test] == "M")
    assert summary["kind"] == "sex" and summary["n_real"] == len(split.test)
    assert summary["male_fraction_real_true"] == pytest.approx(male.mean())
    assert result["confusion"].sum() == len(split.test)
    assert result["confusion"][1].sum() == male.sum()  # row 1 = truly male
    assert 0.0 <= summary["male_fraction_synthetic"] <= 1.0
    assert 0.0 <= summary["two_sample_auc"] <= 1.0
    assert result["calibration"]["count"].sum() == len(split.test)
    assert result["memorisation"] is None
    assert sorted(realism_order(result).tolist()) == list(range(10))


def test_age_model_bins_predictions_into_the_cohort_bins(small_cohort):
    split = small_cohort.split(0)
    fakes = synthetic_stack(small_cohort, split.train[:8])
    result = compare_real_synthetic(TrueAgeModel(), ReplayGan(fakes), small_cohort, n_samples=8,
                                    heldout_indices=np.arange(len(small_cohort)),
                                    train_indices=split.train, memorisation=False)
    assert result["kind"] == "age"
    assert result["summary"]["mean_predicted_synthetic"] == pytest.approx(31.0)
    n_bins = len(set(small_cohort.table["age_bin"]))
    assert result["confusion"].shape == (n_bins, n_bins)
    # Every brain is predicted 31 years old: one predicted column holds everyone.
    assert (result["confusion"].sum(axis=0) > 0).sum() == 1
    edges, codes = age_bin_edges(small_cohort, np.arange(len(small_cohort)))
    assert len(edges) == len(codes) - 1 and np.all(np.diff(edges) > 0)


def test_age_bin_edges_come_from_numeric_labels_when_there_are_no_ages():
    from types import SimpleNamespace

    import pandas as pd

    table = pd.DataFrame({"age": [np.nan] * 4, "age_bin": [0, 1, 2, 3]})
    hcp_like = SimpleNamespace(age_bin_labels=("22-25", "26-30", "31-35", "36+"), table=table)
    edges, codes = age_bin_edges(hcp_like, np.arange(4))
    np.testing.assert_array_equal(edges, [26.0, 31.0, 36.0])
    assert codes == [0, 1, 2, 3]
    assert np.digitize([22.0, 30.9, 40.0], edges).tolist() == [0, 1, 3]
    unlabelled = SimpleNamespace(age_bin_labels=("young", "old"), table=table)
    assert age_bin_edges(unlabelled, np.arange(4)) is None


def test_realism_ranks_real_looking_samples_above_obvious_fakes(small_cohort):
    real = np.asarray(small_cohort.images[np.arange(12)])
    realistic = synthetic_stack(small_cohort, np.arange(12, 24), seed=1)
    obvious = np.random.default_rng(2).uniform(0, 1, (12,) + SHAPE).astype(np.float32)
    scores = realism_scores(real, np.concatenate([realistic, obvious]), n_splits=3)
    assert scores.shape == (24,)
    assert scores[:12].mean() > scores[12:].mean() + 0.2


def test_discriminator_auc_matches_the_model_card_two_sample_auc(small_cohort):
    from brainlab.analysis.metrics import two_sample_auc
    from brainlab.analysis.real_vs_synthetic import real_vs_synthetic_discriminator

    real = np.asarray(small_cohort.images[np.arange(12)])
    fakes = synthetic_stack(small_cohort, np.arange(12, 24), seed=3)
    result = real_vs_synthetic_discriminator(real, fakes, seed=4, n_splits=4)
    assert result["auc"] == pytest.approx(two_sample_auc(real, fakes, seed=4, n_splits=4))
    assert result["p_real"].shape == (12,)


def test_compare_rejects_a_grid_mismatch(small_cohort):
    gan = ReplayGan(np.zeros((2, 10, 10, 10), np.float32))
    with pytest.raises(BrainlabInputError, match=r"generates on grid \(10, 10, 10\)"):
        compare_real_synthetic(SizeSexClassifier(), gan, small_cohort, n_samples=2)


def run_compare_cli(argv) -> int:
    import argparse

    from brainlab.cli import compare

    parser = argparse.ArgumentParser()
    compare.register(parser.add_subparsers())
    args = parser.parse_args(["compare", *argv])
    return args.run(args)


def test_compare_cli_prints_the_summary_as_json(tiny_checkpoints, capsys):
    import json

    code = run_compare_cli(["--classifier", str(tiny_checkpoints / "sex-clf"),
                            "--gan", str(tiny_checkpoints / "gan"), "--cohort", "tiny",
                            "--samples", "8", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "sex" and summary["n_synthetic"] == 8
    assert 0.0 <= summary["male_fraction_synthetic"] <= 1.0
    assert "two_sample_auc" in summary and "memorisation_fraction_suspected" in summary
    with pytest.raises(BrainlabInputError, match="--classifier must be one of"):
        run_compare_cli(["--classifier", str(tiny_checkpoints / "gan"),
                         "--gan", str(tiny_checkpoints / "gan"), "--cohort", "tiny"])


def test_compare_cli_shows_progress_and_stores_the_result(tiny_checkpoints, capsys):
    import json

    from brainlab.analysis import derived_results
    from brainlab.data import load
    from brainlab.result_store import default_store

    argv = ["--classifier", str(tiny_checkpoints / "age-model"), "--gan",
            str(tiny_checkpoints / "gan"), "--cohort", "tiny", "--samples", "6", "--seed", "3",
            "--json"]
    assert run_compare_cli(argv) == 0
    captured = capsys.readouterr()
    assert "compare" in captured.err
    first = json.loads(captured.out)
    key = derived_results.real_vs_synthetic_key(load("tiny"), tiny_checkpoints / "age-model",
                                                tiny_checkpoints / "gan", 6, 3)
    assert default_store().contains(key)
    assert run_compare_cli(argv) == 0
    assert json.loads(capsys.readouterr().out) == first


def test_a_precomputed_real_reference_gives_the_same_comparison(small_cohort):
    from brainlab.analysis.real_vs_synthetic import heldout_subset, real_reference

    split = small_cohort.split(0)
    fakes = synthetic_stack(small_cohort, split.train[:8])
    heldout = heldout_subset(split.test, max_real=3)
    assert len(heldout) == 3 and np.array_equal(heldout, heldout_subset(split.test, 3))
    reference = real_reference(SizeSexClassifier(), small_cohort, heldout, split.train)
    kwargs = dict(n_samples=8, heldout_indices=split.test, train_indices=split.train, max_real=3)
    plain = compare_real_synthetic(SizeSexClassifier(), ReplayGan(fakes), small_cohort, **kwargs)
    reused = compare_real_synthetic(SizeSexClassifier(), ReplayGan(fakes), small_cohort,
                                    reference=reference, **kwargs)
    assert plain["summary"] == reused["summary"]
    np.testing.assert_array_equal(plain["memorisation"]["heldout_distances"],
                                  reused["memorisation"]["heldout_distances"])
    with pytest.raises(BrainlabInputError, match="other held-out brains"):
        compare_real_synthetic(SizeSexClassifier(), ReplayGan(fakes), small_cohort,
                               reference=reference, **dict(kwargs, max_real=None))
