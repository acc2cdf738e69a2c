"""Generate brains at a requested sex and age, and let the judges say what they see.

The judges are the sex classifier ("sex-clf": P(male)) and the brain-age model
("age-model", trained per cohort, e.g. ``checkpoints/age-model-lifespan``), found among
the shipped and cached checkpoints by grid and, preferably, by the GAN's own cohort.
``judge_conditioning`` gives the card's figures: mean P(male) of M- and F-conditioned
samples (targets >= 0.8 / <= 0.2) and, on ages in years, the correlation between the
requested and the predicted brain age (target >= 0.8).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from brainlab.errors import BrainlabInputError

JUDGE_TYPES = {"sex": "sex-clf", "age": "age-model"}


def require_conditional(gan, where: str = "model") -> None:
    """``BrainlabInputError`` unless ``gan`` is a conditional latent GAN."""
    if not getattr(gan, "conditional", False):
        raise BrainlabInputError(
            f"{where} is not a conditional GAN (it takes no sex or age); expected a 'gan' "
            f"checkpoint trained with conditioning (python -m brainlab train gan)")


def requested_conditions(gan, sex: str, ages, n: int) -> tuple[list[str], list]:
    """n sexes and ages (one age repeated, or one per sample), checked against the model."""
    spec = gan.condition_spec
    ages = list(ages) if isinstance(ages, (list, tuple, np.ndarray)) else [ages] * int(n)
    sexes = [spec.check_sex(sex)] * len(ages)
    gan.condition(sexes, ages)  # raises a clear error for an age outside the model
    return sexes, ages


@torch.no_grad()
def generate_conditioned(gan, sexes, ages, seed: int = 0, z=None, chunk: int = 16
                         ) -> np.ndarray:
    """(n, D, H, W) float32 brains at the requested sexes and ages (z from ``seed``)."""
    require_conditional(gan)
    condition = gan.condition(sexes, ages)
    z = gan.sample_latent(len(sexes), seed) if z is None else torch.as_tensor(z).float()
    parts = [gan.generate(z[start:start + chunk], condition[start:start + chunk])[:, 0]
             for start in range(0, len(z), chunk)]
    return torch.cat(parts).cpu().numpy()


def find_judges(grid_shape, cohort_name: str | None = None, dirs=None) -> dict:
    """``{"sex": path | None, "age": path | None}``: a judge checkpoint on ``grid_shape``,
    one trained on ``cohort_name`` first, then shipped ones."""
    from brainlab.checkpoints import available

    found = {}
    for role, model_type in JUDGE_TYPES.items():
        candidates = []
        for entry in available(dirs):
            if entry["model_type"] != model_type:
                continue
            from brainlab.checkpoints import read_card

            grid = read_card(entry["path"]).get("cohort", {}).get("grid_shape")
            if grid is not None and tuple(grid) != tuple(grid_shape):
                continue
            candidates.append((entry["cohort"] != cohort_name, not entry["shipped"],
                               entry["path"]))
        found[role] = sorted(candidates)[0][2] if candidates else None
    return found


def load_judges(paths: dict) -> dict:
    """``{"sex": model | None, "age": (model, target) | None}`` from ``find_judges`` paths."""
    from brainlab.checkpoints import load_checkpoint

    judges = {"sex": None, "age": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if paths.get("sex"):
            judges["sex"] = load_checkpoint(paths["sex"], expected_type="sex-clf")[0]
        if paths.get("age"):
            judges["age"] = load_checkpoint(paths["age"], expected_type="age-model")[0]
    return judges


@torch.no_grad()
def judge_volumes(volumes: np.ndarray, judges: dict, chunk: int = 16) -> dict:
    """``{"p_male": (n,) | None, "predicted_age": (n,) | None, "age_unit": ...}``."""
    x = torch.from_numpy(np.asarray(volumes, dtype=np.float32))[:, None]
    out = {"p_male": None, "predicted_age": None, "age_unit": None}
    if judges.get("sex") is not None:
        out["p_male"] = np.concatenate([judges["sex"].predict_proba(x[s:s + chunk]).numpy()
                                        for s in range(0, len(x), chunk)])
    if judges.get("age") is not None:
        model = judges["age"]
        out["predicted_age"] = np.concatenate([model.predict_age(x[s:s + chunk]).numpy()
                                               for s in range(0, len(x), chunk)])
        out["age_unit"] = "years" if model.target == "years" else "age bin index"
    return out


def conditioning_ages(gan, n: int) -> list:
    """``n`` requested ages spread over the model's range (years) or cycling its bins."""
    spec = gan.condition_spec
    if spec.age_encoding == "years":
        return np.linspace(*spec.age_range, int(n)).round(1).tolist()
    if spec.age_encoding == "bins":
        return [i % len(spec.age_bin_labels) for i in range(int(n))]
    return [0] * int(n)


def judge_conditioning(gan, judges: dict, n_per_sex: int = 48, seed: int = 0) -> dict:
    """The card's judge figures for ``n_per_sex`` samples per sex at spread ages."""
    require_conditional(gan)
    ages = conditioning_ages(gan, n_per_sex)
    metrics: dict = {"judge_n_per_sex": int(n_per_sex)}
    requested, predicted = [], []
    for offset, sex in enumerate(gan.condition_spec.sexes or ("M",)):
        volumes = generate_conditioned(gan, [sex] * len(ages), ages, seed=seed + offset)
        verdict = judge_volumes(volumes, judges)
        if verdict["p_male"] is not None:
            metrics[f"judge_p_male_{sex}"] = float(np.mean(verdict["p_male"]))
        if verdict["predicted_age"] is not None:
            requested += list(ages)
            predicted += verdict["predicted_age"].tolist()
    if predicted and len(set(requested)) > 1:
        metrics["judge_age_r"] = float(np.corrcoef(requested, predicted)[0, 1])
        metrics["judge_age_unit"] = ("years" if gan.condition_spec.age_encoding == "years"
                                     else "age bin index")
    metrics["judge_targets"] = "P(male) >= 0.8 for M, <= 0.2 for F; r(age) >= 0.8 (lifespan)"
    return metrics


def judge_real_subjects(cohort, rows, judges: dict, encoding: str = "years") -> dict:
    """The judges' baseline: the same figures on real subjects ``rows`` (their own sexes
    and ages), so a generator is read against what the judges manage on real brains."""
    rows = np.asarray(rows, dtype=np.int64)
    verdict = judge_volumes(np.stack([cohort.images[int(r)] for r in rows]), judges)
    table = cohort.table.iloc[rows]
    sexes = table["sex"].astype(str).to_numpy()
    metrics = {"judge_real_n": int(len(rows))}
    if verdict["p_male"] is not None:
        for sex in ("F", "M"):
            if (sexes == sex).any():
                metrics[f"judge_real_p_male_{sex}"] = float(verdict["p_male"][sexes == sex].mean())
    if verdict["predicted_age"] is not None:
        ages = table["age_bin" if encoding == "bins" else "age"].to_numpy(dtype=float)
        if np.isfinite(ages).all() and len(set(ages)) > 1:
            metrics["judge_real_age_r"] = float(np.corrcoef(ages, verdict["predicted_age"])[0, 1])
    return metrics
