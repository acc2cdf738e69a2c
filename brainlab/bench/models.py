"""``python -m brainlab bench models``: brainlab's GAN, encoder and autoencoder vs the seed.

Everything runs in one process, on random weights, at a 64³ grid with batch 10 (the
issue's setting), interleaving the contenders so that a busy machine slows them alike;
each figure is the median of ``steps`` timed repetitions after one warm-up.

- GAN training: the seed's DCGAN step (D on real + fake, then G through D; fp32, as the
  seed) vs brainlab's code-space GAN step (D with R1 + G on autoencoder codes). brainlab's
  GAN also encodes each real volume once before training; that one-off cost is reported
  and, amortised over a default training run, included in ``gan_train_ratio_amortised``.
- Generator inference: seed G (fp32) vs brainlab's G (MLP + frozen decoder, in the
  precision ``bf16="auto"`` resolves to, as in training, with channels_last_3d).
- Encoder inference: the seed latent encoder (fp32) vs brainlab's (frozen autoencoder
  encoder + MLP), without refinement; one refinement step is timed too.
- Autoencoder: brainlab's training step and encode+decode per sample (the issue gives no
  seed autoencoder architecture beyond its 1000-d bottleneck, so no ratio).

Goals (issue 4, 2 CPU cores): GAN training ≥3× the seed's per-sample throughput, encoder
inference ≥5×, generator ≤20 ms per sample.
"""

from __future__ import annotations

import statistics
import time

GOALS = {"gan_train_ratio": 3.0, "encoder_inference_ratio": 5.0, "generator_ms_per_sample": 20.0}


def _median_seconds(function, steps: int) -> float:
    function()  # warm-up: allocator, oneDNN kernel selection
    times = []
    for _ in range(max(1, steps)):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(batch: int = 10, steps: int = 3, size: int = 64) -> dict:
    """Time the seed and brainlab models; returns ms per sample and ratios (seed / brainlab)."""
    import torch
    import torch.nn.functional as F

    from brainlab.config import GanConfig, MriAutoencoderConfig, TrainConfig
    from brainlab.models.autoencoder import MriAutoencoder
    from brainlab.models.encoder import LatentEncoder
    from brainlab.models.gan import LatentGan
    from brainlab.models.seed_reference import (SeedDiscriminator, SeedGenerator,
                                                SeedLatentEncoder, count_parameters)
    from brainlab.precision import resolve_bf16
    from brainlab.training.steps import AutoencoderSteps, LatentGanSteps

    torch.manual_seed(0)
    grid = (size, size, size)
    bf16 = resolve_bf16("auto", "cpu")
    real = torch.rand(batch, 1, *grid)

    # ---- the seed's reference architectures, fp32 ----
    seed_g, seed_d, seed_e = SeedGenerator(image_size=size), SeedDiscriminator(image_size=size), \
        SeedLatentEncoder(image_size=size)
    g_opt = torch.optim.Adam(seed_g.parameters(), lr=5e-5, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(seed_d.parameters(), lr=5e-5, betas=(0.5, 0.999))
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)

    def seed_gan_step():
        fake = seed_g(torch.rand(batch, 100))
        d_loss = (F.binary_cross_entropy(seed_d(real), ones)
                  + F.binary_cross_entropy(seed_d(fake.detach()), zeros))
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss = F.binary_cross_entropy(seed_d(fake), ones)
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()

    def seed_generate():
        with torch.no_grad():
            seed_g.eval()
            seed_g(torch.rand(batch, 100))
            seed_g.train()

    def seed_encode():
        with torch.no_grad():
            seed_e.eval()(real)

    # ---- brainlab: autoencoder -> code-space GAN -> encoder, chosen precision ----
    autoencoder = MriAutoencoder(MriAutoencoderConfig(), grid)
    # channels_last_3d helps 3D convs in fp32 too (MEASURED.md: seed G 45.7 -> 29.0 ms).
    autoencoder.set_precision(bf16, channels_last=True)
    gan = LatentGan.from_autoencoder(autoencoder, GanConfig())
    with torch.no_grad():
        gan.set_code_statistics(torch.randn(4 * gan.config.code_dim, gan.config.code_dim))
    gan_steps = LatentGanSteps(gan, TrainConfig())
    gan_steps.configure_optimizers()
    encoder = LatentEncoder.from_gan(gan)
    encoder.eval()
    code_bank = torch.randn(779, gan.config.code_dim)
    autoencoder_steps = AutoencoderSteps(autoencoder, TrainConfig())
    autoencoder_steps.configure_optimizers()
    autoencoder.train()

    def brainlab_gan_step():  # the same batch size as the seed, for a like-for-like figure
        gan_steps.adversarial_step(code_bank, batch)

    def brainlab_gan_step_default():
        gan_steps.adversarial_step(code_bank)

    def brainlab_encode_real():
        gan.encode_images(real)

    def brainlab_generate():
        with torch.no_grad():
            gan.generate(torch.randn(batch, 100))

    # The conditional GAN (sex, age in years): the condition adds 3 inputs to each MLP.
    conditional = LatentGan.from_autoencoder(autoencoder, GanConfig(
        sexes=("F", "M"), age_encoding="years", age_range=(20.0, 90.0)))
    condition = conditional.condition(["F", "M"] * batch, [30.0 + i for i in range(2 * batch)])

    def brainlab_conditional_generator():
        with torch.no_grad():
            conditional.generate(torch.randn(batch, 100), condition[:batch])

    def brainlab_encoder():
        with torch.no_grad():
            encoder.encode(real)

    def brainlab_refine_step():
        encoder.invert(real, refine_steps=1)

    def ae_train_step():
        autoencoder_steps.step({"image": real})

    def ae_infer():
        with torch.no_grad():
            autoencoder.decode(autoencoder.encode(real))

    timings = {}
    contenders = [
        ("seed_gan_train", seed_gan_step, batch),
        ("brainlab_gan_train", brainlab_gan_step, batch),
        ("brainlab_gan_train_default_batch", brainlab_gan_step_default, gan.config.code_batch),
        ("brainlab_gan_encode_once", brainlab_encode_real, batch),
        ("seed_generator", seed_generate, batch),
        ("brainlab_generator", brainlab_generate, batch),
        ("brainlab_conditional_generator", brainlab_conditional_generator, batch),
        ("seed_encoder", seed_encode, batch),
        ("brainlab_encoder", brainlab_encoder, batch),
        ("brainlab_refine_step", brainlab_refine_step, batch),
        ("brainlab_ae_train", ae_train_step, batch),
        ("brainlab_ae_inference", ae_infer, batch),
    ]
    for name, function, samples in contenders:
        timings[name] = 1000.0 * _median_seconds(function, steps) / samples

    # Amortised GAN cost: one encoder pass per real training volume, spread over the
    # default run's adversarial samples (epochs x batches x steps_per_batch x code_batch).
    from brainlab.registry import model_spec

    gan_train_config = model_spec("gan").default_train_config
    n_train = 779
    batches = -(-n_train // gan_train_config.batch_size)
    samples = gan_train_config.epochs * batches * gan.config.steps_per_batch * gan.config.code_batch
    amortised = (timings["brainlab_gan_train_default_batch"]
                 + timings["brainlab_gan_encode_once"] * n_train / samples)
    timings["brainlab_gan_train_amortised"] = amortised
    result = {
        "grid": list(grid), "batch": batch, "steps": steps, "threads": torch.get_num_threads(),
        "brainlab_bf16": bf16,
        "ms_per_sample": timings,
        "parameters": {
            "seed_generator": count_parameters(seed_g),
            "seed_discriminator": count_parameters(seed_d),
            "seed_encoder": count_parameters(seed_e),
            "brainlab_gan_generator": count_parameters(gan.generator),
            "brainlab_gan_discriminator": count_parameters(gan.discriminator),
            "brainlab_decoder": sum(p.numel() for p in gan.autoencoder.decoder.parameters()),
            "brainlab_encoder_mapper": count_parameters(encoder.mapper),
            "brainlab_autoencoder": sum(p.numel() for p in autoencoder.parameters()),
        },
        "gan_train_ratio": timings["seed_gan_train"] / timings["brainlab_gan_train"],
        "gan_train_ratio_amortised": timings["seed_gan_train"] / amortised,
        "generator_ratio": timings["seed_generator"] / timings["brainlab_generator"],
        "encoder_inference_ratio": timings["seed_encoder"] / timings["brainlab_encoder"],
        "generator_ms_per_sample": timings["brainlab_generator"],
        "conditional_generator_ms_per_sample": timings["brainlab_conditional_generator"],
    }
    result["goals_met"] = {
        "gan_train_ratio": result["gan_train_ratio_amortised"] >= GOALS["gan_train_ratio"],
        "encoder_inference_ratio": result["encoder_inference_ratio"]
        >= GOALS["encoder_inference_ratio"],
        "generator_ms_per_sample": result["generator_ms_per_sample"]
        <= GOALS["generator_ms_per_sample"],
    }
    return result


def format_report(result: dict) -> str:
    """A plain-text table of ``run()``'s figures."""
    t = result["ms_per_sample"]
    precision = ("bf16 + channels_last_3d" if result["brainlab_bf16"]
                 else "fp32 + channels_last_3d (no fast bf16 on this CPU)")
    grid = "×".join(map(str, result["grid"]))
    lines = [
        f"models benchmark: {grid} grid, batch {result['batch']}, {result['threads']} threads, "
        f"median of {result['steps']} (seed fp32; brainlab {precision})",
        "",
        f"{'':34s}{'seed ms/sample':>16s}{'brainlab ms/sample':>20s}{'ratio':>9s}",
        f"{'GAN training step':34s}{t['seed_gan_train']:16.1f}{t['brainlab_gan_train']:20.3f}"
        f"{result['gan_train_ratio']:8.0f}×",
        f"{'  + one-off encode, amortised':34s}{'':16s}"
        f"{t['brainlab_gan_train_amortised']:20.3f}"
        f"{result['gan_train_ratio_amortised']:8.0f}×",
        f"{'generator inference':34s}{t['seed_generator']:16.1f}{t['brainlab_generator']:20.1f}"
        f"{result['generator_ratio']:8.1f}×",
        f"{'  conditional (sex, age)':34s}{'':16s}"
        f"{t.get('brainlab_conditional_generator', float('nan')):20.1f}",
        f"{'encoder inference (no refinement)':34s}{t['seed_encoder']:16.1f}"
        f"{t['brainlab_encoder']:20.1f}{result['encoder_inference_ratio']:8.1f}×",
        f"{'encoder refinement, per step':34s}{'':16s}{t['brainlab_refine_step']:20.1f}",
        f"{'autoencoder training step':34s}{'':16s}{t['brainlab_ae_train']:20.1f}",
        f"{'autoencoder encode + decode':34s}{'':16s}{t['brainlab_ae_inference']:20.1f}",
        "",
        f"one-off: encoding a real volume for the GAN's code bank {t['brainlab_gan_encode_once']:.1f} "
        f"ms; GAN step at its default code batch {t['brainlab_gan_train_default_batch']:.3f} ms/sample",
        "goals: GAN training ≥3× (amortised) "
        f"{'met' if result['goals_met']['gan_train_ratio'] else 'MISSED'}; encoder inference ≥5× "
        f"{'met' if result['goals_met']['encoder_inference_ratio'] else 'MISSED'}; generator ≤20 ms "
        f"per sample {'met' if result['goals_met']['generator_ms_per_sample'] else 'MISSED'}",
    ]
    return "\n".join(lines)
