"""Mixed precision for 3D convolutions: bf16 autocast and channels_last_3d.

On CPUs with AVX-512 BF16 / AMX, bf16 autocast plus the channels_last_3d memory
format is 2-3x faster for 3D convs (MEASURED.md). CPUs without BF16 support
either fail or emulate it slowly, so support is detected once per device by
running a tiny bf16 convolution, and everything falls back cleanly to fp32.
Losses and metrics are always computed in fp32 (callers cast with ``.float()``).
"""

from __future__ import annotations

import contextlib
import time

import torch

from brainlab.errors import BrainlabInputError

_BF16_SUPPORT: dict[str, bool] = {}

BF16_SETTINGS = ("auto", "on", "off")


def bf16_supported(device: str | torch.device = "cpu") -> bool:
    """Whether a bf16 autocast Conv3d runs (and is not slower than fp32) on ``device``.

    Tried once per device type and cached for the process.
    """
    kind = torch.device(device).type
    if kind in _BF16_SUPPORT:
        return _BF16_SUPPORT[kind]
    supported = False
    try:
        if kind == "cuda":
            supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        elif kind == "cpu":
            supported = _cpu_bf16_conv_is_fast()
    except (RuntimeError, AssertionError):
        supported = False
    _BF16_SUPPORT[kind] = supported
    return supported


def _cpu_has_bf16_instructions() -> bool | None:
    """AVX-512 BF16 or AMX present (None when this torch cannot tell)."""
    checks = [getattr(torch.cpu, name, None)
              for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    checks = [check for check in checks if check is not None]
    if not checks:
        return None
    return any(check() for check in checks)


def _cpu_bf16_conv_is_fast() -> bool:
    """bf16 counts as supported on a CPU with bf16 instructions (AVX-512 BF16 / AMX)
    where a tiny bf16 conv runs, gives finite values and is not slower than fp32.
    Without those instructions oneDNN emulates bf16, 2-3x slower than fp32 for 3D
    convs (measured on an AVX-512 CPU without BF16), so fp32 is used."""
    if _cpu_has_bf16_instructions() is False:
        return False
    conv = torch.nn.Conv3d(8, 8, 3, padding=1)
    x = torch.rand(2, 8, 16, 16, 16)
    with torch.no_grad():
        conv(x)  # warm-up, fp32
        start = time.perf_counter()
        conv(x)
        fp32_seconds = time.perf_counter() - start
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = conv(x)  # warm-up, bf16
            start = time.perf_counter()
            out = conv(x)
            bf16_seconds = time.perf_counter() - start
    if out.dtype != torch.bfloat16 or not torch.isfinite(out.float()).all():
        return False
    return bf16_seconds <= 1.2 * fp32_seconds + 1e-3


def resolve_bf16(setting: str | bool, device: str | torch.device = "cpu") -> bool:
    """Turn a 'auto'/'on'/'off' (or bool) setting into whether to use bf16 on ``device``.

    'on' on a device without bf16 support falls back to fp32 with a warning,
    so a config written on one machine still trains on another.
    """
    if isinstance(setting, bool):
        setting = "on" if setting else "off"
    if setting not in BF16_SETTINGS:
        raise BrainlabInputError(f"bf16 setting must be one of {BF16_SETTINGS}; found {setting!r}")
    if setting == "off":
        return False
    supported = bf16_supported(device)
    if setting == "on" and not supported:
        import warnings

        warnings.warn(f"bf16 requested but not supported on {device}; training in fp32",
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
