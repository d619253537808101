"""Small chat datasets drawn from known distributions, with one property shiftable at a time.

A `World` holds the four canonical tables as numpy/pyarrow columns. `draw(Knobs(...))` makes
one; the same seed with one knob changed shifts exactly that property. Writers put a world in
the agreed Parquet layout or into PostgreSQL (canonical schema, COPY).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from shape_pipeline.db import create_engine
from shape_pipeline.mapping import canonical_metadata

WINDOW_END = datetime(2025, 10, 22, tzinfo=UTC)
WINDOW_START = WINDOW_END - timedelta(days=30)
_US = 1_000_000


@dataclass(frozen=True)
class Knobs:
    """The distributions a world is drawn from (defaults: the 'production' world)."""

    seed: int = 7
    conversations: int = 8000
    users: int = 4000
    conversation_types: tuple[float, float, float] = (0.70, 0.25, 0.05)  # DM, GROUP, CHANNEL
    message_types: tuple[float, ...] = (0.85, 0.10, 0.03, 0.01, 0.01)
    tail_factor: float = 1.0  # conversations above the p90 of messages get this many times more
    content_median: float = 42.0
    hour_weights: tuple[float, ...] = tuple(1.0 + 0.8 * np.sin((h - 8) / 24 * 2 * np.pi) for h in range(24))
    hour_shift: int = 0  # rotate the hourly wave by this many hours
    gap_median_s: float = 40.0
    outside_window: int = 0  # messages moved before the window
    strangers: int = 0  # messages whose sender is not a member
    extra: dict[str, object] = field(default_factory=dict)

    def with_(self, **changes: object) -> Knobs:
        return replace(self, **changes)


@dataclass
class World:
    users: pa.Table
    conversations: pa.Table
    members: pa.Table
    messages: pa.Table


CONV_TYPES = ("DIRECT_MESSAGE", "GROUP_CHAT", "CHANNEL")
MSG_TYPES = ("TEXT", "IMAGE", "FILE", "AUDIO", "VIDEO")


def _ts(micros: np.ndarray) -> pa.Array:
    return pa.array(micros.astype(np.int64), type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def draw(k: Knobs = Knobs()) -> World:
    """One dataset; every random stream is separate, so changing one knob leaves the others."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(k.seed).spawn(10)]
    r_user, r_type, r_member, r_count, r_msgtype, r_len, r_time, r_gap, r_sender, r_misc = streams
    start_us = int(WINDOW_START.timestamp() * _US)

    # users: unique usernames of a drawn length (normal, mean 9)
    n_users = k.users
    lengths = np.clip(np.rint(r_user.normal(9.0, 2.0, n_users)), 5, 20).astype(int)
    names = [f"u{i:04d}" + "x" * (n - 5) for i, n in enumerate(lengths)]
    users = pa.table(
        {
            "id": pa.array(np.arange(1, n_users + 1), pa.int64()),
            "username": names,
            "email": [f"user{i}@example.com" for i in range(n_users)],
            "display_name": [None if i % 3 else f"User {i}" for i in range(n_users)],
            "avatar_url": [None] * n_users,
            "bio": [None] * n_users,
            "created_at": _ts(np.full(n_users, start_us - 86_400 * _US)),
        }
    )

    # conversations and members
    n = k.conversations
    types = r_type.choice(3, size=n, p=np.array(k.conversation_types) / sum(k.conversation_types))
    sizes = np.where(types == 0, 2, np.where(types == 1, 3 + r_member.poisson(3, n), 10 + r_member.poisson(15, n)))
    member_conv = np.repeat(np.arange(1, n + 1), sizes)
    member_user = np.concatenate([r_member.choice(n_users, size=s, replace=False) + 1 for s in sizes])

    # messages per conversation: log-normal body, optional heavier tail
    counts = np.ceil(r_count.lognormal(np.log(12.0), 1.1, n)).astype(np.int64)
    if k.tail_factor != 1.0:
        top = counts > np.quantile(counts, 0.9)
        counts[top] = np.ceil(counts[top] * k.tail_factor).astype(np.int64)
    total = int(counts.sum())
    msg_conv = np.repeat(np.arange(1, n + 1), counts)

    # time: conversation starts on a day of the first 25 days at an hour from the wave, then gaps
    weights = np.roll(np.array(k.hour_weights), k.hour_shift)
    day = r_time.integers(0, 25, n)
    hour = r_time.choice(24, size=n, p=weights / weights.sum())
    conv_start = start_us + (day * 86_400 + hour * 3_600 + r_time.integers(0, 3_600, n)) * _US
    gaps = np.ceil(r_gap.lognormal(np.log(k.gap_median_s), 1.0, total) * _US).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    gaps[first] = 0
    cum = np.cumsum(gaps)
    created = conv_start[msg_conv - 1] + cum - cum[first][msg_conv - 1]
    conversations = pa.table(
        {
            "id": pa.array(np.arange(1, n + 1), pa.int64()),
            "type": [CONV_TYPES[t] for t in types],
            "name": [None] * n,
            "created_at": _ts(conv_start - 60 * _US),
        }
    )
    members = pa.table(
        {
            "conversation_id": pa.array(member_conv, pa.int64()),
            "user_id": pa.array(member_user, pa.int64()),
            "joined_at": _ts(conv_start[member_conv - 1] - 60 * _US),
        }
    )

    # senders: a random member of the conversation
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pick = (r_sender.random(total) * sizes[msg_conv - 1]).astype(np.int64)
    senders = member_user[offsets[msg_conv - 1] + pick]
    if k.strangers:
        idx = r_misc.choice(total, k.strangers, replace=False)
        member_set = set(zip(member_conv.tolist(), member_user.tolist(), strict=True))
        for i in idx:
            u = 1
            while (int(msg_conv[i]), u) in member_set:
                u += 1
            senders[i] = u
    if k.outside_window:
        idx = r_misc.choice(total, k.outside_window, replace=False)
        created[idx] = start_us - 3_600 * _US

    lens = np.ceil(r_len.lognormal(np.log(k.content_median), 1.0, total)).astype(np.int64)
    mtypes = r_msgtype.choice(len(MSG_TYPES), size=total, p=np.array(k.message_types) / sum(k.message_types))
    content = pa.array(["a" * int(x) for x in lens])
    messages = pa.table(
        {
            "id": pa.array(np.arange(1, total + 1), pa.int64()),
            "conversation_id": pa.array(msg_conv, pa.int64()),
            "sender_id": pa.array(senders, pa.int64()),
            "type": pa.array(np.array(MSG_TYPES)[mtypes]),
            "content": content,
            "created_at": _ts(created),
        }
    )
    return World(users, conversations, members, messages)


def to_parquet(world: World, folder: Path) -> Path:
    """The agreed layout: one dataset folder per table."""
    for name in ("users", "conversations", "members", "messages"):
        (folder / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(getattr(world, name), folder / name / "part-00000.parquet")
    return folder


def to_postgres(world: World, url: str) -> str:
    """Create the canonical schema (PK/FK) and COPY the world in; returns the URL."""
    engine = create_engine(url)
    md = canonical_metadata()
    md.drop_all(engine)
    md.create_all(engine)
    engine.dispose()
    plain = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn, conn.cursor() as cur:
        for table, name in (
            ("users", "users"),
            ("conversations", "conversations"),
            ("conversation_members", "members"),
            ("messages", "messages"),
        ):
            data: pa.Table = getattr(world, name)
            cols = ", ".join(data.column_names)
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in zip(*(c.to_pylist() for c in data.columns), strict=True):
                    copy.write_row(row)
    return url


def to_sqlite(world: World, path: Path) -> str:
    """The demo's embedded database: canonical schema, SQLAlchemy bulk inserts."""
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    md = canonical_metadata()
    md.create_all(engine)
    with engine.begin() as conn:
        for table, name in (
            ("users", "users"),
            ("conversations", "conversations"),
            ("conversation_members", "members"),
            ("messages", "messages"),
        ):
            conn.execute(md.tables[table].insert(), getattr(world, name).to_pylist())
    engine.dispose()
    return url
