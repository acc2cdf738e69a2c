"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

An interrupted write never leaves a half-written file under the final name, and two
writers of one file never share a temporary name. The result gets the permissions
an ordinary ``open(path, "w")`` would give (0644 under the usual umask 022), not
``mkstemp``'s private 0600.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def _current_umask() -> int:
    """The process umask (read once at import: ``os.umask`` can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


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
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
