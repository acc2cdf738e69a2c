"""Uploaded files (from the app) turned into a path that ``brainlab.data.load`` reads.

A ``.csv``/``.tsv`` is written to a fresh temporary folder. A ``.zip`` (NIfTI
volumes + ``participants.tsv``, or HCP ``images.npy``/``sex.npy``/``age.npy``,
or one table) is extracted member by member into a fresh temporary folder,
refusing absolute paths, ``..`` components, symbolic links and other special
entries, more than ``max_files`` members, and more than ``max_unpacked_bytes``
in total (counted while extracting, not trusted from the zip header). Nothing
is ever written inside the repository.
"""

from __future__ import annotations

import io
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from brainlab.errors import BrainlabInputError
from brainlab.paths import REPO_ROOT

MAX_UPLOAD_BYTES = 512 * 1024**2      # what the app accepts in one upload
MAX_UNPACKED_BYTES = 4 * 1024**3      # a zip may hold at most this much once extracted
MAX_FILES = 10_000                    # members in one zip
TABLE_SUFFIXES = (".csv", ".tsv")
_COPY_CHUNK = 1024**2


def _safe_name(filename: str) -> str:
    name = PurePosixPath(str(filename).replace("\\", "/")).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "upload"


def _fresh_folder(dest: str | Path | None) -> Path:
    """A new folder from ``tempfile.mkdtemp`` (under ``dest``), never inside the repository."""
    repo = REPO_ROOT.resolve()
    parent = Path(dest if dest is not None else tempfile.gettempdir()).resolve()
    if parent == repo or repo in parent.parents:
        raise BrainlabInputError(
            f"upload folder {parent} is inside the repository {repo}; expected a "
            f"folder outside it (default: the system temp folder)"
        )
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="brainlab-upload-", dir=parent))


def extract_upload(data: bytes, filename: str, max_bytes: int = MAX_UPLOAD_BYTES,
                   dest: str | Path | None = None, max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
                   max_files: int = MAX_FILES) -> Path:
    """Store an uploaded ``.csv``/``.tsv`` or ``.zip`` safely; return the path to load.

    The result lives in a new folder made by ``tempfile.mkdtemp`` (under ``dest``
    when given, which must be outside the repository). For a zip the returned path
    is the folder holding ``participants.tsv`` or ``images.npy``, or the single
    table inside it.
    """
    name = _safe_name(filename)
    lowered = name.lower()
    if len(data) > max_bytes:
        raise BrainlabInputError(
            f"upload {name} is {len(data) / 1024**2:.1f} MB; expected at most {max_bytes / 1024**2:.1f} MB"
        )
    if len(data) == 0:
        raise BrainlabInputError(f"upload {name} is empty; expected a .csv, .tsv or .zip file")
    if lowered.endswith(TABLE_SUFFIXES):
        folder = _fresh_folder(dest)
        target = folder / name
        target.write_bytes(data)
        return target
    if not lowered.endswith(".zip"):
        raise BrainlabInputError(
            f"upload {name}: expected a .csv, .tsv or .zip (NIfTI + participants.tsv) file"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise BrainlabInputError(f"upload {name} is not a valid zip file ({error})") from None
    with archive:
        members = _checked_members(archive, name, max_files)
        folder = _fresh_folder(dest)
        try:
            _extract(archive, members, folder, name, max_unpacked_bytes)
            return _cohort_root(folder, name)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise


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
