"""A disk store of derived results: latents, maps, probe tables, sample sets, evaluations.

An entry is identified by a :class:`ResultKey`: the kind of result, the cohort's
fingerprint, the digests of the checkpoints it was computed with (SHA-256 of each
``model.safetensors``) and a settings dict. Entries live beside the cohort cache,
``<cache root>/results/<kind>/<key digest>/``, one folder per entry:

- the value's parts, by type: arrays as ``.npy``, tables as ``.parquet``, small
  JSON-able dicts as ``.json``, anything else (mixed objects) as ``.joblib``;
- ``key.json`` (what the entry is, for people reading the folder);
- ``manifest.json`` written last, with every file's size and SHA-256.

The folder is filled under a temporary name and moved into place, so a crash
leaves no half-written entry (``brainlab.data.cache.build_atomically``). A read
checks the manifest (sizes, checksums); a missing, truncated or corrupt entry is
deleted and reported as a miss, so the caller recomputes it and never uses it.
A restarted process finds the entries again: nothing is kept only in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from brainlab import paths
from brainlab.data.cache import MANIFEST, build_atomically, verify
from brainlab.errors import BrainlabInputError

FORMAT_VERSION = 1
VALUE_FILE = "value.json"   # how the parts rebuild the value
KEY_FILE = "key.json"
WEIGHTS_NAME = "model.safetensors"

_digest_cache: dict[tuple, str] = {}
_digest_lock = threading.Lock()


def checkpoint_digest(path) -> str:
    """SHA-256 of a checkpoint's ``model.safetensors`` (folder or file path).

    Cached per process by (path, size, mtime), so asking again is free until the
    weights change.
    """
    path = Path(path).expanduser()
    weights = path / WEIGHTS_NAME if path.is_dir() else path
    if not weights.is_file():
        raise BrainlabInputError(
            f"no {WEIGHTS_NAME} at {path}; expected a brainlab checkpoint folder")
    stat = weights.stat()
    cache_key = (str(weights.resolve()), stat.st_size, stat.st_mtime_ns)
    with _digest_lock:
        if cache_key in _digest_cache:
            return _digest_cache[cache_key]
    digest = hashlib.sha256()
    with open(weights, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _digest_lock:
        _digest_cache[cache_key] = value
    return value


def _plain(value):
    """Settings as JSON-stable plain values (numpy scalars and tuples converted)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise BrainlabInputError(
        f"result settings must be plain values (numbers, text, lists, dicts); found "
        f"{type(value).__name__}")


@dataclass(frozen=True)
class ResultKey:
    """What a derived result depends on; equal keys mean the same result."""

    kind: str                                   # e.g. "latents", "probe-table"
    fingerprint: str = ""                       # cohort fingerprint ("" if none)
    checkpoints: dict = field(default_factory=dict)  # role -> checkpoint digest
    settings: dict = field(default_factory=dict)     # everything else that matters

    def as_dict(self) -> dict:
        return {"version": FORMAT_VERSION, "kind": self.kind, "fingerprint": self.fingerprint,
                "checkpoints": _plain(self.checkpoints), "settings": _plain(self.settings)}

    @property
    def digest(self) -> str:
        """24 hex characters of SHA-256 over the key's canonical JSON."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other) -> bool:
        return isinstance(other, ResultKey) and other.digest == self.digest

    def __str__(self) -> str:
        return f"{self.kind}/{self.digest}"


def _safe_kind(kind: str) -> str:
    if not kind or not all(c.isalnum() or c in "-_" for c in kind):
        raise BrainlabInputError(
            f"result kind must be letters, digits, '-' or '_'; found {kind!r}")
    return kind


# ---------------------------------------------------------------- value <-> files

def _write_part(folder: Path, name: str, value) -> dict:
    """Write one part of a value; returns how to read it back."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        np.save(folder / f"{name}.npy", value, allow_pickle=False)
        return {"type": "npy", "file": f"{name}.npy"}
    if isinstance(value, pd.DataFrame) and all(isinstance(c, str) for c in value.columns):
        value.to_parquet(folder / f"{name}.parquet", index=True)
        return {"type": "parquet", "file": f"{name}.parquet"}
    try:
        text = json.dumps(value, allow_nan=True)
        if json.loads(text) == value:
            (folder / f"{name}.json").write_text(text)
            return {"type": "json", "file": f"{name}.json"}
    except (TypeError, ValueError):
        pass
    import joblib

    joblib.dump(value, folder / f"{name}.joblib")
    return {"type": "joblib", "file": f"{name}.joblib"}


def _read_part(folder: Path, spec: dict):
    path = folder / spec["file"]
    kind = spec["type"]
    if kind == "npy":
        return np.load(path, allow_pickle=False)
    if kind == "parquet":
        return pd.read_parquet(path)
    if kind == "json":
        return json.loads(path.read_text())
    if kind == "joblib":
        import joblib

        return joblib.load(path)
    raise ValueError(f"unknown part type {kind!r}")


def _write_value(folder: Path, value) -> dict:
    """A dict is stored part by part (so arrays stay .npy); anything else as one part."""
    if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        names = {}
        for index, (name, part) in enumerate(value.items()):
            names[name] = _write_part(folder, f"part{index:03d}", part)
        return {"layout": "dict", "parts": names}
    return {"layout": "single", "part": _write_part(folder, "value", value)}


def _read_value(folder: Path, layout: dict):
    if layout["layout"] == "dict":
        return {name: _read_part(folder, spec) for name, spec in layout["parts"].items()}
    return _read_part(folder, layout["part"])


# ---------------------------------------------------------------- the store

class ResultStore:
    """Derived results on disk under ``root`` (default ``<cache root>/results``).

    ``get(key)`` returns the stored value or None; ``put(key, value)`` stores it;
    ``get_or_compute(key, compute)`` does both. Safe to share between threads and
    processes: writes are atomic and a reader only ever sees complete entries.
    """

    def __init__(self, root: str | Path | None = None):
        self._root = None if root is None else Path(root)
        self._verified: dict[str, int] = {}   # folder -> manifest mtime checked
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def root(self) -> Path:
        # Resolved at use, so BRAINLAB_CACHE set after import (tests) still counts.
        return self._root if self._root is not None else paths.cache_root() / "results"

    def folder(self, key: ResultKey) -> Path:
        """Where the entry of ``key`` lives (whether or not it exists yet)."""
        return self.root / _safe_kind(key.kind) / key.digest

    def _valid(self, folder: Path) -> bool:
        manifest = folder / MANIFEST
        try:
            mtime = manifest.stat().st_mtime_ns
        except OSError:
            return False
        with self._lock:
            if self._verified.get(str(folder)) == mtime:
                return True
        ok, _ = verify(folder, full=False)
        if ok:
            with self._lock:
                self._verified[str(folder)] = mtime
        return ok

    def contains(self, key: ResultKey) -> bool:
        """True when a complete, verified entry for ``key`` is on disk."""
        folder = self.folder(key)
        return folder.is_dir() and self._valid(folder)

    def get(self, key: ResultKey, default=None):
        """The stored value of ``key``, or ``default``; a corrupt entry is deleted."""
        folder = self.folder(key)
        if not folder.exists():
            self.misses += 1
            return default
        if self._valid(folder):
            try:
                value = _read_value(folder, json.loads((folder / VALUE_FILE).read_text()))
                self.hits += 1
                return value
            except Exception:  # noqa: BLE001 — any unreadable part means a bad entry
                pass
        self.discard(key)
        self.misses += 1
        return default

    def put(self, key: ResultKey, value) -> Path:
        """Store ``value`` under ``key`` atomically; returns the entry's folder."""
        folder = self.folder(key)

        def fill(temporary: Path) -> dict:
            layout = _write_value(temporary, value)
            (temporary / VALUE_FILE).write_text(json.dumps(layout))
            (temporary / KEY_FILE).write_text(json.dumps(key.as_dict(), indent=1))
            return {"kind": key.kind, "digest": key.digest}

        try:
            build_atomically(folder, fill)
        except OSError:
            # Another writer moved its copy in first: theirs is as good as ours.
            if not self.contains(key):
                raise
        with self._lock:
            self._verified.pop(str(folder), None)
        return folder

    def discard(self, key: ResultKey) -> None:
        """Delete the entry of ``key`` (no error if there is none)."""
        folder = self.folder(key)
        with self._lock:
            self._verified.pop(str(folder), None)
        if folder.exists():
            aside = folder.parent / f".{folder.name}.bad-{os.getpid()}-{threading.get_ident()}"
            try:
                os.replace(folder, aside)
            except OSError:
                return
            shutil.rmtree(aside, ignore_errors=True)

    def get_or_compute(self, key: ResultKey, compute: Callable[[], Any]):
        """The stored value of ``key``, else ``compute()`` stored and returned."""
        missing = object()
        value = self.get(key, missing)
        if value is not missing:
            return value
        value = compute()
        self.put(key, value)
        return value

    def entries(self, kind: str | None = None) -> list[Path]:
        """Folders of the complete-looking entries (of one ``kind`` or all)."""
        base = self.root if kind is None else self.root / _safe_kind(kind)
        if not base.exists():
            return []
        pattern = "*/*/" + MANIFEST if kind is None else "*/" + MANIFEST
        return sorted(p.parent for p in base.glob(pattern) if not p.parent.name.startswith("."))


_default_store: ResultStore | None = None


def default_store() -> ResultStore:
    """The process-wide store under the brainlab cache root."""
    global _default_store
    if _default_store is None:
        _default_store = ResultStore()
    return _default_store
