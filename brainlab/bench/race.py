"""``python -m brainlab bench race``: the seed study's DCGAN against brainlab's GAN at
equal CPU time, both scored with the calibrated metrics on the same held-out subjects.

brainlab's shipped GAN cost the training time of its autoencoder plus its own (both
from the cards, 1 thread each). The seed DCGAN (``dcgan-seed``) is trained from scratch
on the same cohort and split for that same time on 1 thread (``--minutes`` overrides
it), then both are scored on the card's test split: normalised Fréchet (held-out real =
1.0, mean ± sd over ``GAN_SEEDS`` seeds, same PCA features) and the two-sample AUC with
its CI. The trained DCGAN lands in ``--out`` (default a temporary folder).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPORT_KEYS = ("normalised_frechet", "normalised_frechet_sd", "two_sample_auc",
               "two_sample_auc_low", "two_sample_auc_high")


def _card_minutes(folder: Path) -> float:
    from brainlab.checkpoints import read_card

    return float(read_card(folder)["training"]["seconds"]) / 60.0


@torch.no_grad()
def seed_gan_calibrated(model, cohort, test_rows, train_rows, seed: int = 0) -> dict:
    """Normalised Fréchet over seeds and two-sample AUC (CI) of the seed DCGAN's samples,
    on the features and subjects ``evaluate_latent_gan`` uses for brainlab's GAN."""
    from brainlab.analysis.evaluation import (FRECHET_TRAIN_FIT, GAN_SEEDS, _generate_in_chunks,
                                              real_sets)
    from brainlab.analysis.metrics import (fit_frechet_space, mean_sd_over_seeds,
                                           normalised_frechet, two_sample_auc_ci)

    model.eval()
    _, heldout = real_sets(cohort, test_rows, None, seed)
    rng = np.random.default_rng(seed)
    fit_rows = (np.sort(rng.choice(train_rows, FRECHET_TRAIN_FIT, replace=False))
                if len(train_rows) > FRECHET_TRAIN_FIT else train_rows)
    space = fit_frechet_space(cohort.images[fit_rows], seed=seed)
    first = {}

    def one(sample_seed: int) -> float:
        z = model.sample_latent(len(heldout), sample_seed)
        images = _generate_in_chunks(model.generate, z, chunk=8)
        first.setdefault("images", images)
        return normalised_frechet(None, heldout, images, seed=sample_seed,
                                  space=space)["normalised_frechet"]

    spread = mean_sd_over_seeds(one, seeds=range(seed, seed + GAN_SEEDS))
    auc = two_sample_auc_ci(heldout, first["images"], seed=seed)
    return {"normalised_frechet": spread["mean"], "normalised_frechet_sd": spread["sd"],
            "two_sample_auc": auc["auc"], "two_sample_auc_low": auc["low"],
            "two_sample_auc_high": auc["high"], "n": int(len(heldout))}


def run(checkpoints: str | Path | None = None, minutes: float | None = None,
        out: str | Path | None = None) -> dict:
    from brainlab.checkpoints import load_checkpoint, read_card
    from brainlab.data import load
    from brainlab.paths import SHIPPED_CHECKPOINTS
    from brainlab.train_recipes import RecipeOptions, train

    root = Path(checkpoints or SHIPPED_CHECKPOINTS)
    gan_card = read_card(root / "gan")
    budget = minutes if minutes is not None else (_card_minutes(root / "mri-ae")
                                                  + _card_minutes(root / "gan"))
    cohort = load(gan_card["cohort"]["name"])
    split = cohort.split(gan_card["cohort"]["split_seed"])
    folder = Path(out) if out else Path(tempfile.mkdtemp(prefix="brainlab-race-")) / "dcgan-seed"
    start = time.perf_counter()
    train("dcgan-seed", cohort, RecipeOptions(out=folder, minutes=budget, threads=1,
                                              epochs=100000,
                                              seed=gan_card["cohort"]["split_seed"]))
    seconds = time.perf_counter() - start
    seed_gan, seed_card = load_checkpoint(folder, cohort=cohort)
    seed_metrics = seed_gan_calibrated(seed_gan, cohort, split.test, split.train)
    gan_metrics = {key: gan_card["metrics"].get(key) for key in REPORT_KEYS}
    gaussian = {key: gan_card["metrics"].get(f"gaussian_{key}") for key in REPORT_KEYS}
    return {
        "budget_minutes": budget,
        "brainlab_gan": {**gan_metrics, "training_minutes": budget,
                         "n": gan_card["metrics"].get("n")},
        "gaussian_baseline": gaussian,
        "seed_dcgan": {**seed_metrics, "training_minutes": seed_card["training"]["seconds"] / 60,
                       "steps": seed_card["training"].get("steps"),
                       "wall_minutes_incl_eval": seconds / 60},
        "checkpoint": str(folder),
    }


def _cell(metrics: dict, key: str, sd: str | None = None) -> str:
    value = metrics.get(key)
    if value is None:
        return "—"
    if sd and metrics.get(sd) is not None:
        return f"{value:.2f} ± {metrics[sd]:.2f}"
    return f"{value:.3f}"


def format_report(result: dict) -> str:
    lines = [f"Equal CPU time: {result['budget_minutes']:.1f} min on 1 thread each "
             f"(brainlab: its autoencoder + GAN, from the cards)", "",
             "| generator | normalised Fréchet (held-out real = 1.0) | two-sample AUC [95% CI] "
             "| training |", "|---|---|---|---|"]
    rows = (("brainlab GAN (shipped)", result["brainlab_gan"]),
            ("Gaussian on the same decoder", result["gaussian_baseline"]),
            ("seed DCGAN, same time", result["seed_dcgan"]))
    for name, metrics in rows:
        auc = _cell(metrics, "two_sample_auc")
        if metrics.get("two_sample_auc_low") is not None:
            auc += f" [{metrics['two_sample_auc_low']:.3f}, {metrics['two_sample_auc_high']:.3f}]"
        training = (f"{metrics['training_minutes']:.1f} min" if metrics.get("training_minutes")
                    else "—")
        if metrics.get("steps"):
            training += f", {metrics['steps']} steps"
        lines.append(f"| {name} | {_cell(metrics, 'normalised_frechet', 'normalised_frechet_sd')} "
                     f"| {auc} | {training} |")
    lines.append("")
    lines.append(f"seed DCGAN checkpoint: {result['checkpoint']}")
    return "\n".join(lines)
