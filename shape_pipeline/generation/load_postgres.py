"""PostgreSQL: whole chunks encoded column-wise and streamed through COPY (psycopg 3).

No Python object per row. Tables whose columns are all bigint, timestamp, text or boolean go
in the binary COPY format (`pg_binary`: the server parses it about twice as fast); any other
table as CSV written by Arrow in C++ (NULL an unquoted empty field, an empty string a quoted
one, as COPY's CSV format expects).
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from shape_pipeline.generation import pg_binary

_CSV = pacsv.WriteOptions(include_header=False, batch_size=8192)


def civil_date(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's algorithm)."""
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    return yoe + era * 400 + (month <= 2), month, day


def timestamp_text(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`timestamp[us, UTC]` -> 'YYYY-MM-DD HH:MM:SS.ffffff+00' text, built with integer arithmetic.

    Arrow's CSV writer formats timestamps ten times slower than everything else in a chunk;
    COPY reads this form into timestamptz (and into timestamp, ignoring the zone).
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    us = np.asarray(column.cast(pa.int64()).fill_null(0))
    days, rest = np.divmod(us, 86_400_000_000)
    year, month, day = civil_date(days)
    seconds, micros = np.divmod(rest, 1_000_000)
    fields = [
        (year, 4),
        (month, 2),
        (day, 2),
        (seconds // 3600, 2),
        (seconds // 60 % 60, 2),
        (seconds % 60, 2),
        (micros, 6),
    ]
    out = np.empty((us.size, _TS_WIDTH), dtype=np.uint8)
    out[:] = np.frombuffer(_TS_TEMPLATE, dtype=np.uint8)
    for (value, width), start in zip(fields, _TS_STARTS, strict=True):
        for i in range(width):
            out[:, start + i] = 48 + value // 10 ** (width - 1 - i) % 10
    offsets = np.arange(0, (us.size + 1) * _TS_WIDTH, _TS_WIDTH, dtype=np.int32)
    validity = None
    if column.null_count:
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(
        us.size, pa.py_buffer(offsets), pa.py_buffer(out.reshape(-1)), validity, column.null_count
    )


_TS_TEMPLATE = b"0000-00-00 00:00:00.000000+00"
_TS_WIDTH = len(_TS_TEMPLATE)
_TS_STARTS = (0, 5, 8, 11, 14, 17, 20)


def encode_csv(table: pa.Table) -> bytes:
    """The rows of `table` as CSV without a header (timestamps pre-formatted, see `timestamp_text`)."""
    columns = [timestamp_text(col) if pa.types.is_timestamp(col.type) else col for col in table.columns]
    sink = io.BytesIO()
    pacsv.write_csv(pa.table(columns, names=table.column_names), sink, _CSV)
    return sink.getvalue()


def copy_statement(
    conn: sa.Connection, table: sa.Table, columns: list[str], fmt: str = "csv", *, freeze: bool = False
) -> str:
    """`COPY "Schema"."Table" ("Col", ...) FROM STDIN (FORMAT csv|binary[, FREEZE])` with the
    dialect's quoting."""
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c) for c in columns)
    return f"COPY {prep.format_table(table)} ({cols}) FROM STDIN (FORMAT {fmt}{', FREEZE' if freeze else ''})"


BINARY_KINDS = frozenset({"int8", "time", "text", "bool"})  # no narrowing casts: int4/int2 go as CSV


def encode_rows(table: sa.Table, rows: pa.Table) -> tuple[str, list[str], bytes]:
    """(format, column order, bytes) for COPY: binary when every column's type allows it, else CSV."""
    kinds = [pg_binary.column_kind(table.c[name]) for name in rows.column_names]
    if all(kind in BINARY_KINDS for kind in kinds):
        return "binary", rows.column_names, pg_binary.encode(rows, kinds)  # type: ignore[arg-type]
    return "csv", rows.column_names, encode_csv(rows)


def copy_data(
    conn: sa.Connection,
    table: sa.Table,
    columns: list[str],
    data: bytes,
    fmt: str,
    *,
    freeze: bool = False,
) -> None:
    """COPY encoded `data` (`columns` in order) into `table`, inside the connection's transaction.

    `freeze` (only for a table created or truncated in this transaction) writes the rows
    frozen and all-visible: the VACUUM after the load then has nothing to do but analyze.
    """
    raw = conn.connection.driver_connection
    assert raw is not None  # None only once the connection is closed or invalidated
    with raw.cursor() as cursor, cursor.copy(copy_statement(conn, table, columns, fmt, freeze=freeze)) as copy:
        copy.write(data)
