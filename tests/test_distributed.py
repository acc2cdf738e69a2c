"""Training on several processes: the sharded batches, and 2 gloo processes under torchrun.

The torchrun tests train the morphometry autoencoder (no BatchNorm, no dropout, no
randomness inside a step) on the ``tiny`` phantom, so 2 processes x 2 subjects must give
the checkpoint 1 process x 4 subjects gives, up to float rounding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from brainlab.config import TrainConfig
from brainlab.data.batches import CohortBatches
from brainlab.errors import BrainlabInputError
from brainlab.training import build_model, distributed, fit, read_events, seed_everything


def _rows(batches, epoch: int) -> list[list[int]]:
    """Each batch's rows; a stand-in row (weight 0) counts as none."""
    batches.set_epoch(epoch)
    return [batch["index"].tolist() if batches.rows_in_last_batch else [] for batch in batches]


@pytest.mark.parametrize("batch_size", [4, 5, 3])
def test_ranks_share_each_total_batch_as_one_process_reads_it(small_cohort, batch_size):
    indices = np.arange(3, 20)  # 17 rows: the last batch is short
    one = CohortBatches(small_cohort, indices, batch_size, shuffle=True, seed=3,
                        fields=("index",))
    ranks = [CohortBatches(small_cohort, indices, batch_size, shuffle=True, seed=3,
                           fields=("index",), rank=r, world_size=2) for r in range(2)]
    for epoch in (0, 1):
        single = _rows(one, epoch)
        shards = [_rows(batches, epoch) for batches in ranks]
        assert len(shards[0]) == len(shards[1]) == len(single)  # same step count: no deadlock
        for total, first, second in zip(single, *shards):
            assert first + second == total
    assert _rows(one, 0) != _rows(one, 1)  # the order changes per epoch


def test_a_rank_with_no_rows_left_gets_a_stand_in_row_of_weight_zero(small_cohort):
    indices = np.arange(5)  # batch 4: the last total batch has 1 row for 2 ranks
    rank1 = CohortBatches(small_cohort, indices, 4, fields=("index",), rank=1, world_size=2)
    counts = []
    for batch in rank1:
        counts.append((len(batch["index"]), rank1.rows_in_last_batch))
    assert counts == [(2, 2), (1, 0)]


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 1, "world_size": 2}, r"batch size 1 is the total over 2 processes"),
    ({"batch_size": 4, "rank": 2, "world_size": 2}, r"found rank 2, world_size 2"),
    ({"batch_size": 4, "num_workers": -1}, r"num_workers must be >= 0; found -1"),
])
def test_bad_sharding_is_a_clear_error(small_cohort, kwargs, message):
    with pytest.raises(BrainlabInputError, match=message):
        CohortBatches(small_cohort, np.arange(8), fields=("index",), **kwargs)


def test_without_a_process_group_the_helpers_change_nothing():
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    assert distributed.agree(True) and not distributed.agree(False)
    assert distributed.mean_across_ranks(0.25) == 0.25
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.setup("cpu") is False  # not launched by torchrun


# ---- two gloo processes ------------------------------------------------------

TRAIN = dict(epochs=3, batch_size=4, seed=0, num_threads=1, log_every=1,
             max_eval_subjects=None, minutes=None)

WORKER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from brainlab.config import TrainConfig
    from brainlab.data.sources import load
    from brainlab.training import build_model, distributed, fit, seed_everything

    base = Path(sys.argv[1])
    train = json.loads(sys.argv[2])
    distributed.setup("cpu")
    rank = distributed.rank()
    cohort = load("tiny")
    seed_everything(0)
    model = build_model("morph-ae", cohort)
    events = []
    summary = fit(model, cohort, train_config=TrainConfig(**train), out_dir=base / f"rank{rank}",
                  callbacks=[events.append])
    # A time budget far below one epoch: every rank must stop at the same step.
    seed_everything(0)
    timed = fit(build_model("morph-ae", cohort), cohort, out_dir=base / f"timed{rank}",
                train_config=TrainConfig(**{**train, "epochs": 10_000, "minutes": 0.002}))
    (base / f"report{rank}.json").write_text(json.dumps({
        "events": len(events), "steps": summary["steps"], "world": distributed.world_size(),
        "test_metrics": sorted(summary["metrics"]), "timed_steps": timed["steps"],
        "timed_stopped": timed["stopped"]}))
    distributed.teardown()
""")


REPO_ROOT = Path(__file__).resolve().parents[1]


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    """``torchrun`` with 2 processes, run from the repository root (brainlab importable)."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", *args]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def tiny_cohort():
    from brainlab.data.sources import load

    return load("tiny")  # built once here, so the processes only read the warm cache


def _weights(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_two_gloo_processes_match_one_process_and_only_rank_0_writes(tiny_cohort, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    _torchrun([str(script), str(tmp_path), json.dumps(TRAIN)])

    seed_everything(0)
    single = fit(build_model("morph-ae", tiny_cohort), tiny_cohort,
                 train_config=TrainConfig(**TRAIN), out_dir=tmp_path / "single")
    reports = [json.loads((tmp_path / f"report{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in reports] == [2, 2]
    assert reports[0]["steps"] == reports[1]["steps"] == single["steps"] == 12

    distributed_weights, single_weights = _weights(tmp_path / "rank0"), _weights(tmp_path / "single")
    assert distributed_weights.keys() == single_weights.keys()
    for name, value in single_weights.items():
        torch.testing.assert_close(distributed_weights[name], value, rtol=1e-3, atol=1e-4,
                                   msg=lambda text: f"{name}: {text}")
    seed_everything(0)
    initial = build_model("morph-ae", tiny_cohort).state_dict()
    moved = [n for n in single_weights if n in initial and initial[n].is_floating_point()
             and initial[n].shape == single_weights[n].shape
             and not torch.allclose(initial[n], single_weights[n].to(initial[n].dtype), atol=1e-3)]
    assert moved  # the comparison above is between trained weights, not two initialisations

    # Rank 0 wrote the checkpoint, events and state; rank 1 wrote nothing at all.
    assert {p.name for p in (tmp_path / "rank0").iterdir()} >= {
        "model.safetensors", "model_card.json", "events.jsonl", "train_state.pt"}
    assert not (tmp_path / "rank1").exists() and not (tmp_path / "timed1").exists()
    assert reports[1]["events"] == 0 and reports[0]["events"] == len(read_events(tmp_path / "rank0"))
    card = json.loads((tmp_path / "rank0" / "model_card.json").read_text())
    assert card["training"]["processes"] == 2
    assert reports[1]["test_metrics"] == reports[0]["test_metrics"] != []  # rank 0's, shared

    # The time budget: rank 0's decision, so both stopped together, early.
    assert reports[0]["timed_stopped"] == reports[1]["timed_stopped"] == "time"
    assert reports[0]["timed_steps"] == reports[1]["timed_steps"] < 10_000 * 4


def test_torchrun_cli_trains_into_one_folder(tiny_cohort, tmp_path):
    out = tmp_path / "morph"
    result = _torchrun(["-m", "brainlab", "train", "morph-ae", "--cohort", "tiny", "--out",
                        str(out), "--epochs", "2", "--batch-size", "4", "--quiet"])
    assert result.stdout.count("morph-ae: ") == 1  # rank 0 alone prints the result
    card = json.loads((out / "model_card.json").read_text())
    assert card["training"]["processes"] == 2 and card["training"]["steps"] == 8
    assert card["training"]["config"]["batch_size"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["morph"]
