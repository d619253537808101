"""Each schema loads into PostgreSQL with its physical quirks; the canonical one also into SQLite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from chat_simulator import SCHEMAS, TargetNotEmpty, World, build_world
from shape_pipeline.db import create_engine

END = datetime(2025, 6, 2, tzinfo=UTC)
START_MS, END_MS = int(datetime(2025, 4, 21, tzinfo=UTC).timestamp() * 1000), int(END.timestamp() * 1000)


@pytest.fixture(scope="module")
def worlds() -> dict[str, World]:
    return {schema: build_world(schema, 8_000, "load", END) for schema in SCHEMAS}


def scalar(url: str, sql: str) -> object:
    engine = create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql)).scalar_one()
    engine.dispose()
    return value


def loaded(make_pg_database: Callable[[str], str], world: World) -> str:
    url = make_pg_database(f"world_{world.schema.name}")
    counts = world.load(url)
    assert counts == {name: rows.num_rows for name, rows in world.tables.items()}
    for name, rows in world.tables.items():
        assert scalar(url, f'SELECT count(*) FROM "{name}"') == rows.num_rows
    return url


def test_canonical_world_in_postgresql(make_pg_database, worlds) -> None:
    url = loaded(make_pg_database, worlds["canonical"])
    assert scalar(url, "SELECT count(*) FROM messages WHERE type = 'SYSTEM'") > 0
    assert scalar(url, "SELECT count(DISTINCT type) FROM messages") == 6
    assert scalar(url, "SELECT count(*) FROM users WHERE bio = ''") > 0
    assert scalar(url, "SELECT count(*) FROM users WHERE bio IS NULL") > 0
    assert scalar(url, "SELECT count(*) FROM pg_indexes WHERE tablename = 'messages'") >= 3
    assert (
        scalar(url, "SELECT count(*) FROM information_schema.table_constraints WHERE constraint_type = 'FOREIGN KEY'")
        == 4
    )


def test_mattermost_world_in_postgresql(make_pg_database, worlds) -> None:
    url = loaded(make_pg_database, worlds["mattermost"])
    assert scalar(url, """SELECT count(*) FROM "Posts" WHERE length("Id") <> 26 OR "Id" !~ '^[a-z0-9]+$'""") == 0
    assert (
        scalar(
            url,
            """SELECT character_maximum_length FROM information_schema.columns
                          WHERE table_name = 'Users' AND column_name = 'Id'""",
        )
        == 26
    )
    assert scalar(url, f'SELECT count(*) FROM "Posts" WHERE "CreateAt" < {START_MS} OR "CreateAt" >= {END_MS}') == 0
    assert scalar(url, 'SELECT count(*) FROM "Users" WHERE "Nickname" IS NULL') == 0
    assert scalar(url, """SELECT count(*) FROM "Users" WHERE "Nickname" = ''""") > 0
    assert (
        scalar(
            url,
            """SELECT is_nullable || column_default FROM information_schema.columns
                          WHERE table_name = 'Users' AND column_name = 'FirstName'""",
        )
        == "NO''::character varying"
    )
    assert scalar(url, 'SELECT count(*) FROM "Posts" WHERE "DeleteAt" > 0') > 0
    assert scalar(url, 'SELECT count(*) FROM "Posts" WHERE "EditAt" > "CreateAt"') > 0
    assert scalar(url, 'SELECT count(*) FROM "Users" WHERE "DeleteAt" > 0') > 0
    assert scalar(url, """SELECT count(*) FROM "Posts" WHERE "Type" LIKE 'system_%'""") > 0
    assert scalar(url, """SELECT count(*) FROM "Posts" WHERE "FileIds" <> '[]'""") > 0
    # notes to self: a direct channel with one member, named after that member twice
    assert (
        scalar(
            url,
            """SELECT count(*) FROM "Channels" c WHERE "Type" = 'D' AND "Name" = (
                            SELECT m."UserId" || '__' || m."UserId" FROM "ChannelMembers" m
                            WHERE m."ChannelId" = c."Id" LIMIT 1)""",
        )
        > 0
    )


def test_slack_world_in_postgresql(make_pg_database, worlds) -> None:
    url = loaded(make_pg_database, worlds["slack"])
    assert (
        scalar(
            url, "SELECT data_type FROM information_schema.columns WHERE table_name = 'messages' AND column_name = 'id'"
        )
        == "uuid"
    )
    assert (
        scalar(
            url,
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'messages' AND column_name = 'sent_at'",
        )
        == "timestamp with time zone"
    )
    assert scalar(url, "SELECT count(*) FROM messages WHERE subtype IS NULL") > 0
    assert scalar(url, "SELECT count(*) FROM messages WHERE subtype = 'channel_join'") > 0
    assert scalar(url, "SELECT count(*) FROM messages WHERE jsonb_typeof(attachments) = 'array'") > 0
    assert scalar(url, "SELECT count(DISTINCT kind) FROM channels") == 4
    assert (
        scalar(
            url,
            "SELECT column_default FROM information_schema.columns "
            "WHERE table_name = 'accounts' AND column_name = 'tz'",
        )
        == "'UTC'::text"
    )
    assert scalar(url, "SELECT count(*) FROM accounts WHERE real_name = ''") > 0
    assert scalar(url, "SELECT count(*) FROM accounts WHERE real_name IS NULL") > 0


def test_a_loaded_schema_is_refused_unless_replaced(make_pg_database) -> None:
    url = make_pg_database("world_again")
    first = build_world("mattermost", 400, "again", END)
    first.load(url)
    with pytest.raises(TargetNotEmpty):
        build_world("mattermost", 600, "again2", END).load(url)
    assert scalar(url, 'SELECT count(*) FROM "Posts"') == 400
    build_world("mattermost", 600, "again2", END).load(url, replace=True)
    assert scalar(url, 'SELECT count(*) FROM "Posts"') == 600


def rows(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    md = sa.MetaData()
    with engine.connect() as conn:
        table = sa.Table(sql, md, autoload_with=conn)
        found = conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
    engine.dispose()
    return [
        tuple(
            v.astimezone(UTC)
            if isinstance(v, datetime) and v.tzinfo
            else v.replace(tzinfo=UTC)
            if isinstance(v, datetime)
            else v
            for v in row
        )
        for row in found
    ]


def test_canonical_world_in_sqlite_is_the_same_as_in_postgresql(make_pg_database, tmp_path: Path) -> None:
    world = build_world("canonical", 3_000, "both", END)
    pg = make_pg_database("world_both")
    lite = f"sqlite:///{tmp_path / 'world.db'}"
    world.load(pg)
    world.load(lite)
    for table in world.tables:
        assert rows(pg, table) == rows(lite, table), table
    with pytest.raises(ValueError, match="slack schema loads into postgresql, not sqlite"):
        build_world("slack", 300, "both", END).load(f"sqlite:///{tmp_path / 'slack.db'}")


def correlation(url: str, table: str, column: str) -> float:
    value = scalar(url, f"SELECT correlation FROM pg_stats WHERE tablename = '{table}' AND attname = '{column}'")
    assert value is not None, f"no pg_stats for {table}.{column}: the load must ANALYZE"
    return float(value)


def test_a_world_loads_in_the_apps_insert_order_and_is_analyzed(make_pg_database, worlds) -> None:
    """Rows lie on disk as an app inserting them as they happen leaves them, and statistics are
    there, as autovacuum keeps production; the logical world keeps its own order."""
    world = worlds["mattermost"]
    url = loaded(make_pg_database, world)
    assert correlation(url, "Users", "CreateAt") > 0.95
    assert correlation(url, "Channels", "CreateAt") > 0.95
    assert correlation(url, "ChannelMembers", "LastUpdateAt") > 0.95  # joined time
    assert correlation(url, "Posts", "CreateAt") > 0.95
    assert abs(correlation(url, "Posts", "ChannelId")) < 0.3
    assert (
        scalar(
            url,
            """SELECT count(*) FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL
                          AND last_analyze IS NOT NULL""",
        )
        == 4
    )
    members = world.logical.members
    keys = list(zip(members["conversation_id"].to_pylist(), members["user_id"].to_pylist(), strict=True))
    assert keys == sorted(keys)  # the ground truth is still sorted by (conversation, user)
    physical = world.tables["ChannelMembers"]["LastUpdateAt"].to_pylist()
    assert physical == sorted(physical)
    conversations = world.logical.conversations["id"].to_pylist()
    assert conversations == list(range(len(conversations)))  # logical ids are row positions, as before
