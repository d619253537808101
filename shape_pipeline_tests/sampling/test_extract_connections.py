"""The extraction's answer does not depend on how its statements are spread over connections.

A generated world (skewed rooms and senders, some senders outside their rooms, senderless
system messages, messages outside the window) is extracted with 1, 2, 3 and 5 connections
sharing one snapshot, and every frequency table must be identical; the DP-bounded extraction
(whose per-message passes read the bounded view once, as a materialized CTE) must equal the
same views extracted one pass at a time. SQLite, which has one connection, gives the same
answer too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from shape_pipeline.mapping import CANONICAL_MAPPING
from shape_pipeline.sampling.bounded import (
    ContributionBound,
    conversations_bounded_per_user,
    extract_bounded,
    messages_bounded_per_sender,
)
from shape_pipeline.sampling.extract import CONTENT, HOURS, ORDERED, PAIRS, extract_frequencies
from shape_pipeline.sampling.frequencies import FrequencyTables
from shape_pipeline_tests.sampling.test_extract import engine_for

START = datetime(2025, 1, 1, 7, 30, tzinfo=UTC)  # not on a whole hour: hours carry their day
END = START + timedelta(days=20)

SCHEMA = """
CREATE TABLE users (id bigint PRIMARY KEY, username varchar(64), email varchar(255), display_name varchar(128),
                    avatar_url text, bio text, created_at timestamptz);
CREATE TABLE conversations (id bigint PRIMARY KEY, type varchar(32), name varchar(255), created_at timestamptz);
CREATE TABLE conversation_members (conversation_id bigint, user_id bigint, joined_at timestamptz,
                                   PRIMARY KEY (conversation_id, user_id));
CREATE TABLE messages (id bigint PRIMARY KEY, conversation_id bigint, sender_id bigint, type varchar(16),
                       content text, created_at timestamptz);
CREATE INDEX ON messages (conversation_id, created_at);
"""

LOAD = """
SELECT setseed(0.17);
INSERT INTO users SELECT g, 'user' || g, 'u' || g || '@example.com', CASE WHEN mod(g, 3) > 0 THEN 'Name' END,
       NULL, CASE WHEN mod(g, 2) = 0 THEN 'bio' END, timestamptz '2024-06-01' + g * interval '1 hour'
FROM generate_series(1, 300) g;
INSERT INTO conversations SELECT g, CASE WHEN mod(g, 4) < 2 THEN 'DIRECT_MESSAGE' WHEN mod(g, 4) = 2 THEN 'GROUP_CHAT' ELSE 'CHANNEL' END,
       'room ' || g, timestamptz '2024-12-01'
FROM generate_series(1, 120) g;
INSERT INTO conversation_members SELECT c.id, 1 + mod(c.id * 37 + k * 101, 300), timestamptz '2024-12-02'
FROM conversations c, LATERAL generate_series(1, CASE c.type WHEN 'DIRECT_MESSAGE' THEN 2 WHEN 'GROUP_CHAT' THEN 5 ELSE 30 END) k;
INSERT INTO messages
SELECT g, c, CASE WHEN random() < 0.03 THEN NULL WHEN random() < 0.8 THEN 1 + mod(c * 37 + (1 + floor(random() * 2)::int) * 101, 300)
                  ELSE 1 + floor(300 * power(random(), 2))::bigint END,
       CASE WHEN random() < 0.85 THEN 'TEXT' WHEN random() < 0.7 THEN 'IMAGE' ELSE 'BOT' END,
       CASE WHEN random() < 0.05 THEN NULL ELSE repeat('x', floor(1 + 200 * power(random(), 3))::int) END,
       date_trunc('second', timestamptz '2024-12-30' + random() * interval '25 days')  -- whole seconds: SQLite's julianday
         + (CASE WHEN random() < 0.3 THEN mod(g, 7) ELSE 0 END) * interval '1 second'  -- is exact to the millisecond only
FROM (SELECT g, 1 + floor(120 * power(random(), 2))::bigint AS c FROM generate_series(1, 6000) g) s;
"""


@pytest.fixture(scope="module")
def world_pg(make_pg_database: Callable[[str], str]) -> str:
    url = make_pg_database("connections")
    with engine_for(url) as engine, engine.begin() as conn:
        conn.exec_driver_sql(SCHEMA)
        for statement in LOAD.split(";\n"):
            if statement.strip():
                conn.exec_driver_sql(statement)
    with engine_for(url) as engine, engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    return url


@pytest.fixture(scope="module")
def world_sqlite(world_pg: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same rows in SQLite (timestamps as naive UTC text, as the demo stores them)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('world') / 'world.db'}"
    with engine_for(world_pg) as pg, engine_for(url) as lite:
        source = sa.MetaData()
        source.reflect(pg)
        target = sa.MetaData()
        for table in source.sorted_tables:
            columns = [
                sa.Column(
                    c.name,
                    sa.DateTime if isinstance(c.type, sa.DateTime) else c.type.as_generic(),
                    primary_key=c.primary_key,
                )
                for c in table.c
            ]
            sa.Table(table.name, target, *columns)
        target.create_all(lite)
        with pg.connect() as read, lite.begin() as write:
            for table in source.sorted_tables:
                rows = [
                    {
                        k: (v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v)
                        for k, v in r._mapping.items()
                    }
                    for r in read.execute(sa.select(table))
                ]
                write.execute(target.tables[table.name].insert(), rows)
    return url


def as_plain(freq: FrequencyTables) -> dict:
    """Every table as plain Python values (arrays as lists), for exact comparison."""

    def plain(value):  # noqa: ANN001, ANN202
        if isinstance(value, np.ndarray):
            return value.tolist()
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, dict):
            return {k: plain(v) for k, v in sorted(value.items())}
        return value

    return plain(freq)


def test_the_world_exercises_every_metric(world_pg: str) -> None:
    with engine_for(world_pg) as engine:
        f = extract_frequencies(engine, CANONICAL_MAPPING, window_start=START, window_end=END)
    assert 3000 < f.messages_total < 6000  # some messages fall outside the window
    assert f.conversations_total > 50 and f.users_total == 300
    assert len(f.gap_seconds.values) > 100 and len(f.top_sender_permille.values) > 10
    assert f.size_by_members.sum() == f.conversations_total and f.messages_per_day.sum() == f.messages_total
    assert "OTHER" in f.message_types  # 'BOT' is not a mapped type


@pytest.mark.parametrize("connections", [2, 3, 5])
def test_any_number_of_connections_gives_the_same_tables(world_pg: str, connections: int) -> None:
    with engine_for(world_pg) as engine:
        one = extract_frequencies(engine, CANONICAL_MAPPING, window_start=START, window_end=END, connections=1)
        many = extract_frequencies(
            engine, CANONICAL_MAPPING, window_start=START, window_end=END, connections=connections
        )
    assert as_plain(many) == as_plain(one)


def test_sqlite_gives_the_same_tables(world_pg: str, world_sqlite: str) -> None:
    with engine_for(world_pg) as pg, engine_for(world_sqlite) as lite:
        expected = extract_frequencies(pg, CANONICAL_MAPPING, window_start=START, window_end=END)
        got = extract_frequencies(lite, CANONICAL_MAPPING, window_start=START, window_end=END)
    assert as_plain(got) == as_plain(expected)


@pytest.mark.parametrize("url", ["world_pg", "world_sqlite"])
def test_bounded_extraction_in_one_snapshot_equals_pass_by_pass(url: str, request: pytest.FixtureRequest) -> None:
    """extract_bounded (one queue; the per-message passes fold over one evaluation of the view)
    against each view extracted one pass at a time, on one connection."""
    url = request.getfixturevalue(url)
    bound = ContributionBound(max_messages=7, max_conversations=2, seed=987654321)

    def view(fn):  # noqa: ANN001, ANN202
        return lambda tables, postgres: fn(tables, CANONICAL_MAPPING, postgres, START, END, bound)

    def alone(views, passes: set[str]) -> dict:  # noqa: ANN001
        tables = [
            extract_frequencies(
                engine,
                CANONICAL_MAPPING,
                window_start=START,
                window_end=END,
                views=views,
                prepare=bound.register,
                passes=frozenset({p}),
                connections=1,
            )
            for p in passes
        ]
        plains = [as_plain(t) for t in tables]
        # every pass fills its own metrics (the users statement: all of them); messages per day
        # are zeros, one a window day, where not computed
        empty = {**as_plain(FrequencyTables()), "messages_per_day": plains[0]["messages_per_day"]}
        if any(empty["messages_per_day"]):
            empty["messages_per_day"] = [0] * len(empty["messages_per_day"])
        merged = dict(empty)
        for plain in plains:
            for key, value in plain.items():
                if value != empty[key]:
                    assert merged[key] in (empty[key], value), key
                    merged[key] = value
        return merged

    with engine_for(url) as engine:
        together = extract_bounded(engine, CANONICAL_MAPPING, window_start=START, window_end=END, bound=bound)
        assert as_plain(together.per_message) == alone(view(messages_bounded_per_sender), {ORDERED, CONTENT, HOURS})
        assert as_plain(together.per_conversation) == alone(view(conversations_bounded_per_user), {ORDERED, PAIRS})
        assert as_plain(together.per_user) == alone(None, {CONTENT})
    assert together.per_message.messages_total > 0 and together.per_conversation.conversations_total > 0
