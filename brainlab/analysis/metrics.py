"""Held-out metrics of every model: reconstructions, GAN samples, classifiers, brain age.

All functions take numpy arrays (or an ImageArray for image stacks) and return
plain floats / dicts, so they go straight into model cards, the CLI's JSON and
the app. Image intensities are expected in [0, 1] (``data_range=1``).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import sqrtm
from scipy.ndimage import gaussian_filter
from scipy.stats import pearsonr
from sklearn.calibration import calibration_curve
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, mean_absolute_error,
                             roc_auc_score)
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainlab.analysis.memorisation import flatten_volumes, memorisation_report
from brainlab.errors import BrainlabInputError

# SSIM constants of Wang et al. (2004): C1 = (K1 L)^2, C2 = (K2 L)^2.
SSIM_K1 = 0.01
SSIM_K2 = 0.03
# Gaussian truncated at 3.5 sigma: sigma 1.5 gives Wang's 11-tap window.
SSIM_TRUNCATE = 3.5


def _volume_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 3 or a.shape != b.shape:
        raise BrainlabInputError(
            f"expected two 3D volumes (D, H, W) of the same shape; found {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise BrainlabInputError("volumes contain NaN or infinite values")
    return a, b


def ssim3d(a, b, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Structural similarity of two (D, H, W) volumes with a 3D Gaussian window.

    Wang et al.'s SSIM with local statistics from ``scipy.ndimage.gaussian_filter``
    (reflecting borders), averaged over every voxel of the volume, background
    included (no border crop, so tiny grids still work). 1 = identical.
    """
    a, b = _volume_pair(a, b)
    if data_range <= 0 or sigma <= 0:
        raise BrainlabInputError(f"data_range and sigma must be > 0; found {data_range}, {sigma}")

    def local_mean(x):
        return gaussian_filter(x, sigma=sigma, truncate=SSIM_TRUNCATE, mode="reflect")

    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a**2
    var_b = local_mean(b * b) - mu_b**2
    cov_ab = local_mean(a * b) - mu_a * mu_b
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def psnr(a, b, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical volumes."""
    a, b = _volume_pair(a, b)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def _sd(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0


def reconstruction_metrics(originals, reconstructions, data_range: float = 1.0) -> dict:
    """Per-subject SSIM and PSNR of (n, D, H, W) reconstructions, with mean and sd.

    ``originals`` may be an ImageArray (read one volume at a time). PSNR of a
    perfect reconstruction is ``inf``; the PSNR mean/sd skip infinite values.
    """
    n = len(originals)
    if n == 0 or len(reconstructions) != n:
        raise BrainlabInputError(
            f"expected equal, non-zero numbers of originals and reconstructions; "
            f"found {n} and {len(reconstructions)}")
    ssims = np.array([ssim3d(originals[i], reconstructions[i], data_range) for i in range(n)])
    psnrs = np.array([psnr(originals[i], reconstructions[i], data_range) for i in range(n)])
    finite_psnr = psnrs[np.isfinite(psnrs)]
    return {
        "ssim": float(ssims.mean()),
        "ssim_sd": _sd(ssims),
        "psnr": float(finite_psnr.mean()) if len(finite_psnr) else float("inf"),
        "psnr_sd": _sd(psnrs),
        "n": int(n),
        "per_subject_ssim": ssims.tolist(),
        "per_subject_psnr": psnrs.tolist(),
    }


def _frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of x and y."""
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    cov_x = np.atleast_2d(np.cov(x, rowvar=False))
    cov_y = np.atleast_2d(np.cov(y, rowvar=False))
    covmean = sqrtm(cov_x @ cov_y)
    if not np.isfinite(covmean).all():
        # Near-singular product: nudge both covariances (as FID implementations do).
        offset = np.eye(len(cov_x)) * 1e-6
        covmean = sqrtm((cov_x + offset) @ (cov_y + offset))
    covmean = np.real(covmean)
    distance = np.sum((mu_x - mu_y) ** 2) + np.trace(cov_x) + np.trace(cov_y) - 2 * np.trace(covmean)
    return float(max(distance, 0.0))


def pca_frechet(real_train, real_heldout, generated, n_components: int = 32, seed: int = 0) -> dict:
    """Fréchet distance of generated vs held-out real images in a PCA feature space.

    The PCA is fitted on the flattened real training images. ``frechet_floor`` is
    the same distance between real training and held-out images (what "as real as
    real data" looks like); ``frechet_ratio`` = frechet / floor (1 = at the floor).
    Fréchet estimates grow as samples shrink, so compare with similar numbers of
    generated and training images. Components are capped at (smallest set - 1).
    """
    train = flatten_volumes(real_train, "real_train")
    heldout = flatten_volumes(real_heldout, "real_heldout")
    fake = flatten_volumes(generated, "generated")
    if not train.shape[1] == heldout.shape[1] == fake.shape[1]:
        raise BrainlabInputError(
            f"voxel counts differ: train {train.shape[1]}, held-out {heldout.shape[1]}, "
            f"generated {fake.shape[1]}; expected one grid")
    smallest = min(len(train), len(heldout), len(fake))
    if smallest < 2:
        raise BrainlabInputError(
            f"need >= 2 images in each set; found train {len(train)}, held-out {len(heldout)}, "
            f"generated {len(fake)}")
    k = int(min(n_components, smallest - 1, train.shape[1]))
    pca = PCA(n_components=k, random_state=seed).fit(train)
    train_z, heldout_z, fake_z = pca.transform(train), pca.transform(heldout), pca.transform(fake)
    frechet = _frechet_distance(fake_z, heldout_z)
    floor = _frechet_distance(train_z, heldout_z)
    return {
        "frechet": frechet,
        "frechet_floor": floor,
        "frechet_ratio": frechet / floor if floor > 0 else float("nan"),
        "n_generated": int(len(fake)),
        "n_heldout": int(len(heldout)),
        "n_components": k,
    }


def real_vs_generated_problem(real, generated, seed: int = 0, n_splits: int = 5,
                              n_components: int = 32):
    """``(x, y, folds, model)`` for telling real (y = 0) from generated (y = 1) volumes.

    ``x`` holds the flattened volumes, real first; ``folds`` are stratified K-fold
    (train, test) index pairs with a fixed seed; ``model`` is an unfitted pipeline:
    PCA (at most ``n_components``, fewer than the smallest training fold) ->
    standardised scores -> logistic regression. Shared by ``two_sample_auc`` and
    ``real_vs_synthetic.real_vs_synthetic_discriminator``.
    """
    real_flat = flatten_volumes(real, "real")
    fake_flat = flatten_volumes(generated, "generated")
    if real_flat.shape[1] != fake_flat.shape[1]:
        raise BrainlabInputError(
            f"real volumes have {real_flat.shape[1]} voxels, generated {fake_flat.shape[1]}; "
            f"expected one grid")
    n_splits = min(n_splits, len(real_flat), len(fake_flat))
    if n_splits < 2:
        raise BrainlabInputError(
            f"need >= 2 real and >= 2 generated volumes; found {len(real_flat)} and {len(fake_flat)}")
    x = np.concatenate([real_flat, fake_flat])
    y = np.r_[np.zeros(len(real_flat), int), np.ones(len(fake_flat), int)]
    folds = list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(x, y))
    smallest_train = min(len(train) for train, _ in folds)
    k = int(min(n_components, smallest_train - 1, x.shape[1]))
    model = make_pipeline(PCA(n_components=k, random_state=seed), StandardScaler(),
                          LogisticRegression(max_iter=2000))
    return x, y, folds, model


def two_sample_auc(real, generated, seed: int = 0, n_splits: int = 5, n_components: int = 32) -> float:
    """Cross-validated ROC AUC of a classifier telling real from generated volumes.

    Pipeline: PCA of the flattened volumes (fitted inside each fold) -> standardised
    scores -> logistic regression; stratified K-fold with a fixed seed. 0.5 =
    indistinguishable, 1 = perfectly separable (values below 0.5 are chance).
    """
    x, y, folds, model = real_vs_generated_problem(real, generated, seed, n_splits, n_components)
    return float(np.mean(cross_val_score(model, x, y, cv=folds, scoring="roc_auc")))


def diversity(images, max_samples: int = 256, seed: int = 0) -> float:
    """Mean pairwise RMS voxel distance between volumes (higher = more varied).

    The same distance as the memorisation check (L2 / sqrt(voxels)), so a GAN's
    figure reads directly against held-out real images'. Above ``max_samples``
    a fixed random subset is used (pairs grow quadratically).
    """
    n = len(images)
    if n < 2:
        raise BrainlabInputError(f"diversity needs >= 2 volumes; found {n}")
    if n > max_samples:
        chosen = np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))
        images = images[chosen]
    flat = flatten_volumes(images, "images")
    distances = euclidean_distances(flat)
    upper = distances[np.triu_indices(len(flat), k=1)]
    return float(upper.mean() / np.sqrt(flat.shape[1]))


def gan_metrics(real_train, real_heldout, generated, seed: int = 0) -> dict:
    """The GAN quality panel: PCA-Fréchet (+ floor, ratio), two-sample AUC,
    diversity of samples vs held-out real, and a memorisation summary. JSON-safe.
    """
    result = pca_frechet(real_train, real_heldout, generated, seed=seed)
    result["n_train"] = int(len(real_train))
    result["two_sample_auc"] = two_sample_auc(real_heldout, generated, seed=seed)
    result["diversity_generated"] = diversity(generated, seed=seed)
    result["diversity_real"] = diversity(real_heldout, seed=seed)
    result["diversity_ratio"] = (result["diversity_generated"] / result["diversity_real"]
                                 if result["diversity_real"] > 0 else float("nan"))
    report = memorisation_report(generated, real_train, real_heldout)
    for key in ("threshold", "percentile", "fraction_suspected", "n_suspected",
                "median_generated", "median_heldout", "median_ratio"):
        result[f"memorisation_{key}"] = report[key]
    return result


def _binary_inputs(y_true, p_positive) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(p_positive, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape or len(y) == 0:
        raise BrainlabInputError(
            f"y_true and p_positive must be 1D of the same, non-zero length; "
            f"found {y.shape} and {p.shape}")
    if not np.isin(y, [0, 1]).all():
        raise BrainlabInputError(
            f"y_true must be 0/1 (or bool); found values {np.unique(y).tolist()[:10]}")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise BrainlabInputError("p_positive must be finite probabilities in [0, 1]")
    return y.astype(int), p


def calibration_curve_points(y_true, p, n_bins: int = 10) -> dict:
    """Reliability diagram points over ``n_bins`` equal-width bins of P(positive).

    Wraps ``sklearn.calibration.calibration_curve`` (which drops empty bins) and
    adds each kept bin's count: {"mean_predicted", "fraction_positive", "count"}.
    """
    y, p = _binary_inputs(y_true, p)
    if n_bins < 1:
        raise BrainlabInputError(f"n_bins must be >= 1; found {n_bins}")
    fraction_positive, mean_predicted = calibration_curve(
        y, p, n_bins=n_bins, strategy="uniform", pos_label=1)
    # Same binning as calibration_curve's uniform strategy, to count the kept bins.
    bin_ids = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], p)
    counts = np.bincount(bin_ids, minlength=n_bins)
    counts = counts[counts > 0]
    return {"mean_predicted": mean_predicted, "fraction_positive": fraction_positive,
            "count": counts}


def classifier_metrics(y_true, p_positive, threshold: float = 0.5) -> dict:
    """Accuracy, balanced accuracy, ROC AUC and expected calibration error (10 bins).

    ``y_true`` is 0/1, ``p_positive`` = P(class 1). With one class present ROC AUC
    is undefined: it is None and ``note`` says why. ECE is the count-weighted mean
    |fraction positive - mean predicted| over the calibration bins.
    """
    y, p = _binary_inputs(y_true, p_positive)
    predicted = (p >= threshold).astype(int)
    result = {"accuracy": float(accuracy_score(y, predicted))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one-class balanced accuracy warns, is still defined
        result["balanced_accuracy"] = float(balanced_accuracy_score(y, predicted))
    if len(np.unique(y)) < 2:
        result["roc_auc"] = None
        result["note"] = f"only class {int(y[0])} present in y_true; ROC AUC is undefined"
    else:
        result["roc_auc"] = float(roc_auc_score(y, p))
    curve = calibration_curve_points(y, p, n_bins=10)
    gaps = np.abs(curve["fraction_positive"] - curve["mean_predicted"])
    result["ece"] = float(np.sum(curve["count"] * gaps) / len(y))
    result["n"] = int(len(y))
    return result


def regression_metrics(y_true, y_pred) -> dict:
    """Mean absolute error, mean error (bias) and Pearson r of predictions.

    r is None (with a ``note``) when fewer than 2 values or either side is constant.
    """
    y = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    if y.ndim != 1 or pred.shape != y.shape or len(y) == 0:
        raise BrainlabInputError(
            f"y_true and y_pred must be 1D of the same, non-zero length; "
            f"found {y.shape} and {pred.shape}")
    if not (np.isfinite(y).all() and np.isfinite(pred).all()):
        raise BrainlabInputError("y_true and y_pred must not contain NaN or infinite values")
    result = {"mae": float(mean_absolute_error(y, pred)), "mean_error": float(np.mean(pred - y))}
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(pred) == 0:
        result["r"] = None
        result["note"] = "Pearson r is undefined for fewer than 2 values or a constant side"
    else:
        result["r"] = float(pearsonr(y, pred).statistic)
    result["n"] = int(len(y))
    return result
