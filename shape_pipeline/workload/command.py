"""`shape-pipeline workload`: run a workload on one database, or two, and print the plans.

For index tuning: add an index on the synthetic database, run the workload against it and
production's copy (or two synthetic variants) and see which plans change. Each database is
read in one read-only transaction under a statement timeout, as the sampler reads. The
comparison is informational (exit 0) unless `--strict`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shape_pipeline import settings
from shape_pipeline.argtypes import positive_int
from shape_pipeline.conventions import DEFAULT_STATEMENT_TIMEOUT_MS
from shape_pipeline.workload.spec import DEFAULT_RUNS

if TYPE_CHECKING:
    from shape_pipeline.console import Reporter
    from shape_pipeline.contracts import WorkloadPlans
    from shape_pipeline.mapping import SchemaMapping
    from shape_pipeline.workload.compare import PlanComparison
    from shape_pipeline.workload.spec import Workload

TAG = "Workload"


def iso_datetime(value: str) -> datetime:
    """An ISO 8601 date or time (UTC unless it says otherwise)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time like 2025-06-01T00:00:00Z, got '{value}'"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "workload",
        help="run a workload's queries with EXPLAIN ANALYZE and print their plans (two databases: compare them)",
        description=(
            "Runs every (query, rank) of a workload with EXPLAIN (ANALYZE, BUFFERS) in a read-only "
            "transaction and prints each plan's shape; with --compare-url, runs it on a second "
            "database too and prints which plans differ. PostgreSQL only."
        ),
    )
    parser.add_argument("--database-url", required=True, help="the database to run the workload on (PostgreSQL)")
    parser.add_argument("--compare-url", help="a second database to run it on and compare with")
    parser.add_argument("--workload", help="workload YAML (default: the packaged workload for the canonical schema)")
    parser.add_argument("--mapping", help="schema mapping YAML of --database-url (default: canonical schema)")
    parser.add_argument("--compare-mapping", help="schema mapping YAML of --compare-url (default: --mapping)")
    parser.add_argument(
        "--window-end",
        type=iso_datetime,
        help="the time 'window_end' parameters take, ISO 8601 (default: each database's latest message)",
    )
    parser.add_argument(
        "--runs",
        type=positive_int,
        default=DEFAULT_RUNS,
        help=f"EXPLAIN ANALYZE runs per (query, rank); the median time is shown (default {DEFAULT_RUNS})",
    )
    parser.add_argument(
        "--max-log2-ratio",
        type=float,
        default=None,
        help="rows and blocks count as close within this |log2 ratio| (default 0.5)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a compared pair is not within")
    parser.add_argument(
        "--statement-timeout-ms",
        type=positive_int,
        default=int(os.environ.get(settings.STATEMENT_TIMEOUT_MS) or DEFAULT_STATEMENT_TIMEOUT_MS),
        help=f"PostgreSQL statement_timeout per query (default {DEFAULT_STATEMENT_TIMEOUT_MS})",
    )
    parser.add_argument("--output", help="write the plans (and the comparison) to this JSON file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shape_pipeline.console import Reporter
    from shape_pipeline.errors import ShapePipelineError
    from shape_pipeline.files import check_writable, write_text_atomic
    from shape_pipeline.mapping import load_mapping
    from shape_pipeline.workload import compare
    from shape_pipeline.workload.spec import load_workload

    if args.strict and not args.compare_url:
        raise ShapePipelineError("--strict: needs --compare-url (a second database to compare with)")
    limit = compare.check_log2_ratio(
        compare.DEFAULT_MAX_LOG2_RATIO if args.max_log2_ratio is None else args.max_log2_ratio,
        option="--max-log2-ratio",
    )
    workload = load_workload(args.workload)
    mapping = load_mapping(args.mapping)
    compare_mapping = load_mapping(args.compare_mapping) if args.compare_mapping else mapping
    if args.output:
        check_writable(args.output, option="--output")

    report = Reporter(TAG)
    report.header("WORKLOAD PLANS")
    report.line(
        f"workload {workload.name}: {len(workload.queries)} queries, {len(workload.pairs())} (query, rank) pairs, "
        f"{args.runs} run{'' if args.runs == 1 else 's'} each"
    )
    plans = _run_on(args.database_url, "--database-url", workload, mapping, args, report)
    document: dict[str, object] = {"plans": plans.model_dump(mode="json")}
    exit_code = 0
    if args.compare_url:
        other = _run_on(args.compare_url, "--compare-url", workload, compare_mapping, args, report)
        comparison = compare.compare_plans(plans, other, max_log2_ratio=limit)
        report.blank()
        report.header("PLAN COMPARISON")
        for line in compare.comparison_lines(comparison):
            report.line(line, tag="Compare")
        document["compare_plans"] = other.model_dump(mode="json")
        document["comparison"] = _comparison_json(comparison)
        if args.strict and comparison.differing:
            exit_code = 1
    if args.output:
        text = json.dumps(document if args.compare_url else document["plans"], indent=2) + "\n"
        written = write_text_atomic(args.output, text)
        report.ok(f"wrote {written}")
    return exit_code


def _run_on(
    url: str, option: str, workload: Workload, mapping: SchemaMapping, args: argparse.Namespace, report: Reporter
) -> WorkloadPlans:
    """The workload's plans on one database, printed as they come."""
    import sqlalchemy as sa

    from shape_pipeline.db import (
        check_connection,
        create_engine,
        is_postgres,
        parse_url,
        read_only_snapshot,
        redact,
    )
    from shape_pipeline.errors import DatabaseError, ShapePipelineError
    from shape_pipeline.mapping import reflect_tables
    from shape_pipeline.workload.compare import plan_lines
    from shape_pipeline.workload.explain import run_workload
    from shape_pipeline.workload.parameters import failure_reason

    parsed = parse_url(url, option=option)
    if not is_postgres(parsed):
        raise ShapePipelineError(
            f"{option}: the workload needs PostgreSQL (plans come from EXPLAIN ANALYZE); the database is "
            f"{parsed.get_backend_name()}"
        )
    report.blank()
    report.line(f"database {redact(url)}")
    engine = create_engine(parsed, option=option, poolclass=sa.pool.NullPool)
    try:
        check_connection(engine)
        with read_only_snapshot(engine, statement_timeout_ms=args.statement_timeout_ms) as conn:
            reflect_tables(conn, mapping)
            plans = run_workload(conn, workload, mapping, window_end=args.window_end, runs=args.runs)
    except ShapePipelineError as exc:
        raise type(exc)(f"{option}: {exc}", exit_code=exc.exit_code) from None
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(f"{option}: {redact(url)}: {failure_reason(exc)}") from None
    finally:
        engine.dispose()
    for name, ranks in plans.queries.items():
        for rank, plan in ranks.items():
            report.line(f"{name} ({rank}): {plan.median_ms:g} ms, {plan.shared_blocks:,} shared blocks")
            for line in plan_lines(plan.plan):
                report.detail(line)
    ran = sum(len(r) for r in plans.queries.values())
    left_out = len(workload.pairs()) - ran
    report.ok(f"{ran} plans")
    if left_out:
        report.warn(f"{left_out} (query, rank) pairs left out: no entity at their rank (empty tables?)")
    return plans


def _comparison_json(comparison: PlanComparison) -> dict[str, object]:
    """The comparison's pairs and summary numbers as plain JSON."""
    return {
        **dataclasses.asdict(comparison),
        "same_shape_share": comparison.same_shape_share,
        "within_share": comparison.within_share,
        "median_blocks_log2": comparison.median_blocks_log2,
    }
