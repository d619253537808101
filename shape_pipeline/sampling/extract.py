"""SQL aggregates -> FrequencyTables: the only code that reads a production database.

Privacy by construction: every statement returns integers only (counts, lengths, codes);
categories come back as small integer codes produced by a `CASE` inside SQL, so neither an
identifier nor a text value of the mapped tables (raw enum values included) ever reaches
the client. On PostgreSQL one `GROUPING SETS` statement scans the messages table once and
yields every message metric plus the conversation and member aggregates; SQLite (the demo's
embedded default) runs the same Core sub-queries one by one, as it has no grouping sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shape_pipeline.db import is_postgres, read_only_snapshot
from shape_pipeline.mapping import (
    CONVERSATION_TYPES,
    MESSAGE_TYPES,
    OTHER,
    EnumColumn,
    SchemaMapping,
    TimeColumn,
    reflect_tables,
)
from shape_pipeline.sampling.frequencies import Frequency, FrequencyTables

OTHER_CODE = -1

# Metric ids of the rows the combined statements return: (metric, key1, key2, count).
LENGTH, MSG_TYPE, GRID, PER_CONVERSATION, PER_SENDER, GAP, CONV_TYPE, MEMBERS = range(8)

_UNIT_FACTOR = {"epoch_s": 1, "epoch_ms": 1000}


@dataclass(frozen=True)
class _Dialect:
    """The few expressions whose SQL differs between PostgreSQL and SQLite."""

    postgres: bool

    def floor(self, expr: sa.ColumnElement) -> sa.ColumnElement:
        # Arguments are never negative, so SQLite's truncating CAST is a floor.
        if self.postgres:
            return sa.cast(sa.func.floor(expr), sa.BigInteger)
        return sa.cast(expr, sa.BigInteger)

    def as_timestamp(self, col: sa.ColumnElement, unit: str) -> sa.ColumnElement:
        """The column as a UTC point in time that the dialect's date functions accept."""
        if unit == "timestamp":
            return col
        if self.postgres:
            return sa.func.to_timestamp(col / float(_UNIT_FACTOR[unit]))
        seconds = col if unit == "epoch_s" else sa.cast(col / 1000, sa.BigInteger)
        return sa.func.datetime(seconds, "unixepoch")

    def hour(self, ts: sa.ColumnElement) -> sa.ColumnElement:
        if self.postgres:
            return sa.cast(sa.extract("hour", ts), sa.Integer)
        return sa.cast(sa.func.strftime("%H", ts), sa.Integer)

    def day_of_week(self, ts: sa.ColumnElement) -> sa.ColumnElement:
        """Monday = 0 ... Sunday = 6."""
        if self.postgres:
            return sa.cast(sa.extract("isodow", ts), sa.Integer) - 1
        return (sa.cast(sa.func.strftime("%w", ts), sa.Integer) + 6) % 7

    def gap_seconds(self, col: sa.ColumnElement, prev: sa.ColumnElement, unit: str) -> sa.ColumnElement:
        """Whole seconds (floor) from `prev` to `col`."""
        if unit == "epoch_s":
            return self.floor(col - prev)
        if unit == "epoch_ms":
            return self.floor((col - prev) / 1000.0)
        if self.postgres:
            return self.floor(sa.extract("epoch", col - prev))
        # julianday is a float in days; round to milliseconds before the floor.
        millis = sa.func.round((sa.func.julianday(col) - sa.func.julianday(prev)) * 86_400_000.0)
        return self.floor(millis / 1000.0)


def _bound(moment: datetime, unit: str, postgres: bool) -> object:
    """A window edge in the column's own unit, so the filter compares the raw column."""
    moment = moment.astimezone(UTC)
    if unit in _UNIT_FACTOR:
        return int(round(moment.timestamp() * _UNIT_FACTOR[unit]))
    # SQLite stores naive UTC text; PostgreSQL compares in the session's UTC zone.
    return moment if postgres else moment.replace(tzinfo=None)


def _in_window(col: sa.ColumnElement, unit: str, start: datetime, end: datetime, postgres: bool) -> sa.ColumnElement:
    return sa.and_(col >= _bound(start, unit, postgres), col < _bound(end, unit, postgres))


def _category_code(table: sa.Table, enum: EnumColumn, categories: Sequence[str]) -> sa.ColumnElement:
    """Logical category as an integer code computed in SQL; unnamed raw values -> OTHER_CODE."""
    if enum.constant is not None:
        return sa.literal(categories.index(enum.constant), sa.Integer)
    raw = sa.cast(table.c[enum.column], sa.Text)
    whens = [(raw == value, categories.index(name)) for value, name in enum.values.items()]
    null_code = categories.index(enum.default) if enum.default else OTHER_CODE
    whens.insert(0, (table.c[enum.column].is_(None), null_code))
    return sa.case(*whens, else_=OTHER_CODE)


def _is_set(col: sa.Column) -> sa.ColumnElement:
    """Profile field set: not null and, for text columns, not empty."""
    if isinstance(col.type, sa.String):
        return sa.and_(col.is_not(None), col != "")
    return col.is_not(None)


def _length(col: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.coalesce(sa.func.length(col), 0)


def _time(table: sa.Table, tc: TimeColumn) -> tuple[sa.Column, str]:
    return table.c[tc.column], tc.unit


def _message_base(
    tables: dict[str, sa.Table],
    mapping: SchemaMapping,
    d: _Dialect,
    start: datetime,
    end: datetime,
    *,
    with_gap: bool,
) -> sa.Subquery:
    """In-window messages reduced to integers (and the join keys, which never leave SQL)."""
    m = tables["messages"]
    spec = mapping.messages
    col, unit = _time(m, spec.created_at)
    ts = d.as_timestamp(col, unit)
    conv = m.c[spec.conversation_id]
    columns = [
        conv.label("conv"),
        m.c[spec.sender_id].label("sender"),
        _length(m.c[spec.content]).label("len"),
        _category_code(m, spec.type, MESSAGE_TYPES).label("code"),
        d.day_of_week(ts).label("dow"),
        d.hour(ts).label("hour"),
    ]
    if with_gap:
        prev = sa.func.lag(col).over(partition_by=conv, order_by=col)
        columns.append(d.gap_seconds(col, prev, unit).label("gap"))
    where = _in_window(col, unit, start, end, d.postgres)
    return sa.select(*columns).where(where).subquery("m")


def _conversation_selects(
    tables: dict[str, sa.Table], mapping: SchemaMapping, conv_ids: sa.Subquery
) -> list[sa.Select]:
    """Type distribution and members per conversation of the in-window conversations."""
    c = tables["conversations"]
    mem = tables["members"]
    spec = mapping.conversations
    code = _category_code(c, spec.type, CONVERSATION_TYPES)
    joined = conv_ids.join(c, c.c[spec.id] == conv_ids.c.conv, isouter=True)
    types = (
        sa.select(
            sa.literal(CONV_TYPE).label("metric"),
            code.label("k1"),
            sa.null().label("k2"),
            sa.func.count().label("n"),
        )
        .select_from(joined)
        .group_by(code)
    )
    per_conv = (
        sa.select(
            code.label("code"),
            sa.func.count(mem.c[mapping.members.user_id]).label("members"),
        )
        .select_from(
            joined.join(
                mem, mem.c[mapping.members.conversation_id] == conv_ids.c.conv, isouter=True
            )
        )
        .group_by(conv_ids.c.conv, code)
        .subquery("pc")
    )
    members = sa.select(
        sa.literal(MEMBERS).label("metric"),
        per_conv.c.code.label("k1"),
        per_conv.c.members.label("k2"),
        sa.func.count().label("n"),
    ).group_by(per_conv.c.code, per_conv.c.members)
    return [types, members]


def _entity_frequency(metric: int, base: sa.Subquery, key: str) -> sa.Select:
    """How many entities (conversations, senders) have each message count."""
    per = (
        sa.select(sa.func.count().label("n"))
        .where(base.c[key].is_not(None))
        .group_by(base.c[key])
        .subquery(f"per_{key}")
    )
    return sa.select(
        sa.literal(metric).label("metric"),
        per.c.n.label("k1"),
        sa.null().label("k2"),
        sa.func.count().label("n"),
    ).group_by(per.c.n)


def _simple_frequency(metric: int, base: sa.Subquery, *keys: str) -> sa.Select:
    k1 = base.c[keys[0]]
    k2 = base.c[keys[1]] if len(keys) > 1 else sa.null()
    query = sa.select(sa.literal(metric).label("metric"), k1.label("k1"), k2.label("k2"), sa.func.count().label("n"))
    return query.where(k1.is_not(None)).group_by(*(base.c[k] for k in keys))


def _sqlite_selects(tables, mapping, d, start, end) -> list[sa.Select]:
    base = _message_base(tables, mapping, d, start, end, with_gap=False)
    gaps = _message_base(tables, mapping, d, start, end, with_gap=True)
    conv_ids = sa.select(base.c.conv).where(base.c.conv.is_not(None)).distinct().subquery("cv")
    return [
        _simple_frequency(LENGTH, base, "len"),
        _simple_frequency(MSG_TYPE, base, "code"),
        _simple_frequency(GRID, base, "dow", "hour"),
        _entity_frequency(PER_CONVERSATION, base, "conv"),
        _entity_frequency(PER_SENDER, base, "sender"),
        _simple_frequency(GAP, gaps, "gap"),
        *_conversation_selects(tables, mapping, conv_ids),
    ]


def _postgres_select(tables, mapping, d, start, end) -> sa.Select:
    """One statement, one scan of messages: GROUPING SETS, then frequencies of the per-entity sets."""
    base = _message_base(tables, mapping, d, start, end, with_gap=True)
    keys = [base.c.len, base.c.code, base.c.dow, base.c.hour, base.c.conv, base.c.sender, base.c.gap]
    sets = [(base.c.len,), (base.c.code,), (base.c.dow, base.c.hour), (base.c.conv,), (base.c.sender,), (base.c.gap,)]
    gid = sa.func.grouping(*keys)

    def bits(*present: sa.ColumnElement) -> int:
        # GROUPING() sets bit (len(keys) - 1 - i) for every key i NOT in the grouping set.
        return sum(1 << (len(keys) - 1 - i) for i, k in enumerate(keys) if k not in present)

    ids = {
        LENGTH: bits(base.c.len),
        MSG_TYPE: bits(base.c.code),
        GRID: bits(base.c.dow, base.c.hour),
        PER_CONVERSATION: bits(base.c.conv),
        PER_SENDER: bits(base.c.sender),
        GAP: bits(base.c.gap),
    }
    g = (
        sa.select(gid.label("gid"), *keys, sa.func.count().label("n"))
        .group_by(sa.func.grouping_sets(*(sa.tuple_(*s) for s in sets)))
        .cte("g")
    )
    metric = sa.case(*((g.c.gid == v, k) for k, v in ids.items()))
    entity = g.c.gid.in_([ids[PER_CONVERSATION], ids[PER_SENDER]])
    k1 = sa.case(
        (entity, g.c.n),
        (g.c.gid == ids[LENGTH], g.c.len),
        (g.c.gid == ids[MSG_TYPE], g.c.code),
        (g.c.gid == ids[GRID], g.c.dow),
        else_=g.c.gap,
    )
    own_key_present = sa.or_(*(g.c[k.name].is_not(None) for k in keys))
    t = (
        sa.select(
            metric.label("metric"),
            k1.label("k1"),
            g.c.hour.label("k2"),
            sa.case((entity, 1), else_=0).label("entity"),
            g.c.n,
        )
        .where(own_key_present)
        .subquery("t")
    )
    messages = sa.select(
        t.c.metric,
        t.c.k1,
        t.c.k2,
        sa.case((t.c.entity == 1, sa.func.count()), else_=sa.cast(sa.func.sum(t.c.n), sa.BigInteger)).label("n"),
    ).group_by(t.c.metric, t.c.k1, t.c.k2, t.c.entity)
    conv_ids = (
        sa.select(g.c.conv).where(g.c.gid == ids[PER_CONVERSATION], g.c.conv.is_not(None)).subquery("cv")
    )
    return sa.union_all(messages, *_conversation_selects(tables, mapping, conv_ids))


def _users_select(tables: dict[str, sa.Table], mapping: SchemaMapping, d: _Dialect, end: datetime) -> sa.Select:
    """Username-length frequency with per-field 'set' counts, users created before the window's end."""
    u = tables["users"]
    spec = mapping.users
    col, unit = _time(u, spec.created_at)
    ulen = sa.func.length(u.c[spec.username])
    fields = [
        sa.cast(sa.func.sum(sa.case((_is_set(u.c[f]), 1), else_=0)), sa.BigInteger).label(f"f{i}")
        for i, f in enumerate(spec.profile_fields)
    ]
    return (
        sa.select(ulen.label("ulen"), sa.func.count().label("n"), *fields)
        .where(col < _bound(end, unit, d.postgres))
        .group_by(ulen)
    )


def _codes_to_names(pairs: dict[int, int], categories: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for code, n in sorted(pairs.items()):
        name = categories[code] if 0 <= code < len(categories) else OTHER
        out[name] = out.get(name, 0) + int(n)
    return out


def _assemble(rows: list[Sequence[int | None]], freq: FrequencyTables) -> None:
    """Fill `freq` from (metric, k1, k2, n) rows."""
    by_metric: dict[int, list[tuple[int, int | None, int]]] = {}
    for metric, k1, k2, n in rows:
        if k1 is None:
            continue
        by_metric.setdefault(int(metric), []).append((int(k1), k2, int(n)))

    def pairs(metric: int) -> Frequency:
        return Frequency.from_pairs([(k, n) for k, _, n in by_metric.get(metric, [])])

    freq.content_length = pairs(LENGTH)
    freq.messages_per_conversation = pairs(PER_CONVERSATION)
    freq.messages_per_sender = pairs(PER_SENDER)
    freq.gap_seconds = pairs(GAP)
    freq.messages_total = freq.content_length.total
    freq.conversations_total = freq.messages_per_conversation.total
    freq.message_types = _codes_to_names({k: n for k, _, n in by_metric.get(MSG_TYPE, [])}, MESSAGE_TYPES)
    grid = np.zeros((7, 24), dtype=np.int64)
    for dow, hour, n in by_metric.get(GRID, []):
        grid[dow, int(hour)] += n
    freq.hour_by_day_of_week = grid
    conv_types: dict[int, int] = {}
    for code, _, n in by_metric.get(CONV_TYPE, []):
        conv_types[code] = conv_types.get(code, 0) + n
    freq.conversation_types = _codes_to_names(conv_types, CONVERSATION_TYPES)
    members: dict[str, list[tuple[int, int]]] = {}
    for code, k2, n in by_metric.get(MEMBERS, []):
        name = CONVERSATION_TYPES[code] if 0 <= code < len(CONVERSATION_TYPES) else OTHER
        members.setdefault(name, []).append((int(k2 or 0), n))
    freq.members_per_conversation = {
        name: _merge_pairs(p) for name, p in sorted(members.items())
    }


def _merge_pairs(pairs: list[tuple[int, int]]) -> Frequency:
    """Pairs may repeat a value (several raw codes -> OTHER): add their counts."""
    merged: dict[int, int] = {}
    for value, n in pairs:
        merged[value] = merged.get(value, 0) + n
    return Frequency.from_pairs(sorted(merged.items()))


def _assemble_users(rows: list[Sequence[int | None]], fields: Sequence[str], freq: FrequencyTables) -> None:
    freq.users_total = int(sum(int(r[1]) for r in rows))
    freq.username_length = Frequency.from_pairs([(int(r[0]), int(r[1])) for r in rows if r[0] is not None])
    freq.profile_fields_set = {f: int(sum(int(r[2 + i] or 0) for r in rows)) for i, f in enumerate(fields)}


def _prepare_session(conn: Connection) -> None:
    """UTC for every date function and comparison; room to hash and sort in memory."""
    if is_postgres(conn):
        conn.execute(sa.text("SELECT set_config('TimeZone', 'UTC', true)"))
        conn.execute(sa.text("SELECT set_config('work_mem', '64MB', true)"))


def extract_frequencies(
    engine: Engine,
    mapping: SchemaMapping,
    *,
    window_start: datetime,
    window_end: datetime,
    statement_timeout_ms: int | None = None,
) -> FrequencyTables:
    """All frequency tables of one window, from one read-only snapshot of the database.

    Refuses (MappingError, listing every missing name) before any aggregate runs when the
    mapping names a table or column the database lacks.
    """
    if window_end <= window_start:
        raise ValueError("window_end must be after window_start")
    freq = FrequencyTables()
    with read_only_snapshot(engine, statement_timeout_ms=statement_timeout_ms) as conn:
        tables = reflect_tables(conn, mapping)
        _prepare_session(conn)
        d = _Dialect(postgres=is_postgres(conn))
        if d.postgres:
            statements: list[sa.Executable] = [_postgres_select(tables, mapping, d, window_start, window_end)]
        else:
            statements = list(_sqlite_selects(tables, mapping, d, window_start, window_end))
        rows: list[Sequence[int | None]] = []
        for statement in statements:
            rows.extend(tuple(r) for r in conn.execute(statement))
        user_rows = [tuple(r) for r in conn.execute(_users_select(tables, mapping, d, window_end))]
    _assemble(rows, freq)
    _assemble_users(user_rows, mapping.users.profile_fields, freq)
    return freq
