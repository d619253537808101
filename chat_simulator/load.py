"""Loading a rendered world: PostgreSQL by COPY, SQLite by executemany, one transaction each.

PostgreSQL: tables are created with primary keys and unique constraints, filled by CSV COPY
(Arrow writes the CSV in C++: quoted '' stays '', an unquoted empty field is NULL), then
indexes and foreign keys are added, as a bulk import would. SQLite: the same DDL, rows bound
as tuples with timestamps in SQLAlchemy's text form, so SQLAlchemy reads them back as it wrote
them. Tables that exist are refused unless `replace`, which drops them in the same transaction.
Rows go in as given (`World.tables` holds them in the app's insert order). After a PostgreSQL
load the tables are vacuumed and analyzed, as autovacuum keeps a production database: planner
statistics, pg_stats and the visibility map are there before anyone compares plans.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

BATCH_ROWS = 50_000


class TargetNotEmpty(RuntimeError):
    """The database already holds tables of this schema (and `replace` was not asked)."""


def engine_for(url: str) -> sa.Engine:
    """An engine for `url`; PostgreSQL URLs of any driver spelling go through psycopg 3."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed, poolclass=sa.pool.NullPool)


def load_tables(url: str, md: sa.MetaData, tables: dict[str, pa.Table], *, replace: bool = False) -> dict[str, int]:
    """Create the schema's tables at `url` and load `tables`; returns the row count per table."""
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            clear(conn, md, replace)
            if conn.dialect.name == "postgresql":
                load_postgres(conn, md, tables)
            else:
                md.create_all(conn)
                for name, rows in tables.items():
                    insert_rows(conn, md.tables[name], rows)
        if engine.dialect.name == "postgresql":
            vacuum_analyze(engine, [md.tables[name] for name in tables])
    finally:
        engine.dispose()
    return {name: rows.num_rows for name, rows in tables.items()}


def vacuum_analyze(engine: sa.Engine, tables: list[sa.Table]) -> None:
    """`VACUUM (ANALYZE)` the tables (outside any transaction, as VACUUM requires)."""
    prep = engine.dialect.identifier_preparer
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) " + ", ".join(prep.format_table(t) for t in tables))


def clear(conn: sa.Connection, md: sa.MetaData, replace: bool) -> None:
    """Refuse existing tables of the schema, or drop them when `replace`."""
    inspector = sa.inspect(conn)
    present = [t for t in md.sorted_tables if inspector.has_table(t.name)]
    if present and not replace:
        raise TargetNotEmpty("tables already exist: " + ", ".join(t.name for t in present))
    if present:
        for table in reversed(md.sorted_tables):
            conn.execute(
                sa.schema.DropTable(table, if_exists=True)
                if conn.dialect.name != "postgresql"
                else sa.text(f"DROP TABLE IF EXISTS {conn.dialect.identifier_preparer.format_table(table)} CASCADE")
            )


def load_postgres(conn: sa.Connection, md: sa.MetaData, tables: dict[str, pa.Table]) -> None:
    """CREATE TABLE (keys, no indexes or foreign keys), COPY each table, then indexes and foreign keys."""
    for table in md.sorted_tables:
        conn.execute(sa.schema.CreateTable(table, include_foreign_key_constraints=[]))
    prep = conn.dialect.identifier_preparer
    raw = conn.connection.driver_connection
    assert raw is not None  # None only once the connection is closed or invalidated
    cursor = raw.cursor()
    for name, rows in tables.items():
        table = md.tables[name]
        columns = ", ".join(prep.quote(c) for c in rows.column_names)
        with cursor.copy(f"COPY {prep.format_table(table)} ({columns}) FROM STDIN (FORMAT csv)") as copy:
            for batch in rows.to_batches(BATCH_ROWS):
                buffer = io.BytesIO()
                pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False))
                copy.write(buffer.getvalue())
    for table in md.sorted_tables:
        for index in table.indexes:
            conn.execute(sa.schema.CreateIndex(index))
        for fk in table.foreign_key_constraints:
            conn.execute(sa.schema.AddConstraint(fk))


def sqlite_values(column: pa.ChunkedArray) -> list[object]:
    """Python values for SQLite: timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC, as
    SQLAlchemy stores DateTime there), everything else as is."""
    if not pa.types.is_timestamp(column.type):
        return column.to_pylist()
    ms = pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    stamps = np.datetime_as_string(np.where(valid, ms, 0).astype("datetime64[ms]").astype("datetime64[us]"), unit="us")
    return [s.replace("T", " ") if ok else None for s, ok in zip(stamps.tolist(), valid.tolist(), strict=True)]


def insert_rows(conn: sa.Connection, table: sa.Table, rows: pa.Table) -> None:
    """executemany in batches, with the driver's own placeholders."""
    prep = conn.dialect.identifier_preparer
    columns = ", ".join(prep.quote(c) for c in rows.column_names)
    marks = ", ".join("?" for _ in rows.column_names)
    statement = f"INSERT INTO {prep.format_table(table)} ({columns}) VALUES ({marks})"
    for batch in rows.to_batches(BATCH_ROWS):
        values = [sqlite_values(pa.chunked_array([batch.column(i)])) for i in range(batch.num_columns)]
        conn.exec_driver_sql(statement, list(zip(*values, strict=True)))
