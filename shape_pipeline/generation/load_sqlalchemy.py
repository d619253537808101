"""Other dialects (SQLite for the demo): SQLAlchemy bulk inserts (`executemany`) in batches."""

from __future__ import annotations

import pyarrow as pa
import sqlalchemy as sa

BATCH_ROWS = 20_000


def insert_rows(conn: sa.Connection, table: sa.Table, rows: pa.Table) -> None:
    """Insert `rows` (physical column names) into `table` inside the connection's transaction."""
    statement = table.insert()
    for batch in rows.to_batches(BATCH_ROWS):
        conn.execute(statement, batch.to_pylist())
