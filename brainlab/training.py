"""The one training loop: ``fit(model, cohort, split, train_config)``.

Read it top to bottom (nanoGPT style): seed everything, build batches, then for
each epoch call ``model.training_step(batch)`` per batch, validate with
``model.evaluate`` on the validation split, write an atomic checkpoint and the
optimiser/RNG state, and stop at the epoch count or the time budget. At the end
the test split is evaluated and its metrics go into the model card.

Every event (``step``, ``epoch``, ``sample``, ``done``) is a dict appended as one
JSON line to ``out_dir/events.jsonl`` and passed to each callback: the CLI drives
a tqdm bar from them, the app reads the file for live curves.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from brainlab.config import TrainConfig, config_to_dict
from brainlab.errors import BrainlabInputError
from brainlab.precision import resolve_bf16, resolve_device

EVENTS_NAME = "events.jsonl"
TRAIN_STATE_NAME = "train_state.pt"
ALL_FIELDS = ("image", "sex", "age", "age_bin", "features", "index")

Callback = Callable[[dict], None]


def numeric_feature_columns(cohort) -> list[str]:
    """The cohort's numeric morphometry columns, in table order."""
    table = cohort.table
    return [c for c in cohort.morphometry_columns
            if np.issubdtype(table[c].dtype, np.number) and table[c].dtype != bool]


class CohortBatches:
    """Iterate a cohort's rows ``indices`` as dicts of tensors, ``batch_size`` at a time.

    Fields (choose with ``fields``): "image" (B, 1, D, H, W) float32 in [0, 1], read
    from the cohort's (memmapped) images per batch; "sex" (B,) float, 1.0 = male;
    "age" (B,) float years, NaN when unknown; "age_bin" (B,) long; "features" (B, F)
    float32 raw morphometry (``feature_columns``, default: numeric morphometry
    columns); "index" (B,) long row positions. With ``shuffle`` the order is a
    permutation seeded by ``seed`` and the epoch number, so runs are reproducible
    and a resumed run sees the same order. ``augment_noise_sd`` adds Gaussian noise
    to images (clipped to [0, 1]).
    """

    def __init__(self, cohort, indices, batch_size: int, shuffle: bool = False, seed: int = 0,
                 fields: Sequence[str] = ALL_FIELDS, augment_noise_sd: float = 0.0,
                 feature_columns: Sequence[str] | None = None):
        unknown = sorted(set(fields) - set(ALL_FIELDS))
        if unknown:
            raise BrainlabInputError(f"unknown batch fields {unknown}; expected some of {ALL_FIELDS}")
        if batch_size < 1:
            raise BrainlabInputError(f"batch_size must be >= 1; found {batch_size}")
        if "image" in fields and cohort.images is None:
            raise BrainlabInputError(
                f"cohort {cohort.name!r} has no images; this model needs 3D images "
                f"(a table-only cohort can only train the morphometry autoencoder)")
        self.cohort = cohort
        self.indices = np.asarray(indices, dtype=np.int64)
        if len(self.indices) == 0:
            raise BrainlabInputError(f"no subjects to iterate in cohort {cohort.name!r}")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.fields = tuple(fields)
        self.augment_noise_sd = float(augment_noise_sd)
        self.epoch = 0
        table = cohort.table
        self._sex = (table["sex"].astype(str).to_numpy() == "M").astype(np.float32)
        self._age = table["age"].to_numpy(dtype=np.float32, na_value=np.nan)
        self._age_bin = table["age_bin"].fillna(-1).to_numpy().astype(np.int64)
        if "features" in self.fields:
            columns = list(feature_columns) if feature_columns is not None else \
                numeric_feature_columns(cohort)
            self._features = table[columns].to_numpy(dtype=np.float32, na_value=np.nan)

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle order for ``epoch`` (a resumed run continues with the same orders)."""
        self.epoch = int(epoch)

    def __iter__(self):
        order = self.indices
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.indices)
        noise = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        for start in range(0, len(order), self.batch_size):
            yield self.batch(order[start:start + self.batch_size], noise)
        if self.shuffle:
            self.epoch += 1

    def batch(self, rows, noise_generator: torch.Generator | None = None) -> dict:
        """The batch dict for cohort rows ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        out = {}
        if "image" in self.fields:
            image = torch.from_numpy(np.ascontiguousarray(self.cohort.images[rows]))[:, None]
            if self.augment_noise_sd > 0:
                image = (image + self.augment_noise_sd * torch.randn(
                    image.shape, generator=noise_generator)).clamp_(0.0, 1.0)
            out["image"] = image
        if "sex" in self.fields:
            out["sex"] = torch.from_numpy(self._sex[rows])
        if "age" in self.fields:
            out["age"] = torch.from_numpy(self._age[rows])
        if "age_bin" in self.fields:
            out["age_bin"] = torch.from_numpy(self._age_bin[rows])
        if "features" in self.fields:
            out["features"] = torch.from_numpy(self._features[rows])
        if "index" in self.fields:
            out["index"] = torch.from_numpy(rows)
        return out


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


def _save_train_state(out_dir: Path, model, step: int, epoch: int, seconds: float) -> None:
    path = out_dir / TRAIN_STATE_NAME
    temp = out_dir / f".{TRAIN_STATE_NAME}.tmp"
    torch.save({"optimizers": model.optimizer_state(), "step": step, "epoch": epoch,
                "seconds": seconds, "rng": _rng_state()}, temp)
    os.replace(temp, path)


def _evaluate(model, cohort, indices, max_subjects, split_name: str) -> dict:
    model.eval()
    with torch.no_grad():
        metrics = dict(model.evaluate(cohort, indices, max_subjects=max_subjects))
    model.train()
    metrics["split"] = split_name
    return metrics


def fit(model, cohort, split=None, train_config: TrainConfig | None = None,
        callbacks: Iterable[Callback] = (), resume_from=None, out_dir=None) -> dict:
    """Train ``model`` on ``cohort`` and return a summary dict.

    ``split`` defaults to ``cohort.split(train_config.split_seed)``. With ``out_dir``,
    a checkpoint (``brainlab.checkpoints``) plus ``train_state.pt`` is written after
    every epoch, events go to ``out_dir/events.jsonl``, and the final checkpoint's
    card holds the test-split metrics. ``resume_from`` (a folder written by an
    earlier ``fit``) restores weights, optimisers, step, epoch and RNG state; the
    epoch count and time budget then cover the whole run, earlier time included.

    Returns ``{"out_dir", "steps", "epochs", "seconds", "stopped", "val_metrics",
    "metrics"}`` where ``metrics`` are the test-split metrics.
    """
    from brainlab.checkpoints import load_checkpoint, save_checkpoint

    config = train_config or TrainConfig()
    if split is None:
        split = cohort.split(config.split_seed)
    device = resolve_device(config.device)
    torch.set_num_threads(config.num_threads or os.cpu_count() or 1)
    seed_everything(config.seed)
    bf16 = resolve_bf16(config.bf16, device)

    out_dir = None if out_dir is None else Path(out_dir)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume_from is None:
            (out_dir / EVENTS_NAME).unlink(missing_ok=True)  # a fresh run starts a fresh log
    log = EventLog(out_dir, callbacks)

    step, epoch, seconds_before = 0, 0, 0.0
    if resume_from is not None:
        resume_from = Path(resume_from)
        trained, card = load_checkpoint(resume_from, expected_type=model.model_type,
                                        cohort=cohort)
        try:
            model.load_state_dict(trained.state_dict())
        except RuntimeError as error:
            from brainlab.errors import CheckpointMismatchError

            raise CheckpointMismatchError(
                f"cannot resume from {resume_from}: its {card['model_type']} was built with "
                f"config {card['config']}; the model to train has config "
                f"{config_to_dict(model.config)} ({str(error).splitlines()[0]})") from None
    else:
        model.fit_statistics(cohort, split.train)
    model.to(device)
    model.set_precision(bf16, config.channels_last)
    model.configure_optimizers(config)
    if resume_from is not None:
        state_path = resume_from / TRAIN_STATE_NAME
        if not state_path.exists():
            raise BrainlabInputError(
                f"cannot resume from {resume_from}: no {TRAIN_STATE_NAME} (expected a folder "
                f"written by an earlier training run)")
        state = torch.load(state_path, map_location=device, weights_only=False)
        model.load_optimizer_state(state["optimizers"])
        step, epoch, seconds_before = state["step"], state["epoch"], state["seconds"]
        _set_rng_state(state["rng"])

    batches = CohortBatches(cohort, split.train, config.batch_size, shuffle=True,
                            seed=config.seed, fields=model.batch_fields)
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
                "config": config_to_dict(config)}

    stopped = "epochs"
    val_metrics: dict = {}
    losses: dict = {}
    model.train()
    while epoch < config.epochs:
        if budget is not None and elapsed() >= budget:
            stopped = "time"
            break
        batches.set_epoch(epoch)
        out_of_time = False
        for batch in batches:
            losses = model.training_step(batch)
            step += 1
            if step % config.log_every == 0 or step == start_step + 1:
                log.emit({"type": "step", "step": step, "epoch": epoch, "losses": losses,
                          "elapsed": round(elapsed(), 3), "eta_seconds": eta(),
                          "total_steps": total_steps})
            if budget is not None and elapsed() >= budget:
                out_of_time = True
                break
        epoch += 1
        is_last = epoch >= config.epochs or out_of_time
        if epoch % config.eval_every == 0 or is_last:
            val_metrics = _evaluate(model, cohort, split.val, config.max_eval_subjects, "val")
        log.emit({"type": "epoch", "step": step, "epoch": epoch, "losses": losses,
                  "metrics": scalar_metrics(val_metrics), "elapsed": round(elapsed(), 3),
                  "eta_seconds": eta(), "total_steps": total_steps})
        if out_dir is not None:
            sample = model.preview(out_dir / "previews", step)
            if sample is not None:
                log.emit({"type": "sample", "step": step, "epoch": epoch, "path": str(sample),
                          "elapsed": round(elapsed(), 3)})
            save_checkpoint(model, out_dir, cohort, config.split_seed, val_metrics,
                            training_info(), split_sizes=split_sizes,
                            storage=config.storage)
            _save_train_state(out_dir, model, step, epoch, elapsed())
        if out_of_time:
            stopped = "time"
            break

    test_metrics = _evaluate(model, cohort, split.test, None, "test")
    if out_dir is not None:
        save_checkpoint(model, out_dir, cohort, config.split_seed, test_metrics,
                        training_info(), split_sizes=split_sizes, storage=config.storage)
        _save_train_state(out_dir, model, step, epoch, elapsed())
    summary = {"out_dir": None if out_dir is None else str(out_dir), "steps": step,
               "epochs": epoch, "seconds": round(elapsed(), 2), "stopped": stopped,
               "val_metrics": val_metrics, "metrics": test_metrics}
    log.emit({"type": "done", "step": step, "epoch": epoch, "metrics": scalar_metrics(test_metrics),
              "elapsed": round(elapsed(), 3), "eta_seconds": 0.0, "stopped": stopped,
              "total_steps": total_steps})
    model.eval()
    return summary


def evaluate_checkpoint(path, cohort, max_subjects: int | None = None, split_name: str = "test",
                        device: str = "cpu") -> dict:
    """Re-evaluate a checkpoint on ``cohort``'s held-out split (the card's split seed).

    Returns ``{"model_type", "card_metrics", "metrics", "cohort_match", "path"}``;
    raises ``CheckpointMismatchError`` when the checkpoint does not fit the cohort.
    """
    import warnings

    from brainlab.checkpoints import load_checkpoint

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fingerprint mismatch is reported in the result
        model, card = load_checkpoint(path, cohort=cohort, device=device)
    split = cohort.split(int(card.get("cohort", {}).get("split_seed", 0)))
    indices = getattr(split, split_name)
    metrics = _evaluate(model, cohort, indices, max_subjects, split_name)
    model.eval()
    return {"path": str(path), "model_type": card["model_type"],
            "card_metrics": card.get("metrics", {}), "metrics": metrics,
            "cohort_match": card.get("cohort_match")}
