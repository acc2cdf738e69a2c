"""``python -m brainlab <command>``: the command line, one module per command group.

Each module in ``brainlab.cli`` exposes ``register(subparsers)``, adding its
subcommands with ``set_defaults(run=function)``; ``function(args)`` returns an
exit code. User errors (``BrainlabInputError``) print one clear line, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from brainlab.errors import BrainlabInputError

COMMAND_MODULES = ("cohort", "train", "evaluate", "explore", "compare", "bench", "jobs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m brainlab",
        description="Explore generative models of brain MRI on the command line.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"brainlab.cli.{name}")
        except ModuleNotFoundError as missing:
            if missing.name != f"brainlab.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except BrainlabInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
