"""The one training loop: ``fit(model, cohort, split, train_config)``.

Read it top to bottom (nanoGPT style): seed everything, fit the data statistics,
build batches, then for each epoch call ``steps.step(batch)`` per batch (the model
type's ``TrainingSteps``), validate with ``scorer`` (its evaluation function) on the
validation split, write an atomic checkpoint and the
optimiser/RNG state, and stop at the epoch count or the time budget. At the end
the test split is evaluated and its metrics go into the model card.

Every event (``step``, ``epoch``, ``sample``, ``done``) is a dict appended as one
JSON line to ``out_dir/events.jsonl`` and passed to each callback: the CLI drives
a tqdm bar from them, the app reads the file for live curves.

Under ``torchrun`` (a process group is active, ``brainlab.training.distributed``) the
same loop runs on every rank: rank 0's weights are broadcast, each rank trains on its
share of every total batch of ``batch_size`` rows, gradients are averaged before each
optimiser step, rank 0's stop decision is shared, and rank 0 alone evaluates and writes
events, previews and checkpoints while the others wait. Without a process group nothing
of this happens.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from brainlab.atomic import atomic_write
from brainlab.checkpoints import load_checkpoint, save_checkpoint
from brainlab.config import TrainConfig, config_to_dict
from brainlab.errors import BrainlabInputError, CheckpointMismatchError
from brainlab.precision import resolve_bf16, resolve_device
from brainlab.registry import model_spec
from brainlab.training import distributed

EVENTS_NAME = "events.jsonl"
TRAIN_STATE_NAME = "train_state.pt"

Callback = Callable[[dict], None]
Scorer = Callable[..., dict]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class EventLog:
    """Appends events to ``events.jsonl`` (when a folder is given) and calls callbacks."""

    def __init__(self, out_dir: Path | None, callbacks: Iterable[Callback] = ()):
        self.path = None if out_dir is None else Path(out_dir) / EVENTS_NAME
        self.callbacks = list(callbacks)

    def emit(self, event: dict) -> None:
        if self.path is not None:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(event, default=_json_default) + "\n")
        for callback in self.callbacks:
            callback(event)


def scalar_metrics(metrics: dict) -> dict:
    """Only the scalar entries of a metrics dict (events stay small; cards keep lists)."""
    return {k: v for k, v in metrics.items()
            if v is None or isinstance(v, (bool, int, float, str))}


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def read_events(out_dir) -> list[dict]:
    """All events of a run folder (empty if it has none yet); tolerates a partial last line."""
    path = Path(out_dir) / EVENTS_NAME
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def _save_train_state(out_dir: Path, steps, step: int, epoch: int, seconds: float) -> None:
    state = {"optimizers": steps.optimizer_state(), "step": step, "epoch": epoch,
             "seconds": seconds, "rng": _rng_state()}
    atomic_write(out_dir / TRAIN_STATE_NAME, lambda temp: torch.save(state, temp))


def _evaluate(scorer, model, cohort, indices, max_subjects, split_name: str,
              train_indices=None) -> dict:
    """``scorer`` on ``indices``; with ``train_indices`` (the final test evaluation) also
    the baselines on the same subjects, so a new card says what a trivial method scores."""
    extra = {}
    if train_indices is not None and "train_indices" in inspect.signature(scorer).parameters:
        extra["train_indices"] = train_indices
    model.eval()
    with torch.no_grad():
        metrics = dict(scorer(model, cohort, indices, max_subjects=max_subjects, **extra))
    model.train()
    metrics["split"] = split_name
    return metrics


def fit(model, cohort, split=None, train_config: TrainConfig | None = None,
        callbacks: Iterable[Callback] = (), resume_from=None, out_dir=None,
        steps=None, scorer: Scorer | None = None) -> dict:
    """Train ``model`` on ``cohort`` and return a summary dict.

    ``steps`` (a ``brainlab.training.steps.TrainingSteps``: statistics, optimisers, one
    step per batch) and ``scorer`` (``scorer(model, cohort, indices, max_subjects)`` ->
    metrics dict, from ``brainlab.analysis.evaluation``) default to the model type's
    entries in ``brainlab.registry``.

    ``split`` defaults to ``cohort.split(train_config.split_seed)``. With ``out_dir``,
    a checkpoint (``brainlab.checkpoints``) plus ``train_state.pt`` is written after
    every epoch, events go to ``out_dir/events.jsonl``, and the final checkpoint's
    card holds the test-split metrics. ``resume_from`` (a folder written by an
    earlier ``fit``) restores weights, optimisers, step, epoch and RNG state; the
    epoch count and time budget then cover the whole run, earlier time included.

    Under ``torchrun`` every rank calls ``fit`` with the same arguments (the process
    group set up by ``brainlab.training.distributed.setup``): ``train_config.batch_size``
    is the total batch of one step, split over the ranks, and every rank returns rank 0's
    metrics once its checkpoint is written.

    Returns ``{"out_dir", "steps", "epochs", "seconds", "stopped", "val_metrics",
    "metrics"}`` where ``metrics`` are the test-split metrics.
    """
    config = train_config or TrainConfig()
    spec = model_spec(model.model_type)
    steps = steps if steps is not None else spec.steps_class()(model, config)
    scorer = scorer if scorer is not None else spec.evaluation()
    if split is None:
        split = cohort.split(config.split_seed)
    device = distributed.device_for(resolve_device(config.device))
    rank, world = distributed.rank(), distributed.world_size()
    is_main = rank == 0
    # Processes on one machine share its cores unless told otherwise.
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if world > 1 else 1
    torch.set_num_threads(config.num_threads or max(1, (os.cpu_count() or 1) // local_world))
    seed_everything(config.seed)
    bf16 = resolve_bf16(config.bf16, device)

    out_dir = None if out_dir is None else Path(out_dir)
    if out_dir is not None and is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume_from is None:
            (out_dir / EVENTS_NAME).unlink(missing_ok=True)  # a fresh run starts a fresh log
    log = EventLog(out_dir if is_main else None, callbacks if is_main else ())
    writes = out_dir is not None and is_main

    step, epoch, seconds_before = 0, 0, 0.0
    if resume_from is not None:
        resume_from = Path(resume_from)
        trained, card = load_checkpoint(resume_from, expected_type=model.model_type,
                                        cohort=cohort)
        try:
            model.load_state_dict(trained.state_dict())
        except RuntimeError as error:
            raise CheckpointMismatchError(
                f"cannot resume from {resume_from}: its {card['model_type']} was built with "
                f"config {card['config']}; the model to train has config "
                f"{config_to_dict(model.config)} ({str(error).splitlines()[0]})") from None
        steps.resume_statistics(cohort, split.train)
    else:
        steps.fit_statistics(cohort, split.train)
    model.to(device)
    model.set_precision(bf16, config.channels_last)
    steps.configure_optimizers()
    if resume_from is not None:
        state_path = resume_from / TRAIN_STATE_NAME
        if not state_path.exists():
            raise BrainlabInputError(
                f"cannot resume from {resume_from}: no {TRAIN_STATE_NAME} (expected a folder "
                f"written by an earlier training run)")
        state = torch.load(state_path, map_location=device, weights_only=False)
        steps.load_optimizer_state(state["optimizers"])
        step, epoch, seconds_before = state["step"], state["epoch"], state["seconds"]
        _set_rng_state(state["rng"])

    averager = None
    if world > 1:
        distributed.broadcast_module(model)  # every rank starts from rank 0's weights
        averager = distributed.GradientAverager(steps.optimizers.values())
        if rank > 0:  # in-step randomness (noise, z) differs per rank; rank 0 keeps its stream
            seed_everything(config.seed + 7919 * rank + 104_729 * step)
    batches = steps.batches(cohort, split.train, config.batch_size, shuffle=True,
                            seed=config.seed)
    if world > 1 or config.loader_workers:
        if not hasattr(batches, "shard"):
            raise BrainlabInputError(
                f"{type(steps).__name__}.batches returned a {type(batches).__name__}, which "
                f"cannot be sharded over processes; expected brainlab.data.batches.CohortBatches")
        batches.shard(rank, world, config.loader_workers)
    steps_per_epoch = len(batches)
    total_steps = config.epochs * steps_per_epoch
    budget = None if config.minutes is None else 60.0 * config.minutes
    split_sizes = {k: len(getattr(split, k)) for k in ("train", "val", "test")}
    start = time.perf_counter()
    start_step = step

    def elapsed() -> float:
        return seconds_before + time.perf_counter() - start

    def eta() -> float | None:
        done = step - start_step
        if done == 0:
            return None
        per_step = (time.perf_counter() - start) / done
        remaining = per_step * max(total_steps - step, 0)
        if budget is not None:
            remaining = min(remaining, max(budget - elapsed(), 0.0))
        return remaining

    def training_info() -> dict:
        return {"seconds": round(elapsed(), 2), "steps": step, "epochs": epoch,
                "device": str(device), "bf16": bf16, "channels_last": model.use_channels_last,
                "threads": torch.get_num_threads(), "steps_per_epoch": steps_per_epoch,
                "processes": world, "config": config_to_dict(config)}

    def out_of_budget() -> bool:
        """Rank 0's verdict on the time budget, the same on every rank."""
        return budget is not None and distributed.agree(elapsed() >= budget)

    def rows_in(batch) -> int:
        """This rank's rows in ``batch`` (0 for a stand-in row): its gradient's weight."""
        if hasattr(batches, "rows_in_last_batch"):
            return int(batches.rows_in_last_batch)
        return len(next(iter(batch.values())))

    stopped = "epochs"
    val_metrics: dict = {}
    losses: dict = {}
    model.train()
    weight = 0
    while epoch < config.epochs:
        if out_of_budget():
            stopped = "time"
            break
        batches.set_epoch(epoch)
        out_of_time = False
        for batch in batches:
            if averager is not None:
                weight = rows_in(batch)
                averager.weight = weight
                averager.track(steps.optimizers.values())  # optimisers a step made lazily
            losses = steps.step(batch)
            step += 1
            if step % config.log_every == 0 or step == start_step + 1:
                log.emit({"type": "step", "step": step, "epoch": epoch,
                          "losses": distributed.weighted_mean_of_dicts(losses, weight),
                          "elapsed": round(elapsed(), 3), "eta_seconds": eta(),
                          "total_steps": total_steps})
            if out_of_budget():
                out_of_time = True
                break
        epoch += 1
        is_last = epoch >= config.epochs or out_of_time
        distributed.average_batchnorm_statistics(model)
        losses = distributed.weighted_mean_of_dicts(losses, weight)
        if is_main and (epoch % config.eval_every == 0 or is_last):
            val_metrics = _evaluate(scorer, model, cohort, split.val, config.max_eval_subjects, "val")
        log.emit({"type": "epoch", "step": step, "epoch": epoch, "losses": losses,
                  "metrics": scalar_metrics(val_metrics), "elapsed": round(elapsed(), 3),
                  "eta_seconds": eta(), "total_steps": total_steps})
        if writes:
            sample = steps.preview(out_dir / "previews", step)
            if sample is not None:
                log.emit({"type": "sample", "step": step, "epoch": epoch, "path": str(sample),
                          "elapsed": round(elapsed(), 3)})
            save_checkpoint(model, out_dir, cohort, config.split_seed, val_metrics,
                            training_info(), split_sizes=split_sizes,
                            storage=config.storage)
            _save_train_state(out_dir, steps, step, epoch, elapsed())
        distributed.barrier()  # the others wait while rank 0 evaluates and writes
        if out_of_time:
            stopped = "time"
            break

    if averager is not None:
        averager.remove()
    test_metrics = {}
    if is_main:
        test_metrics = _evaluate(scorer, model, cohort, split.test, None, "test",
                                 train_indices=split.train)
    if writes:
        save_checkpoint(model, out_dir, cohort, config.split_seed, test_metrics,
                        training_info(), split_sizes=split_sizes, storage=config.storage)
        _save_train_state(out_dir, steps, step, epoch, elapsed())
    # Every rank returns rank 0's metrics, once its checkpoint is on disk.
    test_metrics = distributed.broadcast_object(test_metrics)
    val_metrics = distributed.broadcast_object(val_metrics)
    summary = {"out_dir": None if out_dir is None else str(out_dir), "steps": step,
               "epochs": epoch, "seconds": round(elapsed(), 2), "stopped": stopped,
               "val_metrics": val_metrics, "metrics": test_metrics}
    log.emit({"type": "done", "step": step, "epoch": epoch, "metrics": scalar_metrics(test_metrics),
              "elapsed": round(elapsed(), 3), "eta_seconds": 0.0, "stopped": stopped,
              "total_steps": total_steps})
    model.eval()
    return summary
