"""PostgreSQL's binary COPY format, encoded column-wise with numpy (no Python object per row).

The server parses binary rows about twice as fast as CSV (no text-to-number or text-to-time
conversion). Binary fields must match the column types exactly, so only tables whose written
columns are all of the supported kinds use it (`binary_kinds`); others go as CSV.

Layout: signature, flags, extension length; per row an int16 field count, then per field an
int32 byte length (-1 for NULL) and the value; an int16 -1 trailer. All big-endian; times are
microseconds since 2000-01-01.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since 1970-01-01
WIDTH = {"int8": 8, "int4": 4, "int2": 2, "time": 8, "bool": 1}


def column_kind(column: sa.Column) -> str | None:
    """The binary kind of a column, or None when this encoder does not handle its type."""
    kind = column.type
    if isinstance(kind, sa.BigInteger):
        return "int8"
    if isinstance(kind, sa.SmallInteger):
        return "int2"
    if isinstance(kind, sa.Integer):
        return "int4"
    if isinstance(kind, sa.DateTime):
        return "time"
    if isinstance(kind, sa.Boolean):
        return "bool"
    if isinstance(kind, sa.String | sa.Text) and not isinstance(kind, sa.Enum):
        return "text"
    return None


def _words(values: np.ndarray, dtype: str, width: int, valid: np.ndarray | None = None) -> pa.Array:
    """Big-endian fixed-width values as an Arrow binary array (null where not valid)."""
    data = np.ascontiguousarray(values.astype(dtype)).view(np.uint8)
    validity = None
    if valid is not None and not valid.all():
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    array = pa.Array.from_buffers(pa.binary(width), len(values), [validity, pa.py_buffer(data)])
    return array.cast(pa.binary())


def _field(column: pa.Array, kind: str) -> list[pa.Array]:
    """[length word, value] of one column: length -1 and no value bytes for NULL."""
    valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if kind == "text":
        value = column.cast(pa.binary())
        lengths = np.asarray(pc.binary_length(value).fill_null(-1), dtype=np.int64)
        return [_words(lengths, ">i4", 4), value]
    if kind == "bool":
        raw = np.asarray(column.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.uint8)
        value = _words(raw, "u1", 1, valid)
    else:
        data = np.asarray(column.cast(pa.int64()).fill_null(0))
        if kind == "time":
            data = data - PG_EPOCH_US
        value = _words(data, {"int8": ">i8", "int4": ">i4", "int2": ">i2", "time": ">i8"}[kind], WIDTH[kind], valid)
    return [_words(np.where(valid, WIDTH[kind], -1), ">i4", 4), value]


_JOIN = pc.JoinOptions(null_handling="replace", null_replacement="")


def encode(table: pa.Table, kinds: list[str]) -> bytes:
    """The rows of `table` (columns in COPY order, of the given kinds) in binary COPY format.

    Each field becomes an Arrow binary column (length word, value); one element-wise join in
    Arrow's C++ (which releases the GIL, so COPY keeps streaming meanwhile) concatenates them
    per row, and the joined data buffer is the body.
    """
    n = table.num_rows
    count = pa.scalar(np.array([len(kinds)], dtype=">i2").tobytes(), pa.binary())
    parts: list[pa.Array | pa.Scalar] = [count]
    for column, kind in zip(table.columns, kinds, strict=True):
        parts.extend(_field(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column, kind))
    rows = pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.binary()), options=_JOIN)
    if n == 0:
        return HEADER + TRAILER
    rows = rows.cast(pa.large_binary())
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[rows.offset : rows.offset + n + 1]
    body = memoryview(rows.buffers()[2])[int(offsets[0]) : int(offsets[-1])]
    return b"".join((HEADER, body, TRAILER))
