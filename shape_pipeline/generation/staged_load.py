"""All-or-nothing loads from independently generated partitions (generation/partitions.py).

Each partition writes its rows, already in the target tables' columns (`TableWriter`) plus the
hidden order columns (`staging`), into staging tables the application never reads: on
PostgreSQL UNLOGGED tables in the schema `shape_pipeline_staging`, elsewhere (SQLite) plain
tables named `sp_stage_*`. One table per (target, table, partition): staging a partition, in
its own transaction, drops and refills its own tables and records a manifest row (partition,
fingerprint of plan + seed + target layout, row counts), so a re-run replaces it, concurrent
partitions never touch each other's rows, and a partition that fails leaves its earlier state.

`publish`, in ONE transaction (on PostgreSQL under a transaction-level advisory lock, so two
publishers cannot both publish): checks that every partition is staged with this fingerprint
(staging of another plan is never published), creates the canonical schema if missing and
empties the targets if `replace` (refusing tables that hold rows otherwise), as
`DatabaseSink` does; inserts each table, parents first, with INSERT ... SELECT ... ORDER BY the
order columns (sequential message ids numbered by row_number() in that order, users renumbered
in join order where the config asks: `join_order`), adds the canonical keys and indexes, marks
the manifest published and drops the staging tables; then commits and VACUUM ANALYZEs. The
target tables change only at that commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from shape_pipeline import db
from shape_pipeline.errors import DatabaseError, ShapePipelineError
from shape_pipeline.generation import load_postgres, load_sqlalchemy, staging
from shape_pipeline.generation.columns import ENTITIES, Chunk, int64s
from shape_pipeline.generation.join_order import JoinOrder
from shape_pipeline.generation.load_database import DatabaseSink, add_keys, create_indexes, target_mapping
from shape_pipeline.generation.partitions import PARTITION_KEYS, partition_kind
from shape_pipeline.generation.plan import Plan
from shape_pipeline.generation.schema_writer import TableWriter, build_writers
from shape_pipeline.mapping import CANONICAL_MAPPING, canonical_metadata, reflect_tables

STAGING_SCHEMA = "shape_pipeline_staging"  # PostgreSQL
SQLITE_PREFIX = "sp_stage_"
SETUP_LOCK = 0x5350_5354  # advisory lock keys (PostgreSQL): creating the staging schema, publishing
PUBLISH_LOCK = 0x5350_5055
STAGED, PUBLISHED = "staged", "published"
KIND_ENTITIES = {"users": ("users",), "conversations": ("conversations", "members", "messages")}


def _type_text(column: sa.Column, dialect: sa.Dialect) -> str:
    try:
        return str(column.type.compile(dialect=dialect))
    except Exception:  # noqa: BLE001 - a type SQLAlchemy cannot spell: its class is enough
        return type(column.type).__name__


def layout_signature(writers: dict[str, TableWriter], dialect: sa.Dialect) -> str:
    """What staged rows depend on in the target: tables, written columns and their types, id
    formats. Part of the fingerprint: rows staged for another layout are never published."""
    layout = []
    for entity in ENTITIES:
        writer = writers.get(entity)
        if writer is None:
            continue
        columns = [
            (name, _type_text(writer.table.c[name], dialect), writer.table.c[name].nullable)
            for name in writer.column_names
        ]
        ids = writer.ids.describe() if writer.ids is not None else None
        layout.append([entity, writer.table.schema, writer.table.name, columns, ids, writer.conversation_times])
    return json.dumps(layout, default=str)


def write_rows(conn: sa.Connection, table: sa.Table, rows: pa.Table, postgres: bool) -> None:
    """One batch of encoded rows into a staging table (COPY on PostgreSQL, else executemany)."""
    if postgres:
        fmt, columns, data = load_postgres.encode_rows(table, rows)
        load_postgres.copy_data(conn, table, columns, data, fmt, freeze=True)
    else:
        load_sqlalchemy.insert_rows(conn, table, rows)


@dataclass
class Published:
    """What `publish` did: rows per table (none if another publisher got there first)."""

    rows: dict[str, int] = field(default_factory=dict)
    already: bool = False  # every partition was already published by another run
    warning: str | None = None  # VACUUM (ANALYZE) failed (the rows are committed)
    notes: list[str] = field(default_factory=list)


class StagedDatabase:
    """Stage partitions into a database target and publish them (see module doc)."""

    def __init__(self, database_url: str, *, mapping_path: str | Path | None, replace: bool) -> None:
        self.url = database_url
        self.mapping_path = mapping_path
        self.replace = replace
        self.mapping, self.canonical = target_mapping(mapping_path)
        self.engine = db.create_engine(database_url, poolclass=sa.pool.NullPool)
        self.postgres = db.is_postgres(self.engine)
        self.notes: list[str] = []
        tables = [spec.table for spec in self.mapping.entities().values()]
        self.target_key = hashlib.sha256(json.dumps([self.mapping.schema_, tables]).encode()).hexdigest()[:10]
        self.meta = sa.MetaData(schema=STAGING_SCHEMA if self.postgres else None)
        self.manifest = sa.Table(
            "manifest" if self.postgres else f"{SQLITE_PREFIX}manifest",
            self.meta,
            sa.Column("target_key", sa.String(32), primary_key=True),
            sa.Column("partition_key", sa.String(64), primary_key=True),
            sa.Column("fingerprint", sa.String(64), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("row_counts", sa.Text, nullable=False),
            sa.Column("staged_at", sa.DateTime(timezone=True), nullable=False),
        )

    def close(self) -> None:
        self.engine.dispose()

    # -- what the target looks like (read only) -------------------------------------------------

    def _read_writers(self, conn: sa.Connection, plan: Plan) -> tuple[dict[str, TableWriter], bool]:
        """The writers a load would use, without creating or changing anything: the canonical
        tables as declared where they do not exist yet (publish creates them), else reflected.
        Returns (writers, whether the tables exist)."""
        if self.canonical:
            md = canonical_metadata(CANONICAL_MAPPING.schema_)
            inspector = sa.inspect(conn)
            if not all(inspector.has_table(t.name, schema=t.schema) for t in md.sorted_tables):
                by_name = {t.name: t for t in md.sorted_tables}
                tables = {entity: by_name[spec.table] for entity, spec in self.mapping.entities().items()}
                writers, notes = build_writers(self.mapping, tables, plan)
                self.notes = notes
                return writers, False
        writers, notes = build_writers(self.mapping, reflect_tables(conn, self.mapping), plan)
        self.notes = notes
        return writers, True

    def layout(self, plan: Plan) -> str:
        """The target's layout signature for `plan` (see `layout_signature`)."""
        db.check_connection(self.engine)
        with self.engine.connect() as conn:
            writers, _ = self._read_writers(conn, plan)
        return layout_signature(writers, self.engine.dialect)

    # -- staging --------------------------------------------------------------------------------

    def _table_name(self, entity: str, key: str) -> str:
        prefix = "" if self.postgres else SQLITE_PREFIX
        return f"{prefix}{self.target_key}_{entity}_{key}"

    def _staging_table(self, writer: TableWriter, key: str, md: sa.MetaData | None = None) -> sa.Table:
        columns = [sa.Column(name, writer.table.c[name].type, nullable=True) for name in writer.column_names]
        columns += [sa.Column(name, sa.BigInteger) for name in staging.order_columns(writer.entity)]
        prefixes = ["UNLOGGED"] if self.postgres else []
        return sa.Table(
            self._table_name(writer.entity, key),
            md or sa.MetaData(schema=self.meta.schema),
            *columns,
            prefixes=prefixes,
        )

    def _setup(self) -> None:
        """The staging schema (PostgreSQL) and the manifest, created once (under a lock)."""
        with self.engine.begin() as conn:
            if self.postgres:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SETUP_LOCK)))
                conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {STAGING_SCHEMA}"))
            self.manifest.create(conn, checkfirst=True)

    def _create_staging(self, conn: sa.Connection, writer: TableWriter, key: str, like: bool) -> sa.Table:
        table = self._staging_table(writer, key)
        prep = conn.dialect.identifier_preparer
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {prep.format_table(table)}"))
        if self.postgres and like:
            # LIKE copies the column types exactly (enums, domains, types SQLAlchemy cannot spell)
            name = prep.format_table(table)
            conn.execute(sa.text(f"CREATE UNLOGGED TABLE {name} (LIKE {prep.format_table(writer.table)})"))
            changes = [
                f"ALTER COLUMN {prep.quote(c.name)} DROP NOT NULL" for c in writer.table.columns if not c.nullable
            ]
            changes += [f"ADD COLUMN {prep.quote(o)} bigint" for o in staging.order_columns(writer.entity)]
            conn.execute(sa.text(f"ALTER TABLE {name} {', '.join(changes)}"))
        else:
            conn.execute(sa.schema.CreateTable(table))
        return table

    def stage(self, plan: Plan, key: str, fingerprint: str, layout: str, chunks: Iterable[Chunk]) -> dict[str, int]:
        """Write the rows of partition `key` (its chunks) into its staging tables, replacing
        what it staged before, and record it in the manifest: one transaction. Row counts."""
        self._setup()
        entities = KIND_ENTITIES[partition_kind(key)]
        rows = dict.fromkeys(entities, 0)
        sink = DatabaseSink(self.url, mapping_path=self.mapping_path, replace=self.replace)
        try:
            with self.engine.connect() as conn, conn.begin():
                writers, exist = self._read_writers(conn, plan)
                if layout_signature(writers, conn.dialect) != layout:
                    raise ShapePipelineError(
                        f"cannot stage partition {key}: the target tables changed since the plan was made; start again"
                    )
                sink.writers = {e: w for e, w in writers.items() if e in entities}
                tables = {e: self._create_staging(conn, w, key, exist) for e, w in sink.writers.items()}
                for chunk in chunks:
                    for entity, encoded in sink.encode(chunk):
                        write_rows(conn, tables[entity], encoded, self.postgres)
                        rows[entity] += encoded.num_rows
                manifest = self.manifest
                conn.execute(
                    manifest.delete().where(manifest.c.target_key == self.target_key, manifest.c.partition_key == key)
                )
                conn.execute(
                    manifest.insert().values(
                        target_key=self.target_key,
                        partition_key=key,
                        fingerprint=fingerprint,
                        status=STAGED,
                        row_counts=json.dumps(rows),
                        staged_at=datetime.now(UTC),
                    )
                )
        except sa.exc.DBAPIError as exc:
            raise DatabaseError(f"staging partition {key} failed: {db.short_reason(exc)}") from None
        finally:
            sink.engine.dispose()
        return rows

    # -- manifest -------------------------------------------------------------------------------

    def _states(self, conn: sa.Connection, fingerprint: str) -> dict[str, tuple[str, dict[str, int]]]:
        """Partition key -> (status, rows) of the partitions recorded with `fingerprint`."""
        if not sa.inspect(conn).has_table(self.manifest.name, schema=self.manifest.schema):
            return {}
        m = self.manifest
        found = conn.execute(
            sa.select(m.c.partition_key, m.c.status, m.c.row_counts).where(
                m.c.target_key == self.target_key, m.c.fingerprint == fingerprint
            )
        )
        return {key: (status, json.loads(counts)) for key, status, counts in found}

    def staged(self, fingerprint: str) -> list[str]:
        """The partitions staged (not yet published) with `fingerprint`, in key order."""
        with self.engine.connect() as conn:
            states = self._states(conn, fingerprint)
        return [k for k in PARTITION_KEYS if states.get(k, ("",))[0] == STAGED]

    def missing(self, fingerprint: str) -> list[str]:
        staged = set(self.staged(fingerprint))
        return [k for k in PARTITION_KEYS if k not in staged]

    # -- publishing -----------------------------------------------------------------------------

    def publish(self, plan: Plan, fingerprint: str, layout: str) -> Published:
        """Insert every partition's staged rows into the target tables in one transaction (see
        module doc). `layout`: the signature the partitions were staged for."""
        sink = DatabaseSink(self.url, mapping_path=self.mapping_path, replace=self.replace)
        try:
            sink.connect()
            conn = sink.conn
            assert conn is not None and sink.transaction is not None
            if self.postgres:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PUBLISH_LOCK)))
            states = self._states(conn, fingerprint)
            missing = [k for k in PARTITION_KEYS if states.get(k, ("",))[0] != STAGED]
            if missing:
                if all(states.get(k, ("",))[0] == PUBLISHED for k in PARTITION_KEYS):
                    return Published(already=True)
                raise ShapePipelineError(
                    f"cannot publish into {db.redact(self.url)}: partition(s) {', '.join(missing)} "
                    "not staged for this plan (seed, size, config, target); stage them, then publish"
                )
            sink.prepare(plan)
            if layout_signature(sink.writers, conn.dialect) != layout:
                raise ShapePipelineError(
                    f"cannot publish into {db.redact(self.url)}: the target tables changed since the partitions "
                    "were staged; stage every partition again"
                )
            self._insert_all(conn, sink, plan)
            rows = dict.fromkeys(ENTITIES, 0)
            for key in PARTITION_KEYS:
                for name, count in states[key][1].items():
                    rows[name] += count
            try:
                add_keys(conn, sink.pending_keys)
                create_indexes(conn, sink.pending_indexes)
            except sa.exc.DBAPIError as exc:
                raise DatabaseError(f"finishing the load failed: {db.short_reason(exc)}") from None
            m = self.manifest
            conn.execute(
                m.update()
                .where(m.c.target_key == self.target_key, m.c.fingerprint == fingerprint)
                .values(status=PUBLISHED)
            )
            prep = conn.dialect.identifier_preparer
            for key in PARTITION_KEYS:
                for entity in KIND_ENTITIES[partition_kind(key)]:
                    name = prep.format_table(
                        sa.Table(self._table_name(entity, key), sa.MetaData(schema=self.meta.schema))
                    )
                    conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            sink.transaction.commit()
            notes = list(sink.notes)
            warning = sink.analyze()
            return Published(rows, warning=warning, notes=notes)
        except sa.exc.DBAPIError as exc:
            raise DatabaseError(f"publishing the partitions failed: {db.short_reason(exc)}") from None
        finally:
            sink.close()

    def _insert_all(self, conn: sa.Connection, sink: DatabaseSink, plan: Plan) -> None:
        md = sa.MetaData(schema=self.meta.schema)
        staged = {
            entity: [
                self._staging_table(writer, key, md)
                for key in PARTITION_KEYS
                if entity in KIND_ENTITIES[partition_kind(key)]
            ]
            for entity, writer in sink.writers.items()
        }
        numbers = self._join_numbers(conn, sink, staged, plan) if sink.join_order is not None else None
        for entity in ENTITIES:
            writer = sink.writers.get(entity)
            if writer is None:
                continue
            statement = self._insert(writer, staged[entity], numbers, sink)
            try:
                conn.execute(statement)
            except sa.exc.DBAPIError as exc:
                raise DatabaseError(
                    f"loading {writer.table.name} in time order failed: {db.short_reason(exc)}"
                ) from None

    def _join_numbers(
        self, conn: sa.Connection, sink: DatabaseSink, staged: dict[str, list[sa.Table]], plan: Plan
    ) -> sa.Table:
        """Users' new ids in join order (`JoinOrder`, from the staged memberships in
        conversation order, as the single-process load sees them) in a temporary table."""
        numbering = JoinOrder(plan.users)
        o0, o1, o2 = staging.ORDER_COLUMNS
        for table in staged.get("members", []):
            found = conn.execute(sa.select(table.c[o0], table.c[o2]).order_by(table.c[o1], table.c[o2])).all()
            if found:
                values = np.asarray(found, dtype=np.int64)
                numbering.see(pa.table({o0: int64s(values[:, 0]), o2: int64s(values[:, 1])}))
        new = numbering.numbers()
        temp = sa.Table(
            "sp_join_order",
            sa.MetaData(),
            sa.Column("logical", sa.BigInteger, primary_key=True),
            sa.Column("new", sa.BigInteger),
            prefixes=["TEMPORARY"],
        )
        conn.execute(sa.text("DROP TABLE IF EXISTS sp_join_order"))
        conn.execute(sa.schema.CreateTable(temp))
        pairs = pa.table({"logical": int64s(np.arange(1, new.size + 1)), "new": int64s(new)})
        write_rows(conn, temp, pairs, self.postgres)
        return temp

    def _insert(
        self, writer: TableWriter, tables: list[sa.Table], numbers: sa.Table | None, sink: DatabaseSink
    ) -> sa.Insert:
        entity = writer.entity
        names = writer.column_names + list(staging.order_columns(entity))
        union = (
            sa.union_all(*[sa.select(*[t.c[n] for n in names]) for t in tables]).subquery("staged")
            if len(tables) > 1
            else sa.select(*[tables[0].c[n] for n in names]).subquery("staged")
        )
        source = union if numbers is None else self._renumbered(writer, tables, names, numbers, sink)
        order = [source.c[o] for o in staging.order_columns(entity)]
        exprs = []
        for name in writer.column_names:
            target = writer.table.c[name]
            expr: sa.ColumnElement = source.c[name]
            if name == writer.id_column and staging.renumbers(writer):
                expr = sa.cast(sa.func.row_number().over(order_by=order), target.type)
            rule = writer.unset.get(name)
            if rule is not None and rule.server_default:
                fallback = _default_sql(target) if rule.value is None else sa.literal(rule.value)
                if fallback is not None:
                    expr = sa.func.coalesce(expr, fallback)
            exprs.append(expr.label(name))
        select = sa.select(*exprs).select_from(source).order_by(*order)
        return sa.insert(writer.table).from_select(writer.column_names, select)

    def _renumbered(
        self, writer: TableWriter, tables: list[sa.Table], names: list[str], numbers: sa.Table, sink: DatabaseSink
    ) -> sa.Subquery:
        """The staged rows with user ids replaced by their join-order numbers (`JoinOrder`)."""
        entity = writer.entity
        cte = (
            sa.union_all(*[sa.select(*[t.c[n] for n in names]) for t in tables]).cte(f"staged_{entity}")
            if len(tables) > 1
            else sa.select(*[tables[0].c[n] for n in names]).cte(f"staged_{entity}")
        )
        o0, o1, o2 = staging.ORDER_COLUMNS
        mapping = sink.mapping
        if entity == "users":
            row, same = cte.alias("row"), cte.alias("by_new")
            created = mapping.users.created_at.column
            picked = []
            for n in names:
                if n == writer.id_column:
                    picked.append(sa.cast(numbers.c.new, writer.table.c[n].type).label(n))
                elif n in (created, o0):
                    picked.append(same.c[n].label(n))
                elif n == o1:
                    picked.append(numbers.c.new.label(n))
                else:
                    picked.append(row.c[n].label(n))
            joined = row.join(numbers, numbers.c.logical == row.c[o1]).join(same, same.c[o1] == numbers.c.new)
            return sa.select(*picked).select_from(joined).subquery("renumbered")
        if entity == "members":
            user = mapping.members.user_id
            picked = [
                (
                    sa.cast(numbers.c.new, writer.table.c[n].type)
                    if n == user
                    else numbers.c.new
                    if n == o2
                    else cte.c[n]
                ).label(n)
                for n in names
            ]
            joined = cte.join(numbers, numbers.c.logical == cte.c[o2])
            return sa.select(*picked).select_from(joined).subquery("renumbered")
        if entity == "messages" and mapping.messages.sender_id in names:
            sender = mapping.messages.sender_id
            picked = [
                (sa.cast(numbers.c.new, writer.table.c[n].type) if n == sender else cte.c[n]).label(n) for n in names
            ]
            joined = cte.outerjoin(numbers, numbers.c.logical == sa.cast(cte.c[sender], sa.BigInteger))
            return sa.select(*picked).select_from(joined).subquery("renumbered")
        return sa.select(*[cte.c[n] for n in names]).subquery("renumbered")


def _default_sql(column: sa.Column) -> sa.ColumnElement | sa.TextClause | None:
    """The column's server default as an SQL expression (what the server would fill in)."""
    default = column.server_default
    arg = getattr(default, "arg", None)
    if arg is None:
        return None
    if isinstance(arg, str):
        return sa.literal(arg)
    return sa.text(str(getattr(arg, "text", arg)))
