"""Held-out metrics of every model: reconstructions, GAN samples, classifiers, brain age.

All functions take numpy arrays (or an ImageArray for image stacks) and return
plain floats / dicts, so they go straight into model cards, the CLI's JSON and
the app. Image intensities are expected in [0, 1] (``data_range=1``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

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


def _ssim_map(a: np.ndarray, b: np.ndarray, data_range: float, sigma: float) -> np.ndarray:
    """Voxelwise SSIM of two checked volumes (local statistics under a Gaussian window)."""
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
    return ssim_map


def ssim3d(a, b, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Structural similarity of two (D, H, W) volumes with a 3D Gaussian window.

    Wang et al.'s SSIM with local statistics from ``scipy.ndimage.gaussian_filter``
    (reflecting borders), averaged over every voxel of the volume, background
    included (no border crop, so tiny grids still work). 1 = identical.
    """
    a, b = _volume_pair(a, b)
    return float(_ssim_map(a, b, data_range, sigma).mean())


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


# ---------------------------------------------------------------- calibrated metrics
# Every quality number beside its baseline (issue 10): metrics inside the brain mask,
# the trivial baselines they are read against, and the rule that calls a model poor.

# Mean-brain intensity above which a voxel is "brain" (images in [0, 1], background 0).
BRAIN_MASK_THRESHOLD = 0.05


def mean_brain_mask(images, threshold: float = BRAIN_MASK_THRESHOLD, chunk: int = 64) -> np.ndarray:
    """Brain mask (D, H, W) bool: voxels where the mean of ``images`` exceeds ``threshold``.

    ``images`` is an (n, D, H, W) array or ImageArray (read ``chunk`` at a time), or
    one (D, H, W) mean image. Use the training images, so the mask is fixed per cohort.
    """
    if np.ndim(images) == 3 and not hasattr(images, "grid_shape"):
        mean = np.asarray(images, dtype=np.float64)
    else:
        n = len(images)
        if n == 0:
            raise BrainlabInputError("mean_brain_mask needs at least one image; found none")
        total = None
        for start in range(0, n, chunk):
            block = np.asarray(images[start:start + chunk], dtype=np.float64)
            if block.ndim != 4:
                raise BrainlabInputError(
                    f"images must be (n, D, H, W) or one (D, H, W) mean; found a block of "
                    f"shape {block.shape}")
            total = block.sum(axis=0) if total is None else total + block.sum(axis=0)
        mean = total / n
    mask = mean > threshold
    if not mask.any():
        raise BrainlabInputError(
            f"no voxel of the mean image exceeds {threshold}; expected intensities in [0, 1] "
            f"(mean image max {float(mean.max()):.3g})")
    return mask


def _check_mask(mask, shape) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tuple(shape):
        raise BrainlabInputError(f"mask has shape {mask.shape}; expected the volume shape {tuple(shape)}")
    if not mask.any():
        raise BrainlabInputError("mask is empty; expected at least one brain voxel")
    return mask


def ssim3d_masked(a, b, mask, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """SSIM of two volumes averaged over ``mask`` voxels only (the brain, not the box).

    Local statistics are those of ``ssim3d`` (Gaussian window over the whole volume);
    only the average is restricted, so background voxels do not inflate the score.
    """
    a, b = _volume_pair(a, b)
    mask = _check_mask(mask, a.shape)
    return float(_ssim_map(a, b, data_range, sigma)[mask].mean())


def psnr_masked(a, b, mask, data_range: float = 1.0) -> float:
    """PSNR in dB from the mean squared error over ``mask`` voxels; ``inf`` if identical there."""
    a, b = _volume_pair(a, b)
    mask = _check_mask(mask, a.shape)
    mse = float(np.mean((a[mask] - b[mask]) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def masked_reconstruction_metrics(originals, reconstructions, mask, data_range: float = 1.0) -> dict:
    """Per-subject SSIM and PSNR inside the brain ``mask`` (keys as ``reconstruction_metrics``),
    plus ``ssim_whole_box`` for comparison with the unmasked figure."""
    n = len(originals)
    if n == 0 or len(reconstructions) != n:
        raise BrainlabInputError(
            f"expected equal, non-zero numbers of originals and reconstructions; "
            f"found {n} and {len(reconstructions)}")
    ssims = np.array([ssim3d_masked(originals[i], reconstructions[i], mask, data_range)
                      for i in range(n)])
    psnrs = np.array([psnr_masked(originals[i], reconstructions[i], mask, data_range)
                      for i in range(n)])
    whole = np.array([ssim3d(originals[i], reconstructions[i], data_range) for i in range(n)])
    finite_psnr = psnrs[np.isfinite(psnrs)]
    return {
        "ssim": float(ssims.mean()), "ssim_sd": _sd(ssims),
        "psnr": float(finite_psnr.mean()) if len(finite_psnr) else float("inf"),
        "psnr_sd": _sd(psnrs), "ssim_whole_box": float(whole.mean()),
        "mask_voxels": int(np.count_nonzero(mask)), "n": int(n),
        "per_subject_ssim": ssims.tolist(), "per_subject_psnr": psnrs.tolist(),
    }


def _subset(images, max_n: int | None, seed: int):
    if max_n is None or len(images) <= max_n:
        return images
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), max_n, replace=False))
    return images[chosen]


def reconstruction_baselines(real_train, real_test, code_size: int, mask=None,
                             data_range: float = 1.0, max_train: int | None = 400,
                             seed: int = 0, return_images: bool = False) -> dict:
    """What a reconstruction score means: the same masked metrics for two trivial coders.

    - ``mean_brain``: every test image "reconstructed" as the training mean brain;
    - ``pca``: PCA with ``code_size`` components (the model's code size), fitted on
      the training images (a fixed subset of ``max_train`` when there are more),
      test images projected and reconstructed.
    ``mask`` defaults to ``mean_brain_mask(real_train)``. Returns {"mean_brain": metrics,
    "pca": metrics, "code_size", "pca_components", "n_train_fit"} (+ "pca_images" with
    ``return_images``).
    """
    if code_size < 1:
        raise BrainlabInputError(f"code_size must be >= 1; found {code_size}")
    train = flatten_volumes(_subset(real_train, max_train, seed), "real_train")
    test = np.asarray(real_test, dtype=np.float32)
    test_flat = flatten_volumes(test, "real_test")
    if train.shape[1] != test_flat.shape[1]:
        raise BrainlabInputError(
            f"train images have {train.shape[1]} voxels, test images {test_flat.shape[1]}; "
            f"expected one grid")
    if mask is None:
        mask = mean_brain_mask(train.mean(axis=0).reshape(test.shape[1:]))
    mean = train.mean(axis=0)
    mean_images = np.broadcast_to(mean.reshape(test.shape[1:]), test.shape)
    k = int(min(code_size, len(train) - 1, train.shape[1]))
    if k < 1:
        raise BrainlabInputError(f"PCA baseline needs >= 2 training images; found {len(train)}")
    pca = PCA(n_components=k, svd_solver="randomized" if k < min(train.shape) // 2 else "full",
              random_state=seed).fit(train)
    pca_images = pca.inverse_transform(pca.transform(test_flat)).reshape(test.shape)
    result = {
        "mean_brain": masked_reconstruction_metrics(test, mean_images, mask, data_range),
        "pca": masked_reconstruction_metrics(test, pca_images, mask, data_range),
        "code_size": int(code_size), "pca_components": k, "n_train_fit": int(len(train)),
    }
    if return_images:  # texture metrics of the baselines need their images too
        result["pca_images"] = pca_images.astype(np.float32)
    return result


def _equal_n(a: np.ndarray, b: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    pick = (lambda x: x if len(x) == n else x[np.sort(rng.choice(len(x), n, replace=False))])
    return pick(a), pick(b)


@dataclass(frozen=True)
class FrechetSpace:
    """PCA features fitted on the training images, and the training images' codes in them."""

    pca: PCA
    train_codes: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.pca.n_components_)


def fit_frechet_space(real_train, n_components: int = 32, seed: int = 0) -> FrechetSpace:
    """Fit the Fréchet feature space once (PCA of the flattened training images), so
    ``normalised_frechet`` over several seeds or models reuses it."""
    train = flatten_volumes(real_train, "real_train")
    if len(train) < 3:
        raise BrainlabInputError(f"need >= 3 training images; found {len(train)}")
    k = int(min(n_components, len(train) - 1, train.shape[1]))
    pca = PCA(n_components=k, random_state=seed).fit(train)
    return FrechetSpace(pca, pca.transform(train))


def normalised_frechet(real_train, real_heldout, generated, n_components: int = 32,
                       seed: int = 0, space: FrechetSpace | None = None) -> dict:
    """Fréchet(generated, train) / Fréchet(held-out real, train): 1.0 = as real as unseen brains.

    Both distances use the same PCA features (fitted on the flattened training
    images, or ``space`` from ``fit_frechet_space`` to reuse them; ``real_train`` is
    then ignored and may be None) and the same number of images: the larger of
    held-out / generated is subsampled (seeded) to the smaller, because Fréchet
    estimates grow as n shrinks. A perfect generator (more unseen real brains)
    scores about 1; how far from 1 two real sets of this size land is the noise
    floor to read a generator against (``mean_sd_over_seeds`` for the spread).
    """
    heldout = flatten_volumes(real_heldout, "real_heldout")
    fake = flatten_volumes(generated, "generated")
    if space is None:
        space = fit_frechet_space(real_train, n_components, seed)
    voxels = space.pca.n_features_in_
    if not voxels == heldout.shape[1] == fake.shape[1]:
        raise BrainlabInputError(
            f"voxel counts differ: train {voxels}, held-out {heldout.shape[1]}, "
            f"generated {fake.shape[1]}; expected one grid")
    heldout, fake = _equal_n(heldout, fake, seed)
    n = len(fake)
    if n < 3:
        raise BrainlabInputError(
            f"need >= 3 held-out and generated images; found {len(real_heldout)} and "
            f"{len(generated)}")
    k = int(min(space.n_components, n - 1))
    train_z = space.train_codes[:, :k]
    heldout_z, fake_z = space.pca.transform(heldout)[:, :k], space.pca.transform(fake)[:, :k]
    generated_distance = _frechet_distance(fake_z, train_z)
    heldout_distance = _frechet_distance(heldout_z, train_z)
    return {
        "normalised_frechet": (generated_distance / heldout_distance
                               if heldout_distance > 0 else float("nan")),
        "frechet_generated_train": generated_distance,
        "frechet_heldout_train": heldout_distance,
        "n_each": int(n), "n_train": int(len(train_z)), "n_components": k,
    }


MIN_SEEDS = 5


def mean_sd_over_seeds(evaluate, seeds=range(MIN_SEEDS), min_seeds: int = MIN_SEEDS) -> dict:
    """Run ``evaluate(seed)`` for each seed; mean and sd (ddof 1) of what it returns.

    ``evaluate`` returns a float or a dict of floats (e.g. ``normalised_frechet``);
    non-numeric entries are ignored. Returns {key: {"mean", "sd", "values"}} for a
    dict, {"mean", "sd", "values"} for a float, with "n_seeds" in both.
    """
    seeds = list(seeds)
    if len(seeds) < min_seeds:
        raise BrainlabInputError(f"need >= {min_seeds} seeds for a mean ± sd; found {len(seeds)}")
    results = [evaluate(int(seed)) for seed in seeds]

    def spread(values):
        values = np.asarray(values, dtype=np.float64)
        return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)),
                "values": values.tolist()}

    if isinstance(results[0], dict):
        keys = [k for k, v in results[0].items()
                if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)]
        out = {key: spread([r[key] for r in results]) for key in keys}
        out["n_seeds"] = len(seeds)
        return out
    return {**spread(results), "n_seeds": len(seeds)}


def auc_confidence_interval(y_true, scores, level: float = 0.95) -> dict:
    """ROC AUC with DeLong's standard error and a normal ``level`` interval (clipped to [0, 1]).

    DeLong, DeLong & Clarke-Pearson (1988): the variance of the AUC from the
    per-positive and per-negative placement values; ties count one half.
    """
    from scipy.stats import norm

    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape or not np.isin(y, [0, 1]).all():
        raise BrainlabInputError(
            f"y_true must be 0/1 and scores one per label; found shapes {y.shape} and {s.shape}")
    if not 0 < level < 1:
        raise BrainlabInputError(f"level must be in (0, 1); found {level}")
    positives, negatives = s[y == 1], s[y == 0]
    if len(positives) < 2 or len(negatives) < 2:
        raise BrainlabInputError(
            f"need >= 2 of each class for an AUC interval; found {len(positives)} positive "
            f"and {len(negatives)} negative")
    # psi(x, y) = 1 if x > y, 0.5 if tied: placement of each positive among the negatives.
    greater = (positives[:, None] > negatives[None, :]).astype(np.float64)
    greater += 0.5 * (positives[:, None] == negatives[None, :])
    v10, v01 = greater.mean(axis=1), greater.mean(axis=0)
    auc = float(v10.mean())
    variance = v10.var(ddof=1) / len(positives) + v01.var(ddof=1) / len(negatives)
    se = float(np.sqrt(variance))
    z = float(norm.ppf(0.5 + level / 2))
    return {"auc": auc, "se": se, "low": max(0.0, auc - z * se), "high": min(1.0, auc + z * se),
            "level": float(level), "n_positive": int(len(positives)),
            "n_negative": int(len(negatives))}


def two_sample_auc_ci(real, generated, seed: int = 0, n_splits: int = 5, n_components: int = 32,
                      level: float = 0.95) -> dict:
    """Two-sample test AUC (real vs generated) with a DeLong confidence interval.

    The classifier and folds are ``real_vs_generated_problem``'s; the AUC is that of
    the pooled out-of-fold decision scores (so one interval covers all folds).
    0.5 = indistinguishable.
    """
    from sklearn.model_selection import cross_val_predict

    x, y, folds, model = real_vs_generated_problem(real, generated, seed, n_splits, n_components)
    scores = cross_val_predict(model, x, y, cv=folds, method="decision_function")
    result = auc_confidence_interval(y, scores, level)
    result["n_real"], result["n_generated"] = int((y == 0).sum()), int((y == 1).sum())
    return result


# ------------------------------------------------- texture: sharpness of reconstructions

# Gaussian sd (voxels) of the blur whose residual is "high frequency": at 3.1 mm voxels,
# sigma 1 keeps detail finer than about 2 voxels (edges, folds, noise-like texture).
HIGH_PASS_SIGMA = 1.0


def high_frequency_energy(images, mask, sigma: float = HIGH_PASS_SIGMA) -> np.ndarray:
    """Per-volume mean squared high-pass ``x - gaussian_filter(x, sigma)`` inside ``mask``.

    ``images``: (n, D, H, W) array or ImageArray; returns (n,) float64.
    """
    if len(images) == 0:
        raise BrainlabInputError("high_frequency_energy needs at least one volume; found none")
    mask = _check_mask(mask, np.asarray(images[0]).shape)
    energies = []
    for i in range(len(images)):
        volume = np.asarray(images[i], dtype=np.float64)
        band = volume - gaussian_filter(volume, sigma=sigma, mode="reflect")
        energies.append(float(np.mean(band[mask] ** 2)))
    return np.asarray(energies)


def high_frequency_ratio(reconstructions, originals, mask, sigma: float = HIGH_PASS_SIGMA) -> dict:
    """Mean in-mask high-frequency energy of ``reconstructions`` over that of ``originals``
    (1 = as much fine detail as real volumes; a blurred decoder scores well below 1)."""
    recon = high_frequency_energy(reconstructions, mask, sigma)
    real = high_frequency_energy(originals, mask, sigma)
    return {"hf_energy_ratio": float(recon.mean() / real.mean()) if real.mean() > 0 else float("nan"),
            "hf_energy": float(recon.mean()), "hf_energy_real": float(real.mean())}


def texture_features(images, mask) -> np.ndarray:
    """(n, 8) simple in-mask texture features per volume: high-pass energy at three scales
    (log), local-sd mean, gradient-magnitude mean and sd, intensity mean and sd."""
    mask = _check_mask(mask, np.asarray(images[0]).shape)
    rows = []
    for i in range(len(images)):
        x = np.asarray(images[i], dtype=np.float64)
        bands = [x - gaussian_filter(x, sigma=s, mode="reflect") for s in (0.7, 1.5, 3.0)]
        local_var = gaussian_filter(x * x, 1.0) - gaussian_filter(x, 1.0) ** 2
        gradient = np.sqrt(sum(g ** 2 for g in np.gradient(x)))
        rows.append([*(np.log(np.mean(b[mask] ** 2) + 1e-12) for b in bands),
                     float(np.sqrt(np.clip(local_var, 0, None))[mask].mean()),
                     float(gradient[mask].mean()), float(gradient[mask].std()),
                     float(x[mask].mean()), float(x[mask].std())])
    return np.asarray(rows)


def texture_two_sample_auc(real, generated, mask, groups=None, seed: int = 0, n_splits: int = 5,
                           level: float = 0.95) -> dict:
    """Can texture tell ``generated`` (e.g. reconstructions) from ``real`` volumes?

    Logistic regression on standardised ``texture_features``, out-of-fold decision scores
    over stratified K-fold (grouped by ``groups``, e.g. the subject a reconstruction came
    from, so no subject is in both training and test folds), and the AUC of the pooled
    scores with DeLong's ``level`` interval. 0.5 = texture is indistinguishable.
    """
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    if len(real) < 2 or len(generated) < 2:
        raise BrainlabInputError(
            f"need >= 2 real and >= 2 generated volumes; found {len(real)} and {len(generated)}")
    x = np.concatenate([texture_features(real, mask), texture_features(generated, mask)])
    y = np.r_[np.zeros(len(real), int), np.ones(len(generated), int)]
    if groups is None:
        groups = np.arange(len(y))
    groups = np.asarray(groups)
    if groups.shape != y.shape:
        raise BrainlabInputError(f"groups must give one label per volume ({len(y)}); found {groups.shape}")
    n_splits = int(min(n_splits, len(real), len(generated)))
    folds = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    scores = cross_val_predict(model, x, y, cv=folds, groups=groups, method="decision_function")
    result = auc_confidence_interval(y, scores, level)
    result["n_real"], result["n_generated"] = int(len(real)), int(len(generated))
    return result


# ---------------------------------------------------------------- trivial baselines

# Direction of each metric and the margin by which a model must beat its trivial
# baseline not to be "poor" (absolute, in the metric's unit; relative for MAE).
METRIC_RULES = {
    "accuracy": ("higher", 0.02), "balanced_accuracy": ("higher", 0.02),
    "roc_auc": ("higher", 0.02), "auc": ("higher", 0.02), "r": ("higher", 0.05),
    "ssim": ("higher", 0.01), "psnr": ("higher", 0.5),
    "mae": ("lower_relative", 0.05), "normalised_frechet": ("lower", 0.0),
}


def is_poor(metric: str, model_value, baseline_value, margin: float | None = None) -> bool:
    """True when a model is not clearly better than its trivial baseline.

    "Clearly better" = beyond ``margin`` (default from ``METRIC_RULES``): e.g. balanced
    accuracy at least 0.02 above the majority-class predictor's, MAE at least 5%
    below the training-mean predictor's. A missing (None/NaN) model value is poor.
    """
    if metric not in METRIC_RULES:
        raise BrainlabInputError(
            f"unknown metric {metric!r} for is_poor; expected one of {', '.join(METRIC_RULES)}")
    direction, default_margin = METRIC_RULES[metric]
    margin = default_margin if margin is None else float(margin)
    if model_value is None or not np.isfinite(model_value):
        return True
    if baseline_value is None or not np.isfinite(baseline_value):
        raise BrainlabInputError(f"baseline value for {metric} is missing; cannot judge the model")
    model_value, baseline_value = float(model_value), float(baseline_value)
    if direction == "higher":
        return not model_value >= baseline_value + margin
    if direction == "lower":
        return not model_value <= baseline_value - margin
    return not model_value <= baseline_value * (1.0 - margin)


def majority_baseline(y_train, y_test) -> dict:
    """The majority-class predictor (fitted on ``y_train``) scored on ``y_test``:
    accuracy (= the test majority rate when the classes agree), balanced accuracy,
    and AUC 0.5 (a constant score carries no ranking)."""
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if len(y_train) == 0 or len(y_test) == 0:
        raise BrainlabInputError("majority_baseline needs non-empty y_train and y_test")
    values, counts = np.unique(y_train, return_counts=True)
    majority = values[np.argmax(counts)]
    predicted = np.full(len(y_test), majority)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        balanced = float(balanced_accuracy_score(y_test, predicted))
    test_values, test_counts = np.unique(y_test, return_counts=True)
    return {"accuracy": float(np.mean(predicted == y_test)), "balanced_accuracy": balanced,
            "roc_auc": 0.5, "majority_class": majority.item() if hasattr(majority, "item") else majority,
            "majority_rate": float(test_counts.max() / len(y_test)), "n": int(len(y_test))}


def mean_predictor_baseline(y_train, y_test) -> dict:
    """Predict the training mean for everyone: ``regression_metrics`` of that constant."""
    y_train = np.asarray(y_train, dtype=np.float64)
    if len(y_train) == 0 or not np.isfinite(y_train).all():
        raise BrainlabInputError("mean_predictor_baseline needs finite, non-empty y_train")
    constant = np.full(len(np.asarray(y_test)), y_train.mean())
    result = regression_metrics(y_test, constant)
    result["prediction"] = float(y_train.mean())
    return result


def morphometry_baselines(cohort, train_index, test_index, target: str = "sex") -> dict:
    """Linear models on the morphometry table, fitted on train rows, scored on test rows.

    ``target``: ``"sex"`` (logistic regression, P(male); ``classifier_metrics``) or
    ``"age"`` (linear regression on years; ``regression_metrics``). Two feature sets:
    ``icv_only`` and ``all_features`` (every numeric morphometry column), each with
    StandardScaler. ICV is found as in ``cohort_validation.standard_measures``.
    """
    from sklearn.linear_model import LinearRegression

    from brainlab.analysis.cohort_validation import feature_matrix, standard_measures

    train_index, test_index = np.asarray(train_index), np.asarray(test_index)
    features, names = feature_matrix(cohort)
    if features.shape[1] == 0:
        raise BrainlabInputError(f"cohort {cohort.name!r} has no numeric morphometry columns")
    measures, _ = standard_measures(cohort)
    if target == "sex":
        y = cohort.male_mask().astype(int)
    elif target == "age":
        y = _column_as_float(cohort.table["age"])
        if not np.isfinite(y[np.r_[train_index, test_index]]).all():
            raise BrainlabInputError(
                f"cohort {cohort.name!r} lacks ages in years for some subjects; age baselines "
                f"need them")
    else:
        raise BrainlabInputError(f"target must be 'sex' or 'age'; found {target!r}")
    sets = {"all_features": features}
    if "icv" in measures:
        sets["icv_only"] = measures[["icv"]].to_numpy(float)
    result = {"n_features": int(features.shape[1])}
    for label, x in sets.items():
        if target == "sex":
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
            model.fit(x[train_index], y[train_index])
            result[label] = classifier_metrics(y[test_index], model.predict_proba(x[test_index])[:, 1])
        else:
            model = make_pipeline(StandardScaler(), LinearRegression())
            model.fit(x[train_index], y[train_index])
            result[label] = regression_metrics(y[test_index], model.predict(x[test_index]))
    if "icv_only" not in result:
        result["icv_only"] = None
        result["note"] = "no ICV column found (icv_cc or FS_IntraCranial_Vol)"
    return result


def _column_as_float(values) -> np.ndarray:
    """A table column as float64 (non-numbers -> NaN)."""
    import pandas as pd

    return pd.to_numeric(values, errors="coerce").to_numpy(np.float64)


def age_bin_metrics(y_true, probabilities, sex, youngest: int = 0, oldest: int = 2) -> dict:
    """Age-bin classifier figures that do not hide the signal behind a 4-class accuracy.

    ``probabilities`` (n, K) per ordinal bin; ``sex`` (n,) 'F'/'M'. Returns
    balanced accuracy (beside ``majority_rate``, the share of the commonest true bin,
    labelled as such), accuracy, and per sex the AUC of the expected bin
    (sum_k k p_k) for ``youngest`` vs ``oldest`` bin subjects (None when either
    group has < 2 subjects).
    """
    y = np.asarray(y_true)
    p = np.asarray(probabilities, dtype=np.float64)
    sex = np.asarray(sex)
    if p.ndim != 2 or len(p) != len(y) or len(sex) != len(y) or len(y) == 0:
        raise BrainlabInputError(
            f"expected y_true (n,), probabilities (n, bins) and sex (n,); found {y.shape}, "
            f"{p.shape} and {sex.shape}")
    if not np.isin(y, np.arange(p.shape[1])).all():
        raise BrainlabInputError(
            f"y_true must hold bin codes 0..{p.shape[1] - 1}; found {np.unique(y).tolist()[:10]}")
    predicted = p.argmax(axis=1)
    expected_bin = p @ np.arange(p.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = {"balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
                  "accuracy": float(accuracy_score(y, predicted)),
                  "majority_rate": float(np.bincount(y.astype(int)).max() / len(y)),
                  "n": int(len(y))}
    for label in ("F", "M"):
        chosen = (sex == label) & np.isin(y, [youngest, oldest])
        labels = (y[chosen] == oldest).astype(int)
        key = f"auc_youngest_vs_oldest_{label}"
        if min(labels.sum(), len(labels) - labels.sum()) < 2:
            result[key] = None
        else:
            result[key] = float(roc_auc_score(labels, expected_bin[chosen]))
    return result
