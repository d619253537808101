"""PostgreSQL: whole chunks encoded as CSV by Arrow and streamed through COPY (psycopg 3).

No Python object per row: Arrow's CSV writer encodes a chunk in C++, psycopg hands the bytes
to the server. NULL is an unquoted empty field, an empty string a quoted one, as COPY's CSV
format expects.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

_CSV = pacsv.WriteOptions(include_header=False, batch_size=8192)


def encode_csv(table: pa.Table) -> bytes:
    """The rows of `table` as CSV without a header."""
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, _CSV)
    return sink.getvalue()


def copy_statement(conn: sa.Connection, table: sa.Table, columns: list[str]) -> str:
    """`COPY "Schema"."Table" ("Col", ...) FROM STDIN (FORMAT csv)` with the dialect's quoting."""
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c) for c in columns)
    return f"COPY {prep.format_table(table)} ({cols}) FROM STDIN (FORMAT csv)"


def copy_rows(conn: sa.Connection, table: sa.Table, rows: pa.Table) -> None:
    """COPY `rows` (physical column names) into `table`, inside the connection's transaction."""
    if rows.num_rows == 0:
        return
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(copy_statement(conn, table, rows.column_names)) as copy:
        copy.write(encode_csv(rows))
