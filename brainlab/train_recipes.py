"""Training recipes: how ``python -m brainlab train <type>`` builds and fits each model.

``TRAINERS`` maps a model type to ``trainer(cohort, options) -> Path`` (the checkpoint
folder). ``options`` is a ``RecipeOptions``: ``out`` (this model's checkpoint folder),
``out_root`` (the folder of ``train all``, where e.g. the GAN finds ``mri-ae/``),
``epochs``, ``minutes``, ``batch_size``, ``seed``, ``device``, ``resume`` and
``callbacks`` (event callbacks, e.g. the CLI's tqdm bar); None = the recipe's default.
A new model type registers itself with one line in ``TRAINERS`` (and, to join
``train all``, one entry in ``ALL_ORDER``).

Default budgets on the default ``hcp-ya`` phantom (1113 subjects, 779 train), chosen so
that ``train all`` fits in about 25 minutes on 2 CPU cores (fp32 + channels_last_3d):

| model      | minutes | epochs cap | batch | why                                               |
|------------|---------|------------|-------|---------------------------------------------------|
| mri-ae     | 9       | 40         | 8     | the slowest model (~0.3-0.5 s per training sample); |
|            |         |            |       | quality keeps improving with time, 9 min is what   |
|            |         |            |       | the budget allows                                  |
| gan        | (GAN recipe)                  | seconds to minutes on the frozen AE's codes        |
| encoder    | (encoder recipe)              |                                                    |
| morph-ae   | 1       | 300        | 64    | an MLP on ~100 features: converges in seconds      |
| sex-clf    | 4       | 30         | 16    | sex differences are large in the phantom           |
| age-model  | 4       | 30         | 16    | same backbone as the sex classifier                |
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from brainlab.config import TrainConfig
from brainlab.errors import BrainlabInputError


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
    resume: bool = False
    callbacks: list = field(default_factory=list)


# Default TrainConfig per model type (see the table in the module docstring).
DEFAULT_TRAIN_CONFIGS: dict[str, TrainConfig] = {
    "mri-ae": TrainConfig(epochs=40, minutes=9.0, batch_size=8, log_every=5),
    "morph-ae": TrainConfig(epochs=300, minutes=1.0, batch_size=64, log_every=20,
                            max_eval_subjects=None),
    "sex-clf": TrainConfig(epochs=30, minutes=4.0, batch_size=16, log_every=5),
    "age-model": TrainConfig(epochs=30, minutes=4.0, batch_size=16, log_every=5),
}


def train_config_for(model_type: str, options: RecipeOptions,
                     default: TrainConfig | None = None) -> TrainConfig:
    """The recipe's default TrainConfig with the options the user set on top."""
    config = default or DEFAULT_TRAIN_CONFIGS.get(model_type, TrainConfig())
    overrides = {name: getattr(options, name)
                 for name in ("epochs", "minutes", "batch_size", "seed")
                 if getattr(options, name) is not None}
    if options.epochs is not None and options.minutes is None:
        overrides["minutes"] = None  # an explicit epoch count is not cut short by the default budget
    return replace(config, device=options.device, **overrides)


def train_model(model_type: str, cohort, options: RecipeOptions, model_config=None,
                default: TrainConfig | None = None) -> Path:
    """Build ``model_type`` for ``cohort`` and fit it into ``options.out``; return the folder."""
    from brainlab.models import model_class
    from brainlab.training import TRAIN_STATE_NAME, fit

    model = model_class(model_type).from_cohort(cohort, model_config)
    config = train_config_for(model_type, options, default)
    out = Path(options.out)
    resume_from = None
    if options.resume:
        if not (out / TRAIN_STATE_NAME).exists():
            raise BrainlabInputError(
                f"--resume: no earlier run in {out} (expected {TRAIN_STATE_NAME} there)")
        resume_from = out
    fit(model, cohort, cohort.split(config.split_seed), config, callbacks=options.callbacks,
        resume_from=resume_from, out_dir=out)
    return out


def _trainer(model_type: str) -> Callable:
    def trainer(cohort, options: RecipeOptions) -> Path:
        return train_model(model_type, cohort, options)

    trainer.__doc__ = f"Train a {model_type} with the default recipe."
    return trainer


TRAINERS: dict[str, Callable] = {
    "mri-ae": _trainer("mri-ae"),
    "morph-ae": _trainer("morph-ae"),
    "sex-clf": _trainer("sex-clf"),
    "age-model": _trainer("age-model"),
}

# Dependency order of ``train all`` (the GAN needs the MRI autoencoder, the encoder the GAN).
ALL_ORDER = ("mri-ae", "gan", "encoder", "morph-ae", "sex-clf", "age-model")
# Types that need images (skipped by ``train all`` on a table-only cohort).
TABLE_ONLY_TYPES = ("morph-ae",)
