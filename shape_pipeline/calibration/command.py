"""`shape-pipeline calibrate --shape FILE --output FILE` (the seed's `calibrate-generator.ts`)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="fit generator parameters to a shape-metrics file",
        description=(
            "Fit generator parameters to a shape-metrics file and write the calibrated config. "
            "Metrics the shape lacks fall back to documented defaults (listed as warnings)."
        ),
    )
    parser.add_argument("--shape", required=True, metavar="FILE", help="shape-metrics JSON file")
    parser.add_argument("--output", required=True, metavar="FILE", help="calibrated-config JSON to write")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate; a ShapePipelineError (exit 2, one line) leaves no output file behind.

    An --output that cannot be written is refused before the fit and its summary.
    """
    from shape_pipeline.calibration.calibrate import calibrate_file
    from shape_pipeline.files import check_writable

    check_writable(args.output, option="--output")
    calibrate_file(args.shape, args.output)
    return 0
