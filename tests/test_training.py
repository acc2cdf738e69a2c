"""The training loop: batches, events, checkpoints each epoch, resume, time budget, CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from brainlab.__main__ import main
from brainlab.checkpoints import load_checkpoint, read_card
from brainlab.config import TrainConfig
from brainlab.errors import BrainlabInputError
from brainlab.analysis.evaluation import evaluate_checkpoint
from brainlab.data.batches import CohortBatches
from brainlab.training import build_model, fit, read_events
from conftest import make_small_cohort
from test_models import TINY_CONFIGS, tiny_model

FAST = TrainConfig(epochs=2, batch_size=4, num_threads=1, log_every=1, seed=3)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest


def test_batches_have_documented_fields(small_cohort):
    batches = CohortBatches(small_cohort, np.arange(10), batch_size=4)
    assert len(batches) == 3
    batch = next(iter(batches))
    assert batch["image"].shape == (4, 1, 12, 14, 16) and batch["image"].dtype == torch.float32
    assert batch["sex"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert batch["age"].dtype == torch.float32 and batch["age_bin"].dtype == torch.int64
    assert batch["features"].shape == (4, 3)
    assert batch["index"].tolist() == [0, 1, 2, 3]
    sizes = [len(b["index"]) for b in batches]
    assert sizes == [4, 4, 2]


def test_shuffled_order_is_seeded_per_epoch(small_cohort):
    def order(seed, epoch):
        batches = CohortBatches(small_cohort, np.arange(24), 24, shuffle=True, seed=seed,
                                fields=("index",))
        batches.set_epoch(epoch)
        return next(iter(batches))["index"].tolist()

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)
    assert sorted(order(0, 1)) == list(range(24))


def test_noise_augmentation_stays_in_range(small_cohort):
    plain = next(iter(CohortBatches(small_cohort, [0, 1], 2, fields=("image",))))["image"]
    noisy = next(iter(CohortBatches(small_cohort, [0, 1], 2, fields=("image",),
                                    augment_noise_sd=0.1)))["image"]
    assert not torch.equal(plain, noisy)
    assert float(noisy.min()) >= 0 and float(noisy.max()) <= 1


def test_batches_check_inputs(small_cohort):
    table_only = type(small_cohort)(name="table", table=small_cohort.table,
                                    affine=small_cohort.affine)
    with pytest.raises(BrainlabInputError, match="cohort 'table' has no images"):
        CohortBatches(table_only, [0], 1, fields=("image",))
    with pytest.raises(BrainlabInputError, match="unknown batch fields \\['mask'\\]"):
        CohortBatches(small_cohort, [0], 1, fields=("mask",))
    with pytest.raises(BrainlabInputError, match="batch_size must be >= 1; found 0"):
        CohortBatches(small_cohort, [0], 0)


@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
def test_fit_writes_events_checkpoint_and_test_metrics(model_type, small_cohort, tmp_path):
    seen = []
    summary = fit(tiny_model(model_type, small_cohort), small_cohort, None, FAST,
                  callbacks=[seen.append], out_dir=tmp_path)
    assert summary["steps"] == 8 and summary["epochs"] == 2 and summary["stopped"] == "epochs"
    events = read_events(tmp_path)
    assert events == json.loads(json.dumps(seen))
    assert [e["type"] for e in events].count("epoch") == 2
    assert events[-1]["type"] == "done" and events[-1]["step"] == 8
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 9))
    assert all(np.isfinite(list(e["losses"].values())).all() for e in steps)
    assert steps[-1]["eta_seconds"] == pytest.approx(0.0, abs=1e-6)
    card = read_card(tmp_path)
    assert card["metrics"]["split"] == "test" and card["metrics"]["n"] == 4
    assert card["training"]["steps"] == 8 and card["training"]["bf16"] in (True, False)
    assert summary["metrics"]["n"] == 4 and summary["val_metrics"]["split"] == "val"
    model, _ = load_checkpoint(tmp_path, expected_type=model_type, cohort=small_cohort)


def test_fit_is_reproducible(small_cohort):
    from brainlab.training import seed_everything

    results = []
    for _ in range(2):
        seed_everything(0)  # the initial weights are the caller's to seed
        results.append(fit(tiny_model("morph-ae", small_cohort), small_cohort, None, FAST))
    assert results[0]["metrics"]["mse"] == results[1]["metrics"]["mse"]


def test_resume_continues_step_count(small_cohort, tmp_path):
    model = tiny_model("mri-ae", small_cohort)
    fit(model, small_cohort, None, FAST, out_dir=tmp_path)
    assert oct((tmp_path / "train_state.pt").stat().st_mode & 0o777) == oct(
        0o666 & ~_umask())  # written atomically, with the usual permissions
    longer = TrainConfig(**{**FAST.__dict__, "epochs": 3})
    summary = fit(tiny_model("mri-ae", small_cohort), small_cohort, None, longer,
                  resume_from=tmp_path, out_dir=tmp_path)
    assert summary["steps"] == 12 and summary["epochs"] == 3
    steps = [e["step"] for e in read_events(tmp_path) if e["type"] == "step"]
    assert steps == list(range(1, 13))
    assert read_card(tmp_path)["training"]["steps"] == 12


def test_resume_without_state_is_a_clear_error(small_cohort, tmp_path):
    from brainlab.checkpoints import save_checkpoint

    model = tiny_model("sex-clf", small_cohort)
    save_checkpoint(model, tmp_path, small_cohort, 0, {}, {})
    with pytest.raises(BrainlabInputError, match="no train_state.pt"):
        fit(tiny_model("sex-clf", small_cohort), small_cohort, None, FAST, resume_from=tmp_path)


def test_time_budget_stops_training(small_cohort, tmp_path):
    config = TrainConfig(epochs=1000, minutes=0.5 / 60, batch_size=4, num_threads=1)
    summary = fit(tiny_model("mri-ae", small_cohort), small_cohort, None, config, out_dir=tmp_path)
    assert summary["stopped"] == "time"
    assert summary["epochs"] < 1000
    assert read_card(tmp_path)["metrics"]["split"] == "test"


def test_morphometry_autoencoder_trains_on_table_only_cohort(fixture_csv, tmp_path):
    from brainlab.data.sources import load

    cohort = load(fixture_csv)
    assert cohort.images is None
    model = tiny_model("morph-ae", cohort)
    summary = fit(model, cohort, None, TrainConfig(epochs=3, batch_size=64, num_threads=1),
                  out_dir=tmp_path)
    assert summary["metrics"]["mean_r2"] is not None
    assert read_card(tmp_path)["cohort"]["grid_shape"] is None


@pytest.fixture
def tensor_folder(tmp_path):
    """The small cohort written as HCP-style tensors, loadable by path from the CLI."""
    cohort = make_small_cohort()
    folder = tmp_path / "tensors"
    folder.mkdir()
    np.save(folder / "images.npy", np.asarray(cohort.images))
    np.save(folder / "sex.npy", (cohort.table["sex"] == "M").to_numpy().astype(np.int64))
    np.save(folder / "age.npy", cohort.table["age_bin"].to_numpy().astype(np.int64))
    return folder


def test_train_and_evaluate_cli(tensor_folder, tmp_path, capsys):
    out = tmp_path / "clf"
    code = main(["train", "sex-clf", "--cohort", str(tensor_folder), "--out", str(out),
                 "--epochs", "1", "--batch-size", "8", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"sex-clf: {out}" in printed and "quality" in printed
    card = read_card(out)
    assert card["training"]["epochs"] == 1 and card["cohort"]["name"] == "tensors"

    assert main(["evaluate", str(out), "--cohort", str(tensor_folder)]) == 0
    table = capsys.readouterr().out
    assert "metric" in table and "card" in table and "now" in table
    assert "balanced_accuracy" in table and "matches the card's" in table

    assert main(["evaluate", str(out), "--cohort", str(tensor_folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model_type"] == "sex-clf"
    assert result["metrics"]["balanced_accuracy"] == pytest.approx(
        card["metrics"]["balanced_accuracy"])
    assert result["quality"] in ("good", "fair", "poor")


def test_evaluate_cli_needs_a_cohort_for_non_presets(small_cohort, tmp_path, capsys):
    from brainlab.checkpoints import save_checkpoint

    save_checkpoint(tiny_model("sex-clf", small_cohort), tmp_path, small_cohort, 0, {}, {})
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a preset" in capsys.readouterr().err


def test_evaluate_checkpoint_on_other_grid_raises(small_cohort, tmp_path):
    from brainlab.errors import CheckpointMismatchError

    fit(tiny_model("sex-clf", small_cohort), small_cohort, None, FAST, out_dir=tmp_path)
    result = evaluate_checkpoint(tmp_path, small_cohort, max_subjects=2)
    assert result["metrics"]["n"] == 2 and result["cohort_match"] is True
    with pytest.raises(CheckpointMismatchError, match="expects grid"):
        evaluate_checkpoint(tmp_path, make_small_cohort(grid=(12, 14, 12)))


def test_train_cli_rejects_resume_without_run(tensor_folder, tmp_path):
    code = main(["train", "sex-clf", "--cohort", str(tensor_folder), "--out",
                 str(tmp_path / "new"), "--resume", "--quiet"])
    assert code == 2


def test_fresh_run_in_used_folder_starts_a_fresh_log(small_cohort, tmp_path):
    for _ in range(2):
        fit(tiny_model("morph-ae", small_cohort), small_cohort, None, FAST, out_dir=tmp_path)
    steps = [e["step"] for e in read_events(tmp_path) if e["type"] == "step"]
    assert steps == list(range(1, 9))


def test_resume_with_other_architecture_is_a_clear_error(small_cohort, tmp_path):
    from dataclasses import replace

    from brainlab.errors import CheckpointMismatchError

    fit(tiny_model("morph-ae", small_cohort), small_cohort, None, FAST, out_dir=tmp_path)
    wider = build_model("morph-ae", small_cohort, replace(TINY_CONFIGS["morph-ae"], hidden=(32,)))
    with pytest.raises(CheckpointMismatchError, match="cannot resume from .*hidden"):
        fit(wider, small_cohort, None, FAST, resume_from=tmp_path, out_dir=tmp_path)


def test_fit_uses_the_steps_and_scorer_it_is_given(small_cohort):
    from brainlab.training.steps import TrainingSteps

    calls = []

    class CountingSteps(TrainingSteps):
        def step(self, batch):
            calls.append(len(batch["features"]))
            return super().step(batch)

    def scorer(model, cohort, indices, max_subjects=None):
        return {"n": int(len(indices)), "custom": 1.0}

    model = tiny_model("morph-ae", small_cohort)
    summary = fit(model, small_cohort, None, FAST, steps=CountingSteps(model, FAST),
                  scorer=scorer)
    assert calls == [4] * 8
    assert summary["metrics"]["custom"] == 1.0 and summary["metrics"]["split"] == "test"


def test_cli_fails_loudly_when_a_command_module_is_missing(monkeypatch, capsys):
    import brainlab.__main__ as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + ("no_such_command",))
    assert cli.main(["--help"]) == 1
    assert "brainlab.cli.no_such_command is missing" in capsys.readouterr().err
