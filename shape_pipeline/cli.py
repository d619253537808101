"""`shape-pipeline sample|calibrate|generate|validate|demo`: thin shells over the library.

Each step's package owns its subcommand (`<package>/command.py`: `register(subparsers)` adds a
parser whose `handler(args) -> int` runs the step). Errors of the user's input or environment
print one line on stderr and exit non-zero; no traceback. SIGTERM is turned into an exception
(as Ctrl-C already is) so every clean-up runs: Parquet staging removed, transactions rolled back.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

from shape_pipeline import __version__
from shape_pipeline.errors import ShapePipelineError

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception: a KeyboardInterrupt, so whatever cleans up after Ctrl-C (every
    `finally`, `except KeyboardInterrupt`) cleans up after `kill` too."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` in the main thread; the old handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


COMMAND_MODULES: tuple[str, ...] = (
    "shape_pipeline.sampling.command",
    "shape_pipeline.calibration.command",
    "shape_pipeline.generation.command",
    "shape_pipeline.fidelity.command",
    "shape_pipeline.demo.command",
    "shape_pipeline.workload.command",
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
        with sigterm_raises():
            return int(args.handler(args) or 0)
    except ShapePipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("error: terminated; nothing was written", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
