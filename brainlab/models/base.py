"""``BrainlabModel``: the interface every trainable brainlab model implements.

The training loop (``brainlab.training.fit``) and the checkpoints
(``brainlab.checkpoints``) only talk to this interface:

- ``from_cohort(cohort, config)`` builds a model sized for a cohort (grid, features);
- ``extra_state()`` returns the JSON-able constructor arguments beyond the config
  (grid shape, feature names, ...), stored in the model card; ``from_extra_state``
  rebuilds the same architecture from config + extra state, so a checkpoint loads
  without the cohort;
- ``configure_optimizers(train_config)`` creates ``self.optimizers`` (name -> optimiser);
- ``fit_statistics(cohort, train_indices)`` sets data statistics (standardisation
  buffers) from the training subjects before the first step;
- ``training_step(batch)`` runs forward, backward and the optimiser step(s) and
  returns float losses; ``evaluate(cohort, indices)`` returns held-out metrics with "n";
- ``preview(folder, step)`` may write a small image and return its path (the GAN's
  sample previews).

Batches are dicts of tensors built by ``brainlab.training.CohortBatches``; a model
says which fields it needs in ``batch_fields``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from brainlab.precision import autocast, to_channels_last


class BrainlabModel(nn.Module):
    """Base class: a config, an optional grid, optimisers and the train/eval interface."""

    model_type: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    # Batch fields training_step/evaluate need (see brainlab.training.CohortBatches).
    batch_fields: ClassVar[tuple[str, ...]] = ("image",)
    # Whether the model reads images (table-only cohorts cannot train it otherwise).
    needs_images: ClassVar[bool] = True

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
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

    # ---- training -----------------------------------------------------------
    def configure_optimizers(self, train_config) -> dict[str, torch.optim.Optimizer]:
        """AdamW over all parameters; lr from the train config or the model default."""
        lr = train_config.lr if train_config.lr is not None else getattr(
            self.config, "default_lr", 1e-3)
        weight_decay = getattr(self.config, "weight_decay", 0.0)
        self.optimizers = {"main": torch.optim.AdamW(
            self.parameters(), lr=lr, weight_decay=weight_decay)}
        return self.optimizers

    def fit_statistics(self, cohort, train_indices: np.ndarray) -> None:
        """Set data statistics (e.g. standardisation buffers) from training subjects."""

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimisation step on ``batch``; returns losses as floats."""
        raise NotImplementedError

    def backward_and_step(self, loss: torch.Tensor, name: str = "main",
                          max_grad_norm: float | None = None) -> None:
        """zero_grad, backward, optional gradient clipping, step for optimiser ``name``."""
        if name not in self.optimizers:
            raise RuntimeError(
                f"{type(self).__name__} has no optimiser {name!r}; call configure_optimizers first")
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()

    @torch.no_grad()
    def evaluate(self, cohort, indices, max_subjects: int | None = None) -> dict:
        """Held-out metrics on ``cohort`` rows ``indices`` (first ``max_subjects``); has "n"."""
        raise NotImplementedError

    def preview(self, folder: Path, step: int) -> Path | None:
        """Write a small preview image into ``folder``; None when the model has none."""
        return None

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

    def optimizer_state(self) -> dict:
        """State dicts of all optimisers, for resuming."""
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_optimizer_state(self, state: dict) -> None:
        """Restore ``optimizer_state()`` output into the configured optimisers."""
        for name, opt in self.optimizers.items():
            if name in state:
                opt.load_state_dict(state[name])
