"""Rows reach the app's tables in the order the app inserts them: by time, across conversations.

Generation runs conversation shard by shard, so rows come out grouped by conversation; loaded
as they come, a conversation's messages would sit together on disk (`pg_stats.correlation`
near 1 on conversation_id, where an app inserting as people write has near 0, and near 1 on
created_at), and the planner would price index scans unlike production's. So each chunk's rows,
already in the table's columns plus hidden order columns (their logical time and key), are set
aside by time bucket (`time_buckets`, in the generator process, not the database); at commit
each table (parents first) is written bucket by bucket in time order, each bucket sorted by
(time, key) here (`in_time_order`), all in the load's one transaction, so the load stays
all-or-nothing and every row is written once. The key makes the order total: the same rows in
the same order whatever the chunking. Sequential message ids are renumbered in that order, as
the app's sequence would have numbered them (nothing refers to a message); user and
conversation ids are referenced and keep their values (users' ids follow their sign-up time
already).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shape_pipeline.generation.columns import int64s
from shape_pipeline.generation.schema_writer import TableWriter

# Logical columns each table is ordered by: its time, then keys that make the order total.
ORDER_KEYS: dict[str, tuple[str, ...]] = {
    "users": ("created_at", "id"),
    "conversations": ("created_at", "id"),
    "members": ("joined_at", "conversation_id", "user_id"),
    "messages": ("created_at", "id"),
}
ORDER_COLUMNS = ("_sp_order_0", "_sp_order_1", "_sp_order_2")  # hidden spill columns (int64)


def order_columns(entity: str) -> tuple[str, ...]:
    return ORDER_COLUMNS[: len(ORDER_KEYS[entity])]


def with_order(entity: str, logical: pa.Table, rows: pa.Table) -> pa.Table:
    """`rows` with the hidden order columns (µs and logical ids as int64) appended."""
    for name, key in zip(ORDER_COLUMNS, ORDER_KEYS[entity], strict=False):
        rows = rows.append_column(name, pc.cast(logical.column(key), pa.int64()))
    return rows


def order_times(rows: pa.Table) -> np.ndarray:
    """Each row's logical time (µs), from its first order column: what its time bucket is cut by."""
    return np.asarray(rows.column(ORDER_COLUMNS[0]).to_numpy(), dtype=np.int64)


def renumbers(writer: TableWriter) -> bool:
    """Sequential message ids take their number in time order (nothing refers to them)."""
    return writer.entity == "messages" and writer.ids is not None and writer.ids.kind == "sequential"


def in_time_order(writer: TableWriter, rows: pa.Table, numbered: int) -> pa.Table:
    """One time bucket's rows sorted by (time, key), in the table's columns: the order columns
    dropped, sequential message ids renumbered from `numbered` + 1 (the rows of earlier
    buckets), and the unset values of parts that left a column to the server filled as
    `TableWriter.convert` fills them (a column unset in the whole bucket is left out: the
    server's default fills it)."""
    keys = order_columns(writer.entity)
    order = pc.sort_indices(rows, sort_keys=[(k, "ascending") for k in keys])
    rows = rows.take(order)
    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in writer.column_names:
        if name not in rows.column_names:
            continue
        values = rows.column(name)
        if name == writer.id_column and renumbers(writer):
            first = numbered + 1
            values = pc.cast(int64s(np.arange(first, first + rows.num_rows)), values.type)
        rule = writer.unset.get(name)
        values = rule.apply(values) if rule is not None else values
        if values is not None:
            out[name] = values
    return pa.table(out)
