"""The MNI152 voxel grid shared by the phantom and the HCP tensors.

The seed study's tensors are 58x70x58 voxels covering the MNI field of view of
182x218x182 mm from origin (-90, -126, -72) mm, RAS orientation.
"""

from __future__ import annotations

import numpy as np

MNI_FIELD_OF_VIEW_MM = (182.0, 218.0, 182.0)
MNI_ORIGIN_MM = (-90.0, -126.0, -72.0)
HCP_GRID_SHAPE = (58, 70, 58)


def mni_affine(shape: tuple[int, int, int]) -> np.ndarray:
    """Voxel-to-MNI-mm affine for a grid of ``shape`` spanning the MNI field of view.

    Voxel (0, 0, 0) sits at the origin and voxel spacing is field of view / shape,
    which for (58, 70, 58) gives about 3.14 mm isotropic.
    """
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"grid shape must be 3 positive ints, found {tuple(shape)}")
    spacing = np.array(MNI_FIELD_OF_VIEW_MM) / np.array(shape, dtype=float)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(spacing)
    affine[:3, 3] = MNI_ORIGIN_MM
    return affine


def voxel_to_mm(affine: np.ndarray, ijk) -> np.ndarray:
    """Map voxel indices (..., 3) to MNI millimetres with ``affine``."""
    ijk = np.asarray(ijk, dtype=float)
    return ijk @ affine[:3, :3].T + affine[:3, 3]
