"""Held-out evaluation of every model type: the metrics that go into model cards.

One function per model type, ``evaluate_<type>(model, cohort, indices, max_subjects=None)``
-> metrics dict with "n"; ``brainlab.registry`` names which one scores which type, the
fit loop gets it from the recipe (MONAI style: the trainer receives its metrics), and
``evaluate_model`` / ``evaluate_checkpoint`` look it up for a loaded model. Models are
run batch by batch (``brainlab.data.batches``); the metrics themselves are
``brainlab.analysis.metrics``. ``progress`` (optional, ``brainlab.data.progress``) is
called as ``progress(fraction_done, message)`` while subjects are scored.

Baselines (issue 10): given ``train_indices`` (``evaluate_checkpoint`` passes the card's
training split; the fit loop's validation does not, to stay cheap), each evaluation adds
trivial baselines computed on the same subjects, with the same n. ``brainlab.registry``'s
``baseline_rules`` name which of them decide "poor". The names, in one place:

- mri-ae: ``ssim``/``psnr`` inside the brain mask (mask = training mean brain > 0.05;
  whole-box figures in ``ssim_whole_box``/``psnr_whole_box``); ``baseline_mean_brain_ssim``/
  ``_psnr`` (every subject "reconstructed" as the training mean brain) and
  ``baseline_pca_ssim``/``_psnr`` (PCA with the model's code size, fitted on <= 400
  training brains). Sharpness (issue 11), inside the same mask: ``hf_energy_ratio``
  (high-pass energy of reconstructions / of the real volumes; 1 = as sharp as real) and
  ``texture_auc`` with ``texture_auc_low``/``_high`` (95% DeLong; logistic regression on
  texture features telling reconstructions from the real volumes, folds grouped by
  subject; 0.5 = indistinguishable), beside ``baseline_pca_hf_energy_ratio`` and
  ``baseline_pca_texture_auc*``.
- gan: ``normalised_frechet`` (Fréchet(generated, train) / Fréchet(held-out real, train),
  equal n, 32 PCA features of the training brains; held-out real = 1.0; two real sets of
  n=167 differ by about 20%, so read differences below ~0.2 as noise) mean and
  ``normalised_frechet_sd`` over ``GAN_SEEDS`` seeds, ``gaussian_normalised_frechet``(``_sd``)
  for codes from the fitted Gaussian on the same decoder; ``two_sample_auc`` with
  ``two_sample_auc_low``/``_high`` (95% DeLong) and the same ``gaussian_two_sample_auc*``;
  calibrated memorisation against the full training split: ``memorisation_fraction_flagged``,
  ``memorisation_heldout_flagged`` (≈ 0.05 by construction), ``memorisation_planted_recall``.
- sex-clf: ``balanced_accuracy`` beside ``baseline_majority_balanced_accuracy``,
  ``baseline_icv_lr_balanced_accuracy`` and ``baseline_all_features_lr_balanced_accuracy``
  (logistic regression on the morphometry table, same split; ``_roc_auc`` too).
- age-model (years): ``mae`` beside ``baseline_mean_mae`` (training-mean predictor),
  ``baseline_icv_lr_mae`` and ``baseline_all_features_lr_mae`` (linear regression).
  Bins: ``balanced_accuracy`` beside ``majority_rate`` and
  ``baseline_majority_balanced_accuracy``, ``auc_youngest_vs_oldest_F``/``_M``.
- morph-ae: ``mean_r2`` beside ``baseline_pca_mean_r2`` (PCA of the standardised training
  features with the model's code size, capped at the feature count).
- encoder: ``refined_ssim`` beside ``baseline_mri_ae_ssim`` (the MRI autoencoder inside the
  GAN reconstructing the same subjects: a ceiling, since G decodes through that decoder)
  and ``baseline_mean_brain_ssim`` (the training mean brain, whole box as ``refined_ssim``:
  the floor that decides "poor").
"""

from __future__ import annotations

import warnings
import numpy as np
import torch
import torch.nn.functional as F

from brainlab.analysis.memorisation import (calibrated_memorisation, flatten_volumes,
                                           memorisation_report)
from brainlab.analysis.metrics import (age_bin_metrics, classifier_metrics, diversity,
                                       fit_frechet_space, majority_baseline,
                                       masked_reconstruction_metrics, mean_brain_mask,
                                       mean_predictor_baseline, mean_sd_over_seeds,
                                       morphometry_baselines, normalised_frechet, pca_frechet,
                                       reconstruction_baselines, reconstruction_metrics,
                                       regression_metrics, two_sample_auc, two_sample_auc_ci)
from brainlab.analysis.metrics import high_frequency_ratio, texture_two_sample_auc
from brainlab.data.batches import CohortBatches
from brainlab.data.progress import ProgressCallback as Progress
from brainlab.data.progress import report
from brainlab.errors import BrainlabInputError


def _tick(progress: Progress, done: int, total: int, message: str) -> None:
    report(progress, done / max(total, 1), message)


def _first(indices, max_subjects: int | None) -> np.ndarray:
    return np.asarray(indices, dtype=np.int64)[:max_subjects]


def _training_rows(cohort, indices, train_indices) -> np.ndarray:
    """``train_indices`` as int64, or every row outside ``indices`` when None."""
    if train_indices is not None:
        return np.asarray(train_indices, dtype=np.int64)
    return np.setdiff1d(np.arange(len(cohort)), np.asarray(indices, dtype=np.int64))


def _prefixed(prefix: str, metrics: dict | None, keys) -> dict:
    if metrics is None:
        return {}
    return {f"{prefix}_{key}": metrics[key] for key in keys if key in metrics}


@torch.no_grad()
def predict_cohort(predict, cohort, indices, batch_size: int = 16,
                   progress: Progress = None) -> np.ndarray:
    """``predict(images)`` on cohort rows ``indices``, ``batch_size`` volumes at a time."""
    indices = np.asarray(indices, dtype=np.int64)
    outputs, done = [], 0
    for batch in CohortBatches(cohort, indices, batch_size, fields=("image",)):
        outputs.append(predict(batch["image"]).cpu().numpy())
        done += len(batch["image"])
        _tick(progress, done, len(indices), "predicting")
    return np.concatenate(outputs)


@torch.no_grad()
def reconstruct(model, cohort, indices, batch_size: int = 8,
                progress: Progress = None) -> tuple[np.ndarray, np.ndarray]:
    """(originals, reconstructions), each (n, D, H, W) float32, of an MRI autoencoder."""
    indices = np.asarray(indices, dtype=np.int64)
    originals, recons = [], []
    for batch in CohortBatches(cohort, indices, batch_size, fields=("image",)):
        originals.append(batch["image"][:, 0].numpy())
        recons.append(model(batch["image"])[:, 0].cpu().numpy())
        _tick(progress, sum(len(o) for o in originals), len(indices), "reconstructing")
    return np.concatenate(originals), np.concatenate(recons)


@torch.no_grad()
def evaluate_autoencoder(model, cohort, indices, max_subjects: int | None = None,
                         progress: Progress = None, train_indices=None) -> dict:
    """MRI autoencoder on cohort rows ``indices``: SSIM/PSNR inside the brain mask per
    subject (mean, sd), the whole-box figures, MSE, and (given ``train_indices``) the
    mean-brain and PCA baselines on the same subjects (module docstring)."""
    indices = _first(indices, max_subjects)
    originals, recons = reconstruct(model, cohort, indices, progress=progress)
    train_rows = _training_rows(cohort, indices, train_indices)
    mask = mean_brain_mask(_RowView(cohort.images, train_rows))
    whole = reconstruction_metrics(originals, recons)
    metrics = masked_reconstruction_metrics(originals, recons, mask)
    metrics["ssim_whole_box"] = whole["ssim"]
    metrics["psnr_whole_box"] = whole["psnr"]
    metrics["mse"] = float(np.mean((originals - recons) ** 2))
    metrics["n"] = int(len(indices))
    report(progress, 1.0, "sharpness: high-frequency energy and texture two-sample test")
    metrics.update(_sharpness(originals, recons, mask))
    if train_indices is not None:
        report(progress, 1.0, "baselines: mean brain and PCA")
        baselines = reconstruction_baselines(_RowView(cohort.images, train_rows), originals,
                                             code_size=int(model.config.latent_dim), mask=mask,
                                             return_images=True)
        for name in ("mean_brain", "pca"):
            metrics.update(_prefixed(f"baseline_{name}", baselines[name], ("ssim", "psnr")))
        metrics["baseline_pca_components"] = baselines["pca_components"]
        metrics.update({f"baseline_pca_{key}": value for key, value in
                        _sharpness(originals, baselines["pca_images"], mask).items()})
    return metrics


def _sharpness(originals, recons, mask) -> dict:
    """``hf_energy_ratio`` and ``texture_auc`` (+ CI) of ``recons`` against ``originals``."""
    result = {"hf_energy_ratio": high_frequency_ratio(recons, originals, mask)["hf_energy_ratio"]}
    if len(originals) >= 4:  # two folds of two subjects each, at least
        subjects = np.arange(len(originals))
        auc = texture_two_sample_auc(originals, recons, mask, groups=np.r_[subjects, subjects])
        result.update({"texture_auc": auc["auc"], "texture_auc_low": auc["low"],
                       "texture_auc_high": auc["high"]})
    return result


class _RowView:
    """Rows ``rows`` of an image stack, read lazily (len, slicing and fancy indexing)."""

    def __init__(self, images, rows):
        self.images, self.rows = images, np.asarray(rows, dtype=np.int64)

    ndim = 4  # (n, D, H, W); np.ndim would otherwise load every row

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item):
        return np.asarray(self.images[self.rows[item]], dtype=np.float32)

    def __array__(self, dtype=None, copy=None):
        array = self[slice(None)]
        return array if dtype is None else array.astype(dtype)


@torch.no_grad()
def evaluate_morphometry(model, cohort, indices, max_subjects: int | None = None,
                         progress: Progress = None, train_indices=None) -> dict:
    """Morphometry autoencoder: per-feature and mean R² (sklearn ``r2_score``) and
    standardised MSE on ``indices``; given ``train_indices``, ``baseline_pca_mean_r2``."""
    from sklearn.metrics import r2_score

    indices = _first(indices, max_subjects)
    raw = cohort.table[model.feature_names].to_numpy(dtype=np.float32, na_value=np.nan)[indices]
    features = torch.from_numpy(raw)
    recon = model(features).cpu().numpy()
    scaled, observed = model.standardise(features)
    scaled_recon = (recon - model.feature_mean.cpu().numpy()) / model.feature_std.cpu().numpy()
    mask = observed.cpu().numpy()
    mse = float(np.mean((scaled_recon[mask] - scaled.cpu().numpy()[mask]) ** 2))
    per_feature = {}
    for j, name in enumerate(model.feature_names):
        rows = mask[:, j]
        if rows.sum() >= 2 and np.ptp(raw[rows, j]) > 0:
            per_feature[name] = float(r2_score(raw[rows, j], recon[rows, j]))
    mean_r2 = float(np.mean(list(per_feature.values()))) if per_feature else None
    metrics = {"mean_r2": mean_r2, "mse": mse, "per_feature_r2": per_feature,
               "n": int(len(indices))}
    if train_indices is not None:
        metrics.update(_pca_morphometry_baseline(
            cohort.table[model.feature_names].to_numpy(dtype=np.float64, na_value=np.nan),
            _training_rows(cohort, indices, train_indices), indices,
            int(model.config.latent_dim), list(per_feature)))
    return metrics


def _pca_morphometry_baseline(table: np.ndarray, train_rows, test_rows, code_size: int,
                              scored: list[str] | None = None) -> dict:
    """PCA with ``code_size`` components on standardised training features (missing values
    filled with the training mean), test rows reconstructed: their mean R² over features."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import r2_score

    train, test = table[train_rows], table[test_rows]
    mean, std = np.nanmean(train, axis=0), np.nanstd(train, axis=0)
    std = np.where(std > 0, std, 1.0)
    fill = lambda x: np.where(np.isfinite(x), (x - mean) / std, 0.0)  # noqa: E731
    k = int(min(code_size, train.shape[1], len(train) - 1))
    pca = PCA(n_components=k, random_state=0).fit(fill(train))
    recon = pca.inverse_transform(pca.transform(fill(test))) * std + mean
    r2 = []
    for j in range(table.shape[1]):
        rows = np.isfinite(test[:, j])
        if rows.sum() >= 2 and np.ptp(test[rows, j]) > 0:
            r2.append(float(r2_score(test[rows, j], recon[rows, j])))
    return {"baseline_pca_mean_r2": float(np.mean(r2)) if r2 else None,
            "baseline_pca_components": k}


@torch.no_grad()
def evaluate_sex_classifier(model, cohort, indices, max_subjects: int | None = None,
                            progress: Progress = None, train_indices=None) -> dict:
    """Sex classifier: accuracy, balanced accuracy, ROC AUC and ECE of P(male) on
    ``indices``; given ``train_indices``, the majority-class and morphometry-LR baselines."""
    indices = _first(indices, max_subjects)
    p_male = predict_cohort(model.predict_proba, cohort, indices, progress=progress)
    sex = cohort.table["sex"].astype(str).to_numpy()
    y = (sex[indices] == "M").astype(int)
    metrics = classifier_metrics(y, p_male)
    if train_indices is not None:
        train_rows = _training_rows(cohort, indices, train_indices)
        majority = majority_baseline((sex[train_rows] == "M").astype(int), y)
        metrics.update(_prefixed("baseline_majority", majority,
                                 ("accuracy", "balanced_accuracy", "roc_auc")))
        metrics.update(_linear_baselines(cohort, train_rows, indices, "sex",
                                         ("balanced_accuracy", "roc_auc", "accuracy")))
    return metrics


def _linear_baselines(cohort, train_rows, test_rows, target: str, keys) -> dict:
    """``baseline_icv_lr_*`` and ``baseline_all_features_lr_*`` from ``morphometry_baselines``."""
    if cohort.table is None or len(cohort.table.columns) < 3:
        return {}
    try:
        result = morphometry_baselines(cohort, train_rows, test_rows, target)
    except BrainlabInputError as missing:
        # An image-only cohort (e.g. HCP tensors) has no morphometry to fit a baseline on:
        # the card says so instead of the evaluation failing.
        return {"baseline_morphometry_note": str(missing)}
    return {**_prefixed("baseline_icv_lr", result.get("icv_only"), keys),
            **_prefixed("baseline_all_features_lr", result.get("all_features"), keys)}


@torch.no_grad()
def evaluate_age_model(model, cohort, indices, max_subjects: int | None = None,
                       progress: Progress = None, train_indices=None) -> dict:
    """Brain-age model. Years: MAE and r on subjects with known age. Bins: accuracy,
    balanced accuracy, MAE in bins, majority rate and within-sex youngest-vs-oldest AUC.
    Given ``train_indices``: the training-mean (or majority-bin) predictor and, for
    years, linear regressions on ICV and on all morphometry features."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    indices = _first(indices, max_subjects)
    if model.target == "years":
        ages = cohort.table["age"].to_numpy(dtype=float, na_value=np.nan)[indices]
        known = np.isfinite(ages)
        if not known.any():
            return {"mae": None, "r": None, "n": 0, "target": "years"}
        predicted = predict_cohort(model.predict_age, cohort, indices[known], progress=progress)
        metrics = {**regression_metrics(ages[known], predicted), "target": "years"}
        metrics.update(_youngest_vs_oldest_auc(cohort, indices[known], predicted))
        if train_indices is not None:
            train_rows = _training_rows(cohort, indices, train_indices)
            all_ages = cohort.table["age"].to_numpy(dtype=float, na_value=np.nan)
            train_rows = train_rows[np.isfinite(all_ages[train_rows])]
            metrics.update(_prefixed("baseline_mean", mean_predictor_baseline(
                all_ages[train_rows], ages[known]), ("mae", "r")))
            metrics.update(_linear_baselines(cohort, train_rows, indices[known], "age",
                                             ("mae", "r")))
        return metrics
    bins = cohort.table["age_bin"].to_numpy(dtype=float, na_value=np.nan)[indices]
    known = np.isfinite(bins) & (bins >= 0)
    if not known.any():
        return {"accuracy": None, "balanced_accuracy": None, "n": 0, "target": "bin"}
    logits = predict_cohort(model, cohort, indices[known], progress=progress)
    # The expected bin index under the softmax (what ``predict_age`` gives in bin mode).
    probabilities = torch.from_numpy(logits).softmax(dim=1).numpy()
    expected = probabilities @ np.arange(logits.shape[1], dtype=probabilities.dtype)
    y = bins[known].astype(int)
    predicted = logits.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        balanced = float(balanced_accuracy_score(y, predicted))
    metrics = {"accuracy": float(accuracy_score(y, predicted)), "balanced_accuracy": balanced,
               "mae_bins": float(np.mean(np.abs(expected - y))), "n": int(known.sum()),
               "target": "bin"}
    sex = cohort.table["sex"].astype(str).to_numpy()[indices[known]]
    bin_figures = age_bin_metrics(y, probabilities, sex, youngest=0,
                                  oldest=int(probabilities.shape[1] - 1))
    for key in ("majority_rate", "auc_youngest_vs_oldest_F", "auc_youngest_vs_oldest_M"):
        metrics[key] = bin_figures[key]
    if train_indices is not None:
        train_rows = _training_rows(cohort, indices, train_indices)
        train_bins = cohort.table["age_bin"].to_numpy(dtype=float, na_value=np.nan)[train_rows]
        train_bins = train_bins[np.isfinite(train_bins) & (train_bins >= 0)].astype(int)
        metrics.update(_prefixed("baseline_majority", majority_baseline(train_bins, y),
                                 ("accuracy", "balanced_accuracy")))
    return metrics


# HCP-YA's youngest (22-25) and third (31-35) bins: the pair PHANTOM.md's v2 ageing test
# separates (the 36+ bin is too small for a stable AUC).
YOUNG_OLD_BINS = (0, 2)


def _youngest_vs_oldest_auc(cohort, rows, predicted_age) -> dict:
    """Within-sex AUC of the predicted age for youngest- vs oldest-bin subjects (0.5 = the
    prediction does not rank them), on cohorts with at least three age bins."""
    from sklearn.metrics import roc_auc_score

    if len(cohort.age_bin_labels) < 3:
        return {}
    young, old = YOUNG_OLD_BINS
    bins = cohort.table["age_bin"].to_numpy()[rows]
    sex = cohort.table["sex"].astype(str).to_numpy()[rows]
    out = {"auc_bins": f"{cohort.age_bin_labels[young]} vs {cohort.age_bin_labels[old]}"}
    for label in ("F", "M"):
        chosen = (sex == label) & np.isin(bins, [young, old])
        labels = (bins[chosen] == old).astype(int)
        out[f"auc_youngest_vs_oldest_{label}"] = (
            float(roc_auc_score(labels, np.asarray(predicted_age)[chosen]))
            if min(labels.sum(), (1 - labels).sum()) >= 2 else None)
    return out


def heldout_rows(indices, max_subjects, rng) -> np.ndarray:
    """``indices`` capped at ``max_subjects`` (a sorted draw from ``rng``), as real_sets takes them."""
    heldout = np.asarray(indices, dtype=np.int64)
    if max_subjects is not None and len(heldout) > max_subjects:
        heldout = np.sort(rng.choice(heldout, int(max_subjects), replace=False))
    return heldout


def real_sets(cohort, indices, max_subjects, seed) -> tuple[np.ndarray, np.ndarray]:
    """Held-out images (``indices``, capped) and an equally capped sample of the others."""
    if cohort.images is None:
        raise BrainlabInputError(f"cohort {cohort.name!r} has no images to evaluate a GAN on")
    rng = np.random.default_rng(seed)
    heldout = heldout_rows(indices, max_subjects, rng)
    others = np.setdiff1d(np.arange(len(cohort)), np.asarray(indices, dtype=np.int64))
    cap = max(len(heldout), min(len(others), 4 * len(heldout), 400))
    if len(others) > cap:
        others = np.sort(rng.choice(others, cap, replace=False))
    return cohort.images[others], cohort.images[heldout]


@torch.no_grad()
def _generate_in_chunks(decode, codes: torch.Tensor, chunk: int = 16,
                        progress: Progress = None, message: str = "generating") -> np.ndarray:
    parts = []
    for start in range(0, len(codes), chunk):
        parts.append(decode(codes[start:start + chunk])[:, 0].cpu().numpy())
        _tick(progress, min(start + chunk, len(codes)), len(codes), message)
    return np.concatenate(parts)


def isometric_coordinates(*stacks, chunk: int = 8192) -> list[np.ndarray]:
    """The volumes of each (n_i, ...) stack as (n_i, N) float64 coordinates, N = all volumes.

    The coordinates are those of the centred volumes in an orthonormal basis of their span
    (from the eigendecomposition of their N x N Gram matrix, accumulated over blocks of
    ``chunk`` voxels), so distances, inner products of differences and any PCA of them are
    those of the voxel vectors, up to rounding: the GAN panel's PCA fits, classifiers and
    nearest neighbours then run on N (~900) columns instead of ~235k voxels.
    """
    flats = [flatten_volumes(stack, "volumes") for stack in stacks]
    voxels = {flat.shape[1] for flat in flats}
    if len(voxels) != 1:
        raise BrainlabInputError(f"volume stacks have voxel counts {sorted(voxels)}; "
                                 f"expected one grid")
    (n_voxels,) = voxels
    total = sum(len(flat) for flat in flats)
    mean = sum(flat.sum(axis=0, dtype=np.float64) for flat in flats) / total
    gram = np.zeros((total, total))
    for start in range(0, n_voxels, chunk):
        block = np.concatenate([flat[:, start:start + chunk] for flat in flats]).astype(np.float64)
        block -= mean[start:start + chunk]
        gram += block @ block.T
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    coordinates = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
    bounds = np.cumsum([0] + [len(flat) for flat in flats])
    return [coordinates[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def gan_panel(real_train, real_heldout, generated, n_voxels: int, seed: int = 0,
              memorisation: bool = True) -> dict:
    """``brainlab.analysis.metrics.gan_metrics`` on ``isometric_coordinates`` of the volumes.

    The same figures as on the voxels (tests/test_gan.py checks it): Fréchet and the
    classifier are invariant to the orthonormal change of basis; diversity and the
    memorisation distances are RMS over voxels, so their inputs are rescaled by
    sqrt(N / n_voxels). ``memorisation=False`` leaves out diversity and memorisation
    (the Gaussian baseline needs only Fréchet and the two-sample AUC).
    """
    result = pca_frechet(real_train, real_heldout, generated, seed=seed)
    result["n_train"] = int(len(real_train))
    result["two_sample_auc"] = two_sample_auc(real_heldout, generated, seed=seed)
    if not memorisation:
        return result
    scale = np.sqrt(real_train.shape[1] / n_voxels)
    result["diversity_generated"] = diversity(generated * scale, seed=seed)
    result["diversity_real"] = diversity(real_heldout * scale, seed=seed)
    result["diversity_ratio"] = (result["diversity_generated"] / result["diversity_real"]
                                 if result["diversity_real"] > 0 else float("nan"))
    report = memorisation_report(generated * scale, real_train * scale, real_heldout * scale)
    for key in ("threshold", "percentile", "fraction_suspected", "n_suspected",
                "median_generated", "median_heldout", "median_ratio"):
        result[f"memorisation_{key}"] = report[key]
    return result


@torch.no_grad()
def evaluate_latent_gan(model, cohort, indices, max_subjects: int | None = None, seed: int = 0,
                        progress: Progress = None, train_indices=None) -> dict:
    """Code-space GAN: GAN metrics on held-out ``indices`` for the GAN and, as baseline,
    the fitted Gaussian (``gaussian_*``: Fréchet, its ratio and the two-sample AUC).
    Given ``train_indices``: the calibrated figures of the module docstring
    (``calibrated_gan_metrics``)."""
    real_train, real_heldout = real_sets(cohort, indices, max_subjects, seed)
    # A conditional GAN (and its class-conditional Gaussian) generates at the held-out
    # subjects' own sexes and ages, so both are compared with the same population.
    condition = None
    if getattr(model, "conditional", False):
        rows = heldout_rows(indices, max_subjects, np.random.default_rng(seed))
        table = cohort.table.iloc[rows]
        condition = model.subject_conditions(table["sex"], table["age"], table["age_bin"]
                                             ).to(model.device)
    z = model.sample_latent(len(real_heldout), seed).to(model.device)
    generated = _generate_in_chunks(model.decode, model.codes_from_latent(z, condition=condition),
                                    progress=progress, message="generating (GAN)")
    gaussian = _generate_in_chunks(model.decode, model.gaussian_codes(z, condition),
                                   progress=progress, message="generating (Gaussian baseline)")
    _tick(progress, 0, 3, "scoring: coordinates")
    n_voxels = int(np.prod(generated.shape[1:]))
    train_c, heldout_c, generated_c, gaussian_c = isometric_coordinates(
        real_train, real_heldout, generated, gaussian)
    _tick(progress, 1, 3, "scoring the GAN")
    metrics = gan_panel(train_c, heldout_c, generated_c, n_voxels, seed=seed)
    _tick(progress, 2, 3, "scoring the baseline")
    # Only three baseline figures go into the card: skip the rest of the panel for it.
    baseline = gan_panel(train_c, heldout_c, gaussian_c, n_voxels, seed=seed, memorisation=False)
    _tick(progress, 3, 3, "scored")
    for key in ("frechet", "frechet_ratio", "two_sample_auc"):
        if key in baseline:
            metrics[f"gaussian_{key}"] = baseline[key]
    metrics["n"] = int(len(real_heldout))
    metrics["notes"] = "gaussian_*: same decoder, codes from the fitted Gaussian (G at step 0)"
    if condition is not None:
        metrics["condition"] = model.condition_spec.describe()
        metrics["notes"] += ("; both sample at the held-out subjects' sexes and ages, the "
                             "Gaussian is class-conditional (mean linear in the condition)")
    if train_indices is not None:
        metrics.update(calibrated_gan_metrics(
            model, cohort, np.asarray(train_indices, dtype=np.int64), real_heldout,
            generated, gaussian, seed=seed, progress=progress, condition=condition))
    return metrics


# Seeds the normalised Fréchet is averaged over (issue 10: mean ± sd over >= 5).
GAN_SEEDS = 5
# Training brains the Fréchet PCA features are fitted on (a seeded subset of the split).
FRECHET_TRAIN_FIT = 400


def calibrated_gan_metrics(model, cohort, train_rows, real_heldout, generated, gaussian,
                           seed: int = 0, seeds: int = GAN_SEEDS,
                           progress: Progress = None, condition=None) -> dict:
    """Normalised Fréchet (mean, sd over ``seeds`` sample seeds), two-sample AUC with CI
    and calibrated memorisation for the GAN and its Gaussian baseline (same decoder).

    ``generated`` / ``gaussian`` are the samples of the first seed (``seed``); the other
    seeds draw new ones of the same size as ``real_heldout``.
    """
    rng = np.random.default_rng(seed)
    fit_rows = (np.sort(rng.choice(train_rows, FRECHET_TRAIN_FIT, replace=False))
                if len(train_rows) > FRECHET_TRAIN_FIT else train_rows)
    report(progress, 0.0, "calibrated: Fréchet features")
    space = fit_frechet_space(cohort.images[fit_rows], seed=seed)
    n = len(real_heldout)

    def samples(sample_seed: int):
        if sample_seed == seed:
            return generated, gaussian
        z = model.sample_latent(n, sample_seed).to(model.device)
        if condition is None:
            return (_generate_in_chunks(model.decode, model.codes_from_latent(z)),
                    _generate_in_chunks(model.decode, model.gaussian_codes(z)))
        return (_generate_in_chunks(model.decode, model.codes_from_latent(z, condition=condition)),
                _generate_in_chunks(model.decode, model.gaussian_codes(z, condition)))

    def both(sample_seed: int) -> dict:
        report(progress, (sample_seed - seed) / (seeds + 2), f"calibrated: seed {sample_seed}")
        gan_images, gaussian_images = samples(sample_seed)
        return {name: normalised_frechet(None, real_heldout, images, seed=sample_seed,
                                         space=space)["normalised_frechet"]
                for name, images in (("gan", gan_images), ("gaussian", gaussian_images))}

    spread = mean_sd_over_seeds(both, seeds=range(seed, seed + seeds))
    metrics = {"normalised_frechet": spread["gan"]["mean"],
               "normalised_frechet_sd": spread["gan"]["sd"],
               "gaussian_normalised_frechet": spread["gaussian"]["mean"],
               "gaussian_normalised_frechet_sd": spread["gaussian"]["sd"],
               "normalised_frechet_seeds": int(spread["n_seeds"]),
               # Per seed (first = ``seed``), so one seed can be re-checked cheaply.
               "normalised_frechet_per_seed": spread["gan"]["values"],
               "gaussian_normalised_frechet_per_seed": spread["gaussian"]["values"],
               "normalised_frechet_note": "held-out real brains score 1.0; two real sets of "
                                          "this n differ by about 20%"}
    report(progress, (seeds + 0.5) / (seeds + 2), "calibrated: two-sample AUC")
    for prefix, images in (("", generated), ("gaussian_", gaussian)):
        auc = two_sample_auc_ci(real_heldout, images, seed=seed)
        metrics[f"{prefix}two_sample_auc"] = auc["auc"]
        metrics[f"{prefix}two_sample_auc_low"] = auc["low"]
        metrics[f"{prefix}two_sample_auc_high"] = auc["high"]
    report(progress, (seeds + 1) / (seeds + 2), "calibrated: memorisation (full training split)")
    memorised = calibrated_memorisation(generated, _RowView(cohort.images, train_rows),
                                        real_heldout, seed=seed)
    for key in ("fraction_flagged", "heldout_flagged", "planted_recall", "threshold",
                "n_planted", "n_train"):
        metrics[f"memorisation_{key}"] = memorised[key]
    return metrics


@torch.no_grad()
def evaluate_seed_gan(model, cohort, indices, max_subjects: int | None = None, seed: int = 0,
                      progress: Progress = None) -> dict:
    """The seed DCGAN: GAN metrics of generated vs held-out ``indices``."""
    was_training = model.training
    model.eval()
    real_train, real_heldout = real_sets(cohort, indices, max_subjects, seed)
    z = model.sample_latent(len(real_heldout), seed)
    generated = _generate_in_chunks(model.generate, z, chunk=8, progress=progress)
    model.train(was_training)
    _tick(progress, 0, 1, "scoring")
    coordinates = isometric_coordinates(real_train, real_heldout, generated)
    metrics = gan_panel(*coordinates, int(np.prod(generated.shape[1:])), seed=seed)
    metrics["n"] = int(len(real_heldout))
    return metrics


# Held-out subjects whose latent is refined (30 Adam steps through the decoder, ~0.06 s
# of CPU per subject and step): all of hcp-ya's 167 took ~5 CPU-minutes; 16 (as many as
# the validation uses) keep `evaluate` within a minute, and the direct fidelity still
# covers every subject.
REFINED_SUBJECTS = 16


def evaluate_encoder(model, cohort, indices, max_subjects: int | None = None, seed: int = 0,
                     refine_steps: int | None = None, batch_size: int = 8,
                     max_refined: int | None = REFINED_SUBJECTS,
                     progress: Progress = None, train_indices=None) -> dict:
    """Latent encoder: held-out fidelity of G(E(x)) on every subject (``direct_*``), after
    refinement on a seeded subset of at most ``max_refined`` of them (``refined_*``, with
    ``refined_n`` and the same subset's ``direct_ssim_refined_subset``), and the latent
    MSE on generated pairs. Given ``train_indices``: on the refined subset, the MRI
    autoencoder's own reconstruction (``baseline_mri_ae_*``, a ceiling) and the
    training mean brain (``baseline_mean_brain_*``, the floor). Every SSIM/PSNR comes
    twice: inside the training mean brain's mask (``*_brain``, what the verdict reads,
    as for the autoencoder) and over the whole box (78% background: flattering)."""
    from brainlab.models.gan import standard_normal_latent

    if cohort.images is None:
        raise BrainlabInputError(f"cohort {cohort.name!r} has no images to evaluate on")
    positions = np.asarray(indices, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if max_subjects is not None and len(positions) > max_subjects:
        positions = np.sort(rng.choice(positions, int(max_subjects), replace=False))
    refined_rows = positions
    if max_refined is not None and len(positions) > max_refined:
        refined_rows = np.sort(rng.choice(positions, int(max_refined), replace=False))
    device = model.device
    gan = model.gan
    steps = int(model.config.refine_steps if refine_steps is None else refine_steps)
    # Progress in units of one encode + generate; a refinement step costs ~1.5 of them.
    refine_cost = 1.0 + 1.5 * steps
    total = len(positions) + refine_cost * len(refined_rows)
    real, direct = [], []
    for start in range(0, len(positions), batch_size):
        x = torch.from_numpy(cohort.images[positions[start:start + batch_size]])[:, None]
        with torch.no_grad():
            direct.append(gan.generate(model.encode(x.to(device)))[:, 0].cpu().numpy())
        real.append(x[:, 0].numpy())
        _tick(progress, min(start + batch_size, len(positions)), total, "encoding")
    real_refined, refined = [], []
    for start in range(0, len(refined_rows), batch_size):
        x = torch.from_numpy(cohort.images[refined_rows[start:start + batch_size]])[:, None]
        z = model.invert(x.to(device), refine_steps=refine_steps)
        with torch.no_grad():
            refined.append(gan.generate(z)[:, 0].cpu().numpy())
        real_refined.append(x[:, 0].numpy())
        _tick(progress, len(positions) + refine_cost * min(start + batch_size, len(refined_rows)),
              total, "refining")
    real_arr = np.concatenate(real)
    direct_arr = np.concatenate(direct)
    before = reconstruction_metrics(real_arr, direct_arr)
    after = reconstruction_metrics(np.concatenate(real_refined), np.concatenate(refined))
    train_rows = _training_rows(cohort, indices, train_indices)
    mask = mean_brain_mask(_RowView(cohort.images, train_rows))
    in_brain = {"direct": masked_reconstruction_metrics(real_arr, direct_arr, mask),
                "refined": masked_reconstruction_metrics(np.concatenate(real_refined),
                                                         np.concatenate(refined), mask)}
    subset = np.searchsorted(positions, refined_rows)
    with torch.no_grad():
        z = standard_normal_latent(256, seed, model.latent_dim).to(device)
        latent_mse = float(F.mse_loss(model.mapper(gan.whiten(gan.codes_from_latent(z))), z))
    metrics = {"n": int(len(positions)), "refined_n": int(len(refined_rows)),
               "latent_mse": latent_mse,
               "refine_steps": steps,
               "direct_ssim_refined_subset": float(np.mean(
                   np.asarray(before["per_subject_ssim"])[subset]))}
    for prefix, values in (("direct", before), ("refined", after)):
        for key in ("ssim", "psnr"):
            if key in values:
                metrics[f"{prefix}_{key}"] = values[key]
            if key in in_brain[prefix]:
                metrics[f"{prefix}_{key}_brain"] = in_brain[prefix][key]
    if train_indices is not None:
        originals = np.concatenate(real_refined)
        with torch.no_grad():
            autoencoded = np.concatenate([
                gan.autoencoder(torch.from_numpy(originals[i:i + batch_size])[:, None].to(device)
                                ).float().clamp(0.0, 1.0)[:, 0].cpu().numpy()
                for i in range(0, len(originals), batch_size)])
        mean_brain = np.zeros(originals.shape[1:], dtype=np.float64)
        for start in range(0, len(train_rows), 64):
            mean_brain += np.asarray(cohort.images[train_rows[start:start + 64]],
                                     dtype=np.float64).sum(axis=0)
        mean_images = np.broadcast_to((mean_brain / len(train_rows)).astype(np.float32),
                                      originals.shape)
        metrics.update(_prefixed("baseline_mri_ae", reconstruction_metrics(
            originals, autoencoded), ("ssim", "psnr")))
        metrics.update(_prefixed("baseline_mean_brain", reconstruction_metrics(
            originals, mean_images), ("ssim", "psnr")))
        for name, images in (("baseline_mri_ae", autoencoded), ("baseline_mean_brain", mean_images)):
            brain = masked_reconstruction_metrics(originals, np.ascontiguousarray(images), mask)
            metrics[f"{name}_ssim_brain"] = brain["ssim"]
            metrics[f"{name}_psnr_brain"] = brain["psnr"]
    return metrics


def evaluate_model(model, cohort, indices, max_subjects: int | None = None,
                   progress: Progress = None, train_indices=None) -> dict:
    """Held-out metrics of a loaded model with its type's evaluation function (registry);
    with ``train_indices`` (the training split) the baselines too (module docstring)."""
    from brainlab.registry import model_spec

    scorer = model_spec(model.model_type).evaluation()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        extra = {} if train_indices is None else {"train_indices": train_indices}
        metrics = dict(scorer(model, cohort, indices, max_subjects=max_subjects,
                              progress=progress, **extra))
    model.train(was_training)
    return metrics


def evaluate_checkpoint(path, cohort, max_subjects: int | None = None, split_name: str = "test",
                        device: str = "cpu", progress: Progress = None,
                        baselines: bool = True) -> dict:
    """Re-evaluate a checkpoint on ``cohort``'s held-out split (the card's split seed),
    with the baselines on the same subjects (``baselines=False`` leaves them out).

    Returns ``{"model_type", "card_metrics", "metrics", "cohort_match", "path"}``;
    raises ``CheckpointMismatchError`` when the checkpoint does not fit the cohort.
    """
    from brainlab.checkpoints import load_checkpoint

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fingerprint mismatch is reported in the result
        model, card = load_checkpoint(path, cohort=cohort, device=device)
    # fp32 as in the card; channels_last_3d gives the same outputs ~1.3x faster on CPU.
    model.set_precision(False, channels_last=True)
    split = cohort.split(int(card.get("cohort", {}).get("split_seed", 0)))
    indices = getattr(split, split_name)
    metrics = evaluate_model(model, cohort, indices, max_subjects, progress=progress,
                             train_indices=split.train if baselines else None)
    metrics["split"] = split_name
    return {"path": str(path), "model_type": card["model_type"],
            "card_metrics": card.get("metrics", {}),
            "metrics": metrics, "cohort_match": card.get("cohort_match")}
