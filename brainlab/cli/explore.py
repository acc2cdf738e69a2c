"""``python -m brainlab probe`` and ``python -m brainlab interpolate``.

Both show a progress bar on stderr (stdout stays the table / the summary line).
"""

from __future__ import annotations

import json
from pathlib import Path

from brainlab.errors import BrainlabInputError


def register(subparsers) -> None:
    probe = subparsers.add_parser(
        "probe", help="probe table: how well raw features vs latents predict sex and age bin")
    probe.add_argument("--cohort", default="hcp-ya", help="preset name or path")
    probe.add_argument("--model", help="a morph-ae, mri-ae or encoder checkpoint folder")
    probe.add_argument("--folds", type=int, default=5, help="stratified CV folds")
    probe.add_argument("--group-column",
                       help="a table cohort's family id column (e.g. Family_ID): each "
                            "family stays inside one fold")
    probe.add_argument("--seed", type=int, default=0, help="seed of the fixed folds")
    probe.add_argument("--json", action="store_true", help="print rows as JSON")
    probe.set_defaults(run=run_probe)

    walk = subparsers.add_parser(
        "interpolate", help="walk between two GAN latents and save the frames as 4D NIfTI")
    walk.add_argument("--model", required=True, help="GAN checkpoint folder")
    walk.add_argument("--from", dest="start", default="0",
                      help="start: an integer seed or a subject id (needs --encoder)")
    walk.add_argument("--to", dest="end", default="1", help="end: a seed or a subject id")
    walk.add_argument("--frames", type=int, default=16, help="number of frames")
    walk.add_argument("--method", choices=("slerp", "lerp"), default="slerp")
    walk.add_argument("--encoder", help="encoder checkpoint, to start or end at a real subject")
    walk.add_argument("--cohort", default="hcp-ya", help="cohort of the subjects")
    walk.add_argument("--refine-steps", type=int, default=30,
                      help="latent optimisation steps after encoding a subject")
    walk.add_argument("--out", required=True, help="output .nii.gz (4D)")
    walk.add_argument("--png", help="also write an axial PNG strip here")
    walk.set_defaults(run=run_interpolate)


def run_probe(args) -> int:
    from brainlab.analysis.probe_runs import cohort_probe_table
    from brainlab.analysis.probes import with_seed_reference
    from brainlab.checkpoints import load_checkpoint
    from brainlab.data import load
    from brainlab.data.progress import tqdm_progress

    from brainlab.cli.cohort import source_kind
    from brainlab.errors import BrainlabInputError

    options = {}
    if args.group_column:
        if source_kind(args.cohort) != "table":
            raise BrainlabInputError(
                f"--group-column applies to a .csv/.tsv table cohort; {args.cohort!r} is a "
                f"{source_kind(args.cohort)} source")
        options["group_column"] = args.group_column
    cohort = load(args.cohort, **options)
    model = None
    if args.model:
        model, _ = load_checkpoint(args.model, cohort=cohort)
    # The seed study's published figures ride along in their own labelled column.
    progress, close = tqdm_progress("probes")
    try:
        table = with_seed_reference(cohort_probe_table(cohort, model, n_splits=args.folds,
                                                       seed=args.seed, progress=progress))
    finally:
        close()
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=2, default=float))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def run_interpolate(args) -> int:
    import numpy as np

    from brainlab.atomic import atomic_write
    from brainlab.analysis.gan_walks import (frames_to_nifti_bytes, frames_to_png_strip,
                                             parse_endpoint, render_frames)
    from brainlab.analysis.interpolation import interpolation_path
    from brainlab.checkpoints import load_checkpoint
    from brainlab.data import load
    from brainlab.data.grid import mni_affine
    from brainlab.data.progress import report, tqdm_progress

    out = Path(args.out)
    if not out.name.endswith((".nii", ".nii.gz")):
        raise BrainlabInputError(f"--out must end in .nii.gz or .nii; found {out.name!r}")
    frames_wanted = int(getattr(args, "frames", 16))
    if frames_wanted < 2:
        raise BrainlabInputError(f"--frames must be >= 2; found {frames_wanted}")
    gan, card = load_checkpoint(args.model)
    if card["model_type"] not in ("gan", "dcgan-seed"):
        raise BrainlabInputError(
            f"--model must be a GAN checkpoint; {args.model} is a {card['model_type']!r}")
    cohort = encoder = None
    if not (args.start.lstrip("-").isdigit() and args.end.lstrip("-").isdigit()):
        if not args.encoder:
            raise BrainlabInputError("a subject endpoint needs --encoder CHECKPOINT")
        cohort = load(args.cohort)
        encoder, _ = load_checkpoint(args.encoder, expected_type="encoder", cohort=cohort)
    progress, close = tqdm_progress("interpolate")
    try:
        report(progress, 0.0, "endpoints")
        z_start = parse_endpoint(args.start, gan, cohort, encoder, args.refine_steps)
        report(progress, 0.1, "endpoints")
        z_end = parse_endpoint(args.end, gan, cohort, encoder, args.refine_steps)
        path = interpolation_path(z_start, z_end, frames_wanted, method=args.method)
        chunks, batch = [], 4
        for start in range(0, len(path), batch):
            chunks.append(render_frames(gan, path[start:start + batch]))
            done = min(len(path), start + batch)
            report(progress, 0.2 + 0.7 * done / len(path), f"frame {done} of {len(path)}")
        frames = np.concatenate(chunks)
        affine = mni_affine(tuple(card["cohort"]["grid_shape"]))
        payload = frames_to_nifti_bytes(frames, affine, compress=out.name.endswith(".gz"))
        atomic_write(out, lambda temporary: temporary.write_bytes(payload))
        if args.png:
            Path(args.png).write_bytes(frames_to_png_strip(frames))
        report(progress, 1.0, "written")
    finally:
        close()
    print(f"wrote {len(frames)} frames of shape {frames.shape[1:]} to {out}")
    return 0
