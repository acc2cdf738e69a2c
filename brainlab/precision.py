"""Mixed precision for 3D convolutions: bf16 autocast and channels_last_3d.

On CPUs with AVX-512 BF16 / AMX, bf16 autocast plus the channels_last_3d memory
format is 2-3x faster for 3D convs (MEASURED.md); CPUs without those instructions
emulate bf16 2-3x slower than fp32. Whether bf16 is used is decided from the CPU's
flags (or CUDA's capability), the setting (``"auto"|"on"|"off"``) and the
``BRAINLAB_BF16`` environment override -- never from a timing, so one commit
trains the same way on every run of one machine. Losses, norms and metrics are
always computed in fp32 (callers cast with ``.float()``).
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch

from brainlab.errors import BrainlabInputError

BF16_SETTINGS = ("auto", "on", "off")
BF16_ENV = "BRAINLAB_BF16"


def bf16_supported(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` has native bf16 arithmetic (CPU flags or CUDA capability)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        return bool(cpu_has_bf16_instructions())
    return False


def cpu_has_bf16_instructions() -> bool:
    """AVX-512 BF16 or AMX present, read from the CPU flags torch reports."""
    checks = [getattr(torch.cpu, name, None)
              for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def bf16_setting(setting: str | bool = "auto") -> str:
    """The effective 'auto'/'on'/'off': ``BRAINLAB_BF16`` when set, else ``setting``."""
    override = os.environ.get(BF16_ENV, "").strip().lower()
    if override:
        if override not in BF16_SETTINGS:
            raise BrainlabInputError(
                f"{BF16_ENV} must be one of {BF16_SETTINGS}; found {override!r}")
        return override
    if isinstance(setting, bool):
        return "on" if setting else "off"
    if setting not in BF16_SETTINGS:
        raise BrainlabInputError(f"bf16 setting must be one of {BF16_SETTINGS}; found {setting!r}")
    return setting


def resolve_bf16(setting: str | bool, device: str | torch.device = "cpu") -> bool:
    """Turn a 'auto'/'on'/'off' (or bool) setting into whether to use bf16 on ``device``.

    ``BRAINLAB_BF16`` overrides the setting. 'on' on a device without native bf16
    falls back to fp32 with a warning, so a config written on one machine still
    trains on another.
    """
    setting = bf16_setting(setting)
    if setting == "off":
        return False
    supported = bf16_supported(device)
    if setting == "on" and not supported:
        warnings.warn(f"bf16 requested but {device} has no native bf16; using fp32",
                      stacklevel=2)
    return supported


def autocast(device: str | torch.device, enabled: bool):
    """``torch.autocast`` in bf16 on ``device`` when ``enabled``; a no-op otherwise."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def to_channels_last(value, enabled: bool = True):
    """A 5D tensor or a module in ``torch.channels_last_3d`` memory format (no-op when off)."""
    if not enabled:
        return value
    if isinstance(value, torch.Tensor):
        return value.contiguous(memory_format=torch.channels_last_3d) if value.dim() == 5 else value
    return value.to(memory_format=torch.channels_last_3d)


def resolve_device(name: str) -> torch.device:
    """'cpu' or 'cuda'; asking for cuda on a machine without it is a clear error."""
    if name not in ("cpu", "cuda") and not str(name).startswith("cuda:"):
        raise BrainlabInputError(f"device must be 'cpu' or 'cuda'; found {name!r}")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise BrainlabInputError(f"device {name!r} requested but no CUDA GPU is available")
    return torch.device(name)
