"""What only a synthetic PostgreSQL database can tell: its plans for the shape's workload and how
its rows lie on disk, read the way the sampler read production's.

The workload runs with the shape's window end (so "the last 7 days" are the same days), inside a
read-only transaction on a fresh connection (a connection pool could hand over one whose planner
settings another caller changed), with the server's default planner settings; the layout comes
from `pg_class` and `pg_stats` as the last ANALYZE left them (the generator ends with VACUUM
ANALYZE; the validator never writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from shape_pipeline.contracts import PhysicalLayout, ShapeMetrics, WorkloadPlans
from shape_pipeline.db import create_engine, is_postgres, parse_url, read_only_snapshot
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.mapping import SchemaMapping, reflect_tables
from shape_pipeline.sampling.physical import read_physical_layout
from shape_pipeline.workload.explain import run_workload
from shape_pipeline.workload.spec import Workload, default_workload_path, load_workload

NOT_POSTGRES = "the synthetic source is {what}: plans and physical layout need a PostgreSQL database"


@dataclass(frozen=True)
class DatabaseFindings:
    """The synthetic side of the Phase 2 tests; `unavailable` says why there is none."""

    plans: WorkloadPlans | None = None
    layout: PhysicalLayout | None = None
    workload: Workload | None = None  # what the plans ran (its parameters' roles guide the advice)
    unavailable: str | None = None


def parquet_findings() -> DatabaseFindings:
    return DatabaseFindings(unavailable=NOT_POSTGRES.format(what="a Parquet folder"))


def wants_database(shape: ShapeMetrics, database_url: str | None) -> bool:
    """True when the shape has Phase 2 blocks and the synthetic source is PostgreSQL."""
    if database_url is None or (shape.query_plans is None and shape.physical_layout is None):
        return False
    return is_postgres(parse_url(database_url))


def workload_for_shape(shape: ShapeMetrics, workload_path: str | Path | None) -> Workload | None:
    """The workload the shape's plans were made with (None when the shape has no plans); a file
    whose fingerprint differs is refused in one line naming it."""
    if shape.query_plans is None:
        return None
    workload = load_workload(workload_path)
    expected = shape.query_plans.workload_sha256
    if workload.fingerprint() != expected:
        file = workload_path if workload_path else f"{default_workload_path()} (the default workload)"
        raise ShapePipelineError(
            f"--workload {file}: workload '{workload.name}' (sha256 {workload.fingerprint()[:12]}) is not the "
            f"one the shape's plans were made with ('{shape.query_plans.workload}', sha256 {expected[:12]}); "
            "pass the file given to sample --workload"
        )
    return workload


def read_database_findings(
    database_url: str,
    mapping: SchemaMapping,
    *,
    workload: Workload | None,
    want_layout: bool,
    window_end: datetime,
    statement_timeout_ms: int | None = None,
) -> DatabaseFindings:
    """Run `workload` (when given) and read the layout (when `want_layout`) on the database."""
    engine = create_engine(database_url, must_exist=True, poolclass=sa.pool.NullPool)
    try:
        if not is_postgres(engine):
            return DatabaseFindings(unavailable=NOT_POSTGRES.format(what=f"a {engine.dialect.name} database"))
        layout = plans = None
        if want_layout:
            with read_only_snapshot(engine, statement_timeout_ms=statement_timeout_ms) as conn:
                layout = read_physical_layout(conn, mapping, reflect_tables(conn, mapping))
        if workload is not None:
            with read_only_snapshot(engine, statement_timeout_ms=statement_timeout_ms) as conn:
                plans = run_workload(conn, workload, mapping, window_end=window_end)
        return DatabaseFindings(plans=plans, layout=layout, workload=workload)
    finally:
        engine.dispose()
