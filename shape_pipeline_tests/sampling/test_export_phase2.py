"""sample_to_file's Phase 2 blocks: layout on every PostgreSQL extraction, workload checks up front."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from shape_pipeline.contracts import ShapeMetrics
from shape_pipeline.db import create_engine
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.mapping import CANONICAL_MAPPING
from shape_pipeline.sampling.export import sample_to_file
from shape_pipeline.sampling.phase2 import read_phase2
from shape_pipeline.workload.spec import load_workload
from shape_pipeline_tests.sampling.conftest import SALT

NOW = datetime(2025, 2, 3, 14, 30, tzinfo=UTC)
WORKLOAD = """\
name: {name}
queries:
  {query}:
    sql: SELECT count(*) FROM {{messages}}
"""


def sample(url: str, tmp_path: Path, **kwargs) -> ShapeMetrics:
    result = sample_to_file(
        url,
        output=tmp_path / "shape.json",
        as_of="2025-01-31",
        min_cell_count=1,
        force_min_cell_count=True,
        salt=SALT,
        audit_log=tmp_path / "audit.jsonl",
        now=NOW,
        **kwargs,
    )
    return result.shape


def workload_file(tmp_path: Path, name: str = "app-queries", query: str = "count_all") -> Path:
    path = tmp_path / "workload.yaml"
    path.write_text(WORKLOAD.format(name=name, query=query), encoding="utf-8")
    return path


def test_physical_layout_on_postgres_without_a_workload_and_none_on_sqlite(
    canonical_pg: str, canonical_sqlite: str, tmp_path: Path
) -> None:
    shape = sample(canonical_pg, tmp_path / "pg")
    assert shape.query_plans is None
    assert sorted(shape.physical_layout.tables) == ["conversations", "members", "messages", "users"]
    assert shape.physical_layout.tables["users"].ids.kind == "integer"
    lite = sample(canonical_sqlite, tmp_path / "lite")
    assert lite.physical_layout is None and lite.query_plans is None


def test_an_own_workload_file_runs_and_is_fingerprinted(canonical_pg: str, tmp_path: Path, capsys) -> None:
    path = workload_file(tmp_path)
    shape = sample(canonical_pg, tmp_path, workload_path=path, workload_runs=1)
    plans = shape.query_plans
    assert plans.workload == "app-queries" and plans.workload_sha256 == load_workload(path).fingerprint()
    [(query, ranks)] = plans.queries.items()
    assert query == "count_all" and list(ranks) == ["all"] and ranks["all"].runs == 1
    assert "Query plans: 1 (query, rank) pairs of workload app-queries, 1 runs each" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "query", "message"),
    [
        ("my workload", "count_all", "name: not exportable"),
        ("app-queries", "q_0123456789abcdef0123", "a query name is not exportable"),
    ],
)
def test_a_workload_the_audit_would_refuse_stops_before_the_database(
    tmp_path: Path, name: str, query: str, message: str
) -> None:
    path = workload_file(tmp_path, name, query)
    with pytest.raises(ShapePipelineError) as err:  # an unreachable database: never connected
        sample("postgresql://nobody@127.0.0.1:1/none", tmp_path, workload_path=path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert query not in str(err.value) and "my workload" not in str(err.value)
    assert not (tmp_path / "shape.json").exists() and not (tmp_path / "audit.jsonl").exists()


def test_a_workload_needs_postgres(canonical_sqlite: str, tmp_path: Path) -> None:
    with pytest.raises(ShapePipelineError, match="--workload: query plans need PostgreSQL"):
        sample(canonical_sqlite, tmp_path, workload_path="default")
    assert not (tmp_path / "audit.jsonl").exists()


def test_a_missing_workload_file_is_one_line(canonical_pg: str, tmp_path: Path) -> None:
    with pytest.raises(ShapePipelineError) as err:
        sample(canonical_pg, tmp_path, workload_path=tmp_path / "nope.yaml")
    assert "nope.yaml" in str(err.value) and "\n" not in str(err.value)


def test_the_workload_sees_the_servers_planner_defaults(canonical_pg: str) -> None:
    """The sampler sets jit and work_mem for its own aggregates; the workload's transaction must not."""
    engine = create_engine(canonical_pg, poolclass=sa.pool.NullPool)
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(f"{statement} {parameters}")

    sa.event.listen(engine, "after_cursor_execute", record)
    try:
        phase2 = read_phase2(
            engine,
            CANONICAL_MAPPING,
            workload=load_workload(None),
            window_end=NOW,
            statement_timeout_ms=60_000,
            runs=1,
            where="test",
        )
    finally:
        engine.dispose()
    assert phase2.query_plans is not None and phase2.physical_layout is not None
    settings = [s for s in seen if "set_config" in s or s.lstrip().upper().startswith("SET ")]
    assert any("statement_timeout" in s and "60000" in s for s in settings)  # bounded, as the sampler
    assert not any(word in s for s in settings for word in ("jit", "work_mem", "TimeZone"))
