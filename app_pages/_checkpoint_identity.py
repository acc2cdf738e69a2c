"""One identity for a loaded checkpoint, used in every cache key of the app."""

from __future__ import annotations

import hashlib
import json


def checkpoint_key(card: dict | None) -> str:
    """A 16-hex digest of the whole model card; ``"none"`` without a checkpoint.

    The card holds the model type, config, cohort fingerprint, creation time and
    metrics, so two checkpoints never share a key and a retrained one gets a new one.
    """
    if not card:
        return "none"
    return hashlib.sha1(json.dumps(card, sort_keys=True, default=str).encode()).hexdigest()[:16]
