"""``BrainlabModel``: the interface every brainlab model implements (forward only).

Models are a leaf: they hold ``nn.Module``s, know their shapes and losses, and import
only torch, numpy, ``models/blocks.py``, ``models/base.py``, ``config``, ``errors`` and
``precision``. Reading cohorts into batches lives in ``brainlab.data.batches``;
optimisers, training steps and data statistics in ``brainlab.training``; held-out
evaluation in ``brainlab.analysis.evaluation``; the table of model types in
``brainlab.registry``.

- ``from_cohort(cohort, config)`` builds a model sized for a cohort (reads only its
  ``grid_shape`` and ``name``);
- ``extra_state()`` returns the JSON-able constructor arguments beyond the config
  (grid shape, feature names, ...), stored in the model card; ``from_extra_state``
  rebuilds the same architecture from config + extra state, so a checkpoint loads
  without the cohort;
- single-optimiser models expose ``training_losses(batch) -> dict`` of fp32 tensors with
  a "loss" entry (the training layer runs backward and the optimiser step).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from brainlab.precision import autocast, to_channels_last


class BrainlabModel(nn.Module):
    """Base class: a config, construction from a cohort or a card, precision and device."""

    model_type: ClassVar[str] = ""  # key in brainlab.registry.MODEL_TYPES and in cards
    # Batch fields its training losses and evaluation read (brainlab.data.batches).
    batch_fields: ClassVar[tuple[str, ...]] = ("image",)
    # Whether the model reads images (conv models: channels_last_3d applies).
    needs_images: ClassVar[bool] = True

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.use_bf16 = False
        self.use_channels_last = False

    # ---- construction -------------------------------------------------------
    @classmethod
    def from_cohort(cls, cohort, config=None) -> "BrainlabModel":
        """A model sized for ``cohort`` (grid shape, feature count); default config if None."""
        raise NotImplementedError

    @classmethod
    def from_extra_state(cls, config, extra_state: dict) -> "BrainlabModel":
        """Rebuild the architecture from a config and the card's ``extra_state``."""
        return cls(config, **extra_state)

    def extra_state(self) -> dict:
        """JSON-able constructor arguments beyond the config, stored in the model card."""
        return {}

    # ---- precision and device --------------------------------------------------
    def set_precision(self, bf16: bool, channels_last: bool = True) -> None:
        """Use bf16 autocast and/or the channels_last_3d memory format (conv models).

        channels_last_3d speeds up 3D convs on CPU in fp32 as well (1.3-2x measured).
        """
        self.use_bf16 = bool(bf16)
        self.use_channels_last = bool(channels_last) and self.needs_images
        if self.needs_images:
            to_channels_last(self, self.use_channels_last)

    def autocast(self):
        """Context for forward passes: bf16 autocast when enabled, else a no-op."""
        return autocast(self.device, self.use_bf16)

    def prepare_images(self, x: torch.Tensor) -> torch.Tensor:
        """Move a (B, 1, D, H, W) batch to the model's device and memory format."""
        x = x.to(self.device, non_blocking=True)
        return to_channels_last(x, self.use_channels_last)

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
