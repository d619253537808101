"""How production's mapped tables lie on disk, and what their ids look like: numbers only.

Plans follow physical order and id formats as much as distributions (random 26-character ids
scatter an index, rows inserted in time order keep `created_at` correlated), so the sampler
exports them for the generator and the validator. What may leave is fixed here:

- `pg_class`: rows per page (reltuples / relpages), 1 decimal;
- `pg_stats`: only `correlation`, `null_frac` (2 decimals) and `avg_width` of the mapped
  columns, and only `avg_width` and `null_frac` of the table's other columns (keyed by their
  physical names, schema metadata: the generator makes rows as wide as production's). Never
  `most_common_vals`, `most_common_elems` or `histogram_bounds`: those hold real values;
- ids: the kind comes from the reflected column type; for a small sample of rows (TABLESAMPLE
  SYSTEM with a LIMIT, cheap on millions of rows) SQL returns only counts and codes: the
  median length, how many ids fit each alphabet, whether ids sort in creation order (a
  boolean), the majority UUID version nibble (an integer). No id reaches Python.
"""

from __future__ import annotations

from typing import Any, get_args

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import DOMAIN

from shape_pipeline.contracts import (
    ColumnLayout,
    IdAlphabet,
    IdFormat,
    IdKind,
    PhysicalLayout,
    TableLayout,
)
from shape_pipeline.db import is_postgres
from shape_pipeline.mapping import EnumColumn, SchemaMapping, TimeColumn

SAMPLE_ROWS = 10_000  # ids looked at per table (their order, length and alphabet)
ORDERED_SHARE = 0.9  # consecutive pairs (in id order) created in increasing time: time-ordered ids
ALPHABET_SHARE = 0.99  # share of sampled ids an alphabet must cover
SAMPLE_SEED = 7  # TABLESAMPLE ... REPEATABLE: the same pages on every run of one table state

# Nested alphabets, smallest first: the first one that holds ALPHABET_SHARE of the ids is it.
ALPHABETS: tuple[tuple[IdAlphabet, str], ...] = (
    ("digits", "^[0-9]+$"),
    ("hex", "^[0-9a-f]+$"),
    ("base32", "^[0-9a-z]+$"),
    ("alphanumeric", "^[0-9A-Za-z]+$"),
)
# Mapping fields typed like a column but naming none, or several (not `TableLayout.columns` keys).
_NOT_COLUMNS = frozenset({"table", "fill", "profile_fields"})


def _column_fields(entity_model: type[Any]) -> frozenset[str]:
    """The fields of one entity's mapping that name a single column (str, TimeColumn or
    EnumColumn; settings such as `id_format` are Literals and are left out)."""
    return frozenset(
        field
        for field, info in entity_model.model_fields.items()
        if field not in _NOT_COLUMNS
        and any(arg in (str, TimeColumn, EnumColumn) for arg in get_args(info.annotation) or (info.annotation,))
    )


def layout_fields(mapping_model: type[Any] = SchemaMapping) -> frozenset[str]:
    """Every logical field name a `TableLayout.columns` key may be (the export audit's list)."""
    fields: set[str] = set()
    for info in mapping_model.model_fields.values():
        model = info.annotation
        if isinstance(model, type) and hasattr(model, "model_fields"):
            fields |= _column_fields(model)
    return frozenset(fields)


def logical_columns(spec: Any) -> dict[str, str]:
    """Logical field -> physical column of one mapped entity (fields naming a single column)."""
    out: dict[str, str] = {}
    names_column = _column_fields(type(spec))
    for field, value in spec:
        if field not in names_column or value is None:
            continue
        if isinstance(value, str):
            out[field] = value
        elif isinstance(value, TimeColumn) or isinstance(value, EnumColumn) and value.column:
            out[field] = str(value.column)
    return out


def id_kind(column_type: sa.types.TypeEngine) -> IdKind | None:
    """integer / uuid / text from a reflected column type (None: a type we cannot place)."""
    while isinstance(column_type, DOMAIN):
        column_type = column_type.data_type
    if isinstance(column_type, sa.Uuid):
        return "uuid"
    if isinstance(column_type, sa.Integer) or (
        isinstance(column_type, sa.Numeric) and not isinstance(column_type, sa.Float) and column_type.scale == 0
    ):
        return "integer"
    if isinstance(column_type, sa.String):
        return "text"
    return None


def _regclass(conn: sa.Connection, table: sa.Table) -> str:
    return conn.dialect.identifier_preparer.format_table(table)


def _reltuples(conn: sa.Connection, table: sa.Table) -> tuple[float, float]:
    """(reltuples, relpages): reltuples is -1 until the table is first vacuumed or analyzed."""
    row = conn.execute(
        sa.text("SELECT c.reltuples::float8, c.relpages::float8 FROM pg_class c WHERE c.oid = to_regclass(:name)"),
        {"name": _regclass(conn, table)},
    ).one()
    return float(row[0]), float(row[1])


def _rows_per_page(reltuples: float, relpages: float) -> float | None:
    return round(reltuples / relpages, 1) if reltuples >= 0 and relpages > 0 else None


def _stats_rows(conn: sa.Connection, table: sa.Table, select: str, columns: list[str]) -> list[sa.Row]:
    """`select` (numbers of pg_stats `s`) per column of `columns` that ANALYZE has seen, first
    column attname; `inherited` rows (a partitioned parent) only where no other."""
    return list(
        conn.execute(
            sa.text(
                f"SELECT s.attname, {select} "
                "FROM pg_stats s "
                "JOIN pg_namespace n ON n.nspname = s.schemaname "
                "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename "
                "WHERE c.oid = to_regclass(:name) AND s.attname = ANY(:columns) "
                "ORDER BY s.inherited"
            ),
            {"name": _regclass(conn, table), "columns": sorted(set(columns))},
        ).all()
    )


_NULL_FRAC = "round(s.null_frac::numeric, 2)::float8"


def _column_stats(conn: sa.Connection, table: sa.Table, columns: dict[str, str]) -> dict[str, ColumnLayout]:
    """correlation, avg_width and null_frac of the mapped columns, keyed by logical field."""
    rows = _stats_rows(
        conn, table, f"round(s.correlation::numeric, 2)::float8, s.avg_width, {_NULL_FRAC}", list(columns.values())
    )
    by_column: dict[str, ColumnLayout] = {}
    for attname, correlation, avg_width, null_frac in rows:
        by_column.setdefault(attname, ColumnLayout(correlation=correlation, avg_width=avg_width, null_frac=null_frac))
    return {field: by_column[column] for field, column in columns.items() if column in by_column}


def _unmapped_stats(conn: sa.Connection, table: sa.Table, named: set[str]) -> dict[str, ColumnLayout]:
    """avg_width and null_frac of the table's columns the mapping does not name, by physical name."""
    others = [c.name for c in table.columns if c.name not in named]
    if not others:
        return {}
    out: dict[str, ColumnLayout] = {}
    for attname, avg_width, null_frac in _stats_rows(conn, table, f"s.avg_width, {_NULL_FRAC}", others):
        out.setdefault(attname, ColumnLayout(avg_width=avg_width, null_frac=null_frac))
    return out


def _sample_percent(reltuples: float) -> float:
    """About twice SAMPLE_ROWS rows' worth of pages (all pages when the size is unknown)."""
    if reltuples <= 2 * SAMPLE_ROWS:
        return 100.0
    return round(100.0 * 2 * SAMPLE_ROWS / reltuples, 6)


def _id_statement(table: sa.Table, id_col: sa.Column, time_col: sa.Column, kind: IdKind, percent: float) -> sa.Select:
    """One row of counts and codes over a page sample; see the module docstring."""
    sampled = table.tablesample(sa.func.system(percent), name="id_sample", seed=sa.literal(SAMPLE_SEED))
    sample = (
        sa.select(sampled.c[id_col.name].label("id"), sampled.c[time_col.name].label("t")).limit(SAMPLE_ROWS).cte("s")
    )
    as_text = sa.cast(sample.c.id, sa.Text)
    ordered = sa.select(
        sample.c.id, sample.c.t, sa.func.lag(sample.c.t).over(order_by=sample.c.id).label("prev")
    ).subquery("o")
    up = sa.func.count().filter(ordered.c.t > ordered.c.prev)
    differs = sa.func.count().filter(ordered.c.t != ordered.c.prev)
    time_ordered = sa.select(sa.case((differs == 0, sa.null()), else_=up >= ORDERED_SHARE * differs)).scalar_subquery()
    columns: list[sa.ColumnElement] = [sa.func.count().label("n"), time_ordered.label("time_ordered")]
    if kind == "text":
        columns.append(sa.func.percentile_disc(0.5).within_group(sa.func.length(as_text)).label("length"))
        columns += [sa.func.count().filter(as_text.regexp_match(pattern)).label(name) for name, pattern in ALPHABETS]
    if kind == "uuid":
        nibble = sa.func.strpos("0123456789abcdef", sa.func.substr(as_text, 15, 1)) - 1
        columns.append(sa.func.mode().within_group(nibble).label("uuid_version"))
    return sa.select(*columns).select_from(sample)


def _alphabet(n: int, counts: dict[str, int]) -> IdAlphabet | None:
    if n == 0:
        return None
    for name, _ in ALPHABETS:
        if counts[name] >= ALPHABET_SHARE * n:
            return name
    return "other"


def _id_format(
    conn: sa.Connection, table: sa.Table, id_col: sa.Column, time_col: sa.Column, reltuples: float
) -> IdFormat | None:
    kind = id_kind(id_col.type)
    if kind is None:
        return None
    row = conn.execute(_id_statement(table, id_col, time_col, kind, _sample_percent(reltuples))).mappings().one()
    n = int(row["n"])
    if kind == "text":
        return IdFormat(
            kind=kind,
            length=int(row["length"]) if row["length"] else None,
            alphabet=_alphabet(n, {name: int(row[name]) for name, _ in ALPHABETS}),
            time_ordered=row["time_ordered"],
        )
    version = row.get("uuid_version")
    return IdFormat(
        kind=kind,
        time_ordered=row["time_ordered"],
        uuid_version=int(version) if kind == "uuid" and version is not None and version >= 1 else None,
    )


def read_physical_layout(
    conn: sa.Connection, mapping: SchemaMapping, tables: dict[str, sa.Table]
) -> PhysicalLayout | None:
    """The layout of every mapped entity (users, conversations, members, messages); None on SQLite.

    `tables` are the reflected tables (`reflect_tables`). Numbers reflect the last ANALYZE:
    a table never analyzed has no rows_per_page and no column statistics.
    """
    if not is_postgres(conn):
        return None
    out: dict[str, TableLayout] = {}
    named = mapping.required_columns()
    for entity, spec in mapping.entities().items():
        table = tables[entity]
        columns = logical_columns(spec)
        reltuples, relpages = _reltuples(conn, table)
        ids = None
        time = getattr(spec, "created_at", None)
        if "id" in columns and isinstance(time, TimeColumn):
            ids = _id_format(conn, table, table.c[columns["id"]], table.c[time.column], reltuples)
        out[entity] = TableLayout(
            rows_per_page=_rows_per_page(reltuples, relpages),
            columns=_column_stats(conn, table, columns),
            ids=ids,
            unmapped_columns=_unmapped_stats(conn, table, {*named[entity], *spec.fill}),
        )
    return PhysicalLayout(tables=out)
