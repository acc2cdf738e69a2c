"""``python -m brainlab bench {cohort,models,explorer,app,race}``: speed as ratios in one
process; ``race``: the seed DCGAN vs brainlab's GAN at equal CPU time."""

from __future__ import annotations

import importlib
import json

TARGETS = {
    "cohort": "brainlab.bench.cohort",
    "models": "brainlab.bench.models",
    "explorer": "brainlab.bench.explorer",
    "app": "brainlab.bench.app",
    "race": "brainlab.bench.race",
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
    parser.add_argument("--minutes", type=float,
                        help="race: the seed DCGAN's budget (default: the shipped "
                             "autoencoder's + GAN's training time from their cards)")
    parser.add_argument("--out", help="race: where the seed DCGAN checkpoint goes "
                                      "(default: a temporary folder)")
    parser.set_defaults(run=run_bench)


def run_bench(args) -> int:
    module = importlib.import_module(TARGETS[args.target])
    options = {}
    if args.target == "app":
        options = {"cold": args.cold, "idle_seconds": args.idle_seconds}
    elif args.target == "race":
        options = {"minutes": args.minutes, "out": args.out}
    result = module.run(**options)
    print(json.dumps(result, indent=2, default=str) if args.json else module.format_report(result))
    return 0
