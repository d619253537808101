"""Bounded user contributions inside SQL: the first half of DP extraction.

Differential privacy needs to know how much one user can change the counts. Following
Wilson et al., "Differentially Private SQL with Bounded User Contribution" (PoPETs 2020),
each user's rows are bounded inside the database before anything is aggregated, so the
aggregates (and the noise added to them later) never depend on how active the busiest user is:

- message-level statistics (lengths, types, hours, days, gaps) read at most `max_messages`
  (L) in-window messages per sender;
- conversation-level statistics (messages and members per conversation, types, top sender,
  lifetime, recency, size x members) read each user's rows in at most `max_conversations` (C)
  of the conversations the user belongs to: one user then changes at most C conversations;
- per-user statistics (username length, messages per sender, memberships) count each user
  once: no bound needed.

Which rows a user keeps is decided by a keyed hash (PostgreSQL `hashtextextended` seeded by a
number derived from the salt; SQLite a registered HMAC function), so the choice is neither the
oldest nor the newest rows (which would bias the statistics) and cannot be steered by a user
who does not know the salt. Messages without a sender (system messages) are attributed to a
pseudo-user per conversation and bounded like a user's. The views below replace the reflected
tables, and the ordinary extraction runs over them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shape_pipeline.db import is_postgres, read_only_snapshot
from shape_pipeline.mapping import SchemaMapping, reflect_tables
from shape_pipeline.sampling.extract import (
    CONTENT,
    HOURS,
    ORDERED,
    PAIRS,
    Extraction,
    _in_window,
    _time,
    extract_many,
)
from shape_pipeline.sampling.frequencies import Frequency, FrequencyTables
from shape_pipeline.sampling.privacy import token

SQLITE_HASH = "shape_pipeline_keyed_hash"
_RANK = "shape_pipeline_rank"


@dataclass(frozen=True)
class ContributionBound:
    """Per-user bounds applied in SQL, and the keyed-hash seed that picks the kept rows."""

    max_messages: int  # L
    max_conversations: int  # C
    seed: int  # 63 bits derived from the salt (`seed_from_salt`), never the salt itself

    def keyed_hash(self, value: sa.ColumnElement, postgres: bool) -> sa.ColumnElement:
        text = sa.cast(value, sa.Text)
        if postgres:
            return sa.func.hashtextextended(text, sa.literal(self.seed, sa.BigInteger))
        return getattr(sa.func, SQLITE_HASH)(text)

    def register(self, conn: Connection) -> None:
        """SQLite: the keyed hash as a deterministic SQL function of this connection."""
        if is_postgres(conn):
            return
        key = self.seed.to_bytes(8, "big")

        def keyed(value: str | None) -> int | None:
            if value is None:
                return None
            digest = hmac.new(key, value.encode(), hashlib.sha256).digest()
            return int.from_bytes(digest[:8], "big", signed=True)

        raw = conn.connection.driver_connection
        assert raw is not None  # an open connection always has its driver connection
        raw.create_function(SQLITE_HASH, 1, keyed, deterministic=True)


def seed_from_salt(salt: str) -> int:
    """A 63-bit hash seed keyed by the salt (domain-separated from every token)."""
    return int(token(salt, "dp-bound", "seed")[:16], 16) >> 1


def _messages_in_window(tables, mapping: SchemaMapping, postgres: bool, start: datetime, end: datetime):
    m = tables["messages"]
    col, unit = _time(m, mapping.messages.created_at)
    return m, _in_window(col, unit, start, end, postgres)


def messages_bounded_per_sender(
    tables, mapping: SchemaMapping, postgres: bool, start: datetime, end: datetime, bound: ContributionBound
) -> dict:
    """`tables` with messages replaced by each sender's first L in-window messages in keyed-hash order."""
    m, in_window = _messages_in_window(tables, mapping, postgres, start, end)
    spec = mapping.messages
    sender = m.c[spec.sender_id]
    nobody = sa.case((sender.is_(None), m.c[spec.conversation_id]))  # senderless: one pseudo-user per conversation
    rank = sa.func.row_number().over(partition_by=(sender, nobody), order_by=bound.keyed_hash(m.c[spec.id], postgres))
    ranked = sa.select(*m.c, rank.label(_RANK)).where(in_window).subquery("bounded_ranked")
    bounded = (
        sa.select(*(ranked.c[c.name] for c in m.c))
        .where(ranked.c[_RANK] <= bound.max_messages)
        .subquery("bounded_messages")
    )
    return {**tables, "messages": bounded}


def _chosen_conversations(tables, mapping: SchemaMapping, postgres: bool, bound: ContributionBound) -> sa.Subquery:
    """(user, conversation) pairs each user keeps: C of the conversations the user is a member
    of, in keyed-hash order of the pair (every user picks differently; a membership written
    twice is one pair, so no message is joined twice). A user's messages in a conversation
    they are not a member of are not read by the conversation-level statistics."""
    mem = tables["members"]
    user, conv = mem.c[mapping.members.user_id], mem.c[mapping.members.conversation_id]
    pairs = sa.select(user.label("u"), conv.label("c")).where(user.is_not(None)).distinct().subquery("member_pairs")
    key = sa.cast(pairs.c.c, sa.Text) + "/" + sa.cast(pairs.c.u, sa.Text)
    rank = sa.func.row_number().over(partition_by=pairs.c.u, order_by=bound.keyed_hash(key, postgres))
    ranked = sa.select(pairs.c.u, pairs.c.c, rank.label(_RANK)).subquery("chosen_ranked")
    return sa.select(ranked.c.u, ranked.c.c).where(ranked.c[_RANK] <= bound.max_conversations).subquery("chosen")


def conversations_bounded_per_user(
    tables, mapping: SchemaMapping, postgres: bool, start: datetime, end: datetime, bound: ContributionBound
) -> dict:
    """`tables` with members and messages restricted to each user's C chosen conversations
    (messages without a sender kept)."""
    m, in_window = _messages_in_window(tables, mapping, postgres, start, end)
    mem = tables["members"]
    msg, memb = mapping.messages, mapping.members
    chosen = _chosen_conversations(tables, mapping, postgres, bound)
    members = (
        sa.select(*mem.c)
        .select_from(
            mem.join(chosen, sa.and_(chosen.c.u == mem.c[memb.user_id], chosen.c.c == mem.c[memb.conversation_id]))
        )
        .subquery("bounded_members")
    )
    sender, conv = m.c[msg.sender_id], m.c[msg.conversation_id]
    joined = m.outerjoin(chosen, sa.and_(chosen.c.u == sender, chosen.c.c == conv))
    messages = (
        sa.select(*m.c)
        .select_from(joined)
        .where(in_window, sa.or_(sender.is_(None), chosen.c.u.is_not(None)))
        .subquery("bounded_conversation_messages")
    )
    return {**tables, "members": members, "messages": messages}


@dataclass(frozen=True)
class BoundedFrequencies:
    """The three extractions a DP shape is computed from (each family reads one of them)."""

    per_user: FrequencyTables  # unbounded: users, messages per sender (one value per user)
    per_message: FrequencyTables  # at most L messages per sender
    per_conversation: FrequencyTables  # each user in at most C conversations


def memberships_per_user(engine: Engine, mapping: SchemaMapping, statement_timeout_ms: int | None) -> Frequency:
    """How many users belong to n conversations, active in the window or not: one value per
    user, which no other user changes (counting active conversations only would let the
    only writer of a channel change every member's value)."""
    with read_only_snapshot(engine, statement_timeout_ms=statement_timeout_ms) as conn:
        mem = reflect_tables(conn, mapping)["members"]
        user = mem.c[mapping.members.user_id]
        per = sa.select(sa.func.count().label("n")).where(user.is_not(None)).group_by(user).subquery("per_user")
        rows = conn.execute(sa.select(per.c.n, sa.func.count()).group_by(per.c.n)).all()
    return Frequency.from_pairs(np.asarray(rows, dtype=np.float64)) if rows else Frequency.empty()


def extract_bounded(
    engine: Engine,
    mapping: SchemaMapping,
    *,
    window_start: datetime,
    window_end: datetime,
    bound: ContributionBound,
    statement_timeout_ms: int | None = None,
) -> BoundedFrequencies:
    """The ordinary extraction three times (unbounded, L-bounded, C-bounded views), all in one
    read-only snapshot: their statements share one queue of connections (`extract_many`), so
    the cheap unbounded pass no longer leaves a core idle while it runs alone."""

    def bounded(view):  # noqa: ANN202 - a views callback
        return lambda tables, postgres: view(tables, mapping, postgres, window_start, window_end, bound)

    per_user, per_message, per_conversation = extract_many(  # each runs only the statements its families read
        engine,
        mapping,
        [
            Extraction(passes=frozenset({CONTENT})),
            Extraction(bounded(messages_bounded_per_sender), frozenset({ORDERED, CONTENT, HOURS})),
            Extraction(bounded(conversations_bounded_per_user), frozenset({ORDERED, PAIRS})),
        ],
        window_start=window_start,
        window_end=window_end,
        statement_timeout_ms=statement_timeout_ms,
        prepare=bound.register,
    )
    return BoundedFrequencies(per_user=per_user, per_message=per_message, per_conversation=per_conversation)
