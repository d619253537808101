"""Canaries through `sample --workload default` and the production asset: plans leave, values don't.

A simulated production (canonical schema) gets distinctive values: every id is a 13-digit
number no exported figure could equal (users, conversations and messages each with their own
offset), the busiest senders carry canary usernames and e-mail addresses, and the busiest
conversations' messages carry canary text. The workload picks its p99/p50/p10 entities from
exactly these rows, so any id, constant or text that escaped the plan reduction would show up
in the shape file, the console, the log records, the audit log or the Dagster run.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

import shape_pipeline.cli as cli
from chat_simulator import World, build_world
from shape_pipeline.contracts import ShapeMetrics
from shape_pipeline.db import create_engine
from shape_pipeline.locations import production
from shape_pipeline.locations.resources import ProductionSource
from shape_pipeline.workload.parameters import NEIGHBOURS

END = datetime(2025, 6, 2, tzinfo=UTC)
SALT = "plan-privacy-salt-0123456789-abcdefghijklmnop"
OFFSETS = {"users": 4_812_000_000_000, "conversations": 7_305_000_000_000, "messages": 6_120_000_000_000}
CANARY_USER = "zqxcanaryuser"
CANARY_EMAIL_DOMAIN = "@zqx-canary.example.org"
CANARY_CONTENT = "ZQX secret canary message text"
CANARIES = (CANARY_USER, CANARY_EMAIL_DOMAIN, CANARY_CONTENT, "zqx", "ZQX")
PLANTED = 20  # busiest senders and conversations that carry canaries


def _shifted(table: pa.Table, columns: dict[str, int]) -> pa.Table:
    for column, offset in columns.items():
        index = table.column_names.index(column)
        table = table.set_column(index, column, pc.add(table[column], pa.scalar(offset, pa.int64())))
    return table


def _busiest(column: pa.ChunkedArray, n: int) -> set[int]:
    counts = pc.value_counts(column).to_pylist()
    return {c["values"] for c in sorted(counts, key=lambda c: -c["counts"])[:n]}


def _with_canaries(world: World) -> World:
    t = dict(world.tables)
    u, c, m = OFFSETS["users"], OFFSETS["conversations"], OFFSETS["messages"]
    t["users"] = _shifted(t["users"], {"id": u})
    t["conversations"] = _shifted(t["conversations"], {"id": c})
    t["conversation_members"] = _shifted(t["conversation_members"], {"conversation_id": c, "user_id": u})
    t["messages"] = _shifted(t["messages"], {"id": m, "conversation_id": c, "sender_id": u})
    senders = _busiest(t["messages"]["sender_id"], PLANTED)
    users = t["users"]
    ids = users["id"].to_pylist()
    names = [
        f"{CANARY_USER}{i}" if i in senders else v for i, v in zip(ids, users["username"].to_pylist(), strict=True)
    ]
    mails = [
        f"u{n}{CANARY_EMAIL_DOMAIN}" if i in senders else v
        for n, (i, v) in enumerate(zip(ids, users["email"].to_pylist(), strict=True))
    ]
    users = users.set_column(users.column_names.index("username"), "username", pa.array(names, pa.string()))
    t["users"] = users.set_column(users.column_names.index("email"), "email", pa.array(mails, pa.string()))
    rooms = pa.array(sorted(_busiest(t["messages"]["conversation_id"], PLANTED)), pa.int64())
    messages = t["messages"]
    content = pc.if_else(pc.is_in(messages["conversation_id"], rooms), CANARY_CONTENT, messages["content"])
    t["messages"] = messages.set_column(messages.column_names.index("content"), "content", content)
    return World(world.schema, world.logical, t)


@pytest.fixture(scope="module")
def canary_world(make_pg_database: Callable[[str], str]) -> tuple[str, set[str]]:
    """(URL of the planted production, every id in it as text)."""
    world = _with_canaries(build_world("canonical", 20_000, "plan-privacy", END))
    url = make_pg_database("plan_privacy")
    world.load(url)
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
            assert (
                conn.execute(sa.text("SELECT count(*) FROM users WHERE username LIKE 'zqx%'")).scalar_one() == PLANTED
            )
    finally:
        engine.dispose()
    ids = {str(v) for name in ("users", "conversations", "messages") for v in world.tables[name]["id"].to_pylist()}
    return url, ids


def assert_nothing_escaped(text: str, ids: set[str]) -> None:
    for canary in CANARIES:
        assert canary not in text, canary
    runs = set(re.findall(r"\d{10,}", text.replace(",", "").replace("_", "")))
    assert not runs & ids, "an id reached the output"


def assert_plans_and_layout(shape: ShapeMetrics) -> None:
    plans = shape.query_plans
    assert plans is not None and plans.workload == "default-chat" and len(plans.workload_sha256) == 64
    assert sum(len(ranks) for ranks in plans.queries.values()) == 16
    assert {"p99", "p50", "p10"} <= set(plans.queries["latest_messages"])
    layout = shape.physical_layout
    assert layout is not None and sorted(layout.tables) == ["conversations", "members", "messages", "users"]
    assert layout.tables["messages"].columns["created_at"].correlation == 1.0  # the world is written in time order
    assert layout.tables["messages"].ids.kind == "integer"


def test_sample_with_the_default_workload_through_the_cli(
    canary_world, tmp_path: Path, capsys, caplog, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ids = canary_world
    with pytest.raises(AssertionError, match="an id reached"):  # the check itself can fail
        assert_nothing_escaped(f"rows 50 of {max(ids)}", ids)
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ANONYMIZATION_SALT", SALT)
    monkeypatch.delenv("SHAPE_PIPELINE_EXPORT_DIR", raising=False)
    out, log = tmp_path / "shape.json", tmp_path / "audit.jsonl"
    code = cli.main(
        [
            "sample",
            "--database-url",
            url,
            "--as-of",
            END.date().isoformat(),
            "--output",
            str(out),
            "--audit-log",
            str(log),
            "--workload",
            "default",
            "--workload-runs",
            "2",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "Query plans: 16 (query, rank) pairs of workload default-chat, 2 runs each" in printed.out
    assert "Physical layout: 4 tables" in printed.out
    shape = ShapeMetrics.model_validate_json(out.read_text())
    assert_plans_and_layout(shape)
    # two runs per entity: the ranked entity and its neighbours, or the one unranked statement
    runs = {name: {plan.runs for plan in ranks.values()} for name, ranks in shape.query_plans.queries.items()}
    assert runs.pop("busiest_conversations") == {2} and all(r == {2 * NEIGHBOURS} for r in runs.values())
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["workload"] == "default-chat" and entry["workload_sha256"] == shape.query_plans.workload_sha256
    assert entry["query_plan_pairs"] == 16 and entry["physical_layout_tables"] == 4
    assert_nothing_escaped(out.read_text() + printed.out + printed.err + caplog.text + log.read_text(), ids)


def test_the_production_asset_with_the_default_workload(canary_world, tmp_path: Path, caplog) -> None:
    url, ids = canary_world
    caplog.set_level(logging.DEBUG)
    resource = ProductionSource(
        database_url=url, salt=SALT, export_dir=str(tmp_path / "exchange"), audit_log=str(tmp_path / "audit.jsonl")
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [production.shape_metrics, production.export_audit_check],
            resources={"production": resource},
            run_config=dg.RunConfig(
                {
                    "shape_metrics": production.ShapeMetricsConfig(
                        as_of=END.date().isoformat(), workload_path="default", workload_runs=1
                    )
                }
            ),
            instance=instance,
        )
        assert result.success
        [evaluation] = result.get_asset_check_evaluations()
        assert evaluation.passed
        [mat] = result.asset_materializations_for_node("shape_metrics")
        meta = {k: v.value for k, v in mat.metadata.items()}
        events = "\n".join(dg.serialize_value(entry) for entry in instance.all_logs(result.run_id))
    assert meta["query_plan_pairs"] == 16 and meta["physical_layout_tables"] == 4
    path = Path(meta["path"])
    assert_plans_and_layout(ShapeMetrics.model_validate_json(path.read_text()))
    assert "Query plans: 16 (query, rank) pairs" in events
    shown = json.dumps({k: str(v) for k, v in meta.items()}) + events + caplog.text + path.read_text()
    assert_nothing_escaped(shown, ids)
    assert SALT not in shown
