"""Training steps: the optimisers, data statistics and one step per batch of each model.

Models (``brainlab.models``) are forward-only; this is where a model meets its data
and its optimisers. The fit loop (``brainlab.training.loop.fit``) drives a
``TrainingSteps`` object taken from the registry (``ModelSpec.steps_class``):

- ``fit_statistics(cohort, train_indices)``: standardisation buffers, PCA bases or the
  GAN's bank of real codes, from the training subjects, before the first step;
- ``configure_optimizers()``: creates ``optimizers`` (name -> optimiser);
- ``step(batch) -> dict`` of float losses: forward, backward and optimiser step(s);
- ``preview(folder, step)``: an optional sample image per epoch (the GANs);
- ``optimizer_state()`` / ``load_optimizer_state(state)`` for resuming.

Single-optimiser models return a loss dict from ``model.training_losses(batch)`` and
share ``SingleOptimiserSteps``; the two GANs' two-optimiser steps are the named
exceptions and live here too (nanoGPT style: backward, clip, step and zero_grad in one
visible place).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from brainlab.atomic import atomic_write
from brainlab.config import TrainConfig
from brainlab.data.batches import CohortBatches, numeric_feature_columns
from brainlab.errors import BrainlabInputError
from brainlab.models.autoencoder import pca_mask
from brainlab.models.seed_reference import seed_discriminator_accuracy, to_seed_cube
from brainlab.training import distributed


def build_model(model_type: str, cohort, config=None):
    """A fresh ``model_type`` sized for ``cohort`` (default config when None)."""
    from brainlab.registry import model_spec

    cls = model_spec(model_type).model_class()
    if "features" in cls.batch_fields:  # table models are sized by the cohort's feature columns
        return cls.from_cohort(cohort, config, feature_names=numeric_feature_columns(cohort))
    return cls.from_cohort(cohort, config)


def backward_and_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                      max_grad_norm: float | None = None) -> None:
    """zero_grad, backward, optional gradient clipping, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        distributed.average_gradients_now(optimizer)  # clip the whole batch's gradient
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()


def _floats(losses: dict) -> dict[str, float]:
    return {name: float(value.detach()) if torch.is_tensor(value) else float(value)
            for name, value in losses.items()}


class TrainingSteps:
    """Base: no statistics, AdamW over all parameters, ``model.training_losses`` per step."""

    def __init__(self, model, train_config: TrainConfig | None = None):
        self.model = model
        self.train_config = train_config or TrainConfig()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    def batches(self, cohort, indices, batch_size: int, shuffle: bool = False,
                seed: int = 0) -> CohortBatches:
        """The cohort rows ``indices`` as batches of the fields the model reads."""
        return CohortBatches(cohort, indices, batch_size, shuffle=shuffle, seed=seed,
                             fields=self.model.batch_fields,
                             feature_columns=getattr(self.model, "feature_names", None))

    def fit_statistics(self, cohort, train_indices) -> None:
        """Data statistics from the training subjects (none by default)."""

    def resume_statistics(self, cohort, train_indices) -> None:
        """What a resumed run must rebuild that the checkpoint does not hold (none by default)."""

    def learning_rate(self) -> float:
        lr = self.train_config.lr
        return float(lr if lr is not None else getattr(self.model.config, "default_lr", 1e-3))

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """AdamW over all parameters; lr from the train config or the model default."""
        weight_decay = getattr(self.model.config, "weight_decay", 0.0)
        self.optimizers = {"main": torch.optim.AdamW(
            self.model.parameters(), lr=self.learning_rate(), weight_decay=weight_decay)}
        return self.optimizers

    def step(self, batch: dict) -> dict[str, float]:
        """One optimisation step on ``batch``; returns the losses as floats."""
        if not self.optimizers:
            self.configure_optimizers()
        losses = self.model.training_losses(batch)
        if losses is None:  # nothing to learn from in this batch (e.g. no known ages)
            if distributed.is_distributed():  # the other ranks' averaged step still applies
                self.optimizers["main"].zero_grad(set_to_none=True)
                self.optimizers["main"].step()
            return {"loss": float("nan")}
        backward_and_step(self.optimizers["main"], losses["loss"])
        return _floats(losses)

    def preview(self, folder: Path, step: int) -> Path | None:
        """A small preview image in ``folder``; None when the model has none."""
        return None

    def optimizer_state(self) -> dict:
        """State dicts of all optimisers, for resuming."""
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_optimizer_state(self, state: dict) -> None:
        """Restore ``optimizer_state()`` output into the configured optimisers."""
        for name, opt in self.optimizers.items():
            if name in state:
                opt.load_state_dict(state[name])


SingleOptimiserSteps = TrainingSteps


class AutoencoderSteps(TrainingSteps):
    """MRI autoencoder: the mean brain, the PCA mask and basis, then AdamW.

    With ``pca_resolution="masked-full"`` the statistics take two passes over the
    training volumes: the mean (which gives the mask), then PCA of the voxels inside
    the mask at full resolution; ``"half"`` fits PCA of 2x block averages in one pass.
    """

    # Above this many training subjects the PCA basis is fitted chunk by chunk
    # (IncrementalPCA), so a large cohort never sits in memory.
    streaming_pca_above: int = 2048

    @torch.no_grad()
    def fit_statistics(self, cohort, train_indices, chunk: int = 64) -> None:
        from sklearn.decomposition import PCA

        model = self.model
        indices = np.sort(np.asarray(train_indices))
        mask = None
        if model.masked:  # first pass: the mean, whose dilated brain is the PCA's support
            mean = self._mean_volume(cohort, indices, chunk)
            mask = pca_mask(mean)
            model.set_statistics(mean, torch.zeros(0, int(mask.sum())), mask)
        if len(indices) > self.streaming_pca_above:
            return self._fit_statistics_streaming(cohort, indices, chunk, mask)
        total = torch.zeros(1, 1, *model.grid_shape, dtype=torch.float64)
        rows = []
        for start in range(0, len(indices), chunk):  # one pass over the memmap
            volumes = torch.from_numpy(cohort.images[indices[start:start + chunk]])[:, None]
            total += volumes.sum(dim=0, keepdim=True, dtype=torch.float64)
            rows.append(model.pca_inputs(volumes).numpy())
        rows = np.concatenate(rows)
        mean = (total / len(indices)).float()
        centred = rows - model.pca_inputs(mean).numpy()[0]
        k = int(min(model.linear_dim, len(indices) - 1, centred.shape[1]))
        basis = np.zeros((0, centred.shape[1]), dtype=np.float32)
        if k >= 1:
            pca = PCA(n_components=k, svd_solver="randomized", random_state=0).fit(centred)
            basis = pca.components_.astype(np.float32)
        model.set_statistics(mean, torch.from_numpy(basis), mask)

    @staticmethod
    def _mean_volume(cohort, indices: np.ndarray, chunk: int) -> torch.Tensor:
        """(1, 1, D, H, W) fp32 mean of the volumes ``indices`` (summed in fp64)."""
        total = None
        for start in range(0, len(indices), chunk):
            volumes = torch.from_numpy(cohort.images[indices[start:start + chunk]])[:, None]
            part = volumes.sum(dim=0, keepdim=True, dtype=torch.float64)
            total = part if total is None else total + part
        return (total / len(indices)).float()

    def _fit_statistics_streaming(self, cohort, indices: np.ndarray, chunk: int,
                                  mask: torch.Tensor | None) -> None:
        """The same statistics in one pass of chunks of at least ``linear_dim`` subjects
        (after the mean's pass when masked: ``model.pca_inputs`` then applies the mask)."""
        from sklearn.decomposition import IncrementalPCA

        model = self.model
        total = torch.zeros(1, 1, *model.grid_shape, dtype=torch.float64)
        k = int(min(model.linear_dim, len(indices) - 1))
        chunk = max(chunk, k)
        starts = list(range(0, len(indices), chunk))
        if len(indices) - starts[-1] < k:  # IncrementalPCA needs >= k rows per chunk
            starts.pop()
        pca = IncrementalPCA(n_components=k) if k >= 1 else None
        for i, start in enumerate(starts):
            stop = starts[i + 1] if i + 1 < len(starts) else len(indices)
            volumes = torch.from_numpy(cohort.images[indices[start:stop]])[:, None]
            total += volumes.sum(dim=0, keepdim=True, dtype=torch.float64)
            if pca is not None:
                pca.partial_fit(model.pca_inputs(volumes).numpy())
        mean = (total / len(indices)).float()
        width = model.pca_inputs(mean).shape[1]
        basis = np.zeros((0, width), dtype=np.float32) if pca is None else \
            pca.components_.astype(np.float32)
        model.set_statistics(mean, torch.from_numpy(basis), mask)


class MorphometrySteps(TrainingSteps):
    """Morphometry autoencoder: feature means and SDs of the training subjects (NaN ignored)."""

    def fit_statistics(self, cohort, train_indices) -> None:
        model = self.model
        values = cohort.table[model.feature_names].to_numpy(dtype=np.float64, na_value=np.nan)
        values = values[np.asarray(train_indices)]
        with np.errstate(all="ignore"):
            mean = np.nanmean(values, axis=0)
            std = np.nanstd(values, axis=0)
        model.set_statistics(torch.as_tensor(mean), torch.as_tensor(std))


class BrainAgeSteps(TrainingSteps):
    """Brain-age model: the training subjects' age mean and SD standardise the target."""

    def fit_statistics(self, cohort, train_indices) -> None:
        ages = cohort.table["age"].to_numpy(dtype=float, na_value=np.nan)[np.asarray(train_indices)]
        ages = ages[np.isfinite(ages)]
        if len(ages):
            self.model.set_statistics(float(ages.mean()), float(ages.std()))


class EncoderSteps(TrainingSteps):
    """Latent encoder: Adam on the code -> z map only (the GAN and autoencoder stay frozen)."""

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        lr = float(self.train_config.lr or self.model.config.default_lr)
        self.optimizers = {"main": torch.optim.Adam(self.model.mapper.parameters(), lr=lr)}
        return self.optimizers


def code_discriminator_loss(real_logit, fake_logit, real, config) -> tuple:
    """(D loss, R1) of a code-space discriminator: hinge or non-saturating per
    ``config.loss``; R1 = E||d D(real) / d real||² (zero when ``config.r1_gamma`` is 0;
    ``real`` must require grad then)."""
    if config.loss == "hinge":
        d_loss = F.relu(1 - real_logit).mean() + F.relu(1 + fake_logit).mean()
    else:
        d_loss = F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()
    r1 = torch.zeros((), device=real_logit.device)
    if config.r1_gamma > 0:
        (grad,) = torch.autograd.grad(real_logit.sum(), real, create_graph=True)
        r1 = grad.pow(2).sum(1).mean()
    return d_loss, r1


@contextlib.contextmanager
def single_thread():
    """Run tiny MLP steps on one thread: on a busy 2-core CPU, two threads made a
    64-wide adversarial step 15x slower (101 ms vs 6.7 ms, measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class LatentGanSteps(TrainingSteps):
    """brainlab's code-space GAN: bank the training codes, then adversarial G/D steps."""

    def fit_statistics(self, cohort, train_indices=None, batch_size: int = 16) -> None:
        """Encode the training images once: the real-code bank and its principal axes."""
        gan = self.model
        if cohort.images is None:
            raise BrainlabInputError(f"cohort {cohort.name!r} has no images to fit a GAN on")
        positions = np.arange(len(cohort)) if train_indices is None else np.asarray(train_indices)
        for start in range(0, len(positions), batch_size):
            chunk = positions[start:start + batch_size]
            images = torch.from_numpy(cohort.images[chunk])[:, None]
            gan.add_to_bank(chunk, gan.encode_images(images))
        gan.set_code_statistics(gan.bank_codes())

    def resume_statistics(self, cohort, train_indices) -> None:
        self.fit_statistics(cohort, train_indices)  # the bank is not in the checkpoint

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Adam for G and for D; ``train_config.lr`` (if set) scales both rates alike."""
        gan = self.model
        lr_scale = 1.0
        if self.train_config.lr:
            lr_scale = float(self.train_config.lr) / gan.config.lr_generator
        betas = tuple(gan.config.betas)
        self.optimizers = {
            "generator": torch.optim.Adam(gan.generator.parameters(),
                                          lr=gan.config.lr_generator * lr_scale, betas=betas),
            "discriminator": torch.optim.Adam(gan.discriminator.parameters(),
                                              lr=gan.config.lr_discriminator * lr_scale,
                                              betas=betas),
        }
        return self.optimizers

    def step(self, batch: dict) -> dict[str, float]:
        """Bank the batch's codes, then ``config.steps_per_batch`` adversarial G/D steps."""
        gan = self.model
        if not self.optimizers:
            self.configure_optimizers()
        indices = batch["index"]
        indices = indices.tolist() if torch.is_tensor(indices) else list(indices)
        missing = [i for i, index in enumerate(indices) if not gan.has_banked(index)]
        if missing:
            if "image" not in batch:
                raise BrainlabInputError(
                    f"{len(missing)} training subjects have no banked code; call "
                    f"fit_statistics(cohort, train_indices) before training (or pass images)")
            images = batch["image"][missing]
            gan.add_to_bank([indices[i] for i in missing], gan.encode_images(images))
        if not bool(gan.statistics_ready):
            gan.set_code_statistics(gan.bank_codes())
        real_bank = gan.whiten(gan.bank_codes())
        totals: dict[str, float] = {}
        for _ in range(int(gan.config.steps_per_batch)):
            for key, value in self.adversarial_step(real_bank).items():
                totals[key] = totals.get(key, 0.0) + value
        return {key: value / max(int(gan.config.steps_per_batch), 1)
                for key, value in totals.items()}

    def adversarial_step(self, real_bank: torch.Tensor, batch_size: int | None = None
                         ) -> dict[str, float]:
        """One D step (with R1 on real codes) and one G step on ``batch_size`` (default
        ``config.code_batch``) whitened codes drawn from ``real_bank`` (N, code_dim)."""
        if not self.optimizers:
            self.configure_optimizers()
        if real_bank.device.type != "cpu":
            return self._adversarial_step(real_bank, batch_size)
        with single_thread():
            return self._adversarial_step(real_bank, batch_size)

    def _adversarial_step(self, real_bank: torch.Tensor, batch_size: int | None
                          ) -> dict[str, float]:
        gan = self.model
        g_optimizer, d_optimizer = self.optimizers["generator"], self.optimizers["discriminator"]
        config = gan.config
        device = real_bank.device
        batch = min(int(batch_size or config.code_batch), len(real_bank))
        real = real_bank[torch.randint(len(real_bank), (batch,), device=device)]
        z = torch.randn(batch, config.latent_dim, device=device)

        gan.discriminator.requires_grad_(True)
        with torch.no_grad():
            fake = gan.generator(z)
        real = real.detach().requires_grad_(config.r1_gamma > 0)
        d_loss, r1 = code_discriminator_loss(gan.discriminator(real), gan.discriminator(fake),
                                             real, config)
        backward_and_step(d_optimizer, d_loss + 0.5 * config.r1_gamma * r1)

        gan.discriminator.requires_grad_(False)
        fake_logit = gan.discriminator(gan.generator(torch.randn(batch, config.latent_dim,
                                                                 device=device)))
        g_loss = -fake_logit.mean() if config.loss == "hinge" else F.softplus(-fake_logit).mean()
        backward_and_step(g_optimizer, g_loss)
        gan.discriminator.requires_grad_(True)
        gan.update_ema()
        g_value, d_value = float(g_loss.detach()), float(d_loss.detach())
        return {"loss": g_value + d_value, "d_loss": d_value, "g_loss": g_value,
                "r1": float(r1.detach())}

    def preview(self, folder, step: int):
        """Mid-slices of 4 fixed-z samples as a PNG (the fit loop's 'sample' event)."""
        return write_sample_preview(self.model, folder, step)


class SeedGanSteps(TrainingSteps):
    """The seed study's DCGAN: its Adam(lr 5e-5, betas (0.5, 0.999)) for G and for D."""

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        gan = self.model
        lr = float(self.train_config.lr or gan.config.lr)
        betas = tuple(gan.config.betas)
        self.optimizers = {
            "generator": torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=betas),
            "discriminator": torch.optim.Adam(gan.discriminator.parameters(), lr=lr, betas=betas),
        }
        return self.optimizers

    def step(self, batch: dict) -> dict[str, float]:
        """One seed step: D on real + fake (skipped while too accurate), then G through D.

        Runs in the precision the fit loop chose (the seed used fp32; bf16 gives the
        baseline its best speed on this CPU); losses are computed in fp32.
        """
        gan = self.model
        if not self.optimizers:
            self.configure_optimizers()
        g_optimizer = self.optimizers["generator"]
        d_optimizer = self.optimizers["discriminator"]
        device = gan.device
        real = to_seed_cube(batch["image"].to(device).float(), gan.config.pad_size,
                            gan.config.image_size)
        real = gan.prepare_images(real)
        n = real.shape[0]
        z = torch.rand(n, gan.latent_dim, device=device)
        ones = torch.ones(n, 1, device=device)
        zeros = torch.zeros(n, 1, device=device)
        with gan.autocast():
            fake = gan.generator(z)
            real_prob = gan.discriminator(real).float()
            fake_prob = gan.discriminator(fake.detach()).float()
        d_loss = F.binary_cross_entropy(real_prob, ones) + F.binary_cross_entropy(fake_prob, zeros)
        # Over all ranks' batches, so every rank takes (or skips) the D step alike.
        accuracy = distributed.mean_across_ranks(
            seed_discriminator_accuracy(real_prob.detach(), fake_prob.detach()))
        skipped = accuracy > gan.config.d_accuracy_threshold
        if not skipped:
            backward_and_step(d_optimizer, d_loss)

        with gan.autocast():
            fake_prob = gan.discriminator(fake).float()
        g_loss = F.binary_cross_entropy(fake_prob, ones)
        backward_and_step(g_optimizer, g_loss)
        d_value, g_value = float(d_loss.detach()), float(g_loss.detach())
        return {"loss": d_value + g_value, "d_loss": d_value, "g_loss": g_value,
                "d_accuracy": accuracy, "d_skipped": float(skipped)}

    def preview(self, folder, step: int):
        return write_sample_preview(self.model, folder, step)


def write_sample_preview(gan, folder, step: int, n: int = 4, seed: int = 0) -> Path:
    """A PNG of the middle axial, coronal and sagittal slices of ``n`` samples (fixed z,
    so successive previews show the same samples improving); returns its path."""
    from PIL import Image

    folder = Path(folder)
    with torch.no_grad():
        volumes = gan.generate(gan.sample_latent(n, seed))[:, 0].cpu().numpy()
    rows = []
    for volume in volumes:
        d, h, w = volume.shape
        views = [volume[d // 2], volume[:, h // 2], volume[:, :, w // 2]]
        height = max(v.shape[0] for v in views)
        rows.append(np.concatenate(
            [np.pad(v, ((0, height - v.shape[0]), (0, 1))) for v in views], axis=1))
    width = max(r.shape[1] for r in rows)
    mosaic = np.concatenate([np.pad(r, ((0, 1), (0, width - r.shape[1]))) for r in rows])
    image = Image.fromarray((np.clip(np.rot90(mosaic), 0, 1) * 255).astype(np.uint8))
    path = folder / f"samples_step{int(step):07d}.png"
    atomic_write(path, lambda temp: image.save(temp, format="PNG"))
    return path
