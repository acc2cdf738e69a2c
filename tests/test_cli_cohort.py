"""``python -m brainlab cohort build|info|export``, run in-process."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from brainlab.__main__ import main
from brainlab.data.cohort import Cohort, ImageArray
from brainlab.data.export import export_cohort
from brainlab.data.grid import mni_affine

GRID = (12, 14, 16)


@pytest.fixture()
def nifti_folder(tmp_path):
    rng = np.random.default_rng(5)
    table = pd.DataFrame({"subject_id": [f"c{i}" for i in range(4)], "sex": list("MFMF"),
                          "age": [23.0, 28.0, 33.0, 36.5], "age_bin": [0, 1, 2, 3]})
    cohort = Cohort("cli", table, mni_affine(GRID),
                    images=ImageArray(rng.random((4, *GRID)).astype(np.float32)))
    return export_cohort(cohort, tmp_path / "cli")


@pytest.fixture()
def hcp_folder(tmp_path):
    folder = tmp_path / "hcp"
    folder.mkdir()
    np.save(folder / "images.npy", np.random.default_rng(0).random((3, 1, *GRID)).astype(np.float32))
    np.save(folder / "sex.npy", np.array([1, 0, 0], np.uint8))
    np.save(folder / "age.npy", np.array([0, 1, 3]))
    return folder


def test_info_json_on_a_nifti_folder(nifti_folder, capsys):
    assert main(["cohort", "info", str(nifti_folder), "--grid", "12,14,16", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_subjects"] == 4
    assert summary["sex_counts"] == {"F": 2, "M": 2}
    assert summary["age_bin_counts"] == {"22-25": 1, "26-30": 1, "31-35": 1, "36+": 1}
    assert summary["age_range"] == [23.0, 36.5]
    assert summary["grid_shape"] == list(GRID)
    np.testing.assert_allclose(summary["affine"], mni_affine(GRID), atol=1e-5)
    assert summary["cache_path"] and summary["fingerprint"]


def test_info_text_on_the_fixture_table(fixture_csv, capsys):
    assert main(["cohort", "info", str(fixture_csv)]) == 0
    text = capsys.readouterr().out
    assert "subjects     54" in text and "199 columns" in text and "dropped 6 of 60 rows" in text


def test_hcp_options_reach_the_loader(hcp_folder, capsys):
    assert main(["cohort", "info", str(hcp_folder), "--json", "--coding", "ordinal",
                 "--male-code", "0"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sex_counts"] == {"F": 1, "M": 2}
    assert summary["age_bin_counts"] == {"22-25": 1, "26-30": 1, "36+": 1}
    assert main(["cohort", "info", str(hcp_folder), "--json", "--age-map",
                 "0=36+,1=36+,3=22-25"]) == 0
    assert json.loads(capsys.readouterr().out)["age_bin_counts"] == {"22-25": 1, "36+": 2}


def test_build_rebuild_and_export(nifti_folder, tmp_path, capsys):
    assert main(["cohort", "build", str(nifti_folder), "--grid", "12,14,16", "--rebuild"]) == 0
    assert "subjects     4" in capsys.readouterr().out
    out = tmp_path / "again"
    assert main(["cohort", "export", str(nifti_folder), "--grid", "12,14,16", "--out", str(out)]) == 0
    assert "exported 4 subjects (4 NIfTI volumes)" in capsys.readouterr().out
    assert len(list(out.glob("sub-*_T1w.nii.gz"))) == 4


@pytest.mark.parametrize("argv, message", [
    (["--coding", "seed"], r"--coding applies to hcp sources"),
    (["--grid", "12,14"], r"--grid '12,14'; expected three sizes"),
])
def test_bad_options_print_one_clear_error(nifti_folder, capsys, argv, message):
    import re

    assert main(["cohort", "info", str(nifti_folder), *argv]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_unknown_source_is_a_clear_error(capsys):
    assert main(["cohort", "info", "no-such-preset"]) == 2
    assert "unknown cohort source 'no-such-preset'" in capsys.readouterr().err


def test_info_json_on_tiny_preset(capsys):
    try:
        from brainlab.data.phantom import load_phantom  # noqa: F401
    except ImportError:
        pytest.skip("phantom generator not available yet")
    assert main(["cohort", "info", "tiny", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["name"] and summary["n_subjects"] > 0
    assert summary["grid_shape"] == [12, 14, 16]
    assert sum(summary["sex_counts"].values()) == summary["n_subjects"]
    assert sum(summary["age_bin_counts"].values()) == summary["n_subjects"]


def test_table_column_options_reach_the_loader(tmp_path, capsys):
    path = tmp_path / "people.tsv"
    pd.DataFrame({"pid": ["a", "b", "c"], "s": [2, 1, 1], "yrs": [24, 29, 33],
                  "hippo": [8.0, 7.5, 7.7]}).to_csv(path, sep="\t", index=False)
    assert main(["cohort", "info", str(path), "--json", "--id-column", "pid", "--sex-column", "s",
                 "--age-column", "yrs", "--male-code", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sex_counts"] == {"F": 2, "M": 1}
    assert summary["n_morphometry_columns"] == 1 and summary["grid_shape"] is None


# ---------------------------------------------------------------- cohort validate

def _hcp_like_csv(path, n=150, seed=0):
    """An HCP unrestricted-style table (Subject, Gender, Age bins, FS_* in mm³)."""
    rng = np.random.default_rng(seed)
    male = rng.random(n) < 0.5
    icv = np.exp(np.log(1471e3) + male * 0.15 + rng.normal(0, 0.085, n))
    gm = 0.44 * icv * np.exp(rng.normal(0, 0.04, n))
    frame = pd.DataFrame({
        "Subject": 100000 + np.arange(n), "Gender": np.where(male, "M", "F"),
        "Age": rng.choice(["22-25", "26-30", "31-35"], n),
        "FS_IntraCranial_Vol": icv, "FS_Total_GM_Vol": gm, "FS_TotCort_GM_Vol": 0.74 * gm,
        "FS_Tot_WM_Vol": 0.28 * icv * np.exp(rng.normal(0, 0.05, n)),
        "FS_L_Hippo_Vol": 4250 * np.exp(rng.normal(0, 0.09, n)),
        "FS_R_Hippo_Vol": 4250 * np.exp(rng.normal(0, 0.09, n)),
    })
    frame.to_csv(path, index=False)
    return path


def test_validate_json_on_a_freesurfer_table(tmp_path, capsys):
    path = _hcp_like_csv(tmp_path / "fs.csv")
    assert main(["cohort", "validate", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in report["rows"]}
    assert report["n_subjects"] == 150 and report["summary"]["total"] == len(rows)
    assert rows["ICV d (M vs F)"]["measured"] == pytest.approx(1.76, abs=0.4)
    assert rows["ICV, F mean (cc)"]["measured"] == pytest.approx(1471 * np.exp(0.085**2 / 2), rel=0.05)
    # GM proportional to ICV: no sex effect beyond head size, a failed v2 target.
    assert rows["GM allometry slope vs ICV"]["passed"] is False
    assert rows["ICV-adjusted sex d, amygdala"]["note"] == "n/a (needs amygdala volume)"
    assert rows["ICV-adjusted sex d, amygdala"]["measured"] is None


def test_validate_text_strict_and_column_option(tmp_path, capsys):
    path = _hcp_like_csv(tmp_path / "fs.csv", seed=1)
    assert main(["cohort", "validate", str(path)]) == 0
    text = capsys.readouterr().out
    assert "## sex beyond head size" in text and "FAIL" in text and "n/a" in text
    assert "passed," in text.splitlines()[-1]
    assert main(["cohort", "validate", str(path), "--strict"]) == 1
    capsys.readouterr()
    assert main(["cohort", "validate", str(path), "--column", "skull=FS_IntraCranial_Vol"]) == 2
    assert "unknown measure names ['skull']" in capsys.readouterr().err
    assert main(["cohort", "validate", str(path), "--column", "icv"]) == 2
    assert "expected MEASURE=COLUMN" in capsys.readouterr().err


def test_validate_tiny_preset_without_images(capsys):
    try:
        from brainlab.data.phantom import load_phantom  # noqa: F401
    except ImportError:
        pytest.skip("phantom generator not available yet")
    assert main(["cohort", "validate", "tiny", "--json", "--no-images"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [row["name"] for row in report["rows"]]
    assert "ICV-adjusted sex d, total GM" in names and "grid" in names
    assert not any(name.startswith("deep GM") for name in names)
