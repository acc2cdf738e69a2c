"""Batches of a cohort for training and evaluation: ``CohortBatches``.

A batch is a dict of tensors ("image", "sex", "age", "age_bin", "features",
"index"); a model says which fields it needs in ``batch_fields``. Images are read
from the cohort's (memmapped) stack one batch at a time.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

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
