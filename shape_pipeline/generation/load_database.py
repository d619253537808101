"""The database side of a load: one transaction, refusals first, the schema prepared, rows streamed.

Order: refuse the production database; connect; begin; create the canonical schema (without a
mapping) or reflect the mapped tables; work out every column (`schema_writer`), refusing a bad
mapping; refuse tables that hold rows unless `replace` (which empties them in the same
transaction); set each chunk's rows aside by time bucket in a temporary folder
(`time_buckets`); at commit write each table bucket by bucket, each sorted by time
(`staging`), with COPY (PostgreSQL; `FREEZE` into tables created or emptied here, so the
VACUUM after has little to do) or executemany; add the canonical keys and indexes; commit. Any failure or interrupt rolls the whole transaction back (and removes the folder), so
the tables are as they were. After the commit, PostgreSQL tables are vacuumed and analyzed
(`analyze`), as autovacuum would have done in production: planner statistics, pg_stats and the
visibility map (index-only scans).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from shape_pipeline import db
from shape_pipeline.errors import DatabaseError, ShapePipelineError
from shape_pipeline.generation import load_postgres, load_sqlalchemy, staging, time_buckets
from shape_pipeline.generation.ahead import background
from shape_pipeline.generation.columns import ENTITIES, Chunk
from shape_pipeline.generation.join_order import JoinOrder
from shape_pipeline.generation.plan import Plan
from shape_pipeline.generation.schema_writer import TableWriter, build_writers
from shape_pipeline.generation.timeline import to_us
from shape_pipeline.mapping import (
    CANONICAL_MAPPING,
    SchemaMapping,
    canonical_metadata,
    load_mapping,
    reflect_tables,
)


def target_mapping(mapping_path: str | Path | None) -> tuple[SchemaMapping, bool]:
    """A load target's mapping, and whether it is the canonical schema (no mapping file)."""
    return load_mapping(mapping_path), mapping_path is None or str(mapping_path) == ""


def refuse_production(database_url: str, production_url: str | None) -> None:
    """A target that is the configured production database is never written."""
    if production_url and db.same_database(database_url, production_url):
        raise ShapePipelineError(
            f"--database-url: {db.redact(database_url)} is the configured production database; refusing to write"
        )


def bare_copy(md: sa.MetaData) -> sa.MetaData:
    """The same tables with columns only (keys are added after the rows: faster bulk load)."""
    bare = sa.MetaData(schema=md.schema)
    for table in md.sorted_tables:
        sa.Table(table.name, bare, *[sa.Column(c.name, c.type, nullable=c.nullable) for c in table.columns])
    return bare


def add_keys(conn: sa.Connection, tables: list[sa.Table]) -> None:
    """Primary keys and unique constraints of `tables`, their indexes, then their foreign keys
    (after a bulk load)."""
    for table in tables:
        conn.execute(sa.schema.AddConstraint(table.primary_key))
        for constraint in table.constraints:
            if isinstance(constraint, sa.UniqueConstraint):
                conn.execute(sa.schema.AddConstraint(constraint))
    create_indexes(conn, [index for table in tables for index in table.indexes])
    for table in tables:
        for fk in table.foreign_key_constraints:
            conn.execute(sa.schema.AddConstraint(fk))


def create_indexes(conn: sa.Connection, indexes: list[sa.Index]) -> None:
    for index in sorted(indexes, key=lambda i: str(i.name)):
        conn.execute(sa.schema.CreateIndex(index))


class DatabaseSink:
    """Loads chunks into one database inside a single transaction (use as a context manager)."""

    def __init__(self, database_url: str, *, mapping_path: str | Path | None, replace: bool) -> None:
        self.url = database_url
        self.mapping, self.canonical = target_mapping(mapping_path)
        self.replace = replace
        self.engine = db.create_engine(database_url, poolclass=sa.pool.NullPool)
        self.conn: sa.Connection | None = None
        self.transaction: sa.RootTransaction | None = None
        self.writers: dict[str, TableWriter] = {}
        self.notes: list[str] = []  # what the schema writer decided on the user's behalf
        self.pending_keys: list[sa.Table] = []  # canonical tables created bare: keys and indexes at commit
        self.pending_indexes: list[sa.Index] = []  # canonical indexes of tables created with their keys
        self.edges: dict[str, np.ndarray] = {}  # entity -> its time buckets' edges (µs)
        self.spill: time_buckets.BucketFiles | None = None  # rows set aside until commit
        self.join_order: JoinOrder | None = None  # users numbered in first-join order (config)
        self.fresh: set[tuple[str | None, str]] = set()  # PostgreSQL tables created or emptied here
        self.postgres = db.is_postgres(self.engine)

    def __enter__(self) -> DatabaseSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def extra_profile_fields(self) -> list[str]:
        from shape_pipeline.generation.schema_writer import extra_profile_fields

        return extra_profile_fields(self.mapping)

    def open(self, plan: Plan) -> None:
        """Connect, begin, prepare the schema and refuse what must be refused (nothing written yet)."""
        self.connect()
        self.prepare(plan)

    def connect(self) -> None:
        """Connect and begin the load's one transaction."""
        db.check_connection(self.engine)
        self.conn = self.engine.connect()
        self.transaction = self.conn.begin()

    def prepare(self, plan: Plan) -> None:
        """Inside the transaction: create the canonical schema if missing, reflect the tables,
        work out every column and refuse (or empty) tables holding rows."""
        assert self.conn is not None
        if self.canonical:
            self._create_canonical()
        tables = reflect_tables(self.conn, self.mapping)
        self.writers, self.notes = build_writers(self.mapping, tables, plan)
        self._refuse_or_empty(tables)
        window = (to_us(plan.window_start), to_us(plan.window_end))
        expected = {
            "users": plan.users,
            "conversations": plan.conversations,
            "members": plan.members,
            "messages": plan.target_messages,
        }
        self.edges = {entity: time_buckets.bucket_edges(*window, expected[entity]) for entity in self.writers}
        self.spill = time_buckets.BucketFiles()
        self.join_order = JoinOrder(plan.users) if self._numbers_users_by_join(plan) else None

    def _numbers_users_by_join(self, plan: Plan) -> bool:
        """The config asks for it and users' ids are a sequence in an integer column."""
        users = self.writers.get("users")
        if not plan.config.users_in_join_order or users is None or users.ids is None or users.id_column is None:
            return False
        return users.ids.kind == "sequential" and isinstance(users.table.c[users.id_column].type, sa.Integer)

    def describe_ids(self) -> str:
        """Each entity's id format, for the console (formats only, never an id)."""
        return ", ".join(f"{w.entity} {w.ids.describe()}" for w in self.writers.values() if w.ids is not None)

    def _create_canonical(self) -> None:
        assert self.conn is not None
        md = canonical_metadata(CANONICAL_MAPPING.schema_)
        inspector = sa.inspect(self.conn)
        missing = [t for t in md.sorted_tables if not inspector.has_table(t.name, schema=t.schema)]
        if not missing:
            return
        if self.postgres:
            self.fresh |= {(t.schema, t.name) for t in missing}
        if self.postgres and len(missing) == len(md.tables):
            bare = bare_copy(md)
            bare.create_all(self.conn)
            self.pending_keys = list(md.sorted_tables)
        else:
            names = {t.name for t in missing}
            for table in md.sorted_tables:
                if table.name in names:
                    self.conn.execute(sa.schema.CreateTable(table))
            self.pending_indexes = [index for table in missing for index in table.indexes]

    def _refuse_or_empty(self, tables: dict[str, sa.Table]) -> None:
        assert self.conn is not None
        busy = [
            t
            for t in tables.values()
            if self.conn.execute(sa.select(sa.literal(1)).select_from(t).limit(1)).first() is not None
        ]
        if not busy:
            return
        names = ", ".join(t.name for t in busy)
        if not self.replace:
            raise ShapePipelineError(
                f"target tables already hold rows ({names}) in {db.redact(self.url)}; use --replace to empty them"
            )
        prep = self.conn.dialect.identifier_preparer
        if self.postgres:
            listed = ", ".join(prep.format_table(t) for t in tables.values())
            self.conn.execute(sa.text(f"TRUNCATE {listed}"))
            self.fresh |= {(t.schema, t.name) for t in tables.values() if self._plain_table(t)}
        else:
            for entity in reversed(ENTITIES):
                self.conn.execute(tables[entity].delete())

    def _plain_table(self, table: sa.Table) -> bool:
        """A plain table (not partitioned, not foreign): one COPY FREEZE accepts."""
        assert self.conn is not None
        name = self.conn.dialect.identifier_preparer.format_table(table)
        kind = self.conn.execute(
            sa.text("SELECT relkind FROM pg_class WHERE oid = CAST(:name AS regclass)"), {"name": name}
        )
        return kind.scalar() == "r"

    def encode(self, chunk: Chunk) -> list[tuple[str, pa.Table]]:
        """A chunk in the tables' columns plus the order columns, parents first.

        Pure (no database access), so it runs in the generator thread, ahead of the writing.
        """
        encoded: list[tuple[str, pa.Table]] = []
        for entity in ENTITIES:
            logical = chunk.tables.get(entity)
            if logical is not None and logical.num_rows:
                encoded.append(
                    (entity, staging.with_order(entity, logical, self.writers[entity].convert(logical, chunk)))
                )
        return encoded

    def write(self, encoded: list[tuple[str, pa.Table]]) -> None:
        """Set one encoded chunk aside by time bucket until commit (nothing reaches the
        database yet; done here, beside the generator thread)."""
        assert self.spill is not None
        try:
            for entity, rows in encoded:
                self.spill.append(entity, rows, staging.order_times(rows), self.edges[entity])
                if self.join_order is not None and entity == "members":
                    self.join_order.see(rows)
        except OSError as exc:  # e.g. the disk is full: one line, close() cleans up
            raise ShapePipelineError(f"cannot set rows aside in {self.spill.folder}: {exc.strerror or exc}") from None

    def _ordered(self, writer: TableWriter) -> Iterator[tuple[str, list[str], bytes] | pa.Table]:
        """The table's rows bucket by bucket in time order, ready to write: COPY data for
        PostgreSQL, else Arrow rows (made in a thread, ahead of the writing)."""
        assert self.spill is not None
        numbered = 0
        for rows in self._buckets(writer):
            rows = staging.in_time_order(writer, rows, numbered)
            numbered += rows.num_rows
            yield load_postgres.encode_rows(writer.table, rows) if self.postgres else rows

    def _buckets(self, writer: TableWriter) -> Iterator[pa.Table]:
        """The table's set-aside rows, bucket by bucket; with users numbered in join order, users
        (a small table) come as one piece renumbered and references carry the new numbers."""
        assert self.spill is not None
        spill, entity, numbering = self.spill, writer.entity, self.join_order
        if numbering is not None and entity == "users":
            parts = [spill.read(entity, b) for b in spill.buckets(entity)]
            if parts:
                yield numbering.users(writer, pa.concat_tables(parts), self.mapping.users.created_at.column)
            return
        for bucket in spill.buckets(entity):
            rows = spill.read(entity, bucket)
            if numbering is not None and entity == "members":
                rows = numbering.renumber(
                    numbering.renumber(rows, self.mapping.members.user_id), staging.ORDER_COLUMNS[2]
                )
            elif numbering is not None and entity == "messages":
                rows = numbering.renumber(rows, self.mapping.messages.sender_id)
            yield rows

    def _write_in_order(self, writer: TableWriter) -> None:
        assert self.conn is not None
        freeze = (writer.table.schema, writer.table.name) in self.fresh
        for payload in background(self._ordered(writer)):
            if isinstance(payload, tuple):
                fmt, columns, data = payload
                load_postgres.copy_data(self.conn, writer.table, columns, data, fmt, freeze=freeze)
            else:
                load_sqlalchemy.insert_rows(self.conn, writer.table, payload)

    def commit(self) -> None:
        """Write the set-aside rows into the tables in time order (parents first), add the
        canonical keys and indexes (when the tables were created here) and commit."""
        assert self.conn is not None and self.transaction is not None
        for entity in ENTITIES:
            writer = self.writers.get(entity)
            if writer is None:
                continue
            try:
                self._write_in_order(writer)
            except sa.exc.DBAPIError as exc:
                raise DatabaseError(
                    f"loading {writer.table.name} in time order failed: {db.short_reason(exc)}"
                ) from None
            except Exception as exc:
                if type(exc).__module__.startswith("psycopg"):
                    raise DatabaseError(
                        f"loading {writer.table.name} in time order failed: {db.short_reason(exc)}"
                    ) from None
                raise
        try:
            add_keys(self.conn, self.pending_keys)
            create_indexes(self.conn, self.pending_indexes)
            self.transaction.commit()
        except sa.exc.DBAPIError as exc:
            raise DatabaseError(f"finishing the load failed: {db.short_reason(exc)}") from None

    def analyze(self) -> str | None:
        """PostgreSQL: `VACUUM (ANALYZE)` the loaded tables outside the transaction (planner
        statistics, pg_stats and the visibility map as autovacuum leaves them in production).
        Returns a warning instead of raising: the rows are committed either way."""
        if not self.postgres or not self.writers:
            return None
        prep = self.engine.dialect.identifier_preparer
        listed = ", ".join(prep.format_table(w.table) for w in self.writers.values())
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {listed}")
        except sa.exc.DBAPIError as exc:
            return (
                f"VACUUM (ANALYZE) of the loaded tables failed ({db.short_reason(exc)}); run it before comparing plans"
            )
        return None

    def close(self) -> None:
        """Roll back anything uncommitted, release the connection and remove the set-aside rows."""
        try:
            if self.transaction is not None and self.transaction.is_active:
                self.transaction.rollback()
            if self.conn is not None:
                self.conn.close()
            self.engine.dispose()
        finally:
            if self.spill is not None:
                self.spill.close()
