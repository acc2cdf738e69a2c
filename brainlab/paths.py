"""Where brainlab keeps generated data: the user cache and the shipped checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CHECKPOINTS = REPO_ROOT / "checkpoints"


def cache_root() -> Path:
    """``$BRAINLAB_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/brainlab``."""
    explicit = os.environ.get("BRAINLAB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "brainlab"


def user_checkpoints() -> Path:
    """Checkpoints trained by the user land here unless ``--out`` says otherwise."""
    return cache_root() / "checkpoints"
