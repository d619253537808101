"""Determinism, mapped schemas, refusals and atomicity against a real PostgreSQL (and SQLite)."""

from __future__ import annotations

from datetime import datetime

import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from shape_pipeline.console import silent
from shape_pipeline.db import create_engine
from shape_pipeline.errors import MappingError, ShapePipelineError
from shape_pipeline.generation import load_database
from shape_pipeline.generation.generate import generate_dataset
from shape_pipeline_tests.generation.conftest import WINDOW_END, WINDOW_START

SMALL = 40_000
CANONICAL_TABLES = ("users", "conversations", "conversation_members", "messages")


def run(config, url=None, **kwargs):
    kwargs.setdefault("target_messages", SMALL)
    kwargs.setdefault("seed", "targets")
    return generate_dataset(config, database_url=url, emit=silent, **kwargs)


def query(url: str, sql: str, **params):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()
    finally:
        engine.dispose()


def checksums(url: str) -> dict[str, str]:
    """md5 over every row of each canonical table, in key order."""
    order = {"users": "id", "conversations": "id", "conversation_members": "conversation_id, user_id", "messages": "id"}
    return {
        table: query(url, f"SELECT md5(string_agg(t::text, '|' ORDER BY {key})) FROM {table} t")[0][0]
        for table, key in order.items()
    }


def test_same_seed_same_rows_whatever_the_chunk_size_or_workers(config, make_pg_database):
    first, second, third, fourth = (make_pg_database(f"det{i}") for i in range(4))
    run(config, first, chunk_messages=5_000)
    run(config, second, chunk_messages=1_000_000)
    run(config, third, seed="another seed")
    run(config, fourth, chunk_messages=7_000, workers=2)
    a, b, c, d = checksums(first), checksums(second), checksums(third), checksums(fourth)
    assert a == b == d
    assert all(value for value in a.values())
    assert a["messages"] != c["messages"] and a["users"] != c["users"]


def test_refuses_a_non_empty_target_unless_replace(config, make_pg_database):
    url = make_pg_database("busy")
    run(config, url, target_messages=5_000)
    before = checksums(url)
    with pytest.raises(ShapePipelineError, match="already hold rows.*--replace"):
        run(config, url, target_messages=6_000)
    assert checksums(url) == before
    result = run(config, url, target_messages=6_000, replace=True)
    assert query(url, "SELECT count(*) FROM messages")[0][0] == 6_000 == result.rows["messages"]


def test_refuses_the_production_database(config, make_pg_database):
    url = make_pg_database("prod")
    same_db_other_spelling = url.replace("postgresql+psycopg://", "postgresql://").replace("127.0.0.1", "localhost")
    with pytest.raises(ShapePipelineError, match="production database"):
        run(config, url, production_url=same_db_other_spelling)
    assert query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0][0] == 0


def test_an_interrupted_load_leaves_the_tables_as_they_were(config, make_pg_database, monkeypatch):
    url = make_pg_database("interrupt")
    run(config, url, target_messages=5_000)
    before = checksums(url)
    real_write = load_database.DatabaseSink.write
    calls = {"n": 0}

    def write_then_interrupt(self, chunk):
        real_write(self, chunk)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(load_database.DatabaseSink, "write", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(config, url, replace=True, chunk_messages=2_000)
    assert calls["n"] == 2
    assert checksums(url) == before
    fresh = make_pg_database("interrupt_fresh")
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        run(config, fresh, chunk_messages=2_000)
    assert query(fresh, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0][0] == 0


MAPPED_DDL = """
CREATE TABLE "AppUser" ("UserId" uuid PRIMARY KEY, "Handle" varchar(40) NOT NULL UNIQUE,
    "Mail" varchar(80), "ShownName" text, "Avatar" text, "SignedUpMs" bigint NOT NULL,
    "Tenant" integer NOT NULL, "Locale" text NOT NULL DEFAULT 'en');
CREATE TABLE "Room" ("RoomId" varchar(12) PRIMARY KEY, "Kind" smallint NOT NULL, "Title" varchar(20),
    "OpenedMs" bigint NOT NULL);
CREATE TABLE "RoomMember" ("RoomId" varchar(12) REFERENCES "Room", "UserId" uuid REFERENCES "AppUser",
    PRIMARY KEY ("RoomId", "UserId"));
CREATE TABLE "Message" ("MsgId" bigint PRIMARY KEY, "RoomId" varchar(12) NOT NULL REFERENCES "Room",
    "Author" uuid NOT NULL REFERENCES "AppUser", "Body" text NOT NULL, "Kind" text NOT NULL,
    "SentMs" bigint NOT NULL, "Edited" boolean NOT NULL);
"""

MAPPING_YAML = """
users:
  table: AppUser
  id: UserId
  username: Handle
  email: Mail
  display_name: ShownName
  created_at: {column: SignedUpMs, unit: epoch_ms}
  profile_fields: [ShownName, Avatar]
  fill: {Tenant: 7}
conversations:
  table: Room
  id: RoomId
  type: {column: Kind, values: {"1": DIRECT_MESSAGE, "2": GROUP_CHAT, "3": CHANNEL}}
  name: Title
  created_at: {column: OpenedMs, unit: epoch_ms}
members:
  table: RoomMember
  conversation_id: RoomId
  user_id: UserId
messages:
  table: Message
  id: MsgId
  conversation_id: RoomId
  sender_id: Author
  content: Body
  type: {column: Kind, values: {text: TEXT, image: IMAGE, file: FILE, audio: AUDIO, video: VIDEO}}
  created_at: {column: SentMs, unit: epoch_ms}
  fill: {Edited: false}
"""


@pytest.fixture
def mapped(make_pg_database, tmp_path):
    url = make_pg_database("mapped")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(MAPPED_DDL)
    engine.dispose()
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING_YAML)
    return url, path


def test_mapped_schema_with_quoted_names_varchar_and_uuid_ids_and_epoch_ms(config, mapped):
    url, mapping = mapped
    result = run(config, url, mapping_path=mapping, target_messages=20_000)
    assert query(url, 'SELECT count(*) FROM "Message"')[0][0] == 20_000
    assert query(url, 'SELECT count(*) FROM "AppUser"')[0][0] == result.rows["users"]
    lo, hi = (int(t.timestamp() * 1000) for t in (WINDOW_START, WINDOW_END))
    assert query(url, 'SELECT count(*) FROM "Message" WHERE "SentMs" < :lo OR "SentMs" >= :hi', lo=lo, hi=hi)[0][0] == 0
    kinds = dict(query(url, 'SELECT "Kind", count(*) FROM "Message" GROUP BY 1'))
    assert set(kinds) <= {"text", "image", "file", "audio", "video"} and kinds["text"] > 15_000
    rooms = dict(query(url, 'SELECT "Kind", count(*) FROM "Room" GROUP BY 1'))
    assert set(rooms) <= {1, 2, 3} and rooms[1] > rooms.get(2, 0)
    assert (
        query(
            url,
            """SELECT count(*) FROM "Message" m LEFT JOIN "RoomMember" r
        ON r."RoomId" = m."RoomId" AND r."UserId" = m."Author" WHERE r."UserId" IS NULL""",
        )[0][0]
        == 0
    )
    assert (
        query(url, 'SELECT count(*) FROM "Message" m JOIN "Room" r USING ("RoomId") WHERE m."SentMs" < r."OpenedMs"')[
            0
        ][0]
        == 0
    )
    assert query(url, 'SELECT DISTINCT "Tenant", "Locale" FROM "AppUser"') == [(7, "en")]
    assert query(url, 'SELECT DISTINCT "Edited" FROM "Message"') == [(False,)]
    assert query(url, 'SELECT max(length("Title")) <= 20 FROM "Room"')[0] == (True,)
    # ids in the columns' own formats: random 12-character text ids in varchar(12), UUIDv4 in uuid
    assert query(
        url, """SELECT count(*) FROM "Room" WHERE "RoomId" !~ '^[ybndrfg8ejkmcpqxot1uwisza345h769]{12}$'"""
    ) == [(0,)]
    assert query(
        url,
        """SELECT count(*) FROM "AppUser" WHERE "UserId"::text !~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'""",
    ) == [(0,)]
    # message ids stay a sequence, numbered in time order
    assert query(
        url,
        'SELECT count(*) FROM (SELECT "MsgId", row_number() OVER (ORDER BY "SentMs", "MsgId") r FROM "Message") s WHERE "MsgId" <> r',
    ) == [(0,)]


def test_uncovered_not_null_columns_are_listed_before_anything_is_written(config, mapped):
    url, mapping = mapped
    text = mapping.read_text().replace("  fill: {Tenant: 7}\n", "").replace("  fill: {Edited: false}\n", "")
    mapping.write_text(text)
    with pytest.raises(MappingError) as caught:
        run(config, url, mapping_path=mapping)
    message = str(caught.value)
    assert "AppUser.Tenant is NOT NULL" in message and "Message.Edited is NOT NULL" in message
    assert "Locale" not in message  # it has a default
    assert query(url, 'SELECT (SELECT count(*) FROM "AppUser") + (SELECT count(*) FROM "Message")')[0][0] == 0


def test_ids_that_do_not_fit_are_refused_and_unmapped_categories_are_not(config, mapped):
    url, mapping = mapped
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql('ALTER TABLE "Message" DROP CONSTRAINT "Message_pkey"')
        conn.exec_driver_sql('ALTER TABLE "Message" ALTER COLUMN "MsgId" TYPE varchar(3)')
    engine.dispose()
    mapping.write_text(mapping.read_text().replace(", video: VIDEO", ""))
    with pytest.raises(MappingError) as caught:
        run(config, url, mapping_path=mapping, target_messages=5_000)
    assert "Message.MsgId" in str(caught.value) and "too short for ids up to 5,000" in str(caught.value)
    assert "VIDEO" not in str(caught.value)  # its share moves onto the mapped categories (issue 9)


def test_sqlite_target_and_parquet_together(config, tmp_path):
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    result = run(config, url, parquet_dir=tmp_path / "pq", target_messages=8_000)
    counts = {t: query(url, f"SELECT count(*) FROM {t}")[0][0] for t in CANONICAL_TABLES}
    assert counts["messages"] == 8_000 == result.rows["messages"]
    assert counts["conversation_members"] == result.rows["members"]
    assert ds.dataset(tmp_path / "pq" / "users").count_rows() == counts["users"]
    assert (
        query(
            url,
            """SELECT count(*) FROM messages m LEFT JOIN conversation_members c
        ON c.conversation_id = m.conversation_id AND c.user_id = m.sender_id WHERE c.user_id IS NULL""",
        )[0][0]
        == 0
    )
    first = query(url, "SELECT min(created_at) FROM messages")[0][0]
    assert datetime.fromisoformat(first) >= WINDOW_START.replace(tzinfo=None)
    with pytest.raises(ShapePipelineError, match="already holds"):
        run(config, None, parquet_dir=tmp_path / "pq", target_messages=1_000)
    run(config, None, parquet_dir=tmp_path / "pq", target_messages=1_000, replace=True)
    assert ds.dataset(tmp_path / "pq" / "messages").count_rows() == 1_000
    assert sorted(p.name for p in (tmp_path / "pq").iterdir()) == ["conversations", "members", "messages", "users"]


def test_worker_processes_give_the_same_chunks(config):
    """Shards made in two spawned worker processes come back in plan order, row for row."""
    from shape_pipeline.generation.generate import iter_chunks
    from shape_pipeline.generation.plan import make_plan

    plan = make_plan(config, target_messages=200_000, seed="workers")
    assert plan.conversation_shards >= 3
    alone = list(iter_chunks(plan, 50_000, workers=1))
    pooled = list(iter_chunks(plan, 50_000, workers=2))
    assert [c.rows() for c in alone] == [c.rows() for c in pooled]
    for a, b in zip(alone, pooled, strict=True):
        assert all(a.tables[name].equals(b.tables[name]) for name in a.tables)
