"""`shape-pipeline sample|calibrate|generate|validate|demo`: thin shells over the library.

Each step's package owns its subcommand (`<package>/command.py`: `register(subparsers)` adds a
parser whose `handler(args) -> int` runs the step). Errors of the user's input or environment
print one line on stderr and exit non-zero; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from shape_pipeline import __version__
from shape_pipeline.errors import ShapePipelineError

COMMAND_MODULES: tuple[str, ...] = (
    "shape_pipeline.sampling.command",
    "shape_pipeline.calibration.command",
    "shape_pipeline.generation.command",
    "shape_pipeline.fidelity.command",
    "shape_pipeline.demo.command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shape-pipeline",
        description="Production-shaped synthetic chat data from aggregate shapes only.",
    )
    parser.add_argument("--version", action="version", version=f"shape-pipeline {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ShapePipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
