"""Canonical generated columns -> the app's own tables, as the mapping names them.

For each mapped table this decides, before a row is written, how every physical column is
filled: ids in their entity's format (`id_formats`: the mapping, production's, else the column
type; the same value in every table that holds them), times in the mapped unit, logical
categories mapped back to the app's raw values, `fill` constants, profile fields at their
fill rates, text columns the mapping does not name as wide as production's (`widths`, from
the config's `unmapped_columns`), and what an unset value is in each NOT NULL column
(`unset_values`). Every
problem (an uncovered non-text NOT NULL column without default, an id that does not fit, a
category without a raw value) is collected and reported in one error; what was decided on the
user's behalf (an uncovered NOT NULL text column written as '') is returned as notes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from shape_pipeline.errors import MappingError
from shape_pipeline.generation import id_formats, text, users, widths
from shape_pipeline.generation.columns import Chunk, int64s
from shape_pipeline.generation.ids import IdEncoding, encode_ids, entity_salt
from shape_pipeline.generation.plan import Plan
from shape_pipeline.generation.unset_values import UnsetRule, unset_rule
from shape_pipeline.mapping import ID_COLUMNS, EnumColumn, SchemaMapping, TimeColumn, base_type

Encoder = Callable[[pa.Table], pa.Array]
CANONICAL_USER_FIELDS = ("display_name", "avatar_url", "bio")
CONVERSATION_CREATED = "_conversation_created_at"  # added to members and messages where ids need it


@dataclass
class TableWriter:
    """One physical table and how each of its written columns is computed from a canonical chunk.

    `ids` is the entity's own id format (None for members); `conversation_times` says that the
    conversation ids written here are time-ordered, so each row needs its conversation's
    creation time (found in the same chunk: a shard holds its conversations' rows)."""

    entity: str
    table: sa.Table
    columns: list[tuple[str, Encoder]]
    unset: dict[str, UnsetRule] = field(default_factory=dict)
    ids: IdEncoding | None = None
    id_column: str | None = None
    conversation_times: bool = False

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def convert(self, logical: pa.Table, chunk: Chunk | None = None) -> pa.Table:
        """The rows of `logical` as this table's physical columns (a column left out where the
        server's default fills every row of the chunk)."""
        if self.conversation_times:
            assert chunk is not None, "time-ordered conversation ids need the chunk's conversations"
            logical = logical.append_column(CONVERSATION_CREATED, conversation_times(chunk, logical["conversation_id"]))
        out: dict[str, pa.Array | pa.ChunkedArray] = {}
        for name, encode in self.columns:
            values = encode(logical)
            rule = self.unset.get(name)
            values = rule.apply(values) if rule is not None else values
            if values is not None:
                out[name] = values
        return pa.table(out)


def micros(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Timestamps as µs since the epoch (int64)."""
    return np.asarray(pc.cast(values, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def conversation_times(chunk: Chunk, conversation_ids: pa.ChunkedArray) -> pa.Array:
    """The creation time of each row's conversation, from the chunk's conversations."""
    conversations = chunk.tables["conversations"]
    own = np.asarray(conversations["id"].to_numpy(), dtype=np.int64)
    order = np.argsort(own, kind="stable")
    at = np.searchsorted(own[order], np.asarray(conversation_ids.to_numpy(), dtype=np.int64))
    return int64s(micros(conversations["created_at"])[order][at])


TimeSource = Callable[[pa.Table], np.ndarray]


def time_source(owner: str, logical: str, plan: Plan) -> TimeSource:
    """Where the creation time of the `owner` ids in column `logical` comes from."""
    if owner == "users":
        return lambda t: users.created_us(plan, np.asarray(t.column(logical).to_numpy(), dtype=np.int64))
    if owner == "conversations" and logical != "id":
        return lambda t: np.asarray(t.column(CONVERSATION_CREATED).to_numpy(), dtype=np.int64)
    return lambda t: micros(t.column("created_at"))


def id_encoder(
    column: sa.Column,
    encoding: IdEncoding,
    salt: int,
    logical: str,
    largest: int,
    times: TimeSource,
    problems: list[str],
) -> Encoder:
    """How ids of one entity (numbered 1..largest) in column `logical` are written into `column`."""
    problem = id_formats.column_problem(encoding, column, largest)
    if problem:
        problems.append(problem)
    kind = base_type(column.type)
    as_text = isinstance(kind, sa.String) and not isinstance(kind, sa.Uuid)

    def encode(t: pa.Table) -> pa.Array:
        return encode_ids(encoding, salt, t.column(logical), times(t) if encoding.needs_time else None, as_text=as_text)

    return encode


def time_encoder(spec: TimeColumn, logical: str) -> Encoder:
    """Timestamps, or whole seconds/milliseconds since the epoch."""
    if spec.unit == "timestamp":
        return lambda t: t.column(logical)
    divisor = 1_000_000 if spec.unit == "epoch_s" else 1_000

    def encode(t: pa.Table) -> pa.Array:
        micros = pc.cast(t.column(logical), pa.int64())
        return pc.divide(micros, divisor)

    return encode


def enum_encoder(enum: EnumColumn, where: str, needed: list[str], problems: list[str]) -> Encoder:
    """Logical category names -> the app's raw values."""
    raw = [enum.raw_for(name) for name in needed]
    missing = [name for name, value in zip(needed, raw, strict=True) if value is None]
    if missing:
        problems.append(f"{where}: no raw value for {', '.join(missing)} in the mapping")
    logical_names = pa.array(needed, pa.string())
    raw_values = pa.array(raw, pa.string())

    def encode(t: pa.Table) -> pa.Array:
        index = pc.index_in(t.column("type"), value_set=logical_names)
        return raw_values.take(index)

    return encode


def text_encoder(column: sa.Column, logical: str, *, exact: bool, longest: int | None, problems: list[str]) -> Encoder:
    """Text as generated; cut to the column's length, unless it must stay exact (usernames, e-mails)."""
    length = getattr(column.type, "length", None)
    if exact and length is not None and longest is not None and longest > length:
        problems.append(
            f"{column.table.name}.{column.name} ({column.type}) is shorter than the longest value ({longest})"
        )
    if length is None or exact:
        return lambda t: t.column(logical)
    return lambda t: pc.utf8_slice_codeunits(t.column(logical), 0, length)


def fill_encoder(value: object) -> Encoder:
    return lambda t: pa.repeat(value, t.num_rows)


ROW_KEYS: dict[str, tuple[str, ...]] = {
    "users": ("id",),
    "conversations": ("id",),
    "messages": ("id",),
    "members": ("conversation_id", "user_id"),
}


def unique_columns(table: sa.Table) -> set[str]:
    """Columns inside a unique constraint or unique index (a constant there would collide)."""
    groups = [c.columns for c in table.constraints if isinstance(c, sa.UniqueConstraint | sa.PrimaryKeyConstraint)]
    groups += [index.columns for index in table.indexes if index.unique]
    return {column.name for group in groups for column in group}


def unique_filler(entity: str, column: sa.Column) -> Encoder:
    """'<column>-<row key>': distinct per row and deterministic (the entity's logical key)."""
    prefix = column.name.lower() + "-"
    keys = ROW_KEYS[entity]

    def encode(t: pa.Table) -> pa.Array:
        parts = [pc.cast(t.column(k), pa.string()) for k in keys]
        joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "-")
        values = pc.binary_join_element_wise(prefix, joined, "")
        length = getattr(column.type, "length", None)
        return pc.utf8_slice_codeunits(values, 0, length) if length else values

    return encode


def _has_default(column: sa.Column) -> bool:
    if column.server_default is not None or column.default is not None or column.identity is not None:
        return True
    table = column.table
    return bool(
        column.primary_key
        and len(table.primary_key.columns) == 1
        and isinstance(column.type, sa.Integer)
        and column.autoincrement in (True, "auto")
    )


@dataclass(frozen=True)
class _Sizes:
    """What the column checks need to know about the dataset."""

    largest: dict[str, int]
    conversation_types: list[str]
    message_types: list[str]
    longest_username: int
    plan: Plan
    ids: dict[str, IdEncoding]  # owner entity -> its id format


def largest_ids(plan: Plan) -> dict[str, int]:
    return {"users": plan.users, "conversations": plan.conversations, "messages": plan.target_messages}


def _sizes(plan: Plan, encodings: dict[str, IdEncoding]) -> _Sizes:
    return _Sizes(
        largest=largest_ids(plan),
        conversation_types=[n for n, p in plan.config.conversation_generation.type_distribution.items() if p > 0],
        message_types=[n for n, p in plan.config.message_generation.type_distribution.items() if p > 0],
        longest_username=int(plan.username_length.max()),
        plan=plan,
        ids=encodings,
    )


def choose_id_formats(
    mapping: SchemaMapping, tables: dict[str, sa.Table], plan: Plan
) -> tuple[dict[str, IdEncoding], list[str]]:
    """Each entity's id format (`id_formats.choose`) and the notes of production formats that
    gave way to the column types."""
    specs = mapping.entities()
    largest = largest_ids(plan)
    encodings: dict[str, IdEncoding] = {}
    notes: list[str] = []
    for owner, places in ID_COLUMNS.items():
        spec = mapping.id_spec(owner)
        columns = [tables[entity].c[getattr(specs[entity], name)] for entity, name in places if entity in tables]
        mapped = (spec.id_format, spec.id_length) if spec.id_format is not None else None
        encodings[owner], note = id_formats.choose(
            owner, columns, largest[owner], mapped=mapped, production=plan.config.id_formats.get(owner)
        )
        notes += [note] if note else []
    return encodings, notes


def _table_writer(
    entity: str,
    spec,
    table: sa.Table,
    sizes: _Sizes,
    problems: list[str],
    notes: list[str],  # noqa: ANN001 - a table spec
) -> TableWriter:
    """The columns of one mapped table (see module doc)."""
    cols: list[tuple[str, Encoder]] = []
    largest = sizes.largest

    def add(physical: str | None, encoder_for: Callable[[sa.Column], Encoder]) -> None:
        if physical and all(physical != name for name, _ in cols):
            cols.append((physical, encoder_for(table.c[physical])))

    def text_of(logical: str) -> Callable[[sa.Column], Encoder]:
        return lambda c: text_encoder(c, logical, exact=False, longest=None, problems=problems)

    def ids_of(owner: str, logical: str) -> Callable[[sa.Column], Encoder]:
        salt = entity_salt(sizes.plan.seed, owner)
        times = time_source(owner, logical, sizes.plan)
        return lambda c: id_encoder(c, sizes.ids[owner], salt, logical, largest[owner], times, problems)

    def enum_of(types: list[str]) -> Callable[[sa.Column], Encoder]:
        return lambda c: enum_encoder(spec.type, f"{table.name}.{c.name}", types, problems)

    def time_of(time_spec: TimeColumn, logical: str) -> Callable[[sa.Column], Encoder]:
        return lambda c: time_encoder(time_spec, logical)

    if entity == "users":
        email_length = sizes.longest_username + 1 + len(text.EMAIL_DOMAIN)
        add(spec.id, ids_of("users", "id"))
        add(
            spec.username,
            lambda c: text_encoder(c, "username", exact=True, longest=sizes.longest_username, problems=problems),
        )
        add(spec.email, lambda c: text_encoder(c, "email", exact=True, longest=email_length, problems=problems))
        add(spec.display_name, text_of("display_name"))
        for name in spec.profile_fields:
            if isinstance(table.c[name].type, sa.String):
                add(name, text_of(name))
        add(spec.created_at.column, time_of(spec.created_at, "created_at"))
    elif entity == "conversations":
        add(spec.id, ids_of("conversations", "id"))
        add(spec.type.column, enum_of(sizes.conversation_types))
        add(spec.name, text_of("name"))
        add(spec.created_at.column, time_of(spec.created_at, "created_at"))
    elif entity == "members":
        add(spec.conversation_id, ids_of("conversations", "conversation_id"))
        add(spec.user_id, ids_of("users", "user_id"))
        if spec.joined_at is not None:
            add(spec.joined_at.column, time_of(spec.joined_at, "joined_at"))
    else:
        add(spec.id, ids_of("messages", "id"))
        add(spec.conversation_id, ids_of("conversations", "conversation_id"))
        add(spec.sender_id, ids_of("users", "sender_id"))
        add(spec.type.column, enum_of(sizes.message_types))
        add(spec.content, text_of("content"))
        add(spec.created_at.column, time_of(spec.created_at, "created_at"))
    for column, value in spec.fill.items():
        if column not in table.c:
            problems.append(f"{table.name}: fill names column {column}, which the table lacks")
        elif all(column != name for name, _ in cols):
            cols.append((column, fill_encoder(value)))
    written = {name for name, _ in cols}
    unique = unique_columns(table)
    production = sizes.plan.config.unmapped_columns.get(entity, {})
    fillers: list[widths.Filler] = []
    for c in table.columns:
        if c.name in written:
            continue
        if c.name in unique and isinstance(c.type, sa.String) and not (c.nullable and c.server_default is None):
            cols.append((c.name, unique_filler(entity, c)))
            notes.append(
                f"{table.name}.{c.name}: unique text not covered by the mapping, written as '{c.name.lower()}-<row key>'"
            )
            continue
        filler = widths.filler_for(c, production[c.name]) if c.name in production and c.name not in unique else None
        if filler is not None:
            cols.append((c.name, widths.filler_encoder(filler, sizes.plan.seed, table.name, ROW_KEYS[entity])))
            fillers.append(filler)
            continue
        if c.nullable or _has_default(c):
            continue
        if isinstance(c.type, sa.String):
            cols.append((c.name, fill_encoder("")))
            notes.append(
                f"{table.name}.{c.name}: NOT NULL text not covered by the mapping, written as '' (set it with '{entity}.fill')"
            )
        else:
            problems.append(
                f"{table.name}.{c.name} is NOT NULL without a default and not covered by the mapping "
                f"(add it to '{entity}.fill')"
            )
    if fillers:
        notes.append(widths.note(table.name, fillers))
    unset = {name: rule for name, _ in cols if (rule := unset_rule(table.c[name])) is not None}
    own = sizes.ids.get(entity)
    conversation_times = entity in ("members", "messages") and sizes.ids["conversations"].needs_time
    return TableWriter(entity, table, cols, unset, own, spec.id if own is not None else None, conversation_times)


def build_writers(
    mapping: SchemaMapping, tables: dict[str, sa.Table], plan: Plan
) -> tuple[dict[str, TableWriter], list[str]]:
    """One `TableWriter` per entity and the notes of what was decided for the user; raises
    `MappingError` listing every problem, before any write."""
    problems: list[str] = []
    encodings, notes = choose_id_formats(mapping, tables, plan)
    sizes = _sizes(plan, encodings)
    specs = mapping.entities()
    writers = {
        entity: _table_writer(entity, specs[entity], table, sizes, problems, notes) for entity, table in tables.items()
    }
    if problems:
        raise MappingError("cannot write into this schema: " + "; ".join(problems))
    return writers, notes


def extra_profile_fields(mapping: SchemaMapping) -> list[str]:
    """Mapped profile columns beyond the canonical ones (generated as short filler text)."""
    return [
        f for f in mapping.users.profile_fields if f not in CANONICAL_USER_FIELDS and f != mapping.users.display_name
    ]
