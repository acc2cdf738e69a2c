"""GAN Lab for brains: train the latent GAN live, in-process, one small update at a time.

``LiveGan(autoencoder, cohort, config)`` encodes the real training subjects once with a
frozen MRI autoencoder and trains brainlab's code-space GAN
(:class:`brainlab.models.gan.LatentGan`) on those codes, a few milliseconds per step, so
a page can play, pause and step it (GAN Lab, Kahng et al., IEEE VIS 2018):

- ``step("d" | "g" | "both", n)``: n discriminator updates, generator updates, or pairs;
- ``set(lr_g=..., lr_d=..., loss=..., r1_weight=..., gp_weight=..., batch_size=...)``
  while it runs (the optimisers keep their state; only the rates change);
- ``reset(start="gaussian" | "noise")``: G starts as the fitted Gaussian (its residual
  MLP's last layer at zero, as in training) or from random weights (a distorted cloud
  away from the real codes); D starts fresh. ``PRESETS`` show failure on purpose;
- ``snapshot()``: what the view draws — a 2D PCA fitted once on the real training codes
  with the real and the current generated codes, D's score over a grid on that plane
  (grid points lifted back to code space with the PCA inverse), the loss, D-accuracy and
  normalised-Fréchet histories with the Gaussian baseline, and decoded brains from fixed z;
- ``save(out_dir)``: a ``gan`` checkpoint with a card, loadable by ``load_checkpoint``.

The normalised Fréchet is the Fréchet distance (in the autoencoder's code space) between
the generated codes and the training codes, divided by the same distance between the
held-out (validation) codes and the training codes, with equally many generated as
held-out codes: held-out real codes score 1.0 by construction.

Speed (hcp-ya codes, shipped mri-ae, 779 training codes; measured on a 2-core machine at
load average 12, i.e. shared ~6 ways): one update (a D and a G step, then ``snapshot()``)
takes 26 ms wall (10 ms CPU); an update that also decodes one strip brain takes 79 ms
with bf16 (this CPU has AVX-512 BF16), 577 ms in fp32 (212 ms CPU). The strip is
refreshed one brain per update, every ``strip_every`` updates.

Layer: training (it steps optimisers). It imports data, models, checkpoints and
analysis; only the CLI and the app import it.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA

from brainlab.config import GanConfig
from brainlab.errors import BrainlabInputError
from brainlab.models.gan import LatentGan, standard_normal_latent
from brainlab.precision import resolve_bf16
from brainlab.training.steps import single_thread

LOSSES = ("non-saturating", "hinge", "wgan-gp")
STARTS = ("gaussian", "noise")
SETTABLE = ("lr_g", "lr_d", "loss", "r1_weight", "gp_weight", "batch_size")


@dataclass(frozen=True)
class LiveGanConfig:
    # Defaults measured on the hcp-ya codes (shipped mri-ae): with the trained GAN's
    # rates (1e-3 both, R1 1) D overfits the 779 real codes within ~300 updates and the
    # generated cloud shrinks (normalised Fréchet 0.7 -> 9); with these it stays at
    # 0.9-2.4 from the Gaussian start and comes down from 12 to 1.5 from noise in 600.
    lr_g: float = 5e-4          # Adam rate of G (changeable while it runs)
    lr_d: float = 2e-4          # Adam rate of D (changeable while it runs)
    loss: str = "non-saturating"  # 'non-saturating', 'hinge' or 'wgan-gp' (changeable)
    r1_weight: float = 10.0     # R1 penalty on real codes (non-saturating, hinge); 0 = off
    gp_weight: float = 10.0     # gradient penalty of wgan-gp (Gulrajani et al. used 10)
    batch_size: int = 128       # real and generated codes per update
    hidden_dim: int = 64        # width of the G and D MLPs (a quarter of GanConfig's: live, small)
    layers: int = 3             # linear layers of each MLP
    spectral_norm: bool = True  # spectral norm in D (structural: takes effect at reset)
    betas: tuple[float, float] = (0.5, 0.99)  # Adam betas, as the trained GAN
    ema_decay: float = 0.995    # EMA of G kept for the saved checkpoint's generator_ema
    noise_scale: float = 3.0    # 'noise' start: G's random correction, in SDs of the real codes
    seed: int = 0               # seeds the weights, the minibatches and the fixed z
    n_shown: int = 256          # generated codes drawn in the distribution view (fixed z)
    grid_size: int = 32         # D heatmap resolution per axis
    n_strip: int = 4            # decoded brains in the strip (fixed z)
    strip_every: int = 10       # refresh the strip every N updates, one brain per update
    bf16: str = "auto"          # decoder precision: 'auto' (from the CPU flags), 'on' or 'off'


# Presets: settings that show something on purpose. Measured on the hcp-ya codes (shipped
# mri-ae, 600 updates of one D and one G step; normalised Fréchet: held-out real = 1,
# fitted Gaussian 0.66); PRESET_NOTES says what to look for.
PRESETS: dict[str, dict] = {
    "default": {},
    "too high learning rate": {"lr_g": 0.2, "lr_d": 0.2, "spectral_norm": False},
    "no R1": {"r1_weight": 0.0, "spectral_norm": False, "lr_d": 3e-3, "lr_g": 3e-3},
    "hinge": {"loss": "hinge"},
    "wgan-gp": {"loss": "wgan-gp", "spectral_norm": False},
}
PRESET_NOTES = {
    "default": "stays near the real codes (Fréchet 0.9-2.4 from the Gaussian start; "
               "12 -> 1.5 from noise in 600 updates)",
    "too high learning rate": "Adam at 0.2 with a plain D: the codes fly off the plane and "
                              "the Fréchet explodes (2e3 after 75 updates, 1e7 after 600)",
    "no R1": "no R1, no spectral norm, faster rates: D wins (accuracy -> 1, G's loss climbs "
             "to 4-5) and the Fréchet rises to ~5 in 600 updates",
    "hinge": "hinge loss with R1: behaves like the default (Fréchet 1.4-1.6 at 600)",
    "wgan-gp": "Wasserstein loss, gradient penalty, plain D: with one critic step per G step "
               "the critic lags and the Fréchet swings between 13 and 180; give D more "
               "steps ('d') to see why WGAN trains the critic 5x",
}


def encode_codes(autoencoder, cohort, indices, batch_size: int = 16) -> np.ndarray:
    """(len(indices), latent_dim) float32 codes of cohort rows ``indices`` (no gradient)."""
    if cohort.images is None:
        raise BrainlabInputError(f"cohort {cohort.name!r} has no images to encode")
    indices = np.asarray(indices, dtype=np.int64)
    parts = []
    autoencoder.eval()
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            images = torch.from_numpy(np.ascontiguousarray(cohort.images[chunk]))[:, None]
            parts.append(autoencoder.encode(images.float()).float().cpu().numpy())
    return np.concatenate(parts).astype(np.float32)


class _FrechetToReference:
    """Fréchet distance of a sample's Gaussian to a fixed reference Gaussian.

    The reference covariance's square root R is computed once; then
    tr sqrt(S_r S_x) = sum of the singular values of X R / sqrt(n - 1) (X: the centred
    sample), one small SVD per call instead of a matrix square root. Torch float64 on the
    caller's threads (numpy's LAPACK SVD took 1.4 s instead of milliseconds with two
    spinning BLAS threads on a busy 2-core machine).
    """

    def __init__(self, reference: np.ndarray):
        reference = torch.as_tensor(np.asarray(reference), dtype=torch.float64)
        self.mean = reference.mean(0)
        covariance = torch.cov(reference.T)
        self.trace = float(torch.trace(covariance))
        values, vectors = torch.linalg.eigh(covariance)
        self.root = (vectors * values.clamp_min(0).sqrt()) @ vectors.T

    def __call__(self, sample) -> float:
        sample = torch.as_tensor(np.asarray(sample), dtype=torch.float64)
        mean = sample.mean(0)
        centred = (sample - mean) / max(len(sample) - 1, 1) ** 0.5
        cross = float(torch.linalg.svdvals(centred @ self.root).sum())
        distance = (float(((mean - self.mean) ** 2).sum()) + self.trace
                    + float((centred ** 2).sum()) - 2 * cross)
        return float(max(distance, 0.0))


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise BrainlabInputError(f"{name} must be one of {', '.join(choices)}; found {value!r}")


def _check_positive(name: str, value, allow_zero: bool = False) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise BrainlabInputError(f"{name} must be a finite number {bound}; found {value}")
    return value


class LiveGan:
    """A latent GAN trained live on ``cohort``'s training codes under ``autoencoder``.

    ``autoencoder``: a trained ``mri-ae`` model on the cohort's grid. ``split``: the
    cohort split (default ``cohort.split(0)``); G and D see the training codes, the
    normalised Fréchet uses the validation codes as the held-out reference.
    ``train_codes`` / ``heldout_codes``: precomputed codes (``encode_codes``) to skip
    encoding (an app caches them per checkpoint).
    """

    def __init__(self, autoencoder, cohort, config: LiveGanConfig | None = None, split=None,
                 train_codes: np.ndarray | None = None, heldout_codes: np.ndarray | None = None,
                 split_seed: int = 0):
        self.config = config or LiveGanConfig()
        self._validate(asdict(self.config))
        if tuple(autoencoder.grid_shape) != tuple(cohort.grid_shape or ()):
            raise BrainlabInputError(
                f"the autoencoder expects grid {tuple(autoencoder.grid_shape)}; cohort "
                f"{cohort.name!r} has grid {cohort.grid_shape}")
        self.autoencoder = autoencoder
        self.cohort = cohort
        self.split_seed = int(split_seed)
        self.split = split if split is not None else cohort.split(self.split_seed)
        if train_codes is None:
            train_codes = encode_codes(autoencoder, cohort, self.split.train)
        if heldout_codes is None:
            heldout_codes = encode_codes(autoencoder, cohort, self.split.val)
        self.train_codes = np.asarray(train_codes, dtype=np.float32)
        self.heldout_codes = np.asarray(heldout_codes, dtype=np.float32)
        for label, codes in (("train", self.train_codes), ("held-out", self.heldout_codes)):
            if codes.ndim != 2 or codes.shape[1] != int(autoencoder.latent_dim) or len(codes) < 3:
                raise BrainlabInputError(
                    f"{label} codes must have shape (N >= 3, {int(autoencoder.latent_dim)}); "
                    f"found {codes.shape}")
        # Fixed pieces, computed once: the PCA plane, the Fréchet reference and floor.
        self.pca = PCA(n_components=2, random_state=0).fit(self.train_codes)
        self.real_xy = self.pca.transform(self.train_codes).astype(np.float32)
        self.heldout_xy = self.pca.transform(self.heldout_codes).astype(np.float32)
        self._frechet = _FrechetToReference(self.train_codes)
        self.n_frechet = int(len(self.heldout_codes))
        self.frechet_floor = self._frechet(self.heldout_codes)
        lows, highs = np.vstack([self.real_xy, self.heldout_xy]).min(0), \
            np.vstack([self.real_xy, self.heldout_xy]).max(0)
        pad = 0.35 * (highs - lows)
        self.grid_x = np.linspace(lows[0] - pad[0], highs[0] + pad[0], self.config.grid_size)
        self.grid_y = np.linspace(lows[1] - pad[1], highs[1] + pad[1], self.config.grid_size)
        mesh = np.stack(np.meshgrid(self.grid_x, self.grid_y), -1).reshape(-1, 2)
        self._grid_codes = torch.from_numpy(self.pca.inverse_transform(mesh).astype(np.float32))
        # The fitted projection as a torch map, so each update projects on one thread.
        self._pca_mean = torch.from_numpy(self.pca.mean_.astype(np.float32))
        self._pca_components = torch.from_numpy(self.pca.components_.T.astype(np.float32))
        self.reset("gaussian")

    # ---- building and resetting ---------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path, cohort, config: LiveGanConfig | None = None, **kwargs):
        """A LiveGan on the ``mri-ae`` checkpoint at ``path`` (checked against ``cohort``)."""
        from brainlab.checkpoints import load_checkpoint

        autoencoder, card = load_checkpoint(path, expected_type="mri-ae", cohort=cohort)
        kwargs.setdefault("split_seed", int(card.get("cohort", {}).get("split_seed", 0)))
        return cls(autoencoder, cohort, config, **kwargs)

    def _gan_config(self) -> GanConfig:
        config = self.config
        return GanConfig(hidden_dim=config.hidden_dim, generator_layers=config.layers,
                         discriminator_layers=config.layers,
                         loss="hinge" if config.loss == "hinge" else "nonsaturating",
                         r1_gamma=float(config.r1_weight), spectral_norm=config.spectral_norm,
                         ema_decay=config.ema_decay, lr_generator=config.lr_g,
                         lr_discriminator=config.lr_d, betas=tuple(config.betas),
                         code_batch=config.batch_size)

    def reset(self, start: str = "gaussian", preset: str | None = None, **settings) -> None:
        """Start again: fresh D, and G as the fitted Gaussian or from noise.

        ``preset`` (a key of ``PRESETS``) and ``settings`` (any ``LiveGanConfig`` field,
        structural ones included) replace the configuration first.
        """
        _check_choice("start", start, STARTS)
        changes = {}
        if preset is not None:
            _check_choice("preset", preset, tuple(PRESETS))
            changes.update(asdict(LiveGanConfig()))
            changes.update({k: getattr(self.config, k) for k in
                            ("seed", "n_shown", "grid_size", "n_strip", "strip_every",
                             "hidden_dim", "layers", "batch_size")})
            changes.update(PRESETS[preset])
        changes.update(settings)
        if changes:
            unknown = sorted(set(changes) - set(asdict(self.config)))
            if unknown:
                raise BrainlabInputError(
                    f"unknown settings {unknown}; expected fields of LiveGanConfig")
            self._validate(changes)
            self.config = replace(self.config, **changes)
        config = self.config
        self.start = start
        self.preset = preset
        torch.manual_seed(config.seed)
        self._generator = torch.Generator().manual_seed(config.seed)
        self.gan = LatentGan.from_autoencoder(self.autoencoder, self._gan_config())
        self.gan.set_precision(resolve_bf16(config.bf16), True)
        self.gan.set_code_statistics(torch.from_numpy(self.train_codes))
        self.gan.eval()
        if start == "noise":
            last = self.gan.generator.mlp[-1]
            with torch.no_grad():
                last.reset_parameters()
                probe = self.gan.generator.mlp(standard_normal_latent(512, config.seed + 1,
                                                                      self.gan.latent_dim))
                last.weight.mul_(config.noise_scale / (probe.std() + 1e-8))
                last.bias.copy_(config.noise_scale * torch.randn(
                    last.bias.shape, generator=self._generator) / np.sqrt(len(last.bias)))
        self.gan.generator_ema.load_state_dict(self.gan.generator.state_dict())
        self.real_whitened = self.gan.whiten(torch.from_numpy(self.train_codes)).detach()
        self._grid_whitened = self.gan.whiten(self._grid_codes).detach()
        self.optimizers = {
            "g": torch.optim.Adam(self.gan.generator.parameters(), lr=config.lr_g,
                                  betas=tuple(config.betas)),
            "d": torch.optim.Adam(self.gan.discriminator.parameters(), lr=config.lr_d,
                                  betas=tuple(config.betas)),
        }
        n_fixed = max(config.n_shown, self.n_frechet)
        self.fixed_z = standard_normal_latent(n_fixed, config.seed + 7, self.gan.latent_dim)
        self.strip_z = standard_normal_latent(config.n_strip, config.seed + 11,
                                              self.gan.latent_dim)
        self.updates = 0
        self.d_steps = 0
        self.g_steps = 0
        self.history: dict[str, list] = {key: [] for key in (
            "update", "d_steps", "g_steps", "d_loss", "g_loss", "penalty", "d_real_accuracy",
            "d_fake_accuracy", "frechet_ratio")}
        self._last = {"d_loss": float("nan"), "g_loss": float("nan"), "penalty": float("nan"),
                      "d_real_accuracy": float("nan"), "d_fake_accuracy": float("nan")}
        self._strip: np.ndarray | None = None
        self._strip_pending: list[int] = []
        self._strip_cycle_end = 0
        self._strip_decoded_at = np.full(config.n_strip, -1, dtype=np.int64)
        with torch.no_grad():
            gaussian = self.gan.gaussian_codes(self.fixed_z[:self.n_frechet]).numpy()
        self.gaussian_frechet_ratio = self._frechet(gaussian) / self.frechet_floor
        self._record()

    # ---- settings ------------------------------------------------------------------

    def _validate(self, values: dict) -> None:
        if "loss" in values:
            _check_choice("loss", values["loss"], LOSSES)
        if "bf16" in values:
            _check_choice("bf16", values["bf16"], ("auto", "on", "off"))
        for name in ("lr_g", "lr_d", "noise_scale"):
            if name in values:
                _check_positive(name, values[name])
        for name in ("r1_weight", "gp_weight"):
            if name in values:
                _check_positive(name, values[name], allow_zero=True)
        for name, low in (("batch_size", 2), ("hidden_dim", 1), ("layers", 1), ("n_shown", 2),
                          ("grid_size", 2), ("n_strip", 0), ("strip_every", 1)):
            if name in values and (int(values[name]) != values[name] or values[name] < low):
                raise BrainlabInputError(
                    f"{name} must be an integer >= {low}; found {values[name]!r}")

    def set(self, **settings) -> None:
        """Change ``lr_g``, ``lr_d``, ``loss``, ``r1_weight``, ``gp_weight`` or
        ``batch_size`` now; the next step uses them (optimiser state is kept)."""
        unknown = sorted(set(settings) - set(SETTABLE))
        if unknown:
            raise BrainlabInputError(
                f"cannot set {unknown} while running; settable: {', '.join(SETTABLE)} "
                f"(structural settings go through reset(...))")
        self._validate(settings)
        self.config = replace(self.config, **settings)
        for group in self.optimizers["g"].param_groups:
            group["lr"] = float(self.config.lr_g)
        for group in self.optimizers["d"].param_groups:
            group["lr"] = float(self.config.lr_d)

    # ---- training ------------------------------------------------------------------

    def _real_batch(self) -> torch.Tensor:
        rows = torch.randint(len(self.real_whitened), (self.config.batch_size,),
                             generator=self._generator)
        return self.real_whitened[rows]

    def _noise(self) -> torch.Tensor:
        return torch.randn(self.config.batch_size, self.gan.latent_dim, generator=self._generator)

    def _d_step(self) -> None:
        config, gan = self.config, self.gan
        discriminator = gan.discriminator
        with torch.no_grad():
            fake = gan.generator(self._noise())
        real = self._real_batch().requires_grad_(config.loss != "wgan-gp" and config.r1_weight > 0)
        real_score, fake_score = discriminator(real), discriminator(fake)
        penalty = torch.zeros(())
        if config.loss == "wgan-gp":
            loss = fake_score.mean() - real_score.mean()
            if config.gp_weight > 0:
                mix = torch.rand(len(real), 1, generator=self._generator)
                between = (mix * real.detach() + (1 - mix) * fake).requires_grad_(True)
                (grad,) = torch.autograd.grad(discriminator(between).sum(), between,
                                              create_graph=True)
                penalty = (grad.norm(dim=1) - 1).pow(2).mean()
                loss = loss + config.gp_weight * penalty
            threshold = 0.5 * float((real_score.mean() + fake_score.mean()).detach())
        else:
            if config.loss == "hinge":
                loss = F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()
            else:
                loss = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
            if config.r1_weight > 0:
                (grad,) = torch.autograd.grad(real_score.sum(), real, create_graph=True)
                penalty = grad.pow(2).sum(1).mean()
                loss = loss + 0.5 * config.r1_weight * penalty
            threshold = 0.0
        self.optimizers["d"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["d"].step()
        self.d_steps += 1
        with torch.no_grad():
            adversarial = loss - (config.gp_weight if config.loss == "wgan-gp"
                                  else 0.5 * config.r1_weight) * penalty
        self._last.update(
            d_loss=float(adversarial), penalty=float(penalty.detach()),
            d_real_accuracy=float((real_score.detach() > threshold).float().mean()),
            d_fake_accuracy=float((fake_score.detach() < threshold).float().mean()))

    def _g_step(self) -> None:
        config, gan = self.config, self.gan
        gan.discriminator.requires_grad_(False)
        fake_score = gan.discriminator(gan.generator(self._noise()))
        if config.loss == "non-saturating":
            loss = F.softplus(-fake_score).mean()
        else:
            loss = -fake_score.mean()
        self.optimizers["g"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["g"].step()
        gan.discriminator.requires_grad_(True)
        with torch.no_grad():
            for ema, live in zip(gan.generator_ema.parameters(), gan.generator.parameters()):
                ema.lerp_(live, 1.0 - float(config.ema_decay))
        self.g_steps += 1
        self._last["g_loss"] = float(loss.detach())

    def step(self, which: str = "both", n: int = 1) -> dict:
        """``n`` updates: a D step ("d"), a G step ("g"), or one of each ("both").

        Runs on one torch thread (tiny MLPs: a second thread only adds contention).
        Returns the latest losses and accuracies.
        """
        _check_choice("which", which, ("d", "g", "both"))
        if int(n) != n or n < 1:
            raise BrainlabInputError(f"n must be an integer >= 1; found {n!r}")
        with single_thread():  # tiny MLPs: a second thread only adds contention
            for _ in range(int(n)):
                if which in ("d", "both"):
                    self._d_step()
                if which in ("g", "both"):
                    self._g_step()
                self.updates += 1
            self._record()
        return dict(self._last)

    def _record(self) -> None:
        with torch.no_grad():
            codes = self.gan.codes_from_latent(self.fixed_z[:self.n_frechet], ema=False).numpy()
        ratio = self._frechet(codes) / self.frechet_floor if np.isfinite(codes).all() \
            else float("nan")
        history = self.history
        history["update"].append(self.updates)
        history["d_steps"].append(self.d_steps)
        history["g_steps"].append(self.g_steps)
        for key, value in self._last.items():
            history[key].append(value)
        history["frechet_ratio"].append(float(ratio))

    # ---- what the view draws ---------------------------------------------------------

    def generated_codes(self, n: int | None = None) -> np.ndarray:
        """(n, code_dim) codes of the live generator on the fixed z (default n_shown)."""
        n = self.config.n_shown if n is None else int(n)
        with torch.no_grad():
            return self.gan.codes_from_latent(self.fixed_z[:n], ema=False).numpy()

    def discriminator_scores(self) -> np.ndarray:
        """(grid_size, grid_size) D's score on the PCA plane (rows: y, columns: x).

        Probabilities of 'real' (sigmoid of the logit) for the non-saturating and hinge
        losses; the raw critic score for wgan-gp.
        """
        with torch.no_grad():
            scores = self.gan.discriminator(self._grid_whitened)
        if self.config.loss != "wgan-gp":
            scores = torch.sigmoid(scores)
        size = self.config.grid_size
        return scores.numpy().reshape(size, size)

    def decoded_strip(self, force: bool = False) -> np.ndarray | None:
        """(n_strip, 3, S, S) middle axial, coronal and sagittal slices of brains decoded
        from fixed z (``middle_slices``).

        Decoding is the costly part of an update (one decoder pass per brain), so the
        strip is refreshed every ``strip_every`` updates, one brain per call: no single
        update pays for the whole strip. ``force`` decodes every brain now.
        """
        if self.config.n_strip == 0:
            return None
        if self._strip is None or force:
            self._decode_strip(list(range(self.config.n_strip)))
            self._strip_pending = []
            self._strip_cycle_end = self.updates
        else:
            if not self._strip_pending and \
                    self.updates - self._strip_cycle_end >= self.config.strip_every:
                self._strip_pending = list(range(self.config.n_strip))
            if self._strip_pending:
                self._decode_strip([self._strip_pending.pop(0)])
                if not self._strip_pending:
                    self._strip_cycle_end = self.updates
        return self._strip

    def _decode_strip(self, rows: list[int]) -> None:
        with torch.no_grad():
            codes = self.gan.codes_from_latent(self.strip_z[rows], ema=False)
            slices = middle_slices(self.gan.decode(codes)[:, 0].cpu().numpy())
        if self._strip is None:
            self._strip = np.zeros((self.config.n_strip,) + slices.shape[1:], dtype=np.float32)
        self._strip[rows] = slices
        self._strip_decoded_at[rows] = self.updates

    def snapshot(self, strip: bool = True) -> dict:
        """Everything the GAN Lab view draws, as numpy arrays and floats.

        Keys: update, d_steps, g_steps, real_xy (N_train, 2), heldout_xy, fake_xy
        (n_shown, 2), grid_x (G,), grid_y (G,), d_scores (G, G), d_score_kind
        ('probability' | 'critic'), history (lists per key), gaussian_frechet_ratio,
        frechet_ratio (latest), strip (n_strip, 3, S, S) or None, strip_decoded_at
        (n_strip,) the update at which each brain was last decoded,
        explained_variance (2,), config (dict), start, preset.
        """
        with single_thread():  # tiny MLPs: a second thread only adds contention
            fake = self.generated_codes()
            fake_xy = ((torch.from_numpy(fake) - self._pca_mean) @ self._pca_components).numpy()
            fake_xy[~np.isfinite(fake_xy).all(1)] = np.nan
            d_scores = self.discriminator_scores()
        return {
            "update": self.updates, "d_steps": self.d_steps, "g_steps": self.g_steps,
            "real_xy": self.real_xy, "heldout_xy": self.heldout_xy, "fake_xy": fake_xy,
            "grid_x": self.grid_x, "grid_y": self.grid_y,
            "d_scores": d_scores,
            "d_score_kind": "critic" if self.config.loss == "wgan-gp" else "probability",
            "history": {key: list(values) for key, values in self.history.items()},
            "gaussian_frechet_ratio": float(self.gaussian_frechet_ratio),
            "frechet_ratio": self.history["frechet_ratio"][-1],
            "strip": self.decoded_strip() if strip else None,
            "strip_decoded_at": self._strip_decoded_at.copy(),
            "explained_variance": self.pca.explained_variance_ratio_.astype(float),
            "config": asdict(self.config), "start": self.start, "preset": self.preset,
        }

    # ---- saving ----------------------------------------------------------------------

    def save(self, out_dir, evaluate: bool = True, max_subjects: int | None = 64,
             progress=None) -> Path:
        """Write the live G (also as its EMA, so the checkpoint generates what the view
        shows) and D as a ``gan`` checkpoint with a card; returns the folder.

        With ``evaluate`` the card holds the same test-split metrics as a trained GAN's
        (``analysis.evaluation.evaluate_latent_gan``: image-space Fréchet ratio, two-sample
        AUC, Gaussian baseline; ``progress`` is its progress callback), so the model
        pickers show a verdict; ``max_subjects`` caps the test subjects (the card records
        n). On hcp-ya the whole test split (167) took 391 s on a busy 2-core machine (with
        the earlier ``gan_metrics`` panel); None evaluates all of them.
        """
        from brainlab.checkpoints import save_checkpoint

        gan = copy.deepcopy(self.gan)
        gan.generator_ema.load_state_dict(gan.generator.state_dict())
        metrics = {"frechet_ratio_codes": self.history["frechet_ratio"][-1],
                   "gaussian_frechet_ratio_codes": float(self.gaussian_frechet_ratio)}
        if evaluate:
            from brainlab.analysis.evaluation import evaluate_latent_gan

            gan.eval()
            with torch.no_grad():
                evaluated = evaluate_latent_gan(gan, self.cohort, self.split.test,
                                                max_subjects=max_subjects, progress=progress)
            metrics = {**evaluated, "split": "test", **metrics}
        training = {"live": True, "updates": self.updates, "d_steps": self.d_steps,
                    "g_steps": self.g_steps, "start": self.start, "preset": self.preset,
                    "live_config": asdict(self.config),
                    "notes": "trained live in GAN Lab (brainlab.live_gan); loss "
                             f"{self.config.loss}"}
        split_sizes = {k: len(getattr(self.split, k)) for k in ("train", "val", "test")}
        return save_checkpoint(gan, out_dir, self.cohort, self.split_seed, metrics, training,
                               split_sizes=split_sizes)


def middle_slices(volumes: np.ndarray) -> np.ndarray:
    """(B, D, H, W) -> (B, 3, S, S) middle axial, coronal and sagittal slices (RAS voxel
    axes; first array axis = x, as ``strip_figure`` expects), zero-padded to a square
    of the largest side S (so a strip of brains stacks into one array)."""
    volumes = np.asarray(volumes, dtype=np.float32)
    if volumes.ndim != 4:
        raise BrainlabInputError(f"volumes must have shape (B, D, H, W); found {volumes.shape}")
    _, d, h, w = volumes.shape
    side = max(d, h, w)
    out = np.zeros((len(volumes), 3, side, side), dtype=np.float32)
    for index, volume in enumerate(volumes):
        # Axes run x (left-right), y (posterior-anterior), z (inferior-superior): axial
        # fixes z, coronal y, sagittal x.
        for axis, view in enumerate((volume[:, :, w // 2], volume[:, h // 2], volume[d // 2])):
            out[index, axis, :view.shape[0], :view.shape[1]] = view
    return out
