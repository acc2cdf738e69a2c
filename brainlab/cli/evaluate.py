"""``python -m brainlab evaluate CHECKPOINT [--json] [--cohort C] [--max-subjects N] [--write-card]``.

Re-evaluates a checkpoint on the held-out (test) split of its cohort, with the trivial
baselines on the same subjects, and prints the metrics next to the ones stored in its
model card; a tqdm bar on stderr shows progress (``--quiet`` hides it). ``--write-card``
replaces the card's metrics with the new ones and records an "evaluated" entry (when,
brainlab version, cohort fingerprint), written atomically; everything else in the card
is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

from brainlab.errors import BrainlabInputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="re-evaluate a checkpoint on its held-out split",
        description="Re-evaluate a checkpoint on the test split of its cohort (or --cohort) "
                    "and compare with the metrics in its model card.")
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (with model_card.json)")
    parser.add_argument("--cohort", default=None,
                        help="preset or path (default: the cohort named in the card)")
    parser.add_argument("--max-subjects", type=int, default=None,
                        help="evaluate only the first N held-out subjects (faster)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--write-card", action="store_true",
                        help="rewrite the card's metrics with this evaluation (whole test "
                             "split only; not with --max-subjects)")
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args) -> int:
    from brainlab.analysis.evaluation import evaluate_checkpoint
    from brainlab.checkpoints import quality_verdict, read_card
    from brainlab.data.progress import tqdm_progress
    from brainlab.data.sources import PRESET_NAMES, load
    from brainlab.training import scalar_metrics

    card = read_card(args.checkpoint)
    if args.write_card and args.max_subjects is not None:
        raise BrainlabInputError(
            "--write-card records the whole test split; found --max-subjects "
            f"{args.max_subjects} (leave it out)")
    source = args.cohort or card.get("cohort", {}).get("name")
    if args.cohort is None and source not in PRESET_NAMES:
        raise BrainlabInputError(
            f"checkpoint {args.checkpoint} was trained on cohort {source!r}, which is not a "
            f"preset ({', '.join(PRESET_NAMES)}); pass --cohort PATH")
    progress, close = (None, lambda: None) if args.quiet else tqdm_progress(f"cohort {source}")
    try:
        cohort = load(source, progress=progress)
    finally:
        close()
    progress, close = ((None, lambda: None) if args.quiet
                       else tqdm_progress(f"evaluate {card.get('model_type')}"))
    try:
        result = evaluate_checkpoint(args.checkpoint, cohort, max_subjects=args.max_subjects,
                                     device=args.device, progress=progress)
    finally:
        close()
    level, sentence = quality_verdict({**card, "metrics": result["metrics"]})
    result["quality"], result["quality_sentence"] = level, sentence
    if args.write_card:
        result["previous_quality"] = quality_verdict(card)[0]
        result["card_written"] = str(write_card_metrics(args.checkpoint, result["metrics"],
                                                        cohort))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    card_metrics = scalar_metrics(result["card_metrics"])
    now = scalar_metrics(result["metrics"])
    print(f"{result['model_type']} checkpoint {args.checkpoint}")
    print(f"cohort {cohort.name} (fingerprint {cohort.fingerprint}; "
          f"{'matches' if result['cohort_match'] else 'differs from'} the card's)")
    print(f"{'metric':<20} {'card':>12} {'now':>12}")
    for name in sorted(set(card_metrics) | set(now)):
        print(f"{name:<20} {_fmt(card_metrics.get(name)):>12} {_fmt(now.get(name)):>12}")
    print(f"quality {level}: {sentence}")
    if args.write_card:
        print(f"card written: {result['card_written']} (quality before: "
              f"{result['previous_quality']})")
    return 0


def write_card_metrics(checkpoint, metrics: dict, cohort) -> Path:
    """Replace the card's "metrics" with ``metrics`` and set its "evaluated" entry;
    every other entry is kept. Written to a temporary file and moved into place."""
    from datetime import datetime, timezone

    import brainlab
    from brainlab.atomic import atomic_write
    from brainlab.checkpoints import CARD_NAME, _json_ready, read_card

    card = read_card(checkpoint)
    card["metrics"] = _json_ready(metrics)
    card["evaluated"] = {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "brainlab": brainlab.__version__, "cohort": cohort.name,
        "fingerprint": cohort.fingerprint, "split": metrics.get("split", "test"),
        "with_baselines": True,
    }
    folder = Path(checkpoint)
    folder = folder.parent if folder.is_file() else folder
    path = folder / CARD_NAME
    atomic_write(path, lambda temp: temp.write_text(json.dumps(card, indent=2) + "\n"))
    return path


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
