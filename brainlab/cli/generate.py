"""``python -m brainlab generate``: brains at a requested sex and age from a conditional GAN.

``generate --model DIR --sex M --age 70 --n 8 --out x.nii.gz [--json] [--seed S]``
writes one 4D NIfTI (D, H, W, n) with the cohort's affine; ``--json`` prints each
sample's requested sex and age beside the judges' P(male) and predicted age (the
shipped or cached ``sex-clf`` and ``age-model`` on the same grid, the GAN's own
cohort first). ``--sweep-age 20:90:8`` instead writes the ageing sweep of one z (every
bin on an age-bin model), one frame per age, and with ``--true-out`` the cohort's mean
brains of that sex at the nearest age bins.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from brainlab.errors import BrainlabInputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate", help="brains at a requested sex and age (conditional GAN) as a 4D NIfTI",
        description=__doc__.split("\n\n")[1])
    parser.add_argument("--model", required=True, help="a conditional 'gan' checkpoint folder")
    parser.add_argument("--sex", default=None, help="M or F")
    parser.add_argument("--age", default=None,
                        help="years (lifespan models) or an age bin index/label (hcp-ya models)")
    parser.add_argument("--n", type=int, default=8, help="samples (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    parser.add_argument("--out", default=None, help="output .nii.gz (4D: one volume per sample)")
    parser.add_argument("--json", action="store_true",
                        help="print requested sex/age and the judges' P(male), predicted age")
    parser.add_argument("--sweep-age", default=None, metavar="START:STOP:FRAMES",
                        help="ageing sweep of one z instead (bins: every bin; give 'bins')")
    parser.add_argument("--true-out", default=None,
                        help="with --sweep-age: also write the cohort's true ageing frames")
    parser.add_argument("--cohort", default=None,
                        help="cohort for --true-out (default: the GAN's own preset) and for "
                             "--judge's real-subject baseline")
    parser.add_argument("--judge", action="store_true",
                        help="instead: (re)compute the judges' P(male) and r(age) figures "
                             "into the GAN's model card (e.g. after retraining sex-clf)")
    parser.set_defaults(run=run_generate)


def _nifti_out(path: str | None) -> Path:
    if path is None:
        raise BrainlabInputError("--out is required (a .nii.gz path)")
    out = Path(path)
    if not out.name.endswith((".nii", ".nii.gz")):
        raise BrainlabInputError(f"--out must end in .nii.gz or .nii; found {out.name!r}")
    return out


def _write(out: Path, frames, affine) -> None:
    from brainlab.analysis.gan_walks import frames_to_nifti_bytes
    from brainlab.atomic import atomic_write

    payload = frames_to_nifti_bytes(frames, affine, compress=out.name.endswith(".gz"))
    atomic_write(out, lambda temporary: temporary.write_bytes(payload))


def _affine(card: dict):
    import numpy as np

    from brainlab.data.grid import mni_affine

    stored = card.get("cohort", {}).get("affine")
    return np.asarray(stored) if stored is not None else mni_affine(
        tuple(card["cohort"]["grid_shape"]))


def _age_argument(gan, text):
    if text is None:
        raise BrainlabInputError("--age is required (or give --sweep-age)")
    if gan.condition_spec.age_encoding == "bins":
        return int(text) if str(text).lstrip("-").isdigit() else str(text)
    return text


def run_generate(args) -> int:
    from brainlab.analysis.conditional_generation import (find_judges, generate_conditioned,
                                                          judge_volumes, load_judges,
                                                          require_conditional,
                                                          requested_conditions)
    from brainlab.checkpoints import load_checkpoint

    if args.judge:
        from brainlab.train_recipes import judge_into_card

        cohort = None
        if args.cohort:  # the real test subjects' figures, as the judges' baseline
            from brainlab.data import load

            cohort = load(args.cohort)
        print(json.dumps(judge_into_card(args.model, cohort=cohort), indent=2, default=str))
        return 0
    if args.sex is None:
        raise BrainlabInputError("--sex is required (M or F)")
    out = _nifti_out(args.out)
    if args.n < 1:
        raise BrainlabInputError(f"--n must be >= 1; found {args.n}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gan, card = load_checkpoint(args.model)
    if card["model_type"] != "gan":
        raise BrainlabInputError(
            f"--model must be a 'gan' checkpoint; {args.model} is a {card['model_type']!r}")
    require_conditional(gan, where=f"checkpoint {args.model}")
    affine = _affine(card)
    if args.sweep_age is not None:
        return _run_sweep(args, gan, card, out, affine)
    sexes, ages = requested_conditions(gan, args.sex, _age_argument(gan, args.age), args.n)
    volumes = generate_conditioned(gan, sexes, ages, seed=args.seed)
    _write(out, volumes, affine)
    if not args.json:
        print(f"wrote {len(volumes)} samples of shape {volumes.shape[1:]} "
              f"({gan.condition_spec.describe()}) to {out}")
        return 0
    judge_paths = find_judges(gan.grid_shape, card.get("cohort", {}).get("name"))
    verdict = judge_volumes(volumes, load_judges(judge_paths))
    samples = []
    for i, (sex, age) in enumerate(zip(sexes, ages)):
        samples.append({
            "index": i, "requested_sex": sex, "requested_age": age,
            "p_male": None if verdict["p_male"] is None else float(verdict["p_male"][i]),
            "predicted_age": (None if verdict["predicted_age"] is None
                              else float(verdict["predicted_age"][i])),
        })
    print(json.dumps({"out": str(out), "condition": gan.condition_spec.describe(),
                      "judges": judge_paths, "predicted_age_unit": verdict["age_unit"],
                      "samples": samples}, indent=2))
    return 0


def _run_sweep(args, gan, card, out: Path, affine) -> int:
    from brainlab.analysis.ageing_sweep import ageing_summary, ageing_sweep, parse_sweep, sweep_ages

    cohort = None
    if args.true_out:
        from brainlab.data import load

        cohort = load(args.cohort or card.get("cohort", {}).get("name"))
    if gan.condition_spec.age_encoding == "bins":
        ages = sweep_ages(gan)
    else:
        start, stop, count = parse_sweep(args.sweep_age)
        ages = sweep_ages(gan, start, stop, count)
    sweep = ageing_sweep(gan, args.sex, ages, seed=args.seed, cohort=cohort, affine=affine)
    _write(out, sweep.generated, affine)
    if args.true_out and sweep.true is not None:
        _write(_nifti_out(args.true_out), sweep.true, affine)
    if args.json:
        print(json.dumps({"out": str(out), "true_out": args.true_out, "ages": sweep.ages,
                          "labels": sweep.labels, "voxels_changed": sweep.voxels_changed,
                          "brain_cc": sweep.brain_cc, "true_brain_cc": sweep.true_brain_cc},
                         indent=2))
    else:
        print(f"wrote {len(sweep.ages)} frames to {out}. {ageing_summary(sweep)}")
    return 0
