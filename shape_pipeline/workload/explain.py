"""Run a workload with `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` and keep only each plan's shape.

Each query is prepared once (`PREPARE`) and executed, for each rank, with the entity at the rank
and its neighbours (`parameters.NEIGHBOURS`; the rank's plan is the one most of them get), with
arguments read from
transaction-local settings (`parameters`), under `plan_cache_mode = force_custom_plan`: every
execution is planned with the values as literals, as the app's own statements are. The plan
JSON (whose conditions do hold those literals) is reduced at once by `reduce_plan`, which
builds each node from an allow-list: node and join types, strategies, relation and index names
(schema metadata), rows and shared blocks rounded up to two significant digits. Conditions,
filters, outputs, aliases, sort and group keys never reach the result.

Everything runs inside a savepoint that is rolled back at the end, so the caller's transaction
keeps its settings and no chosen value outlives the call; prepared statements are deallocated.
"""

from __future__ import annotations

import json
import math
import statistics
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shape_pipeline.contracts import PlanNode, QueryPlan, WorkloadPlans
from shape_pipeline.db import is_postgres
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.mapping import SchemaMapping
from shape_pipeline.sampling import privacy
from shape_pipeline.workload.parameters import (
    CENTRE,
    NEIGHBOURS,
    ChosenParameters,
    check_time_columns,
    choose_parameters,
    execute_verbatim,
    failure_reason,
)
from shape_pipeline.workload.render import RenderedQuery, render_query
from shape_pipeline.workload.spec import (
    DEFAULT_RUNS,
    MEMBER_PARTS,
    RankedParameter,
    TimeParameter,
    Workload,
    WorkloadQuery,
)

STATEMENT = "shape_pipeline_workload"  # the prepared statement's name (deallocated after each query)
EXPLAIN = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE"
# Plan keys copied as text: enumerations of the planner, or catalog names (schema metadata).
_TEXT_KEYS = {
    "join_type": "Join Type",
    "strategy": "Strategy",
    "partial_mode": "Partial Mode",
    "scan_direction": "Scan Direction",
    "parent_relationship": "Parent Relationship",
    "relation": "Relation Name",
    "index": "Index Name",
}


def round_up_2sig(x: float) -> int:
    """A count rounded up to two significant digits (the sampler's rounding): 14_213 -> 15_000."""
    return int(math.ceil(privacy.round_up_2sig(float(x)))) if x > 0 else 0


def round_2sig(x: float) -> float:
    """A time rounded to two significant digits: 0.01234 -> 0.012."""
    return float(f"{x:.2g}")


def _blocks(node: dict[str, Any]) -> float:
    return float(node.get("Shared Hit Blocks", 0) or 0) + float(node.get("Shared Read Blocks", 0) or 0)


def reduce_plan(plan_json: dict[str, Any]) -> PlanNode:
    """The allow-listed shape of one EXPLAIN JSON "Plan": built key by key, never copied, so
    an expression or constant cannot slip through. Rows are actual rows x loops."""
    rows = float(plan_json.get("Actual Rows", 0) or 0) * float(plan_json.get("Actual Loops", 0) or 0)
    text = {field: plan_json.get(key) for field, key in _TEXT_KEYS.items()}
    return PlanNode(
        node_type=str(plan_json["Node Type"]),
        **{field: str(value) for field, value in text.items() if value is not None},
        rows=round_up_2sig(rows),
        shared_blocks=round_up_2sig(_blocks(plan_json)),
        children=[reduce_plan(child) for child in plan_json.get("Plans", [])],
    )


def _declarations(query: WorkloadQuery) -> dict[str, tuple[RankedParameter | TimeParameter, str | None]]:
    """`:name` in SQL -> (its parameter, the part of a member pair or None)."""
    out: dict[str, tuple[RankedParameter | TimeParameter, str | None]] = {}
    for name, param in query.params.items():
        if isinstance(param, RankedParameter) and param.entity == "member":
            for part, sql_name in zip(MEMBER_PARTS, param.sql_names(name), strict=True):
                out[sql_name] = (param, part)
        else:
            out[name] = (param, None)
    return out


def _parameter_types(conn: sa.Connection) -> list[str]:
    return list(
        conn.execute(
            sa.text(
                "SELECT t::text FROM pg_prepared_statements, unnest(parameter_types) WITH ORDINALITY AS p(t, i) "
                "WHERE name = :name ORDER BY i"
            ),
            {"name": STATEMENT},
        ).scalars()
    )


def _explain_once(conn: sa.Connection, arguments: list[str]) -> tuple[dict[str, Any], float]:
    call = f"{EXPLAIN} {STATEMENT}" + (f"({', '.join(arguments)})" if arguments else "")
    result = execute_verbatim(conn, call).scalar_one()
    document = json.loads(result) if isinstance(result, str) else result
    return document[0]["Plan"], float(document[0]["Execution Time"])


def _explain(conn: sa.Connection, arguments: list[str], runs: int) -> tuple[PlanNode, list[float]]:
    """Run one entity's statement `runs` times: the shape of the last run and every time."""
    times: list[float] = []
    plan: dict[str, Any] = {}
    for _ in range(runs):
        plan, ms = _explain_once(conn, arguments)
        times.append(ms)
    shape = reduce_plan(plan)
    del plan  # the raw plan holds the parameter values as literals
    return shape, times


def typical_plan(found: list[tuple[PlanNode, list[float]]]) -> QueryPlan:
    """The plan most of a rank's entities get (ties: the earliest found, the centre first), as
    the run with the median blocks among them; median time over their runs."""
    keys = [shape.shape_key() for shape, _ in found]
    modal = max(keys, key=lambda k: (keys.count(k), -keys.index(k)))
    same = sorted((f for f, k in zip(found, keys, strict=True) if k == modal), key=lambda f: f[0].shared_blocks)
    shape = same[(len(same) - 1) // 2][0]
    times = [t for _, ts in same for t in ts]
    return QueryPlan(
        plan=shape,
        shared_blocks=shape.shared_blocks,
        median_ms=round_2sig(statistics.median(times)),
        runs=sum(len(ts) for _, ts in found),
    )


def _centre_first() -> list[int]:
    """Neighbour indexes, the entity exactly at the rank first (it wins ties)."""
    return [CENTRE, *(n for n in range(NEIGHBOURS) if n != CENTRE)]


def _explain_query(
    conn: sa.Connection,
    name: str,
    query: WorkloadQuery,
    rendered: RenderedQuery,
    chosen: ChosenParameters,
    runs: int,
) -> dict[str, QueryPlan]:
    """Every rank of one query; ranks without a chosen entity are left out."""
    declared = _declarations(query)
    plans: dict[str, QueryPlan] = {}
    step = "preparing"
    prepared = failed = False
    try:
        with conn.begin_nested():  # a failure rolls back to here, so DEALLOCATE can still run
            execute_verbatim(conn, f"PREPARE {STATEMENT} AS {rendered.sql}")
            prepared = True
            types = _parameter_types(conn)
            ranked = any(isinstance(param, RankedParameter) for param, _ in declared.values())
            for rank in query.ranks():
                step = rank
                found = []
                for neighbour in _centre_first() if ranked else [CENTRE]:
                    arguments = [
                        chosen.argument(*declared[sql_name], rank, ptype, neighbour)
                        for sql_name, ptype in zip(rendered.params, types, strict=True)
                    ]
                    if all(a is not None for a in arguments):
                        found.append(_explain(conn, [str(a) for a in arguments], runs))
                if found:
                    plans[rank] = typical_plan(found)
    except sa.exc.DBAPIError as exc:
        failed = True
        where = "failed while preparing" if step == "preparing" else f"({step}) failed"
        raise ShapePipelineError(f"workload query '{name}' {where}: {failure_reason(exc)}") from None
    finally:
        if prepared:
            try:
                execute_verbatim(conn, f"DEALLOCATE {STATEMENT}")
            except sa.exc.DBAPIError:
                if not failed:
                    raise
    return plans


def run_workload(
    conn: sa.Connection,
    workload: Workload,
    mapping: SchemaMapping,
    *,
    window_end: datetime | None = None,
    runs: int = DEFAULT_RUNS,
) -> WorkloadPlans:
    """Plans of every (query, rank) of `workload` on the PostgreSQL database behind `conn`.

    `conn` is inside a transaction the caller controls (read-only, snapshot, statement
    timeout); its planner settings should be the server's defaults. `window_end=None`: the
    latest message time in the database. Python never holds a parameter value except inside
    the raw EXPLAIN output, which is reduced at once. Raises `ShapePipelineError` naming the
    query and rank (never a value) when a statement fails.
    """
    if not is_postgres(conn):
        raise ShapePipelineError(
            f"the workload needs PostgreSQL (plans come from EXPLAIN ANALYZE); this database is {conn.dialect.name}"
        )
    if runs < 1:
        raise ShapePipelineError(f"runs must be at least 1, got {runs}")
    preparer = conn.dialect.identifier_preparer
    rendered = {name: render_query(name, q.sql, mapping, preparer) for name, q in workload.queries.items()}
    check_time_columns(workload, mapping)
    queries: dict[str, dict[str, QueryPlan]] = {}
    savepoint = conn.begin_nested()  # rolled back at the end: settings and chosen values vanish
    try:
        execute_verbatim(conn, "SET LOCAL plan_cache_mode = force_custom_plan")
        chosen = choose_parameters(conn, workload, mapping, window_end)
        for name, query in workload.queries.items():
            plans = _explain_query(conn, name, query, rendered[name], chosen, runs)
            if plans:
                queries[name] = plans
    finally:
        savepoint.rollback()
    return WorkloadPlans(workload=workload.name, workload_sha256=workload.fingerprint(), queries=queries)
