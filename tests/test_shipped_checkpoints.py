"""The pretrained models in checkpoints/: present, small, built for today's phantom,
and still as good as their cards say when re-evaluated on a held-out subset."""

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
}
MAX_TOTAL_MB = 60
SUBSET = 12  # held-out subjects re-evaluated per model (keeps CI fast)

# How far a subset's figure may sit from the card's full held-out figure.
TOLERANCES = {
    "mri-ae": ("ssim", 0.05),
    "morph-ae": ("mean_r2", 0.15),
    "sex-clf": ("accuracy", 0.25),
    "age-model": ("accuracy", 0.35),
    "encoder": ("direct_ssim", 0.06),
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
    assert read_card(entry["path"])["evaluated"]["with_baselines"]


@pytest.fixture(scope="module")
def hcp_ya():
    from brainlab.data import load

    return load("hcp-ya")


@pytest.mark.parametrize("model_type", sorted(TOLERANCES))
def test_reevaluation_on_a_subset_agrees_with_the_card(model_type, hcp_ya):
    entry = shipped()[model_type]
    model, card = load_checkpoint(entry["path"], cohort=hcp_ya)
    test_rows = hcp_ya.split(card["cohort"]["split_seed"]).test
    subset = np.random.default_rng(0).choice(test_rows, SUBSET, replace=False)
    metric, tolerance = TOLERANCES[model_type]
    if model_type == "age-model" and card["metrics"].get("mae") is not None:
        metric, tolerance = "mae", 1.5
    now = evaluate_model(model, hcp_ya, np.sort(subset))
    assert now[metric] == pytest.approx(card["metrics"][metric], abs=tolerance), (
        f"{model_type}: {metric} {now[metric]:.3f} on {SUBSET} subjects vs card "
        f"{card['metrics'][metric]:.3f}")


def test_shipped_gan_generates_brains_on_the_cohort_grid(hcp_ya):
    gan, card = load_checkpoint(shipped()["gan"]["path"], cohort=hcp_ya)
    volumes = gan.generate(gan.sample_latent(2, 0)).numpy()
    assert volumes.shape == (2, 1) + hcp_ya.grid_shape
    # Brain-like: a non-empty foreground with a realistic share of the field of view.
    foreground = (volumes > 0.1).mean()
    real_foreground = (hcp_ya.images[0] > 0.1).mean()
    assert 0.5 * real_foreground < foreground < 1.5 * real_foreground


@pytest.mark.parametrize("folder,target,keys", [
    ("sex-clf", "sex", ("balanced_accuracy", "roc_auc")),
    ("age-model", "age", ("mae",)),
    ("age-model-lifespan", "age", ("mae",)),
])
def test_cards_linear_baselines_are_reproduced_on_the_same_split(folder, target, keys, hcp_ya):
    """The morphometry LR baselines are deterministic and cheap: recomputed on the card's
    split they give the card's numbers (within 0.02: a rebuilt phantom's table may move a
    subject or two), so a card off by 0.05 fails."""
    from brainlab.analysis.metrics import morphometry_baselines
    from brainlab.data import load

    card = read_card(SHIPPED_CHECKPOINTS / folder)
    cohort = hcp_ya if SHIPPED[folder][1] == "hcp-ya" else load(SHIPPED[folder][1])
    split = cohort.split(card["cohort"]["split_seed"])
    found = morphometry_baselines(cohort, split.train, split.test, target)
    for label, prefix in (("icv_only", "baseline_icv_lr"),
                          ("all_features", "baseline_all_features_lr")):
        for key in keys:
            assert card["metrics"][f"{prefix}_{key}"] == pytest.approx(found[label][key],
                                                                        abs=0.02)

