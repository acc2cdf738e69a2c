"""``python -m brainlab <command>``: the command line, one module per command group.

Each module in ``brainlab.cli`` exposes ``register(subparsers)``, adding its
subcommands with ``set_defaults(run=function)``; ``function(args)`` returns an
exit code. User errors (``BrainlabInputError``) print one clear line, no traceback.
A command module listed in ``COMMAND_MODULES`` that is missing is a broken install:
it stops the CLI with a clear message and exit code 1, never silently drops commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from brainlab.errors import BrainlabInputError

COMMAND_MODULES = ("cohort", "train", "evaluate", "explore", "generate", "compare", "bench",
                   "jobs", "warm", "tour")


class MissingCommandModule(RuntimeError):
    """A module in ``COMMAND_MODULES`` cannot be found (a broken or partial install)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command group's subcommands."""
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
            raise MissingCommandModule(
                f"command module brainlab.cli.{name} is missing; expected one module per "
                f"command group ({', '.join(COMMAND_MODULES)}) in brainlab/cli/") from None
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    try:
        parser = build_parser()
    except MissingCommandModule as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except BrainlabInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
