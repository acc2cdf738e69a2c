"""Linear and non-linear probes: how well do features predict sex and age bin?

The seed study's table: logistic regression, random forest, KNN and a decision
tree, each a scikit-learn Pipeline with a StandardScaler, trained on raw features
and on a model's latent, scored with stratified 5-fold cross-validation. Every
row of one target uses the same folds, so rows differ only by features and model.

Features wider than ``PCA_ABOVE_DIMS`` (e.g. raw voxels) are reduced inside each
pipeline to ``PCA_COMPONENTS`` principal components after scaling (fitted on the
training folds only, so no held-out information leaks), which keeps the whole
table to seconds on 1113 subjects. The scaler + PCA of one training fold is
fitted once and shared by every model through the Pipeline's ``memory`` cache.
The many small fits run with single-threaded BLAS: threads only add overhead at
these sizes, and on a busy CPU they make it several times slower.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.multiclass import OneVsOneClassifier, OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from brainlab.errors import BrainlabInputError

# Wider features are reduced by PCA inside the pipeline (see module docstring).
PCA_ABOVE_DIMS = 200
PCA_COMPONENTS = 64

COLUMNS = ["representation", "target", "model", "strategy", "accuracy_mean", "accuracy_sd",
           "balanced_accuracy_mean", "chance", "n", "n_splits"]


MODEL_NAMES = ("logistic regression", "random forest", "KNN", "decision tree")


def _models(seed: int) -> dict:
    """Fresh estimators, by display name (fixed seeds; one thread each)."""
    return {
        "logistic regression": LogisticRegression(max_iter=2000),
        "random forest": RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1),
        "KNN": KNeighborsClassifier(n_neighbors=5),
        "decision tree": DecisionTreeClassifier(random_state=seed),
    }


def _pipeline(estimator, n_features: int, smallest_train: int, seed: int,
              memory: str | None = None) -> Pipeline:
    steps = [("scale", StandardScaler())]
    if n_features > PCA_ABOVE_DIMS:
        k = int(min(PCA_COMPONENTS, smallest_train - 1, n_features))
        steps.append(("pca", PCA(n_components=k, random_state=seed)))
    steps.append(("model", estimator))
    return Pipeline(steps, memory=memory if n_features > PCA_ABOVE_DIMS else None)


def _check_inputs(features_by_representation: dict, labels: dict) -> int:
    if not features_by_representation or not labels:
        raise BrainlabInputError("probe_table needs at least one representation and one target")
    n = None
    for name, features in features_by_representation.items():
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[1] == 0:
            raise BrainlabInputError(
                f"features {name!r} must be 2D (n_subjects, n_features); found shape {x.shape}")
        if not np.isfinite(x.astype(np.float64)).all():
            raise BrainlabInputError(f"features {name!r} contain NaN or infinite values")
        n = len(x) if n is None else n
        if len(x) != n:
            raise BrainlabInputError(
                f"features {name!r} have {len(x)} rows; expected {n} like the first representation")
    for target, y in labels.items():
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != n:
            raise BrainlabInputError(
                f"labels {target!r} must be 1D with {n} entries (one per subject); found shape {y.shape}")
        if pd.isna(y).any():
            raise BrainlabInputError(f"labels {target!r} contain missing values")
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            raise BrainlabInputError(
                f"labels {target!r} have one class only ({classes.tolist()}); a probe needs >= 2")
        if counts.min() < 2:
            raise BrainlabInputError(
                f"labels {target!r}: class {classes[counts.argmin()]!r} has {counts.min()} subject; "
                f"stratified folds need >= 2 per class")
    return n


def probe_table(features_by_representation: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                n_splits: int = 5, seed: int = 0,
                models: tuple[str, ...] = MODEL_NAMES) -> pd.DataFrame:
    """Cross-validated probe accuracies, one row per representation x target x model x strategy.

    ``features_by_representation``: name -> (n, d) features (e.g. "raw", "latent");
    ``labels``: target name -> (n,) class labels (e.g. "sex", "age bin"). Binary
    targets get strategy "binary"; targets with more classes get every model's
    native "multiclass" fit plus logistic regression wrapped "one-vs-rest" and
    "one-vs-one". Folds: StratifiedKFold(n_splits, shuffle, seed) per target, the
    same for every row; ``n_splits`` is lowered to the smallest class's size when
    that is smaller (the column says how many were used). ``chance`` is the
    majority-class rate (what always guessing it scores). ``models`` picks a subset
    of ``MODEL_NAMES`` (the random forest is the slowest, ~1 s per fold at 1113).
    """
    n = _check_inputs(features_by_representation, labels)
    if n_splits < 2:
        raise BrainlabInputError(f"n_splits must be >= 2; found {n_splits}")
    unknown = sorted(set(models) - set(MODEL_NAMES))
    if unknown or not models:
        raise BrainlabInputError(f"models must be a non-empty subset of {MODEL_NAMES}; found {models}")
    with tempfile.TemporaryDirectory(prefix="brainlab-probe-") as cache, threadpool_limits(limits=1):
        rows = _probe_rows(features_by_representation, labels, n, n_splits, seed, models, cache)
    return pd.DataFrame(rows, columns=COLUMNS)


def _probe_rows(features_by_representation, labels, n, n_splits, seed, models, cache) -> list:
    rows = []
    for target, y in labels.items():
        y = np.asarray(y)
        classes, counts = np.unique(y, return_counts=True)
        splits = int(min(n_splits, counts.min()))
        folds = list(StratifiedKFold(splits, shuffle=True, random_state=seed).split(np.zeros(n), y))
        smallest_train = min(len(train) for train, _ in folds)
        chance = float(counts.max() / n)
        for representation, features in features_by_representation.items():
            x = np.asarray(features, dtype=np.float64)
            candidates = []
            for model_name, estimator in _models(seed).items():
                if model_name not in models:
                    continue
                strategy = "binary" if len(classes) == 2 else "multiclass"
                candidates.append((model_name, strategy, estimator))
            if len(classes) > 2 and "logistic regression" in models:
                candidates.append(("logistic regression", "one-vs-rest",
                                   OneVsRestClassifier(LogisticRegression(max_iter=2000))))
                candidates.append(("logistic regression", "one-vs-one",
                                   OneVsOneClassifier(LogisticRegression(max_iter=2000))))
            for model_name, strategy, estimator in candidates:
                pipeline = _pipeline(estimator, x.shape[1], smallest_train, seed, cache)
                scores = cross_validate(pipeline, x, y, cv=folds,
                                        scoring=("accuracy", "balanced_accuracy"))
                rows.append({
                    "representation": representation, "target": target, "model": model_name,
                    "strategy": strategy,
                    "accuracy_mean": float(np.mean(scores["test_accuracy"])),
                    "accuracy_sd": float(np.std(scores["test_accuracy"], ddof=1)),
                    "balanced_accuracy_mean": float(np.mean(scores["test_balanced_accuracy"])),
                    "chance": chance, "n": int(n), "n_splits": splits,
                })
    return rows


# The seed study's published probe accuracies (logistic regression, 5-fold CV),
# for a labelled reference column; not recomputed by brainlab. "data" is what the
# raw features were (FreeSurfer morphometry or MRI voxels); "representation" is
# raw features vs the autoencoder's latent. Age bin: about 0.44-0.47 throughout.
SEED_STUDY_REFERENCE = pd.DataFrame([
    {"data": "morphometry", "representation": "raw", "target": "sex",
     "model": "logistic regression", "accuracy_low": 0.919, "accuracy_high": 0.919,
     "reference": "0.919"},
    {"data": "morphometry", "representation": "latent", "target": "sex",
     "model": "logistic regression", "accuracy_low": 0.856, "accuracy_high": 0.856,
     "reference": "0.856"},
    {"data": "mri", "representation": "raw", "target": "sex",
     "model": "logistic regression", "accuracy_low": 0.937, "accuracy_high": 0.937,
     "reference": "0.937"},
    {"data": "mri", "representation": "latent", "target": "sex",
     "model": "logistic regression", "accuracy_low": 0.94, "accuracy_high": 0.94,
     "reference": "0.94"},
    {"data": "any", "representation": "any", "target": "age bin",
     "model": "logistic regression", "accuracy_low": 0.44, "accuracy_high": 0.47,
     "reference": "≈0.44–0.47"},
])


def seed_reference(representation: str, target: str, model: str) -> str | None:
    """The seed study's figure for one probe-table row, as text, or None.

    Matches loosely on names: a representation naming "morph" is morphometry,
    otherwise MRI; naming "latent" is the latent, otherwise raw; a target naming
    "age" is the age bin. Only logistic regression rows have published figures.
    """
    if model != "logistic regression":
        return None
    name = representation.lower()
    target_key = "age bin" if "age" in target.lower() else target.lower()
    data = "morphometry" if "morph" in name else "mri"
    kind = "latent" if "latent" in name else "raw"
    table = SEED_STUDY_REFERENCE
    match = table[(table["target"] == target_key)
                  & table["data"].isin([data, "any"]) & table["representation"].isin([kind, "any"])]
    return None if match.empty else str(match["reference"].iloc[0])


def with_seed_reference(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of a probe table with a "seed study (reference)" text column."""
    out = table.copy()
    out["seed study (reference)"] = [
        seed_reference(str(r), str(t), str(m))
        for r, t, m in zip(out["representation"], out["target"], out["model"])]
    return out
