"""Batches of a cohort for training and evaluation: ``CohortBatches``.

A batch is a dict of tensors ("image", "sex", "age", "age_bin", "features",
"index"); a model says which fields it needs in ``batch_fields``. Images are read
from the cohort's (memmapped) stack one batch at a time, never the whole cohort.

Several training processes (``torchrun``) each pass their ``rank`` and ``world_size``:
``batch_size`` stays the *total* batch of one optimiser step, the epoch's order is the
same on every rank, and each rank reads its contiguous share of every total batch, so
N processes see exactly the batches one process would (``rows_in_last_batch`` tells the
fit loop how many rows this rank's share had, to weight its gradient). With
``num_workers`` a ``torch.utils.data.DataLoader`` reads the next batches in background
worker processes while the current one trains.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from brainlab.errors import BrainlabInputError

ALL_FIELDS = ("image", "sex", "age", "age_bin", "features", "index")


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

    ``rank``/``world_size`` (several processes): this rank gets the ``rank``-th of
    ``world_size`` near-equal contiguous parts of every total batch of ``batch_size``
    rows; a rank whose part of a short last batch is empty gets that batch's first row
    with ``rows_in_last_batch`` 0 (it must still take the step; its gradient counts 0).
    ``num_workers`` > 0 reads batches in that many DataLoader worker processes.
    """

    def __init__(self, cohort, indices, batch_size: int, shuffle: bool = False, seed: int = 0,
                 fields: Sequence[str] = ALL_FIELDS, augment_noise_sd: float = 0.0,
                 feature_columns: Sequence[str] | None = None, rank: int = 0,
                 world_size: int = 1, num_workers: int = 0):
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
        self.rows_in_last_batch = 0
        self.epoch = 0
        self._loader = None
        self.shard(rank, world_size, num_workers)
        self._order, self._order_epoch = self.indices, None
        table = cohort.table
        self._sex = (table["sex"].astype(str).to_numpy() == "M").astype(np.float32)
        self._age = table["age"].to_numpy(dtype=np.float32, na_value=np.nan)
        self._age_bin = table["age_bin"].fillna(-1).to_numpy().astype(np.int64)
        if "features" in self.fields:
            columns = list(feature_columns) if feature_columns is not None else \
                numeric_feature_columns(cohort)
            self._features = table[columns].to_numpy(dtype=np.float32, na_value=np.nan)

    def shard(self, rank: int = 0, world_size: int = 1, num_workers: int = 0) -> None:
        """Read only ``rank``'s share of each total batch, with ``num_workers`` readers."""
        if world_size < 1 or not 0 <= rank < world_size:
            raise BrainlabInputError(
                f"rank must be in [0, world_size); found rank {rank}, world_size {world_size}")
        if self.batch_size < world_size:
            raise BrainlabInputError(
                f"batch size {self.batch_size} is the total over {world_size} processes; "
                f"expected at least one subject per process (batch size >= {world_size})")
        if num_workers < 0:
            raise BrainlabInputError(f"num_workers must be >= 0; found {num_workers}")
        self.rank, self.world_size = int(rank), int(world_size)
        self.num_workers = int(num_workers)
        self._loader = None

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle order for ``epoch`` (a resumed run continues with the same orders)."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """All ranks' rows of ``epoch`` in training order (the same on every rank)."""
        if not self.shuffle:
            return self.indices
        if self._order_epoch != epoch:  # one permutation per epoch, not per batch
            self._order = np.random.default_rng([self.seed, int(epoch)]).permutation(self.indices)
            self._order_epoch = epoch
        return self._order

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_loader"] = None  # a worker needs the rows and the cohort, not the loader
        return state

    def rank_rows(self, epoch: int, number: int) -> tuple[np.ndarray, int]:
        """(rows, count): this rank's rows of total batch ``number`` of ``epoch``; ``count``
        is 0 when its part is empty and ``rows`` is a stand-in row."""
        start = number * self.batch_size
        total = self.order(epoch)[start:start + self.batch_size]
        rows = np.array_split(total, self.world_size)[self.rank]
        if len(rows) == 0:
            return total[:1], 0
        return rows, len(rows)

    def __iter__(self):
        epoch = self.epoch
        seed = self.seed * 1_000_003 + epoch
        if self.world_size > 1:  # each rank's share gets its own noise
            seed = seed * 1_009 + self.rank
        noise = torch.Generator().manual_seed(seed)
        if self.num_workers > 0:
            loader = self._worker_loader()
            loader.batch_sampler.epoch = epoch
            reads = iter(loader)
        else:
            reads = (self.read(self.rank_rows(epoch, k)[0]) for k in range(len(self)))
        for number, batch in enumerate(reads):
            self.rows_in_last_batch = self.rank_rows(epoch, number)[1]
            yield self.augment(batch, noise)
        if self.shuffle:
            self.epoch += 1

    def _worker_loader(self) -> DataLoader:
        """One DataLoader for all epochs (its workers stay alive between epochs)."""
        if self._loader is None:
            self._loader = DataLoader(
                _BatchReads(self), batch_sampler=_EpochBatchNumbers(len(self)),
                num_workers=self.num_workers, collate_fn=_no_collate,
                persistent_workers=True, prefetch_factor=2)
        return self._loader

    def batch(self, rows, noise_generator: torch.Generator | None = None) -> dict:
        """The batch dict for cohort rows ``rows``."""
        return self.augment(self.read(rows), noise_generator)

    def augment(self, batch: dict, noise_generator: torch.Generator | None = None) -> dict:
        """Add the image noise augmentation (in the training process, so the noise is
        the same with or without loader workers)."""
        if "image" in batch and self.augment_noise_sd > 0:
            image = batch["image"]
            batch["image"] = (image + self.augment_noise_sd * torch.randn(
                image.shape, generator=noise_generator)).clamp_(0.0, 1.0)
        return batch

    def read(self, rows) -> dict:
        """The batch dict for cohort rows ``rows``, before augmentation."""
        rows = np.asarray(rows, dtype=np.int64)
        out = {}
        if "image" in self.fields:
            out["image"] = torch.from_numpy(
                np.ascontiguousarray(self.cohort.images[rows]))[:, None]
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


class _EpochBatchNumbers:
    """Batch sampler of (epoch, batch number) keys; the loop sets ``epoch`` per pass."""

    def __init__(self, count: int):
        self.count = count
        self.epoch = 0

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        for number in range(self.count):
            yield [(self.epoch, number)]


class _BatchReads(Dataset):
    """A worker's view: (epoch, batch number) -> this rank's batch, read from disk."""

    def __init__(self, batches: CohortBatches):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, key) -> dict:
        epoch, number = key
        return self.batches.read(self.batches.rank_rows(epoch, number)[0])


def _no_collate(items: list) -> dict:
    return items[0]
