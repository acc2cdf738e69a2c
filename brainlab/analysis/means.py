"""Group mean images (e.g. mean female vs mean male brain) and their difference.

Means are accumulated in float64 over chunks of the image stack, so a memmapped
cohort is read once and never held in memory whole.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainlab.errors import BrainlabInputError


def group_mean_images(images, groups, chunk: int = 64) -> dict:
    """Mean (D, H, W) float32 image per group label.

    ``images``: (n, D, H, W) array, memmap or ImageArray; ``groups``: (n,) labels
    (e.g. sex, age bin). Subjects whose label is missing (None/NaN) are left out,
    which also selects a subset (set the others' label to None). Keys are the
    labels present, in sorted order.
    """
    groups = np.asarray(groups, dtype=object)
    n = len(images)
    if groups.ndim != 1 or len(groups) != n:
        raise BrainlabInputError(
            f"groups must be 1D with one label per image ({n}); found shape {groups.shape}")
    if chunk < 1:
        raise BrainlabInputError(f"chunk must be >= 1; found {chunk}")
    present = ~pd.isna(groups)
    if not present.any():
        raise BrainlabInputError("every group label is missing; nothing to average")
    labels = sorted(set(groups[present].tolist()))
    sums: dict = {}
    counts = dict.fromkeys(labels, 0)
    for start in range(0, n, chunk):
        block = np.asarray(images[start:start + chunk], dtype=np.float32)
        if block.ndim != 4:
            raise BrainlabInputError(f"images must be (n, D, H, W); found a block of shape {block.shape}")
        block_groups = groups[start:start + chunk]
        for label in labels:
            mask = present[start:start + chunk] & (block_groups == label)
            if mask.any():
                total = block[mask].sum(axis=0, dtype=np.float64)
                sums[label] = sums[label] + total if label in sums else total
                counts[label] += int(mask.sum())
    return {label: (sums[label] / counts[label]).astype(np.float32) for label in labels}


def difference_map(mean_a, mean_b) -> np.ndarray:
    """``mean_a - mean_b`` voxelwise (e.g. male minus female), float32."""
    a = np.asarray(mean_a, dtype=np.float32)
    b = np.asarray(mean_b, dtype=np.float32)
    if a.shape != b.shape:
        raise BrainlabInputError(f"mean images must have the same shape; found {a.shape} and {b.shape}")
    return a - b
