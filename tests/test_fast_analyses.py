"""The fast paths of the analyses give the results of the direct computations."""

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA

from brainlab.analysis.memorisation import nearest_neighbour_distances
from brainlab.analysis.real_vs_synthetic import _centred_gram, _fold_pca_scores

SHAPE = (12, 14, 16)


def _direct_nearest(queries, reference):
    q = queries.reshape(len(queries), -1).astype(np.float64)
    r = reference.reshape(len(reference), -1).astype(np.float64)
    distances = np.sqrt(((q[:, None] - r[None]) ** 2).sum(-1))
    return distances.min(1) / np.sqrt(q.shape[1]), distances.argmin(1)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_nearest_neighbours_match_the_direct_search_and_copies_are_at_zero(chunk):
    rng = np.random.default_rng(0)
    reference = rng.random((30, *SHAPE), dtype=np.float32) + 5.0  # a large common offset
    queries = np.concatenate([reference[[4, 21]], rng.random((9, *SHAPE), dtype=np.float32) + 5.0])
    kept = reference.copy()
    distances, indices = nearest_neighbour_distances(queries, reference, chunk=chunk)
    expected_distances, expected_indices = _direct_nearest(queries, reference)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-12, atol=1e-12)
    assert distances[0] == 0.0 and distances[1] == 0.0
    np.testing.assert_array_equal(reference, kept)  # the caller's stack is not shifted


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_nearest_neighbours_over_brains_with_empty_background(chunk):
    """References zero outside a (per-volume) brain, queries with energy everywhere: the
    search over a block's non-zero voxels plus the queries' energy elsewhere is exact."""
    rng = np.random.default_rng(1)
    brains = rng.random((20, *SHAPE), dtype=np.float32) + 0.5
    masks = np.zeros((20, *SHAPE), dtype=bool)
    for i in range(20):
        masks[i, 2 + i % 3:9, 3:11 - i % 2, 4:12] = True
    reference = np.where(masks, brains, 0.0).astype(np.float32)
    reference[7] = 0.0  # an empty volume: a block may have no active voxel at all
    noisy = reference[[3, 12]] + 0.05 * rng.random((2, *SHAPE), dtype=np.float32)
    queries = np.concatenate([reference[[5]], noisy, rng.random((4, *SHAPE), dtype=np.float32)])
    distances, indices = nearest_neighbour_distances(queries, reference, chunk=chunk)
    expected_distances, expected_indices = _direct_nearest(queries, reference)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-12, atol=1e-12)
    assert distances[0] == 0.0 and list(indices[1:3]) == [3, 12]


def test_nearest_neighbours_reject_another_grid():
    from brainlab.errors import BrainlabInputError

    with pytest.raises(BrainlabInputError, match="voxels but reference has"):
        nearest_neighbour_distances(np.zeros((2, *SHAPE)), np.zeros((3, 12, 14, 15)))


def test_fold_pca_from_the_gram_matrix_equals_pca_fitted_on_the_fold():
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(40, 5)) @ rng.normal(size=(5, 300)) * 3
         + rng.normal(size=(40, 300)) + 2.0).astype(np.float32)
    train, test = np.arange(0, 40, 2)[:17], np.r_[np.arange(1, 40, 2), [38, 36]]
    train_scores, test_scores = _fold_pca_scores(_centred_gram(x), train, test, k=4)
    pca = PCA(n_components=4, svd_solver="full").fit(x[train].astype(np.float64))
    expected_train, expected_test = pca.transform(x[train]), pca.transform(x[test])
    signs = np.sign((train_scores * expected_train).sum(0))  # components are sign-free
    np.testing.assert_allclose(train_scores * signs, expected_train, atol=1e-3)
    np.testing.assert_allclose(test_scores * signs, expected_test, atol=1e-3)


def test_umap_input_reduction_is_computed_once_per_content():
    from brainlab.analysis.projections import UMAP_PCA_ABOVE_DIMS, _pca, _standardized, umap_input

    rng = np.random.default_rng(5)
    voxels = rng.random((23, 120)).astype(np.float32)
    first = umap_input(voxels, seed=0)
    assert first.shape == (23, min(UMAP_PCA_ABOVE_DIMS, 23))
    assert umap_input(voxels.copy(), seed=0) is first  # same content: the cached reduction
    np.testing.assert_allclose(first, _pca(_standardized(voxels), UMAP_PCA_ABOVE_DIMS, 0))
    changed = voxels.copy()
    changed[0, 0] += 1.0
    assert umap_input(changed, seed=0) is not first


def test_umap_input_rejects_non_finite_features():
    from brainlab.analysis.projections import umap_input
    from brainlab.errors import BrainlabInputError

    voxels = np.ones((9, 80))
    voxels[2, 3] = np.nan
    with pytest.raises(BrainlabInputError, match="NaN or infinite"):
        umap_input(voxels)


def test_probe_rows_started_longest_first_come_back_in_table_order():
    from brainlab.analysis.probes import probe_table

    rng = np.random.default_rng(2)
    labels = {"sex": np.tile([0, 1], 20), "age bin": np.tile([0, 1, 2, 3], 10)}
    features = {"raw": rng.normal(size=(40, 5)) + labels["sex"][:, None]}
    seen = []
    parallel = probe_table(features, labels, n_splits=3, n_jobs=2, on_row=seen.append)
    sequential = probe_table(features, labels, n_splits=3, n_jobs=1)
    pd.testing.assert_frame_equal(parallel, sequential)
    assert sorted(map(str, seen)) == sorted(map(str, sequential.to_dict(orient="records")))
    # Both processes start on a forest (the costliest rows), so one finishes first.
    assert seen[0]["model"] == "random forest"
