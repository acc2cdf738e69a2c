"""Checkpoints: ``model.safetensors`` + ``model_card.json`` in one folder.

The card stores the model type, its config verbatim, the extra state needed to
rebuild the architecture, versions, the cohort (name, fingerprint, grid, split),
training time and steps, and held-out metrics with their n. Loading rebuilds the
model from the card and checks model type, tensor names and shapes and (given a
cohort) the grid; a mismatch raises ``CheckpointMismatchError`` naming expected vs
found. ``quality_verdict`` compares a card's metrics with the targets in
``brainlab.registry``. Model classes are imported only when a checkpoint is loaded.
"""

from __future__ import annotations

import json
import math
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import brainlab
from brainlab.atomic import atomic_write
from brainlab.config import config_from_dict, config_to_dict
from brainlab.errors import CheckpointMismatchError
from brainlab.registry import MODEL_TYPES, model_spec

WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "model_card.json"
# Float parameters at least this large may be stored as fp16 (restored to fp32 on load).
HALF_STORAGE_MIN_NUMEL = 4096


def _json_ready(value):
    """Numpy scalars/arrays and tuples -> plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if hasattr(value, "tolist"):
        return _json_ready(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN and infinity (a perfect PSNR) are not JSON
    return value


def save_checkpoint(model, out_dir, cohort, split_seed: int, metrics: dict, training: dict,
                    storage: str = "float32", split_sizes: dict | None = None) -> Path:
    """Write ``model.safetensors`` and ``model_card.json`` into ``out_dir``; return it.

    ``storage="float16"`` stores large float tensors (parameters and buffers such as
    the autoencoder's PCA basis) as fp16: half the size; they are restored to fp32 on
    load, so outputs change slightly. Each file is written
    to a temporary name and moved into place; the card is written last.
    """
    if storage not in ("float32", "float16"):
        raise ValueError(f"storage must be 'float32' or 'float16'; found {storage!r}")
    out_dir = Path(out_dir)
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu").contiguous()
        if (storage == "float16" and tensor.is_floating_point()
                and tensor.numel() >= HALF_STORAGE_MIN_NUMEL):
            tensor = tensor.half()
        tensors[name] = tensor.clone()
    if split_sizes is None:
        split = cohort.split(split_seed)
        split_sizes = {k: len(getattr(split, k)) for k in ("train", "val", "test")}
    card = {
        "model_type": model.model_type,
        "config": config_to_dict(model.config),
        "extra_state": model.extra_state(),
        "versions": {"brainlab": brainlab.__version__, "torch": torch.__version__},
        "cohort": {
            "name": cohort.name,
            "fingerprint": cohort.fingerprint,
            "grid_shape": list(cohort.grid_shape) if cohort.grid_shape else None,
            "n_subjects": len(cohort),
            "split_seed": int(split_seed),
            "split_sizes": split_sizes,
        },
        "training": training,
        "metrics": metrics,
        "storage": storage,
        "n_parameters": int(model.n_parameters()),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    card = _json_ready(card)
    atomic_write(out_dir / WEIGHTS_NAME,
                  lambda temp: save_file(tensors, str(temp), metadata={"model_type": model.model_type}))
    atomic_write(out_dir / CARD_NAME,
                  lambda temp: temp.write_text(json.dumps(card, indent=2) + "\n"))
    return out_dir


def read_card(path) -> dict:
    """The model card of a checkpoint folder (or of its card / weights file)."""
    folder = _checkpoint_folder(path)
    card_path = folder / CARD_NAME
    if not card_path.exists():
        raise CheckpointMismatchError(
            f"no {CARD_NAME} in {folder}; expected a brainlab checkpoint folder")
    return json.loads(card_path.read_text())


def _checkpoint_folder(path) -> Path:
    path = Path(path).expanduser()
    return path.parent if path.is_file() else path


def load_checkpoint(path, expected_type: str | None = None, cohort=None, device="cpu"):
    """Load a checkpoint folder; returns ``(model in eval mode, card)``.

    Raises ``CheckpointMismatchError`` when the model type is not ``expected_type``,
    when stored tensors do not match the architecture the card describes, or when
    ``cohort`` has another grid shape (or other morphometry features). A fingerprint
    differing from ``cohort``'s only warns; ``card["cohort_match"]`` records it.
    """
    folder = _checkpoint_folder(path)
    card = read_card(folder)
    found_type = card.get("model_type")
    if expected_type is not None and found_type != expected_type:
        raise CheckpointMismatchError(
            f"checkpoint {folder} holds a {found_type!r} model; expected {expected_type!r}")
    if found_type not in MODEL_TYPES:
        raise CheckpointMismatchError(
            f"checkpoint {folder} holds a {found_type!r} model; expected one of "
            f"{sorted(MODEL_TYPES)}")
    spec = model_spec(found_type)
    cls = spec.model_class()
    config = config_from_dict(spec.config_class, card.get("config", {}))
    model = cls.from_extra_state(config, card.get("extra_state", {}))
    stored = load_file(str(folder / WEIGHTS_NAME))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise CheckpointMismatchError(
            f"checkpoint {folder} ({found_type}): tensor names differ from the architecture; "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, tensor in expected.items():
        if tuple(stored[name].shape) != tuple(tensor.shape):
            raise CheckpointMismatchError(
                f"checkpoint {folder} ({found_type}): tensor {name} has shape "
                f"{tuple(stored[name].shape)}; expected {tuple(tensor.shape)}")
        stored[name] = stored[name].to(tensor.dtype)
    model.load_state_dict(stored)
    if cohort is not None:
        check_cohort_compatible(card, cohort, where=str(folder))
        card["cohort_match"] = card.get("cohort", {}).get("fingerprint") == cohort.fingerprint
        if not card["cohort_match"]:
            warnings.warn(
                f"checkpoint {folder} was trained on cohort {card['cohort'].get('name')!r} "
                f"(fingerprint {card['cohort'].get('fingerprint')}); the current cohort "
                f"{cohort.name!r} has fingerprint {cohort.fingerprint}", stacklevel=2)
    model.to(device)
    model.eval()
    return model, card


def check_cohort_compatible(card: dict, cohort, where: str = "checkpoint") -> None:
    """Raise ``CheckpointMismatchError`` unless the checkpoint's inputs fit ``cohort``."""
    extra = card.get("extra_state", {})
    grid = extra.get("grid_shape")
    if grid is not None:
        if cohort.grid_shape is None:
            raise CheckpointMismatchError(
                f"{where}: the model expects images on a {tuple(grid)} grid; "
                f"cohort {cohort.name!r} has no images")
        if tuple(grid) != tuple(cohort.grid_shape):
            raise CheckpointMismatchError(
                f"{where}: the model expects grid {tuple(grid)}; "
                f"cohort {cohort.name!r} has grid {tuple(cohort.grid_shape)}")
    names = extra.get("feature_names")
    if names is not None:
        missing = [n for n in names if n not in cohort.table.columns]
        if missing:
            raise CheckpointMismatchError(
                f"{where}: the model expects {len(names)} morphometry features; cohort "
                f"{cohort.name!r} lacks {len(missing)} of them, e.g. {missing[:3]}")


# ---- listing and quality ------------------------------------------------------

def available(dirs=None) -> list[dict]:
    """Checkpoints under ``dirs`` (default: shipped ``checkpoints/`` and the user cache).

    Each entry: path, model_type, cohort name and fingerprint, metrics, quality
    (level) and quality_sentence. Unreadable cards are skipped.
    """
    from brainlab import paths

    if dirs is None:
        dirs = [paths.SHIPPED_CHECKPOINTS, paths.user_checkpoints()]
    entries = []
    for root in dirs:
        root = Path(root)
        if not root.exists():
            continue
        for card_path in sorted(root.rglob(CARD_NAME)):
            try:
                card = json.loads(card_path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if not (card_path.parent / WEIGHTS_NAME).exists():
                continue
            level, sentence = quality_verdict(card)
            entries.append({
                "path": str(card_path.parent),
                "model_type": card.get("model_type"),
                "cohort": card.get("cohort", {}).get("name"),
                "fingerprint": card.get("cohort", {}).get("fingerprint"),
                "metrics": card.get("metrics", {}),
                "quality": level,
                "quality_sentence": sentence,
                "shipped": Path(root).resolve() == Path(paths.SHIPPED_CHECKPOINTS).resolve(),
            })
    return entries


def quality_verdict(card: dict) -> tuple[str, str]:
    """('good'|'fair'|'poor', one sentence) from the card's held-out metrics.

    'poor' when the headline metric is not clearly better than one of its recorded
    baselines (``ModelSpec.baseline_rules``; the sentence names both numbers). Otherwise
    the targets decide: good = every target met; fair = every metric within its fair
    bound; poor otherwise (or when the metrics are missing). A card without baselines
    (trained before they existed) is judged on the targets and says "no baseline recorded".
    """
    model_type = card.get("model_type", "")
    metrics = card.get("metrics") or {}
    spec = MODEL_TYPES.get(model_type)
    targets = spec.targets_for(metrics) if spec is not None else ()
    if not targets:
        return "fair", f"no quality target defined for {model_type!r}."
    n = metrics.get("n")
    split = metrics.get("split", "held-out")
    where = f" ({split} split, n={n})" if n is not None else ""
    levels, parts = [], []
    for rule in targets:
        metric, target, direction, fair, label = (rule.metric, rule.target, rule.direction,
                                                  rule.fair, rule.label)
        value = metrics.get(metric)
        if value is None:
            return "poor", f"no {label} recorded in the card."
        met = value >= target if direction == "min" else value <= target
        near = value >= fair if direction == "min" else value <= fair
        levels.append("good" if met else "fair" if near else "poor")
        sign = "≥" if direction == "min" else "≤"
        verdict = "meets" if met else "misses"
        parts.append(f"{label} {value:.3g} {verdict} the target {sign}{target:g}")
    level = "poor" if "poor" in levels else "fair" if "fair" in levels else "good"
    rules = spec.baselines_for(metrics)
    recorded = [rule for rule in rules if _finite(metrics.get(rule.baseline))]
    failed = [rule for rule in recorded if not clearly_better(rule, metrics)]
    if failed:
        return "poor", "; ".join(_baseline_phrase(rule, metrics, False) for rule in failed) \
            + where + "."
    if recorded:
        beaten = "; ".join(_baseline_phrase(rule, metrics, True) for rule in recorded)
        return level, "; ".join(parts) + f"; {beaten}" + where + "."
    return level, "; ".join(parts) + where + "; no baseline recorded."


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def clearly_better(rule, metrics: dict) -> bool:
    """Whether ``metrics[rule.metric]`` beats ``metrics[rule.baseline]`` by the rule's margin
    (grown to the combined sd over seeds where ``rule.sd_keys`` name them)."""
    value, baseline = metrics.get(rule.metric), metrics.get(rule.baseline)
    if not (_finite(value) and _finite(baseline)):
        return False
    margin = rule.margin
    if rule.sd_keys is not None:
        sds = [metrics.get(key) for key in rule.sd_keys]
        if all(_finite(sd) for sd in sds):
            margin = max(margin, math.sqrt(sum(sd * sd for sd in sds)))
    if rule.direction == "higher":
        return value >= baseline + margin
    if rule.direction == "lower":
        return value <= baseline - margin
    return value <= baseline * (1.0 - margin)


def _baseline_phrase(rule, metrics: dict, better: bool) -> str:
    value, baseline = metrics[rule.metric], metrics[rule.baseline]
    name = rule.metric.replace("_", " ")
    if better:
        return f"{name} {value:.3g} beats {rule.label} ({baseline:.3g})"
    return f"{name} {value:.3g} is not clearly better than {rule.label} ({baseline:.3g})"


# How ``metrics_beside_baselines`` names the baselines in a card (key prefixes; the
# names themselves are documented in brainlab.analysis.evaluation).
BASELINE_LABELS = {
    "baseline_mean_brain": "mean brain", "baseline_pca": "PCA same code size",
    "baseline_majority": "majority class", "baseline_mean": "training mean",
    "baseline_icv_lr": "ICV-only LR", "baseline_all_features_lr": "all-features LR",
    "baseline_mri_ae": "MRI-AE itself", "gaussian": "Gaussian same decoder",
}


def metrics_beside_baselines(card: dict) -> str:
    """``"ssim 0.893 vs PCA same code size 0.935, mean brain 0.801"``: each headline metric
    of the card (its targets' and baseline rules' metrics) beside every recorded baseline
    of it; "" when the card records none."""
    metrics = card.get("metrics") or {}
    spec = MODEL_TYPES.get(card.get("model_type", ""))
    if spec is None:
        return ""
    headline = [rule.metric for rule in spec.baselines_for(metrics)]
    headline += [rule.metric for rule in spec.targets_for(metrics)]
    parts, seen, any_baseline = [], set(), False
    for metric in headline:
        if metric in seen or not _finite(metrics.get(metric)):
            continue
        seen.add(metric)
        base = metric.removeprefix("refined_").removeprefix("direct_")
        beside = []
        for prefix, label in BASELINE_LABELS.items():
            key = f"{prefix}_{base}"
            if _finite(metrics.get(key)):
                beside.append(f"{label} {_with_spread(metrics, key)}")
        if base == "balanced_accuracy" and _finite(metrics.get("majority_rate")):
            beside.append(f"majority rate {metrics['majority_rate']:.3g}")
        any_baseline = any_baseline or bool(beside)
        text = f"{metric.replace('_', ' ')} {_with_spread(metrics, metric)}"
        parts.append(text + (" vs " + ", ".join(beside) if beside else ""))
    return "; ".join(parts) if any_baseline else ""


def _with_spread(metrics: dict, key: str) -> str:
    """``"5.85 ± 0.63"`` (sd over seeds) or ``"0.876 [0.838, 0.914]"`` (CI) where recorded."""
    text = f"{metrics[key]:.3g}"
    if _finite(metrics.get(f"{key}_sd")) and key.endswith("frechet"):
        text += f" ± {metrics[f'{key}_sd']:.2g}"
    if _finite(metrics.get(f"{key}_low")) and _finite(metrics.get(f"{key}_high")):
        text += f" [{metrics[f'{key}_low']:.3g}, {metrics[f'{key}_high']:.3g}]"
    return text
