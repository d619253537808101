"""read_physical_layout on real PostgreSQL: the simulated schemas, crafted id formats, what the SQL reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from chat_simulator import build_world
from shape_pipeline.contracts import ColumnLayout, IdFormat
from shape_pipeline.db import read_only_snapshot
from shape_pipeline.mapping import (
    CANONICAL_MAPPING,
    SchemaMapping,
    canonical_metadata,
    load_mapping,
    reflect_tables,
)
from shape_pipeline.sampling.audit import LAYOUT_FIELDS
from shape_pipeline.sampling.physical import SAMPLE_ROWS, logical_columns, read_physical_layout
from shape_pipeline_tests.sampling import dataset as ds
from shape_pipeline_tests.sampling.test_extract import Recorded, engine_for, recorder

END = datetime(2025, 6, 2, tzinfo=UTC)
ENTITIES = ["users", "conversations", "members", "messages"]


def analyze(url: str) -> None:
    with engine_for(url) as engine, engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.commit()


def layout_of(url: str, mapping: SchemaMapping, recorded: list[Recorded] | None = None):
    with engine_for(url) as engine:
        if recorded is not None:
            sa.event.listen(engine, "after_cursor_execute", recorder(recorded))
        with read_only_snapshot(engine, statement_timeout_ms=30_000) as conn:
            tables = reflect_tables(conn, mapping)
            if recorded is not None:
                recorded.clear()  # keep only the layout's own statements (reflection reads the catalog)
            return read_physical_layout(conn, mapping, tables)


@pytest.fixture(scope="module")
def worlds(
    make_pg_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, SchemaMapping]]:
    """Each simulated schema loaded (load order: by time) and analyzed, with its mapping."""
    out = {}
    folder = tmp_path_factory.mktemp("layout-mappings")
    for schema in ("canonical", "mattermost", "slack"):
        world = build_world(schema, 8_000, f"layout-{schema}", END)
        url = make_pg_database(f"layout_{schema}")
        world.load(url)
        analyze(url)
        out[schema] = (url, load_mapping(world.write_mapping(folder / f"{schema}.yaml")))
    return out


def test_the_simulated_schemas_get_their_id_formats(worlds) -> None:
    layouts = {schema: layout_of(url, mapping) for schema, (url, mapping) in worlds.items()}
    for layout in layouts.values():
        assert sorted(layout.tables) == sorted(ENTITIES)
        assert layout.tables["members"].ids is None  # a composite key: no id of its own
    canonical = layouts["canonical"].tables
    assert canonical["messages"].ids == IdFormat(kind="integer", time_ordered=True)  # ids in time order
    assert canonical["users"].ids.kind == "integer"
    mattermost = layouts["mattermost"].tables
    for entity in ("users", "conversations", "messages"):
        assert mattermost[entity].ids == IdFormat(kind="text", length=26, alphabet="base32", time_ordered=False)
        assert layouts["slack"].tables[entity].ids == IdFormat(kind="uuid", time_ordered=False, uuid_version=4)


def test_columns_are_keyed_by_logical_field_with_rounded_numbers(worlds) -> None:
    url, mapping = worlds["mattermost"]
    messages = layout_of(url, mapping).tables["messages"]
    assert {"id", "conversation_id", "sender_id", "content", "type", "created_at"} <= set(messages.columns)
    assert messages.columns["created_at"].correlation == 1.0  # loaded in time order ("CreateAt", epoch ms)
    assert abs(messages.columns["id"].correlation) < 0.2  # random 26-character ids
    assert messages.columns["id"].avg_width == 27  # varchar(26): 1 length byte + 26
    with engine_for(url) as engine, engine.connect() as conn:
        reltuples, relpages = conn.execute(
            sa.text("""SELECT reltuples, relpages FROM pg_class WHERE oid = '"Posts"'::regclass""")
        ).one()
    assert messages.rows_per_page == round(reltuples / relpages, 1) and messages.rows_per_page > 1
    for column in messages.columns.values():
        assert column.correlation is None or round(column.correlation, 2) == column.correlation
        assert column.null_frac is not None and round(column.null_frac, 2) == column.null_frac


def test_columns_the_mapping_does_not_name_get_width_and_nulls_by_physical_name(worlds) -> None:
    url, mapping = worlds["mattermost"]
    tables = layout_of(url, mapping).tables
    members = tables["members"].unmapped_columns
    assert set(members) == {"Roles", "LastViewedAt", "MsgCount", "MentionCount", "NotifyProps", "LastUpdateAt"}
    assert members["NotifyProps"].avg_width > 20 and members["NotifyProps"].null_frac == 0.0
    assert members["NotifyProps"].correlation is None  # width and NULL share only
    named = set(mapping.required_columns()["messages"])
    assert {"Props", "Hashtags", "FileIds"} <= set(tables["messages"].unmapped_columns)
    assert not named & set(tables["messages"].unmapped_columns)
    assert tables["users"].unmapped_columns["Timezone"].avg_width > 20


CRAFTED = f"""
CREATE TABLE users (id uuid PRIMARY KEY, username text, email text, display_name text, avatar_url text,
                    bio text, created_at timestamptz);
CREATE TABLE conversations (id text PRIMARY KEY, type text, name text, created_at timestamptz);
CREATE TABLE conversation_members (conversation_id text, user_id uuid, joined_at timestamptz);
CREATE TABLE messages (id text PRIMARY KEY, conversation_id text, sender_id uuid, type text, content text,
                       created_at timestamptz, props text);
-- UUIDv7: 48 bits of milliseconds, version 7, variant 8: time-ordered
INSERT INTO users
SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(md5(i::text), 1, 3)
        || '8' || substr(md5(i::text), 4, 15))::uuid, 'crafted_user_' || i, 'crafted' || i || '@example.org',
       NULL, NULL, NULL, t
FROM (SELECT i, timestamptz '2025-01-01' + i * interval '1 minute' AS t FROM generate_series(1, 3000) i) s;
-- mixed-case ids in creation order (an app's own sequence-like key)
INSERT INTO conversations
SELECT 'Conv' || lpad(i::text, 8, '0') || 'Zz', 'GROUP_CHAT', NULL, timestamptz '2025-01-01' + i * interval '1 hour'
FROM generate_series(1, 500) i;
INSERT INTO conversation_members
SELECT 'Conv' || lpad((1 + mod(i, 500))::text, 8, '0') || 'Zz', id, created_at FROM (
  SELECT row_number() OVER (ORDER BY id) AS i, id, created_at FROM users) u;
-- random 32-character hex ids written in time order: not time-ordered
INSERT INTO messages
SELECT md5('m' || i), 'Conv' || lpad((1 + mod(i, 500))::text, 8, '0') || 'Zz',
       (SELECT id FROM users ORDER BY id LIMIT 1), 'TEXT', 'crafted content ' || i,
       timestamptz '2025-01-01' + i * interval '1 second',
       CASE WHEN mod(i, 4) <> 0 THEN '{{"k":"' || md5('p' || i) || '"}}' END  -- 40 characters, a quarter NULL
FROM generate_series(1, {3 * SAMPLE_ROWS}) i;
"""


@pytest.fixture(scope="module")
def crafted(make_pg_database: Callable[[str], str]) -> str:
    url = make_pg_database("layout_crafted")
    with engine_for(url) as engine, engine.begin() as conn:
        conn.exec_driver_sql(CRAFTED)
    analyze(url)
    return url


def test_crafted_id_formats_uuid_v7_mixed_case_and_hex(crafted: str) -> None:
    tables = layout_of(crafted, CANONICAL_MAPPING).tables
    assert tables["users"].ids == IdFormat(kind="uuid", time_ordered=True, uuid_version=7)
    assert tables["conversations"].ids == IdFormat(kind="text", length=14, alphabet="alphanumeric", time_ordered=True)
    # more rows than twice the sample: a page sample, still enough to see random order
    assert tables["messages"].ids == IdFormat(kind="text", length=32, alphabet="hex", time_ordered=False)
    assert tables["members"].columns["user_id"].avg_width == 16
    assert tables["messages"].unmapped_columns == {"props": ColumnLayout(avg_width=41, null_frac=0.25)}
    assert tables["users"].unmapped_columns == {}  # profile fields are named by the mapping


def test_only_correlation_width_and_nulls_are_read_and_no_value_reaches_python(crafted: str) -> None:
    recorded: list[Recorded] = []
    layout = layout_of(crafted, CANONICAL_MAPPING, recorded)
    assert layout is not None
    statements = " ".join(s for s, _, _ in recorded)
    for forbidden in (
        "most_common_vals",
        "most_common_elems",
        "most_common_freqs",
        "histogram_bounds",
        "elem_count_histogram",
        "pg_statistic ",
    ):
        assert forbidden not in statements
    stats = [s for s, _, _ in recorded if "pg_stats" in s]
    assert len(stats) == 5  # each table's mapped columns, and the one table with an unmapped column
    mapped = "SELECT s.attname, round(s.correlation::numeric, 2)::float8, s.avg_width, round(s.null_frac::numeric, 2)::float8 FROM"
    unmapped = "SELECT s.attname, s.avg_width, round(s.null_frac::numeric, 2)::float8 FROM"
    assert sum(s.startswith(mapped) for s in stats) == 4 and sum(s.startswith(unmapped) for s in stats) == 1
    with engine_for(crafted) as engine, engine.connect() as conn:
        values = {
            str(v)
            for table, column in [
                ("users", "id"),
                ("users", "username"),
                ("users", "email"),
                ("conversations", "id"),
                ("messages", "id"),
                ("messages", "content"),
                ("messages", "created_at"),
                ("messages", "props"),
            ]
            for (v,) in conn.execute(sa.text(f"SELECT {column}::text FROM {table}"))
        }
    cells = {cell for _, _, rows in recorded for row in rows for cell in row if cell is not None}
    assert cells and not cells & values
    assert all(len(cell) < 20 for cell in cells)  # counts, codes, rounded numbers and column names


def test_a_table_never_analyzed_has_no_numbers(make_pg_database: Callable[[str], str]) -> None:
    url = make_pg_database("layout_fresh")
    with engine_for(url) as engine:
        ds.build_canonical(engine)  # 12 users, 10 messages: below autovacuum's analyze threshold
    tables = layout_of(url, CANONICAL_MAPPING).tables
    assert tables["messages"].rows_per_page is None and tables["messages"].columns == {}
    ids = tables["messages"].ids  # read from the rows, not from statistics
    assert ids is not None and ids.kind == "integer" and ids.time_ordered is not None


def test_sqlite_has_no_physical_layout(canonical_sqlite: str) -> None:
    assert layout_of(canonical_sqlite, CANONICAL_MAPPING) is None


def test_only_fields_that_name_a_column_are_layout_columns() -> None:
    """Mapping settings (e.g. `id_format: random`) are not columns; every other field is one."""
    data = CANONICAL_MAPPING.model_dump(by_alias=True)
    for entity in ("users", "conversations", "messages"):
        if "id_format" in type(getattr(CANONICAL_MAPPING, entity)).model_fields:
            data[entity]["id_format"] = "random"
    mapping = SchemaMapping.model_validate(data)
    metadata = canonical_metadata()
    for entity, spec in mapping.entities().items():
        columns = logical_columns(spec)
        assert set(columns.values()) <= set(metadata.tables[spec.table].c.keys()), entity
        assert "created_at" in columns or "joined_at" in columns
    assert {
        "id",
        "username",
        "email",
        "display_name",
        "created_at",
        "type",
        "name",
        "conversation_id",
        "user_id",
        "joined_at",
        "sender_id",
        "content",
    } == LAYOUT_FIELDS
