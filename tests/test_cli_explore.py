"""``python -m brainlab probe`` and ``interpolate`` on the tiny phantom and tiny checkpoints."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from brainlab.analysis.probes import SEED_COLUMN
from brainlab.__main__ import main
from brainlab.data.grid import mni_affine
from brainlab.errors import BrainlabInputError


def test_probe_json_has_raw_latent_and_reference_rows(tiny_checkpoints, capsys):
    assert main(["probe", "--cohort", "tiny", "--model", str(tiny_checkpoints / "morph-ae"),
                 "--folds", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    representations = {row["representation"] for row in rows}
    assert representations == {"raw morphometry", "morph-ae latent"}
    assert {row["target"] for row in rows} == {"sex", "age bin"}
    sex_lr = [r for r in rows if r["target"] == "sex" and r["model"] == "logistic regression"
              and r["representation"] == "raw morphometry"]
    assert sex_lr[0][SEED_COLUMN] == "0.919"


def test_interpolate_writes_4d_nifti_with_the_cohort_affine(tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "walk.nii.gz"
    png = tmp_path / "walk.png"
    assert main(["interpolate", "--model", str(tiny_checkpoints / "gan"), "--from", "1",
                 "--to", "2", "--frames", "5", "--out", str(out), "--png", str(png)]) == 0
    image = nib.load(out)
    assert image.shape == (12, 14, 16, 5)
    assert np.allclose(image.affine, mni_affine((12, 14, 16)))
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_interpolate_from_subjects_needs_an_encoder(tiny_checkpoints, tmp_path, capsys):
    code = main(["interpolate", "--model", str(tiny_checkpoints / "gan"), "--from", "sub-0001",
                 "--to", "2", "--cohort", "tiny", "--out", str(tmp_path / "w.nii.gz")])
    assert code == 2
    assert "needs --encoder" in capsys.readouterr().err


def test_interpolate_between_real_subjects(tiny_checkpoints, tiny, tmp_path):
    first, second = tiny.subject_ids[:2]
    out = tmp_path / "subjects.nii"
    assert main(["interpolate", "--model", str(tiny_checkpoints / "gan"),
                 "--encoder", str(tiny_checkpoints / "encoder"), "--cohort", "tiny",
                 "--from", first, "--to", second, "--frames", "3", "--refine-steps", "2",
                 "--out", str(out)]) == 0
    assert nib.load(out).shape[-1] == 3


def test_interpolate_rejects_a_non_gan_model(tiny_checkpoints, tmp_path):
    from types import SimpleNamespace

    from brainlab.cli.explore import run_interpolate

    with pytest.raises(BrainlabInputError, match="must be a GAN checkpoint"):
        run_interpolate(SimpleNamespace(model=str(tiny_checkpoints / "mri-ae"), start="0",
                                        end="1", out=str(tmp_path / "x.nii.gz")))


def test_interpolate_and_probe_show_progress_on_stderr(tiny_checkpoints, tmp_path, capsys):
    assert main(["interpolate", "--model", str(tiny_checkpoints / "gan"), "--from", "3",
                 "--to", "4", "--frames", "6", "--out", str(tmp_path / "w.nii")]) == 0
    captured = capsys.readouterr()
    assert "interpolate" in captured.err and "frame 6 of 6" in captured.err
    assert captured.out.startswith("wrote 6 frames")
    assert main(["interpolate", "--model", str(tiny_checkpoints / "gan"), "--frames", "1",
                 "--out", str(tmp_path / "x.nii")]) == 2
    assert "--frames must be >= 2; found 1" in capsys.readouterr().err
    assert main(["probe", "--cohort", "tiny", "--folds", "3", "--json"]) == 0
    captured = capsys.readouterr()
    assert "probes" in captured.err and "rows" in captured.err
    assert json.loads(captured.out)[0]["n_splits"] == 3
