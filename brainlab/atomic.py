"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

An interrupted write never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temporary_path)`` then move the file onto ``path`` with ``os.replace``.

    The parent folder is created if needed. The temporary file sits next to
    ``path`` (hidden, ``.<name>.<random><suffix>``) and keeps its suffix
    (``.nii.gz`` whole), so writers that choose a format from the name still do;
    it is removed when ``write`` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix or ".tmp"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
