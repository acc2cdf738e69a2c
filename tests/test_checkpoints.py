"""Checkpoints: save -> load gives identical outputs, mismatches raise, listing, verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from brainlab.checkpoints import (CARD_NAME, WEIGHTS_NAME, available, load_checkpoint,
                                  quality_verdict, save_checkpoint)
from brainlab.errors import CheckpointMismatchError
from conftest import make_small_cohort
from test_models import TINY_CONFIGS, steps_for, tiny_model

TRAINING = {"seconds": 1.0, "steps": 3, "epochs": 1, "device": "cpu", "bf16": False}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest


def _trained_a_little(model_type, cohort):
    """A model whose weights and statistics differ from a fresh one."""
    torch.manual_seed(1)
    model = tiny_model(model_type, cohort)
    steps_for(model).fit_statistics(cohort, np.arange(8))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return model.eval()


def _outputs(model, cohort):
    batch = next(iter(steps_for(model).batches(cohort, np.arange(4), 4)))
    with torch.no_grad():
        return model(batch["features"] if model.model_type == "morph-ae" else batch["image"])


@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
def test_save_load_gives_identical_outputs(model_type, small_cohort, tmp_path):
    model = _trained_a_little(model_type, small_cohort)
    folder = save_checkpoint(model, tmp_path / "ckpt", small_cohort, split_seed=0,
                             metrics={"split": "test", "n": 4}, training=TRAINING)
    assert (folder / WEIGHTS_NAME).exists() and (folder / CARD_NAME).exists()
    loaded, card = load_checkpoint(folder, expected_type=model_type, cohort=small_cohort)
    assert not loaded.training
    assert card["model_type"] == model_type
    assert card["cohort"]["grid_shape"] == [12, 14, 16]
    assert card["cohort"]["split_sizes"] == {"train": 16, "val": 4, "test": 4}
    assert card["cohort_match"] is True
    assert card["versions"]["torch"] == torch.__version__
    assert torch.equal(_outputs(model, small_cohort), _outputs(loaded, small_cohort))


def test_card_stores_config_and_extra_state(small_cohort, tmp_path):
    model = _trained_a_little("morph-ae", small_cohort)
    save_checkpoint(model, tmp_path, small_cohort, 0, {"mean_r2": 0.5, "n": 4}, TRAINING)
    card = json.loads((tmp_path / CARD_NAME).read_text())
    assert card["config"] == {"latent_dim": 4, "hidden": [16], "dropout": 0.0,
                              "weight_decay": 1e-5, "default_lr": 1e-3}
    assert card["extra_state"]["feature_names"] == model.feature_names
    loaded, _ = load_checkpoint(tmp_path)
    assert torch.equal(loaded.feature_mean, model.feature_mean)


def test_half_storage_is_close_and_restored_to_fp32(small_cohort, tmp_path):
    from brainlab.config import MriAutoencoderConfig
    from brainlab.models.autoencoder import MriAutoencoder

    torch.manual_seed(0)
    model = MriAutoencoder.from_cohort(small_cohort, MriAutoencoderConfig(latent_dim=64)).eval()
    # The decoder head starts at zero (output = mean brain); give it weights as training would.
    torch.nn.init.normal_(model.decoder.head[0].weight, std=0.05)
    save_checkpoint(model, tmp_path / "full", small_cohort, 0, {}, TRAINING)
    save_checkpoint(model, tmp_path / "half", small_cohort, 0, {}, TRAINING, storage="float16")
    full_size = (tmp_path / "full" / WEIGHTS_NAME).stat().st_size
    half_size = (tmp_path / "half" / WEIGHTS_NAME).stat().st_size
    assert half_size < 0.75 * full_size
    loaded, card = load_checkpoint(tmp_path / "half")
    assert card["storage"] == "float16"
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    difference = (_outputs(model, small_cohort) - _outputs(loaded, small_cohort)).abs().max()
    assert 0 < float(difference) < 1e-2


def test_other_grid_raises(small_cohort, tmp_path):
    model = _trained_a_little("sex-clf", small_cohort)
    save_checkpoint(model, tmp_path, small_cohort, 0, {}, TRAINING)
    other = make_small_cohort(n=8, grid=(12, 14, 15), name="other-grid")
    with pytest.raises(CheckpointMismatchError,
                       match=r"expects grid \(12, 14, 16\); cohort 'other-grid' has grid \(12, 14, 15\)"):
        load_checkpoint(tmp_path, cohort=other)


def test_other_type_raises(small_cohort, tmp_path):
    save_checkpoint(_trained_a_little("sex-clf", small_cohort), tmp_path, small_cohort, 0, {},
                    TRAINING)
    with pytest.raises(CheckpointMismatchError, match="holds a 'sex-clf' model; expected 'mri-ae'"):
        load_checkpoint(tmp_path, expected_type="mri-ae")


def test_tensor_shape_mismatch_raises(small_cohort, tmp_path):
    save_checkpoint(_trained_a_little("mri-ae", small_cohort), tmp_path, small_cohort, 0, {},
                    TRAINING)
    card_path = tmp_path / CARD_NAME
    card = json.loads(card_path.read_text())
    card["config"]["latent_dim"] = 9
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointMismatchError, match=r"has shape .*; expected"):
        load_checkpoint(tmp_path)


def test_missing_card_raises(tmp_path):
    with pytest.raises(CheckpointMismatchError, match="no model_card.json"):
        load_checkpoint(tmp_path)


def test_other_cohort_same_grid_warns_and_flags(small_cohort, tmp_path):
    save_checkpoint(_trained_a_little("sex-clf", small_cohort), tmp_path, small_cohort, 0, {},
                    TRAINING)
    other = make_small_cohort(seed=5, name="other")
    with pytest.warns(UserWarning, match="fingerprint"):
        _, card = load_checkpoint(tmp_path, cohort=other)
    assert card["cohort_match"] is False


def test_morphometry_checkpoint_needs_its_features(small_cohort, tmp_path):
    save_checkpoint(_trained_a_little("morph-ae", small_cohort), tmp_path, small_cohort, 0, {},
                    TRAINING)
    other = make_small_cohort(name="fewer")
    other.table = other.table.drop(columns=["thickness_mean"])
    with pytest.raises(CheckpointMismatchError, match="lacks 1 of them, e.g. \\['thickness_mean'\\]"):
        load_checkpoint(tmp_path, cohort=other)


def test_available_lists_checkpoints_with_verdicts(small_cohort, tmp_path):
    model = _trained_a_little("mri-ae", small_cohort)
    save_checkpoint(model, tmp_path / "a" / "mri-ae", small_cohort, 0,
                    {"split": "test", "ssim": 0.96, "n": 4}, TRAINING)
    save_checkpoint(_trained_a_little("sex-clf", small_cohort), tmp_path / "b", small_cohort, 0,
                    {"split": "test", "balanced_accuracy": 0.5, "n": 4}, TRAINING)
    entries = available([tmp_path, tmp_path / "missing"])
    assert [(e["model_type"], e["quality"]) for e in entries] == [("mri-ae", "good"),
                                                                  ("sex-clf", "poor")]
    assert entries[0]["cohort"] == "small" and entries[0]["fingerprint"] == small_cohort.fingerprint
    assert entries[0]["metrics"]["ssim"] == 0.96


@pytest.mark.parametrize("model_type,metrics,level", [
    ("mri-ae", {"ssim": 0.95, "n": 10}, "good"),
    ("mri-ae", {"ssim": 0.90, "n": 10}, "fair"),
    ("mri-ae", {"ssim": 0.50, "n": 10}, "poor"),
    ("gan", {"frechet_ratio": 1.8, "two_sample_auc": 0.7}, "good"),
    ("gan", {"frechet_ratio": 1.8, "two_sample_auc": 0.85}, "fair"),
    ("gan", {"frechet_ratio": 44.0, "two_sample_auc": 1.0}, "poor"),
    ("encoder", {"refined_ssim_brain": 0.86}, "good"),
    ("sex-clf", {"balanced_accuracy": 0.91}, "good"),
    ("age-model", {"mae": 1.9}, "good"),
    ("age-model", {"mae": 5.0}, "poor"),
    ("age-model", {"balanced_accuracy": 0.65, "target": "bin"}, "good"),
    ("morph-ae", {"mean_r2": 0.8}, "fair"),
    ("mri-ae", {}, "poor"),
])
def test_quality_verdict(model_type, metrics, level):
    found, sentence = quality_verdict({"model_type": model_type, "metrics": metrics})
    assert found == level
    assert sentence.endswith(".")
    if metrics:
        assert ("misses" not in sentence) == (level == "good")


def test_quality_sentence_names_value_target_and_n():
    _, sentence = quality_verdict({"model_type": "mri-ae",
                                   "metrics": {"ssim": 0.912, "n": 167, "split": "test"}})
    assert sentence == ("held-out SSIM 0.912 misses the target ≥0.95 (test split, n=167); "
                        "no baseline recorded.")


def test_atomic_write_uses_unique_temporary_names_and_usual_permissions(tmp_path):
    import os

    from brainlab.atomic import atomic_write

    seen = []

    def write(temp):
        seen.append(temp)
        assert temp.parent == tmp_path and temp.name.endswith(".nii.gz")
        temp.write_text("volume")

    target = tmp_path / "sub-01.nii.gz"
    atomic_write(target, write)
    atomic_write(target, write)
    assert seen[0] != seen[1] and target.read_text() == "volume"
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600

    def fail(temp):
        temp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "card.json", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub-01.nii.gz"]
