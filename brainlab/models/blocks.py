"""Shared 3D building blocks: conv-GroupNorm-SiLU, down/up blocks, space-to-depth, padding.

Upsampling is resize-then-convolve (nearest-neighbour x2, then a 3x3x3 conv), which
avoids the checkerboard artefacts of strided transposed convolutions.
Any grid works: ``pad_to_shape`` pads a volume (centred, zeros = background) to
``padded_shape`` so that ``levels`` halvings divide it, and ``crop_to`` takes the
original grid back.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def group_count(channels: int, preferred: int = 8) -> int:
    """Largest number of GroupNorm groups <= ``preferred`` that divides ``channels``."""
    for groups in range(min(preferred, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


def level_channels(base: int, levels: int, cap: int) -> list[int]:
    """Channel widths per resolution level: base, 2*base, 4*base, ... capped at ``cap``."""
    return [min(base * 2 ** level, cap) for level in range(levels + 1)]


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` that computes in fp32 under bf16 autocast wherever the input is
    smaller than the kernel on some side (e.g. a 3x3x3 kernel over a 2x2x2 bottleneck).

    There, oneDNN's bf16 weight gradient on CPU is garbage (NaN or ~1e38; measured on
    torch 2.13 with AVX-512 BF16 for sides of 2), which turned tiny models to NaN.
    Such layers are a few voxels wide, so fp32 costs nothing measurable.
    (B, in_channels, D, H, W) -> (B, out_channels, D', H', W'), as ``nn.Conv3d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kind = x.device.type
        if torch.is_autocast_enabled(kind) and any(
                side < k for side, k in zip(x.shape[2:], self.kernel_size)):
            with torch.autocast(kind, enabled=False):
                return super().forward(x.float())
        return super().forward(x)


class ConvNormAct(nn.Sequential):
    """Conv3d(k=3, ``stride``) -> GroupNorm -> SiLU.

    (B, in_channels, D, H, W) -> (B, out_channels, ceil(D/stride), ceil(H/stride), ceil(W/stride))
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(
            Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.GroupNorm(group_count(out_channels), out_channels),
            nn.SiLU(),
        )


class DownBlock(nn.Sequential):
    """Strided conv (halves each side) then a conv at the new resolution.

    (B, in_channels, D, H, W) -> (B, out_channels, D/2, H/2, W/2)  (even sides)
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            ConvNormAct(in_channels, out_channels, stride=2),
            ConvNormAct(out_channels, out_channels),
        )


class UpBlock(nn.Module):
    """Conv at the coarse grid, nearest-neighbour x2 resize, conv at the fine grid
    (resize-then-convolve: no transposed conv, no checkerboard).

    Changing the width before resizing keeps the fine-grid conv at ``out_channels``
    in and out: on CPU this block cost a third as much as resize-then-two-convs.
    (B, in_channels, D, H, W) -> (B, out_channels, 2D, 2H, 2W)
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.coarse = ConvNormAct(in_channels, out_channels)
        self.fine = ConvNormAct(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fine(F.interpolate(self.coarse(x), scale_factor=2, mode="nearest"))


class SpaceToDepth(nn.Module):
    """Fold each 2x2x2 voxel cube into channels: a lossless, conv-free halving.

    (B, C, D, H, W) -> (B, 8C, D/2, H/2, W/2)  (even sides). Used as the stem so no
    convolution runs at full resolution (the costliest place on a CPU).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        x = x.reshape(b, c, d // 2, 2, h // 2, 2, w // 2, 2)
        return x.permute(0, 1, 3, 5, 7, 2, 4, 6).reshape(b, c * 8, d // 2, h // 2, w // 2)


class DepthToSpace(nn.Module):
    """Unfold groups of 8 channels into 2x2x2 voxel cubes (sub-voxel convolution output).

    (B, 8C, D, H, W) -> (B, C, 2D, 2H, 2W); the inverse of ``SpaceToDepth``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c8, d, h, w = x.shape
        c = c8 // 8
        x = x.reshape(b, c, 2, 2, 2, d, h, w)
        return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, c, d * 2, h * 2, w * 2)


def padded_shape(grid_shape: Sequence[int], multiple: int) -> tuple[int, int, int]:
    """Smallest shape >= ``grid_shape`` with every side a multiple of ``multiple``."""
    return tuple(int(math.ceil(side / multiple) * multiple) for side in grid_shape)


def pad_to_shape(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Zero-pad (B, C, D, H, W) centrally to (B, C, *shape)."""
    pads = []
    for side, target in zip(reversed(x.shape[2:]), reversed(tuple(shape))):
        extra = int(target) - int(side)
        pads += [extra // 2, extra - extra // 2]
    if not any(pads):
        return x
    return F.pad(x, pads)


def crop_to(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Central crop of (B, C, D', H', W') back to (B, C, *shape); inverse of ``pad_to_shape``."""
    slices = [slice(None), slice(None)]
    for side, target in zip(x.shape[2:], tuple(shape)):
        start = (int(side) - int(target)) // 2
        slices.append(slice(start, start + int(target)))
    return x[tuple(slices)]


def check_volume_batch(x: torch.Tensor, grid_shape: Sequence[int], where: str) -> None:
    """Raise a clear error unless ``x`` is (B, 1, *grid_shape)."""
    from brainlab.errors import BrainlabInputError

    expected = (1, *tuple(grid_shape))
    if x.dim() != 5 or tuple(x.shape[1:]) != expected:
        raise BrainlabInputError(
            f"{where}: expected a batch of shape (B, {', '.join(map(str, expected))}); "
            f"found {tuple(x.shape)}"
        )
