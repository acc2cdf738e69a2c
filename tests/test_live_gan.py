"""GAN Lab's engine (brainlab.live_gan) on a tiny cohort: steps change G and D, the
snapshot has the shapes the view needs, the normalised Fréchet is 1 for held-out codes,
set() and reset() take effect, save -> load_checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlab.analysis.metrics import _frechet_distance
from brainlab.checkpoints import load_checkpoint, quality_verdict, read_card
from brainlab.errors import BrainlabInputError
from brainlab.live_gan import (PRESETS, LiveGan, LiveGanConfig, _FrechetToReference,
                               encode_codes, middle_slices)
from brainlab.models.autoencoder import MriAutoencoder
from tests.conftest import make_small_cohort

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = LiveGanConfig(batch_size=16, hidden_dim=16, n_shown=20, grid_size=6, n_strip=2,
                      strip_every=3)


@pytest.fixture(scope="module")
def cohort():
    """60 subjects on an unequal 12x14x16 grid (enough held-out codes for a Fréchet)."""
    return make_small_cohort(n=60, name="small-60")


@pytest.fixture(scope="module")
def autoencoder(cohort):
    torch.manual_seed(0)
    model = MriAutoencoder.from_cohort(cohort)
    model.eval()
    return model


@pytest.fixture(scope="module")
def codes(autoencoder, cohort):
    split = cohort.split(0)
    return encode_codes(autoencoder, cohort, split.train), \
        encode_codes(autoencoder, cohort, split.val)


@pytest.fixture
def live(autoencoder, cohort, codes):
    return LiveGan(autoencoder, cohort, SMALL, train_codes=codes[0], heldout_codes=codes[1])


def _parameters(module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


@pytest.mark.parametrize("which, g_changes, d_changes", [
    ("d", False, True), ("g", True, False), ("both", True, True)])
def test_a_step_updates_only_the_networks_it_names(live, which, g_changes, d_changes):
    g_before, d_before = _parameters(live.gan.generator), _parameters(live.gan.discriminator)
    live.step(which, n=2)
    assert live.updates == 2
    assert (not torch.equal(g_before, _parameters(live.gan.generator))) == g_changes
    assert (not torch.equal(d_before, _parameters(live.gan.discriminator))) == d_changes
    assert live.g_steps == (2 if g_changes else 0) and live.d_steps == (2 if d_changes else 0)


def test_the_snapshot_has_what_the_view_draws(live, codes, cohort):
    live.step("both", n=3)
    snapshot = live.snapshot()
    assert snapshot["real_xy"].shape == (len(codes[0]), 2)
    assert snapshot["heldout_xy"].shape == (len(codes[1]), 2)
    assert snapshot["fake_xy"].shape == (SMALL.n_shown, 2)
    assert snapshot["d_scores"].shape == (SMALL.grid_size, SMALL.grid_size)
    assert snapshot["grid_x"].shape == snapshot["grid_y"].shape == (SMALL.grid_size,)
    assert ((snapshot["d_scores"] >= 0) & (snapshot["d_scores"] <= 1)).all()
    side = max(cohort.grid_shape)
    assert snapshot["strip"].shape == (SMALL.n_strip, 3, side, side)
    history = snapshot["history"]
    assert history["update"] == [0, 3]  # the reset state, then one record per step() call
    assert {len(v) for v in history.values()} == {2}
    assert np.isfinite(history["frechet_ratio"]).all()
    assert history["d_real_accuracy"][-1] is not None and 0 <= history["d_fake_accuracy"][-1] <= 1
    # The fitted Gaussian is G at step 0: the first recorded ratio is the baseline.
    assert history["frechet_ratio"][0] == pytest.approx(snapshot["gaussian_frechet_ratio"])
    # The heatmap is D on the PCA plane: the grid covers the real codes.
    assert snapshot["grid_x"][0] < snapshot["real_xy"][:, 0].min()
    assert snapshot["grid_y"][-1] > snapshot["real_xy"][:, 1].max()


def test_the_strip_is_refreshed_every_nth_update_one_brain_at_a_time(live):
    np.testing.assert_array_equal(live.snapshot()["strip_decoded_at"], [0, 0])
    live.step("g")
    np.testing.assert_array_equal(live.snapshot()["strip_decoded_at"], [0, 0])  # 1 < strip_every
    live.step("g", n=SMALL.strip_every)
    now = live.updates
    np.testing.assert_array_equal(live.snapshot()["strip_decoded_at"], [now, 0])
    before = live.snapshot(strip=False)["strip_decoded_at"]
    np.testing.assert_array_equal(before, [now, 0])  # strip=False decodes nothing
    snapshot = live.snapshot()
    np.testing.assert_array_equal(snapshot["strip_decoded_at"], [now, now])
    with torch.no_grad():
        expected = middle_slices(live.gan.decode(
            live.gan.codes_from_latent(live.strip_z, ema=False))[:, 0].numpy())
    np.testing.assert_allclose(snapshot["strip"], expected, atol=1e-5)


def test_the_normalised_frechet_is_one_for_held_out_codes(live, codes):
    assert live._frechet(codes[1]) / live.frechet_floor == pytest.approx(1.0)
    assert live.n_frechet == len(codes[1])  # as many generated codes as held-out ones


def test_the_fast_frechet_matches_the_reference_implementation():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12))
    sample = 1.4 * rng.normal(size=(40, 12)) + 0.3
    assert _FrechetToReference(reference)(sample) == pytest.approx(
        _frechet_distance(sample, reference), rel=1e-6)


def test_set_changes_the_rates_and_the_loss_while_running(live):
    live.step("both")
    live.set(lr_g=3e-3, lr_d=7e-4, loss="wgan-gp", r1_weight=0.0)
    assert [g["lr"] for g in live.optimizers["g"].param_groups] == [3e-3]
    assert [g["lr"] for g in live.optimizers["d"].param_groups] == [7e-4]
    assert live.optimizers["g"].state  # Adam's moments survive a change of rate
    live.step("both")
    assert live.snapshot()["d_score_kind"] == "critic"
    assert live.history["penalty"][-1] > 0  # the gradient penalty is on


def test_reset_from_noise_starts_away_from_the_gaussian(live):
    gaussian = live.history["frechet_ratio"][0]
    live.reset("noise")
    assert live.updates == 0 and live.history["update"] == [0]
    assert live.history["frechet_ratio"][0] > 1.5 * gaussian
    live.reset("gaussian", preset="too high learning rate")
    assert live.config.lr_g == PRESETS["too high learning rate"]["lr_g"]
    assert live.config.batch_size == SMALL.batch_size  # size settings are kept


def test_save_writes_a_gan_checkpoint_that_loads(live, cohort, tmp_path):
    live.step("both", n=5)
    folder = live.save(tmp_path / "live-gan", evaluate=True)
    model, card = load_checkpoint(folder, expected_type="gan", cohort=cohort)
    z = model.sample_latent(3, 1)
    with torch.no_grad():
        expected = live.gan.decode(live.gan.codes_from_latent(z, ema=False))
        assert torch.allclose(model.generate(z), expected, atol=1e-5)
    assert card["training"]["live"] is True and card["training"]["updates"] == 5
    assert card["metrics"]["split"] == "test" and "frechet_ratio" in card["metrics"]
    assert "gaussian_frechet_ratio" in card["metrics"]
    assert quality_verdict(read_card(folder))[0] in ("good", "fair", "poor")


@pytest.mark.parametrize("call, match", [
    (lambda live: live.step("x"), "which must be one of d, g, both; found 'x'"),
    (lambda live: live.step("d", n=0), "n must be an integer >= 1"),
    (lambda live: live.set(loss="mse"), "loss must be one of non-saturating, hinge, wgan-gp"),
    (lambda live: live.set(lr_g=-1.0), "lr_g must be a finite number > 0; found -1.0"),
    (lambda live: live.set(hidden_dim=8), r"cannot set \['hidden_dim'\] while running"),
    (lambda live: live.reset("zeros"), "start must be one of gaussian, noise"),
    (lambda live: live.reset(preset="nope"), "preset must be one of"),
])
def test_bad_settings_name_what_was_expected(live, call, match):
    with pytest.raises(BrainlabInputError, match=match):
        call(live)


def test_an_autoencoder_for_another_grid_is_refused(autoencoder):
    other = make_small_cohort(n=24, grid=(12, 14, 14), name="other-grid")
    with pytest.raises(BrainlabInputError, match=r"expects grid \(12, 14, 16\)"):
        LiveGan(autoencoder, other, SMALL)


def test_middle_slices_pad_each_view_to_one_square():
    volumes = np.random.default_rng(0).random((2, 12, 14, 16)).astype(np.float32)
    slices = middle_slices(volumes)
    assert slices.shape == (2, 3, 16, 16)
    np.testing.assert_array_equal(slices[1, 0, :12, :14], volumes[1, :, :, 8])  # axial: z fixed
    np.testing.assert_array_equal(slices[0, 1, :12, :16], volumes[0, :, 7])     # coronal: y
    np.testing.assert_array_equal(slices[0, 2, :14, :16], volumes[0, 6])        # sagittal: x


def test_the_no_r1_preset_lets_the_discriminator_win(live):
    # Measured on hcp-ya (see PRESET_NOTES); on this toy cohort the same effect shows fast.
    live.reset("gaussian", preset="default")
    live.step("both", n=200)
    default_d_loss = live.history["d_loss"][-1]
    live.reset("gaussian", preset="no R1")
    assert live.config.r1_weight == 0 and not live.config.spectral_norm
    live.step("both", n=200)
    assert live.history["d_loss"][-1] < 0.5 < default_d_loss  # 2 ln 2 = 1.39 at chance
    assert live.history["g_loss"][-1] > 2.0
