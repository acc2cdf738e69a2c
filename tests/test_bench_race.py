"""``bench race``: the seed DCGAN trained for the GAN's CPU time, scored like the GAN."""

from __future__ import annotations

import pytest

from brainlab.bench import race


@pytest.mark.usefixtures("one_torch_thread")
def test_race_trains_the_seed_dcgan_and_scores_it_like_the_gan(tiny_checkpoints, tmp_path):
    result = race.run(checkpoints=tiny_checkpoints, minutes=0.02, out=tmp_path / "dcgan")
    seed = result["seed_dcgan"]
    assert (tmp_path / "dcgan" / "model_card.json").exists()
    assert seed["normalised_frechet"] > 0 and seed["normalised_frechet_sd"] >= 0
    assert 0.0 <= seed["two_sample_auc_low"] <= seed["two_sample_auc"] <= seed["two_sample_auc_high"] <= 1.0
    assert result["budget_minutes"] == 0.02
    text = race.format_report(result)
    assert "seed DCGAN, same time" in text and "Gaussian on the same decoder" in text
