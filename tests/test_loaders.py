"""Loaders for real data: CSV tables, HCP tensors, NIfTI folders, uploads; every error path."""

from __future__ import annotations

import gzip
import io
import stat
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainlab.data import load
from brainlab.data.grid import mni_affine
from brainlab.data.hcp import load_hcp_tensors
from brainlab.data.nifti import load_nifti_folder, normalise_intensity, read_volume
from brainlab.data.tables import load_table_cohort, parse_age, parse_sex
from brainlab.data.upload import extract_upload
from brainlab.errors import BrainlabInputError
from brainlab.paths import REPO_ROOT

GRID = (12, 14, 16)


# ---- tables -----------------------------------------------------------------


def test_hcp_unrestricted_fixture_loads_54_subjects_199_fs_features(fixture_csv):
    cohort = load(fixture_csv)
    assert cohort.images is None
    assert len(cohort) == 54
    assert len(cohort.morphometry_columns) == 199
    assert all(c.startswith("FS_") for c in cohort.morphometry_columns)
    assert any("dropped 6 of 60 rows" in note for note in cohort.notes)
    assert set(cohort.table["sex"]) == {"F", "M"}
    raw = pd.read_csv(fixture_csv)
    first = raw.dropna(subset=[c for c in raw.columns if c.startswith("FS_")]).iloc[0]
    row = cohort.table.iloc[0]
    assert row["subject_id"] == str(first["Subject"])
    assert row["sex"] == first["Gender"]
    assert cohort.age_bin_labels[row["age_bin"]] == first["Age"]
    assert cohort.table["age"].isna().all()


def test_hcp_table_with_family_ids_gives_family_grouped_probe_folds(fixture_csv, tmp_path):
    """A restricted Family_ID column merged into the unrestricted table is the grouping
    column, never a feature; probes then keep each family inside one fold."""
    from brainlab.analysis.probe_runs import cohort_probe_table, probe_groups

    raw = pd.read_csv(fixture_csv)
    raw["Family_ID"] = [f"{i // 2:05d}_{i // 2 + 7:05d}" for i in range(len(raw))]
    path = _write_csv(tmp_path, raw, "with_families.csv")
    cohort = load(path)
    assert "Family_ID" not in cohort.morphometry_columns and len(cohort.morphometry_columns) == 199
    groups = probe_groups(cohort)
    assert groups is not None and len(set(groups)) < len(cohort)
    assert any("family-grouped" in note for note in cohort.notes)
    table = cohort_probe_table(cohort, n_splits=3, n_jobs=1)
    assert set(table["folds"]) == {"stratified, family-grouped"}
    assert probe_groups(load(fixture_csv)) is None
    frame = _generic_frame().assign(fam=["a", "a", "b", "c"])
    generic = load_table_cohort(_write_csv(tmp_path, frame, "generic.csv"), id_column="id",
                                sex_column="gender", age_column="years", group_column="fam")
    assert "fam" not in generic.morphometry_columns
    assert probe_groups(generic).tolist() == ["a", "a", "b"]  # the row without icv is dropped
    with pytest.raises(BrainlabInputError, match="nope"):
        load_table_cohort(_write_csv(tmp_path, frame, "generic.csv"), id_column="id",
                          sex_column="gender", age_column="years", group_column="nope")


def _write_csv(tmp_path, frame, name="table.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _generic_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["007", "008", "009", "010"],
        "gender": ["male", "Female", "M", "f"],
        "years": [23.0, 45.5, 61.0, 88.0],
        "hippo": [8.1, 7.9, 7.2, 6.1],
        "icv": [1500, 1400, 1600, np.nan],
    })


def test_generic_csv_named_columns_years_and_decade_bins(tmp_path):
    path = _write_csv(tmp_path, _generic_frame())
    cohort = load_table_cohort(path, id_column="id", sex_column="gender", age_column="years")
    assert cohort.subject_ids == ["007", "008", "009"]  # leading zeros kept; NaN row dropped
    assert cohort.table["sex"].tolist() == ["M", "F", "M"]
    assert cohort.morphometry_columns == ["hippo", "icv"]
    assert cohort.age_bin_labels[:5] == ("20-29", "30-39", "40-49", "50-59", "60-69")
    assert cohort.table["age_bin"].tolist() == [0, 2, 4]
    assert any("dropped 1 of 4 rows with missing feature values" in n for n in cohort.notes)


def test_generic_csv_male_values_choose_the_male_code(tmp_path):
    frame = _generic_frame().assign(gender=[2, 1, 2, 1])
    path = _write_csv(tmp_path, frame)
    cohort = load(path, id_column="id", sex_column="gender", age_column="years", male_values=[2])
    assert cohort.table["sex"].tolist() == ["M", "F", "M"]


@pytest.mark.parametrize("raw, expected", [
    (["M", "F"], ["M", "F"]), (["male", "FEMALE"], ["M", "F"]), ([1, 0], ["M", "F"]),
    (["1.0", "0.0"], ["M", "F"]),
])
def test_parse_sex_spellings(raw, expected):
    assert parse_sex(pd.Series(raw)).tolist() == expected


def test_parse_age_hcp_bins_keep_ordinal_codes():
    years, bins, labels = parse_age(pd.Series(["36+", "22-25", "31-35"]))
    assert labels == ("22-25", "26-30", "31-35", "36+")
    assert bins.tolist() == [3.0, 0.0, 2.0]
    assert years.isna().all()
    _, bins, labels = parse_age(pd.Series([22.0, 26.0, 30.9, 36.0]))
    assert labels[0] == "22-25" and bins.tolist() == [0, 1, 1, 3]


def test_csv_missing_named_columns_lists_them_and_what_was_found(tmp_path):
    path = _write_csv(tmp_path, _generic_frame())
    with pytest.raises(BrainlabInputError, match=r"missing columns \['age'\]; found columns \['id', 'gender'"):
        load_table_cohort(path, id_column="id", sex_column="gender", age_column="age")


def test_csv_without_hcp_columns_asks_for_column_names(tmp_path):
    path = _write_csv(tmp_path, _generic_frame())
    with pytest.raises(BrainlabInputError, match=r"not an HCP unrestricted table .* found columns"):
        load_table_cohort(path)


def test_csv_non_numeric_feature_is_an_error_or_dropped_with_a_note(tmp_path):
    path = _write_csv(tmp_path, _generic_frame().assign(site=["a", "b", "c", "d"]))
    with pytest.raises(BrainlabInputError, match=r"non-numeric columns \['site'\]"):
        load_table_cohort(path, id_column="id", sex_column="gender", age_column="years")
    cohort = load_table_cohort(path, id_column="id", sex_column="gender", age_column="years",
                               drop_non_numeric=True)
    assert "site" not in cohort.morphometry_columns
    assert any("non-numeric" in note for note in cohort.notes)


def test_csv_unknown_sex_value_is_an_error(tmp_path):
    path = _write_csv(tmp_path, _generic_frame().assign(gender=["M", "F", "x", "M"]))
    with pytest.raises(BrainlabInputError, match=r"sex values \['x'\] not understood"):
        load_table_cohort(path, id_column="id", sex_column="gender", age_column="years")


def test_csv_bad_age_value_is_an_error(tmp_path):
    path = _write_csv(tmp_path, _generic_frame().assign(years=["22-25", "old", "31-35", "36+"]))
    with pytest.raises(BrainlabInputError, match=r"age values \['old'\] are neither years nor bin"):
        load_table_cohort(path, id_column="id", sex_column="gender", age_column="years")


def test_csv_empty_cohort_is_an_error(tmp_path):
    path = _write_csv(tmp_path, _generic_frame().iloc[:0])
    with pytest.raises(BrainlabInputError, match=r"no rows"):
        load_table_cohort(path, id_column="id", sex_column="gender", age_column="years")
    path = _write_csv(tmp_path, _generic_frame().assign(icv=np.nan, hippo=[1, np.nan, 2, 3]),
                      name="holes.csv")
    cohort = load_table_cohort(path, id_column="id", sex_column="gender", age_column="years")
    assert len(cohort) == 3 and "icv" not in cohort.morphometry_columns
    path = _write_csv(tmp_path, _generic_frame().assign(years=np.nan), name="noage.csv")
    with pytest.raises(BrainlabInputError, match=r"no complete rows left \(0 of 4\)"):
        load_table_cohort(path, id_column="id", sex_column="gender", age_column="years")


def test_unknown_preset_is_an_error():
    with pytest.raises(BrainlabInputError, match=r"unknown cohort source 'hcp-yaa': not a preset"):
        load("hcp-yaa")


# ---- HCP tensors ------------------------------------------------------------

SEED_SEX = np.array([1, 0, 1, 0, 0, 1], dtype=np.uint8)
SEED_AGE = np.array([0, 1, 2, 3, 0, 1], dtype=np.int64)


def _hcp_folder(tmp_path, images=None, sex=SEED_SEX, age=SEED_AGE, channel=False) -> Path:
    folder = tmp_path / "hcp"
    folder.mkdir(exist_ok=True)
    if images is None:
        rng = np.random.default_rng(0)
        images = (rng.random((len(sex), *GRID)) * 1000 - 5).astype(np.float32)
        images[:, 0, 0, 0] = -3.0
        images[0, 1, 1, 1] = 1000.0
    if channel:
        images = images[:, None]
    np.save(folder / "images.npy", images)
    np.save(folder / "sex.npy", sex)
    np.save(folder / "age.npy", age)
    return folder


@pytest.mark.parametrize("channel", [False, True])
def test_hcp_seed_coding_maps_codes_to_ordinal_bins(tmp_path, channel):
    cohort = load(_hcp_folder(tmp_path, channel=channel))
    assert cohort.table["sex"].tolist() == ["M", "F", "M", "F", "F", "M"]
    # seed codes 0=26-30, 1=22-25, 2=31-35, 3=36+ -> ordinal 1, 0, 2, 3
    assert cohort.table["age_bin"].tolist() == [1, 0, 2, 3, 1, 0]
    assert cohort.table["age"].isna().all()
    assert cohort.grid_shape == GRID
    np.testing.assert_allclose(cohort.affine, mni_affine(GRID))
    assert any("coding='seed'" in note and "0=26-30" in note for note in cohort.notes)
    assert cohort.metadata["coding"]["name"] == "seed"
    volume = cohort.images[0]
    assert volume.shape == GRID and volume.dtype == np.float32
    assert volume.min() == 0.0 and volume.max() == pytest.approx(1.0)
    assert cohort.images[[3, 1]].shape == (2, *GRID)


def test_hcp_ordinal_coding_and_explicit_overrides(tmp_path):
    folder = _hcp_folder(tmp_path)
    ordinal = load_hcp_tensors(folder, coding="ordinal")
    assert ordinal.table["age_bin"].tolist() == SEED_AGE.tolist()
    flipped = load_hcp_tensors(folder, male_code=0, age_map={0: "36+", 1: 2, 2: "22-25", 3: 1})
    assert flipped.table["sex"].tolist() == ["F", "M", "F", "M", "M", "F"]
    assert flipped.table["age_bin"].tolist() == [3, 2, 0, 1, 3, 2]
    assert flipped.metadata["coding"]["overridden"] is True
    assert any("explicit overrides" in note for note in flipped.notes)


def test_hcp_nan_voxels_are_an_error(tmp_path):
    images = np.ones((6, *GRID), dtype=np.float32)
    images[4, 3, 3, 3] = np.nan
    with pytest.raises(BrainlabInputError, match=r"volume 4 holds NaN or Inf voxels"):
        load_hcp_tensors(_hcp_folder(tmp_path, images=images))


@pytest.mark.parametrize("shape, message", [
    ((6, 12, 14), r"shape \(6, 12, 14\) \(3D\); expected \(N, 58, 70, 58\)"),
    ((6, 2, 12, 14, 16), r"found 2 channels"),
    ((0, 12, 14, 16), r"0 volumes"),
])
def test_hcp_wrong_image_shape_is_an_error(tmp_path, shape, message):
    with pytest.raises(BrainlabInputError, match=message):
        load_hcp_tensors(_hcp_folder(tmp_path, images=np.zeros(shape, np.float32)))


def test_hcp_label_length_mismatch_is_an_error(tmp_path):
    folder = _hcp_folder(tmp_path, age=SEED_AGE[:5])
    with pytest.raises(BrainlabInputError, match=r"age.npy has 5 labels but images.npy has 6 volumes"):
        load_hcp_tensors(folder)


def test_hcp_bad_codes_and_files_are_errors(tmp_path):
    folder = _hcp_folder(tmp_path, age=np.array([0, 1, 2, 3, 4, 0]))
    with pytest.raises(BrainlabInputError, match=r"codes \[4\] that the age map does not cover"):
        load_hcp_tensors(folder)
    with pytest.raises(BrainlabInputError, match=r"unknown label coding 'seeds'"):
        load_hcp_tensors(folder, coding="seeds")
    with pytest.raises(BrainlabInputError, match=r"male code 7 not present; found codes \[0, 1\]"):
        load_hcp_tensors(_hcp_folder(tmp_path), male_code=7)
    (folder / "age.npy").unlink()
    with pytest.raises(BrainlabInputError, match=r"missing \['age.npy'\]"):
        load_hcp_tensors(folder)


def test_hcp_scan_is_cached_and_redone_when_the_file_changes(tmp_path):
    folder = _hcp_folder(tmp_path)
    first = load_hcp_tensors(folder)
    images = np.load(folder / "images.npy")
    images[2, 2, 2, 2] = np.inf
    np.save(folder / "images.npy", images)  # new size/mtime -> rescan sees the Inf
    with pytest.raises(BrainlabInputError, match=r"volume 2 holds NaN or Inf"):
        load_hcp_tensors(folder)
    assert first.fingerprint


# ---- NIfTI folders ----------------------------------------------------------


def _nifti_folder(tmp_path, n=4, prefix_ids=True) -> tuple[Path, np.ndarray]:
    """n volumes on a 2x coarser grid than GRID covering the same MNI box."""
    folder = tmp_path / "bids"
    folder.mkdir()
    rng = np.random.default_rng(1)
    coarse = tuple(s // 2 for s in GRID)
    volumes = rng.uniform(100, 900, size=(n, *coarse)).astype(np.float32)
    volumes[:, 0] = 0.0
    for i in range(n):
        nib.save(nib.Nifti1Image(volumes[i], mni_affine(coarse)),
                 folder / f"sub-{i:03d}_T1w.nii.gz")
    pd.DataFrame({
        "participant_id": [f"sub-{i:03d}" if prefix_ids else f"{i:03d}" for i in range(n)],
        "age": [23, 27, 33, 37][:n],
        "sex": ["M", "F", "male", "female"][:n],
    }).to_csv(folder / "participants.tsv", sep="\t", index=False)
    return folder, volumes


@pytest.mark.parametrize("prefix_ids", [True, False])
def test_nifti_folder_resampled_normalised_and_matched(tmp_path, prefix_ids):
    folder, _ = _nifti_folder(tmp_path, prefix_ids=prefix_ids)
    cohort = load(folder, grid_shape=GRID)
    assert cohort.images.shape == (4, *GRID)
    assert cohort.subject_ids == ["000", "001", "002", "003"]
    assert cohort.table["sex"].tolist() == ["M", "F", "M", "F"]
    assert cohort.table["age_bin"].tolist() == [0, 1, 2, 3]
    stack = cohort.images[:]
    assert stack.min() >= 0.0 and stack.max() <= 1.0
    assert np.mean(stack == 1.0) < 0.05  # percentile scaling leaves few voxels saturated
    np.testing.assert_allclose(cohort.affine, mni_affine(GRID))


def test_nifti_unreadable_files_are_skipped_and_listed(tmp_path):
    folder, _ = _nifti_folder(tmp_path)
    damaged = folder / "sub-001_T1w.nii.gz"
    damaged.write_bytes(damaged.read_bytes()[:200])  # truncated download
    nib.save(nib.Nifti1Image(np.ones((6, 7, 8, 3), np.float32), np.eye(4)),
             folder / "sub-002_T1w.nii.gz")
    (folder / "sub-003_T1w.nii.gz").unlink()
    (folder / "sub-003_T1w.nii").write_text("not an image")
    cohort = load_nifti_folder(folder, grid_shape=GRID)
    assert cohort.subject_ids == ["000"]
    reasons = {s["file"]: s["reason"] for s in cohort.metadata["skipped"]}
    assert set(reasons) == {"sub-001_T1w.nii.gz", "sub-002_T1w.nii.gz", "sub-003_T1w.nii"}
    assert "corrupt gzip" in reasons["sub-001_T1w.nii.gz"]
    assert "expected a 3D volume" in reasons["sub-002_T1w.nii.gz"]
    assert any("skipped 3 files" in note for note in cohort.notes)


def test_nifti_folder_with_no_usable_volume_is_an_error(tmp_path):
    folder, _ = _nifti_folder(tmp_path, n=2)
    for path in folder.glob("*.nii.gz"):
        path.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(BrainlabInputError, match=r"none of 2 volumes could be used .*corrupt gzip"):
        load_nifti_folder(folder, grid_shape=GRID)


@pytest.mark.parametrize("kind, message", [
    ("gzip", r"corrupt gzip"),
    ("4d", r"shape \(6, 7, 8, 2\); expected a 3D volume"),
    ("text", r"is not a NIfTI image"),
    ("nan", r"holds 1 NaN/Inf voxels"),
])
def test_read_volume_errors(tmp_path, kind, message):
    path = tmp_path / ("bad.nii" if kind == "text" else "bad.nii.gz")
    if kind == "gzip":
        path.write_bytes(gzip.compress(b"y" * 1000)[:-12])
    elif kind == "4d":
        nib.save(nib.Nifti1Image(np.ones((6, 7, 8, 2), np.float32), np.eye(4)), path)
    elif kind == "text":
        path.write_text("hello")
    else:
        data = np.ones((6, 7, 8), np.float32)
        data[1, 2, 3] = np.nan
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    with pytest.raises(BrainlabInputError, match=message):
        read_volume(path)


def test_normalise_intensity_rejects_empty_volume():
    with pytest.raises(BrainlabInputError, match=r"no voxels above 0"):
        normalise_intensity(np.zeros((3, 4, 5), np.float32))


def test_nifti_participants_errors(tmp_path):
    folder, _ = _nifti_folder(tmp_path)
    table = pd.read_csv(folder / "participants.tsv", sep="\t")
    table.drop(columns=["sex"]).to_csv(folder / "participants.tsv", sep="\t", index=False)
    with pytest.raises(BrainlabInputError, match=r"missing columns \['sex'\]; expected .* found \['participant_id', 'age'\]"):
        load_nifti_folder(folder, grid_shape=GRID)
    (folder / "participants.tsv").unlink()
    with pytest.raises(BrainlabInputError, match=r"no participants.tsv"):
        load_nifti_folder(folder, grid_shape=GRID)


def test_nifti_cache_is_reused_invalidated_and_rebuilt_when_corrupt(tmp_path, monkeypatch):
    import brainlab.data.nifti as nifti

    folder, _ = _nifti_folder(tmp_path)
    first = load_nifti_folder(folder, grid_shape=GRID)
    cache_dir = Path(first.metadata["cache_dir"])
    assert (cache_dir / "meta.json").is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("resampled although the cache is valid")

    monkeypatch.setattr(nifti, "resample_to_grid", refuse)
    warm = load_nifti_folder(folder, grid_shape=GRID)
    np.testing.assert_array_equal(warm.images[:], first.images[:])
    monkeypatch.undo()

    expected = first.images[:]
    # A new file, not an in-place truncation: the open memmaps keep the old inode.
    (cache_dir / "images.npy").unlink()
    (cache_dir / "images.npy").write_bytes(b"truncated")
    rebuilt = load_nifti_folder(folder, grid_shape=GRID)
    np.testing.assert_array_equal(rebuilt.images[:], expected)

    other_grid = load_nifti_folder(folder, grid_shape=(10, 12, 8))
    assert other_grid.metadata["cache_dir"] != first.metadata["cache_dir"]
    assert other_grid.images.shape == (4, 10, 12, 8)


# ---- uploads ----------------------------------------------------------------


def _zip(entries: dict[str, bytes], symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_upload_csv_lands_in_a_temp_dir_outside_the_repo(fixture_csv):
    path = extract_upload(fixture_csv.read_bytes(), "../../hcp table.csv")
    assert path.name == "hcp_table.csv" and REPO_ROOT not in path.parents
    assert len(load(path)) == 54


def test_upload_zip_of_nifti_folder_loads(tmp_path):
    folder, _ = _nifti_folder(tmp_path)
    entries = {f"study/{p.name}": p.read_bytes() for p in folder.iterdir()}
    entries["__MACOSX/study/._sub-000_T1w.nii.gz"] = b"resource fork"
    root = extract_upload(_zip(entries), "study.zip")
    assert root.name == "study" and REPO_ROOT not in root.parents
    assert len(load(root, grid_shape=GRID)) == 4


@pytest.mark.parametrize("entries, symlink, message", [
    ({"../evil.txt": b"x"}, None, r"points outside the archive"),
    ({"/etc/evil.txt": b"x"}, None, r"points outside the archive"),
    ({"ok/participants.tsv": b"x"}, "ok/link", r"is a symbolic link"),
])
def test_upload_zip_rejects_unsafe_entries(entries, symlink, message):
    with pytest.raises(BrainlabInputError, match=message):
        extract_upload(_zip(entries, symlink), "bad.zip")


def test_upload_limits_and_bad_files(tmp_path):
    bomb = _zip({"participants.tsv": b"0" * 200_000})
    with pytest.raises(BrainlabInputError, match=r"unpacks to more than"):
        extract_upload(bomb, "bomb.zip", max_unpacked_bytes=100_000)
    many = _zip({f"f{i}.txt": b"x" for i in range(20)})
    with pytest.raises(BrainlabInputError, match=r"holds 20 entries; expected at most 10"):
        extract_upload(many, "many.zip", max_files=10)
    with pytest.raises(BrainlabInputError, match=r"expected at most 0.0 MB"):
        extract_upload(b"a,b\n1,2\n", "t.csv", max_bytes=3)
    with pytest.raises(BrainlabInputError, match=r"not a valid zip"):
        extract_upload(b"PK not really", "x.zip")
    with pytest.raises(BrainlabInputError, match=r"expected a .csv, .tsv or .zip"):
        extract_upload(b"data", "x.exe")
    with pytest.raises(BrainlabInputError, match=r"expected participants.tsv .* found \['a.txt'\]"):
        extract_upload(_zip({"a.txt": b"x"}), "x.zip")
    with pytest.raises(BrainlabInputError, match=r"inside the repository"):
        extract_upload(b"a,b\n1,2\n", "t.csv", dest=REPO_ROOT / "data")
    assert extract_upload(b"a,b\n1,2\n", "t.csv", dest=tmp_path).parent.parent == tmp_path
