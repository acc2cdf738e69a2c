"""``python -m brainlab generate``: 4D NIfTI output, JSON fields, sweeps and clear errors."""

from __future__ import annotations

import json
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import torch

from brainlab import paths
from brainlab.__main__ import main
from brainlab.checkpoints import save_checkpoint
from brainlab.config import BrainAgeConfig, ClassifierConfig
from brainlab.models.classifiers import BrainAgeModel, SexClassifier
from brainlab.models.gan import LatentGan
from brainlab.training.gan_steps import ConditionalLatentGanSteps, condition_config_for
from tests.test_gan import GRID, TINY_GAN, fitted_autoencoder, toy_cohort

TINY_CNN = dict(base_channels=2, max_channels=4, levels=2)


@pytest.fixture(scope="module")
def cohort():
    return replace(toy_cohort(), age_bin_labels=("20-29", "30-39"))  # ages in years


@pytest.fixture(scope="module")
def folders(cohort, tmp_path_factory):
    """A conditional GAN, an unconditional one, and judges in the user checkpoint cache."""
    root = tmp_path_factory.mktemp("generate")
    torch.manual_seed(0)
    autoencoder = fitted_autoencoder(cohort)
    gan = LatentGan.from_autoencoder(autoencoder, condition_config_for(cohort, TINY_GAN))
    ConditionalLatentGanSteps(gan).fit_statistics(cohort, np.arange(16))
    save_checkpoint(gan, root / "gan", cohort, 0, {"n": 0}, {"steps": 0})
    plain = LatentGan.from_autoencoder(autoencoder, TINY_GAN)
    save_checkpoint(plain, root / "plain", cohort, 0, {"n": 0}, {"steps": 0})
    judges = paths.user_checkpoints() / "generate-test"
    save_checkpoint(SexClassifier(ClassifierConfig(**TINY_CNN), GRID), judges / "sex-clf",
                    cohort, 0, {}, {})
    save_checkpoint(BrainAgeModel(BrainAgeConfig(**TINY_CNN), GRID), judges / "age-model",
                    cohort, 0, {}, {})
    return root


def test_generate_writes_a_4d_nifti_with_the_cohort_affine(folders, cohort, tmp_path):
    out = tmp_path / "x.nii.gz"
    assert main(["generate", "--model", str(folders / "gan"), "--sex", "M", "--age", "30",
                 "--n", "3", "--out", str(out)]) == 0
    image = nib.load(str(out))
    assert image.shape == (*GRID, 3)
    assert np.allclose(image.affine, cohort.affine)
    data = np.asarray(image.dataobj)
    assert 0.0 <= data.min() and data.max() <= 1.0
    assert not np.allclose(data[..., 0], data[..., 1])  # different z per sample


def test_generate_json_puts_the_judges_beside_each_request(folders, tmp_path, capsys):
    out = tmp_path / "f.nii.gz"
    assert main(["generate", "--model", str(folders / "gan"), "--sex", "F", "--age", "25",
                 "--n", "2", "--out", str(out), "--json", "--seed", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["judges"]["sex"].endswith("sex-clf")
    assert [s["requested_sex"] for s in report["samples"]] == ["F", "F"]
    for sample in report["samples"]:
        assert float(sample["requested_age"]) == 25.0
        assert 0.0 <= sample["p_male"] <= 1.0
        assert np.isfinite(sample["predicted_age"])
    assert report["predicted_age_unit"] == "years"


def test_generate_is_reproducible_per_seed(folders, tmp_path):
    outs = []
    for name in ("a", "b"):
        outs.append(tmp_path / f"{name}.nii")
        main(["generate", "--model", str(folders / "gan"), "--sex", "M", "--age", "33",
              "--n", "2", "--seed", "7", "--out", str(outs[-1])])
    assert np.array_equal(*(np.asarray(nib.load(str(p)).dataobj) for p in outs))


@pytest.mark.parametrize("argv, match", [
    (["--sex", "M", "--age", "95"], "outside the conditioned range"),
    (["--sex", "Q", "--age", "30"], "unknown sex 'Q'"),
    (["--sex", "M"], "--age is required"),
    (["--sex", "M", "--sweep-age", "20:90"], "START:STOP:FRAMES"),
])
def test_generate_errors_name_the_problem(folders, tmp_path, capsys, argv, match):
    code = main(["generate", "--model", str(folders / "gan"), "--out", str(tmp_path / "x.nii.gz"),
                 *argv])
    assert code == 2
    assert match in capsys.readouterr().err


def test_generate_refuses_an_unconditional_checkpoint(folders, tmp_path, capsys):
    code = main(["generate", "--model", str(folders / "plain"), "--sex", "M", "--age", "30",
                 "--out", str(tmp_path / "x.nii.gz")])
    assert code == 2
    assert "is not a conditional GAN" in capsys.readouterr().err


def test_generate_sweep_writes_one_frame_per_age(folders, tmp_path, capsys):
    out = tmp_path / "sweep.nii.gz"
    assert main(["generate", "--model", str(folders / "gan"), "--sex", "F",
                 "--sweep-age", "23:35:4", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ages"] == [23.0, 27.0, 31.0, 35.0]
    assert nib.load(str(out)).shape == (*GRID, 4)
    assert report["voxels_changed"][0] == 0 and len(report["brain_cc"]) == 4


def test_judge_writes_the_judges_figures_into_the_card(folders, tmp_path, capsys):
    import shutil

    from brainlab.checkpoints import read_card

    folder = tmp_path / "gan"
    shutil.copytree(folders / "gan", folder)
    assert main(["generate", "--model", str(folder), "--judge"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "judge_real_n" not in printed  # no --cohort: no real-subject baseline
    metrics = read_card(folder)["metrics"]
    for key in ("judge_p_male_M", "judge_p_male_F", "judge_age_r"):
        assert key in metrics and metrics[key] == pytest.approx(printed[key])
    assert 0.0 <= metrics["judge_p_male_M"] <= 1.0
    assert metrics["judge_paths"]["age"].endswith("age-model")


def test_real_subjects_give_the_judges_baseline(folders, cohort):
    from brainlab.analysis.conditional_generation import find_judges, judge_real_subjects, load_judges

    judges = load_judges(find_judges(GRID, cohort.name))
    metrics = judge_real_subjects(cohort, np.arange(8), judges)
    assert metrics["judge_real_n"] == 8
    assert 0.0 <= metrics["judge_real_p_male_F"] <= 1.0 and "judge_real_p_male_M" in metrics
    assert "judge_real_age_r" in metrics
