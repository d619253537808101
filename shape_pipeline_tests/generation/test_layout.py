"""Physical layout like production's (issue 11): rows in insert order, ids in the app's format,
the canonical indexes, VACUUM (ANALYZE) after the load; on a real PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from chat_simulator import schema as world_schema
from shape_pipeline.calibration.calibrate import calibrate, id_formats
from shape_pipeline.console import silent
from shape_pipeline.contracts import IdFormat, PhysicalLayout, ShapeMetrics, TableLayout
from shape_pipeline.db import create_engine
from shape_pipeline.errors import DatabaseError
from shape_pipeline.files import load_json_model
from shape_pipeline.generation.generate import generate_dataset
from shape_pipeline_tests.generation.test_targets import query

MESSAGES = 100_000
Z_BASE32 = "^[ybndrfg8ejkmcpqxot1uwisza345h769]{26}$"
SEED_SHAPE = Path(__file__).resolve().parents[2] / "shape_pipeline" / "examples" / "shape-metrics-seed.json"


def correlation(url: str, table: str, column: str) -> float:
    found = query(url, "SELECT correlation FROM pg_stats WHERE tablename = :t AND attname = :c", t=table, c=column)
    assert found, f"no pg_stats for {table}.{column}: the load must ANALYZE"
    return float(found[0][0])


@pytest.fixture(scope="module")
def canonical(config, make_pg_database, tmp_path_factory):
    url = make_pg_database("layout")
    parquet = tmp_path_factory.mktemp("layout_parquet")
    lines: list[str] = []
    result = generate_dataset(
        config,
        target_messages=MESSAGES,
        seed="layout",
        database_url=url,
        parquet_dir=parquet,
        chunk_messages=20_000,
        emit=lines.append,
    )
    return url, parquet, result, lines


def test_rows_lie_in_time_order_interleaved_across_conversations(canonical):
    url, _, _, lines = canonical
    assert any(line.strip().endswith("Analyzing tables...") for line in lines)
    assert abs(correlation(url, "messages", "conversation_id")) < 0.3
    assert correlation(url, "messages", "created_at") > 0.9
    assert correlation(url, "conversation_members", "joined_at") > 0.9
    assert correlation(url, "conversations", "created_at") > 0.9
    assert correlation(url, "users", "created_at") > 0.9
    assert correlation(url, "users", "id") > 0.9  # user ids follow sign-up times, as a sequence would
    # message ids are numbered in created_at order, as the app's sequence numbers them
    assert query(
        url,
        """SELECT count(*) FROM (SELECT created_at, lag(created_at) OVER (ORDER BY id) prev
        FROM messages) s WHERE created_at < prev""",
    ) == [(0,)]
    assert query(url, "SELECT min(id), max(id), count(DISTINCT id) FROM messages") == [(1, MESSAGES, MESSAGES)]
    # on disk in time order (a short row may fill an earlier page's free space, as in production)
    steps_back = query(
        url,
        """SELECT count(*) FROM (SELECT created_at, lag(created_at) OVER (ORDER BY ctid) prev
        FROM messages) s WHERE created_at < prev""",
    )[0][0]
    assert steps_back < 0.02 * MESSAGES


def test_the_load_is_vacuumed_and_has_the_app_indexes(canonical):
    url, _, _, lines = canonical
    indexes = {name for (name,) in query(url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    assert {"ix_messages_conversation_created", "ix_messages_sender", "ix_conversation_members_user"} <= indexes
    vacuumed = query(
        url,
        """SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL
        AND last_analyze IS NOT NULL""",
    )
    assert {name for (name,) in vacuumed} == {"users", "conversations", "conversation_members", "messages"}
    pages, visible = query(url, "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'messages'")[0]
    assert pages > 0 and visible == pages  # index-only scans need no heap visit, as in production
    assert query(url, "SELECT count(*) FROM pg_class WHERE relname LIKE 'sp_stage_%'") == [(0,)]
    assert any("Ids: users sequential, conversations sequential, messages sequential" in line for line in lines)


def sorted_digest(rows: list[tuple]) -> str:
    """A checksum of the rows whatever their order (NULLs included)."""
    return hashlib.sha256("\n".join(sorted(repr(tuple(row)) for row in rows)).encode()).hexdigest()


def test_same_rows_as_generated_apart_from_order(canonical):
    """The database holds the very rows the generator made for the seed (its Parquet output
    from the same run); only their order, and the message ids numbered in that order, differ."""
    url, parquet, result, _ = canonical
    columns = {
        "users": ("id", "username", "email", "created_at"),
        "conversations": ("id", "type", "name", "created_at"),
        "members": ("conversation_id", "user_id", "joined_at"),
        "messages": ("conversation_id", "sender_id", "type", "content", "created_at"),
    }
    tables = {"members": "conversation_members"}
    for entity, names in columns.items():
        table = ds.dataset(Path(parquet) / entity, format="parquet").to_table(columns=list(names))
        values = [pc.cast(table[n], "int64") if n.endswith("_at") else table[n] for n in names]
        generated = list(zip(*(v.to_pylist() for v in values), strict=True))
        selected = ", ".join(f"(extract(epoch FROM {n}) * 1000000)::bigint" if n.endswith("_at") else n for n in names)
        loaded = query(url, f"SELECT {selected} FROM {tables.get(entity, entity)}")
        assert len(loaded) == len(generated) == result.rows[entity]
        assert sorted_digest(loaded) == sorted_digest(generated), entity
    # and not in generation order (conversation by conversation): the first pages hold many conversations
    first = query(
        url,
        "SELECT count(DISTINCT conversation_id) FROM (SELECT conversation_id FROM messages ORDER BY ctid LIMIT 1000) s",
    )
    assert first[0][0] > 20


def test_every_table_lies_exactly_in_time_then_key_order(canonical):
    """On disk (ctid order) each table holds the generated rows sorted by (time, key), the order
    the app's inserts give; message ids are 1, 2, ... in that order."""
    url, parquet, _, _ = canonical
    orders = {
        "users": ("users", ("created_at", "id"), ("id", "username", "created_at")),
        "conversations": ("conversations", ("created_at", "id"), ("id", "type", "created_at")),
        "members": (
            "conversation_members",
            ("joined_at", "conversation_id", "user_id"),
            ("conversation_id", "user_id", "joined_at"),
        ),
        "messages": ("messages", ("created_at", "id"), ("conversation_id", "sender_id", "content", "created_at")),
    }
    for entity, (table, keys, names) in orders.items():
        generated = ds.dataset(Path(parquet) / entity, format="parquet").to_table()
        expected = generated.sort_by([(k, "ascending") for k in keys]).select(list(names))
        expected = [tuple(row.values()) for row in expected.to_pylist()]
        loaded = query(url, f"SELECT {', '.join(names)} FROM {table} ORDER BY ctid")
        assert [tuple(row) for row in loaded] == expected, entity
    ids = [i for (i,) in query(url, "SELECT id FROM messages ORDER BY ctid")]
    assert ids == list(range(1, MESSAGES + 1))


def test_an_error_in_the_final_step_leaves_no_table(config, make_pg_database):
    url = make_pg_database("layout_atomic")
    engine = create_engine(url)
    with engine.begin() as conn:  # the app's users table, empty, with a rule every generated user breaks
        conn.exec_driver_sql("""CREATE TABLE users (id bigint PRIMARY KEY, username varchar(64) NOT NULL UNIQUE,
            email varchar(255) NOT NULL UNIQUE, display_name varchar(128), avatar_url text, bio text,
            created_at timestamptz NOT NULL CHECK (created_at > now()))""")
    engine.dispose()
    with pytest.raises(DatabaseError) as caught:
        generate_dataset(config, target_messages=5_000, seed="atomic", database_url=url, emit=silent)
    message = str(caught.value)
    assert "users" in message and "time order" in message and "\n" not in message
    tables = {name for (name,) in query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"users"}
    assert query(url, "SELECT count(*) FROM users") == [(0,)]


def empty_world_schema(url: str, name: str, mapping: Path, extra: dict[str, str] | None = None) -> Path:
    """The simulator's schema `name`, empty, and its mapping with `extra` lines after each entity's id."""
    chosen = world_schema(name)
    engine = create_engine(url)
    chosen.metadata().create_all(engine)
    engine.dispose()
    text = chosen.mapping_yaml or ""
    for entity, lines in (extra or {}).items():
        head = f"{entity}:\n  table:"
        assert head in text
        text = text.replace(head, f"{entity}:\n{lines}  table:")
    mapping.write_text(text)
    return mapping


def test_mattermost_varchar26_ids_are_random_26_character_ids_consistent_across_tables(
    config, make_pg_database, tmp_path
):
    url = make_pg_database("layout_mm")
    mapping = empty_world_schema(url, "mattermost", tmp_path / "mapping.yaml")
    result = generate_dataset(
        config, target_messages=20_000, seed="mm", database_url=url, mapping_path=mapping, emit=silent
    )
    for table in ("Users", "Channels", "Posts"):
        rows, distinct, bad = query(
            url,
            f"""SELECT count(*), count(DISTINCT "Id"), count(*) FILTER (WHERE "Id" !~ '{Z_BASE32}')
            FROM "{table}" """,
        )[0]
        assert rows == distinct > 0 and bad == 0, table
    assert query(url, 'SELECT count(*) FROM "Posts"')[0][0] == result.rows["messages"] == 20_000
    # references: the same id for a user (a channel) in every table
    assert query(
        url,
        """SELECT count(*) FROM "Posts" p LEFT JOIN "ChannelMembers" m
        ON m."ChannelId" = p."ChannelId" AND m."UserId" = p."UserId" WHERE m."UserId" IS NULL""",
    ) == [(0,)]
    assert query(
        url,
        """SELECT count(*) FROM "ChannelMembers" m LEFT JOIN "Users" u ON u."Id" = m."UserId"
        LEFT JOIN "Channels" c ON c."Id" = m."ChannelId" WHERE u."Id" IS NULL OR c."Id" IS NULL""",
    ) == [(0,)]
    assert query(url, 'SELECT count(DISTINCT "ChannelId") FROM "ChannelMembers"')[0][0] == result.rows["conversations"]
    assert correlation(url, "Posts", "CreateAt") > 0.9
    assert abs(correlation(url, "Posts", "ChannelId")) < 0.3
    assert abs(correlation(url, "Posts", "Id")) < 0.3  # random ids scatter new posts over the id index


def test_uuid7_from_the_mapping_follows_creation_time_everywhere(config, make_pg_database, tmp_path):
    url = make_pg_database("layout_uuid7")
    line = "  id_format: uuid7\n"
    mapping = empty_world_schema(
        url, "slack", tmp_path / "mapping.yaml", {"users": line, "conversations": line, "messages": line}
    )
    generate_dataset(config, target_messages=20_000, seed="v7", database_url=url, mapping_path=mapping, emit=silent)
    for table, time in (("accounts", "created"), ("channels", "created"), ("messages", "sent_at")):
        assert query(
            url,
            f"""SELECT count(*) FROM (SELECT {time} t, lag({time}) OVER (ORDER BY id) prev,
            id::text i FROM {table}) s WHERE date_trunc('milliseconds', t) < date_trunc('milliseconds', prev)
            OR substr(i, 15, 1) <> '7'""",
        ) == [(0,)], table
    assert query(
        url,
        """SELECT count(*) FROM messages m LEFT JOIN channel_members c ON c.channel = m.channel
        AND c.account = m.author LEFT JOIN accounts a ON a.id = m.author WHERE c.account IS NULL OR a.id IS NULL""",
    ) == [(0,)]
    assert correlation(url, "messages", "id") > 0.9  # time-ordered ids append to the id index


def test_production_id_formats_reach_the_generator_through_calibration(make_pg_database, tmp_path):
    shape = load_json_model(SEED_SHAPE, ShapeMetrics, what="shape metrics")
    layout = PhysicalLayout(
        tables={
            "users": TableLayout(ids=IdFormat(kind="uuid", uuid_version=4, time_ordered=False)),
            "messages": TableLayout(ids=IdFormat(kind="text", length=26, alphabet="base32", time_ordered=True)),
            "members": TableLayout(rows_per_page=120.0),
        }
    )
    assert id_formats(shape) == {}
    config = calibrate(shape.model_copy(update={"physical_layout": layout}), now=datetime(2025, 10, 22, tzinfo=UTC))
    assert config.id_formats == {"users": layout.tables["users"].ids, "messages": layout.tables["messages"].ids}
    url = make_pg_database("layout_prod_ids")
    mapping = empty_world_schema(url, "mattermost", tmp_path / "mapping.yaml")
    result = generate_dataset(
        config, target_messages=10_000, seed="prod-ids", database_url=url, mapping_path=mapping, emit=silent
    )
    # messages: production's time-ordered 26-character ids; users: UUIDs do not fit varchar(26)
    assert query(
        url,
        """SELECT count(*) FROM (SELECT "CreateAt" t, lag("CreateAt") OVER (ORDER BY "Id" COLLATE "C") prev
        FROM "Posts") s WHERE t < prev""",
    ) == [(0,)]
    assert query(url, f"""SELECT count(*) FROM "Users" WHERE "Id" !~ '{Z_BASE32}'""") == [(0,)]
    assert any(w.startswith("users ids: production's UUIDv4 ids do not fit") for w in result.warnings)
    assert np.isclose(abs(correlation(url, "Posts", "Id")), 1.0, atol=0.1)
