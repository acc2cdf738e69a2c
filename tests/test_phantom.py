"""The phantom cohort: shapes, determinism, HCP counts, effect directions, cache recovery."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from brainlab.config import PhantomConfig
from brainlab.data import cache
from brainlab.data.grid import mni_affine
from brainlab.data.phantom import (
    PHANTOM_PRESETS, cohort_folder, expected_effect_maps, load_phantom, true_curve,
)
from brainlab.errors import BrainlabInputError

TINY = PHANTOM_PRESETS["tiny"]
# Lifespan ageing on a coarse grid (≈6 mm) with fewer subjects: seconds, not minutes.
LIFESPAN_SMALL = dataclasses.replace(PHANTOM_PRESETS["lifespan"], name="lifespan-small",
                                     n_subjects=120, grid_shape=(29, 35, 29))


@pytest.fixture(scope="module")
def tiny():
    return load_phantom("tiny")


@pytest.fixture(scope="module")
def lifespan_table():
    return load_phantom(LIFESPAN_SMALL).table


def test_tiny_shapes_dtypes_affine(tiny):
    assert tiny.name == "tiny"
    assert tiny.images.shape == (24, 12, 14, 16)
    volume = tiny.images[3]
    assert volume.shape == (12, 14, 16) and volume.dtype == np.float32
    assert 0.0 <= volume.min() and volume.max() <= 1.0 and volume.max() > 0.3
    assert tiny.images[[0, 5, 2]].shape == (3, 12, 14, 16)
    np.testing.assert_allclose(tiny.affine, mni_affine((12, 14, 16)))
    table = tiny.table
    assert list(table.columns[:4]) == ["subject_id", "sex", "age", "age_bin"]
    assert table["subject_id"].iloc[0] == "sub-0001"
    assert set(table["sex"]) == {"F", "M"}
    assert table["age_bin"].nunique() >= 3
    assert len(tiny.morphometry_columns) >= 40
    for column in ("icv_cc", "gm_cc", "wm_cc", "csf_cc", "gm_frontal_left_cc",
                   "hippocampus_left_cc", "hippocampus_right_cc", "ventricles_cc",
                   "cortical_thickness_mm"):
        assert column in table.columns, column
    assert np.isfinite(table[tiny.morphometry_columns].to_numpy()).all()
    assert tiny.age_bin_labels == TINY.age_bin_labels
    assert {"subject_id", "seed", "icv_cc", "z_gm"} <= set(tiny.truth.columns)
    assert tiny.metadata["preset"] == "tiny" and tiny.metadata["config"]["grid_shape"] == [12, 14, 16]


def test_same_config_same_cohort_and_other_seed_differs(tiny):
    again = load_phantom("tiny", rebuild=True)
    np.testing.assert_array_equal(np.asarray(again.images._stored), np.asarray(tiny.images._stored))
    pd.testing.assert_frame_equal(again.table, tiny.table)
    assert again.fingerprint == tiny.fingerprint
    other = load_phantom(dataclasses.replace(TINY, seed=1))
    assert other.fingerprint != tiny.fingerprint
    assert not np.array_equal(np.asarray(other.images._stored), np.asarray(tiny.images._stored))


def test_hcp_ya_counts_per_sex_and_age_bin():
    from brainlab.data.phantom.generator import sample_demographics

    table = sample_demographics(PHANTOM_PRESETS["hcp-ya"])
    counts = pd.crosstab(table["age_bin"], table["sex"])
    assert counts["F"].tolist() == [84, 265, 248, 9]
    assert counts["M"].tolist() == [147, 221, 135, 4]
    assert len(table) == 1113
    edges = np.array(PHANTOM_PRESETS["hcp-ya"].age_bin_edges)
    bins = table["age_bin"].to_numpy()
    assert (table["age"] >= edges[bins]).all() and (table["age"] < edges[bins + 1]).all()


def _slope(x, y):
    return np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)[0]


def test_effect_directions_on_measured_table(lifespan_table):
    t = lifespan_table
    male = t["sex"] == "M"
    icv_ratio = t.loc[male, "icv_cc"].mean() / t.loc[~male, "icv_cc"].mean()
    assert 1.10 <= icv_ratio <= 1.22
    after35 = t["age"] > 35
    assert _slope(t.loc[after35, "age"], t.loc[after35, "gm_fraction"]) < 0
    vent = t["ventricles_cc"] / t["icv_cc"] * 1000
    mid, late = (t["age"] >= 20) & (t["age"] < 60), t["age"] >= 60
    mid_slope, late_slope = _slope(t.loc[mid, "age"], vent[mid]), _slope(t.loc[late, "age"], vent[late])
    assert mid_slope > 0 and late_slope > 1.25 * mid_slope
    hippocampus = t["hippocampus_cc"] / t["icv_cc"]
    assert _slope(t["age"], hippocampus) < 0
    assert t.loc[~male, "gm_fraction"].mean() > t.loc[male, "gm_fraction"].mean()


def test_effect_maps_and_true_curves():
    maps = expected_effect_maps("tiny")
    assert set(maps) == {"sex", "age"}
    for effect in maps.values():
        assert effect.shape == (12, 14, 16) and effect.dtype == np.float32
        assert np.abs(effect).max() > 0
    ages = np.array([25.0, 50.0, 85.0])
    curve = true_curve("tiny", "ventricles_cc", ages, "F")
    assert curve.shape == (3,) and curve[2] > curve[0]
    assert true_curve("tiny", "not_a_feature", ages, "M") is None
    with pytest.raises(BrainlabInputError, match="sex must be"):
        true_curve("tiny", "gm_cc", ages, "X")


@pytest.mark.parametrize("damage", ["truncate_images", "delete_manifest", "edit_table",
                                    "delete_truth"])
def test_corrupt_cache_is_detected_and_rebuilt(damage):
    config = dataclasses.replace(TINY, seed=7)
    first = load_phantom(config)
    images = np.array(first.images._stored)
    folder = cohort_folder(config)
    if damage == "truncate_images":
        with open(folder / "images.npy", "r+b") as stream:
            stream.truncate((folder / "images.npy").stat().st_size - 100)
    elif damage == "delete_manifest":
        (folder / "manifest.json").unlink()
    elif damage == "edit_table":
        text = (folder / "table.csv").read_text()
        (folder / "table.csv").write_text(text.replace("sub-0001", "sub-9999"))
    else:
        (folder / "truth.csv").unlink()
    ok, reason = cache.verify(folder)
    assert not ok, reason
    rebuilt = load_phantom(config)
    assert cache.verify(folder)[0]
    np.testing.assert_array_equal(np.asarray(rebuilt.images._stored), images)
    pd.testing.assert_frame_equal(rebuilt.table, first.table)
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name]


def test_manifest_describes_images():
    load_phantom("tiny")
    manifest = json.loads((cohort_folder(TINY) / "manifest.json").read_text())
    assert manifest["shape"] == [24, 12, 14, 16] and manifest["dtype"] == "uint16"
    assert set(manifest["files"]) == {"images.npy", "table.csv", "truth.csv"}


def test_unknown_preset_and_bad_config():
    with pytest.raises(BrainlabInputError, match=r"unknown phantom preset 'hcp'.*hcp-ya"):
        load_phantom("hcp")
    with pytest.raises(BrainlabInputError, match="grid_shape"):
        load_phantom(PhantomConfig(grid_shape=(2, 3, 4)))
    with pytest.raises(BrainlabInputError, match="female_counts"):
        load_phantom(PhantomConfig(female_counts=(1, 2), male_counts=(1, 2)))


# Digest of the `tiny` cohort (phantom version 5, v2 targets): the shipped checkpoints'
# fingerprints promise this cohort, so a faster build must reproduce it. Per-subject
# sums of the raw uint16 images and six table rows.
TINY_IMAGE_SUMS = [419944.0, 408981.0, 378794.0, 358258.0, 273410.0, 331941.0, 346918.0, 376339.0, 374427.0, 324049.0, 406133.0, 397201.0, 341222.0, 377500.0, 379574.0, 351906.0, 445484.0, 375007.0, 359386.0, 316370.0, 340429.0, 313020.0, 413749.0, 475889.0]
TINY_TABLE_HEAD = {
    "icv_cc": [1689.74, 1700.49, 1584.97, 1525.87, 1233.06, 1367.38],
    "gm_cc": [786.088, 756.041, 746.208, 674.943, 543.315, 617.389],
    "wm_cc": [471.757, 503.274, 367.43, 378.562, 273.326, 386.659],
    "ventricles_cc": [5.00643, 5.72286, 10.1724, 9.03187, 10.117, 4.62664],
    "hippocampus_cc": [9.60369, 8.74197, 9.12252, 8.78734, 6.6354, 7.4487],
    "cortical_thickness_mm": [2.6973, 2.5836, 2.88753, 2.70925, 2.80491, 2.62844],
}


def test_tiny_cohort_matches_the_reference_digest(tiny):
    stored = np.asarray(tiny.images._stored).astype(np.float64)
    sums = stored.reshape(len(stored), -1).sum(1)
    # Within 0.1% per subject: a changed random stream or warp moves sums by percents.
    np.testing.assert_allclose(sums, TINY_IMAGE_SUMS, rtol=1e-3)
    for column, expected in TINY_TABLE_HEAD.items():
        np.testing.assert_allclose(tiny.table[column].iloc[:6], expected, rtol=1e-3,
                                   err_msg=column)


def _build_tiny(tmp_path, name, **options):
    from brainlab.data.phantom.build import build_into

    folder = tmp_path / name
    folder.mkdir()
    messages = []
    build_into(folder, TINY, lambda fraction, message: messages.append((fraction, message)),
               **options)
    images = np.load(folder / "images.npy")
    return images, pd.read_csv(folder / "table.csv", dtype={"subject_id": str}), messages


def test_chunking_and_workers_do_not_change_the_cohort(tmp_path):
    one, one_table, _ = _build_tiny(tmp_path, "serial", workers=1, chunk=1)
    many, many_table, messages = _build_tiny(tmp_path, "threaded", workers=2, chunk=5)
    assert one.shape == many.shape == (24, 12, 14, 16)
    # Batched float reductions may round differently; stored values stay within 1 raw unit.
    assert np.abs(one.astype(np.int32) - many.astype(np.int32)).max() <= 1
    pd.testing.assert_frame_equal(one_table, many_table, rtol=1e-5)
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions)
    counts = [m for _, m in messages if m.startswith("subjects ")]
    assert counts[0].startswith("subjects 0/24") and counts[-1].startswith("subjects 24/24")
    assert any("ETA" in m for m in counts[1:])


def test_count_progress_reports_elapsed_and_eta():
    from brainlab.data.progress import CountProgress, format_seconds

    now = [100.0]
    seen = []
    tracker = CountProgress(lambda f, m: seen.append((f, m)), total=40, unit="subjects",
                            start=0.1, stop=0.9, clock=lambda: now[0])
    tracker.update(0)
    assert seen[-1] == (pytest.approx(0.1), "subjects 0/40 · 0 s elapsed")
    now[0] = 110.0
    tracker.update(10)
    assert seen[-1][0] == pytest.approx(0.3)
    assert seen[-1][1] == "subjects 10/40 · 10 s elapsed · ETA 30 s"
    assert tracker.eta_s == pytest.approx(30.0)
    now[0] = 200.0
    tracker.update(50)  # clamped to the total
    assert seen[-1] == (pytest.approx(0.9), "subjects 40/40 · 1 min 40 s elapsed · ETA 0 s")
    assert format_seconds(3599.6) == "60 min 00 s"


def test_generator_and_morphometry_do_not_import_each_other():
    import ast
    from pathlib import Path

    import brainlab.data.phantom as package

    folder = Path(package.__file__).parent
    for name, other in (("generator", "morphometry"), ("morphometry", "generator")):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = set()
        for node in ast.walk(tree):  # module-level and function-level imports alike
            if isinstance(node, ast.ImportFrom):
                imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        assert not any(m.endswith((f"phantom.{other}", "phantom.build")) for m in imported), name


def test_bench_report_puts_each_figure_beside_its_goal():
    from brainlab.bench.cohort import format_report

    result = {"preset": "hcp-ya", "n_subjects": 1113, "grid": [58, 70, 58], "fingerprint": "f",
              "cold_build_s": 30.0, "cold_build_cpu_s": 55.0, "warping_floor_s": 12.0,
              "warping_floor_one_thread_s": 20.0, "floor_threads": 2, "floor_ratio": 2.5,
              "floor_ratio_goal": 2.0, "warm_load_s": 0.1, "import_s": 1.0,
              "peak_memory_mb_build": 1500.0, "peak_memory_mb_warm": 200.0, "cpu_count": 2,
              "torch_threads": 2, "load_average_before": [0.5], "load_average_after": [1.5]}
    text = format_report(result)
    assert "2.50 x   goal <= 2 x: MISSED" in text
    assert "goal <= 2048 MB: met" in text and "goal <= 1 s: met" in text
    assert "busy" not in text
    text = format_report(dict(result, floor_ratio=1.8, load_average_after=[5.0]))
    assert "goal <= 2 x: met" in text and "busy" in text


def test_linear_upsampling_matches_interpolate():
    import torch
    import torch.nn.functional as F

    from brainlab.data.phantom.generator import upsample_linear

    fields = torch.randn(2, 3, 4, 5, 6)
    expected = F.interpolate(fields, size=(12, 14, 16), mode="trilinear", align_corners=True)
    torch.testing.assert_close(upsample_linear(fields, (12, 14, 16)), expected,
                               atol=1e-5, rtol=1e-5)


def test_rendering_the_reachable_region_equals_the_whole_grid(monkeypatch):
    import torch

    from brainlab.data.phantom import generator
    from brainlab.data.phantom.anatomy import load_anatomy

    anatomy = load_anatomy(TINY.grid_shape)
    basis = generator.warp_basis(anatomy)
    rows = generator.sample_subjects(TINY, anatomy).iloc[:6]
    regions = []
    original = generator.synthesis_region

    def spy(*args):
        regions.append(original(*args))
        return regions[-1]

    monkeypatch.setattr(generator, "synthesis_region", spy)
    with torch.no_grad():
        whole = generator.synthesize(basis, rows, TINY, restrict=False)
        torch.testing.assert_close(generator.synthesize(basis, rows, TINY), whole)
        region = regions[-1]
        assert 0.1 < region.float().mean() < 0.95  # a real restriction that covers every brain
        assert not whole.reshape(6, -1)[:, ~region.reshape(-1)].any()
        # A region that cuts through the brains is detected: the whole grid is rendered.
        shrunk = region.clone()
        shrunk[: shrunk.shape[0] // 2] = False
        monkeypatch.setattr(generator, "synthesis_region", lambda *args: shrunk)
        torch.testing.assert_close(generator.synthesize(basis, rows, TINY), whole)


def test_a_subject_measures_the_same_alone_or_in_a_batch(tiny):
    """The table must not depend on a build's chunking or worker count: the measurement's
    sums run over the batch's union of voxels, so they need float64."""
    import torch

    from brainlab.data.phantom.anatomy import load_anatomy
    from brainlab.data.phantom.build import morphometer as shared_morphometer

    morphometer = shared_morphometer(load_anatomy(tuple(tiny.grid_shape)))
    images = torch.from_numpy(np.asarray(tiny.images._stored[:12], dtype=np.float32))
    together = morphometer.measure(images)
    for i in (0, 5, 11):
        alone = morphometer.measure(images[i:i + 1])
        pd.testing.assert_frame_equal(alone.reset_index(drop=True),
                                      together.iloc[[i]].reset_index(drop=True),
                                      rtol=1e-7, obj=f"subject {i}")
