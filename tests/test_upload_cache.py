"""Uploads live in one cache folder, ``<cache>/uploads/<hash>/``, under a size cap and an age limit."""

from __future__ import annotations

import io
import os
import time
import zipfile

import pytest

from brainlab.data.upload import (
    extract_upload, prune_uploads, remove_upload, upload_folder, upload_root,
)
from brainlab.errors import BrainlabInputError
from brainlab.paths import cache_root

TABLE = b"subject_id,sex,age\ns1,F,30\ns2,M,40\n"


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _age(folder, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(folder, (stamp, stamp))


def test_uploads_land_in_one_cache_folder_by_content(tmp_path):
    first = extract_upload(TABLE, "table.csv", dest=tmp_path)
    again = extract_upload(TABLE, "table.csv", dest=tmp_path)
    other = extract_upload(TABLE + b"s3,F,50\n", "table.csv", dest=tmp_path)
    assert first == again and first.parent.parent == tmp_path
    assert other.parent != first.parent
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.parent.name, other.parent.name])
    assert oct(first.parent.stat().st_mode & 0o777) == "0o755"
    assert upload_folder(first, tmp_path) == first.parent.resolve()
    assert upload_folder(tmp_path.parent / "elsewhere.csv", tmp_path) is None


def test_default_folder_is_under_the_cache_root():
    path = extract_upload(TABLE, "t.csv")
    assert upload_root() == cache_root() / "uploads"
    assert path.parent.parent == upload_root()
    assert remove_upload(path) and not path.exists()
    assert not remove_upload(path)  # already gone


def test_a_failed_upload_leaves_nothing_behind(tmp_path):
    with pytest.raises(BrainlabInputError, match=r"expected participants.tsv"):
        extract_upload(_zip({"notes.txt": b"x"}), "x.zip", dest=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_prune_removes_the_oldest_beyond_the_cap_and_keeps_those_in_use(tmp_path):
    paths = [extract_upload(TABLE + f"s{i},F,3{i}\n".encode(), "t.csv", dest=tmp_path) for i in range(4)]
    for age, path in zip((400, 300, 200, 100), paths):
        _age(path.parent, age)
    size = sum(f.stat().st_size for f in paths[0].parent.rglob("*") if f.is_file())
    removed = prune_uploads(max_bytes=2 * size, max_age_s=3600, keep=[paths[0]], root=tmp_path)
    # The oldest is in use, so the next two oldest go until two uploads remain.
    assert sorted(removed) == sorted([paths[1].parent, paths[2].parent])
    assert paths[0].exists() and paths[3].exists()


def test_prune_removes_uploads_past_the_age_limit(tmp_path):
    old = extract_upload(TABLE, "old.csv", dest=tmp_path)
    new = extract_upload(TABLE, "new.csv", dest=tmp_path)
    _age(old.parent, 10_000)
    assert prune_uploads(max_age_s=5_000, root=tmp_path) == [old.parent]
    assert new.exists() and not old.exists()
    assert prune_uploads(root=tmp_path / "missing") == []
