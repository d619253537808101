"""Referential and window integrity of a synthetic dataset: counts of breaches, never rows.

Checked: every sender is a member of the conversation; every direct message has one member (a
note to self) or two; no message outside the window or before its conversation was created; no dangling
reference (message -> conversation/user, member -> conversation/user). Databases are checked
through the schema mapping with a handful of aggregate queries (one pass over the messages
table); Parquet folders with Arrow joins. On PostgreSQL a reference enforced by a foreign key
is not re-counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from shape_pipeline.db import is_postgres, read_only_snapshot
from shape_pipeline.fidelity.parquet_source import open_table, utc_scalar
from shape_pipeline.mapping import DIRECT_MESSAGE_MEMBERS, SchemaMapping, TimeColumn, reflect_tables

CHECKS: dict[str, str] = {
    "senders_not_members": "messages whose sender is not a member of the conversation",
    "direct_messages_without_one_or_two_members": "direct-message conversations with no member or more than 2",
    "messages_outside_window": "messages outside the shape's window",
    "messages_before_conversation": "messages dated before their conversation was created",
    "messages_without_conversation": "messages referencing a missing conversation",
    "messages_without_sender": "messages referencing a missing user",
    "members_without_conversation": "member rows referencing a missing conversation",
    "members_without_user": "member rows referencing a missing user",
}


@dataclass
class IntegrityFindings:
    """How many rows break each rule (0 = clean); `not_checked` says what was left out and why."""

    counts: dict[str, int] = field(default_factory=dict)
    not_checked: dict[str, str] = field(default_factory=dict)

    @property
    def breaches(self) -> dict[str, int]:
        return {k: v for k, v in self.counts.items() if v > 0}


# --------------------------------------------------------------------------------------
# Databases (through the mapping)
# --------------------------------------------------------------------------------------


def _bound(moment: datetime, unit: str, postgres: bool) -> datetime | int:
    """A window bound in a time column's own unit (as the sampler compares it).

    Epoch columns compare as numbers; SQLite stores naive UTC text.
    """
    moment = moment.astimezone(UTC)
    if unit == "timestamp":
        return moment if postgres else moment.replace(tzinfo=None)
    seconds = moment.timestamp()
    return int(round(seconds * 1000)) if unit == "epoch_ms" else int(round(seconds))


def _has_fk(engine: sa.Engine, table: sa.Table, column: str, target: sa.Table) -> bool:
    """A foreign key the database enforces (PostgreSQL only: SQLite may not enforce its FKs)."""
    if not is_postgres(engine):
        return False
    return any(fk.parent.name == column and fk.column.table.name == target.name for fk in table.foreign_keys)


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def check_database(
    engine: sa.Engine,
    mapping: SchemaMapping,
    *,
    window_start: datetime,
    window_end: datetime,
    statement_timeout_ms: int | None = None,
) -> IntegrityFindings:
    """Breach counts for a database, in one read-only snapshot (missing tables are refused)."""
    with read_only_snapshot(engine, statement_timeout_ms=statement_timeout_ms) as conn:
        tables = reflect_tables(conn, mapping)
        if is_postgres(conn):  # room to hash the member pairs in memory (no spill to disk)
            conn.execute(sa.text("SELECT set_config('work_mem', '64MB', true)"))
        return _check_tables(conn, engine, mapping, tables, window_start, window_end)


def _unique_over(table: sa.Table, columns: set[str]) -> bool:
    """True when a primary key, unique constraint or unique index covers exactly `columns`."""
    keys = [{c.name for c in table.primary_key.columns}]
    keys += [{c.name for c in k.columns} for k in table.constraints if isinstance(k, sa.UniqueConstraint)]
    keys += [{c.name for c in i.columns} for i in table.indexes if i.unique]
    return columns in keys


def _check_tables(
    conn: sa.Connection,
    bind: sa.Engine,
    mapping: SchemaMapping,
    tables: dict[str, sa.Table],
    window_start: datetime,
    window_end: datetime,
) -> IntegrityFindings:
    u, c, mem, m = tables["users"], tables["conversations"], tables["members"], tables["messages"]
    mm, cm, bm = mapping.messages, mapping.conversations, mapping.members
    found = IntegrityFindings()
    pg = is_postgres(bind)

    pairs: sa.FromClause = mem  # one row per (conversation, user) already, or made so:
    if not _unique_over(mem, {bm.conversation_id, bm.user_id}):
        pairs = sa.select(mem.c[bm.conversation_id], mem.c[bm.user_id]).distinct().subquery()
    msg_time = m.c[mm.created_at.column]
    checks: dict[str, sa.ColumnElement[int]] = {
        "senders_not_members": _count_if(pairs.c[bm.user_id].is_(None)),
        "messages_outside_window": _count_if(
            sa.or_(
                msg_time < _bound(window_start, mm.created_at.unit, pg),
                msg_time >= _bound(window_end, mm.created_at.unit, pg),
            )
        ),
    }
    joined = m.outerjoin(
        pairs,
        sa.and_(
            pairs.c[bm.conversation_id] == m.c[mm.conversation_id],
            pairs.c[bm.user_id] == m.c[mm.sender_id],
        ),
    ).outerjoin(c, c.c[cm.id] == m.c[mm.conversation_id])
    checks["messages_without_conversation"] = _count_if(c.c[cm.id].is_(None))
    if _same_unit(mm.created_at, cm.created_at):
        checks["messages_before_conversation"] = _count_if(msg_time < c.c[cm.created_at.column])
    else:
        found.not_checked["messages_before_conversation"] = "time columns in different units"
    if _has_fk(bind, m, mm.sender_id, u):
        found.not_checked["messages_without_sender"] = "enforced by a foreign key"
    else:
        joined = joined.outerjoin(u, u.c[mapping.users.id] == m.c[mm.sender_id])
        checks["messages_without_sender"] = _count_if(u.c[mapping.users.id].is_(None))

    row = conn.execute(sa.select(*[v.label(k) for k, v in checks.items()]).select_from(joined)).one()
    found.counts.update({k: int(v) for k, v in row._mapping.items()})
    found.counts["direct_messages_without_one_or_two_members"] = _direct_message_breaches(conn, mapping, c, mem)
    found.counts.update(_member_breaches(conn, bind, mapping, u, c, mem, found))
    return found


def _same_unit(a: TimeColumn, b: TimeColumn) -> bool:
    return a.unit == b.unit


def _direct_message_breaches(conn: sa.Connection, mapping: SchemaMapping, c: sa.Table, mem: sa.Table) -> int:
    kind = mapping.conversations.type
    cm, bm = mapping.conversations, mapping.members
    if kind.constant is not None:
        is_dm: sa.ColumnElement[bool] = sa.true() if kind.constant == "DIRECT_MESSAGE" else sa.false()
    else:
        raw = [r for r, name in kind.values.items() if name == "DIRECT_MESSAGE"]
        if not raw:
            return 0
        assert kind.column is not None  # no constant: the app has its own type column
        is_dm = c.c[kind.column].in_(raw)
    sizes = (
        sa.select(mem.c[bm.conversation_id].label("cid"), sa.func.count().label("n"))
        .group_by(mem.c[bm.conversation_id])
        .subquery()
    )
    query = (
        sa.select(sa.func.count())
        .select_from(c.outerjoin(sizes, sizes.c.cid == c.c[cm.id]))
        .where(is_dm, sa.func.coalesce(sizes.c.n, 0).not_in(DIRECT_MESSAGE_MEMBERS))
    )
    return int(conn.execute(query).scalar_one())


def _member_breaches(
    conn: sa.Connection,
    bind: sa.Engine,
    mapping: SchemaMapping,
    u: sa.Table,
    c: sa.Table,
    mem: sa.Table,
    found: IntegrityFindings,
) -> dict[str, int]:
    bm = mapping.members
    checks: dict[str, sa.ColumnElement[int]] = {}
    joined: sa.FromClause = mem
    if _has_fk(bind, mem, bm.conversation_id, c):
        found.not_checked["members_without_conversation"] = "enforced by a foreign key"
    else:
        joined = joined.outerjoin(c, c.c[mapping.conversations.id] == mem.c[bm.conversation_id])
        checks["members_without_conversation"] = _count_if(c.c[mapping.conversations.id].is_(None))
    if _has_fk(bind, mem, bm.user_id, u):
        found.not_checked["members_without_user"] = "enforced by a foreign key"
    else:
        joined = joined.outerjoin(u, u.c[mapping.users.id] == mem.c[bm.user_id])
        checks["members_without_user"] = _count_if(u.c[mapping.users.id].is_(None))
    if not checks:
        return {}
    row = conn.execute(sa.select(*[v.label(k) for k, v in checks.items()]).select_from(joined)).one()
    return {k: int(v) for k, v in row._mapping.items()}


# --------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------


def _anti_count(left: pa.Table, right: pa.Table, keys: list[str], right_keys: list[str]) -> int:
    right = right.group_by(right_keys).aggregate([])  # distinct keys
    return left.join(right, keys=keys, right_keys=right_keys, join_type="left anti").num_rows


def check_parquet(parquet_dir: str | Path, *, window_start: datetime, window_end: datetime) -> IntegrityFindings:
    """Breach counts for a Parquet dataset folder (Arrow joins, no per-row Python)."""
    messages = open_table(parquet_dir, "messages").to_table(columns=["conversation_id", "sender_id", "created_at"])
    members = open_table(parquet_dir, "members").to_table(columns=["conversation_id", "user_id"])
    conversations = open_table(parquet_dir, "conversations").to_table(columns=["id", "type", "created_at"])
    users = open_table(parquet_dir, "users").to_table(columns=["id"])
    t = messages["created_at"]
    outside = pc.or_(pc.less(t, utc_scalar(window_start)), pc.greater_equal(t, utc_scalar(window_end)))
    conv_times = conversations.select(["id", "created_at"]).rename_columns(
        ["conversation_id", "conversation_created_at"]
    )
    dated = messages.join(conv_times, keys="conversation_id", join_type="inner")
    early = pc.less(dated["created_at"], dated["conversation_created_at"])
    sizes = members.group_by("conversation_id").aggregate([([], "count_all")])
    dms = conversations.filter(pc.equal(conversations["type"], "DIRECT_MESSAGE")).select(["id"])
    dm_sizes = dms.join(sizes, keys="id", right_keys="conversation_id", join_type="left outer")
    dm_counts = pc.fill_null(dm_sizes["count_all"], 0).to_numpy()
    return IntegrityFindings(
        counts={
            "senders_not_members": _anti_count(
                messages, members, ["conversation_id", "sender_id"], ["conversation_id", "user_id"]
            ),
            "direct_messages_without_one_or_two_members": int(
                np.count_nonzero(~np.isin(dm_counts, DIRECT_MESSAGE_MEMBERS))
            ),
            "messages_outside_window": int(pc.sum(outside).as_py() or 0),
            "messages_before_conversation": int(pc.sum(early).as_py() or 0),
            "messages_without_conversation": _anti_count(messages, conversations, ["conversation_id"], ["id"]),
            "messages_without_sender": _anti_count(messages, users, ["sender_id"], ["id"]),
            "members_without_conversation": _anti_count(members, conversations, ["conversation_id"], ["id"]),
            "members_without_user": _anti_count(members, users, ["user_id"], ["id"]),
        }
    )
