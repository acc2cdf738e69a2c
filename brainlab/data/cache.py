"""An atomic, self-checking on-disk cache of generated cohorts.

A cache entry is a folder ``<root>/<fingerprint>/`` with data files and a
``manifest.json`` written LAST. The folder is first built under a temporary name
in the same parent and moved into place with ``os.replace``, so a crash leaves
either nothing or a stray temporary folder, never a half-written entry.

The manifest records each file's size, a full SHA-256 and a *sampled* hash (a
few small blocks at fixed offsets plus the size). A warm load checks sizes and
sampled hashes only, which is cheap even for a 500 MB image file; small files
(tables, JSON) are always checked in full. Anything missing, truncated or not
matching makes ``verify`` fail and the caller rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

from brainlab.atomic import atomic_write

MANIFEST = "manifest.json"
SAMPLE_BLOCKS = 64
SAMPLE_BLOCK_BYTES = 4096
FULL_CHECK_BELOW_BYTES = 16 * 1024 * 1024


def sampled_hash(path: Path) -> str:
    """SHA-256 of the size and ``SAMPLE_BLOCKS`` evenly spaced small blocks."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as stream:
        if size <= SAMPLE_BLOCKS * SAMPLE_BLOCK_BYTES:
            digest.update(stream.read())
        else:
            step = (size - SAMPLE_BLOCK_BYTES) // (SAMPLE_BLOCKS - 1)
            for i in range(SAMPLE_BLOCKS):
                stream.seek(i * step)
                digest.update(stream.read(SAMPLE_BLOCK_BYTES))
    return digest.hexdigest()


def full_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, extra: dict | None = None) -> dict:
    """Describe every file in ``folder`` in ``manifest.json`` (written atomically)."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.iterdir()):
        if path.name == MANIFEST or not path.is_file():
            continue
        files[path.name] = {"size": path.stat().st_size, "sha256": full_hash(path),
                            "sampled_sha256": sampled_hash(path)}
    manifest = {"files": files, **(extra or {})}
    write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def write_json_atomic(path: Path, value) -> None:
    def write(temporary: Path) -> None:
        with open(temporary, "w") as stream:
            json.dump(value, stream, indent=1, sort_keys=True)
            stream.flush()
            os.fsync(stream.fileno())

    atomic_write(path, write)


def verify(folder: Path, full: bool = False) -> tuple[bool, str]:
    """(ok, reason): does ``folder`` hold a complete entry matching its manifest?"""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return False, "no manifest (missing or partial entry)"
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return False, f"unreadable manifest: {error}"
    if not files:
        return False, "manifest lists no files"
    for name, info in files.items():
        path = folder / name
        if not path.is_file():
            return False, f"missing file {name}"
        size = path.stat().st_size
        if size != info.get("size"):
            return False, f"{name} has {size} bytes; manifest says {info.get('size')}"
        if full or size < FULL_CHECK_BELOW_BYTES:
            if full_hash(path) != info.get("sha256"):
                return False, f"{name} checksum mismatch"
        elif sampled_hash(path) != info.get("sampled_sha256"):
            return False, f"{name} sampled checksum mismatch"
    return True, "ok"


def read_manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text())


def build_atomically(folder: Path, fill: Callable[[Path], dict | None]) -> Path:
    """Build an entry at ``folder``: ``fill(tmp)`` writes files, then manifest, then move.

    ``fill`` may return extra manifest fields. An existing (stale or corrupt)
    entry is moved aside and deleted only after the new one is in place.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        extra = fill(tmp)
        write_manifest(tmp, extra)
        old = None
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
