"""Probe table and projections."""

import os
import sys
import types

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from brainlab.analysis.probes import SEED_COLUMN
from brainlab.analysis.probes import (COLUMNS, SEED_STUDY_REFERENCE,
                                      probe_table, reduce_wide_features, seed_reference,
                                      with_seed_reference)
from brainlab.analysis.projections import explained_variance, project
from brainlab.errors import BrainlabInputError


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Tiny matrices: threaded BLAS only adds contention on a shared CPU."""
    with threadpool_limits(limits=1):
        yield


def _planted(n=120, d=6, seed=0):
    """Features where column 0 carries sex and column 1 carries a 3-level age bin."""
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, n)
    age_bin = rng.integers(0, 3, n)
    x = rng.normal(size=(n, d))
    x[:, 0] += 3.0 * sex
    x[:, 1] += 3.0 * age_bin
    return x, {"sex": sex, "age bin": age_bin}, rng


def test_probe_table_planted_signal_beats_chance():
    x, labels, rng = _planted()
    table = probe_table({"raw": x, "noise": rng.normal(size=x.shape)}, labels, n_splits=4)
    assert list(table.columns) == COLUMNS
    # 2 representations x (4 binary rows + 6 multiclass rows).
    assert len(table) == 2 * (4 + 6)
    age_rows = table[(table.target == "age bin") & (table.model == "logistic regression")]
    assert set(age_rows.strategy) == {"multiclass", "one-vs-rest", "one-vs-one"}
    raw = table[table.representation == "raw"]
    assert (raw.accuracy_mean > raw.chance + 0.15).all(), raw
    noise = table[table.representation == "noise"]
    assert (noise.accuracy_mean < noise.chance + 0.15).all(), noise
    assert (table.n == 120).all() and (table.n_splits == 4).all()
    assert (table.accuracy_sd >= 0).all()


def test_probe_table_shuffled_labels_stay_at_chance():
    x, labels, rng = _planted(seed=1)
    shuffled = {name: rng.permutation(y) for name, y in labels.items()}
    table = probe_table({"raw": x}, shuffled, n_splits=4)
    assert (table.accuracy_mean < table.chance + 0.15).all(), table
    assert (table.balanced_accuracy_mean < 0.5 + 0.15).all()


def test_probe_table_is_reproducible_and_reduces_wide_features():
    x, labels, rng = _planted(n=60)
    wide = np.hstack([x, rng.normal(size=(60, 250))])
    first = probe_table({"raw": wide}, {"sex": labels["sex"]}, n_splits=3, seed=7)
    second = probe_table({"raw": wide}, {"sex": labels["sex"]}, n_splits=3, seed=7)
    np.testing.assert_array_equal(first.accuracy_mean, second.accuracy_mean)


def test_probe_table_rows_arrive_one_by_one_and_parallel_rows_match():
    x, labels, rng = _planted(n=40)
    wide = np.hstack([x, rng.normal(size=(40, 250))])
    rows, fractions = [], []
    fast = ("logistic regression", "KNN")
    serial = probe_table({"raw": wide, "latent": x}, labels, n_splits=3, models=fast,
                         on_row=rows.append,
                         progress=lambda fraction, message="": fractions.append(fraction))
    assert len(rows) == len(serial) == 2 * (2 + 4)
    assert [r["model"] for r in rows] == serial.model.tolist()
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    parallel = probe_table({"raw": wide, "latent": x}, labels, n_splits=3, models=fast, n_jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)
    with pytest.raises(BrainlabInputError, match="n_jobs must be >= 1"):
        probe_table({"raw": x}, labels, n_jobs=0)


def test_wide_features_are_reduced_once_without_labels(monkeypatch):
    from brainlab.analysis import probes

    monkeypatch.setattr(probes, "PCA_ABOVE_DIMS", 20)
    monkeypatch.setattr(probes, "PRE_PCA_COMPONENTS", 30)
    rng = np.random.default_rng(0)
    wide = rng.normal(size=(60, 50))
    reduced = reduce_wide_features(wide)
    assert reduced.shape == (60, 30)
    np.testing.assert_allclose(reduced.mean(axis=0), 0, atol=1e-4)  # centred components
    narrow = rng.normal(size=(60, 12))
    np.testing.assert_array_equal(reduce_wide_features(narrow), narrow)
    few = rng.normal(size=(18, 50))  # fewer subjects than a useful first step needs
    np.testing.assert_array_equal(reduce_wide_features(few), few)


def test_probe_table_lowers_folds_for_small_classes():
    x, labels, _ = _planted(n=40)
    y = labels["sex"].copy()
    y[:] = 0
    y[:3] = 1
    table = probe_table({"raw": x}, {"sex": y}, n_splits=5)
    assert (table.n_splits == 3).all()


def test_probe_table_errors():
    x, labels, _ = _planted(n=20)
    with pytest.raises(BrainlabInputError, match="one class only"):
        probe_table({"raw": x}, {"sex": np.zeros(20, int)})
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(BrainlabInputError, match="NaN"):
        probe_table({"raw": bad}, labels)
    with pytest.raises(BrainlabInputError, match="expected 20"):
        probe_table({"raw": x, "latent": x[:19]}, labels)
    with pytest.raises(BrainlabInputError, match="with 20 entries"):
        probe_table({"raw": x}, {"sex": labels["sex"][:19]})
    single = labels["sex"].copy()
    single[:] = 0
    single[0] = 1
    with pytest.raises(BrainlabInputError, match="needs? >= 2 per class"):
        probe_table({"raw": x}, {"sex": single})
    with pytest.raises(BrainlabInputError, match="models must be a non-empty subset"):
        probe_table({"raw": x}, labels, models=("svm",))


def test_probe_table_model_subset():
    x, labels, _ = _planted(n=40)
    table = probe_table({"raw": x}, labels, n_splits=3, models=("KNN",))
    assert set(table.model) == {"KNN"} and len(table) == 2


def test_seed_reference_column():
    assert seed_reference("raw morphometry", "sex", "logistic regression") == "0.919"
    assert seed_reference("morph-ae latent", "sex", "logistic regression") == "0.856"
    assert seed_reference("raw MRI", "sex", "logistic regression") == "0.937"
    assert seed_reference("mri-ae latent", "sex", "logistic regression") == "0.94"
    assert seed_reference("raw", "age bin", "logistic regression") == "≈0.44–0.47"
    assert seed_reference("raw", "sex", "random forest") is None
    assert len(SEED_STUDY_REFERENCE) == 5
    x, labels, _ = _planted(n=30)
    table = with_seed_reference(probe_table({"raw MRI": x}, {"sex": labels["sex"]}, n_splits=3))
    lr = table[table.model == "logistic regression"]
    assert lr[SEED_COLUMN].tolist() == ["0.937"]


def test_seed_reference_says_when_ours_is_near_chance():
    """A near-chance number beside the study's figure is labelled, not passed as agreement."""
    x, labels, _ = _planted(n=40)
    noise = np.random.default_rng(3).normal(size=x.shape)
    table = with_seed_reference(probe_table({"raw MRI": x, "noise MRI": noise},
                                            {"sex": labels["sex"]}, n_splits=3,
                                            models=("logistic regression",)))
    texts = dict(zip(table.representation, table[SEED_COLUMN]))
    assert texts["raw MRI"] == "0.937"
    assert texts["noise MRI"].startswith("0.937") and "near chance" in texts["noise MRI"]


def test_family_grouped_folds_keep_each_family_in_one_fold():
    x, labels, _ = _planted(n=48)
    families = np.repeat(np.arange(16), 3)
    table = probe_table({"raw": x}, {"sex": labels["sex"]}, n_splits=4,
                        models=("logistic regression",), groups=families)
    assert set(table["folds"]) == {"stratified, family-grouped"}
    plain = probe_table({"raw": x}, {"sex": labels["sex"]}, n_splits=4,
                        models=("logistic regression",))
    assert set(plain["folds"]) == {"stratified"}
    from brainlab.analysis.probes import _folds

    for train, test in _folds(labels["sex"], 48, 4, 0, families):
        assert not set(families[train]) & set(families[test])
    with pytest.raises(BrainlabInputError, match="groups"):
        probe_table({"raw": x}, {"sex": labels["sex"]}, n_splits=4, groups=families[:10])
    with pytest.raises(BrainlabInputError, match="families"):
        probe_table({"raw": x}, {"sex": labels["sex"]}, n_splits=4, groups=np.zeros(48) % 2)


@pytest.mark.parametrize("k", [2, 3])
def test_pca_projection(k):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5)) * [100, 1, 1, 1, 1]
    coords = project(x, method="pca", n_components=k)
    assert coords.shape == (30, k) and coords.dtype == np.float32
    # Standardised first: the large-unit column does not take the first component alone.
    ratios = explained_variance(x, 5)
    assert ratios.shape == (5,) and ratios[0] < 0.5
    assert project(x[:, :1], n_components=k).shape == (30, k)  # padded with zeros


class _RecordingUMAP:
    """Stands in for umap.UMAP: records its settings and input, returns the first columns."""

    calls: list = []

    def __init__(self, **settings):
        self.settings = settings

    def fit_transform(self, x):
        _RecordingUMAP.calls.append((self.settings, x.shape))
        return x[:, : self.settings["n_components"]]


def test_umap_settings_reach_umap(monkeypatch):
    fake = types.ModuleType("umap")
    fake.UMAP = _RecordingUMAP
    monkeypatch.setitem(sys.modules, "umap", fake)
    _RecordingUMAP.calls.clear()
    x = np.random.default_rng(2).normal(size=(12, 80))
    coords = project(x, method="umap", n_components=3, seed=5, umap_neighbors=30, umap_min_dist=0.3)
    assert coords.shape == (12, 3) and coords.dtype == np.float32
    settings, shape = _RecordingUMAP.calls[-1]
    assert settings["n_neighbors"] == 11  # capped at n - 1
    assert settings["random_state"] == 5 and settings["min_dist"] == 0.3
    assert shape == (12, 12)  # wide input reduced by PCA (at most n components) first


@pytest.mark.skipif(not os.environ.get("BRAINLAB_TEST_SLOW"),
                    reason="real UMAP compiles with numba for 15-45 s; set BRAINLAB_TEST_SLOW=1")
def test_umap_projection_is_seeded():
    pytest.importorskip("umap")
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal(size=(20, 60)), rng.normal(size=(20, 60)) + 4])
    first = project(x, method="umap", n_components=2, seed=3, umap_neighbors=8)
    second = project(x, method="umap", n_components=2, seed=3, umap_neighbors=8)
    assert first.shape == (40, 2)
    np.testing.assert_allclose(first, second)
    # The two clusters stay apart.
    gap = np.linalg.norm(first[:20].mean(0) - first[20:].mean(0))
    assert gap > 2 * first[:20].std(0).max()


def test_projection_errors():
    x = np.ones((10, 3))
    with pytest.raises(BrainlabInputError, match="must be 2 or 3"):
        project(x, n_components=4)
    with pytest.raises(BrainlabInputError, match="'pca' or 'umap'"):
        project(x, method="tsne")
    with pytest.raises(BrainlabInputError, match="NaN"):
        project(np.full((10, 3), np.nan))
    with pytest.raises(BrainlabInputError, match="at least 4 subjects"):
        project(x[:3], method="umap")


def test_the_once_per_table_reduction_matches_per_fold_pca_of_the_wide_features(monkeypatch):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from brainlab.analysis import probes

    monkeypatch.setattr(probes, "PCA_ABOVE_DIMS", 30)
    monkeypatch.setattr(probes, "PCA_COMPONENTS", 5)
    monkeypatch.setattr(probes, "PRE_PCA_COMPONENTS", 70)
    rng = np.random.default_rng(3)
    n = 90
    sex = rng.integers(0, 2, n)
    # Sex rides on a strong shared component spread over many features, as head size
    # does over voxels; the rest is noise.
    wide = rng.normal(size=(n, 120)) + np.outer(2.0 * sex + rng.normal(size=n), rng.uniform(0.5, 1, 120))
    table = probe_table({"raw": wide}, {"sex": sex}, n_splits=3, models=("logistic regression",))
    assert table.accuracy_mean.iloc[0] > 0.75
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(wide, sex))
    per_fold = cross_val_score(make_pipeline(StandardScaler(), PCA(5, random_state=0),
                                             LogisticRegression(max_iter=2000)), wide, sex, cv=folds)
    assert table.accuracy_mean.iloc[0] == pytest.approx(per_fold.mean(), abs=0.05)


def test_forests_halve_their_bootstrap_only_for_large_folds():
    from brainlab.analysis.probes import HALF_BOOTSTRAP_FROM, _estimator

    small = _estimator("random forest", "binary", 0, HALF_BOOTSTRAP_FROM - 1)
    large = _estimator("random forest", "binary", 0, HALF_BOOTSTRAP_FROM)
    assert small.max_samples is None and large.max_samples == 0.5
    assert small.n_estimators == large.n_estimators == 100
