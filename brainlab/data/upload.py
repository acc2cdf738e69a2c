"""Uploaded files (from the app) turned into a path that ``brainlab.data.load`` reads.

Every upload lives in one cache folder, ``<cache>/uploads/<content hash>/``
(``upload_root()``), so the same file uploaded twice is stored once and the path is
a real one that the CLI accepts (``--cohort <cache>/uploads/<hash>/study``). A
``.csv``/``.tsv`` is written there as is. A ``.zip`` (NIfTI volumes +
``participants.tsv``, or HCP ``images.npy``/``sex.npy``/``age.npy``, or one table) is
extracted member by member into ``<hash>/<zip name>/`` (so the cohort is named after
the file), refusing absolute paths, ``..`` components, symbolic
links and other special entries, more than ``max_files`` members, and more than
``max_unpacked_bytes`` in total (counted while extracting, not trusted from the zip
header). Extraction goes to a temporary folder renamed into place, so a half-written
upload is never offered. ``prune_uploads`` keeps the folder under a size cap and an
age limit; ``remove_upload`` deletes one upload. Nothing is ever written inside the
repository.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from brainlab.errors import BrainlabInputError
from brainlab.paths import REPO_ROOT, cache_root

MAX_UPLOAD_BYTES = 512 * 1024**2      # what the app accepts in one upload
MAX_UNPACKED_BYTES = 4 * 1024**3      # a zip may hold at most this much once extracted
MAX_FILES = 10_000                    # members in one zip
MAX_CACHE_BYTES = 8 * 1024**3        # all uploads together; the oldest go first beyond it
MAX_AGE_S = 7 * 24 * 3600             # uploads untouched for a week are removed
TABLE_SUFFIXES = (".csv", ".tsv")
_COPY_CHUNK = 1024**2
_COMPLETE = ".complete"               # written last: marks a fully extracted upload


def _safe_name(filename: str) -> str:
    name = PurePosixPath(str(filename).replace("\\", "/")).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "upload"


def upload_root() -> Path:
    """The one folder holding every upload: ``<cache>/uploads``."""
    return cache_root() / "uploads"


def _checked_parent(dest: str | Path | None) -> Path:
    """``dest`` (default ``upload_root()``), refused when inside the repository."""
    repo = REPO_ROOT.resolve()
    parent = Path(dest if dest is not None else upload_root()).resolve()
    if parent == repo or repo in parent.parents:
        raise BrainlabInputError(
            f"upload folder {parent} is inside the repository {repo}; expected a "
            f"folder outside it (default: {upload_root()})"
        )
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def extract_upload(data: bytes, filename: str, max_bytes: int = MAX_UPLOAD_BYTES,
                   dest: str | Path | None = None, max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
                   max_files: int = MAX_FILES) -> Path:
    """Store an uploaded ``.csv``/``.tsv`` or ``.zip`` safely; return the path to load.

    The result lives in ``<dest>/<content hash>/`` (``dest`` defaults to
    ``upload_root()`` and must be outside the repository); the same content is
    extracted once and reused. For a zip the returned path is the folder holding
    ``participants.tsv`` or ``images.npy``, or the single table inside it.
    """
    name = _safe_name(filename)
    lowered = name.lower()
    if len(data) > max_bytes:
        raise BrainlabInputError(
            f"upload {name} is {len(data) / 1024**2:.1f} MB; expected at most {max_bytes / 1024**2:.1f} MB"
        )
    if len(data) == 0:
        raise BrainlabInputError(f"upload {name} is empty; expected a .csv, .tsv or .zip file")
    is_table = lowered.endswith(TABLE_SUFFIXES)
    if not is_table and not lowered.endswith(".zip"):
        raise BrainlabInputError(
            f"upload {name}: expected a .csv, .tsv or .zip (NIfTI + participants.tsv) file"
        )
    parent = _checked_parent(dest)
    final = parent / hashlib.sha256(data + name.encode()).hexdigest()[:16]
    if (final / _COMPLETE).is_file():
        os.utime(final)  # recently used: pruned last
        return _stored_path(final, name, is_table)
    if is_table:
        members = None
    else:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as error:
            raise BrainlabInputError(f"upload {name} is not a valid zip file ({error})") from None
        members = _checked_members(archive, name, max_files)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=parent))
    try:
        if is_table:
            (staging / name).write_bytes(data)
        else:
            # Under the upload's own name, so the cohort is called "study", not by its hash.
            with archive:
                _extract(archive, members, staging / _stem(name), name, max_unpacked_bytes)
            _cohort_root(staging / _stem(name), name)  # refuse a zip holding no cohort
        (staging / _COMPLETE).write_text(name)
        os.chmod(staging, 0o755)  # mkdtemp makes 0700; uploads are shared like other outputs
        try:
            os.replace(staging, final)
        except OSError:  # another session stored the same upload meanwhile
            if not (final / _COMPLETE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _stored_path(final, name, is_table)


def _stem(name: str) -> str:
    return name[:-4] if name.lower().endswith(".zip") and len(name) > 4 else name


def _stored_path(folder: Path, name: str, is_table: bool) -> Path:
    return folder / name if is_table else _cohort_root(folder / _stem(name), name)


def upload_folder(path: str | Path, root: str | Path | None = None) -> Path | None:
    """The ``<root>/<hash>`` folder holding ``path``, or None when ``path`` is no upload."""
    base = Path(root if root is not None else upload_root()).resolve()
    resolved = Path(path).resolve()
    if base not in resolved.parents:
        return None
    return base / resolved.relative_to(base).parts[0]


def remove_upload(path: str | Path, root: str | Path | None = None) -> bool:
    """Delete the upload holding ``path``; True when something was removed."""
    folder = upload_folder(path, root)
    if folder is None or not folder.exists():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def prune_uploads(max_bytes: int = MAX_CACHE_BYTES, max_age_s: float = MAX_AGE_S,
                  keep=(), root: str | Path | None = None) -> list[Path]:
    """Remove uploads older than ``max_age_s``, then the oldest until under ``max_bytes``.

    Age is the folder's modification time (refreshed when an upload is reused).
    Folders holding a path in ``keep`` (uploads in use) are never removed; neither
    are staging folders of an extraction in progress younger than an hour.
    Returns the removed folders.
    """
    base = Path(root if root is not None else upload_root())
    if not base.is_dir():
        return []
    kept = {upload_folder(path, base) for path in keep} - {None}
    now = time.time()
    folders = []
    for folder in base.iterdir():
        if not folder.is_dir():
            continue
        age = now - folder.stat().st_mtime
        if folder.name.startswith(".incoming-"):
            if age > 3600:
                shutil.rmtree(folder, ignore_errors=True)
            continue
        folders.append((folder.stat().st_mtime, folder, _folder_bytes(folder), age))
    removed = []
    total = sum(size for _, _, size, _ in folders)
    for _, folder, size, age in sorted(folders, key=lambda item: item[0]):
        if folder.resolve() in kept:
            continue
        if age > max_age_s or total > max_bytes:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            total -= size
    return removed


def _checked_members(archive: zipfile.ZipFile, name: str, max_files: int) -> list[zipfile.ZipInfo]:
    members = archive.infolist()
    if len(members) > max_files:
        raise BrainlabInputError(f"zip {name} holds {len(members)} entries; expected at most {max_files}")
    for member in members:
        path = member.filename.replace("\\", "/")
        parts = PurePosixPath(path).parts
        if path.startswith("/") or re.match(r"^[A-Za-z]:", path) or ".." in parts:
            raise BrainlabInputError(
                f"zip {name}: entry {member.filename!r} points outside the archive folder; "
                f"expected relative paths without '..'"
            )
        mode = member.external_attr >> 16
        # Zips written on Windows or by zipfile.writestr carry no file type (0).
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise BrainlabInputError(f"zip {name}: entry {member.filename!r} is {kind}; expected plain files")
    return members


def _extract(archive: zipfile.ZipFile, members, folder: Path, name: str, limit: int) -> None:
    """Copy members out in chunks, stopping as soon as the unpacked total passes ``limit``."""
    total = 0
    for member in members:
        parts = [p for p in PurePosixPath(member.filename.replace("\\", "/")).parts if p not in ("", ".")]
        if not parts or member.is_dir():
            continue
        if parts[0] == "__MACOSX" or parts[-1].startswith("._"):
            continue  # macOS resource forks, not data
        target = folder.joinpath(*parts)
        if folder.resolve() not in target.resolve().parents:
            raise BrainlabInputError(f"zip {name}: entry {member.filename!r} escapes the extraction folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with archive.open(member) as source, open(target, "wb") as sink:
                while chunk := source.read(_COPY_CHUNK):
                    total += len(chunk)
                    if total > limit:
                        raise BrainlabInputError(
                            f"zip {name} unpacks to more than {limit / 1024**2:.0f} MB; "
                            f"expected at most that much"
                        )
                    sink.write(chunk)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as error:
            raise BrainlabInputError(f"zip {name}: entry {member.filename!r} is damaged ({error})") from None


def _cohort_root(folder: Path, name: str) -> Path:
    """The extracted folder (or table) ``brainlab.data.load`` should be given."""
    for marker in ("participants.tsv", "images.npy"):
        hits = sorted(folder.rglob(marker), key=lambda p: len(p.parts))
        if hits:
            return hits[0].parent
    tables = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES]
    if len(tables) == 1:
        return tables[0]
    found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    raise BrainlabInputError(
        f"zip {name}: expected participants.tsv with NIfTI volumes, HCP images.npy/sex.npy/age.npy, "
        f"or a single .csv table; found {found[:12]}"
    )
