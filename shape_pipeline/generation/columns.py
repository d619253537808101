"""The canonical columns of each generated table, as Arrow schemas (the Parquet layout too).

Names and order follow `mapping.canonical_metadata()`; ids are int64, times
`timestamp[us, tz=UTC]`, types the logical category names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

TIME = pa.timestamp("us", tz="UTC")
INT64 = pa.int64()

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


# Arrays are built from numpy buffers directly: `pa.array` would import pandas (about a second).


def int64s(values: np.ndarray, kind: pa.DataType = INT64) -> pa.Array:
    """A numpy integer array as an Arrow array of `kind` (int64 layout), without copying twice."""
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(kind, data.size, [None, pa.py_buffer(data)])


def bools(values: np.ndarray) -> pa.Array:
    """A numpy boolean array as an Arrow boolean array."""
    data = np.asarray(values, dtype=bool)
    return pa.Array.from_buffers(pa.bool_(), data.size, [None, pa.py_buffer(np.packbits(data, bitorder="little"))])


def strings(values: list[str] | tuple[str, ...]) -> pa.Array:
    """A short list of Python strings as an Arrow string array."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    data = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8)
    return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets), pa.py_buffer(data))


def times(us: np.ndarray) -> pa.Array:
    """µs since the epoch -> `timestamp[us, tz=UTC]`."""
    return int64s(us, TIME)


def ids(start: int, n: int) -> pa.Array:
    """Consecutive ids start+1 .. start+n."""
    return int64s(np.arange(start + 1, start + n + 1, dtype=np.int64))


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
