"""The disk store of derived results: hits, invalidation, corrupt-entry recovery."""

import json

import numpy as np
import pandas as pd
import pytest

from brainlab.errors import BrainlabInputError
from brainlab.result_store import ResultKey, ResultStore, checkpoint_digest


def _value():
    return {"coords": np.arange(12, dtype=np.float32).reshape(4, 3),
            "table": pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}),
            "summary": {"auc": 0.75, "n": 3},
            "mixed": {"labels": ("F", "M"), "values": np.ones(2)}}


def _key(**changes):
    base = dict(kind="probe-table", fingerprint="abc123", checkpoints={"model": "d1"},
                settings={"folds": 5, "seed": 0})
    base.update(changes)
    return ResultKey(**base)


def test_put_then_get_returns_every_part_in_its_type(tmp_path):
    store = ResultStore(tmp_path)
    store.put(_key(), _value())
    found = ResultStore(tmp_path).get(_key())  # a fresh store: as after a restart
    assert np.array_equal(found["coords"], _value()["coords"])
    assert found["coords"].dtype == np.float32
    pd.testing.assert_frame_equal(found["table"], _value()["table"])
    assert found["summary"] == {"auc": 0.75, "n": 3}
    assert found["mixed"]["labels"] == ("F", "M")
    folder = store.folder(_key())
    assert folder.parent.name == "probe-table"
    names = {p.name for p in folder.iterdir()}
    assert {"manifest.json", "key.json", "part000.npy", "part001.parquet", "part002.json",
            "part003.joblib"} <= names
    assert json.loads((folder / "key.json").read_text())["settings"] == {"folds": 5, "seed": 0}


def test_get_or_compute_computes_once(tmp_path):
    store = ResultStore(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return np.full(3, 7.0)

    first = store.get_or_compute(_key(), compute)
    second = ResultStore(tmp_path).get_or_compute(_key(), compute)
    assert calls == [1]
    assert np.array_equal(first, second)


@pytest.mark.parametrize("change", [
    {"fingerprint": "other"},
    {"checkpoints": {"model": "d2"}},
    {"checkpoints": {}},
    {"settings": {"folds": 4, "seed": 0}},
    {"settings": {"folds": 5, "seed": 0, "method": "umap"}},
    {"kind": "latents"},
])
def test_a_changed_fingerprint_checkpoint_or_setting_is_a_miss(tmp_path, change):
    store = ResultStore(tmp_path)
    store.put(_key(), np.zeros(2))
    assert store.get(_key(**change)) is None
    assert store.get(_key()) is not None


def test_settings_order_and_numpy_scalars_do_not_change_the_key():
    a = _key(settings={"folds": 5, "seed": 0})
    b = _key(settings={"seed": np.int64(0), "folds": 5})
    assert a.digest == b.digest and a == b


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_a_damaged_entry_is_discarded_and_recomputed(tmp_path, damage):
    store = ResultStore(tmp_path)
    store.put(_key(), {"x": np.arange(1000, dtype=np.float64)})
    folder = store.folder(_key())
    part = folder / "part000.npy"
    if damage == "truncate":
        part.write_bytes(part.read_bytes()[:-100])
    elif damage == "flip":
        data = bytearray(part.read_bytes())
        data[-5] ^= 0xFF
        part.write_bytes(bytes(data))
    elif damage == "delete":
        part.unlink()
    else:
        (folder / "manifest.json").write_text("{not json")
    fresh = ResultStore(tmp_path)
    assert fresh.get(_key()) is None
    assert not folder.exists()
    value = fresh.get_or_compute(_key(), lambda: {"x": np.ones(3)})
    assert np.array_equal(value["x"], np.ones(3))
    assert np.array_equal(ResultStore(tmp_path).get(_key())["x"], np.ones(3))


def test_a_stray_temporary_folder_is_not_an_entry(tmp_path):
    store = ResultStore(tmp_path)
    store.put(_key(), np.zeros(2))
    (store.folder(_key()).parent / ".half-written.tmp-1").mkdir()
    assert store.entries("probe-table") == [store.folder(_key())]


def test_checkpoint_digest_follows_the_weights(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights-1")
    first = checkpoint_digest(folder)
    assert first == checkpoint_digest(folder / "model.safetensors")
    (folder / "model.safetensors").write_bytes(b"weights-2 (longer)")
    assert checkpoint_digest(folder) != first
    with pytest.raises(BrainlabInputError, match="no model.safetensors"):
        checkpoint_digest(tmp_path)


def test_bad_kinds_and_settings_are_rejected(tmp_path):
    with pytest.raises(BrainlabInputError, match="result kind"):
        ResultStore(tmp_path).folder(_key(kind="../up"))
    with pytest.raises(BrainlabInputError, match="plain values"):
        _key(settings={"model": object()}).digest
