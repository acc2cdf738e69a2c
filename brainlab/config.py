"""Frozen configuration dataclasses, stored verbatim in caches and model cards.

Each field carries one comment saying what it means and, where useful, why this
default. Sections: phantom cohort, models, training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields  # noqa: F401  (re-exported helpers)
from typing import ClassVar


def config_to_dict(config) -> dict:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return asdict(config)


def config_from_dict(cls, values: dict):
    """Rebuild ``cls`` from a dict, ignoring unknown keys and restoring tuples.

    A non-empty stored dict that lacks a field listed in ``cls.LEGACY_DEFAULTS`` predates
    that field: it gets the legacy value (the behaviour before the field existed), not
    today's default, so old model cards rebuild the model they were trained as.
    """
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key in known:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    if values:
        for key, value in getattr(cls, "LEGACY_DEFAULTS", {}).items():
            kwargs.setdefault(key, value)
    return cls(**kwargs)


# ---- phantom cohort -------------------------------------------------------


@dataclass(frozen=True)
class PhantomConfig:
    name: str = "hcp-ya"               # preset name; becomes Cohort.name
    n_subjects: int = 1113             # used when no per-bin counts are given
    grid_shape: tuple[int, int, int] = (58, 70, 58)  # voxels; the HCP tensor grid (≈3.14 mm)
    age_bin_edges: tuple[float, ...] = (22.0, 26.0, 31.0, 36.0, 38.0)  # bin i holds ages [e_i, e_i+1)
    age_bin_labels: tuple[str, ...] = ("22-25", "26-30", "31-35", "36+")  # one per bin
    female_counts: tuple[int, ...] = (84, 265, 248, 9)   # exact F per age bin (HCP-YA); () = balanced
    male_counts: tuple[int, ...] = (147, 221, 135, 4)    # exact M per age bin (HCP-YA); () = balanced
    seed: int = 0                      # one seed drives every draw; same config -> same cohort
    ageing: float = 1.0                # multiplies every age effect (1 = literature rates)
    elastic_mm: float = 2.0            # sd of the random smooth shape field, mm
    snr_range: tuple[float, float] = (20.0, 40.0)  # WM signal / noise sd, drawn per subject
    bias_range: tuple[float, float] = (0.10, 0.30)  # peak |bias field| (fraction), drawn per subject
    storage: str = "uint16"            # on-disk dtype of the raw images (uint16 or float16)


# ---- models ---------------------------------------------------------------


@dataclass(frozen=True)
class MriAutoencoderConfig:
    latent_dim: int = 128          # bottleneck size; the seed used 1000, 128 measured best per CPU-minute
    linear_dim: int = 96           # leading code entries that are PCA coefficients (the rest: conv encoder)
    residual_scale: float = 0.1    # scales the conv decoder's output, so Adam's first steps stay small
                                   # (1.0 was no clearer better at 40 steps: SSIM 0.898 vs 0.896, one seed)
    base_channels: int = 16        # width at half resolution (after the stem); doubles per level
    max_channels: int = 40         # channel cap so deep levels stay cheap on CPU; 40 (not 128) keeps the
                                   # float16 checkpoint <= 14 MB beside the masked PCA basis (13.7 MB, hcp-ya)
    levels: int = 4                # halvings (stem + down blocks); the grid is padded to a multiple of 2**levels
    ssim_weight: float = 0.2       # weight of a (1 - local-SSIM) term added to the reconstruction loss; 0.2 gave
                                   # higher held-out SSIM than MSE alone at equal CPU time
    weight_decay: float = 0.0      # AdamW weight decay
    default_lr: float = 3e-4       # learning rate when the training config leaves it unset
    guided_decoder: bool = True    # the conv decoder also sees the PCA reconstruction (it sharpens it
                                   # instead of redrawing it from the code); False = the v1 decoder
    reconstruction: str = "l1"     # 'l1' (sharper edges) or 'mse' for the voxel term
    background_weight: float = 0.1  # loss weight of voxels outside the mean-brain mask (78% of the box)
    texture_weight: float = 0.3    # weight of the multi-scale band / local-energy texture loss; 0 = off.
                                   # At 80 steps: 0.3 -> SSIM 0.903, 0 -> 0.902, 1.0 trades SSIM for sharpness
    adversarial_weight: float = 0.1  # patch-discriminator factor on top of the adaptive weight; 0 = off.
                                   # 0.5 from step 20 cost 0.004 SSIM for +0.02 high-frequency energy ratio (80 steps)
    disc_start: int = 200          # optimiser steps of reconstruction-only warm-up before the discriminator
    disc_channels: int = 16        # width of the patch discriminator's first layer
    disc_lr: float = 2e-4          # Adam learning rate of the discriminator (betas 0.5, 0.9)
    pca_resolution: str = "masked-full"  # PCA half: 'masked-full' (full resolution over the voxels of the
                                   # mean-brain mask; held-out in-brain SSIM 0.949) or 'half'
                                   # (2x block averages upsampled, the v1/v2 PCA: 0.902)
    # Cards written before a field existed lack it: they rebuild (and resume) as the model they were.
    LEGACY_DEFAULTS: ClassVar[dict] = {
        "guided_decoder": False, "reconstruction": "mse", "background_weight": 1.0,
        "texture_weight": 0.0, "adversarial_weight": 0.0, "pca_resolution": "half"}


@dataclass(frozen=True)
class MorphometryAutoencoderConfig:
    latent_dim: int = 80                  # bottleneck; the seed used 80, capped at the feature count
    hidden: tuple[int, ...] = (256, 128)  # widths of the encoder's hidden layers (decoder mirrors)
    dropout: float = 0.0                  # dropout after each hidden layer
    weight_decay: float = 1e-5            # AdamW weight decay
    default_lr: float = 1e-3              # learning rate when the training config leaves it unset


@dataclass(frozen=True)
class ClassifierConfig:
    base_channels: int = 8      # width of the first conv block; doubles per level
    max_channels: int = 64      # channel cap
    levels: int = 4             # stride-2 downsamplings before global average pooling
    dropout: float = 0.2        # dropout before the linear head
    noise_sd: float = 0.0       # Gaussian noise added to training images (the seed's augmentation)
    weight_decay: float = 1e-4  # AdamW weight decay
    default_lr: float = 1e-3    # learning rate when the training config leaves it unset


@dataclass(frozen=True)
class BrainAgeConfig:
    base_channels: int = 8      # width of the first conv block; doubles per level
    max_channels: int = 64      # channel cap
    levels: int = 4             # stride-2 downsamplings before global average pooling
    dropout: float = 0.2        # dropout before the linear head
    noise_sd: float = 0.0       # Gaussian noise added to training images (the seed's augmentation)
    target: str = "auto"        # 'years' (regression), 'bin' (age-bin classes) or 'auto': years if ages exist
    weight_decay: float = 1e-4  # AdamW weight decay
    default_lr: float = 1e-3    # learning rate when the training config leaves it unset


@dataclass(frozen=True)
class GanConfig:
    latent_dim: int = 100            # size of z ~ N(0, I); the seed study used 100
    code_dim: int = 0                # autoencoder code size G writes; set from the autoencoder
    hidden_dim: int = 256            # width of the generator and discriminator MLPs (a quarter of 512's cost)
    generator_layers: int = 3        # linear layers of the generator's residual MLP
    discriminator_layers: int = 3    # linear layers of the code discriminator
    loss: str = "nonsaturating"      # 'nonsaturating' (logistic) or 'hinge'
    r1_gamma: float = 1.0            # R1 gradient penalty on real codes (stabilises D)
    spectral_norm: bool = True       # spectral normalisation in every discriminator layer
    ema_decay: float = 0.995         # EMA of generator weights; the EMA generator generates
    lr_generator: float = 1e-3       # Adam rate of G; 2e-4 had not learnt a skewed toy code in 600 steps, 1e-3 did in 400
    lr_discriminator: float = 1e-3   # Adam learning rate of D
    betas: tuple[float, float] = (0.5, 0.99)  # Adam betas for both
    code_batch: int = 256            # codes per adversarial step (codes are cheap)
    steps_per_batch: int = 8         # adversarial steps per image batch of the fit loop
    autoencoder_config: dict = field(default_factory=dict)  # the frozen AE's config, to rebuild it
    # Conditioning (the recipe sets it from the cohort; the defaults are the unconditional
    # GAN that pre-conditional cards and the live GAN use).
    sexes: tuple[str, ...] = ()      # sexes G is conditioned on, e.g. ('F', 'M'); () = not on sex
    age_encoding: str = "none"       # 'years' (lifespan: scaled age and its square), 'bins' (hcp-ya: one-hot), 'none'
    age_range: tuple[float, float] = (0.0, 0.0)  # years 'years' accepts (the training ages' range)
    age_bin_labels: tuple[str, ...] = ()  # bin names 'bins' accepts, in the cohort's order


@dataclass(frozen=True)
class SeedGanConfig:
    latent_dim: int = 100                              # z ~ U(0, 1)^100 as in the seed
    generator_widths: tuple[int, ...] = (256, 128, 64, 32)      # seed G channels after the projection
    discriminator_widths: tuple[int, ...] = (32, 64, 128, 256)  # seed D channels
    image_size: int = 64             # cubic side the seed trained at
    pad_size: int = 70               # volumes are zero-padded to this cube (or the largest side) first
    lr: float = 5e-5                 # Adam learning rate of both nets (seed)
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas (seed)
    d_accuracy_threshold: float = 0.8  # D step skipped while its batch accuracy is above this


@dataclass(frozen=True)
class EncoderConfig:
    latent_dim: int = 100            # size of the GAN latent it inverts to
    hidden_dim: int = 512            # width of the code -> z MLP
    layers: int = 3                  # linear layers of the code -> z MLP
    pair_batch: int = 256            # generated (z, G(z)) code pairs per step (cheap)
    image_pair_batch: int = 2        # generated pairs per step decoded to images and re-encoded
    pair_weight: float = 1.0         # weight of the latent MSE on generated pairs
    image_weight: float = 1.0        # weight of the image MSE of G(E(x)) vs x on real images
    prior_weight: float = 1e-3       # weight of mean z^2 on real images in training (keeps z where G was trained)
    refine_steps: int = 30           # default latent-optimisation steps in invert()
    refine_lr: float = 0.05          # Adam learning rate on z during refinement
    default_lr: float = 1e-3         # learning rate when the training config leaves it unset
    gan_config: dict = field(default_factory=dict)  # the frozen GAN's config, to rebuild it


# ---- training -------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10                  # passes over the training split (the time budget may stop earlier)
    minutes: float | None = None      # wall-clock budget; None = no limit
    batch_size: int = 8               # subjects per optimiser step (in total over torchrun processes)
    lr: float | None = None           # learning rate; None = the model config's default_lr
    seed: int = 0                     # seeds torch, numpy and the batch order
    split_seed: int = 0               # seed of the cohort's train/val/test split
    device: str = "cpu"               # 'cpu' or 'cuda'
    eval_every: int = 1               # validate every N epochs (the last epoch always validates)
    log_every: int = 10               # emit a 'step' event every N optimiser steps
    max_eval_subjects: int | None = 64  # validation subset per epoch; the final test uses all
    num_threads: int | None = None    # torch threads; None = the CPU count
    bf16: str = "auto"                # 'auto' (when the CPU/GPU supports it), 'on' or 'off'
    channels_last: bool = True        # channels_last_3d memory format for conv models (faster on CPU)
    storage: str = "float32"          # checkpoint weights: 'float32', or 'float16' (half the size; shipped models)
    loader_workers: int = 0           # DataLoader processes reading the next batches from disk; 0 = read in the loop
