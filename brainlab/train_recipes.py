"""Training recipes: how ``python -m brainlab train <type>`` builds and fits each model.

``TRAINERS`` maps a model type to ``trainer(cohort, options) -> Path`` (the checkpoint
folder). ``options`` is a ``RecipeOptions``: ``out`` (this model's checkpoint folder),
``out_root`` (the folder of ``train all``, where e.g. the GAN finds ``mri-ae/``),
``epochs``, ``minutes``, ``batch_size``, ``seed``, ``device``, ``resume`` and
``callbacks`` (event callbacks, e.g. the CLI's tqdm bar); None = the recipe's default.
A new model type registers itself with one line in ``TRAINERS`` (and, to join
``train all``, one entry in ``ALL_ORDER``).

Default budgets on the default ``hcp-ya`` phantom (1113 subjects, 779 train). Time
budgets (not epochs) bound each run; evaluation on the 167 test subjects comes on top.
``train all`` takes about 35 minutes on 2 CPU cores (fp32 + channels_last_3d; this
CPU kind has no fast BF16); the shipped models were trained as two parallel 1-thread
runs (mri-ae -> gan -> encoder, and sex-clf -> age-model -> morph-ae).

| model      | minutes | epochs cap | batch | why                                               |
|------------|---------|------------|-------|---------------------------------------------------|
| mri-ae     | 12      | 60         | 4     | the slowest model (0.25-0.5 s per training sample   |
|            |         |            |       | on 1 thread); starts from PCA (held-out SSIM 0.95  |
|            |         |            |       | at step 0), lr 3e-4 refines it                     |
| gan        | 2       | (GAN recipe) | 64  | seconds to minutes on the frozen AE's codes        |
| encoder    | 3       | (encoder recipe) | 8 |                                                    |
| morph-ae   | 1       | 300        | 64    | an MLP on ~50 features: converges in seconds       |
| sex-clf    | 6       | 30         | 16    | ~70 ms per training sample: ~5 epochs in 6 min     |
| age-model  | 6       | 30         | 16    | same backbone as the sex classifier                |
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
    threads: int | None = None
    storage: str | None = None
    resume: bool = False
    callbacks: list = field(default_factory=list)


# Default TrainConfig per model type (see the table in the module docstring).
DEFAULT_TRAIN_CONFIGS: dict[str, TrainConfig] = {
    # Batch 4 at lr 3e-3 reached held-out SSIM 0.71 in 5 loaded-CPU minutes where batch 8
    # at lr 1e-3 reached 0.49 (same phantom, same wall time): more steps win early on.
    "mri-ae": TrainConfig(epochs=60, minutes=12.0, batch_size=4, lr=3e-4, log_every=10),
    "morph-ae": TrainConfig(epochs=300, minutes=1.0, batch_size=64, log_every=20,
                            max_eval_subjects=None),
    "sex-clf": TrainConfig(epochs=30, minutes=6.0, batch_size=16, log_every=5),
    "age-model": TrainConfig(epochs=30, minutes=6.0, batch_size=16, log_every=5),
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
    if options.threads is not None:
        overrides["num_threads"] = options.threads
    if options.storage is not None:
        overrides["storage"] = options.storage
    return replace(config, device=options.device, **overrides)


def _resume_folder(options: RecipeOptions) -> Path | None:
    """``options.out`` when ``options.resume`` (it must hold an earlier run), else None."""
    from brainlab.training import TRAIN_STATE_NAME

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
    from brainlab.models import model_class
    from brainlab.training import fit, seed_everything

    config = train_config_for(model_type, options, default)
    seed_everything(config.seed)  # initial weights are reproducible too
    model = model_class(model_type).from_cohort(cohort, model_config)
    out = Path(options.out)
    resume_from = _resume_folder(options)
    fit(model, cohort, cohort.split(config.split_seed), config, callbacks=options.callbacks,
        resume_from=resume_from, out_dir=out)
    return out


def _trainer(model_type: str) -> Callable:
    def trainer(cohort, options: RecipeOptions) -> Path:
        return train_model(model_type, cohort, options)

    trainer.__doc__ = f"Train a {model_type} with the default recipe."
    return trainer


# ---- GAN, seed DCGAN and latent encoder (they build on each other's checkpoints) ----

GAN_TRAIN_CONFIG = TrainConfig(epochs=40, minutes=2.0, batch_size=64, log_every=5, eval_every=10)
ENCODER_TRAIN_CONFIG = TrainConfig(epochs=20, minutes=3.0, batch_size=8, log_every=10,
                                   eval_every=5, max_eval_subjects=16)
SEED_GAN_TRAIN_CONFIG = TrainConfig(epochs=40, minutes=10.0, batch_size=10, log_every=5,
                                    eval_every=5, bf16="off")


def _dependency(model_type: str, cohort, options: RecipeOptions):
    """The trained ``model_type`` this recipe builds on: ``<out_root>/<type>`` (or next to
    ``out``); trained there with its default recipe when missing or made for another grid."""
    from brainlab.checkpoints import load_checkpoint, read_card

    root = Path(options.out_root) if options.out_root else Path(options.out).parent
    if root.resolve() == Path(options.out).resolve():  # `train gan --out DIR`: look beside DIR
        root = root.parent
    folder = root / model_type
    usable = False
    if (folder / "model_card.json").exists():
        card = read_card(folder)
        usable = card.get("cohort", {}).get("fingerprint") == cohort.fingerprint
    if not usable:
        print(f"note: no {model_type} checkpoint for cohort {cohort.name!r} in {folder}; "
              f"training one first")
        TRAINERS[model_type](cohort, replace(options, out=folder, out_root=root, resume=False))
    model, _ = load_checkpoint(folder, expected_type=model_type, cohort=cohort,
                               device=options.device)
    return model


def train_gan(cohort, options: RecipeOptions) -> Path:
    """brainlab's GAN: a code-space GAN on the frozen decoder of the cohort's MRI autoencoder."""
    from brainlab.models.gan import LatentGan

    autoencoder = _dependency("mri-ae", cohort, options)
    split = cohort.split(GAN_TRAIN_CONFIG.split_seed)
    gan = LatentGan.from_autoencoder(autoencoder)
    return _fit_built(gan, cohort, split, options, GAN_TRAIN_CONFIG)


def train_encoder(cohort, options: RecipeOptions) -> Path:
    """brainlab's latent encoder for the cohort's GAN (trained first when missing)."""
    from brainlab.models.encoder import LatentEncoder

    gan = _dependency("gan", cohort, options)
    split = cohort.split(ENCODER_TRAIN_CONFIG.split_seed)
    return _fit_built(LatentEncoder.from_gan(gan), cohort, split, options, ENCODER_TRAIN_CONFIG)


def _fit_built(model, cohort, split, options: RecipeOptions, default: TrainConfig) -> Path:
    from brainlab.training import fit

    config = train_config_for(model.model_type, options, default)
    out = Path(options.out)
    resume_from = _resume_folder(options)
    if resume_from is not None:
        model.fit_statistics(cohort, split.train)  # a resumed GAN re-banks its real codes
    fit(model, cohort, split, config, callbacks=options.callbacks, resume_from=resume_from,
        out_dir=out)
    return out


def train_seed_gan(cohort, options: RecipeOptions) -> Path:
    """The seed study's DCGAN, as the baseline (fp32, 64³, z ~ U(0, 1))."""
    return train_model("dcgan-seed", cohort, options, default=SEED_GAN_TRAIN_CONFIG)


TRAINERS: dict[str, Callable] = {
    "mri-ae": _trainer("mri-ae"),
    "morph-ae": _trainer("morph-ae"),
    "sex-clf": _trainer("sex-clf"),
    "age-model": _trainer("age-model"),
    "gan": train_gan,
    "encoder": train_encoder,
    "dcgan-seed": train_seed_gan,
}

# Dependency order of ``train all`` (the GAN needs the MRI autoencoder, the encoder the GAN).
ALL_ORDER = ("mri-ae", "gan", "encoder", "morph-ae", "sex-clf", "age-model")
# Types that need images (skipped by ``train all`` on a table-only cohort).
TABLE_ONLY_TYPES = ("morph-ae",)
