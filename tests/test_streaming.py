"""Streaming from disk: cohorts keep images in memory-mapped files, batches read only their
rows, and DataLoader workers (``loader_workers``) give exactly the batches of the loop."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from brainlab.config import TrainConfig
from brainlab.data.batches import CohortBatches
from brainlab.data.cohort import ImageArray
from brainlab.training import build_model, fit, seed_everything


@pytest.fixture(scope="module")
def tiny():
    from brainlab.data.sources import load

    return load("tiny")


def _stack_bytes(images: ImageArray) -> int:
    return int(np.prod(images.shape)) * 2  # at least 2 bytes per stored voxel


def test_phantom_images_are_file_backed_and_pickle_by_file(tiny):
    images = tiny.images
    payload = pickle.dumps(images)
    assert len(payload) < _stack_bytes(images) / 20  # a file name, not the voxels
    again = pickle.loads(payload)
    rows = [7, 2, 19]
    np.testing.assert_array_equal(again[rows], images[rows])
    assert again[rows].shape == (3, 12, 14, 16)


def test_in_memory_images_still_pickle_by_value():
    stored = np.random.default_rng(0).random((3, 12, 14, 16)).astype(np.float32)
    again = pickle.loads(pickle.dumps(ImageArray(stored, scale=0.5)))
    np.testing.assert_array_equal(again[[2, 0]], 0.5 * stored[[2, 0]])


def test_nifti_folder_cohort_reads_from_a_memory_mapped_cache(small_cohort, tmp_path):
    from brainlab.data.export import export_cohort
    from brainlab.data.nifti import load_nifti_folder

    folder = export_cohort(small_cohort, tmp_path / "bids")
    cohort = load_nifti_folder(folder, grid_shape=(12, 14, 16))
    assert len(cohort) == len(small_cohort)
    assert len(pickle.dumps(cohort.images)) < _stack_bytes(cohort.images) / 20
    first = cohort.index_of(small_cohort.subject_ids[5])
    np.testing.assert_allclose(cohort.images[first], small_cohort.images[5], atol=2e-3)


def _all_batches(batches, epochs=(0, 1)) -> list[dict]:
    out = []
    for epoch in epochs:
        batches.set_epoch(epoch)
        out += [dict(batch, rows=batches.rows_in_last_batch) for batch in batches]
    return out


@pytest.mark.parametrize("rank, world_size", [(0, 1), (1, 2)])
def test_loader_workers_give_the_batches_of_the_loop(tiny, rank, world_size):
    indices = np.arange(1, 22)
    options = dict(shuffle=True, seed=4, augment_noise_sd=0.05, rank=rank,
                   world_size=world_size)
    direct = _all_batches(CohortBatches(tiny, indices, 4, **options))
    workers = _all_batches(CohortBatches(tiny, indices, 4, num_workers=2, **options))
    assert len(direct) == len(workers) == 2 * 6
    for a, b in zip(direct, workers):
        assert a.keys() == b.keys()
        for key in a:
            if torch.is_tensor(a[key]):
                torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, equal_nan=True)
            else:
                assert a[key] == b[key]
    assert not torch.equal(direct[0]["image"], direct[6]["image"])  # epochs differ


def test_fit_with_loader_workers_trains_the_same_model(small_cohort, tmp_path):
    config = dict(epochs=2, batch_size=6, num_threads=1, max_eval_subjects=None, minutes=None)
    weights = []
    for workers in (0, 2):
        seed_everything(0)
        model = build_model("morph-ae", small_cohort)
        fit(model, small_cohort, train_config=TrainConfig(**config, loader_workers=workers))
        weights.append(model.state_dict())
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=0, atol=0)


def test_autoencoder_statistics_of_a_large_cohort_are_fitted_chunk_by_chunk(tiny):
    from brainlab.training.steps import AutoencoderSteps

    statistics = []
    for streaming_above in (10_000, 5):  # in memory, then IncrementalPCA over chunks of 4+
        model = build_model("mri-ae", tiny)
        steps = AutoencoderSteps(model)
        steps.streaming_pca_above = streaming_above
        steps.fit_statistics(tiny, np.arange(1, 21), chunk=4)
        statistics.append({k: v.clone() for k, v in model.state_dict().items()
                           if k in ("mean", "basis")})
    in_memory, streamed = statistics
    assert in_memory.keys() == streamed.keys() == {"mean", "basis"}
    torch.testing.assert_close(streamed["mean"], in_memory["mean"])
    # Principal axes agree up to sign (both fits flip signs the same way).
    torch.testing.assert_close(streamed["basis"].abs(), in_memory["basis"].abs(),
                               rtol=1e-3, atol=1e-4)
    assert streamed["basis"].abs().sum() > 0
