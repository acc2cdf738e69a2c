"""Verdicts read every headline metric against its baseline (issue 10): a model that is
not clearly better than a trivial predictor is 'poor', whatever its targets say."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from brainlab.analysis.evaluation import evaluate_model
from brainlab.analysis.metrics import (classifier_metrics, is_poor, majority_baseline,
                                       mean_predictor_baseline, regression_metrics)
from brainlab.checkpoints import clearly_better, load_checkpoint, quality_verdict, read_card
from brainlab.registry import MODEL_TYPES


def _card(model_type: str, **metrics) -> dict:
    return {"model_type": model_type, "metrics": {"n": 167, "split": "test", **metrics}}


def test_a_constant_classifier_is_poor():
    rng = np.random.default_rng(0)
    y_train, y_test = rng.integers(0, 2, 80), rng.integers(0, 2, 40)
    constant = classifier_metrics(y_test, np.full(len(y_test), 0.7))
    baseline = majority_baseline(y_train, y_test)
    level, sentence = quality_verdict(_card(
        "sex-clf", balanced_accuracy=constant["balanced_accuracy"],
        baseline_majority_balanced_accuracy=baseline["balanced_accuracy"]))
    assert level == "poor"
    assert "0.5" in sentence and "majority class" in sentence


def test_a_constant_age_predictor_is_poor_even_when_its_target_says_fair():
    rng = np.random.default_rng(1)
    train_ages, test_ages = rng.uniform(22, 37, 200), rng.uniform(22, 37, 50)
    constant = regression_metrics(test_ages, np.full(len(test_ages), 29.5))
    baseline = mean_predictor_baseline(train_ages, test_ages)
    assert constant["mae"] < 4.0  # the MAE target alone would call it 'fair'
    level, sentence = quality_verdict(_card("age-model", mae=constant["mae"], target="years",
                                            baseline_mean_mae=baseline["mae"]))
    assert level == "poor" and "training mean" in sentence


@pytest.mark.parametrize("model_type,metrics", [
    # Measured on the shipped models (hcp-ya test split, n=167).
    ("sex-clf", {"balanced_accuracy": 0.777, "baseline_majority_balanced_accuracy": 0.5,
                 "baseline_icv_lr_balanced_accuracy": 0.809}),
    ("age-model", {"mae": 3.29, "baseline_mean_mae": 3.27, "target": "years"}),
    ("mri-ae", {"ssim": 0.893, "baseline_pca_ssim": 0.935, "baseline_mean_brain_ssim": 0.801}),
    ("gan", {"frechet_ratio": 1.5, "two_sample_auc": 0.7,
             "normalised_frechet": 5.85, "normalised_frechet_sd": 0.63,
             "gaussian_normalised_frechet": 6.21, "gaussian_normalised_frechet_sd": 0.60}),
    # Level with the baseline, or within its margin.
    ("sex-clf", {"balanced_accuracy": 0.91, "baseline_icv_lr_balanced_accuracy": 0.90}),
    ("morph-ae", {"mean_r2": 0.996, "baseline_pca_mean_r2": 0.999}),
    ("encoder", {"refined_ssim_brain": 0.90, "baseline_mean_brain_ssim_brain": 0.895}),
    ("age-model", {"balanced_accuracy": 0.70, "baseline_majority_balanced_accuracy": 0.69,
                   "target": "bin"}),
])
def test_a_model_at_baseline_level_is_poor(model_type, metrics):
    level, sentence = quality_verdict(_card(model_type, **metrics))
    assert level == "poor"
    assert "not clearly better than" in sentence and "(test split, n=167)" in sentence


@pytest.mark.parametrize("model_type,metrics,level", [
    ("sex-clf", {"balanced_accuracy": 0.93, "baseline_majority_balanced_accuracy": 0.5,
                 "baseline_icv_lr_balanced_accuracy": 0.809}, "good"),
    ("age-model", {"mae": 1.5, "baseline_mean_mae": 3.27, "baseline_icv_lr_mae": 3.2,
                   "target": "years"}, "good"),
    ("mri-ae", {"ssim": 0.90, "baseline_pca_ssim": 0.85, "baseline_mean_brain_ssim": 0.80},
     "fair"),
    ("gan", {"frechet_ratio": 1.5, "two_sample_auc": 0.7,
             "normalised_frechet": 2.0, "normalised_frechet_sd": 0.1,
             "gaussian_normalised_frechet": 6.21, "gaussian_normalised_frechet_sd": 0.60}, "good"),
])
def test_a_clearly_better_model_is_judged_on_its_targets(model_type, metrics, level):
    found, sentence = quality_verdict(_card(model_type, **metrics))
    assert found == level
    assert "beats" in sentence and "no baseline recorded" not in sentence


def test_the_sentence_names_both_numbers():
    _, sentence = quality_verdict(_card("sex-clf", balanced_accuracy=0.777,
                                        baseline_icv_lr_balanced_accuracy=0.809))
    assert sentence == ("balanced accuracy 0.777 is not clearly better than logistic "
                        "regression on ICV alone (0.809) (test split, n=167).")


@pytest.mark.parametrize("model_type,metrics,level", [
    ("mri-ae", {"ssim": 0.953}, "good"),
    ("sex-clf", {"balanced_accuracy": 0.777}, "fair"),
    ("age-model", {"mae": 3.29, "target": "years"}, "fair"),
    ("gan", {"frechet_ratio": 4.29, "two_sample_auc": 0.876}, "fair"),
])
def test_old_cards_without_baselines_keep_their_verdict_and_say_so(model_type, metrics, level):
    found, sentence = quality_verdict(_card(model_type, **metrics))
    assert found == level
    assert sentence.endswith("; no baseline recorded.")


def test_a_missing_or_non_finite_baseline_counts_as_not_recorded():
    found, sentence = quality_verdict(_card("sex-clf", balanced_accuracy=0.777,
                                            baseline_icv_lr_balanced_accuracy=None))
    assert (found, sentence.endswith("no baseline recorded.")) == ("fair", True)


RULES = [(model_type, rule) for model_type, spec in MODEL_TYPES.items()
         for rule in spec.baseline_rules if rule.sd_keys is None]


@pytest.mark.parametrize("model_type,rule", RULES,
                         ids=[f"{t}-{r.baseline}" for t, r in RULES])
@pytest.mark.parametrize("offset", [-0.3, -0.011, 0.0, 0.011, 0.03, 0.3])
def test_registry_rules_agree_with_is_poor(model_type, rule, offset):
    """The registry repeats METRIC_RULES' margins (checkpoints sit below analysis)."""
    metric = {"mean_r2": "r", "refined_ssim_brain": "ssim"}.get(rule.metric, rule.metric)
    baseline = 0.8 if rule.direction == "higher" else 3.0
    value = baseline * (1 + offset)
    metrics = {rule.metric: value, rule.baseline: baseline}
    margin = rule.margin if metric != rule.metric else None
    assert clearly_better(rule, metrics) == (not is_poor(metric, value, baseline, margin))


def test_every_baseline_rule_names_a_key_its_evaluation_writes(tiny, tiny_checkpoints):
    """Names stay stable: each rule's metric and baseline come out of the evaluation
    when it is given the training split (tiny phantom, a few subjects)."""
    split = tiny.split(0)
    for model_type in ("mri-ae", "morph-ae", "sex-clf", "age-model", "encoder"):
        model, card = load_checkpoint(tiny_checkpoints / model_type, cohort=tiny)
        metrics = evaluate_model(model, tiny, split.test, max_subjects=6,
                                 train_indices=split.train)
        rules = MODEL_TYPES[model_type].baselines_for(metrics)
        assert rules, f"{model_type}: no baseline rule applies to {sorted(metrics)}"
        for rule in rules:
            assert np.isfinite(metrics[rule.baseline]), (model_type, rule.baseline)
        level, sentence = quality_verdict({"model_type": model_type, "metrics": metrics})
        assert "no baseline recorded" not in sentence


def test_evaluation_without_the_training_split_adds_no_baselines(tiny, tiny_checkpoints):
    model, _ = load_checkpoint(tiny_checkpoints / "sex-clf", cohort=tiny)
    metrics = evaluate_model(model, tiny, tiny.split(0).test, max_subjects=6)
    assert not [key for key in metrics if key.startswith("baseline_")]


def test_mri_ae_headline_is_inside_the_brain(tiny, tiny_checkpoints):
    model, _ = load_checkpoint(tiny_checkpoints / "mri-ae", cohort=tiny)
    split = tiny.split(0)
    metrics = evaluate_model(model, tiny, split.test, max_subjects=4, train_indices=split.train)
    assert 0 < metrics["mask_voxels"] < np.prod(tiny.grid_shape)
    assert metrics["ssim"] != metrics["ssim_whole_box"]
    for key in ("baseline_mean_brain_ssim", "baseline_pca_ssim", "baseline_mean_brain_psnr",
                "baseline_pca_psnr", "psnr_whole_box"):
        assert np.isfinite(metrics[key]), key


def test_write_card_rewrites_metrics_only(tiny_checkpoints, tmp_path, capsys):
    from brainlab.__main__ import main

    folder = tmp_path / "sex-clf"
    shutil.copytree(tiny_checkpoints / "sex-clf", folder)
    before = read_card(folder)
    files = sorted(p.name for p in folder.iterdir())
    assert main(["evaluate", str(folder), "--cohort", "tiny", "--write-card", "--json",
                 "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    after = read_card(folder)
    assert {k: v for k, v in after.items() if k not in ("metrics", "evaluated")} == \
        {k: v for k, v in before.items() if k != "metrics"}
    assert after["metrics"]["baseline_majority_balanced_accuracy"] == 0.5
    assert after["evaluated"]["cohort"] == "tiny" and after["evaluated"]["with_baselines"]
    assert printed["previous_quality"] in ("good", "fair", "poor")
    assert sorted(p.name for p in folder.iterdir()) == files  # no temporary file left


def test_write_card_refuses_a_subset(tiny_checkpoints, capsys):
    from brainlab.__main__ import main

    before = (tiny_checkpoints / "sex-clf" / "model_card.json").read_text()
    assert main(["evaluate", str(tiny_checkpoints / "sex-clf"), "--cohort", "tiny",
                 "--write-card", "--max-subjects", "3"]) != 0
    assert "--write-card records the whole test split" in capsys.readouterr().err
    assert (tiny_checkpoints / "sex-clf" / "model_card.json").read_text() == before


def test_brain_age_in_years_reports_within_sex_youngest_vs_oldest_auc():
    """A years model's card ranks youngest vs oldest bins within sex (0.5 = no ranking)."""
    from conftest import make_small_cohort

    from brainlab.analysis.evaluation import _youngest_vs_oldest_auc

    cohort = make_small_cohort(n=80, seed=2)
    rows = np.arange(len(cohort))
    ages = cohort.table["age"].to_numpy()
    perfect = _youngest_vs_oldest_auc(cohort, rows, ages)
    assert perfect["auc_youngest_vs_oldest_F"] == 1.0 == perfect["auc_youngest_vs_oldest_M"]
    flat = _youngest_vs_oldest_auc(cohort, rows, np.full(len(rows), 30.0))
    assert flat["auc_youngest_vs_oldest_F"] == 0.5
    assert _youngest_vs_oldest_auc(cohort, rows, -ages)["auc_youngest_vs_oldest_M"] == 0.0
