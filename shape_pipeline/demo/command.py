"""The `demo` subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path

from shape_pipeline.argtypes import positive_int
from shape_pipeline.demo.production_data import DEFAULT_PRODUCTION_MESSAGES
from shape_pipeline.privacy.defaults import DEMO_PRIVACY, PRIVACY_MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run sample -> calibrate -> generate -> validate end to end on embedded SQLite",
        description=(
            "Build a fake production chat database, then run every step of the pipeline on it "
            "and print the verdict and where every file is. No services or variables needed."
        ),
    )
    parser.add_argument("--workdir", type=Path, help="where databases and files go (default: .shape-pipeline/demo)")
    parser.add_argument("--prod-url", help="run on this (empty) PostgreSQL database as the fake production")
    parser.add_argument("--dev-url", help="load the synthetic dataset into this database")
    parser.add_argument(
        "--messages",
        type=positive_int,
        default=DEFAULT_PRODUCTION_MESSAGES,
        help=f"messages in the fake production and in the synthetic dataset (default {DEFAULT_PRODUCTION_MESSAGES:,})",
    )
    parser.add_argument(
        "--privacy",
        choices=PRIVACY_MODES,
        default=DEMO_PRIVACY,
        help=f"privacy mode of the sampling step (default {DEMO_PRIVACY}: the fake production holds nobody; "
        "dp shows what differential privacy costs at this size, see the README)",
    )
    parser.add_argument("--replace", action="store_true", help="empty non-empty --prod-url/--dev-url targets first")
    parser.add_argument(
        "--prepare-production",
        action="store_true",
        help="only build the fake production database at --prod-url (used by the Dagster demo mode)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.prepare_production:
        from shape_pipeline.demo.production_data import build_demo_production
        from shape_pipeline.errors import ShapePipelineError

        if not args.prod_url:
            raise ShapePipelineError("--prepare-production needs --prod-url")
        build_demo_production(args.prod_url, messages=args.messages, replace=True)
        return 0
    from shape_pipeline.demo.run import run_demo

    result = run_demo(
        args.workdir,
        prod_url=args.prod_url,
        dev_url=args.dev_url,
        messages=args.messages,
        replace=args.replace,
        privacy=args.privacy,
    )
    return 1 if result.verdict == "FAIL" else 0
