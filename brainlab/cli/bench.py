"""``python -m brainlab bench {cohort,models,explorer}``: speed as ratios, same process."""

from __future__ import annotations

import importlib
import json

TARGETS = {
    "cohort": "brainlab.bench.cohort",
    "models": "brainlab.bench.models",
    "explorer": "brainlab.bench.explorer",
    "app": "brainlab.bench.app",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure speed (cold/warm cohort, model throughput, explorer)")
    parser.add_argument("target", choices=sorted(TARGETS), help="what to measure")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.add_argument("--cold", action="store_true",
                        help="app: also time the first page with an empty cache")
    parser.add_argument("--idle-seconds", type=float, default=60.0,
                        help="app: how long to measure the idle server's CPU (default 60)")
    parser.set_defaults(run=run_bench)


def run_bench(args) -> int:
    module = importlib.import_module(TARGETS[args.target])
    options = {"cold": args.cold, "idle_seconds": args.idle_seconds} if args.target == "app" else {}
    result = module.run(**options)
    print(json.dumps(result, indent=2, default=str) if args.json else module.format_report(result))
    return 0
