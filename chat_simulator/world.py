"""The simulated world in logical form: four Arrow tables, independent of any schema.

`simulate` runs the agent model (people -> rooms -> messages) and returns `LogicalWorld`; the
schemas in `chat_simulator.schemas` render it into physical rows. The logical tables are the
ground truth that tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa

from chat_simulator import messages, rooms, seeds, text
from chat_simulator.clock import Window
from chat_simulator.population import ms_timestamps, people

DEFAULT_WEEKS = 6
MAX_MESSAGES = 5_000_000


@dataclass(frozen=True)
class LogicalWorld:
    """users, conversations, members and messages as Arrow tables (ids are 0-based integers)."""

    users: pa.Table
    conversations: pa.Table
    members: pa.Table
    messages: pa.Table
    start: datetime
    end: datetime
    seed: str | int

    def tables(self) -> dict[str, pa.Table]:
        return {
            "users": self.users,
            "conversations": self.conversations,
            "members": self.members,
            "messages": self.messages,
        }

    def insert_order(self) -> dict[str, np.ndarray]:
        """Per logical table, its rows in the order an app inserts them: users and conversations
        as they are created, memberships as people join, messages as they are written (ties
        by logical id). The logical tables keep their own order; only loading follows this."""
        keys = {
            "users": ("created_at", "id"),
            "conversations": ("created_at", "id"),
            "members": ("joined_at", "conversation_id", "user_id"),
            "messages": ("created_at", "id"),
        }
        out: dict[str, np.ndarray] = {}
        for name, table in self.tables().items():
            columns = [
                table[k].cast(pa.int64()).to_numpy() if pa.types.is_timestamp(table[k].type) else table[k].to_numpy()
                for k in keys[name]
            ]
            out[name] = np.lexsort(columns[::-1])
        return out


def simulate(messages_target: int, seed: str | int, end: datetime, *, weeks: int = DEFAULT_WEEKS) -> LogicalWorld:
    """An agent-based chat world of about `messages_target` messages in the `weeks` before `end`."""
    if not 1 <= messages_target <= MAX_MESSAGES:
        raise ValueError(f"messages must be between 1 and {MAX_MESSAGES:,}, not {messages_target}")
    window = Window.ending(end, weeks)
    folk = people(messages_target, window, seeds.stream(seed, "users"))
    place = rooms.rooms(folk, window, seeds.stream(seed, "rooms"))
    said = messages.events(folk, place, window, messages_target, seeds.stream(seed, "timeline"))
    return LogicalWorld(
        users=folk.table,
        conversations=conversation_table(place, said, seeds.stream(seed, "text")),
        members=pa.table(
            {
                "conversation_id": pa.array(place.member_conv),
                "user_id": pa.array(place.member_user),
                "joined_at": ms_timestamps(place.joined_ms),
            }
        ),
        messages=message_table(folk, said, window, seeds.stream(seed, "messages")),
        start=window.start,
        end=window.end,
        seed=seed,
    )


def conversation_table(place: rooms.Rooms, said: messages.Events, rng: np.random.Generator) -> pa.Table:
    """Kinds, names (NULL for direct and group chats), headers, purposes and activity counters."""
    n = place.count
    words = text.pick(text.vocabulary(), rng, n)
    more = text.pick(text.vocabulary(), rng, n)
    named = place.kind > rooms.GROUP
    channel_names = text.join(words, "-", more, "-", text.base36(np.arange(n)))
    default = int(np.flatnonzero(named)[0]) if named.any() else -1
    name = pa.array(
        [
            ("town-square" if i == default else v) if ok else None
            for i, (v, ok) in enumerate(zip(channel_names.to_pylist(), named.tolist(), strict=True))
        ],
        pa.string(),
    )
    pool = text.prose_pool(rng, 1 << 16)
    header = text.prose(pool, np.where(named & (rng.random(n) < 0.4), rng.integers(10, 120, n), 0), rng)
    purpose = text.unset_as(
        text.prose(pool, rng.integers(10, 90, n), rng), ~named | (rng.random(n) < 0.5), rng.random(n) < 0.5
    )
    last_post = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_post, said.conv, said.time)
    return pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "kind": text.strings(rooms.KINDS).take(pa.array(place.kind)),
            "name": name,
            "header": header,
            "purpose": purpose,
            "creator_id": pa.array(place.creator, mask=place.creator < 0),
            "created_at": ms_timestamps(place.created_ms),
            "archived_at": ms_timestamps(place.archived_ms),
            "last_post_at": ms_timestamps(last_post),
            "message_count": pa.array(np.bincount(said.conv, minlength=n).astype(np.int64)),
        }
    )


def message_table(folk, said: messages.Events, window: Window, rng: np.random.Generator) -> pa.Table:
    """Message rows with bodies, edits, soft deletes and thread roots, ids in time order."""
    names = folk.table.column("username").combine_chunks().take(pa.array(said.sender))
    body, _ = messages.contents(said.kind, names, rng)
    edited, deleted = messages.edits_and_deletes(said.kind, said.time, window, rng)
    media = (said.kind >= messages.IMAGE) & (said.kind <= messages.VIDEO)
    return pa.table(
        {
            "id": pa.array(np.arange(said.conv.size, dtype=np.int64)),
            "conversation_id": pa.array(said.conv),
            "sender_id": pa.array(said.sender),
            "kind": text.strings(messages.KINDS).take(pa.array(said.kind)),
            "content": body,
            "created_at": ms_timestamps(said.time),
            "edited_at": ms_timestamps(edited),
            "deleted_at": ms_timestamps(deleted),
            "root_id": pa.array(said.root, mask=said.root < 0),
            "file_count": pa.array(media.astype(np.int64)),
        }
    )
