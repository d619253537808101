"""The sampler's Phase 2 reads, inside the boundary: physical layout and the workload's plans.

Both run after the aggregates, each in its own read-only REPEATABLE READ transaction bounded
by the sampler's statement timeout. The workload's transaction gets none of the sampler's
session settings (jit, work_mem): its plans must be the ones the app gets from the server's
defaults. What comes back is already reduced (numbers, schema names, PostgreSQL's plan
words); a failing statement is reported by its SQLSTATE only, since a database message can
quote a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from shape_pipeline.contracts import PhysicalLayout, WorkloadPlans
from shape_pipeline.db import is_postgres, read_only_snapshot
from shape_pipeline.errors import DatabaseError, ShapePipelineError
from shape_pipeline.mapping import SchemaMapping, reflect_tables
from shape_pipeline.sampling.audit import query_name_allowed, workload_name_allowed
from shape_pipeline.sampling.physical import read_physical_layout
from shape_pipeline.workload.explain import run_workload
from shape_pipeline.workload.parameters import failure_reason
from shape_pipeline.workload.spec import DEFAULT_NAME, Workload, load_workload


@dataclass(frozen=True)
class Phase2:
    """What the Phase 2 reads produced (None where not read)."""

    physical_layout: PhysicalLayout | None
    query_plans: WorkloadPlans | None

    @property
    def plan_pairs(self) -> int:
        """(query, rank) pairs with a plan."""
        plans = self.query_plans
        return sum(len(ranks) for ranks in plans.queries.values()) if plans else 0

    @property
    def layout_tables(self) -> int:
        return len(self.physical_layout.tables) if self.physical_layout else 0


def load_export_workload(path: str | Path | None) -> Workload | None:
    """The workload to run (None: none asked), refused before the database is touched when its
    name or a query name could not pass the export audit."""
    if path is None or str(path) == "":
        return None
    default = str(path) == DEFAULT_NAME
    workload = load_workload(path)
    where = "--workload default" if default else f"{path}"
    if not workload_name_allowed(workload.name):
        raise ShapePipelineError(
            f"{where}: name: not exportable in a shape file (letters, digits, - and _, at most 64, "
            "no long hex or digit runs)"
        )
    for name in workload.queries:
        if not query_name_allowed(name):
            raise ShapePipelineError(
                f"{where}: queries: a query name is not exportable in a shape file (letters, digits, "
                "_ . -, at most 63, no long hex or digit runs)"
            )
    return workload


def require_postgres_for_workload(url: sa.URL, workload: Workload | None) -> None:
    if workload is not None and not is_postgres(url):
        raise ShapePipelineError(
            f"--workload: query plans need PostgreSQL (EXPLAIN ANALYZE); the database is {url.get_backend_name()}"
        )


def read_phase2(
    engine: sa.Engine,
    mapping: SchemaMapping,
    *,
    workload: Workload | None,
    window_end: datetime,
    statement_timeout_ms: int | None,
    runs: int,
    where: str,
) -> Phase2:
    """The physical layout (always, on PostgreSQL) and the workload's plans (when given)."""
    if not is_postgres(engine):
        return Phase2(None, None)
    try:
        with read_only_snapshot(engine, statement_timeout_ms=statement_timeout_ms) as conn:
            layout = read_physical_layout(conn, mapping, reflect_tables(conn, mapping))
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(f"physical layout query failed on {where}: {failure_reason(exc)}") from None
    plans = None
    if workload is not None:
        try:
            with read_only_snapshot(engine, statement_timeout_ms=statement_timeout_ms) as conn:
                plans = run_workload(conn, workload, mapping, window_end=window_end, runs=runs)
        except sa.exc.DBAPIError as exc:
            raise DatabaseError(f"workload {workload.name} failed on {where}: {failure_reason(exc)}") from None
    return Phase2(layout, plans)
