"""``python -m brainlab compare``: a classifier on held-out real brains vs GAN samples.

The command-line twin of the app's Classifiers page: the same numbers
(male fraction or mean predicted age, real metrics, two-sample AUC, memorisation)
as a short table or, with ``--json``, as JSON. A progress bar runs on stderr; the
result goes to the result store under the same key as the page's, so the page (or
a second run) finds it.
"""

from __future__ import annotations

import json

from brainlab.errors import BrainlabInputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="run a sex classifier or brain-age model on real brains and GAN samples",
        description="Compare what a classifier says about held-out real brains and about "
                    "GAN samples, with a two-sample AUC and a memorisation check.")
    parser.add_argument("--classifier", required=True,
                        help="sex-clf or age-model checkpoint folder")
    parser.add_argument("--gan", required=True, help="GAN checkpoint folder")
    parser.add_argument("--cohort", default=None,
                        help="preset name or path (default: the classifier's training cohort)")
    parser.add_argument("--samples", type=int, default=64, help="number of GAN samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the GAN samples")
    parser.add_argument("--max-real", type=int, default=256,
                        help="cap on held-out real brains (a fixed random subset)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=run_compare)


def run_compare(args) -> int:
    from brainlab.analysis.derived_results import open_checkpoint, real_vs_synthetic
    from brainlab.analysis.real_vs_synthetic import CLASSIFIER_TYPES
    from brainlab.checkpoints import load_checkpoint, read_card
    from brainlab.data import load
    from brainlab.data.progress import tqdm_progress

    if args.samples < 2:
        raise BrainlabInputError(f"--samples must be >= 2; found {args.samples}")
    card = read_card(args.classifier)
    if card.get("model_type") not in CLASSIFIER_TYPES:
        raise BrainlabInputError(
            f"--classifier must be one of {CLASSIFIER_TYPES}; {args.classifier} holds a "
            f"{card.get('model_type')!r}")
    cohort = load(args.cohort or card.get("cohort", {}).get("name", "hcp-ya"))
    classifier, card = load_checkpoint(args.classifier, cohort=cohort)
    gan, gan_card = load_checkpoint(args.gan, cohort=cohort)
    if gan_card["model_type"] not in ("gan", "dcgan-seed"):
        raise BrainlabInputError(
            f"--gan must be a GAN checkpoint; {args.gan} holds a {gan_card['model_type']!r}")
    progress, close = tqdm_progress("compare")
    try:
        result = real_vs_synthetic(cohort, open_checkpoint(args.classifier, model=classifier),
                                   open_checkpoint(args.gan, model=gan), n_samples=args.samples,
                                   seed=args.seed, max_real=args.max_real, progress=progress)
    finally:
        close()
    summary = dict(result["summary"], cohort=cohort.name, classifier=str(args.classifier),
                   gan=str(args.gan))
    if args.json:
        print(json.dumps(summary, indent=2, default=float))
        return 0
    width = max(len(key) for key in summary)
    for key, value in summary.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    return 0
