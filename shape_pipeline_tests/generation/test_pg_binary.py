"""The binary COPY encoder against a real PostgreSQL: every supported kind, NULLs, empty text."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import sqlalchemy as sa

from shape_pipeline.db import create_engine
from shape_pipeline.generation import load_postgres, pg_binary


def test_round_trip_through_copy(make_pg_database):
    url = make_pg_database("binary")
    engine = create_engine(url)
    md = sa.MetaData()
    table = sa.Table(
        "t",
        md,
        sa.Column("id", sa.BigInteger),
        sa.Column("flag", sa.Boolean),
        sa.Column("note", sa.String(20)),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("naive", sa.DateTime()),
        sa.Column("body", sa.Text),
    )
    moments = [
        datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        None,
        datetime(2025, 10, 22, 14, 30, tzinfo=UTC),
    ]
    rows = pa.table(
        {
            "id": pa.array([1, None, -(2**62)], pa.int64()),
            "flag": pa.array([True, False, None]),
            "note": pa.array(["é ü", "", None]),
            "at": pa.array(moments, pa.timestamp("us", tz="UTC")),
            "naive": pa.array(moments, pa.timestamp("us", tz="UTC")),
            "body": pa.array([None, "x" * 1000, ""]),
        }
    )
    fmt, columns, data = load_postgres.encode_rows(table, rows)
    assert fmt == "binary" and columns == rows.column_names
    with engine.begin() as conn:
        md.create_all(conn)
        load_postgres.copy_data(conn, table, columns, data, fmt)
    with engine.connect() as conn:
        got = conn.execute(
            sa.text("SELECT id, flag, note, at, naive::text, length(body), body IS NULL FROM t ORDER BY 1 NULLS FIRST")
        ).all()
    engine.dispose()
    assert got == [
        (None, False, "", None, None, 1000, False),
        (-(2**62), None, None, moments[2], "2025-10-22 14:30:00", 0, False),
        (1, True, "é ü", moments[0], "1999-12-31 23:59:59.999999", None, True),
    ]


def test_narrow_and_unknown_types_fall_back_to_csv():
    table = sa.Table("u", sa.MetaData(), sa.Column("n", sa.Integer), sa.Column("u", sa.Uuid))
    rows = pa.table({"n": pa.array([1]), "u": pa.array(["00000001-0000-4000-8000-000000000001"])})
    fmt, columns, data = load_postgres.encode_rows(table, rows)
    assert fmt == "csv" and columns == ["n", "u"] and data == b'1,"00000001-0000-4000-8000-000000000001"\n'
    assert pg_binary.column_kind(table.c.n) == "int4"
