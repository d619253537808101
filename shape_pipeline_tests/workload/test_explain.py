"""Running a workload on real PostgreSQL: parameters chosen by rank inside the database, plans
reduced to their shape, nothing of a value reaching Python's results, failures named by query."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

from shape_pipeline.db import create_engine, read_only_snapshot
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.mapping import CANONICAL_MAPPING, canonical_metadata
from shape_pipeline.workload.explain import reduce_plan, round_up_2sig, run_workload
from shape_pipeline.workload.parameters import NEIGHBOURS, choose_parameters, rank_setting
from shape_pipeline.workload.spec import Workload, load_workload
from shape_pipeline_tests.workload.conftest import END, LoadedWorld

CANARY = "CANARY-TEXT-5e1f"


def workload_of(queries: dict[str, Any]) -> Workload:
    return Workload.model_validate({"name": "test", "queries": queries})


@pytest.fixture()
def engine_for() -> Iterator[Any]:
    engines: list[sa.Engine] = []

    def make(url: str) -> sa.Engine:
        engines.append(create_engine(url, poolclass=sa.pool.NullPool))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def root_rows(plans: Any, query: str, rank: str) -> int:
    return plans.queries[query][rank].plan.rows


@pytest.mark.parametrize("world_name", ["canonical_world", "mattermost_world", "slack_world"])
def test_default_workload_runs_on_every_simulated_schema(request, engine_for, world_name: str) -> None:
    loaded: LoadedWorld = request.getfixturevalue(world_name)
    workload = load_workload(None)
    with read_only_snapshot(engine_for(loaded.url), statement_timeout_ms=60_000) as conn:
        plans = run_workload(conn, workload, loaded.mapping, runs=2)
        # the caller's transaction is usable and as it was: settings back, nothing prepared, no value kept
        assert conn.execute(sa.text("SHOW plan_cache_mode")).scalar_one() == "auto"
        assert conn.execute(sa.text("SELECT count(*) FROM pg_prepared_statements")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT current_setting('shape_pipeline.window_end', true)")).scalar_one() in (
            None,
            "",
        )
    assert plans.workload == "default-chat" and plans.workload_sha256 == workload.fingerprint()
    assert [(q, r) for q, ranks in plans.queries.items() for r in ranks] == workload.pairs()
    # two runs per entity: the entity at the rank and its neighbours for ranked queries, one entity otherwise
    assert {p.runs for p in plans.queries["latest_messages"].values()} == {2 * NEIGHBOURS}
    assert plans.queries["busiest_conversations"]["all"].runs == 2
    assert all(p.median_ms >= 0 for ranks in plans.queries.values() for p in ranks.values())
    # the hot entity's plan reads more than the quiet one's (ranks pick entities of the right size)
    for query in ("latest_messages", "sender_messages", "member_messages", "user_conversations"):
        assert plans.queries[query]["p99"].shared_blocks > plans.queries[query]["p10"].shared_blocks, query
    assert root_rows(plans, "latest_messages", "p99") == 50 > root_rows(plans, "latest_messages", "p10")
    assert root_rows(plans, "member_messages", "p99") > root_rows(plans, "member_messages", "p10")
    # time parameters took the column's unit (epoch ms on Mattermost): last week's messages were found
    assert root_rows(plans, "busiest_conversations", "all") == 20


def expected_rank_ids(keys: pa.Table, counted: pa.ChunkedArray, ranks: list[int]) -> list[Any]:
    """The entity at each rank, computed in Python from the world's rows: entities with at least
    one counted row, ascending count, ties by id."""
    counts = {row["values"]: row["counts"] for row in pc.value_counts(counted).to_pylist()}
    ids = [i for i in keys.column(0).to_pylist() if i in counts]
    ordered = sorted(ids, key=lambda i: (counts[i], i))
    return [ordered[(p * (len(ordered) - 1)) // 100] for p in ranks]


def test_ranks_are_positions_in_the_count_order(canonical_world: LoadedWorld, engine_for) -> None:
    tables = canonical_world.world.tables
    workload = load_workload(None)
    expected = {
        ("conversation", "messages"): expected_rank_ids(
            tables["conversations"].select(["id"]), tables["messages"]["conversation_id"], [99, 50, 10]
        ),
        ("user", "messages_sent"): expected_rank_ids(
            tables["users"].select(["id"]), tables["messages"]["sender_id"], [99, 50, 10]
        ),
        ("user", "conversations"): expected_rank_ids(
            tables["users"].select(["id"]), tables["conversation_members"]["user_id"], [99, 50, 10]
        ),
    }
    with read_only_snapshot(engine_for(canonical_world.url)) as conn:
        chosen = choose_parameters(conn, workload, CANONICAL_MAPPING, None)
        for (entity, by), ids in expected.items():
            for rank, expected_id in zip(["p99", "p50", "p10"], ids, strict=True):
                setting = rank_setting(entity, by, rank)
                assert setting in chosen.available
                value = conn.execute(sa.text("SELECT current_setting(:s)"), {"s": setting}).scalar_one()
                assert int(value) == expected_id, (entity, by, rank)
        pair = [
            conn.execute(
                sa.text("SELECT current_setting(:s)"), {"s": rank_setting("member", "messages", "p99", part)}
            ).scalar_one()
            for part in ("conversation", "user")
        ]
        latest = conn.execute(
            sa.text("SELECT to_timestamp(current_setting('shape_pipeline.window_end')::numeric)")
        ).scalar_one()
        assert latest == conn.execute(sa.text("SELECT max(created_at) FROM messages")).scalar_one()
    members = tables["conversation_members"]
    messages = tables["messages"]
    sent: dict[tuple[int, int], int] = {}
    for key in zip(messages["conversation_id"].to_pylist(), messages["sender_id"].to_pylist(), strict=True):
        sent[key] = sent.get(key, 0) + 1
    keys = [
        k for k in zip(members["conversation_id"].to_pylist(), members["user_id"].to_pylist(), strict=True) if k in sent
    ]
    ordered = sorted(keys, key=lambda k: (sent[k], k))
    assert (int(pair[0]), int(pair[1])) == ordered[(99 * (len(ordered) - 1)) // 100]


class RecordingCursor(psycopg.Cursor):
    """Every row Python fetches, with the first column's name (EXPLAIN's is 'QUERY PLAN')."""

    fetched: list[tuple[str, tuple[Any, ...]]] = []

    def _record(self, rows: list[Any]) -> list[Any]:
        column = self.description[0].name if self.description else ""
        RecordingCursor.fetched.extend((column, tuple(row)) for row in rows)
        return rows

    def fetchone(self):  # type: ignore[override]
        row = super().fetchone()
        if row is not None:
            self._record([row])
        return row

    def fetchmany(self, size: int = 0):  # type: ignore[override]
        return self._record(super().fetchmany(size))

    def fetchall(self):  # type: ignore[override]
        return self._record(super().fetchall())


def test_python_never_receives_a_parameter_value(mattermost_world: LoadedWorld) -> None:
    engine = create_engine(mattermost_world.url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        ids = set(conn.execute(sa.text('SELECT "Id" FROM "Channels" UNION ALL SELECT "Id" FROM "Users"')).scalars())
        latest_ms = conn.execute(sa.text('SELECT max("CreateAt") FROM "Posts"')).scalar_one()
    sa.event.listen(engine, "connect", lambda dbapi_conn, _: setattr(dbapi_conn, "cursor_factory", RecordingCursor))
    RecordingCursor.fetched = []
    with read_only_snapshot(engine) as conn:
        plans = run_workload(conn, load_workload(None), mattermost_world.mapping, runs=1)
    engine.dispose()
    assert len(plans.queries) == 6
    explained = [row for column, row in RecordingCursor.fetched if column == "QUERY PLAN"]
    others = [value for column, row in RecordingCursor.fetched if column != "QUERY PLAN" for value in row]
    assert len(explained) == 15 * NEIGHBOURS + 1 and others  # 15 ranked pairs x their entities, 1 unranked
    raw = json.dumps([row[0] for row in explained])
    assert any(i in raw for i in ids)  # the raw plans do hold the ids (so the recording would catch a leak)...
    for value in others:  # ...but nothing else Python fetched is an id or the latest time
        assert isinstance(value, bool | str), value
        assert value not in ids and str(latest_ms) not in str(value)
    assert not any(i in plans.model_dump_json() for i in ids)


def test_reduced_plans_hold_no_expression_or_constant(canonical_world: LoadedWorld, engine_for) -> None:
    workload = workload_of(
        {
            "canary": {
                "sql": f"SELECT count(*) FROM messages m JOIN users u ON u.id = m.sender_id "
                f"WHERE m.content <> '{CANARY}' AND m.conversation_id = :conversation AND u.username <> 'CANARY-USER'",
                "params": {"conversation": {"entity": "conversation", "by": "messages", "at": ["p99"]}},
            },
        }
    )
    with read_only_snapshot(engine_for(canonical_world.url)) as conn:
        plans = run_workload(conn, workload, CANONICAL_MAPPING, runs=1)
        raw = conn.execute(
            sa.text(f"EXPLAIN (FORMAT JSON) SELECT count(*) FROM messages m WHERE m.content <> '{CANARY}'")
        ).scalar_one()
    assert CANARY in json.dumps(raw)  # PostgreSQL does show it...
    dumped = plans.model_dump_json()
    assert CANARY not in dumped and "CANARY-USER" not in dumped  # ...the shape never does
    for word in ("Filter", "Cond", "Output", "Alias", '"m"', "content", "username"):
        assert word not in dumped


def test_reduce_plan_builds_nodes_from_the_allow_list_only() -> None:
    plan = {
        "Node Type": "Hash Join",
        "Join Type": "Inner",
        "Parent Relationship": "Outer",
        "Alias": "secret_alias",
        "Hash Cond": "(m.sender_id = 4242)",
        "Actual Rows": 7,
        "Actual Loops": 3,
        "Output": ["'4242'"],
        "Shared Hit Blocks": 1400,
        "Shared Read Blocks": 13,
        "Subplan Name": "SubPlan 4242",
        "CTE Name": "cte_4242",
        "Plans": [
            {
                "Node Type": "Index Scan",
                "Scan Direction": "Backward",
                "Relation Name": "messages",
                "Alias": "m",
                "Index Name": "ix_messages_sender",
                "Index Cond": "(sender_id = 4242)",
                "Filter": "(content <> 'x4242')",
                "Sort Key": ["4242"],
                "Group Key": ["4242"],
                "Recheck Cond": "4242",
                "Actual Rows": 0.5,
                "Actual Loops": 0,
            }
        ],
    }
    node = reduce_plan(plan)
    assert "4242" not in node.model_dump_json() and "secret" not in node.model_dump_json()
    assert (node.node_type, node.join_type, node.parent_relationship) == ("Hash Join", "Inner", "Outer")
    assert node.rows == 21 and node.shared_blocks == 1500  # 7 x 3 loops; 1413 rounded up
    [child] = node.children
    assert (child.relation, child.index, child.scan_direction, child.rows, child.shared_blocks) == (
        "messages",
        "ix_messages_sender",
        "Backward",
        0,
        0,
    )
    assert [round_up_2sig(x) for x in (0, 7, 123, 14_213, 99.5)] == [0, 7, 130, 15_000, 100]


def test_a_failing_query_is_named_without_the_database_message(mattermost_world: LoadedWorld, engine_for) -> None:
    # PostgreSQL's message would quote the value: invalid input syntax for type integer: "x<id>"
    workload = workload_of(
        {
            "fine": {"sql": 'SELECT count(*) FROM "Posts"'},
            "cast": {
                "sql": "SELECT ('x' || :conversation)::integer",
                "params": {"conversation": {"entity": "conversation", "by": "messages", "at": ["p50"]}},
            },
        }
    )
    with read_only_snapshot(engine_for(mattermost_world.url)) as conn:
        with pytest.raises(ShapePipelineError) as caught:
            run_workload(conn, workload, mattermost_world.mapping, runs=1)
        assert conn.execute(sa.text("SELECT count(*) FROM pg_prepared_statements")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1  # the transaction is not left failed
        ids = set(conn.execute(sa.text('SELECT "Id" FROM "Channels"')).scalars())
    message = str(caught.value)
    assert message == "workload query 'cast' (p50) failed: InvalidTextRepresentation (SQLSTATE 22P02)"
    assert not any(i in message for i in ids)
    with read_only_snapshot(engine_for(mattermost_world.url)) as conn:
        with pytest.raises(
            ShapePipelineError, match=r"^workload query 'typo' failed while preparing: SyntaxError \(SQLSTATE 42601\)$"
        ):
            run_workload(conn, workload_of({"typo": {"sql": 'SELEC 1 FROM "Posts"'}}), mattermost_world.mapping)
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_window_end_moves_the_time_parameters(canonical_world: LoadedWorld, engine_for) -> None:
    workload = load_workload(None)
    with read_only_snapshot(engine_for(canonical_world.url)) as conn:
        later = run_workload(conn, workload, CANONICAL_MAPPING, window_end=END + timedelta(days=30), runs=1)
        naive = run_workload(conn, workload, CANONICAL_MAPPING, window_end=END.replace(tzinfo=None), runs=1)
    assert root_rows(later, "busiest_conversations", "all") == 0  # nothing in the week before
    assert root_rows(naive, "busiest_conversations", "all") == 20
    assert (
        root_rows(later, "unread_count", "p99") == 1 and later.queries["unread_count"]["p99"].plan.children[0].rows == 0
    )


def test_empty_tables_leave_pairs_out(make_pg_database, engine_for) -> None:
    url = make_pg_database("workload_empty")
    engine = engine_for(url)
    canonical_metadata().create_all(engine)
    with read_only_snapshot(engine) as conn:
        plans = run_workload(conn, load_workload(None), CANONICAL_MAPPING, runs=1)
    assert plans.queries == {}


def test_sqlite_is_refused_in_one_line(tmp_path: Path, engine_for) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn, pytest.raises(ShapePipelineError, match="^the workload needs PostgreSQL .* sqlite$"):
        run_workload(conn, load_workload(None), CANONICAL_MAPPING)
