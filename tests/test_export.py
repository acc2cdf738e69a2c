"""Cohort export: NIfTI per subject with the right affine, tables, and the round trip."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainlab.data.cohort import Cohort, ImageArray
from brainlab.data.export import bids_label, cohort_summary, export_cohort
from brainlab.data.grid import mni_affine
from brainlab.data.nifti import load_nifti_folder
from brainlab.errors import BrainlabInputError

GRID = (12, 14, 16)


def _toy_cohort(n=5, with_images=True) -> Cohort:
    rng = np.random.default_rng(3)
    table = pd.DataFrame({
        "subject_id": [f"toy-{i:03d}" for i in range(n)],
        "sex": ["M", "F"] * (n // 2) + ["M"] * (n % 2),
        "age": np.linspace(22.5, 38.0, n),
        "age_bin": [0, 1, 2, 3, 0][:n],
        "icv_cc": rng.normal(1500, 100, n),
        "gm_cc": rng.normal(650, 50, n),
    })
    truth = pd.DataFrame({"subject_id": table["subject_id"], "icv_true": rng.normal(1500, 100, n)})
    images = ImageArray(rng.random((n, *GRID)).astype(np.float16), scale=1.0) if with_images else None
    return Cohort("toy", table, mni_affine(GRID), images=images, truth=truth)


def test_export_writes_nifti_with_mni_affine_and_tables(tmp_path):
    cohort = _toy_cohort()
    out = export_cohort(cohort, tmp_path / "out")
    image = nib.load(out / "sub-toy000_T1w.nii.gz")
    assert image.shape == GRID
    np.testing.assert_allclose(image.affine, cohort.affine)
    assert int(image.header["sform_code"]) == 4 and int(image.header["qform_code"]) == 4
    np.testing.assert_allclose(image.get_fdata(), cohort.images[0], atol=1e-6)
    participants = pd.read_csv(out / "participants.tsv", sep="\t")
    assert participants.columns[:4].tolist() == ["participant_id", "age", "sex", "age_bin"]
    assert participants["participant_id"][0] == "sub-toy000"
    morphometry = pd.read_csv(out / "morphometry.csv")
    assert morphometry.columns.tolist() == ["subject_id", "icv_cc", "gm_cc"]
    assert pd.read_csv(out / "truth.csv").shape == (5, 2)
    assert json.loads((out / "cohort.json").read_text())["n_subjects"] == 5
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_export_then_nifti_loader_round_trip(tmp_path):
    cohort = _toy_cohort()
    out = export_cohort(cohort, tmp_path / "out")
    back = load_nifti_folder(out, grid_shape=GRID)
    pd.testing.assert_frame_equal(back.table[["subject_id", "sex", "age_bin"]],
                                  cohort.table[["subject_id", "sex", "age_bin"]])
    np.testing.assert_allclose(back.table["age"], cohort.table["age"])
    np.testing.assert_allclose(back.images[:], cohort.images[:], atol=2e-3)


def test_export_table_only_cohort_writes_no_volumes(tmp_path):
    out = export_cohort(_toy_cohort(with_images=False), tmp_path / "tables")
    assert not list(out.glob("*.nii.gz"))
    assert (out / "participants.tsv").is_file() and (out / "morphometry.csv").is_file()


def test_export_errors(tmp_path):
    cohort = _toy_cohort()
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(BrainlabInputError, match=r"exists and is not a folder"):
        export_cohort(cohort, target)
    clash = cohort.table.assign(subject_id=["a-1", "a1", "b", "c", "d"])
    with pytest.raises(BrainlabInputError, match=r"duplicate BIDS labels \['a1'\]"):
        export_cohort(Cohort("clash", clash, cohort.affine, images=cohort.images), tmp_path / "c")


@pytest.mark.parametrize("raw, label", [("sub-0042", "0042"), ("toy-001", "toy001"), ("P_7", "P7")])
def test_bids_label(raw, label):
    assert bids_label(raw) == label


def test_cohort_summary_counts():
    summary = cohort_summary(_toy_cohort())
    assert summary["sex_counts"] == {"F": 2, "M": 3}
    assert summary["age_bin_counts"] == {"22-25": 2, "26-30": 1, "31-35": 1, "36+": 1}
    assert summary["grid_shape"] == list(GRID)
    assert summary["n_morphometry_columns"] == 2


def _tiny_phantom():
    try:
        from brainlab.data.phantom import load_phantom
    except ImportError:
        pytest.skip("phantom generator not available yet")
    return load_phantom("tiny")


def test_tiny_phantom_export_round_trip(tmp_path):
    tiny = _tiny_phantom()
    out = export_cohort(tiny, tmp_path / "tiny")
    assert len(list(out.glob("sub-*_T1w.nii.gz"))) == len(tiny)
    back = load_nifti_folder(out, grid_shape=tiny.grid_shape)
    assert back.subject_ids == tiny.subject_ids
    assert back.table["sex"].tolist() == tiny.table["sex"].tolist()
    assert back.table["age_bin"].tolist() == tiny.table["age_bin"].tolist()
    np.testing.assert_allclose(back.table["age"], tiny.table["age"], rtol=1e-9)
    np.testing.assert_allclose(back.images[:], tiny.images[:], atol=2e-3)
    assert back.age_bin_labels[: len(tiny.age_bin_labels)] == tuple(tiny.age_bin_labels)[: len(back.age_bin_labels)]
    if tiny.truth is not None:
        assert len(pd.read_csv(out / "truth.csv")) == len(tiny.truth)
