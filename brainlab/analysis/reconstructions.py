"""How well autoencoders reconstruct held-out subjects: per-subject errors, per-feature R².

The Reconstructions page and ``python -m brainlab evaluate`` read the same numbers:
``heldout_indices`` names the subjects a checkpoint never trained on (its card's
split seed), ``reconstruction_errors`` scores an MRI autoencoder on each of them
(SSIM, PSNR, mean absolute error), ``morphometry_reconstruction`` and
``per_feature_r2`` do the same for the morphometry autoencoder's features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import r2_score

from brainlab.analysis.metrics import psnr, psnr_masked, ssim3d, ssim3d_masked
from brainlab.data.cohort import Cohort
from brainlab.data.progress import ProgressCallback, report
from brainlab.errors import BrainlabInputError

SPLITS = ("test", "val", "train", "all")


def heldout_indices(cohort: Cohort, split_seed: int = 0, which: str = "test") -> np.ndarray:
    """Row positions of the ``which`` split ("test", "val", "train" or "all") of ``cohort``.

    Uses the cohort's fixed stratified split with ``split_seed`` (store the seed of a
    checkpoint's card here so "held-out" means subjects that model never saw).
    """
    if which not in SPLITS:
        raise BrainlabInputError(f"split must be one of {', '.join(SPLITS)}; found {which!r}")
    if which == "all":
        return np.arange(len(cohort))
    return np.asarray(getattr(cohort.split(split_seed), which), dtype=np.int64)


def _subject_columns(cohort: Cohort, indices: np.ndarray) -> pd.DataFrame:
    table = cohort.table.iloc[indices]
    return pd.DataFrame({"subject_id": table["subject_id"].astype(str).to_numpy(),
                         "sex": table["sex"].to_numpy(), "age": table["age"].to_numpy()})


def brain_mask_of(model) -> np.ndarray | None:
    """The training mean-brain mask an MRI autoencoder v2 carries (the voxels its card's
    SSIM is scored on), or None for a model without one."""
    mask = getattr(model, "mask", None)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or not bool(mask.any()):
        return None
    return mask.cpu().numpy()


def volume_errors(original, reconstruction, mask=None) -> dict[str, float]:
    """SSIM, PSNR (dB) and mean absolute error of one (D, H, W) reconstruction; inside
    ``mask`` (D, H, W) bool when given, as the cards score them (else the whole box)."""
    original = np.asarray(original, dtype=np.float32)
    reconstruction = np.asarray(reconstruction, dtype=np.float32)
    if mask is None:
        return {"ssim": ssim3d(original, reconstruction), "psnr": psnr(original, reconstruction),
                "mae": float(np.mean(np.abs(original - reconstruction)))}
    return {"ssim": ssim3d_masked(original, reconstruction, mask),
            "psnr": psnr_masked(original, reconstruction, mask),
            "mae": float(np.mean(np.abs(original[mask] - reconstruction[mask])))}


@torch.inference_mode()
def reconstruct_subjects(model, cohort: Cohort, indices, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(originals, reconstructions), each (n, D, H, W) float32, by an MRI autoencoder."""
    if cohort.images is None:
        raise BrainlabInputError(
            f"reconstructing MRI needs images, but cohort {cohort.name!r} is table-only")
    indices = np.atleast_1d(np.asarray(indices, dtype=np.int64))
    model.eval()
    originals, recons = [], []
    for start in range(0, len(indices), batch_size):
        volumes = torch.from_numpy(cohort.images[indices[start:start + batch_size]])[:, None]
        originals.append(volumes[:, 0].numpy())
        recons.append(model(volumes)[:, 0].float().clamp(0, 1).cpu().numpy())
    return np.concatenate(originals), np.concatenate(recons)


def reconstruction_errors(model, cohort: Cohort, indices, batch_size: int = 8,
                          progress: ProgressCallback = None) -> pd.DataFrame:
    """One row per subject of ``indices``: subject_id, sex, age, ssim, psnr, mae, index.

    Scored inside the model's brain mask when it has one (``brain_mask_of``), as its card
    is. ``index`` is the subject's row in the cohort. Reconstructions are scored batch by
    batch and then dropped, so memory stays at one batch whatever the cohort size.
    """
    indices = np.atleast_1d(np.asarray(indices, dtype=np.int64))
    if len(indices) == 0:
        raise BrainlabInputError("reconstruction_errors needs at least one subject; found none")
    rows = []
    mask = brain_mask_of(model)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        originals, recons = reconstruct_subjects(model, cohort, chunk, batch_size)
        rows.extend(volume_errors(o, r, mask) for o, r in zip(originals, recons))
        report(progress, min(1.0, (start + len(chunk)) / len(indices)), "reconstructing")
    errors = pd.DataFrame(rows)
    table = _subject_columns(cohort, indices)
    return pd.concat([table, errors], axis=1).assign(index=indices)


# ---------------------------------------------------------------- morphometry

@torch.inference_mode()
def morphometry_reconstruction(model, cohort: Cohort, indices) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(original, reconstructed) feature tables (n, n_features) of a morphometry AE.

    Columns are the model's ``feature_names``; the index is the subject id. Missing
    (NaN) inputs stay NaN in the original table.
    """
    names = list(model.extra_state()["feature_names"])
    missing = [name for name in names if name not in cohort.table.columns]
    if missing:
        raise BrainlabInputError(
            f"the morphometry autoencoder expects {len(names)} features; cohort "
            f"{cohort.name!r} lacks {len(missing)}, e.g. {missing[:3]}")
    indices = np.atleast_1d(np.asarray(indices, dtype=np.int64))
    raw = cohort.table[names].to_numpy(dtype=np.float32, na_value=np.nan)[indices]
    model.eval()
    recon = model(torch.from_numpy(raw)).float().cpu().numpy()
    ids = cohort.table["subject_id"].astype(str).to_numpy()[indices]
    return (pd.DataFrame(raw, columns=names, index=ids),
            pd.DataFrame(recon, columns=names, index=ids))


def per_feature_r2(original: pd.DataFrame, reconstructed: pd.DataFrame) -> pd.Series:
    """sklearn ``r2_score`` per feature over the subjects (rows), NaN inputs skipped.

    Features with fewer than 2 observed subjects or no variance get NaN. Sorted from
    worst to best reconstructed.
    """
    if list(original.columns) != list(reconstructed.columns) or original.shape != reconstructed.shape:
        raise BrainlabInputError(
            f"original and reconstruction must have the same features and subjects; found "
            f"{original.shape} and {reconstructed.shape}")
    scores = {}
    for name in original.columns:
        truth = original[name].to_numpy(dtype=np.float64)
        guess = reconstructed[name].to_numpy(dtype=np.float64)
        observed = np.isfinite(truth) & np.isfinite(guess)
        if observed.sum() < 2 or np.ptp(truth[observed]) == 0:
            scores[name] = np.nan
        else:
            scores[name] = float(r2_score(truth[observed], guess[observed]))
    return pd.Series(scores, name="r2", dtype=float).sort_values()


def standardised_features(values: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """``values`` in z-units of ``reference``'s mean and sd (so features in different
    units share one axis); constant features get sd 1."""
    mean = reference.mean(skipna=True)
    sd = reference.std(skipna=True, ddof=0).replace(0, 1.0).fillna(1.0)
    return (values - mean) / sd
