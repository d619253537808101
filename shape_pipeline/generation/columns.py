"""The canonical columns of each generated table, as Arrow schemas (the Parquet layout too).

Names and order follow `mapping.canonical_metadata()`; ids are int64, times
`timestamp[us, tz=UTC]`, types the logical category names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

TIME = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "users": pa.schema(
        [
            ("id", pa.int64()),
            ("username", pa.string()),
            ("email", pa.string()),
            ("display_name", pa.string()),
            ("avatar_url", pa.string()),
            ("bio", pa.string()),
            ("created_at", TIME),
        ]
    ),
    "conversations": pa.schema(
        [("id", pa.int64()), ("type", pa.string()), ("name", pa.string()), ("created_at", TIME)]
    ),
    "members": pa.schema([("conversation_id", pa.int64()), ("user_id", pa.int64()), ("joined_at", TIME)]),
    "messages": pa.schema(
        [
            ("id", pa.int64()),
            ("conversation_id", pa.int64()),
            ("sender_id", pa.int64()),
            ("type", pa.string()),
            ("content", pa.string()),
            ("created_at", TIME),
        ]
    ),
}
ENTITIES: tuple[str, ...] = ("users", "conversations", "members", "messages")


def times(us: np.ndarray) -> pa.Array:
    """µs since the epoch -> `timestamp[us, tz=UTC]`."""
    return pa.array(np.asarray(us, dtype=np.int64), type=TIME)


def ids(start: int, n: int) -> pa.Array:
    """Consecutive ids start+1 .. start+n."""
    return pa.array(np.arange(start + 1, start + n + 1, dtype=np.int64))


@dataclass
class Chunk:
    """A batch of rows for some of the tables, in load order (users before the rest)."""

    tables: dict[str, pa.Table] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        table = self.tables.get("messages")
        return table.num_rows if table is not None else 0

    def rows(self) -> dict[str, int]:
        return {name: table.num_rows for name, table in self.tables.items()}


def concat_chunks(parts: list[Chunk]) -> Chunk:
    """One chunk holding the rows of several shards, table by table."""
    names = [n for n in ENTITIES if any(n in p.tables for p in parts)]
    return Chunk({n: pa.concat_tables([p.tables[n] for p in parts if n in p.tables]) for n in names})
