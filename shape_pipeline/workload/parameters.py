"""Workload parameters chosen inside the database: Python never holds an id or a time.

For each (entity, count) the workload ranks by, one aggregate statement orders every entity by
its count over the whole table (what the app sees; ties by id) and stores the entity at each
needed rank in a transaction-local setting. Only entities with at least one counted row are
ranked (a conversation with messages, a user who wrote or joined): empty ones say nothing about
the data's shape, and their share differs between production and a generated copy.

    SELECT set_config('shape_pipeline.rank_conversation_messages_p99',
                      coalesce((SELECT k0::text FROM ranked WHERE pos = ...), ''), true) <> ''

so the statement returns only booleans (False: no entity at that rank, e.g. an empty table;
its pairs are left out). The window end is stored the same way, as epoch seconds. Statements
then read the values back with `current_setting(...)` cast to the prepared parameter's type.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.mapping import SchemaMapping, TimeColumn
from shape_pipeline.workload.render import column_sql, table_sql
from shape_pipeline.workload.spec import MEMBER_PARTS, RankedParameter, TimeParameter, Workload

PREFIX = "shape_pipeline."
WINDOW_END_SETTING = f"{PREFIX}window_end"  # epoch seconds (numeric text)
# Entities at and around each rank (positions -2..+2): a rank's plan is the one most of them
# get, so one entity's quirk (which of two indexes is narrower for it) does not decide it.
NEIGHBOURS = 5
CENTRE = NEIGHBOURS // 2


@dataclass(frozen=True)
class RankSource:
    """What a ranked entity is and what it is counted by: (entity, fields) pairs of the mapping."""

    base: str
    keys: tuple[str, ...]
    counted: str
    counted_keys: tuple[str, ...]


RANK_SOURCES: dict[tuple[str, str], RankSource] = {
    ("conversation", "messages"): RankSource("conversations", ("id",), "messages", ("conversation_id",)),
    ("conversation", "members"): RankSource("conversations", ("id",), "members", ("conversation_id",)),
    ("user", "messages_sent"): RankSource("users", ("id",), "messages", ("sender_id",)),
    ("user", "conversations"): RankSource("users", ("id",), "members", ("user_id",)),
    ("member", "messages"): RankSource(
        "members", ("conversation_id", "user_id"), "messages", ("conversation_id", "sender_id")
    ),
}


def execute_verbatim(conn: sa.Connection, sql: str) -> sa.CursorResult:
    """Run SQL text as written: no SQLAlchemy bind parsing of `:name`, `%` kept for the driver."""
    return conn.exec_driver_sql(sql.replace("%", "%%"))


def failure_reason(exc: BaseException) -> str:
    """The error class and SQLSTATE only: PostgreSQL's message can echo a value
    (`invalid input syntax for type integer: "..."`), so its text is never shown."""
    original = getattr(exc, "orig", None) or exc
    state = getattr(original, "sqlstate", None)
    name = type(original).__name__
    return f"{name} (SQLSTATE {state})" if state else name


def _store(conn: sa.Connection, sql: str, step: str) -> sa.Row:
    try:
        return execute_verbatim(conn, sql).one()
    except sa.exc.DBAPIError as exc:
        raise ShapePipelineError(f"workload parameters ({step}) failed: {failure_reason(exc)}") from None


def rank_setting(entity: str, by: str, rank: str, part: str | None = None, neighbour: int = CENTRE) -> str:
    """The setting that holds the entity at `rank` (`part`: conversation or user of a pair;
    `neighbour`: 0..NEIGHBOURS-1, CENTRE being the entity exactly at the rank)."""
    return f"{PREFIX}rank_{entity}_{by}_{rank}_n{neighbour}" + (f"_{part}" if part else "")


def _setting_names(entity: str, by: str, rank: str, neighbour: int) -> list[str]:
    parts: tuple[str | None, ...] = MEMBER_PARTS if entity == "member" else (None,)
    return [rank_setting(entity, by, rank, part, neighbour) for part in parts]


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def rank_statement(
    entity: str, by: str, ranks: list[str], mapping: SchemaMapping, preparer: sa.sql.compiler.IdentifierPreparer
) -> tuple[str, list[str]]:
    """(SQL storing the entity at each rank, the settings its boolean columns stand for)."""
    source = RANK_SOURCES[(entity, by)]
    base = [column_sql(mapping, source.base, key, preparer) for key in source.keys]
    counted = [column_sql(mapping, source.counted, key, preparer) for key in source.counted_keys]
    aliases = [f"k{i}" for i in range(len(base))]
    count_cols = ", ".join(f"{c} AS {a}" for c, a in zip(counted, aliases, strict=True))
    base_cols = ", ".join(f"{b} AS {a}" for b, a in zip(base, aliases, strict=True))
    joined = " AND ".join(f"sp_counts.{a} = {b}" for a, b in zip(aliases, base, strict=True))
    group = ", ".join(str(i + 1) for i in range(len(aliases)))
    columns: list[str] = []
    settings: list[str] = []
    for rank in ranks:
        share = int(rank.removeprefix("p"))
        for neighbour in range(NEIGHBOURS):
            at = f"greatest(0, least(total - 1, ({share} * (total - 1)) / 100 + {neighbour - CENTRE}))"
            for alias, setting in zip(aliases, _setting_names(entity, by, rank, neighbour), strict=True):
                pick = f"SELECT {alias}::text FROM sp_ranked WHERE pos = {at}"
                columns.append(f"set_config({_quote_literal(setting)}, coalesce(({pick}), ''), true) <> ''")
                settings.append(setting)
    sql = (
        f"WITH sp_counts AS (SELECT {count_cols}, count(*) AS n "
        f"FROM {table_sql(mapping, source.counted, preparer)} GROUP BY {group}), "
        f"sp_ranked AS (SELECT {base_cols}, "
        f"row_number() OVER (ORDER BY sp_counts.n, {', '.join(base)}) - 1 AS pos, "
        f"count(*) OVER () AS total "
        f"FROM {table_sql(mapping, source.base, preparer)} JOIN sp_counts ON {joined}) "
        f"SELECT {', '.join(columns)}"
    )
    return sql, settings


def _time_column(mapping: SchemaMapping, entity: str, field: str) -> TimeColumn:
    value = getattr(mapping.entities()[entity], field, None)
    if not isinstance(value, TimeColumn):
        raise ValueError(f"{{{entity}.{field}}} is not mapped to a column")
    return value


def window_end_statement(mapping: SchemaMapping, preparer: sa.sql.compiler.IdentifierPreparer) -> str:
    """SQL storing the latest message time as epoch seconds (naive timestamps read as UTC)."""
    unit = _time_column(mapping, "messages", "created_at").unit
    column = column_sql(mapping, "messages", "created_at", preparer)
    latest = f"(SELECT max({column}) FROM {table_sql(mapping, 'messages', preparer)})"
    epoch = {
        "timestamp": f"extract(epoch FROM {latest})",
        "epoch_s": latest,
        "epoch_ms": f"{latest} / 1000.0",
    }[unit]
    return f"SELECT set_config({_quote_literal(WINDOW_END_SETTING)}, coalesce(({epoch})::text, ''), true) <> ''"


@dataclass(frozen=True)
class ChosenParameters:
    """Which settings hold a value; builds the EXECUTE argument that reads one back."""

    available: frozenset[str]
    mapping: SchemaMapping

    def argument(
        self, param: RankedParameter | TimeParameter, part: str | None, rank: str, ptype: str, neighbour: int = CENTRE
    ) -> str | None:
        """`current_setting(...)` cast to `ptype` for one `$n` (None: no value at this rank)."""
        ptype = "text" if ptype == "unknown" else ptype
        if isinstance(param, RankedParameter):
            setting = rank_setting(param.entity, param.by, rank, part, neighbour)
            if setting not in self.available:
                return None
            return f"current_setting({_quote_literal(setting)})::{ptype}"
        if WINDOW_END_SETTING not in self.available:
            return None
        entity, field = param.entity_field
        unit = _time_column(self.mapping, entity, field).unit
        seconds = f"(current_setting({_quote_literal(WINDOW_END_SETTING)})::numeric - {param.minus_seconds})"
        if unit == "epoch_s":
            return f"floor({seconds})::{ptype}"
        if unit == "epoch_ms":
            return f"floor({seconds} * 1000)::{ptype}"
        if ptype == "timestamp without time zone":
            return f"(to_timestamp({seconds}) AT TIME ZONE 'UTC')"
        return f"to_timestamp({seconds})::{ptype}"


def ranked_needs(workload: Workload) -> dict[tuple[str, str], list[str]]:
    """(entity, by) -> every rank the workload needs of it, in first-use order."""
    needs: dict[tuple[str, str], list[str]] = {}
    for query in workload.queries.values():
        for param in query.params.values():
            if isinstance(param, RankedParameter):
                ranks = needs.setdefault((param.entity, param.by), [])
                ranks.extend(r for r in param.at if r not in ranks)
    return needs


def choose_parameters(
    conn: sa.Connection, workload: Workload, mapping: SchemaMapping, window_end: datetime | None
) -> ChosenParameters:
    """Store every parameter value the workload needs in transaction-local settings.

    A failing statement is one `ShapePipelineError` line naming the step, never a value.
    """
    preparer = conn.dialect.identifier_preparer
    available: set[str] = set()
    if window_end is None:
        [known] = _store(conn, window_end_statement(mapping, preparer), "latest message time")
    else:
        moment = window_end if window_end.tzinfo else window_end.replace(tzinfo=UTC)
        set_value = f"SELECT set_config({_quote_literal(WINDOW_END_SETTING)}, '{moment.timestamp()!r}', true) <> ''"
        [known] = _store(conn, set_value, "window end")
    if known is True:
        available.add(WINDOW_END_SETTING)
    for (entity, by), ranks in ranked_needs(workload).items():
        sql, settings = rank_statement(entity, by, ranks, mapping, preparer)
        stored = _store(conn, sql, f"{entity} by {by}")
        available.update(s for s, ok in zip(settings, stored, strict=True) if ok is True)
    return ChosenParameters(frozenset(available), mapping)


def check_time_columns(workload: Workload, mapping: SchemaMapping) -> None:
    """Refuse, before any query, a time parameter whose `column` the mapping leaves out."""
    for name, query in workload.queries.items():
        for param_name, param in query.params.items():
            if isinstance(param, TimeParameter):
                entity, field = param.entity_field
                if not isinstance(getattr(mapping.entities()[entity], field, None), TimeColumn):
                    raise ShapePipelineError(
                        f"workload query '{name}': params.{param_name}.column {param.column} is not in the mapping"
                    )
