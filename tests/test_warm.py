"""``python -m brainlab warm`` on the tiny phantom, and the shared analyses it fills."""

import json

import numpy as np
import pandas as pd
import pytest

from brainlab.analysis.probes import SEED_COLUMN
from brainlab import background
from brainlab.__main__ import main
from brainlab.analysis import derived_results
from brainlab.result_store import ResultStore


@pytest.fixture
def fixture_models_only(tiny_checkpoints, monkeypatch, tmp_path):
    """Only the tiny fixture's checkpoints are listed, and a fresh result store."""
    from brainlab import paths, result_store

    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", tmp_path / "no-shipped")
    store = ResultStore(tmp_path / "results")
    monkeypatch.setattr(result_store, "_default_store", store)
    return store


def _run_warm(capsys) -> dict:
    code = main(["warm", "--cohort", "tiny", "--json"])
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{"):])
    assert code == 0, summary["failed"]
    return summary


@pytest.mark.usefixtures("one_torch_thread")
def test_warm_computes_everything_once_then_finds_it(fixture_models_only, tiny, capsys):
    first = _run_warm(capsys)
    assert first["failed"] == {} and first["hits"] == []
    labels = " | ".join(first["computed"])
    for expected in ("cohort mean brains", "latents: raw MRI voxels", "UMAP 3D: MRI-AE latent",
                     "probes: morph-AE latent",
                     "reconstructions: mri-ae", "GAN samples", "real vs synthetic: sex-clf",
                     "directions (real)", "edit curve", "evaluation: gan"):
        assert expected in labels
    assert first["items"] == len(first["computed"])

    second = _run_warm(capsys)
    assert second["computed"] == [] and sorted(second["hits"]) == sorted(first["computed"])

    # A page asking with the same defaults gets the stored result, no recomputation.
    store = fixture_models_only
    checkpoints = derived_results.default_checkpoints(tiny)
    hits = store.hits
    table = derived_results.probe_table(tiny, "mri-ae", checkpoints["mri-ae"])
    assert store.hits == hits + 1
    assert set(table.representation) == {"raw MRI", "mri-ae latent"}
    assert SEED_COLUMN in table.columns
    coords = derived_results.projection(tiny, "voxels", method="umap", dims=2)
    assert coords.shape == (len(tiny), 2) and np.isfinite(coords).all()
    errors = derived_results.reconstructions(tiny, checkpoints["mri-ae"])
    assert isinstance(errors, pd.DataFrame) and (errors["ssim"] <= 1).all()
    comparison = derived_results.real_vs_synthetic(tiny, checkpoints["sex-clf"], checkpoints["gan"])
    assert comparison["samples"].shape[1:] == tiny.grid_shape
    assert comparison["summary"]["n_synthetic"] == derived_results.COMPARE_SAMPLES
    means = derived_results.cohort_means(tiny)  # from the store, as the pages read them
    assert set(means["sex"]) == {"F", "M"} and means["sex"]["F"].shape == tiny.grid_shape
    assert sum(means["sex_counts"].values()) == len(tiny)


@pytest.mark.usefixtures("one_torch_thread")
def test_background_probe_table_fills_row_by_row_and_lands_in_the_store(fixture_models_only, tiny):
    store = fixture_models_only
    checkpoints = derived_results.default_checkpoints(tiny)
    key = derived_results.probe_table_key(tiny, "morph-ae", checkpoints["morph-ae"])
    runner = background.BackgroundRunner()
    task = runner.submit(key, derived_results.probe_table, tiny, "morph-ae",
                         checkpoints["morph-ae"], n_jobs=1)
    again = runner.submit(key, derived_results.probe_table, tiny, "morph-ae",
                          checkpoints["morph-ae"], n_jobs=1)
    assert again is task
    table = task.wait(120)
    assert len(task.snapshot()["partial"]) == len(table)
    assert task.snapshot()["partial"][0]["representation"] == table.representation.iloc[0]
    assert store.contains(key)


def test_shared_analyses_reject_the_wrong_checkpoint(fixture_models_only, tiny):
    from brainlab.errors import BrainlabInputError

    checkpoints = derived_results.default_checkpoints(tiny)
    with pytest.raises(BrainlabInputError, match="needs a checkpoint of type mri-ae"):
        derived_results.latents(tiny, "mri-ae", checkpoints["gan"])
    with pytest.raises(BrainlabInputError, match="gan or dcgan-seed"):
        derived_results.gan_samples(checkpoints["mri-ae"])
    with pytest.raises(BrainlabInputError, match="start must be"):
        derived_results.edit_curve(tiny, checkpoints["gan"], "age", start="7",
                                   encoder=checkpoints["encoder"], sex_model=checkpoints["sex-clf"])


def test_request_runs_in_the_background_and_joins_the_same_task(fixture_models_only, tiny):
    from brainlab.errors import BrainlabInputError

    task = derived_results.request(derived_results.projection, tiny, "morphometry", None,
                                   method="pca", dims=3)
    same = derived_results.request(derived_results.projection, tiny, "morphometry", None,
                                   method="pca", dims=3)
    assert same is task
    coords = task.wait(60)
    assert coords.shape == (len(tiny), 3)
    key = derived_results.result_key(derived_results.projection, tiny, "morphometry", None,
                                     method="pca", dims=3)
    assert fixture_models_only.contains(key) and str(key) == task.key
    with pytest.raises(BrainlabInputError, match="not a derived result"):
        derived_results.request(print, tiny)


def test_run_plan_starts_an_item_only_after_the_results_it_reads():
    import threading
    import time

    from brainlab.result_store import ResultKey

    keys = {name: ResultKey("test", settings={"name": name}) for name in "abcdx"}
    events, lock = [], threading.Lock()

    def item(name, needs=()):
        return derived_results.WarmItem(name, keys[name], None, 1.0, tuple(keys[n] for n in needs))

    def run(planned):
        with lock:
            events.append(("start", planned.label))
        time.sleep(0.2 if planned.label == "a" else 0.01)
        with lock:
            events.append(("end", planned.label))

    # "b" reads "a"; "d" reads a result that is not planned (already stored): no wait.
    derived_results.run_plan([item("b", "a"), item("a"), item("c"), item("d", "x")],
                             run, workers=2)
    assert sorted(label for kind, label in events if kind == "end") == ["a", "b", "c", "d"]
    assert events.index(("start", "b")) > events.index(("end", "a"))
    assert events.index(("start", "c")) < events.index(("end", "a"))  # two lanes at once


@pytest.mark.usefixtures("one_torch_thread")
def test_encoder_latents_reuse_the_autoencoder_codes(fixture_models_only, tiny):
    from brainlab.analysis.latents import encode_cohort

    store = fixture_models_only
    checkpoints = derived_results.default_checkpoints(tiny)
    encoder = checkpoints["encoder"].model
    mri_ae = derived_results.latents(tiny, "mri-ae", checkpoints["mri-ae"])
    z = derived_results.latents(tiny, "encoder", checkpoints["encoder"])
    np.testing.assert_allclose(z, encode_cohort(encoder, tiny), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mri_ae, encode_cohort(checkpoints["mri-ae"].model, tiny),
                               rtol=1e-5, atol=1e-5)
    # One set of codes per distinct autoencoder: shared when the GAN's is the MRI-AE.
    same = (derived_results.weights_digest(encoder.gan.autoencoder)
            == derived_results.weights_digest(checkpoints["mri-ae"].model))
    assert len(list((store.root / "autoencoder-codes").iterdir())) == (1 if same else 2)
