"""Classifiers on real vs synthetic brains: do GAN samples look like real ones to a model?

A sex classifier (P(male)) or brain-age model (predicted years) is run on the
held-out real subjects and on N GAN samples. The report holds both score
distributions, the male fraction (or mean predicted age) of each, the
classifier's confusion matrix and calibration on real brains, a two-sample
real-vs-synthetic AUC, a memorisation check (each sample's nearest training
brain, against the held-out-real baseline) and a realism ranking of the samples:
the out-of-fold probability that a real-vs-synthetic discriminator (PCA ->
logistic regression, as in ``metrics.two_sample_auc``) calls the sample real.

Used by the Classifiers page and ``python -m brainlab compare``.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from brainlab.analysis.memorisation import memorisation_report
from brainlab.analysis.metrics import (calibration_curve_points, classifier_metrics,
                                       real_vs_generated_problem, regression_metrics)
from brainlab.errors import BrainlabInputError

CLASSIFIER_TYPES = ("sex-clf", "age-model")


def classifier_kind(model) -> str:
    """'sex' for a sex classifier, 'age' for a brain-age model; raises otherwise."""
    model_type = getattr(model, "model_type", None)
    if model_type == "sex-clf":
        return "sex"
    if model_type == "age-model":
        return "age"
    raise BrainlabInputError(
        f"expected a sex classifier ('sex-clf') or brain-age model ('age-model'); "
        f"found {model_type!r}")


@torch.inference_mode()
def classifier_outputs(model, volumes, batch_size: int = 16) -> np.ndarray:
    """P(male) (sex classifier) or predicted age (brain-age model) of (n, D, H, W) volumes.

    ``volumes`` may be an array or an ImageArray; returns (n,) float64.
    """
    kind = classifier_kind(model)
    predict = model.predict_proba if kind == "sex" else model.predict_age
    n = len(volumes)
    if n == 0:
        raise BrainlabInputError("no volumes to classify; expected at least one")
    outputs = []
    for start in range(0, n, batch_size):
        batch = np.asarray(volumes[start:start + batch_size], dtype=np.float32)
        if batch.ndim != 4:
            raise BrainlabInputError(
                f"volumes must be (n, D, H, W); found a batch of shape {batch.shape}")
        outputs.append(predict(torch.from_numpy(batch)[:, None]).float().cpu().numpy())
    return np.concatenate(outputs).astype(np.float64)


@torch.inference_mode()
def generate_samples(gan, n: int, seed: int = 0, batch_size: int = 16
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` GAN samples from a seed: (latents (n, latent_dim), volumes (n, D, H, W)).

    Decoded by ``gan_walks.render_frames`` in the model's own precision (the samples
    feed metrics), with its channels_last_3d weights (the same numbers, faster).
    """
    from brainlab.analysis.gan_walks import render_frames

    if int(n) < 1:
        raise BrainlabInputError(f"number of samples must be >= 1; found {n}")
    latents = np.asarray(gan.sample_latent(int(n), int(seed)), dtype=np.float32)
    return latents, render_frames(gan, latents, batch_size=batch_size)


def real_vs_synthetic_discriminator(real, generated, seed: int = 0, n_splits: int = 5,
                                    n_components: int = 32) -> dict:
    """Cross-validated real-vs-synthetic discriminator: its AUC and each sample's P(real).

    The pipeline and folds are those of ``metrics.two_sample_auc`` (PCA -> standardise
    -> logistic regression; stratified folds with a fixed seed, real = 0, generated =
    1), so ``auc`` (the mean of the per-fold ROC AUCs) equals it. ``p_real`` is each
    generated volume's out-of-fold probability of being real: scored by the model
    fitted without it (high = looks real to the discriminator).

    Each fold's PCA is fitted exactly on its training rows, but through one Gram matrix
    of all volumes (n x n) instead of an SVD of (n x voxels) per fold: the voxels are
    multiplied once, the folds only eigendecompose small matrices.
    """
    x, y, folds, model = real_vs_generated_problem(real, generated, seed, n_splits,
                                                   n_components)
    k = int(model.steps[0][1].n_components)
    gram = _centred_gram(x)
    p_generated = np.empty(len(y))
    for train, test in folds:
        train_scores, test_scores = _fold_pca_scores(gram, train, test, k)
        head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        head.fit(train_scores, y[train])
        p_generated[test] = head.predict_proba(test_scores)[:, 1]
    # Each fold's model scored only its own test rows, so per-fold AUCs are as in CV scoring.
    auc = float(np.mean([roc_auc_score(y[test], p_generated[test]) for _, test in folds]))
    return {"auc": auc, "p_real": 1.0 - p_generated[y == 1]}  # x holds real first


def _centred_gram(x: np.ndarray) -> np.ndarray:
    """(n, n) float64 inner products of the rows of ``x`` after removing their mean.

    Removing any common vector leaves every fold's centred Gram matrix unchanged; the
    overall mean keeps the float32 product from cancelling (brains share most voxels).
    """
    shifted = x - x.mean(axis=0, dtype=np.float64).astype(np.float32)
    return (shifted @ shifted.T).astype(np.float64)


def _fold_pca_scores(gram: np.ndarray, train: np.ndarray, test: np.ndarray, k: int):
    """PCA scores (k components fitted on ``train`` rows) of the train and test rows,
    from the Gram matrix of all rows: kernel PCA with a linear kernel is PCA."""
    inner = gram[np.ix_(train, train)]
    row_means = inner.mean(axis=0)
    centred = inner - row_means[:, None] - row_means[None, :] + row_means.mean()
    eigenvalues, eigenvectors = np.linalg.eigh(centred)
    order = np.argsort(eigenvalues)[::-1][:k]
    eigenvalues = np.clip(eigenvalues[order], 1e-12, None)
    axes = eigenvectors[:, order] / np.sqrt(eigenvalues)  # (n_train, k): scores per unit row
    cross = gram[np.ix_(test, train)]
    cross = cross - cross.mean(axis=1, keepdims=True) - row_means[None, :] + row_means.mean()
    return centred @ axes, cross @ axes


def realism_scores(real, generated, seed: int = 0, n_splits: int = 5,
                   n_components: int = 32) -> np.ndarray:
    """Out-of-fold P(real) of each generated volume (see ``real_vs_synthetic_discriminator``)."""
    return real_vs_synthetic_discriminator(real, generated, seed, n_splits, n_components)["p_real"]


def age_bin_edges(cohort, indices) -> tuple[np.ndarray, list[int]] | None:
    """``(edges, codes)``: age (years) boundaries between the cohort's age bins
    (``np.digitize(age, edges)`` indexes ``codes``), or None when unknown.

    From the bin labels when each starts with its lowest age ('22-25', '36+'): the
    edges are the lower bounds of bins 1..; else from the known ages of ``indices``:
    midway between one bin's oldest and the next bin's youngest subject. Used to put
    predicted ages into the cohort's bins for a confusion matrix.
    """
    labels = [str(label) for label in (cohort.age_bin_labels or ())]
    starts = [re.match(r"\s*(\d+(?:\.\d+)?)", label) for label in labels]
    if len(labels) >= 2 and all(starts):
        lows = [float(match.group(1)) for match in starts]
        if all(b > a for a, b in zip(lows, lows[1:])):
            return np.array(lows[1:]), list(range(len(labels)))
    table = cohort.table.iloc[np.asarray(indices)]
    ages = table["age"].to_numpy(dtype=float, na_value=np.nan)
    bins = table["age_bin"].to_numpy(dtype=float, na_value=np.nan)
    known = np.isfinite(ages) & np.isfinite(bins)
    if known.sum() < 2:
        return None
    codes = sorted(set(bins[known].astype(int).tolist()))
    if len(codes) < 2:
        return None
    lows = [ages[known][bins[known] == code].min() for code in codes]
    highs = [ages[known][bins[known] == code].max() for code in codes]
    return np.array([(highs[i] + lows[i + 1]) / 2 for i in range(len(codes) - 1)]), codes


def _age_binning(model, cohort, indices, scores_real):
    """(true bins, predicted bins, labels) for the age confusion matrix, or None."""
    bins = cohort.table["age_bin"].to_numpy(dtype=float, na_value=np.nan)[np.asarray(indices)]
    known = np.isfinite(bins) & (bins >= 0)
    if not known.any():
        return None
    labels = list(cohort.age_bin_labels or ())
    if getattr(model, "target", "years") == "bin":
        n_bins = int(getattr(model, "n_bins", len(labels) or 1))
        predicted = np.clip(np.rint(scores_real), 0, n_bins - 1).astype(int)
        codes = list(range(n_bins))
    else:
        edges = age_bin_edges(cohort, indices)
        if edges is None:
            return None
        edges, codes = edges
        predicted = np.asarray(codes)[np.digitize(scores_real, edges)]
    names = [labels[c] if 0 <= c < len(labels) else f"bin {c}" for c in codes]
    return bins[known].astype(int), predicted[known], codes, names, known


def _age_calibration(true_age, predicted, n_bins: int = 8) -> dict:
    """Mean predicted vs mean true age in quantile bins of the true age."""
    edges = np.unique(np.quantile(true_age, np.linspace(0, 1, n_bins + 1)))
    ids = np.clip(np.digitize(true_age, edges[1:-1]), 0, max(len(edges) - 2, 0))
    kept = [b for b in np.unique(ids)]
    return {"mean_true": np.array([true_age[ids == b].mean() for b in kept]),
            "mean_predicted": np.array([predicted[ids == b].mean() for b in kept]),
            "count": np.array([int((ids == b).sum()) for b in kept])}


class _Rows:
    """Rows ``indices`` of an image stack, read slice by slice (bounded memory)."""

    def __init__(self, images, indices):
        self.images, self.indices = images, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return np.asarray(self.images[self.indices[index]], dtype=np.float32)


def heldout_subset(heldout, max_real: int | None) -> np.ndarray:
    """The held-out real brains a comparison uses: all, or a fixed random ``max_real``.

    The subset is drawn with a fixed seed (0), not the sample seed, so every sample
    set of one classifier is compared with the same real brains (and what depends
    on them only is computed once: see ``real_reference``).
    """
    heldout = np.asarray(heldout, dtype=np.int64)
    if max_real is not None and len(heldout) > max_real:
        heldout = np.sort(np.random.default_rng(0).choice(heldout, int(max_real), replace=False))
    return heldout


def real_reference(classifier, cohort, heldout_indices, train_indices, memorisation: bool = True,
                   progress=None) -> dict:
    """What a comparison needs from the real brains only, whatever the GAN samples:
    the classifier's outputs on ``heldout_indices`` and, for the memorisation check,
    each held-out brain's nearest training brain (``train_indices``).

    Returns ``{"heldout_indices", "scores_real", "heldout_distances",
    "heldout_nearest_train"}`` (arrays; the last two None without ``memorisation``).
    """
    from brainlab.analysis.memorisation import nearest_neighbour_distances

    report_progress = progress or (lambda fraction, message="": None)
    heldout = np.asarray(heldout_indices, dtype=np.int64)
    train = np.asarray(train_indices, dtype=np.int64)
    report_progress(0.0, "classifying real brains")
    scores_real = classifier_outputs(classifier, _Rows(cohort.images, heldout))
    distances = nearest = None
    if memorisation and len(train) > 0:
        report_progress(0.4, "held-out brains' nearest training brains")
        distances, nearest = nearest_neighbour_distances(
            np.asarray(cohort.images[heldout], dtype=np.float32), _Rows(cohort.images, train))
    report_progress(1.0, "done")
    return {"heldout_indices": heldout, "scores_real": scores_real,
            "heldout_distances": distances, "heldout_nearest_train": nearest}


def compare_real_synthetic(classifier, gan, cohort, n_samples: int = 64, seed: int = 0,
                           heldout_indices=None, train_indices=None,
                           max_real: int | None = 256, memorisation: bool = True,
                           progress=None, reference: dict | None = None) -> dict:
    """Run ``classifier`` on held-out real brains and on ``n_samples`` GAN samples.

    ``heldout_indices`` default to the test split of the classifier's training split
    (``cohort.split(0)``); ``train_indices`` (the GAN's training brains, for the
    memorisation check) to its train split. ``max_real`` caps the held-out set (a fixed
    random subset, the same for every sample seed: ``heldout_subset``). ``reference``:
    ``real_reference(...)`` of the same classifier, cohort and indices, computed before
    (it does not depend on the GAN), so only the samples' side is computed. Returns a
    dict (arrays as numpy) — see the keys below; everything in ``summary`` is a plain
    float/int for JSON.
    """
    if cohort.images is None:
        raise BrainlabInputError(f"cohort {cohort.name!r} has no images; cannot compare brains")
    kind = classifier_kind(classifier)
    if tuple(gan.grid_shape) != tuple(cohort.grid_shape):
        raise BrainlabInputError(
            f"the GAN generates on grid {tuple(gan.grid_shape)}; cohort {cohort.name!r} has "
            f"grid {tuple(cohort.grid_shape)}")
    report_progress = progress or (lambda fraction, message="": None)
    split = cohort.split(0)
    heldout = np.asarray(split.test if heldout_indices is None else heldout_indices, dtype=np.int64)
    train = np.asarray(split.train if train_indices is None else train_indices, dtype=np.int64)
    if len(heldout) < 2:
        raise BrainlabInputError(f"need >= 2 held-out real brains; found {len(heldout)}")
    heldout = heldout_subset(heldout, max_real)
    if reference is not None and not np.array_equal(reference["heldout_indices"], heldout):
        raise BrainlabInputError(
            "the real-brain reference was computed for other held-out brains; expected "
            f"{len(heldout)} brains of this comparison, found {len(reference['heldout_indices'])}")
    report_progress(0.05, "generating samples")
    latents, samples = generate_samples(gan, n_samples, seed)
    report_progress(0.25, "classifying real brains")
    if reference is None:
        reference = real_reference(classifier, cohort, heldout, train, memorisation)
    real_images = np.asarray(cohort.images[heldout], dtype=np.float32)
    scores_real = np.asarray(reference["scores_real"])
    report_progress(0.4, "classifying samples")
    scores_synthetic = classifier_outputs(classifier, samples)
    table = cohort.table.iloc[heldout]
    result = {"kind": kind, "heldout_indices": heldout, "heldout_ids": table["subject_id"].astype(str).tolist(),
              "scores_real": scores_real, "scores_synthetic": scores_synthetic,
              "latents": latents, "samples": samples}
    summary = {"kind": kind, "n_real": int(len(heldout)), "n_synthetic": int(n_samples),
               "seed": int(seed)}

    if kind == "sex":
        y = (table["sex"].astype(str).to_numpy() == "M").astype(int)
        result["labels_real"] = y
        result["metrics_real"] = classifier_metrics(y, scores_real)
        result["calibration"] = calibration_curve_points(y, scores_real, n_bins=10)
        result["confusion"] = confusion_matrix(y, (scores_real >= 0.5).astype(int), labels=[0, 1])
        result["confusion_labels"] = ["female", "male"]
        summary.update(male_fraction_real_true=float(y.mean()),
                       male_fraction_real_predicted=float((scores_real >= 0.5).mean()),
                       male_fraction_synthetic=float((scores_synthetic >= 0.5).mean()),
                       mean_p_male_real=float(scores_real.mean()),
                       mean_p_male_synthetic=float(scores_synthetic.mean()))
    else:
        ages = table["age"].to_numpy(dtype=float, na_value=np.nan)
        known = np.isfinite(ages)
        target = getattr(classifier, "target", "years")
        result["labels_real"] = ages
        if target == "years" and known.sum() >= 2:
            result["metrics_real"] = regression_metrics(ages[known], scores_real[known])
            result["calibration"] = _age_calibration(ages[known], scores_real[known])
        else:
            result["metrics_real"] = {"note": "no known ages in years among the held-out brains"}
            result["calibration"] = None
        binning = _age_binning(classifier, cohort, heldout, scores_real)
        if binning is not None:
            true_bins, predicted_bins, codes, names, _ = binning
            result["confusion"] = confusion_matrix(true_bins, predicted_bins, labels=codes)
            result["confusion_labels"] = names
        else:
            result["confusion"], result["confusion_labels"] = None, None
        summary.update(mean_predicted_real=float(scores_real.mean()),
                       mean_predicted_synthetic=float(scores_synthetic.mean()),
                       sd_predicted_real=float(scores_real.std()),
                       sd_predicted_synthetic=float(scores_synthetic.std()),
                       age_unit="years" if target == "years" else "age bin")
        if known.any():
            summary["mean_true_age_real"] = float(np.nanmean(ages))
    for key, value in (result["metrics_real"] or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            summary[f"real_{key}"] = float(value)

    report_progress(0.55, "real-vs-synthetic discriminator")
    if len(samples) >= 2:
        # Small PCA / logistic fits: one BLAS thread is 40x faster than several threads
        # spinning on a busy CPU (measured 0.3 s vs 12 s on a shared 2-core machine).
        with threadpool_limits(limits=1, user_api="blas"):
            discriminator = real_vs_synthetic_discriminator(real_images, samples, seed=seed)
        summary["two_sample_auc"] = discriminator["auc"]
        result["realism"] = discriminator["p_real"]
    else:
        result["realism"] = None
    if memorisation and len(train) > 0:
        report_progress(0.75, "nearest training brains")
        known = reference.get("heldout_distances")
        memo = memorisation_report(
            samples, _Rows(cohort.images, train), real_images,
            heldout_nearest=None if known is None else (known, reference["heldout_nearest_train"]))
        memo["generated_nearest_train_id"] = (
            cohort.table["subject_id"].astype(str).to_numpy()[train[memo["generated_nearest_train"]]])
        result["memorisation"] = memo
        for key in ("threshold", "fraction_suspected", "n_suspected", "median_generated",
                    "median_heldout", "median_ratio"):
            summary[f"memorisation_{key}"] = float(memo[key])
    else:
        result["memorisation"] = None
    result["summary"] = summary
    report_progress(1.0, "done")
    return result


def realism_order(result: dict) -> np.ndarray:
    """Sample indices from most to least realistic by the discriminator's P(real)."""
    realism = result.get("realism")
    if realism is None:
        return np.arange(len(result["samples"]))
    return np.argsort(-np.asarray(realism), kind="stable")
