"""Rows reach the app's tables in the order the app inserts them: by time, across conversations.

Generation runs conversation shard by shard, so rows come out grouped by conversation; loaded
as they come, a conversation's messages would sit together on disk (`pg_stats.correlation`
near 1 on conversation_id, where an app inserting as people write has near 0, and near 1 on
created_at), and the planner would price index scans unlike production's. So chunks are loaded
(COPY, or executemany on SQLite) into TEMP staging tables inside the load's transaction, each
row with hidden order columns (its logical time and key); at commit one
`INSERT INTO target SELECT ... FROM staging ORDER BY time, key` per table (parents first)
moves them in time order and the staging tables are dropped, all in the one transaction, so
the load stays all-or-nothing. Sequential message ids are renumbered in that order, as the
app's sequence would have numbered them (nothing refers to a message); user and conversation
ids are referenced and keep their values (users' ids follow their sign-up time already).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from shape_pipeline.generation.schema_writer import TableWriter
from shape_pipeline.mapping import base_type

# Logical columns each table is ordered by: its time, then keys that make the order total.
ORDER_KEYS: dict[str, tuple[str, ...]] = {
    "users": ("created_at", "id"),
    "conversations": ("created_at", "id"),
    "members": ("joined_at", "conversation_id", "user_id"),
    "messages": ("created_at", "id"),
}
ORDER_COLUMNS = ("_sp_order_0", "_sp_order_1", "_sp_order_2")  # hidden staging columns (bigint)


def stage_name(writer: TableWriter) -> str:
    return f"sp_stage_{writer.entity}"


def order_columns(entity: str) -> tuple[str, ...]:
    return ORDER_COLUMNS[: len(ORDER_KEYS[entity])]


def create_stage(conn: sa.Connection, writer: TableWriter, *, postgres: bool) -> sa.Table:
    """A TEMP table with the target's columns and defaults (a chunk may leave a column to its
    default) plus the hidden order columns; returns it as a `Table` to COPY or insert into."""
    target, name = writer.table, stage_name(writer)
    keys = order_columns(writer.entity)
    stage = sa.Table(
        name, sa.MetaData(),
        *[sa.Column(c.name, c.type) for c in target.columns], *[sa.Column(k, sa.BigInteger) for k in keys],
    )
    prep = conn.dialect.identifier_preparer
    hidden = [f"{prep.quote(k)} bigint" for k in keys]
    if postgres:
        conn.exec_driver_sql(f"CREATE TEMP TABLE {prep.quote(name)} (LIKE {prep.format_table(target)} INCLUDING DEFAULTS)")
        conn.exec_driver_sql(f"ALTER TABLE {prep.quote(name)} " + ", ".join(f"ADD COLUMN {h}" for h in hidden))
    else:
        columns = [_sqlite_column(c, conn.dialect) for c in target.columns] + hidden
        conn.exec_driver_sql(f"CREATE TEMP TABLE {prep.quote(name)} ({', '.join(columns)})")
    return stage


def _sqlite_column(column: sa.Column, dialect: sa.Dialect) -> str:
    """A column's type (none where SQLite declared none) and constant default, as SQLite DDL."""
    kind = base_type(column.type)
    spelled = "" if isinstance(kind, sa.types.NullType) else f" {kind.compile(dialect=dialect)}"
    arg = getattr(column.server_default, "arg", None)
    default = f" DEFAULT ({getattr(arg, 'text', arg)})" if arg is not None else ""
    return f"{dialect.identifier_preparer.quote(column.name)}{spelled}{default}"


def with_order(entity: str, logical: pa.Table, rows: pa.Table) -> pa.Table:
    """`rows` with the hidden order columns (µs and logical ids as int64) appended."""
    for name, key in zip(ORDER_COLUMNS, ORDER_KEYS[entity], strict=False):
        rows = rows.append_column(name, pc.cast(logical.column(key), pa.int64()))
    return rows


def renumbers(writer: TableWriter) -> bool:
    """Sequential message ids take their number in time order (nothing refers to them)."""
    return writer.entity == "messages" and writer.ids is not None and writer.ids.kind == "sequential"


def move_in_order(conn: sa.Connection, writer: TableWriter, stage: sa.Table) -> None:
    """INSERT the staged rows into the target in time order, then drop the staging table."""
    prep = conn.dialect.identifier_preparer
    order = ", ".join(prep.quote(k) for k in order_columns(writer.entity))
    values = []
    for name in writer.column_names:
        if name == writer.id_column and renumbers(writer):
            as_text = isinstance(base_type(writer.table.c[name].type), sa.String)
            number = f"row_number() OVER (ORDER BY {order})"
            values.append(f"CAST({number} AS TEXT)" if as_text else number)
        else:
            values.append(prep.quote(name))
    columns = ", ".join(prep.quote(name) for name in writer.column_names)
    conn.exec_driver_sql(
        f"INSERT INTO {prep.format_table(writer.table)} ({columns}) "
        f"SELECT {', '.join(values)} FROM {prep.quote(stage.name)} ORDER BY {order}"
    )
    conn.exec_driver_sql(f"DROP TABLE {prep.quote(stage.name)}")
