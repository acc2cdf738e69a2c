"""Linear and non-linear probes: how well do features predict sex and age bin?

The seed study's table: logistic regression, random forest, KNN and a decision
tree, each a scikit-learn Pipeline with a StandardScaler, trained on raw features
and on a model's latent, scored with stratified 5-fold cross-validation. Every
row of one target uses the same folds, so rows differ only by features and model.

Features wider than ``PCA_ABOVE_DIMS`` (e.g. raw voxels) are reduced in two steps:
once for the whole table, standardised and projected on their first
``PRE_PCA_COMPONENTS`` principal components (it sees every subject's features but
no label, so no label information leaks), then inside
each pipeline to ``PCA_COMPONENTS`` components fitted on the training folds only
(on the component scores as they are: the voxels were standardised in step one).
The expensive step (29k voxels) runs once instead of once per fold and model.

Rows are independent jobs (one row = one model cross-validated on one
representation and target), run by joblib over ``n_jobs`` processes, each fit
single-threaded: threads only add overhead at these sizes and on a busy CPU they
make it several times slower. Rows are reported as they finish (``on_row``), so a
page can fill the table row by row.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_validate
from sklearn.multiclass import OneVsOneClassifier, OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from brainlab.data.progress import ProgressCallback, report
from brainlab.errors import BrainlabInputError

# Wider features are reduced by PCA (see module docstring).
PCA_ABOVE_DIMS = 200
PCA_COMPONENTS = 64
# The once-per-table reduction of wide features: enough components that the
# per-fold PCA to PCA_COMPONENTS loses nothing it would have kept from the voxels.
PRE_PCA_COMPONENTS = 256
# n_jobs=None runs rows in parallel from this many subjects on: below it, starting
# worker processes costs more than the rows themselves.
PARALLEL_FROM_SUBJECTS = 300
# Forests train each tree on half the fold from this many training subjects on.
HALF_BOOTSTRAP_FROM = 200

COLUMNS = ["representation", "target", "model", "strategy", "accuracy_mean", "accuracy_sd",
           "balanced_accuracy_mean", "chance", "n_classes", "n", "n_splits", "folds"]

# The seed study's column: its figures, labelled as published and never recomputed.
SEED_COLUMN = "seed study, published (not recomputed)"
# A row whose balanced accuracy is within this of 1 / n_classes is "near chance": its
# seed-study figure is shown, but no agreement is implied.
NEAR_CHANCE = 0.05


MODEL_NAMES = ("logistic regression", "random forest", "KNN", "decision tree")


def _estimator(model_name: str, strategy: str, seed: int, n_train: int):
    """A fresh estimator (fixed seeds; one thread each) for folds of ``n_train`` subjects."""
    if strategy == "one-vs-rest":
        return OneVsRestClassifier(LogisticRegression(max_iter=2000))
    if strategy == "one-vs-one":
        return OneVsOneClassifier(LogisticRegression(max_iter=2000))
    return {
        "logistic regression": lambda: LogisticRegression(max_iter=2000),
        # Each tree on a half-size bootstrap when the folds are large: the forests were
        # three quarters of the table's time, and there half-size trees score the same
        # (1.6x faster); a small cohort keeps every sample.
        "random forest": lambda: RandomForestClassifier(
            n_estimators=100, max_samples=0.5 if n_train >= HALF_BOOTSTRAP_FROM else None,
            random_state=seed, n_jobs=1),
        "KNN": lambda: KNeighborsClassifier(n_neighbors=5),
        "decision tree": lambda: DecisionTreeClassifier(random_state=seed),
    }[model_name]()


def _pipeline(estimator, n_features: int, smallest_train: int, seed: int,
              prereduced: bool = False) -> Pipeline:
    if prereduced:
        # Scores of standardised voxels already: rescaling them per component would
        # flatten their spectrum and make the per-fold PCA pick arbitrary directions.
        k = int(min(PCA_COMPONENTS, smallest_train - 1, n_features))
        return Pipeline([("pca", PCA(n_components=k, random_state=seed)), ("model", estimator)])
    steps = [("scale", StandardScaler())]
    if n_features > PCA_ABOVE_DIMS:
        k = int(min(PCA_COMPONENTS, smallest_train - 1, n_features))
        steps.append(("pca", PCA(n_components=k, random_state=seed)))
    steps.append(("model", estimator))
    return Pipeline(steps)


def reduce_wide_features(features, seed: int = 0) -> np.ndarray:
    """Standardise (n, d) features and keep their first ``PRE_PCA_COMPONENTS``
    principal components when d > ``PCA_ABOVE_DIMS``; narrower features unchanged.

    Unsupervised and label-free, so it can run once for every fold and target.
    The output stays wider than ``PCA_ABOVE_DIMS`` so each pipeline still fits its
    own PCA on its training folds. With fewer subjects than features (raw voxels)
    the exact components come from the n x n Gram matrix: one matrix product and a
    small eigendecomposition, several times faster than an SVD of the voxels.
    """
    x = np.asarray(features)
    if x.shape[1] <= PCA_ABOVE_DIMS:
        return x.astype(np.float64)
    k = int(min(PRE_PCA_COMPONENTS, x.shape[0] - 1, x.shape[1]))
    if k <= PCA_ABOVE_DIMS:  # too few subjects for a useful first step: keep the features
        return x.astype(np.float64)
    with threadpool_limits(limits=max(1, min(2, os.cpu_count() or 1)), user_api="blas"):
        scaled = StandardScaler().fit_transform(x.astype(np.float32))
        if scaled.shape[0] >= scaled.shape[1]:
            return PCA(n_components=k, random_state=seed).fit_transform(scaled).astype(np.float64)
        gram = (scaled @ scaled.T).astype(np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1][:k]
    scores = eigenvectors[:, order] * np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    # Deterministic signs (as sklearn's svd_flip): the largest entry of each is positive.
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    return scores * np.where(signs == 0, 1.0, signs)


def _check_inputs(features_by_representation: dict, labels: dict) -> int:
    if not features_by_representation or not labels:
        raise BrainlabInputError("probe_table needs at least one representation and one target")
    n = None
    for name, features in features_by_representation.items():
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[1] == 0:
            raise BrainlabInputError(
                f"features {name!r} must be 2D (n_subjects, n_features); found shape {x.shape}")
        if not np.isfinite(x).all():
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
                f"labels {target!r}: class {str(classes[counts.argmin()])!r} has "
                f"{int(counts.min())} subject; stratified folds need >= 2 per class")
    return n


def _check_groups(groups, n: int, n_splits: int) -> np.ndarray | None:
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise BrainlabInputError(
            f"groups must be 1D with {n} entries (one per subject); found shape {groups.shape}")
    if pd.isna(groups).any():
        raise BrainlabInputError("groups (e.g. family ids) contain missing values")
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise BrainlabInputError(
            f"group-kept folds need >= {n_splits} groups (families); found {n_groups}")
    return groups


def _folds(y: np.ndarray, n: int, splits: int, seed: int, groups) -> list:
    """Stratified folds; with ``groups`` (e.g. HCP family ids) no group spans two folds,
    so relatives never sit on both sides of a split."""
    if groups is None:
        return list(StratifiedKFold(splits, shuffle=True, random_state=seed).split(np.zeros(n), y))
    return list(StratifiedGroupKFold(splits, shuffle=True, random_state=seed)
                .split(np.zeros(n), y, groups))


def _row_plan(features_by_representation: dict, labels: dict, n: int, n_splits: int, seed: int,
              models: tuple[str, ...], groups=None) -> list[dict]:
    """Every row of the table, in order: which target, representation, model, strategy."""
    plan = []
    fold_kind = "stratified" if groups is None else "stratified, family-grouped"
    for target, y in labels.items():
        y = np.asarray(y)
        classes, counts = np.unique(y, return_counts=True)
        splits = int(min(n_splits, counts.min()))
        folds = _folds(y, n, splits, seed, groups)
        for representation in features_by_representation:
            candidates = [(name, "binary" if len(classes) == 2 else "multiclass")
                          for name in MODEL_NAMES if name in models]
            if len(classes) > 2 and "logistic regression" in models:
                candidates += [("logistic regression", "one-vs-rest"),
                               ("logistic regression", "one-vs-one")]
            for model_name, strategy in candidates:
                plan.append({"target": target, "representation": representation,
                             "model": model_name, "strategy": strategy, "folds": folds,
                             "splits": splits, "chance": float(counts.max() / n),
                             "n_classes": int(len(classes)), "fold_kind": fold_kind})
    return plan


def _score_row(x: np.ndarray, y: np.ndarray, spec: dict, n: int, seed: int) -> dict:
    """One table row: the cross-validated scores of one model on one representation."""
    smallest_train = min(len(train) for train, _ in spec["folds"])
    estimator = _estimator(spec["model"], spec["strategy"], seed, smallest_train)
    pipeline = _pipeline(estimator, x.shape[1], smallest_train, seed, spec.get("prereduced", False))
    # lbfgs on 64 PCA scores of noisy voxels may stop at max_iter with its accuracy
    # settled: the scores are what the table reports, so the warning is only noise in a
    # CLI or `warm` run (dozens of them per table).
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_validate(pipeline, x, y, cv=spec["folds"],
                                scoring=("accuracy", "balanced_accuracy"))
    return {
        "representation": spec["representation"], "target": spec["target"],
        "model": spec["model"], "strategy": spec["strategy"],
        "accuracy_mean": float(np.mean(scores["test_accuracy"])),
        "accuracy_sd": float(np.std(scores["test_accuracy"], ddof=1)),
        "balanced_accuracy_mean": float(np.mean(scores["test_balanced_accuracy"])),
        "chance": spec["chance"], "n_classes": spec["n_classes"], "n": int(n),
        "n_splits": spec["splits"], "folds": spec["fold_kind"],
    }


# Relative cost of one row by model and strategy (measured on hcp-ya): only the order
# rows are started in depends on it, never a result.
_ROW_COSTS = {"random forest": 10.0, "logistic regression": 1.0, "decision tree": 1.0, "KNN": 0.5}
_STRATEGY_COSTS = {"multiclass": 4.0, "one-vs-one": 3.0, "one-vs-rest": 2.0}


def _row_cost(spec: dict) -> float:
    cost = _ROW_COSTS[spec["model"]]
    if spec["model"] == "logistic regression":
        cost *= _STRATEGY_COSTS.get(spec["strategy"], 1.0)
    return cost


def _indexed_row(i: int, *args) -> tuple[int, dict]:
    return i, _score_row(*args)


def probe_table(features_by_representation: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                n_splits: int = 5, seed: int = 0, models: tuple[str, ...] = MODEL_NAMES,
                n_jobs: int | None = 1, progress: ProgressCallback = None,
                on_row=None, groups=None) -> pd.DataFrame:
    """Cross-validated probe accuracies, one row per representation x target x model x strategy.

    ``features_by_representation``: name -> (n, d) features (e.g. "raw", "latent");
    ``labels``: target name -> (n,) class labels (e.g. "sex", "age bin"). Binary
    targets get strategy "binary"; targets with more classes get every model's
    native "multiclass" fit plus logistic regression wrapped "one-vs-rest" and
    "one-vs-one". Folds: StratifiedKFold(n_splits, shuffle, seed) per target, the
    same for every row; with ``groups`` (n,) (e.g. family ids of a real HCP table)
    StratifiedGroupKFold keeps each group inside one fold (column "folds" says which);
    ``n_splits`` is lowered to the smallest class's size when
    that is smaller (the column says how many were used). ``chance`` is the
    majority-class rate (what always guessing it scores). ``models`` picks a subset
    of ``MODEL_NAMES``. ``n_jobs`` processes score rows in parallel (the numbers do
    not depend on it; None: up to 2 from ``PARALLEL_FROM_SUBJECTS`` subjects on, else 1); ``on_row(row_dict)`` is called as each row finishes (with ``n_jobs`` > 1
    the longest rows start first, so not in table order) and ``progress(fraction, message)`` after it. Rows
    come back in table order.
    """
    n = _check_inputs(features_by_representation, labels)
    if n_splits < 2:
        raise BrainlabInputError(f"n_splits must be >= 2; found {n_splits}")
    unknown = sorted(set(models) - set(MODEL_NAMES))
    if unknown or not models:
        raise BrainlabInputError(f"models must be a non-empty subset of {MODEL_NAMES}; found {models}")
    if n_jobs is None:
        n_jobs = max(1, min(2, os.cpu_count() or 1)) if n >= PARALLEL_FROM_SUBJECTS else 1
    if int(n_jobs) < 1:
        raise BrainlabInputError(f"n_jobs must be >= 1; found {n_jobs}")
    report(progress, 0.0, "reducing wide features")
    features = {name: reduce_wide_features(x, seed) for name, x in features_by_representation.items()}
    prereduced = {name: features[name].shape[1] != np.shape(x)[1]
                  for name, x in features_by_representation.items()}
    targets = {name: np.asarray(y) for name, y in labels.items()}
    plan = _row_plan(features, targets, n, n_splits, seed, tuple(models),
                     _check_groups(groups, n, n_splits))
    for spec in plan:
        spec["prereduced"] = prereduced[spec["representation"]]
    # Longest rows first (random forests, then multiclass logistic fits), so two processes
    # do not end with one of them alone on a forest; the table keeps its order.
    order = (range(len(plan)) if int(n_jobs) == 1
             else sorted(range(len(plan)), key=lambda i: -_row_cost(plan[i])))
    jobs = ((i, features[plan[i]["representation"]], targets[plan[i]["target"]], plan[i], n, seed)
            for i in order)
    if int(n_jobs) == 1:
        results = (_indexed_row(*job) for job in jobs)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=int(n_jobs), return_as="generator_unordered")(
            delayed(_indexed_row)(*job) for job in jobs)
    rows: dict[int, dict] = {}
    for i, row in results:
        rows[i] = row
        if on_row is not None:
            on_row(dict(row))
        report(progress, len(rows) / len(plan),
               f"{len(rows)} of {len(plan)} rows ({row['representation']}, {row['target']})")
    rows = [rows[i] for i in range(len(plan))]
    return pd.DataFrame(rows, columns=COLUMNS)


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


def _near_chance(row) -> bool:
    balanced = row.get("balanced_accuracy_mean")
    n_classes = row.get("n_classes")
    if balanced is None or n_classes is None or pd.isna(balanced) or pd.isna(n_classes):
        return False
    return float(balanced) < 1.0 / float(n_classes) + NEAR_CHANCE


def with_seed_reference(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of a probe table with the seed study's published figure per row
    (column ``SEED_COLUMN``). Where this row's balanced accuracy is near chance the
    text says so: a near-chance number beside the study's implies no agreement."""
    out = table.copy()
    texts = []
    for _, row in out.iterrows():
        text = seed_reference(str(row["representation"]), str(row["target"]), str(row["model"]))
        if text is not None and _near_chance(row):
            text += " (ours is near chance: not comparable)"
        texts.append(text)
    out[SEED_COLUMN] = texts
    return out
