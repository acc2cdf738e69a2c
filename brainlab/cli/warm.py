"""``python -m brainlab warm [--cohort SOURCE] [--json]``: fill the result store.

Computes every derived result the pages show by default (latents, PCA/UMAP maps,
probe tables, reconstructions, GAN samples, real-vs-synthetic comparisons,
directions, edit curves, evaluations) for the checkpoints that fit the cohort,
with a progress bar, skipping what is already stored. Afterwards a fresh server
finds them on disk (``brainlab.analysis.derived_results``).
"""

from __future__ import annotations

import json
import time


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "warm", help="compute the derived results the app shows, once, into the result store",
        description="Compute every derived result the pages show for the checkpoints that "
                    "fit the cohort; what is already in the store is skipped.")
    parser.add_argument("--cohort", default="hcp-ya", help="preset name or path")
    parser.add_argument("--no-evaluations", action="store_true",
                        help="skip re-evaluating each checkpoint (the slowest items)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=run_warm)


def run_warm(args) -> int:
    from brainlab.analysis.derived_results import warm, warm_plan
    from brainlab.data import load
    from brainlab.data.progress import tqdm_progress
    from brainlab.result_store import default_store

    began = time.perf_counter()
    cohort = load(args.cohort)
    plan = warm_plan(cohort, evaluations=not args.no_evaluations)
    progress, close = tqdm_progress(f"warm {cohort.name}")
    try:
        summary = warm(cohort, progress=progress, plan=plan)
    finally:
        close()
    summary.update(cohort=cohort.name, fingerprint=cohort.fingerprint, items=len(plan),
                   seconds=round(time.perf_counter() - began, 2),
                   store=str(default_store().root))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"warm {cohort.name}: {len(summary['computed'])} computed, "
              f"{len(summary['hits'])} already stored, {len(summary['failed'])} failed "
              f"({summary['seconds']:.1f} s; store {summary['store']})")
        for label, message in summary["failed"].items():
            print(f"  failed {label}: {message}")
    return 1 if summary["failed"] else 0
