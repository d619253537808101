"""SQL aggregates -> FrequencyTables: the only code that reads a production database.

Privacy by construction: every statement returns integers only (counts, lengths, codes);
categories come back as small integer codes produced by a `CASE` inside SQL, so neither an
identifier nor a text value of the mapped tables (raw enum values included) ever reaches
the client. On PostgreSQL three statements read the messages table, two of them `GROUPING
SETS` computing several metrics in one scan (an ordered pass for gaps, conversations and
hours; a content pass for lengths, types and senders) and a sorted one for the top sender's
(conversation, sender) counts; they run at the same time on connections that share one
exported snapshot (see `extract_many`). SQLite (the demo's embedded default) runs the same
Core sub-queries one metric at a time on one connection, as it has no grouping sets.

The skews that decide index behaviour ride on the same passes: the ordered pass also keeps
each conversation's first and last message time (min/max in its sorted group: lifetime and
recency, both reduced to integers inside SQL), and the members join of the conversations it
found gives members per conversation, the size x members grid (power-of-two bucket indexes
computed by integer comparisons) and conversations per member; the pairs statement gives
the top sender's share (per mille, integer arithmetic); the hour buckets give messages per
day when the window starts on a whole hour (else the hour set also groups by the day index).

Gaps are whole seconds, exact below `EXACT_GAP_SECONDS`; longer gaps are rounded down inside
SQL to a power-of-two step of at most 1/1024 of their value (< 0.1 %), within segments that
start at the histogram's log-grid edges, so every gap keeps its histogram bucket. This keeps
the gap aggregate at a few thousand groups instead of one per distinct second (hundreds of
thousands on a month of data), which was the costliest hash table of the sampler.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
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
from shape_pipeline.sampling.frequencies import (
    MEMBER_EDGES,
    SIZE_EDGES,
    Frequency,
    FrequencyTables,
)
from shape_pipeline.sampling.shape import log_grid

OTHER_CODE = -1

# Metric ids of the rows the combined statements return: (metric, key1, key2, count).
(
    LENGTH,
    MSG_TYPE,
    GRID,
    PER_CONVERSATION,
    PER_SENDER,
    GAP,
    CONV_TYPE,
    MEMBERS,
    LEN_CODE,
    HOUR_INDEX,
    LIFETIME,
    TOP_SENDER,
    SIZE_MEMBERS,
    PER_USER,
    DAY,
) = range(15)  # LIFETIME rows: (metric, lifetime key, recency code, conversations)

# The statement groups an extraction may run (all by default): the ordered pass (gaps and
# everything per conversation), the content pass (lengths, types, messages per sender), the
# (conversation, sender) pairs (top sender), the hour buckets (grid, days).
ORDERED, CONTENT, PAIRS, HOURS = "ordered", "content", "pairs", "hours"
ALL_PASSES: frozenset[str] = frozenset({ORDERED, CONTENT, PAIRS, HOURS})


@dataclass(frozen=True)
class _Job:
    """One PostgreSQL statement of a pass, with planner settings of its own (name, value)."""

    statement: sa.Executable
    group: str  # ORDERED, CONTENT, PAIRS or HOURS
    settings: tuple[tuple[str, str], ...] = ()


_UNIT_FACTOR = {"epoch_s": 1, "epoch_ms": 1000}
SECONDS_PER_DAY = 86_400
RECENT_DAYS = (7, 30)  # recency: last message in the window's last 7 / 30 days

EXACT_GAP_SECONDS = 3600  # gaps below this are exact to the second
GAP_STEP_DIVISOR = 1024  # longer gaps: rounded down to a power-of-two step <= start / 1024


def gap_segments(window_seconds: float) -> list[tuple[int, int]]:
    """(start, step) of each rounding segment above EXACT_GAP_SECONDS, up to the window length.

    Segments start at EXACT_GAP_SECONDS and at every log-grid edge above it (the gap
    histogram's edges), so a rounded gap never falls below the edge of its own bucket.
    """
    starts = [EXACT_GAP_SECONDS, *(int(e) for e in log_grid(window_seconds) if e > EXACT_GAP_SECONDS)]
    return [(start, 1 << max(0, (start // GAP_STEP_DIVISOR).bit_length() - 1)) for start in starts]


def gap_key(gap: sa.ColumnElement, segments: Sequence[tuple[int, int]]) -> sa.ColumnElement:
    """The gap as its grouping key: itself below the first segment, else rounded down to its
    segment's step (integer arithmetic only; NULL stays NULL)."""

    def rounded(start: int, step: int) -> sa.ColumnElement:
        return start + (gap - start) // step * step if step > 1 else gap

    whens = [(gap < segments[0][0], gap)]
    whens += [(gap < nxt, rounded(*seg)) for seg, (nxt, _) in zip(segments, segments[1:], strict=False)]
    return sa.case(*whens, else_=rounded(*segments[-1]))


def round_gaps(gaps: np.ndarray, segments: Sequence[tuple[int, int]]) -> np.ndarray:
    """`gap_key` for gaps already in memory (the Parquet source), so both sources agree."""
    gaps = np.asarray(gaps, dtype=np.int64)
    starts = np.array([start for start, _ in segments], dtype=np.int64)
    steps = np.array([step for _, step in segments], dtype=np.int64)
    segment = np.searchsorted(starts, gaps, side="right") - 1
    inside = segment >= 0
    start, step = starts[segment[inside]], steps[segment[inside]]
    out = gaps.copy()
    out[inside] = start + (gaps[inside] - start) // step * step
    return out


def _thresholds(values: Sequence[int]) -> sa.ColumnElement:
    return postgresql.array([sa.literal(int(v), sa.BigInteger) for v in values])


def pow2_bucket(value: sa.ColumnElement, edges: Sequence[int], *, postgres: bool = False) -> sa.ColumnElement:
    """`power_of_two_bucket` in SQL: integer comparisons only, so exact at every power of two
    (0 falls in the first bucket, values beyond the last edge in the last).

    PostgreSQL: `width_bucket` over the inner edges (how many of them are <= value), one call
    instead of a CASE ladder; the ladders made JIT compilation of the statement twice as long.
    """
    last = len(edges) - 2
    if postgres:
        return sa.func.width_bucket(value, _thresholds(edges[1 : last + 1]))
    return sa.case(*[(value < edges[i + 1], i) for i in range(last)], else_=last)


def searched_gap_key(gap: sa.ColumnElement, segments: Sequence[tuple[int, int]]) -> sa.ColumnElement:
    """`gap_key` by a search (PostgreSQL `width_bucket` finds the segment, constant arrays give
    its start and step): the same keys, a far smaller expression to compile. Used for the
    per-conversation lifetimes; the per-message gaps keep the CASE, measured fast per row."""
    index = sa.func.width_bucket(gap, _thresholds([start for start, _ in segments]))
    start = _thresholds([start for start, _ in segments])[index]
    step = _thresholds([step for _, step in segments])[index]
    return sa.case((gap < segments[0][0], gap), else_=start + (gap - start) // step * step)


def _NO_KEY() -> sa.ColumnElement:  # noqa: N802 - reads like the constant it stands for
    """The unused second key: a typed integer, so every UNION branch and row is all integers."""
    return sa.cast(sa.literal(-1), sa.BigInteger)


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

    def hour_index(self, col: sa.ColumnElement, unit: str) -> sa.ColumnElement:
        """Whole hours since 1970-01-01 00:00 UTC (a Thursday): one cheap key per message;
        hour of day and weekday follow from it after aggregation."""
        if unit in _UNIT_FACTOR:
            return self.floor(col / float(3600 * _UNIT_FACTOR[unit]))
        return self.floor(sa.func.date_part("epoch", col) / 3600.0)

    def gap_seconds(self, col: sa.ColumnElement, prev: sa.ColumnElement, unit: str) -> sa.ColumnElement:
        """Whole seconds (floor) from `prev` to `col`."""
        if unit == "epoch_s":
            return self.floor(col - prev)
        if unit == "epoch_ms":
            return self.floor((col - prev) / 1000.0)
        if self.postgres:
            # date_part (double) of a microsecond interval floors exactly, and is much faster
            # than extract() (numeric)
            return self.floor(sa.func.date_part("epoch", col - prev))
        # julianday is a float in days; round to milliseconds before the floor.
        millis = sa.func.round((sa.func.julianday(col) - sa.func.julianday(prev)) * 86_400_000.0)
        return self.floor(millis / 1000.0)

    def day_index(self, col: sa.Column, unit: str, start: datetime) -> sa.ColumnElement:
        """Whole UTC days from `start` (the window's start) to `col`: floor(seconds / 86400)."""
        origin = sa.literal(_bound(start, unit, self.postgres), col.type)
        return self.gap_seconds(col, origin, unit) // SECONDS_PER_DAY


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
    return _code_of(_enum_column(table, enum) if enum.constant is None else None, enum, categories)


def _raw_category(table: sa.Table, enum: EnumColumn) -> sa.ColumnElement:
    """The raw type column (a constant stands in when the app has none): grouped inside SQL
    and coded by `_code_of` after grouping, so the CASE runs once per group, not per row."""
    return _enum_column(table, enum) if enum.constant is None else sa.literal(0, sa.Integer)


def _enum_column(table: sa.Table, enum: EnumColumn) -> sa.Column:
    """The app's own type column (an enum without a constant names one: the mapping checks it)."""
    assert enum.column is not None
    return table.c[enum.column]


def _code(name: str | None, categories: Sequence[str]) -> int:
    """A logical category's code; OTHER (or no category) is OTHER_CODE."""
    return categories.index(name) if name in categories else OTHER_CODE


def _code_of(col: sa.ColumnElement | None, enum: EnumColumn, categories: Sequence[str]) -> sa.ColumnElement:
    """The CASE that codes raw values: named ones by their category (those the mapping sends to
    OTHER, and its `other` raw value, as OTHER_CODE), NULL by `default`, anything else OTHER."""
    if enum.constant is not None or col is None:
        return sa.literal(_code(enum.constant, categories), sa.Integer)
    raw = sa.cast(col, sa.Text)
    whens = [(raw == value, _code(name, categories)) for value, name in enum.categories_by_raw().items()]
    whens.insert(0, (col.is_(None), _code(enum.default, categories)))
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


def _previous(col: sa.ColumnElement, conv: sa.ColumnElement) -> sa.ColumnElement:
    """The conversation's previous message time. A ROWS frame (which lag() ignores anyway)
    spares PostgreSQL the peer-row tracking of the default RANGE frame: 15 % less window time."""
    return sa.func.lag(col).over(partition_by=conv, order_by=col, rows=(0, 0))


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
        col.label("t"),
        d.day_index(col, unit, start).label("day"),
    ]
    if with_gap:
        prev = _previous(col, conv)
        columns.append(d.gap_seconds(col, prev, unit).label("gap"))
    where = _in_window(col, unit, start, end, d.postgres)
    base = sa.select(*columns).where(where).subquery("m")
    return _with_gap_keys(base, start, end) if with_gap else base


def _with_gap_keys(sub: sa.Subquery, start: datetime, end: datetime) -> sa.Subquery:
    """`sub` with its `gap` column replaced by `gap_key(gap)`: one level up, so the window
    function is evaluated once per row rather than once per CASE branch."""
    key = gap_key(sub.c.gap, gap_segments((end - start).total_seconds()))
    return sa.select(*(key.label("gap") if c.name == "gap" else c for c in sub.c)).subquery(f"{sub.name}_k")


def window_day_count(window_start: datetime, window_end: datetime) -> int:
    """Days of the window, a last partial day included: the length of `messages_per_day`."""
    return max(0, math.ceil((window_end - window_start).total_seconds() / SECONDS_PER_DAY))


def top_sender_permille(top: Any, total: Any) -> Any:
    """round(1000 * top / total), halves up, in integer arithmetic (SQL expressions or numpy
    arrays alike), so both sources agree to the unit."""
    return (top * 2000 + total) // (total * 2)


def _per_conversation(source: sa.FromClause, n: sa.ColumnElement) -> sa.Subquery:
    """One row per active conversation: id, in-window messages, first and last message time."""
    return (
        sa.select(
            source.c.conv, n.label("n"), sa.func.min(source.c.t).label("tmin"), sa.func.max(source.c.t).label("tmax")
        )
        .where(source.c.conv.is_not(None))
        .group_by(source.c.conv)
        .subquery("cv")
    )


def recent_bound(start: datetime, end: datetime, days: int) -> datetime:
    """Start of the window's last `days` days (the window's start when it is shorter; never
    before year 1)."""
    span = timedelta(days=days)
    return start if end - start <= span else end - span


def _lifetime_select(cv: sa.Subquery, d: _Dialect, unit: str, start: datetime, end: datetime) -> sa.Select:
    """(LIFETIME, lifetime key, recency code, conversations): lifetime = last minus first
    message in whole seconds, rounded like gaps (`gap_key`); recency code = how many of the
    last-30-days / last-7-days bounds the last message reaches (0, 1 or 2)."""
    recent = [
        sa.literal(_bound(recent_bound(start, end, days), unit, d.postgres), cv.c.tmax.type) for days in RECENT_DAYS
    ]
    code = sa.case((cv.c.tmax >= recent[0], 2), (cv.c.tmax >= recent[1], 1), else_=0)
    life = sa.select(d.gap_seconds(cv.c.tmax, cv.c.tmin, unit).label("life"), code.label("recent")).subquery("lt")
    key = (searched_gap_key if d.postgres else gap_key)(life.c.life, gap_segments((end - start).total_seconds()))
    return sa.select(
        sa.literal(LIFETIME).label("metric"),
        key.label("k1"),
        sa.cast(life.c.recent, sa.BigInteger).label("k2"),
        sa.func.count().label("n"),
    ).group_by(key, life.c.recent)


def _pairs(source: sa.FromClause) -> sa.Subquery:
    """In-window messages per (conversation, sender). On PostgreSQL a statement of its own: a
    pipelined hash aggregate costs far less than a grouping set whose rows (one per pair:
    nearly one per message when senders scatter) a CTE would have to store and read back."""
    return (
        sa.select(source.c.conv, source.c.sender, sa.func.count().label("n"))
        .group_by(source.c.conv, source.c.sender)
        .subquery("pairs")
    )


def _top_sender_select(pairs: sa.Subquery) -> sa.Select:
    """(TOP_SENDER, per mille, conversations) from (conv, sender, n) pairs: the top sender's
    messages over all the conversation's in-window messages (a NULL sender counts in the
    total, never as the top sender)."""
    top = sa.func.max(sa.case((pairs.c.sender.is_not(None), pairs.c.n)))
    per = (
        sa.select(top.label("top"), sa.cast(sa.func.sum(pairs.c.n), sa.BigInteger).label("total"))
        .where(pairs.c.conv.is_not(None))
        .group_by(pairs.c.conv)
        .subquery("ts")
    )
    permille = top_sender_permille(per.c.top, per.c.total)
    return (
        sa.select(
            sa.literal(TOP_SENDER).label("metric"),
            permille.label("k1"),
            _NO_KEY().label("k2"),
            sa.func.count().label("n"),
        )
        .where(per.c.top.is_not(None))
        .group_by(permille)
    )


def _membership(
    tables: dict[str, sa.Table], mapping: SchemaMapping, cv: sa.Subquery, d: _Dialect
) -> tuple[sa.FromClause, sa.FromClause]:
    """Of the in-window conversations `cv` (conv, n): one row per conversation (code, size,
    members) and one per member of at least one of them (k: how many). PostgreSQL joins the
    members once and groups both ways with GROUPING SETS; SQLite groups the join twice."""
    c, mem = tables["conversations"], tables["members"]
    member_conv, member_user = mem.c[mapping.members.conversation_id], mem.c[mapping.members.user_id]
    code = _category_code(c, mapping.conversations.type, CONVERSATION_TYPES)
    joined = cv.join(c, c.c[mapping.conversations.id] == cv.c.conv, isouter=True).join(
        mem, member_conv == cv.c.conv, isouter=True
    )
    if d.postgres:
        rows = (
            sa.select(cv.c.conv, code.label("code"), cv.c.n.label("size"), member_user.label("user"))
            .select_from(joined)
            .subquery("mj")
        )
        g, ids = _grouped(
            rows,
            {MEMBERS: ("conv", "code", "size"), PER_USER: ("user",)},
            "gm",
            extra=(sa.func.count(rows.c.user).label("members"),),
        )
        per_conv: sa.FromClause = (
            sa.select(g.c.code, g.c.size, g.c.members).where(g.c.gid == ids[MEMBERS]).subquery("pc")
        )
        per_user = sa.select(g.c.n.label("k")).where(g.c.gid == ids[PER_USER], g.c.user.is_not(None)).subquery("pu")
        return per_conv, per_user
    per_conv = (
        sa.select(code.label("code"), cv.c.n.label("size"), sa.func.count(member_user).label("members"))
        .select_from(joined)
        .group_by(cv.c.conv, code, cv.c.n)
        .cte("pc")
    )
    per_user = (
        sa.select(sa.func.count().label("k"))
        .select_from(cv.join(mem, member_conv == cv.c.conv))
        .where(member_user.is_not(None))
        .group_by(member_user)
        .subquery("pu")
    )
    return per_conv, per_user


def _counted(metric: int, k1: sa.ColumnElement, k2: sa.ColumnElement | None = None) -> sa.Select:
    """(metric, k1, k2, how many rows) grouped by the keys."""
    second = _NO_KEY() if k2 is None else k2
    keys = (k1,) if k2 is None else (k1, k2)
    return sa.select(
        sa.literal(metric).label("metric"), k1.label("k1"), second.label("k2"), sa.func.count().label("n")
    ).group_by(*keys)


def _conversation_selects(
    tables: dict[str, sa.Table], mapping: SchemaMapping, cv: sa.Subquery, d: _Dialect
) -> list[sa.Select]:
    """Of the in-window conversations `cv` (conv, n): type distribution, members per
    conversation, the size x members grid and active conversations per member."""
    pc, pu = _membership(tables, mapping, cv, d)
    return [
        _counted(CONV_TYPE, pc.c.code),
        _counted(MEMBERS, pc.c.code, pc.c.members),
        _counted(
            SIZE_MEMBERS,
            pow2_bucket(pc.c.size, SIZE_EDGES, postgres=d.postgres),
            pow2_bucket(pc.c.members, MEMBER_EDGES, postgres=d.postgres),
        ),
        _counted(PER_USER, pu.c.k),
    ]


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
        _NO_KEY().label("k2"),
        sa.func.count().label("n"),
    ).group_by(per.c.n)


def _simple_frequency(metric: int, base: sa.Subquery, *keys: str) -> sa.Select:
    k1 = base.c[keys[0]]
    k2 = base.c[keys[1]] if len(keys) > 1 else _NO_KEY()
    query = sa.select(sa.literal(metric).label("metric"), k1.label("k1"), k2.label("k2"), sa.func.count().label("n"))
    return query.where(k1.is_not(None)).group_by(*(base.c[k] for k in keys))


def _sqlite_selects(tables, mapping, d, start, end, passes: frozenset[str]) -> list[sa.Select]:
    """One metric a statement, grouped like the PostgreSQL passes so `passes` means the same."""
    base = _message_base(tables, mapping, d, start, end, with_gap=False)
    gaps = _message_base(tables, mapping, d, start, end, with_gap=True)
    cv = _per_conversation(base, sa.func.count())
    groups = {
        CONTENT: lambda: [
            _simple_frequency(LENGTH, base, "len"),
            _simple_frequency(MSG_TYPE, base, "code"),
            _entity_frequency(PER_SENDER, base, "sender"),
        ],
        HOURS: lambda: [_simple_frequency(GRID, base, "dow", "hour"), _simple_frequency(DAY, base, "day")],
        ORDERED: lambda: [
            _entity_frequency(PER_CONVERSATION, base, "conv"),
            _simple_frequency(GAP, gaps, "gap"),
            _lifetime_select(cv, d, mapping.messages.created_at.unit, start, end),
            *_conversation_selects(tables, mapping, cv, d),
        ],
        PAIRS: lambda: [_top_sender_select(_pairs(base))],
    }
    return [statement for name, build in groups.items() if name in passes for statement in build()]


def _grouped(
    base: sa.Subquery, sets: dict[int, tuple[str, ...]], name: str, extra: Sequence[sa.ColumnElement] = ()
) -> tuple[sa.CTE, dict[int, int]]:
    """One GROUPING SETS aggregate over `base` (one scan) and the GROUPING() id of each set;
    `extra` aggregates ride along (computed for every set)."""
    names = list(dict.fromkeys(k for keys in sets.values() for k in keys))
    cols = [base.c[k] for k in names]

    def gid(keys: tuple[str, ...]) -> int:
        # GROUPING() sets bit (n - 1 - i) for every argument i NOT in the grouping set.
        return sum(1 << (len(names) - 1 - i) for i, k in enumerate(names) if k not in keys)

    g = (
        sa.select(sa.func.grouping(*cols).label("gid"), *cols, sa.func.count().label("n"), *extra)
        .group_by(sa.func.grouping_sets(*(sa.tuple_(*(base.c[k] for k in keys)) for keys in sets.values())))
        .cte(name)
    )
    return g, {metric: gid(keys) for metric, keys in sets.items()}


def _set_rows(g: sa.CTE, metric: int, gid: int, k1: str, k2: str | None = None) -> sa.Select:
    """(metric, k1, k2, n) rows of one grouping set."""
    second = g.c[k2] if k2 else _NO_KEY()
    return sa.select(sa.literal(metric).label("metric"), g.c[k1].label("k1"), second.label("k2"), g.c.n).where(
        g.c.gid == gid, g.c[k1].is_not(None)
    )


def _set_entities(g: sa.CTE, metric: int, gid: int, key: str) -> sa.Select:
    """(metric, messages, NULL, entities) rows: how many conversations/senders wrote n messages."""
    return (
        sa.select(
            sa.literal(metric).label("metric"), g.c.n.label("k1"), _NO_KEY().label("k2"), sa.func.count().label("n")
        )
        .where(g.c.gid == gid, g.c[key].is_not(None))
        .group_by(g.c.n)
    )


def _starts_on_an_hour(moment: datetime) -> bool:
    """Hours since the epoch then fall wholly inside one day of the window."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0) == moment


def _postgres_selects(
    tables, mapping, d, start, end, passes: frozenset[str] = ALL_PASSES, *, views: bool = False
) -> list[_Job]:
    """The statements of the asked passes, as jobs for the connections' shared queue
    (`extract_many`), each with the planner settings it needs.

    The ordered pass (conversation, time: an index on them is read in order, else one sort):
    gaps via lag() and messages per conversation with its first and last message time (a
    sorted group: nearly free) with GROUPING SETS, the hour buckets as a third set when asked
    for, then lifetime, recency, the conversation and member aggregates of the conversations
    found (members joined once, grouped by conversation and by member with GROUPING SETS).
    The content pass: length x type and messages per sender with GROUPING SETS (the raw type
    is grouped and coded afterwards: one CASE a group, not a row). The top sender's share from
    (conversation, sender) counts (`_pairs`), sorted: they cost little when senders post where
    they are members, and as much as a pass when every message has a new pair. The hour
    buckets alone (a plain GROUP BY) when the ordered pass is not asked for.
    """
    m = tables["messages"]
    spec = mapping.messages
    col, unit = _time(m, spec.created_at)
    conv = m.c[spec.conversation_id]
    where = _in_window(col, unit, start, end, True)
    prev = _previous(col, conv)
    hour_keys = [d.hour_index(col, unit).label("h")]
    if not _starts_on_an_hour(start):
        hour_keys.append(d.day_index(col, unit, start).label("day"))
    hour_names = tuple(k.name for k in hour_keys)
    # The hour buckets ride on the ordered pass when both are asked for: a third hashed set
    # there (measured +0.6 s at 5 million messages) costs less than a scan of their own (1.0
    # to 1.6 s). Safe from the planner's group estimate: keys computed under the window
    # function are sub-query outputs, estimated at 200 groups (a flattened hour expression
    # is estimated at one group per message, and its hash set would be sorted instead).
    hours_ride = ORDERED in passes and HOURS in passes
    ordered = _with_gap_keys(
        sa.select(
            conv.label("conv"),
            col.label("t"),
            d.gap_seconds(col, prev, unit).label("gap"),
            *(hour_keys if hours_ride else ()),
        )
        .where(where)
        .subquery("w"),
        start,
        end,
    )
    sets = {PER_CONVERSATION: ("conv",), GAP: ("gap",), **({HOUR_INDEX: hour_names} if hours_ride else {})}
    g, ids = _grouped(
        ordered,
        sets,
        "g",
        extra=(
            sa.func.min(ordered.c.t).label("tmin"),
            sa.func.max(ordered.c.t).label("tmax"),
        ),
    )
    cv = (
        sa.select(g.c.conv, g.c.n, g.c.tmin, g.c.tmax)
        .where(g.c.gid == ids[PER_CONVERSATION], g.c.conv.is_not(None))
        .subquery("cv")
    )
    first = sa.union_all(
        _set_entities(g, PER_CONVERSATION, ids[PER_CONVERSATION], "conv"),
        _set_rows(g, GAP, ids[GAP], "gap"),
        _lifetime_select(cv, d, unit, start, end),
        *_conversation_selects(tables, mapping, cv, d),
        *([_set_rows(g, HOUR_INDEX, ids[HOUR_INDEX], *hour_names)] if hours_ride else []),
    )
    hours = _simple_frequency(HOUR_INDEX, sa.select(*hour_keys).where(where).subquery("hw"), *hour_names)
    content = (
        sa.select(
            _length(m.c[spec.content]).label("len"),
            _raw_category(m, spec.type).label("t"),
            m.c[spec.sender_id].label("sender"),
        )
        .where(where)
        .subquery("c")
    )
    g2, ids2 = _grouped(content, {LEN_CODE: ("len", "t"), PER_SENDER: ("sender",)}, "g2")
    len_code = sa.select(
        sa.literal(LEN_CODE).label("metric"),
        g2.c.len.label("k1"),
        sa.cast(_code_of(g2.c.t, spec.type, MESSAGE_TYPES), sa.BigInteger).label("k2"),
        g2.c.n,
    ).where(g2.c.gid == ids2[LEN_CODE], g2.c.len.is_not(None))
    second = sa.union_all(len_code, _set_entities(g2, PER_SENDER, ids2[PER_SENDER], "sender"))
    pairs = _pairs(sa.select(conv.label("conv"), m.c[spec.sender_id].label("sender")).where(where).subquery("p"))
    jobs = {
        # On a view (DP), hash joins only. The planner cannot estimate how many conversations
        # the pass finds: over the bounded members (a sub-query, no index) it nested a loop
        # over every member pair for each conversation (quadratic: 3.5 s of 6.4 s at a million
        # messages), and it merge-joined the bounded messages by walking the (conversation,
        # time) index with a heap fetch per message in index order (random reads: 15 s of 22 s
        # at 5 million). Tables keep the planner's choice: index lookups of the members of few
        # active conversations beat a hash of a large members table.
        ORDERED: _Job(first, ORDERED, (("enable_nestloop", "off"), ("enable_mergejoin", "off")) if views else ()),
        # sorted, not hashed: the (conversation, sender) groups are nearly one per message when
        # senders scatter, and a sort (external beyond work_mem) beat the hash table that
        # outgrew memory and spilled by 1.5x at 5 million messages
        PAIRS: _Job(_top_sender_select(pairs), PAIRS, (("enable_hashagg", "off"),)),
        CONTENT: _Job(second, CONTENT),
        HOURS: _Job(hours, HOURS),
    }
    return [job for name, job in jobs.items() if name in passes and not (name == HOURS and hours_ride)]


# Passes that may read one evaluation of a view together (PAIRS runs sorted, not hashed).
_FOLDABLE: frozenset[str] = frozenset({ORDERED, CONTENT, HOURS})


def _postgres_jobs(tables, mapping, d, start, end, passes: frozenset[str], *, views: bool) -> list[_Job]:
    """`_postgres_selects`, except that on a view (DP: messages bounded per user, a sort and a
    window over every message) the passes that would each evaluate it again read it once:
    one statement, the view as a materialized CTE that the ORDERED, CONTENT and HOURS
    selects share (measured at 5 million messages: the view cost 5 s an evaluation)."""
    messages = tables["messages"]
    folded = passes & _FOLDABLE
    if not views or len(folded) < 2 or not isinstance(messages, sa.Subquery):
        return _postgres_selects(tables, mapping, d, start, end, passes, views=views)
    once = messages.element.cte(f"{messages.name}_once").prefix_with("MATERIALIZED")
    shared = _postgres_selects({**tables, "messages": once}, mapping, d, start, end, folded, views=True)
    settings = tuple(dict.fromkeys(setting for job in shared for setting in job.settings))
    selects = [cast(sa.Select, job.statement) for job in shared]  # the passes' statements are SELECTs
    job = _Job(sa.union_all(*selects), ORDERED, settings)
    return [job, *_postgres_selects(tables, mapping, d, start, end, passes - folded, views=True)]


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


def _frequency(values: np.ndarray, counts: np.ndarray) -> Frequency:
    """Frequency of (value, count) pairs; a value may repeat (several raw codes -> OTHER)."""
    if len(values) == 0:
        return Frequency.empty()
    uniq, inverse = np.unique(values, return_inverse=True)
    return Frequency(uniq.astype(np.float64), np.bincount(inverse, weights=counts).astype(np.int64))


def _category(code: int, categories: Sequence[str]) -> str:
    return categories[code] if 0 <= code < len(categories) else OTHER


def _category_counts(codes: np.ndarray, counts: np.ndarray, categories: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for code, n in zip(codes.tolist(), counts.tolist(), strict=True):
        name = _category(int(code), categories)
        out[name] = out.get(name, 0) + int(n)
    return out


def _messages_per_day(
    day: np.ndarray,
    hours: np.ndarray,
    hour_day: np.ndarray,
    counts: np.ndarray,
    hour_counts: np.ndarray,
    start: datetime,
    end: datetime,
) -> np.ndarray:
    """Messages per day of the window from DAY rows (SQLite) or hour buckets (PostgreSQL: the
    day key rides along when the window does not start on a whole hour, else it follows from
    the hour since the epoch)."""
    derived = (hours * 3600 - int(start.timestamp())) // SECONDS_PER_DAY
    days = np.concatenate([day, np.where(hour_day >= 0, hour_day, derived)]).astype(np.int64)
    weights = np.concatenate([counts, hour_counts])
    return np.bincount(days, weights=weights, minlength=window_day_count(start, end)).astype(np.int64)


def _assemble_skews(part, freq: FrequencyTables, start: datetime, end: datetime) -> None:
    """The skews that decide index behaviour (lifetime, recency, top sender, grid, per user, per day)."""
    life, recent, life_n = part(LIFETIME)
    freq.lifetime_seconds = _frequency(life, life_n)
    freq.active_last_7_days = int(life_n[recent == 2].sum())
    freq.active_last_30_days = int(life_n[recent >= 1].sum())
    freq.top_sender_permille = _frequency(*part(TOP_SENDER)[::2])
    freq.conversations_per_user = _frequency(*part(PER_USER)[::2])
    size, width, grid_n = part(SIZE_MEMBERS)
    np.add.at(freq.size_by_members, (size, width), grid_n)
    day, _, day_n = part(DAY)
    hours, hour_day, hour_n = part(HOUR_INDEX)
    freq.messages_per_day = _messages_per_day(day, hours, hour_day, day_n, hour_n, start, end)


def _assemble(rows: np.ndarray, freq: FrequencyTables, start: datetime, end: datetime) -> None:
    """Fill `freq` from an (n, 4) integer array of (metric, k1, k2, count) rows."""
    rows = rows.reshape(-1, 4)

    def part(metric: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sel = rows[rows[:, 0] == metric]
        return sel[:, 1], sel[:, 2], sel[:, 3]

    # PostgreSQL returns length x type in one set, and hours since the epoch (a Thursday).
    lc_len, lc_code, lc_n = part(LEN_CODE)
    hi, _, hi_n = part(HOUR_INDEX)
    length, _, length_n = part(LENGTH)
    types, _, types_n = part(MSG_TYPE)
    gd, gh, gn = part(GRID)
    length, length_n = np.concatenate([length, lc_len]), np.concatenate([length_n, lc_n])
    types, types_n = np.concatenate([types, lc_code]), np.concatenate([types_n, lc_n])
    gd, gh, gn = np.concatenate([gd, (hi // 24 + 3) % 7]), np.concatenate([gh, hi % 24]), np.concatenate([gn, hi_n])

    freq.content_length = _frequency(length, length_n)
    freq.messages_per_conversation = _frequency(*part(PER_CONVERSATION)[::2])
    freq.messages_per_sender = _frequency(*part(PER_SENDER)[::2])
    freq.gap_seconds = _frequency(*part(GAP)[::2])
    freq.messages_total = freq.content_length.total
    freq.conversations_total = freq.messages_per_conversation.total
    freq.message_types = _category_counts(types, types_n, MESSAGE_TYPES)
    grid = np.zeros((7, 24), dtype=np.int64)
    np.add.at(grid, (gd, gh), gn)
    freq.hour_by_day_of_week = grid
    freq.conversation_types = _category_counts(*part(CONV_TYPE)[::2], CONVERSATION_TYPES)
    codes, members, n = part(MEMBERS)
    names = np.array([_category(int(c), CONVERSATION_TYPES) for c in codes.tolist()], dtype=object)
    freq.members_per_conversation = {
        name: _frequency(members[names == name], n[names == name]) for name in sorted(set(names.tolist()))
    }
    _assemble_skews(part, freq, start, end)


def _assemble_users(rows: Sequence[Sequence[Any]], fields: Sequence[str], freq: FrequencyTables) -> None:
    freq.users_total = int(sum(int(r[1]) for r in rows))
    freq.username_length = Frequency.from_pairs([(int(r[0]), int(r[1])) for r in rows if r[0] is not None])
    freq.profile_fields_set = {f: int(sum(int(r[2 + i] or 0) for r in rows)) for i, f in enumerate(fields)}


# Transaction-local settings (PostgreSQL): UTC for every date function and comparison; room
# to hash every grouping set in memory (GROUPING SETS fall back to sorting when the planner
# fears a hash table will not fit); full JIT compilation (inlined and optimized: measured
# 8-20 % less CPU on both passes over 5 million rows; ignored by servers built without LLVM);
# no parallel workers: every statement has a connection of its own already, and the only one
# the planner parallelized (the sorted pairs) funnelled 4.9 million partial groups through a
# Gather Merge into its leader (measured at 5 million messages on 2 cores: median 8.8 s
# with workers, 6.6 s without).
_SESSION = {
    "TimeZone": "UTC",
    "work_mem": "256MB",
    "jit": "on",
    "jit_inline_above_cost": "0",
    "jit_optimize_above_cost": "0",
    "max_parallel_workers_per_gather": "0",
}


def _prepare_session(conn: Connection, prepare: Callable[[Connection], None] | None = None) -> None:
    if prepare is not None:
        prepare(conn)
    if is_postgres(conn):
        for name, value in _SESSION.items():
            conn.execute(sa.text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})


def _fetch(conn: Connection, statement: sa.Executable) -> np.ndarray:
    """Raw DBAPI rows: all integers by construction, so straight into numpy."""
    return np.asarray(conn.execute(statement).cursor.fetchall(), dtype=np.int64).reshape(-1, 4)


def _run_job(conn: Connection, job: _Job) -> np.ndarray:
    """One statement, with its own planner settings (transaction-local) for its duration only."""
    if not job.settings:
        return _fetch(conn, job.statement)
    before = {
        name: conn.execute(sa.text("SELECT current_setting(:name)"), {"name": name}).scalar_one()
        for name, _ in job.settings
    }
    for name, value in job.settings:
        conn.execute(sa.text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})
    rows = _fetch(conn, job.statement)
    for name, value in before.items():
        conn.execute(sa.text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})
    return rows


def _drain(conn: Connection, queue: deque[tuple[int, _Job]], stop: threading.Event) -> list[tuple[int, np.ndarray]]:
    """Take jobs from the shared queue until none is left (deque.popleft is thread-safe);
    `stop` (another connection failed) ends the loop early."""
    out = []
    while not stop.is_set():
        try:
            index, job = queue.popleft()
        except IndexError:
            break
        try:
            out.append((index, _run_job(conn, job)))
        except BaseException:
            stop.set()
            raise
    return out


def _drain_in_snapshot(
    engine: Engine,
    snapshot: str,
    queue: deque[tuple[int, _Job]],
    stop: threading.Event,
    statement_timeout_ms: int | None,
    prepare: Callable[[Connection], None] | None = None,
) -> list[tuple[int, np.ndarray]]:
    """Run jobs on another connection that sees exactly the exported snapshot."""
    if stop.is_set() or not queue:
        return []
    with read_only_snapshot(engine, statement_timeout_ms=statement_timeout_ms, snapshot=snapshot) as conn:
        _prepare_session(conn, prepare)
        return _drain(conn, queue, stop)


TableViews = Callable[[dict[str, Any], bool], dict[str, Any]]  # (reflected tables, postgres) -> tables or views


@dataclass(frozen=True)
class Extraction:
    """One set of frequency tables to extract: `views` may replace the reflected tables with
    sub-queries of the same columns (DP mode: bounded user contributions, `sampling.bounded`);
    `passes` names the statement groups to run (the others' metrics stay empty)."""

    views: TableViews | None = None
    passes: frozenset[str] = ALL_PASSES


# Connections reading the messages table at once on PostgreSQL (each statement is a
# single-process plan: window functions and GROUPING SETS do not run in parallel workers):
# one per statement of a plain extraction (ordered, pairs, content), so no core waits for a
# queue; the DP extraction's six statements share them.
DEFAULT_CONNECTIONS = 3

# Statements by expected cost, costliest first (longest-processing-time-first scheduling).
_ORDER = (ORDERED, PAIRS, CONTENT, HOURS)


def extract_frequencies(
    engine: Engine,
    mapping: SchemaMapping,
    *,
    window_start: datetime,
    window_end: datetime,
    statement_timeout_ms: int | None = None,
    views: TableViews | None = None,
    prepare: Callable[[Connection], None] | None = None,
    passes: frozenset[str] = ALL_PASSES,
    connections: int = DEFAULT_CONNECTIONS,
) -> FrequencyTables:
    """All frequency tables of one window, from one read-only snapshot of the database.

    Refuses (MappingError, listing every missing name) before any aggregate runs when the
    mapping names a table or column the database lacks. `views`, `passes`: see `Extraction`;
    `prepare` runs on every connection first; `connections`: see `extract_many`.
    """
    return extract_many(
        engine,
        mapping,
        [Extraction(views, passes)],
        window_start=window_start,
        window_end=window_end,
        statement_timeout_ms=statement_timeout_ms,
        prepare=prepare,
        connections=connections,
    )[0]


def extract_many(
    engine: Engine,
    mapping: SchemaMapping,
    extractions: Sequence[Extraction],
    *,
    window_start: datetime,
    window_end: datetime,
    statement_timeout_ms: int | None = None,
    prepare: Callable[[Connection], None] | None = None,
    connections: int = DEFAULT_CONNECTIONS,
) -> list[FrequencyTables]:
    """The frequency tables of several extractions of one window, all from one read-only
    snapshot of the database (the users statement runs once and serves them all).

    On PostgreSQL the statements of every extraction form one queue, costliest first, that up
    to `connections` connections drain at the same time. The first connection exports its
    snapshot (`pg_export_snapshot()`) and the others import it (`SET TRANSACTION SNAPSHOT`),
    so every statement reads one consistent state of the database, as one REPEATABLE READ
    transaction would; every connection is read-only, REPEATABLE READ, named and bounded by
    the statement timeout. SQLite runs everything on one connection.
    """
    if window_end <= window_start:
        raise ValueError("window_end must be after window_start")
    if connections < 1:
        raise ValueError("connections must be at least 1")
    parts: list[list[np.ndarray]] = [[] for _ in extractions]
    with read_only_snapshot(engine, statement_timeout_ms=statement_timeout_ms) as conn:
        reflected = reflect_tables(conn, mapping)
        _prepare_session(conn, prepare)
        d = _Dialect(postgres=is_postgres(conn))
        views = [reflected if x.views is None else x.views(reflected, d.postgres) for x in extractions]
        if d.postgres:
            jobs = [
                (i, job)
                for i, (x, tables) in enumerate(zip(extractions, views, strict=True))
                for job in _postgres_jobs(
                    tables, mapping, d, window_start, window_end, x.passes, views=x.views is not None
                )
            ]
            jobs.sort(key=lambda item: _ORDER.index(item[1].group))  # stable: extraction order within a group
            queue, stop = deque(jobs), threading.Event()
            helpers = min(connections, len(jobs)) - 1
            snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one() if helpers > 0 else ""
            with ThreadPoolExecutor(max_workers=max(1, helpers), thread_name_prefix="sampler") as pool:
                others = [
                    pool.submit(_drain_in_snapshot, engine, snapshot, queue, stop, statement_timeout_ms, prepare)
                    for _ in range(helpers)
                ]
                try:
                    done = _drain(conn, queue, stop)
                    user_rows = [tuple(r) for r in conn.execute(_users_select(reflected, mapping, d, window_end))]
                except BaseException:
                    stop.set()  # the others finish their current statement, then stop
                    raise
                for future in others:
                    done += future.result()  # a failure on another connection is raised here
            for index, rows in done:
                parts[index].append(rows)
        else:
            for i, (x, tables) in enumerate(zip(extractions, views, strict=True)):
                parts[i] = [
                    _fetch(conn, st) for st in _sqlite_selects(tables, mapping, d, window_start, window_end, x.passes)
                ]
            user_rows = [tuple(r) for r in conn.execute(_users_select(reflected, mapping, d, window_end))]
    out = []
    for extraction_parts in parts:
        freq = FrequencyTables()
        rows = np.concatenate(extraction_parts) if extraction_parts else np.zeros((0, 4), dtype=np.int64)
        _assemble(rows, freq, window_start, window_end)
        _assemble_users(user_rows, mapping.users.profile_fields, freq)
        out.append(freq)
    return out
