"""The pretrained models in checkpoints/: present, small, built for today's phantom,
and still as good as their cards say when re-evaluated on the whole held-out test split."""

from __future__ import annotations

import numpy as np
import pytest

from brainlab.analysis.evaluation import evaluate_model
from brainlab.checkpoints import available, load_checkpoint, read_card
from brainlab.data.phantom import PHANTOM_PRESETS, fingerprint
from brainlab.paths import SHIPPED_CHECKPOINTS

# Shipped folder -> (model type, phantom preset it was trained on).
SHIPPED = {
    "mri-ae": ("mri-ae", "hcp-ya"), "morph-ae": ("morph-ae", "hcp-ya"), "gan": ("gan", "hcp-ya"),
    "encoder": ("encoder", "hcp-ya"), "sex-clf": ("sex-clf", "hcp-ya"),
    "age-model": ("age-model", "hcp-ya"), "age-model-lifespan": ("age-model", "lifespan"),
    "gan-lifespan": ("gan", "lifespan"),
}
MAX_TOTAL_MB = 60

# Re-evaluated on the card's whole held-out test split, so the figure must equal the
# card's up to float rounding: a card off by 0.05 fails. (metric, absolute tolerance)
TOLERANCES = {
    "mri-ae": ("ssim", 0.01),
    "morph-ae": ("mean_r2", 0.01),
    "sex-clf": ("balanced_accuracy", 0.02),
    "age-model": ("balanced_accuracy", 0.02),
    "age-model-lifespan": ("mae", 0.05),
    "encoder": ("direct_ssim", 0.01),
}


def shipped() -> dict[str, dict]:
    """Shipped checkpoints by folder name."""
    return {entry["path"].rstrip("/").split("/")[-1]: entry
            for entry in available([SHIPPED_CHECKPOINTS])}


def test_every_model_is_shipped_and_small():
    entries = shipped()
    assert sorted(entries) == sorted(SHIPPED), f"shipped: {sorted(entries)}"
    for folder, (model_type, _) in SHIPPED.items():
        assert entries[folder]["model_type"] == model_type
    total = sum(f.stat().st_size for f in SHIPPED_CHECKPOINTS.rglob("*") if f.is_file())
    assert total < MAX_TOTAL_MB * 2 ** 20, f"checkpoints/ holds {total / 2**20:.1f} MB"


@pytest.mark.parametrize("folder", sorted(SHIPPED))
def test_card_is_honest_and_matches_todays_phantom(folder):
    entry = shipped()[folder]
    preset = SHIPPED[folder][1]
    expected = fingerprint(PHANTOM_PRESETS[preset])
    assert entry["fingerprint"] == expected, (
        f"{folder} was trained on phantom {entry['fingerprint']}, today's {preset} is "
        f"{expected}: retrain it (README, 'Shipped models')")
    metrics = entry["metrics"]
    # Measured on the whole held-out test split, and the card says how many subjects that is.
    test_size = read_card(entry["path"])["cohort"]["split_sizes"]["test"]
    assert metrics.get("split") == "test" and metrics.get("n") == test_size >= 50
    assert entry["quality"] in ("good", "fair", "poor") and entry["quality_sentence"]
    # Every shipped card stands beside its baselines (evaluate --write-card).
    assert "no baseline recorded" not in entry["quality_sentence"], entry["quality_sentence"]
    # (training's final evaluation records them; `evaluate --write-card` says so too)
    evaluated = read_card(entry["path"]).get("evaluated", {"with_baselines": True})
    assert evaluated["with_baselines"]
    assert any(key.startswith(("baseline_", "gaussian_")) for key in metrics), sorted(metrics)


_COHORTS: dict = {}


def cohort_for(folder: str):
    """The phantom a shipped folder was trained on (built once per test session)."""
    from brainlab.data import load

    preset = SHIPPED[folder][1]
    if preset not in _COHORTS:
        _COHORTS[preset] = load(preset)
    return _COHORTS[preset]


def _card_split(folder):
    entry = shipped()[folder]
    cohort = cohort_for(folder)
    model, card = load_checkpoint(entry["path"], cohort=cohort)
    return model, card, cohort, cohort.split(card["cohort"]["split_seed"])


@pytest.mark.parametrize("folder", sorted(TOLERANCES))
def test_reevaluation_on_the_test_split_reproduces_the_card(folder):
    from brainlab.analysis.evaluation import _RowView, evaluate_encoder, reconstruct
    from brainlab.analysis.metrics import mean_brain_mask, masked_reconstruction_metrics

    model, card, cohort, split = _card_split(folder)
    metric, tolerance = TOLERANCES[folder]
    if metric not in card["metrics"] and folder == "age-model":
        metric, tolerance = "mae", 0.05  # an age model in years
    test = np.sort(split.test)
    if folder == "mri-ae":  # the card's in-brain SSIM alone (its baselines cost minutes)
        originals, recons = reconstruct(model, cohort, test)
        mask = mean_brain_mask(_RowView(cohort.images, split.train))
        now = masked_reconstruction_metrics(originals, recons, mask)
    elif folder == "encoder":  # the direct fidelity covers every test subject
        now = evaluate_encoder(model, cohort, test, max_refined=1, refine_steps=1)
    else:
        now = evaluate_model(model, cohort, test)
    assert card["metrics"]["n"] == len(test)
    assert now[metric] == pytest.approx(card["metrics"][metric], abs=tolerance), (
        f"{folder}: {metric} {now[metric]:.4f} on the {len(test)} test subjects vs card "
        f"{card['metrics'][metric]:.4f}")


@pytest.mark.parametrize("folder", ["gan", "gan-lifespan"])
def test_gan_first_seed_normalised_frechet_reproduces_the_card(folder):
    """The GAN's normalised Fréchet of the card's first seed, recomputed on the same
    held-out brains and Fréchet features (a card off by 0.05 fails)."""
    from brainlab.analysis.evaluation import (FRECHET_TRAIN_FIT, _generate_in_chunks,
                                              heldout_rows, real_sets)
    from brainlab.analysis.metrics import fit_frechet_space, normalised_frechet

    model, card, cohort, split = _card_split(folder)
    metrics = card["metrics"]
    test = split.test
    _, heldout = real_sets(cohort, test, None, 0)
    condition = None
    if getattr(model, "conditional", False):
        table = cohort.table.iloc[heldout_rows(test, None, np.random.default_rng(0))]
        condition = model.subject_conditions(table["sex"], table["age"], table["age_bin"])
    z = model.sample_latent(len(heldout), 0)
    generated = _generate_in_chunks(model.decode, model.codes_from_latent(z, condition=condition))
    rng = np.random.default_rng(0)
    train = split.train
    fit_rows = (np.sort(rng.choice(train, FRECHET_TRAIN_FIT, replace=False))
                if len(train) > FRECHET_TRAIN_FIT else train)
    space = fit_frechet_space(cohort.images[fit_rows], seed=0)
    now = normalised_frechet(None, heldout, generated, seed=0, space=space)["normalised_frechet"]
    assert now == pytest.approx(metrics["normalised_frechet_per_seed"][0], abs=0.02)
    assert np.mean(metrics["normalised_frechet_per_seed"]) == pytest.approx(
        metrics["normalised_frechet"])
    # Judges beside their real-brain baseline are on the card of a conditional GAN.
    if getattr(model, "conditional", False):
        assert {"judge_p_male_M", "judge_p_male_F"} <= set(metrics)


@pytest.mark.parametrize("folder", ["gan", "gan-lifespan"])
def test_shipped_gans_generate_brains_on_the_cohort_grid(folder):
    gan, _ = load_checkpoint(shipped()[folder]["path"], cohort=cohort_for(folder))
    cohort = cohort_for(folder)
    volumes = gan.generate(gan.sample_latent(2, 0)).numpy()
    assert volumes.shape == (2, 1) + cohort.grid_shape
    # Brain-like: a non-empty foreground with a realistic share of the field of view.
    foreground = (volumes > 0.1).mean()
    real_foreground = (cohort.images[0] > 0.1).mean()
    assert 0.5 * real_foreground < foreground < 1.5 * real_foreground


@pytest.mark.parametrize("folder,target,keys", [
    ("sex-clf", "sex", ("balanced_accuracy", "roc_auc")),
    ("age-model", "age", ("mae",)),
    ("age-model-lifespan", "age", ("mae",)),
])
def test_cards_linear_baselines_are_reproduced_on_the_same_split(folder, target, keys):
    """The morphometry LR baselines are deterministic and cheap: recomputed on the card's
    split they give the card's numbers (within 0.02: a rebuilt phantom's table may move a
    subject or two), so a card off by 0.05 fails."""
    from brainlab.analysis.metrics import morphometry_baselines

    card = read_card(SHIPPED_CHECKPOINTS / folder)
    cohort = cohort_for(folder)
    split = cohort.split(card["cohort"]["split_seed"])
    found = morphometry_baselines(cohort, split.train, split.test, target)
    for label, prefix in (("icv_only", "baseline_icv_lr"),
                          ("all_features", "baseline_all_features_lr")):
        for key in keys:
            assert card["metrics"][f"{prefix}_{key}"] == pytest.approx(found[label][key],
                                                                        abs=0.02)

