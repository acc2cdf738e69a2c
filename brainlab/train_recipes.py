"""Training recipes: how ``python -m brainlab train <type>`` builds and fits each model.

``train(model_type, cohort, options) -> Path`` (the checkpoint folder) runs the recipe
named in the type's ``brainlab.registry`` entry: ``recipe(cohort, options, spec)``;
``TRAINERS[type](cohort, options)`` is the same per type. ``options`` is a
``RecipeOptions``: ``out`` (this model's checkpoint folder), ``out_root`` (the folder
of ``train all``, where e.g. the GAN finds ``mri-ae/``), ``epochs``, ``minutes``, ``batch_size`` (the total over all torchrun processes), ``seed``, ``device``, ``workers``, ``resume`` and
``callbacks`` (event callbacks, e.g. the CLI's tqdm bar); None = the recipe's default.
A new model type needs only its registry entry (``train_default`` builds it from the
cohort and fits it with the entry's default TrainConfig, steps and evaluation).

Default budgets (``ModelSpec.default_train_config`` in the registry) on the default
``hcp-ya`` phantom (1113 subjects, 779 train). Time budgets (not epochs) bound each run; evaluation on the 167 test subjects comes on top.
``train all`` takes about 35 minutes on 2 CPU cores (fp32 + channels_last_3d; this
CPU kind has no fast BF16); the shipped models were trained as two parallel 1-thread
runs (mri-ae -> gan -> encoder, and sex-clf -> age-model -> morph-ae).

| model      | minutes | epochs cap | batch | why                                               |
|------------|---------|------------|-------|---------------------------------------------------|
| mri-ae     | 12      | 60         | 4     | the slowest model (0.25-0.5 s per training sample   |
|            |         |            |       | on 1 thread); starts from PCA (held-out SSIM 0.95  |
|            |         |            |       | at step 0), lr 3e-4 refines it                     |
| gan        | 2       | 40         | 64    | seconds to minutes on the frozen AE's codes        |
| encoder    | 3       | 20         | 8     | a small MLP on the frozen GAN's codes              |
| morph-ae   | 1       | 300        | 64    | an MLP on ~50 features: converges in seconds       |
| sex-clf    | 6       | 30         | 16    | ~70 ms per training sample: ~5 epochs in 6 min     |
| age-model  | 6       | 30         | 16    | same backbone as the sex classifier                |
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

from brainlab.checkpoints import load_checkpoint, read_card
from brainlab.config import GanConfig, TrainConfig
from brainlab.errors import BrainlabInputError
from brainlab.registry import MODEL_TYPES, model_spec
from brainlab.training import build_model, distributed, fit, seed_everything
from brainlab.training.loop import TRAIN_STATE_NAME


@dataclass
class RecipeOptions:
    """What the CLI passes to a trainer; None fields fall back to the recipe's defaults."""

    out: Path
    out_root: Path | None = None
    epochs: int | None = None
    minutes: float | None = None
    batch_size: int | None = None
    seed: int | None = None
    device: str = "cpu"
    threads: int | None = None
    storage: str | None = None
    workers: int | None = None
    resume: bool = False
    callbacks: list = field(default_factory=list)


def train_config_for(model_type: str, options: RecipeOptions,
                     default: TrainConfig | None = None) -> TrainConfig:
    """The recipe's default TrainConfig with the options the user set on top."""
    config = default or model_spec(model_type).default_train_config
    overrides = {name: getattr(options, name)
                 for name in ("epochs", "minutes", "batch_size", "seed")
                 if getattr(options, name) is not None}
    if options.epochs is not None and options.minutes is None:
        overrides["minutes"] = None  # an explicit epoch count is not cut short by the default budget
    if options.threads is not None:
        overrides["num_threads"] = options.threads
    if options.storage is not None:
        overrides["storage"] = options.storage
    if options.workers is not None:
        overrides["loader_workers"] = options.workers
    return replace(config, device=options.device, **overrides)


def _resume_folder(options: RecipeOptions) -> Path | None:
    """``options.out`` when ``options.resume`` (it must hold an earlier run), else None."""
    if not options.resume:
        return None
    out = Path(options.out)
    if not (out / TRAIN_STATE_NAME).exists():
        raise BrainlabInputError(
            f"--resume: no earlier run in {out} (expected {TRAIN_STATE_NAME} there)")
    return out


def train_model(model_type: str, cohort, options: RecipeOptions, model_config=None,
                default: TrainConfig | None = None) -> Path:
    """Build ``model_type`` for ``cohort`` and fit it into ``options.out``; return the folder."""
    config = train_config_for(model_type, options, default)
    seed_everything(config.seed)  # initial weights are reproducible too
    model = build_model(model_type, cohort, model_config)
    return _fit_built(model, cohort, cohort.split(config.split_seed), options, config)


def train_default(cohort, options: RecipeOptions, spec) -> Path:
    """The default recipe: a fresh model of ``spec``'s type, its default TrainConfig."""
    return train_model(spec.model_type, cohort, options)


# ---- GAN, seed DCGAN and latent encoder (they build on each other's checkpoints) ----

def _out_suffix(options: RecipeOptions) -> str:
    """'-lifespan' for ``--out checkpoints/gan-lifespan``: the dependency is then looked up
    as ``mri-ae-lifespan`` beside it (one suffix names a per-cohort family)."""
    name = Path(options.out).name
    for model_type in sorted(MODEL_TYPES, key=len, reverse=True):
        if name.startswith(model_type + "-"):
            return name[len(model_type):]
    return ""


def _dependency(model_type: str, cohort, options: RecipeOptions):
    """The trained ``model_type`` this recipe builds on: ``<out_root>/<type>`` (or next to
    ``out``); trained there with its default recipe when missing or made for another grid."""
    root = Path(options.out_root) if options.out_root else Path(options.out).parent
    if root.resolve() == Path(options.out).resolve():  # `train gan --out DIR`: look beside DIR
        root = root.parent
    folder = root / (model_type + _out_suffix(options))
    usable = False
    if (folder / "model_card.json").exists():
        card = read_card(folder)
        usable = card.get("cohort", {}).get("fingerprint") == cohort.fingerprint
    if not usable:
        if distributed.is_main_process():
            print(f"note: no {model_type} checkpoint for cohort {cohort.name!r} in {folder}; "
                  f"training one first")
        train(model_type, cohort, replace(options, out=folder, out_root=root, resume=False))
    model, _ = load_checkpoint(folder, expected_type=model_type, cohort=cohort,
                               device=options.device)
    return model


# The recipe's GAN rates: on lifespan codes (same AE, 1.5 min, 5 seeds) Adam at 1e-3 /
# EMA 0.995 drifted to normalised Fréchet 3.73 ± 0.21 vs the conditional Gaussian's 3.13;
# 2e-4 / EMA 0.999 stayed level with it (3.16 ± 0.20) with the same judge figures.
RECIPE_GAN_CONFIG = GanConfig(lr_generator=2e-4, lr_discriminator=2e-4, ema_decay=0.999)


def train_gan(cohort, options: RecipeOptions, spec) -> Path:
    """brainlab's GAN: a code-space GAN on the frozen decoder of the cohort's MRI autoencoder,
    conditioned on sex and age (years or bins, as the cohort has them)."""
    from brainlab.training.gan_steps import condition_config_for

    (autoencoder_type,) = spec.depends_on
    autoencoder = _dependency(autoencoder_type, cohort, options)
    gan = spec.model_class().from_autoencoder(autoencoder,
                                              condition_config_for(cohort, RECIPE_GAN_CONFIG))
    config = train_config_for(spec.model_type, options)
    out = _fit_built(gan, cohort, cohort.split(config.split_seed), options, config)
    if distributed.is_main_process():  # under torchrun rank 0 alone writes the card
        judge_into_card(out, options.out_root, cohort)
    distributed.barrier()
    return out


def _portable_path(path) -> str | None:
    from brainlab.paths import REPO_ROOT

    if path is None:
        return None
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(REPO_ROOT))
    except ValueError:
        return resolved.name


def judge_into_card(folder, root=None, cohort=None) -> dict:
    """Add the judges' figures (P(male) of M/F-conditioned samples, r of requested vs
    predicted age) to a conditional GAN's card and return them; judges are the sex-clf and
    age-model checkpoints in ``root`` (default: beside ``folder``), shipped or cached, on
    the same grid, trained on the GAN's cohort first (none found: noted in the card)."""
    import json
    import warnings

    from brainlab import paths
    from brainlab.analysis.conditional_generation import (find_judges, judge_conditioning,
                                                          judge_real_subjects, load_judges,
                                                          require_conditional)
    from brainlab.atomic import atomic_write
    from brainlab.checkpoints import CARD_NAME

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gan, card = load_checkpoint(folder, expected_type="gan")
    if not gan.conditional:
        return {}
    require_conditional(gan)
    root = Path(root) if root else Path(folder).parent
    if root.resolve() == Path(folder).resolve():  # `train gan --out DIR`: judges beside DIR
        root = root.parent
    dirs = [root, paths.SHIPPED_CHECKPOINTS, paths.user_checkpoints()]
    found = find_judges(gan.grid_shape, card.get("cohort", {}).get("name"),
                        dirs=[d for d in dict.fromkeys(dirs) if d.exists()])
    # The card names its judges portably (a repo-relative path, or the folder's name),
    # never a machine's absolute path.
    metrics = {"judge_paths": {role: _portable_path(path) for role, path in found.items()}}
    if any(found.values()):
        judges = load_judges(found)
        metrics.update(judge_conditioning(gan, judges))
        if cohort is not None and cohort.fingerprint == card["cohort"].get("fingerprint"):
            test = cohort.split(int(card["cohort"].get("split_seed", 0))).test
            metrics.update(judge_real_subjects(cohort, test, judges,
                                               gan.condition_spec.age_encoding))
    else:
        metrics["judge_note"] = "no sex-clf / age-model checkpoint for this grid: not judged"
    card["metrics"].update(metrics)
    atomic_write(Path(folder) / CARD_NAME,
                 lambda temp: temp.write_text(json.dumps(card, indent=2, default=str) + "\n"))
    return metrics


def train_encoder(cohort, options: RecipeOptions, spec) -> Path:
    """brainlab's latent encoder for the cohort's GAN (trained first when missing)."""
    (gan_type,) = spec.depends_on
    gan = _dependency(gan_type, cohort, options)
    encoder = spec.model_class().from_gan(gan)
    config = train_config_for(spec.model_type, options)
    return _fit_built(encoder, cohort, cohort.split(config.split_seed), options, config)


def _fit_built(model, cohort, split, options: RecipeOptions, config: TrainConfig) -> Path:
    """Fit a built model with its registry entry's steps and evaluation; return the folder."""
    spec = model_spec(model.model_type)
    out = Path(options.out)
    fit(model, cohort, split, config, callbacks=options.callbacks,
        resume_from=_resume_folder(options), out_dir=out,
        steps=spec.steps_class()(model, config), scorer=spec.evaluation())
    return out


def train(model_type: str, cohort, options: RecipeOptions) -> Path:
    """Train ``model_type`` with its registered recipe; return the checkpoint folder."""
    spec = model_spec(model_type)
    return spec.trainer()(cohort, options, spec)


# ``TRAINERS[type](cohort, options)``: every registered type's recipe.
TRAINERS: dict[str, Callable] = {t: partial(train, t) for t in MODEL_TYPES}
