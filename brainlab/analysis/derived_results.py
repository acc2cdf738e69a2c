"""The derived results the pages show, computed once and kept on disk.

One function per result: latents of a representation, PCA/UMAP coordinates,
the probe table, the cohort's mean brains, reconstructions and their metrics, a GAN sample set, the
real-vs-synthetic comparison, attribute directions, edit curves and model
evaluations. Each takes a ``progress(fraction, message)`` callback, builds its
:class:`~brainlab.result_store.ResultKey` from the cohort fingerprint, the
digests of the checkpoints it uses and its settings, and reads or writes the
:class:`~brainlab.result_store.ResultStore`. Pages (through the background
runner) and ``python -m brainlab warm`` call the same functions with the same
defaults, so what ``warm`` computed is what a page finds.

Checkpoints are passed as a folder path or as a :class:`Checkpoint` (pages pass
the model they already loaded, so nothing is loaded twice). ``warm_plan`` lists
everything the pages show by default for a cohort, for ``warm`` and for the app's
first start.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from brainlab.data.progress import ProgressCallback, report
from brainlab.errors import BrainlabInputError
from brainlab.result_store import ResultKey, ResultStore, checkpoint_digest, default_store

# Defaults of the pages (one place, so pages and warm build identical keys).
PROBE_FOLDS = 5
PROBE_SEED = 0
UMAP_NEIGHBORS = 15
UMAP_MIN_DIST = 0.1
PROJECTION_SEED = 0
GAN_SAMPLES = 8              # GAN lab's sample grid
COMPARE_SAMPLES = 64         # Classifiers page
COMPARE_MAX_REAL = 256
DIRECTION_SAMPLES = 256      # labelled GAN samples when directions are fitted on samples
EDIT_STRENGTHS = tuple(float(s) for s in np.linspace(-3.0, 3.0, 9))


# ---------------------------------------------------------------- checkpoints

@dataclass
class Checkpoint:
    """A checkpoint folder, its weights digest and card; the model loads on first use."""

    path: str
    digest: str
    card: dict
    _model: Any = field(default=None, repr=False)

    @property
    def model_type(self) -> str:
        return str(self.card.get("model_type"))

    @property
    def split_seed(self) -> int:
        return int(self.card.get("cohort", {}).get("split_seed", 0))

    @property
    def model(self):
        if self._model is None:
            self._model = _load_model(self.path, self.digest)
        return self._model


_models: dict[tuple[str, str], Any] = {}
_models_lock = threading.Lock()


def _load_model(path: str, digest: str):
    from brainlab.checkpoints import load_checkpoint

    with _models_lock:
        if (path, digest) in _models:
            return _models[(path, digest)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fingerprint mismatch is the page's to report
        model, _ = load_checkpoint(path)
    model.requires_grad_(False)
    with _models_lock:
        _models[(path, digest)] = model
    return model


def open_checkpoint(checkpoint, model=None) -> Checkpoint | None:
    """A :class:`Checkpoint` from a folder path (or one already opened); None stays None.

    ``model``: the checkpoint's model when the caller has already loaded it.
    """
    if checkpoint is None or isinstance(checkpoint, Checkpoint):
        return checkpoint
    from brainlab.checkpoints import read_card

    path = str(Path(checkpoint).expanduser())
    opened = Checkpoint(path=path, digest=checkpoint_digest(path), card=read_card(path))
    if model is not None:
        opened._model = model
    return opened


def _expect(checkpoint: Checkpoint | None, types: tuple[str, ...], role: str) -> Checkpoint:
    if checkpoint is None:
        raise BrainlabInputError(f"{role} needs a checkpoint of type {' or '.join(types)}; found none")
    if checkpoint.model_type not in types:
        raise BrainlabInputError(
            f"{role} needs a checkpoint of type {' or '.join(types)}; {checkpoint.path} holds "
            f"a {checkpoint.model_type!r}")
    return checkpoint


def _key(kind: str, cohort, checkpoints: dict, settings: dict) -> ResultKey:
    digests = {role: c.digest for role, c in checkpoints.items() if c is not None}
    return ResultKey(kind, "" if cohort is None else str(cohort.fingerprint), digests, settings)


def _cached(key: ResultKey, compute: Callable[[], Any], store: ResultStore | None,
            progress: ProgressCallback, message: str):
    store = store or default_store()
    missing = object()
    value = store.get(key, missing)
    if value is not missing:
        report(progress, 1.0, "from the result store")
        return value
    report(progress, 0.0, message)
    value = compute()
    store.put(key, value)
    report(progress, 1.0, "done")
    return value


def _scaled(progress: ProgressCallback, low: float, high: float) -> ProgressCallback:
    """A callback mapping a sub-step's [0, 1] onto [low, high] of ``progress``."""
    if progress is None:
        return None
    return lambda fraction, message="": progress(low + (high - low) * float(fraction), message)


# ---------------------------------------------------------------- latents and maps

def latents_key(cohort, representation: str, checkpoint=None) -> ResultKey:
    from brainlab.analysis.latent_maps import VOXEL_BLOCK, get_representation

    rep = get_representation(representation)
    checkpoint = open_checkpoint(checkpoint)
    settings = {"representation": representation}
    if representation == "voxels":
        settings["block"] = VOXEL_BLOCK
    return _key("latents", cohort, {"model": checkpoint} if rep.model_type else {}, settings)


def latents(cohort, representation: str, checkpoint=None, progress: ProgressCallback = None,
            store: ResultStore | None = None) -> np.ndarray:
    """(n_subjects, n_features) float32 of one representation (see ``latent_maps``)."""
    from brainlab.analysis.latent_maps import get_representation, representation_features

    rep = get_representation(representation)
    checkpoint = open_checkpoint(checkpoint)
    if rep.model_type is not None:
        _expect(checkpoint, (rep.model_type,), rep.label)
    key = latents_key(cohort, representation, checkpoint)
    model = checkpoint.model if rep.model_type is not None else None

    def compute():
        if representation == "mri-ae":
            return autoencoder_codes(cohort, model, progress, store)
        if representation == "encoder":
            # E = mapper(whiten(autoencoder codes)): the image half is the GAN's frozen
            # autoencoder, usually the shipped MRI-AE, whose codes are stored already.
            import torch

            codes = autoencoder_codes(cohort, model.gan.autoencoder, progress, store)
            with torch.inference_mode():
                model.eval()
                return model.encode_codes(torch.from_numpy(codes)).float().numpy()
        return representation_features(representation, cohort, model, progress)

    return _cached(key, compute, store, progress, f"computing {rep.label}")


def weights_digest(module) -> str:
    """24 hex characters of SHA-256 over a module's state (names, dtypes, shapes, bytes)
    and its precision settings: equal digests mean the module computes the same thing."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    digest.update(f"bf16={getattr(module, 'use_bf16', False)}|channels_last="
                  f"{getattr(module, 'use_channels_last', False)}".encode())
    return digest.hexdigest()[:24]


def autoencoder_codes(cohort, autoencoder, progress: ProgressCallback = None,
                      store: ResultStore | None = None) -> np.ndarray:
    """(n_subjects, code_dim) float32 codes of an MRI autoencoder, keyed by its weights, so
    the MRI-AE latent map and the GAN encoder (which holds a copy of that autoencoder)
    encode the cohort once between them."""
    from brainlab.analysis.latents import encode_cohort

    key = _key("autoencoder-codes", cohort, {}, {"weights": weights_digest(autoencoder)})
    return _cached(key, lambda: encode_cohort(autoencoder, cohort, progress=progress)
                   .astype(np.float32), store, progress, "encoding the cohort")


def _projection_settings(representation, method, dims, neighbors, min_dist, seed) -> dict:
    from brainlab.analysis.projections import UMAP_EPOCHS

    if method not in ("pca", "umap"):
        raise BrainlabInputError(f"method must be 'pca' or 'umap'; found {method!r}")
    settings = {"representation": representation, "method": method, "dims": int(dims),
                "seed": int(seed)}
    if method == "umap":  # PCA ignores these, so they do not split its entries
        settings.update(neighbors=int(neighbors), min_dist=round(float(min_dist), 6),
                        epochs=UMAP_EPOCHS)
    return settings


def projection_key(cohort, representation: str, checkpoint=None, method: str = "pca",
                   dims: int = 2, neighbors: int = UMAP_NEIGHBORS,
                   min_dist: float = UMAP_MIN_DIST, seed: int = PROJECTION_SEED) -> ResultKey:
    from brainlab.analysis.latent_maps import get_representation

    checkpoint = open_checkpoint(checkpoint)
    rep = get_representation(representation)
    return _key("projection", cohort, {"model": checkpoint} if rep.model_type else {},
                _projection_settings(representation, method, dims, neighbors, min_dist, seed))


def projection(cohort, representation: str, checkpoint=None, method: str = "pca", dims: int = 2,
               neighbors: int = UMAP_NEIGHBORS, min_dist: float = UMAP_MIN_DIST,
               seed: int = PROJECTION_SEED, progress: ProgressCallback = None,
               store: ResultStore | None = None) -> np.ndarray:
    """(n_subjects, dims) float32 PCA or UMAP coordinates of a representation."""
    from brainlab.analysis.projections import project

    checkpoint = open_checkpoint(checkpoint)
    key = projection_key(cohort, representation, checkpoint, method, dims, neighbors, min_dist,
                         seed)

    def compute():
        features = latents(cohort, representation, checkpoint, _scaled(progress, 0.0, 0.5), store)
        report(progress, 0.5, f"{method.upper()} of {len(features)} subjects")
        return project(features, method=method, n_components=int(dims), seed=int(seed),
                       umap_neighbors=int(neighbors), umap_min_dist=float(min_dist))

    return _cached(key, compute, store, progress, f"{method.upper()} {dims}D")


# ---------------------------------------------------------------- probes

def _probe_settings(representation: str, n_splits: int, seed: int) -> dict:
    from brainlab.analysis.probes import MODEL_NAMES, PCA_COMPONENTS, PRE_PCA_COMPONENTS

    return {"representation": representation, "folds": int(n_splits), "seed": int(seed),
            "models": list(MODEL_NAMES), "pca": [PRE_PCA_COMPONENTS, PCA_COMPONENTS],
            "method": 4}  # bumped when the probe computation changes its numbers


def probe_rows_key(cohort, representation: str, checkpoint=None, n_splits: int = PROBE_FOLDS,
                   seed: int = PROBE_SEED) -> ResultKey:
    from brainlab.analysis.latent_maps import get_representation

    rep = get_representation(representation)
    checkpoint = open_checkpoint(checkpoint)
    return _key("probe-rows", cohort, {"model": checkpoint} if rep.model_type else {},
                _probe_settings(representation, n_splits, seed))


def probe_rows(cohort, representation: str, checkpoint=None, n_splits: int = PROBE_FOLDS,
               seed: int = PROBE_SEED, n_jobs: int | None = None,
               progress: ProgressCallback = None, partial: Callable | None = None,
               store: ResultStore | None = None) -> pd.DataFrame:
    """The probe-table rows of one representation alone (every target and model).

    Stored per representation, so the raw MRI rows that the MRI-AE, the encoder and
    the raw-voxel tables share are computed once. ``partial(row)`` gets each row as
    it is scored (or, from the store, all at once).
    """
    from brainlab.analysis.latent_maps import get_representation
    from brainlab.analysis.probe_runs import probe_groups, probe_labels
    from brainlab.analysis.probes import probe_table as score_probes

    rep = get_representation(representation)
    checkpoint = open_checkpoint(checkpoint)
    key = probe_rows_key(cohort, representation, checkpoint, n_splits, seed)

    def compute():
        features = latents(cohort, representation, checkpoint, _scaled(progress, 0.0, 0.2), store)
        return score_probes({rep.probe_name: features}, probe_labels(cohort), n_splits=n_splits,
                            seed=seed, n_jobs=n_jobs,
                            progress=_scaled(progress, 0.2, 1.0), on_row=partial,
                            groups=probe_groups(cohort))

    store = store or default_store()
    stored = store.get(key)
    if stored is not None:
        for row in stored.to_dict(orient="records") if partial is not None else ():
            partial(row)
        report(progress, 1.0, "from the result store")
        return stored
    return _cached(key, compute, store, progress, f"probes of {rep.label}")


def probe_table_key(cohort, representation: str, checkpoint=None, n_splits: int = PROBE_FOLDS,
                    seed: int = PROBE_SEED) -> ResultKey:
    from brainlab.analysis.latent_maps import get_representation

    rep = get_representation(representation)
    checkpoint = open_checkpoint(checkpoint)
    return _key("probe-table", cohort, {"model": checkpoint} if rep.model_type else {},
                _probe_settings(representation, n_splits, seed))


def probe_table(cohort, representation: str, checkpoint=None, n_splits: int = PROBE_FOLDS,
                seed: int = PROBE_SEED, n_jobs: int | None = None,
                progress: ProgressCallback = None, partial: Callable | None = None,
                store: ResultStore | None = None) -> pd.DataFrame:
    """The seed study's probe table for a representation (a latent is paired with the raw
    representation it compresses), with the seed-study reference column.

    Rows are in ``probes.probe_table``'s order (target, then raw before latent, then
    model); ``partial(row)`` receives each row (a dict) as soon as it is known.
    """
    from brainlab.analysis.latent_maps import get_representation
    from brainlab.analysis.probes import with_seed_reference

    rep = get_representation(representation)
    checkpoint = open_checkpoint(checkpoint)
    key = probe_table_key(cohort, representation, checkpoint, n_splits, seed)

    def compute():
        parts = []
        if rep.raw_pair is not None:
            parts.append(probe_rows(cohort, rep.raw_pair, None, n_splits, seed, n_jobs,
                                    _scaled(progress, 0.0, 0.5), partial, store))
        low = 0.5 if parts else 0.0
        parts.append(probe_rows(cohort, representation, checkpoint, n_splits, seed, n_jobs,
                                _scaled(progress, low, 1.0), partial, store))
        table = pd.concat(parts, ignore_index=True)
        targets = {name: i for i, name in enumerate(dict.fromkeys(table["target"]))}
        order = table["target"].map(targets).to_numpy() * len(parts)
        order += np.repeat(np.arange(len(parts)), [len(p) for p in parts])
        table = table.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
        return with_seed_reference(table)

    return _cached(key, compute, store, progress, "probes")


# ---------------------------------------------------------------- cohort means

def cohort_means_key(cohort) -> ResultKey:
    # The stored cells are keyed by bin label, which the cohort fingerprint does not hold.
    return _key("cohort-means", cohort, {}, {"method": 1,
                                             "bins": [str(b) for b in cohort.age_bin_labels or ()]})


def cohort_means(cohort, progress: ProgressCallback = None, store: ResultStore | None = None) -> dict:
    """Mean brains per sex, age bin and both: ``cohort_means.sex_and_age_means``."""
    from brainlab.analysis.cohort_means import sex_and_age_means

    return _cached(cohort_means_key(cohort), lambda: sex_and_age_means(cohort), store, progress,
                   "averaging the cohort's brains")


# ---------------------------------------------------------------- reconstructions

def reconstructions_key(cohort, checkpoint, split: str = "test") -> ResultKey:
    checkpoint = open_checkpoint(checkpoint)
    return _key("reconstructions", cohort, {"model": checkpoint},
                {"split": split, "split_seed": checkpoint.split_seed,
                 "scored": "inside the model's brain mask where it has one"})


def reconstructions(cohort, checkpoint, split: str = "test", progress: ProgressCallback = None,
                    store: ResultStore | None = None):
    """Held-out reconstruction results of an autoencoder.

    MRI AE: a DataFrame, one row per subject (subject_id, sex, age, ssim, psnr, mae,
    index). Morphometry AE: ``{"original": DataFrame, "reconstructed": DataFrame}``
    indexed by subject id.
    """
    from brainlab.analysis.reconstructions import (heldout_indices, morphometry_reconstruction,
                                                   reconstruction_errors)

    checkpoint = _expect(open_checkpoint(checkpoint), ("mri-ae", "morph-ae"), "reconstructions")
    key = reconstructions_key(cohort, checkpoint, split)
    indices = heldout_indices(cohort, checkpoint.split_seed, split)

    def compute():
        if checkpoint.model_type == "mri-ae":
            return reconstruction_errors(checkpoint.model, cohort, indices, progress=progress)
        original, reconstructed = morphometry_reconstruction(checkpoint.model, cohort, indices)
        return {"original": original, "reconstructed": reconstructed}

    return _cached(key, compute, store, progress, f"reconstructing {len(indices)} subjects")


# ---------------------------------------------------------------- GAN results

def gan_samples_key(gan, n: int = GAN_SAMPLES, seed: int = 0) -> ResultKey:
    return _key("gan-samples", None, {"gan": open_checkpoint(gan)}, {"n": int(n), "seed": int(seed)})


def gan_samples(gan, n: int = GAN_SAMPLES, seed: int = 0, progress: ProgressCallback = None,
                store: ResultStore | None = None) -> dict:
    """``{"latents": (n, latent_dim), "volumes": (n, D, H, W)}`` of a GAN from a seed."""
    from brainlab.analysis.gan_walks import render_frames

    gan = _expect(open_checkpoint(gan), ("gan", "dcgan-seed"), "GAN samples")
    if int(n) < 1:
        raise BrainlabInputError(f"number of samples must be >= 1; found {n}")

    def compute():
        z = np.asarray(gan.model.sample_latent(int(n), int(seed)), dtype=np.float32)
        return {"latents": z, "volumes": render_frames(gan.model, z)}

    return _cached(gan_samples_key(gan, n, seed), compute, store, progress, "generating samples")


def real_vs_synthetic_key(cohort, classifier, gan, n_samples: int = COMPARE_SAMPLES,
                          seed: int = 0, max_real: int | None = COMPARE_MAX_REAL) -> ResultKey:
    classifier, gan = open_checkpoint(classifier), open_checkpoint(gan)
    return _key("real-vs-synthetic", cohort, {"classifier": classifier, "gan": gan},
                {"n_samples": int(n_samples), "seed": int(seed), "max_real": max_real,
                 "split_seed": classifier.split_seed, "gan_split_seed": gan.split_seed,
                 **_foreign_models(cohort, classifier, gan)})


def real_vs_synthetic(cohort, classifier, gan, n_samples: int = COMPARE_SAMPLES, seed: int = 0,
                      max_real: int | None = COMPARE_MAX_REAL, progress: ProgressCallback = None,
                      store: ResultStore | None = None) -> dict:
    """``compare_real_synthetic`` of a classifier and a GAN: held-out real brains are the
    classifier's test split, the memorisation check uses the GAN's training split."""
    from brainlab.analysis.real_vs_synthetic import CLASSIFIER_TYPES, compare_real_synthetic

    classifier = _expect(open_checkpoint(classifier), CLASSIFIER_TYPES, "the comparison")
    gan = _expect(open_checkpoint(gan), ("gan", "dcgan-seed"), "the comparison")
    key = real_vs_synthetic_key(cohort, classifier, gan, n_samples, seed, max_real)

    def compute():
        reference = real_reference(cohort, classifier, gan, max_real,
                                   _scaled(progress, 0.0, 0.3), store)
        heldout, train = _judged_and_train(cohort, classifier, gan)
        return compare_real_synthetic(
            classifier.model, gan.model, cohort, n_samples=int(n_samples), seed=int(seed),
            heldout_indices=heldout, train_indices=train, max_real=max_real,
            memorisation=train is not None, progress=_scaled(progress, 0.3, 1.0),
            reference=reference)

    return _cached(key, compute, store, progress, "comparing real and synthetic brains")


def real_reference_key(cohort, classifier, gan, max_real: int | None = COMPARE_MAX_REAL
                       ) -> ResultKey:
    classifier, gan = open_checkpoint(classifier), open_checkpoint(gan)
    return _key("real-reference", cohort, {"classifier": classifier},
                {"max_real": max_real, "split_seed": classifier.split_seed,
                 "train_split_seed": gan.split_seed,
                 **_foreign_models(cohort, classifier, gan)})


def real_reference(cohort, classifier, gan, max_real: int | None = COMPARE_MAX_REAL,
                   progress: ProgressCallback = None, store: ResultStore | None = None) -> dict:
    """The GAN-independent half of a comparison (``real_vs_synthetic.real_reference``):
    the classifier on the held-out real brains and their nearest training brains. Stored,
    so a new sample seed or count on the Classifiers page only computes the samples' half.
    ``gan`` only says which training split the memorisation check uses."""
    from brainlab.analysis.real_vs_synthetic import heldout_subset
    from brainlab.analysis.real_vs_synthetic import real_reference as compute_reference

    classifier, gan = open_checkpoint(classifier), open_checkpoint(gan)
    key = real_reference_key(cohort, classifier, gan, max_real)
    heldout, train = _judged_and_train(cohort, classifier, gan)
    heldout = heldout_subset(heldout, max_real)
    return _cached(key, lambda: compute_reference(
        classifier.model, cohort, heldout, np.asarray([] if train is None else train),
        memorisation=train is not None, progress=progress), store, progress, "real brains")


def _trained_here(cohort, checkpoint: Checkpoint) -> bool:
    return checkpoint.card.get("cohort", {}).get("fingerprint") == str(cohort.fingerprint)


def _judged_and_train(cohort, classifier: Checkpoint, gan: Checkpoint):
    """The real brains a comparison judges (the classifier's test split, or every subject
    when it was trained on another cohort) and the GAN's training brains for the
    memorisation check (None when the GAN was trained elsewhere): as the pages judge."""
    from brainlab.analysis.judged_subjects import judged_subjects, training_indices

    return (judged_subjects(cohort, classifier.card).indices,
            training_indices(cohort, gan.card))


def _foreign_models(cohort, classifier: Checkpoint, gan: Checkpoint) -> dict:
    """Key settings for models trained on another cohort (none for the usual case, so
    the keys of models trained on this cohort are unchanged)."""
    settings = {}
    if not _trained_here(cohort, classifier):
        settings["judged"] = "all"
    if not _trained_here(cohort, gan):
        settings["memorisation"] = False
    return settings


DIRECTION_SOURCES = ("real", "samples", "both")


def _direction_checkpoints(source, gan, encoder, sex_model, age_model) -> dict:
    if source not in DIRECTION_SOURCES:
        raise BrainlabInputError(f"direction source must be one of {DIRECTION_SOURCES}; "
                                 f"found {source!r}")
    gan = _expect(open_checkpoint(gan), ("gan", "dcgan-seed"), "attribute directions")
    encoder, sex_model, age_model = (open_checkpoint(c) for c in (encoder, sex_model, age_model))
    if source in ("real", "both"):
        _expect(encoder, ("encoder",), f"directions fitted on {source!r} latents")
    if source == "real":
        return {"gan": gan, "encoder": encoder}
    if sex_model is None and age_model is None and source == "samples":
        raise BrainlabInputError("directions fitted on GAN samples need the sex classifier "
                                 "or the brain-age model to label them; found neither")
    return {"gan": gan, "encoder": encoder if source == "both" else None, "sex": sex_model,
            "age": age_model}


def directions_key(cohort, gan, source: str = "real", encoder=None, sex_model=None,
                   age_model=None, n_samples: int = DIRECTION_SAMPLES) -> ResultKey:
    used = _direction_checkpoints(source, gan, encoder, sex_model, age_model)
    settings = {"source": source, "split_seed": used["gan"].split_seed, "seed": 0}
    if source != "real":
        settings["n_samples"] = int(n_samples)
    if source != "samples" and not _trained_here(cohort, used["gan"]):
        settings["fit_on"] = "all"  # a GAN trained elsewhere: every subject is fitted on
    return _key("directions", cohort if source != "samples" else None, used, settings)


def directions(cohort, gan, source: str = "real", encoder=None, sex_model=None, age_model=None,
               n_samples: int = DIRECTION_SAMPLES, progress: ProgressCallback = None,
               store: ResultStore | None = None):
    """Sex/age directions in the GAN's z (an ``AttributeDirections``), fitted on encoded
    real subjects (the GAN's train split), on classifier-labelled samples, or both."""
    from brainlab.analysis import attribute_edits

    used = _direction_checkpoints(source, gan, encoder, sex_model, age_model)
    key = directions_key(cohort, gan, source, encoder, sex_model, age_model, n_samples)
    gan = used["gan"]

    def model(role: str):  # loaded only when the result is not stored
        return used[role].model if used.get(role) is not None else None

    def compute():
        from brainlab.analysis.judged_subjects import fitting_subjects

        train = fitting_subjects(cohort, gan.card)
        # E(x) of every subject is a stored result of its own (the latent maps use it).
        codes = (latents(cohort, "encoder", used["encoder"], store=store)
                 if source in ("real", "both") else None)
        if source == "real":
            return attribute_edits.directions_from_real(model("encoder"), cohort, train,
                                                        codes=codes)
        if source == "both":
            return attribute_edits.directions_from_both(
                model("encoder"), cohort, train, gan.model, int(n_samples), seed=0,
                sex_model=model("sex"), age_model=model("age"), codes=codes)
        return attribute_edits.directions_from_samples(
            gan.model, int(n_samples), seed=0, sex_model=model("sex"), age_model=model("age"))

    return _cached(key, compute, store, progress, "fitting directions")


def edit_curve_key(cohort, gan, attribute: str, start: str = "seed:0", source: str = "real",
                   encoder=None, sex_model=None, age_model=None,
                   n_samples: int = DIRECTION_SAMPLES, strengths=EDIT_STRENGTHS) -> ResultKey:
    direction = directions_key(cohort, gan, source, encoder, sex_model, age_model, n_samples)
    sex_model, age_model = open_checkpoint(sex_model), open_checkpoint(age_model)
    return _key("edit-curve", cohort, {"sex": sex_model, "age": age_model},
                {"directions": direction.digest, "attribute": attribute, "start": str(start),
                 "strengths": [float(s) for s in strengths]})


def edit_curve(cohort, gan, attribute: str, start: str = "seed:0", source: str = "real",
               encoder=None, sex_model=None, age_model=None, n_samples: int = DIRECTION_SAMPLES,
               strengths=EDIT_STRENGTHS, progress: ProgressCallback = None,
               store: ResultStore | None = None) -> dict:
    """What the classifiers say about a brain edited along a direction, over strength.

    ``attribute``: "sex", "age" or "age_given_sex"; ``start``: "seed:N" (a GAN sample)
    or "subject:ID" (an encoded real subject). Returns ``{"strength", "p_male", "age"}``
    (arrays, None where that classifier is missing).
    """
    from brainlab.analysis import attribute_edits
    from brainlab.analysis.gan_walks import seed_latent, subject_latent

    gan_checkpoint = _expect(open_checkpoint(gan), ("gan", "dcgan-seed"), "edit curves")
    encoder, sex_model, age_model = (open_checkpoint(c) for c in (encoder, sex_model, age_model))
    if sex_model is None and age_model is None:
        raise BrainlabInputError("an edit curve needs the sex classifier or the brain-age "
                                 "model to score the edited brains; found neither")
    kind, _, value = str(start).partition(":")
    if kind not in ("seed", "subject") or not value:
        raise BrainlabInputError(f"start must be 'seed:N' or 'subject:ID'; found {start!r}")
    key = edit_curve_key(cohort, gan_checkpoint, attribute, start, source, encoder, sex_model,
                         age_model, n_samples, strengths)

    def compute():
        fitted = directions(cohort, gan_checkpoint, source, encoder, sex_model, age_model,
                            n_samples, _scaled(progress, 0.0, 0.5), store)
        if kind == "seed":
            z = seed_latent(gan_checkpoint.model, int(value))
        else:
            _expect(encoder, ("encoder",), "an edit that starts from a real subject")
            z = subject_latent(encoder.model, cohort, value, 0)
        report(progress, 0.6, "editing and scoring")
        curve = attribute_edits.effectiveness_curve(
            gan_checkpoint.model, z, fitted.get(attribute), np.asarray(strengths),
            sex_model.model if sex_model is not None else None,
            age_model.model if age_model is not None else None)
        curve.pop("volumes")
        return curve

    return _cached(key, compute, store, progress, "edit curve")


# ---------------------------------------------------------------- evaluations

def evaluation_key(cohort, checkpoint, max_subjects: int | None = None) -> ResultKey:
    return _key("evaluation", cohort, {"model": open_checkpoint(checkpoint)},
                {"split": "test", "max_subjects": max_subjects})


def evaluation(cohort, checkpoint, max_subjects: int | None = None,
               progress: ProgressCallback = None, store: ResultStore | None = None) -> dict:
    """``analysis.evaluation.evaluate_checkpoint`` on the cohort's test split (the card's
    split seed), with progress."""
    from brainlab.analysis.evaluation import evaluate_checkpoint

    checkpoint = open_checkpoint(checkpoint)
    key = evaluation_key(cohort, checkpoint, max_subjects)
    return _cached(key, lambda: evaluate_checkpoint(checkpoint.path, cohort, max_subjects,
                                                    progress=progress),
                   store, progress, f"evaluating {checkpoint.model_type}")


# ---------------------------------------------------------------- warm

@dataclass(frozen=True)
class WarmItem:
    """One derived result to have in the store: what it is, its key, how to compute it."""

    label: str
    key: ResultKey
    compute: Callable[..., Any]   # compute(progress=..., store=...)
    weight: float = 1.0           # rough relative cost, for one progress bar over the plan
    needs: tuple = ()             # keys of stored results it reads (computed before it)


def default_checkpoints(cohort, entries: list[dict] | None = None) -> dict[str, Checkpoint]:
    """Per model type, the checkpoint a page picks first for ``cohort``: those fitting the
    cohort, exact fingerprint first, then shipped ones, then by path."""
    from brainlab.checkpoints import available, check_cohort_compatible, read_card

    usable: dict[str, list] = {}
    for entry in available() if entries is None else entries:
        try:
            check_cohort_compatible(read_card(entry["path"]), cohort)
        except (BrainlabInputError, OSError):
            continue
        usable.setdefault(entry["model_type"], []).append(entry)
    chosen = {}
    for model_type, found in usable.items():
        found.sort(key=lambda e: (e.get("fingerprint") != cohort.fingerprint,
                                  not e.get("shipped"), e["path"]))
        chosen[model_type] = open_checkpoint(found[0]["path"])
    return chosen


def warm_plan(cohort, checkpoints: dict[str, Checkpoint] | None = None,
              evaluations: bool = True) -> list[WarmItem]:
    """Every derived result the pages show by default for ``cohort``, cheapest first."""
    from functools import partial

    from brainlab.analysis.latent_maps import REPRESENTATIONS, available_representations

    chosen = default_checkpoints(cohort) if checkpoints is None else dict(checkpoints)
    items: list[WarmItem] = []

    def add(label, key_function, function, weight, *args, needs=(), **kwargs):
        items.append(WarmItem(label, key_function(*args, **kwargs),
                              partial(function, *args, **kwargs), weight, tuple(needs)))
        return items[-1].key

    if cohort.images is not None:  # first: the Cohort page, the tour's first stop, reads it
        add("cohort mean brains", cohort_means_key, cohort_means, 1, cohort)
    planned = available_representations(cohort, chosen)
    latent_keys, probe_keys = {}, {}
    for rep_key in planned:
        rep = REPRESENTATIONS[rep_key]
        model = chosen.get(rep.model_type) if rep.model_type else None
        # The GAN encoder's latents reuse the MRI-AE's stored codes (see ``latents``).
        after = [latent_keys["mri-ae"]] if rep_key == "encoder" and "mri-ae" in latent_keys else []
        latent_keys[rep_key] = add(f"latents: {rep.label}", latents_key, latents, 2, cohort,
                                   rep_key, model, needs=after)
        for method in ("pca", "umap"):
            for dims in (2, 3):
                add(f"{method.upper()} {dims}D: {rep.label}", projection_key, projection,
                    1 if method == "pca" else 3, cohort, rep_key, model, method, dims,
                    needs=[latent_keys[rep_key]])
        # A latent's table shares its raw pair's rows: after that pair's own table.
        pair = rep.raw_pair
        needs = [latent_keys[rep_key]] + [keys[pair] for keys in (latent_keys, probe_keys)
                                          if pair in keys]
        probe_keys[rep_key] = add(f"probes: {rep.label}", probe_table_key, probe_table, 10,
                                  cohort, rep_key, model, needs=needs)
    images = cohort.images is not None
    for model_type in ("mri-ae", "morph-ae"):
        if model_type in chosen and (images or model_type == "morph-ae"):
            add(f"reconstructions: {model_type}", reconstructions_key, reconstructions, 4,
                cohort, chosen[model_type])
    gan = chosen.get("gan")
    if gan is not None and images:
        add("GAN samples", gan_samples_key, gan_samples, 1, gan)
        for classifier_type in ("sex-clf", "age-model"):
            if classifier_type in chosen:
                add(f"real vs synthetic: {classifier_type}", real_vs_synthetic_key,
                    real_vs_synthetic, 5, cohort, chosen[classifier_type], gan)
        encoder, sex_model, age_model = (chosen.get(t) for t in ("encoder", "sex-clf", "age-model"))
        source = "real" if encoder is not None else "samples"
        if encoder is not None or sex_model is not None or age_model is not None:
            fitted = add(f"directions ({source})", directions_key, directions, 3, cohort, gan,
                         source, encoder, sex_model, age_model,
                         needs=[latent_keys["encoder"]] if "encoder" in latent_keys else [])
            if sex_model is not None or age_model is not None:
                add("edit curve: age ⟂ sex", edit_curve_key, edit_curve, 2, cohort, gan,
                    "age_given_sex", "seed:0", source, encoder, sex_model, age_model,
                    needs=[fitted])
    if evaluations:
        for model_type, checkpoint in sorted(chosen.items()):
            if checkpoint.card.get("extra_state", {}).get("grid_shape") and not images:
                continue
            add(f"evaluation: {model_type}", evaluation_key, evaluation, 15, cohort, checkpoint)
    return items


WARM_WORKERS = 2  # a warm-up mixes one-core work (UMAP, forests, numpy) with torch's


def run_plan(plan: list[WarmItem], run_item: Callable[[WarmItem], Any],
             workers: int = WARM_WORKERS) -> None:
    """``run_item(item)`` for every item on ``workers`` threads, in plan order, each
    item once the planned items it ``needs`` have finished (so no stored input is
    computed twice). Exceptions are ``run_item``'s to handle."""
    planned = {item.key.digest for item in plan}
    finished: set[str] = set()
    pending = list(plan)
    changed = threading.Condition()

    def ready(item: WarmItem) -> bool:
        return all(k.digest in finished or k.digest not in planned for k in item.needs)

    def lane() -> None:
        while True:
            with changed:
                while True:
                    item = next((i for i in pending if ready(i)), None)
                    if item is not None or not pending:
                        break
                    changed.wait()
                if item is None:
                    return
                pending.remove(item)
            try:
                run_item(item)
            finally:
                with changed:
                    finished.add(item.key.digest)
                    changed.notify_all()

    threads = [threading.Thread(target=lane, name=f"brainlab-warm-{i}", daemon=True)
               for i in range(max(1, min(int(workers), len(plan))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def warm(cohort, progress: ProgressCallback = None, store: ResultStore | None = None,
         checkpoints: dict[str, Checkpoint] | None = None, evaluations: bool = True,
         plan: list[WarmItem] | None = None, workers: int = WARM_WORKERS) -> dict:
    """Compute every item of ``warm_plan`` that the store lacks, on ``workers`` threads.

    Returns ``{"hits": [labels], "computed": [labels], "failed": {label: message}}``;
    one failing item (e.g. a checkpoint saved by an older architecture) does not stop
    the others.
    """
    store = store or default_store()
    plan = warm_plan(cohort, checkpoints, evaluations) if plan is None else plan
    total = sum(item.weight for item in plan) or 1.0
    summary: dict = {"hits": [], "computed": [], "failed": {}}
    missing, stored_weight = [], 0.0
    for item in plan:
        if store.contains(item.key):
            summary["hits"].append(item.label)
            stored_weight += item.weight
        else:
            missing.append(item)
    lock = threading.Lock()
    done = [stored_weight]
    report(progress, done[0] / total, f"{len(summary['hits'])} results already stored")

    def run_item(item: WarmItem) -> None:
        try:
            item.compute(progress=None, store=store)
            outcome = None
        except (BrainlabInputError, ValueError, RuntimeError, OSError) as error:
            outcome = str(error)
        with lock:
            if outcome is None:
                summary["computed"].append(item.label)
            else:
                summary["failed"][item.label] = outcome
            done[0] += item.weight
            report(progress, done[0] / total, item.label)

    run_plan(missing, run_item, workers)
    order = {item.label: i for i, item in enumerate(plan)}
    summary["computed"].sort(key=order.get)
    return summary


# ---------------------------------------------------------------- background requests

KEY_FUNCTIONS = {latents: latents_key, projection: projection_key, probe_rows: probe_rows_key,
                 probe_table: probe_table_key, reconstructions: reconstructions_key,
                 gan_samples: gan_samples_key, real_vs_synthetic: real_vs_synthetic_key,
                 real_reference: real_reference_key,
                 directions: directions_key, edit_curve: edit_curve_key,
                 evaluation: evaluation_key}
_RUN_ONLY = ("n_jobs", "progress", "partial", "store")


def result_key(function: Callable, *args, **kwargs) -> ResultKey:
    """The store key ``function(*args, **kwargs)`` (one of ``KEY_FUNCTIONS``) uses."""
    if function not in KEY_FUNCTIONS:
        raise BrainlabInputError(
            f"{getattr(function, '__name__', function)!r} is not a derived result; expected one "
            f"of {', '.join(f.__name__ for f in KEY_FUNCTIONS)}")
    settings = {k: v for k, v in kwargs.items() if k not in _RUN_ONLY}
    return KEY_FUNCTIONS[function](*args, **settings)


def request(function: Callable, *args, label: str = "", **kwargs):
    """Start (or join) ``function(*args, **kwargs)`` in the background; returns the
    :class:`~brainlab.background.Task`, keyed by the result's store key.

    A page calls this and polls ``task.snapshot()``; two sessions asking for the same
    result get the same task. A result already on disk finishes at once.
    """
    from brainlab.background import runner

    key = result_key(function, *args, **kwargs)
    return runner().submit(key, function, *args, label=label or key.kind, **kwargs)


def start_warm(cohort, evaluations: bool = True):
    """``warm(cohort)`` as one background task (the app's first start); returns the Task."""
    from brainlab.background import runner

    return runner().submit(f"warm/{cohort.fingerprint}/{int(evaluations)}", warm, cohort,
                           label=f"preparing results for {cohort.name}",
                           evaluations=evaluations)
