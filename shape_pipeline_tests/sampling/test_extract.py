"""extract_frequencies against the known dataset: hand-computed answers, both schemas, both engines."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from shape_pipeline.db import create_engine
from shape_pipeline.errors import MappingError
from shape_pipeline.mapping import CANONICAL_MAPPING, canonical_metadata, load_mapping
from shape_pipeline.sampling.extract import extract_frequencies
from shape_pipeline.sampling.frequencies import FrequencyTables
from shape_pipeline_tests.sampling import dataset as ds

Recorded = tuple[str, list[int], list[list[str | None]]]  # statement, column type oids, rows as text


def recorder(recorded: list[Recorded]) -> Callable[..., None]:
    """An `after_cursor_execute` listener that keeps every statement with its result's column
    types and values (psycopg 3 keeps the whole result client-side: read, don't fetch)."""

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        result = cursor.pgresult
        if result is None or result.nfields == 0:
            recorded.append((statement, [], []))
            return
        types = [result.ftype(j) for j in range(result.nfields)]
        rows = [
            [None if (v := result.get_value(i, j)) is None else bytes(v).decode() for j in range(result.nfields)]
            for i in range(result.ntuples)
        ]
        recorded.append((statement, types, rows))

    return record


@contextmanager
def engine_for(url: str) -> Iterator[sa.Engine]:
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def extract(url: str, mapping=CANONICAL_MAPPING, start=ds.WINDOW_START, end=ds.WINDOW_END) -> FrequencyTables:
    with engine_for(url) as engine:
        return extract_frequencies(engine, mapping, window_start=start, window_end=end)


def pairs(freq) -> dict[int, int]:
    return {int(v): int(c) for v, c in zip(freq.values, freq.counts, strict=True)}


# Gaps of an hour or more are rounded down inside SQL (see extract.gap_segments): 7200 s lies in
# the segment starting at the log-grid edge 6310 (step 4: 6310 // 1024 = 6 -> 4), so
# 6310 + (890 // 4) * 4 = 7198; 561599 s lies in the segment from edge 501187 (step 256:
# 501187 // 1024 = 489 -> 256), so 501187 + (60412 // 256) * 256 = 561347.
ROUNDED_LONG_GAPS = {7198: 1, 561347: 1}


def assert_known_answers(f: FrequencyTables, fields: tuple[str, str, str]) -> None:
    """The answers worked out by hand in dataset.py."""
    assert (f.users_total, f.conversations_total, f.messages_total) == (12, 4, 10)
    assert pairs(f.username_length) == {3: 2, 4: 3, 5: 5, 7: 1, 16: 1}
    assert f.profile_fields_set == dict(zip(fields, (10, 3, 6), strict=True))
    assert pairs(f.messages_per_conversation) == {1: 1, 2: 1, 3: 1, 4: 1}
    assert pairs(f.messages_per_sender) == {1: 3, 2: 2, 3: 1}
    assert pairs(f.gap_seconds) == {0: 1, 5: 1, 30: 1, 60: 1, **ROUNDED_LONG_GAPS}
    lengths = [2, len(ds.CANARY_CONTENT), 0, 11, 6, 100, 2, 3, 7, 2]
    assert pairs(f.content_length) == {v: lengths.count(v) for v in set(lengths)}
    assert f.message_types == {"TEXT": 5, "IMAGE": 1, "FILE": 1, "AUDIO": 1, "VIDEO": 1, "OTHER": 1}
    assert f.conversation_types == {"DIRECT_MESSAGE": 1, "GROUP_CHAT": 1, "CHANNEL": 1, "OTHER": 1}
    assert {k: pairs(v) for k, v in f.members_per_conversation.items()} == {
        "DIRECT_MESSAGE": {2: 1},
        "GROUP_CHAT": {4: 1},
        "CHANNEL": {10: 1},
        "OTHER": {3: 1},
    }
    grid = np.zeros((7, 24), dtype=int)
    for dow, hour, n in [(2, 0, 3), (0, 10, 2), (0, 12, 1), (6, 23, 1), (3, 23, 1), (2, 8, 2)]:
        grid[dow, hour] = n
    np.testing.assert_array_equal(f.hour_by_day_of_week, grid)


CANONICAL_FIELDS = ("display_name", "avatar_url", "bio")
MAPPED_FIELDS = ("displayName", "avatarUrl", "bio")


def test_postgres_canonical_schema_gives_the_hand_computed_answers(canonical_pg: str) -> None:
    assert_known_answers(extract(canonical_pg), CANONICAL_FIELDS)


def test_postgres_mapped_schema_quoted_names_varchar_ids_epoch_ms(mapped_pg: str, mapping_file) -> None:
    assert_known_answers(extract(mapped_pg, load_mapping(mapping_file)), MAPPED_FIELDS)


def test_sqlite_runs_the_same_queries_with_the_same_answers(
    canonical_sqlite: str, mapped_sqlite: str, mapping_file
) -> None:
    assert_known_answers(extract(canonical_sqlite), CANONICAL_FIELDS)
    assert_known_answers(extract(mapped_sqlite, load_mapping(mapping_file)), MAPPED_FIELDS)


@pytest.mark.parametrize("engine_fixture", ["canonical_pg", "canonical_sqlite"])
def test_window_edges_are_half_open(engine_fixture: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(engine_fixture)
    tick = timedelta(milliseconds=1)
    # Moving the start 1 ms later drops message 1 (at exactly window_start): 9 messages, and
    # conversation 1's first gap (30 s) disappears because message 2 is now its first.
    later = extract(url, start=ds.WINDOW_START + tick)
    assert later.messages_total == 9
    assert pairs(later.gap_seconds) == {0: 1, 5: 1, 60: 1, **ROUNDED_LONG_GAPS}
    # Moving the end 1 ms later takes in message 12 (at exactly window_end): conversation 4 joins.
    wider = extract(url, end=ds.WINDOW_END + tick)
    assert (wider.messages_total, wider.conversations_total) == (11, 5)
    assert wider.conversation_types["DIRECT_MESSAGE"] == 2


def test_an_empty_window_gives_zero_totals_but_counts_users(canonical_pg: str) -> None:
    f = extract(canonical_pg, start=ds.WINDOW_START.replace(year=2030), end=ds.WINDOW_END.replace(year=2030))
    assert (f.users_total, f.conversations_total, f.messages_total) == (13, 0, 0)
    assert f.content_length.total == 0 and f.gap_seconds.total == 0
    assert f.hour_by_day_of_week.sum() == 0 and f.conversation_types == {} and f.message_types == {}


def test_empty_tables_give_an_empty_frequency_set(make_pg_database: Callable[[str], str]) -> None:
    url = make_pg_database("empty")
    with engine_for(url) as engine:
        canonical_metadata().create_all(engine)
    f = extract(url)
    assert (f.users_total, f.conversations_total, f.messages_total) == (0, 0, 0)
    assert f.profile_fields_set == {"display_name": 0, "avatar_url": 0, "bio": 0}


def test_a_bad_mapping_is_refused_before_any_aggregate_runs(mapped_pg: str, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        ds.MAPPING_YAML.replace("content: body", "content: text").replace(
            "table: ConversationParticipant", "table: Members"
        ),
        encoding="utf-8",
    )
    statements: list[str] = []
    with engine_for(mapped_pg) as engine:
        sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        with pytest.raises(MappingError) as err:
            extract_frequencies(engine, load_mapping(bad), window_start=ds.WINDOW_START, window_end=ds.WINDOW_END)
    message = str(err.value)
    assert "table Members (members)" in message and "column Message.text (messages)" in message
    assert "\n" not in message
    assert not [s for s in statements if re.search(r'FROM "?Message"?\b', s)]


# -------------------------------------------------------------------------- privacy of results

NUMERIC_OIDS = {16, 20, 21, 23, 700, 701, 1700}  # bool, int8, int2, int4, float4, float8, numeric
_DATA_TABLE = re.compile(
    r'\b(FROM|JOIN)\s+"?(users|conversations|conversation_members|messages|User|Conversation|ConversationParticipant|Message)"?\b'
)


def table_text_values(url: str) -> set[str]:
    """Every text value stored in the mapped tables (the things no result may carry)."""
    values: set[str] = set()
    with engine_for(url) as engine, engine.connect() as conn:
        md = sa.MetaData()
        md.reflect(conn)
        for table in md.tables.values():
            text_cols = [c for c in table.c if isinstance(c.type, sa.String)]
            for row in conn.execute(sa.select(*text_cols)) if text_cols else []:
                values.update(v for v in row if v)
    return values


@pytest.mark.parametrize("which", ["canonical", "mapped"])
def test_no_result_of_any_sampler_statement_carries_a_text_value(
    which: str, canonical_pg: str, mapped_pg: str, mapping_file
) -> None:
    url, mapping = (
        (canonical_pg, CANONICAL_MAPPING) if which == "canonical" else (mapped_pg, load_mapping(mapping_file))
    )
    forbidden = table_text_values(url)
    assert ds.CANARY_EMAIL in " ".join(forbidden)  # the fixture really holds the canaries
    recorded: list[Recorded] = []

    with engine_for(url) as engine:
        sa.event.listen(engine, "after_cursor_execute", recorder(recorded))
        f = extract_frequencies(engine, mapping, window_start=ds.WINDOW_START, window_end=ds.WINDOW_END)
    assert f.messages_total == 10
    data_statements = [r for r in recorded if _DATA_TABLE.search(r[0]) and "pg_catalog" not in r[0]]
    # Two GROUPING SETS passes over messages compute every message, conversation and member
    # metric (the hours ride on the ordered pass; the members join is grouped both ways with
    # GROUPING SETS too) but the (conversation, sender) counts of the top sender's share, which
    # a third statement sorts; one statement reads users.
    message_passes = [s for s, _, _ in data_statements if re.search(r'FROM "?(messages|Message)"?\b', s)]
    assert len(message_passes) == 3 and sum("GROUPING SETS" in s for s in message_passes) == 2
    assert len(data_statements) == 4
    for statement, types, rows in data_statements:
        assert rows, statement
        assert set(types) <= NUMERIC_OIDS, f"non-numeric result column in: {statement}"
        cells = {cell for row in rows for cell in row if cell is not None}
        assert not cells & forbidden
    every_cell = " ".join(str(c) for _, _, rows in recorded for row in rows for c in row)
    for canary in ds.CANARIES:
        assert canary not in every_cell
    assert any("SET TRANSACTION READ ONLY" in s for s, _, _ in recorded)


# -------------------------------------------------------------------------- gap rounding


def test_gap_keys_exact_below_an_hour_then_within_their_histogram_bucket(canonical_pg: str) -> None:
    """The SQL rounding, run on both engines over every gap up to a month (sampled)."""
    from shape_pipeline.sampling.extract import EXACT_GAP_SECONDS, gap_key, gap_segments
    from shape_pipeline.sampling.shape import log_grid

    month = 31 * 86_400
    gaps = np.unique(np.concatenate([np.arange(0, 20_000), np.geomspace(1, month * 2, 5_000).astype(np.int64)]))
    segments = gap_segments(month)
    table = sa.Table("gaps", sa.MetaData(), sa.Column("gap", sa.BigInteger), prefixes=["TEMPORARY"])
    query = sa.select(table.c.gap, gap_key(table.c.gap, segments)).order_by(table.c.gap)
    for url in (canonical_pg, "sqlite://"):
        with engine_for(url) as engine, engine.connect() as conn:
            table.create(conn)
            conn.execute(table.insert(), [{"gap": int(g)} for g in gaps])
            rows = np.asarray(conn.execute(query).all(), dtype=np.int64)
            conn.rollback()
        gap, key = rows[:, 0], rows[:, 1]
        short = gap < EXACT_GAP_SECONDS
        assert np.array_equal(key[short], gap[short])  # exact to the second below an hour
        assert np.all(key <= gap) and np.all(gap - key < np.maximum(1, gap / 1024))
        edges = log_grid(gap.max())
        assert np.array_equal(np.searchsorted(edges, key, "right"), np.searchsorted(edges, gap, "right"))
        assert len(np.unique(key[~short])) < len(gap[~short]) / 3  # far fewer groups


@pytest.mark.parametrize("connections", [1, 2, 3])
def test_the_message_passes_run_on_guarded_connections_sharing_one_snapshot(
    canonical_pg: str, connections: int
) -> None:
    """The three message statements (ordered pass with the hours, content pass, top sender's
    pairs) are spread over `connections` connections: the first exports its snapshot, every other one
    imports it before any query; all are read-only and bounded by the statement timeout."""
    seen: list[tuple[int, str]] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        raw = conn.connection.dbapi_connection
        seen.append(
            (raw.info.backend_pid, statement % (parameters or {}) if isinstance(parameters, dict) else statement)
        )

    with engine_for(canonical_pg) as engine:
        sa.event.listen(engine, "before_cursor_execute", on_execute)
        extract_frequencies(
            engine,
            CANONICAL_MAPPING,
            window_start=ds.WINDOW_START,
            window_end=ds.WINDOW_END,
            statement_timeout_ms=4321,
            connections=connections,
        )
    passes = {pid for pid, st in seen if re.search(r'FROM "?messages"?\b', st)}
    assert sum("GROUPING SETS" in st for _, st in seen) == 2
    exporter = {pid for pid, st in seen if "pg_export_snapshot()" in st}
    importer = {pid for pid, st in seen if "SET TRANSACTION SNAPSHOT" in st}
    # a helper finding the queue already empty (tiny data) does not connect at all
    assert len(exporter) == (connections > 1) and len(importer) <= connections - 1
    assert not exporter & importer and len({pid for pid, _ in seen}) == len(exporter | importer) or connections == 1
    assert passes <= (exporter | importer if connections > 1 else {pid for pid, _ in seen})
    for pid in {pid for pid, _ in seen}:
        mine = [st for p, st in seen if p == pid]
        assert "SET TRANSACTION READ ONLY" in mine[0]
        assert any("statement_timeout" in st and "4321" in st for st in mine)
        if pid in importer:
            assert "SET TRANSACTION SNAPSHOT" in mine[1]  # right after READ ONLY, before any query


def test_round_gaps_in_memory_matches_the_sql_rounding(pg_url: str) -> None:
    """The Parquet source rounds with `round_gaps`; it must give the SQL `gap_key` answers."""
    import numpy as np
    import sqlalchemy as sa

    from shape_pipeline.sampling.extract import gap_key, gap_segments, round_gaps

    segments = gap_segments(30 * 86400)
    gaps = np.array([0, 1, 3599, 3600, 3601, 7199, 7201, 86_399, 86_401, 2_000_000], dtype=np.int64)
    from shape_pipeline.db import create_engine

    engine = create_engine(pg_url)
    with engine.connect() as conn:
        values = sa.values(sa.column("gap", sa.BigInteger), name="g").data([(int(g),) for g in gaps])
        sql = conn.execute(sa.select(gap_key(values.c.gap, segments))).scalars().all()
    engine.dispose()
    assert round_gaps(gaps, segments).tolist() == sql
    assert round_gaps(gaps, segments)[:3].tolist() == [0, 1, 3599]


# -------------------------------------------------------------------------- OTHER in the mapping

# Raw message types of an app with system messages: "" is a user post; sys_join is counted as
# OTHER by the mapping, sys_generic is the raw value the generator writes for OTHER (`other:`),
# sys_new is a code the mapping does not name, NULL falls to `default: OTHER`.
OTHER_RAW_TYPES = ["", "", "", "img", "sys_join", "sys_join", "sys_generic", "sys_new", None]
OTHER_MAPPING = {
    "messages.type": {
        "column": "type",
        "values": {"": "TEXT", "img": "IMAGE", "sys_join": "OTHER"},
        "default": "OTHER",
        "other": "sys_generic",
    },
    "conversations.type": {"column": "type", "values": {"d": "DIRECT_MESSAGE", "sys": "OTHER"}, "other": "x"},
}


def mapping_with(**enums: dict) -> object:
    from shape_pipeline.mapping import SchemaMapping

    data = CANONICAL_MAPPING.model_dump(by_alias=True)
    for where, enum in enums.items():
        entity, field = where.split(".")
        data[entity][field] = enum
    return SchemaMapping.model_validate(data)


def build_with_other(url: str) -> None:
    md = canonical_metadata()
    md.tables["messages"].c.type.nullable = True  # NULL types fall to the mapping's default
    at = ds.WINDOW_START + timedelta(days=1)
    with engine_for(url) as engine, engine.begin() as conn:
        md.create_all(conn)
        t = md.tables
        conn.execute(t["users"].insert(), [dict(id=1, username="u", email="u@x", created_at=at)])
        conn.execute(
            t["conversations"].insert(),
            [dict(id=i, type=ty, created_at=at) for i, ty in ((1, "d"), (2, "sys"), (3, "x"), (4, "new"))],
        )
        conn.execute(
            t["messages"].insert(),
            [
                dict(
                    id=i,
                    conversation_id=i % 4 + 1,
                    sender_id=1,
                    type=ty,
                    content="c",
                    created_at=at + timedelta(minutes=i),
                )
                for i, ty in enumerate(OTHER_RAW_TYPES)
            ],
        )


@pytest.mark.parametrize("engine_kind", ["postgresql", "sqlite"])
def test_raw_values_mapped_to_other_and_the_other_value_count_as_other(
    engine_kind: str, make_pg_database: Callable[[str], str], tmp_path
) -> None:
    url = make_pg_database("other") if engine_kind == "postgresql" else f"sqlite:///{tmp_path / 'other.db'}"
    build_with_other(url)
    f = extract(url, mapping_with(**OTHER_MAPPING))
    # TEXT 3, IMAGE 1; OTHER: sys_join x2 (values), sys_generic (other:), sys_new (unnamed), NULL (default)
    assert f.message_types == {"TEXT": 3, "IMAGE": 1, "OTHER": 5}
    # conversations: d -> DIRECT_MESSAGE; sys (values), x (other:) and new (unnamed) -> OTHER
    assert f.conversation_types == {"DIRECT_MESSAGE": 1, "OTHER": 3}
    assert sum(fr.total for fr in f.members_per_conversation.values()) == 4
