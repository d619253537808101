"""`shape-pipeline validate`: the GO/NO-GO gate on the command line.

Exit 0 on PASS or WARNING (1 on WARNING with --strict), 1 on FAIL, 2 on bad input.
"""

from __future__ import annotations

import argparse

from shape_pipeline.conventions import DEFAULT_TOLERANCE
from shape_pipeline.workload.compare import DEFAULT_MAX_LOG2_RATIO


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="compare a synthetic dataset with the production shape (PASS/WARNING/FAIL)",
        description="Extract the synthetic dataset's own shape (same window, same mapping) and "
        "compare it with the production shape file.",
    )
    parser.add_argument("--shape", required=True, metavar="FILE", help="production shape-metrics JSON")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--database-url", metavar="URL", help="the synthetic database")
    source.add_argument("--parquet-dir", metavar="DIR", help="the synthetic Parquet folder")
    parser.add_argument("--mapping", metavar="FILE", help="schema mapping YAML (database only)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"effect-size tolerance (default {DEFAULT_TOLERANCE:g})",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 on WARNING too")
    parser.add_argument("--config", metavar="FILE", help="the calibrated config (for concrete recommendations)")
    parser.add_argument("--output", required=True, metavar="FILE", help="fidelity report JSON")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    parser.add_argument(
        "--workload",
        metavar="FILE",
        help="the workload file the shape's query plans were made with (default: the shipped default workload)",
    )
    parser.add_argument(
        "--plan-log2-ratio",
        type=float,
        default=DEFAULT_MAX_LOG2_RATIO,
        metavar="X",
        help=f"query plans: rows and buffers within |log2 ratio| <= X (default {DEFAULT_MAX_LOG2_RATIO:g})",
    )
    parser.set_defaults(handler=run)


def exit_code(verdict: str, *, strict: bool) -> int:
    if verdict == "FAIL" or (verdict == "WARNING" and strict):
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from shape_pipeline.fidelity.validate import validate_to_files

    report = validate_to_files(
        args.shape,
        args.output,
        database_url=args.database_url,
        mapping_path=args.mapping,
        parquet_dir=args.parquet_dir,
        tolerance=args.tolerance,
        html_path=args.html,
        config_path=args.config,
        workload_path=args.workload,
        plan_log2_ratio=args.plan_log2_ratio,
    )
    return exit_code(report.overall_verdict, strict=args.strict)
