"""Canonical generated columns -> the app's own tables, as the mapping names them.

For each mapped table this decides, before a row is written, how every physical column is
filled: ids encoded to fit the column's type (integer, bigint, uuid, varchar/text of the
column's length), times in the mapped unit, logical categories mapped back to the app's raw
values, `fill` constants, profile fields at their fill rates, and what an unset value is in
each NOT NULL column (`unset_values`). Every problem (an uncovered non-text NOT NULL column
without default, an id that does not fit, a category without a raw value) is collected and
reported in one error; what was decided on the user's behalf (an uncovered NOT NULL text
column written as '') is returned as notes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from shape_pipeline.errors import MappingError
from shape_pipeline.generation import text
from shape_pipeline.generation.plan import Plan
from shape_pipeline.generation.unset_values import UnsetRule, unset_rule
from shape_pipeline.mapping import EnumColumn, SchemaMapping, TimeColumn

Encoder = Callable[[pa.Table], pa.Array]
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
UUID_ENTITY: dict[str, int] = {"users": 1, "conversations": 2, "messages": 3}
CANONICAL_USER_FIELDS = ("display_name", "avatar_url", "bio")
INTEGER_LIMITS: tuple[tuple[type, int], ...] = (
    (sa.SmallInteger, 2**15 - 1),
    (sa.BigInteger, 2**63 - 1),
    (sa.Integer, 2**31 - 1),
)


@dataclass
class TableWriter:
    """One physical table and how each of its written columns is computed from a canonical chunk."""

    entity: str
    table: sa.Table
    columns: list[tuple[str, Encoder]]
    unset: dict[str, UnsetRule] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def convert(self, logical: pa.Table) -> pa.Table:
        """The rows of `logical` as this table's physical columns (a column left out where the
        server's default fills every row of the chunk)."""
        out: dict[str, pa.Array | pa.ChunkedArray] = {}
        for name, encode in self.columns:
            values = encode(logical)
            rule = self.unset.get(name)
            values = rule.apply(values) if rule is not None else values
            if values is not None:
                out[name] = values
        return pa.table(out)


def uuid_strings(entity: str, values: pa.Array) -> pa.Array:
    """Deterministic version-4-shaped UUIDs: the entity in the first group, the id in the last 12 hex digits."""
    numbers = values.to_numpy().astype(np.uint64)
    shifts = np.arange(11, -1, -1, dtype=np.uint64) * np.uint64(4)
    digits = HEX[((numbers[:, None] >> shifts) & np.uint64(15)).astype(np.int64)]
    tail = text.strings_from_bytes(digits.reshape(-1), np.full(numbers.size, 12, dtype=np.int64))
    return text.join(f"{UUID_ENTITY[entity]:08x}-0000-4000-8000-", tail)


def id_encoder(
    column: sa.Column, entity: str, logical: str, largest: int, problems: list[str]
) -> Encoder:
    """How ids of `entity` (numbered 1..largest) are written into `column`."""
    kind = column.type
    where = f"{column.table.name}.{column.name}"
    if isinstance(kind, sa.Integer):
        limit = next((lim for cls, lim in INTEGER_LIMITS if isinstance(kind, cls)), 2**63 - 1)
        if largest > limit:
            problems.append(f"{where} ({kind}) cannot hold ids up to {largest:,}")
        return lambda t: t.column(logical).combine_chunks()
    if isinstance(kind, sa.Uuid):
        return lambda t: uuid_strings(entity, t.column(logical).combine_chunks())
    if isinstance(kind, sa.String):
        if kind.length is not None and len(str(largest)) > kind.length:
            problems.append(f"{where} ({kind}) is too short for ids up to {largest:,}")
        return lambda t: pc.cast(t.column(logical), pa.string())
    problems.append(f"{where}: unsupported id column type {kind} (use integer, bigint, uuid, varchar or text)")
    return lambda t: t.column(logical)


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
        problems.append(f"{column.table.name}.{column.name} ({column.type}) is shorter than the longest value ({longest})")
    if length is None or exact:
        return lambda t: t.column(logical)
    return lambda t: pc.utf8_slice_codeunits(t.column(logical), 0, length)


def fill_encoder(value: object) -> Encoder:
    return lambda t: pa.repeat(value, t.num_rows)


ROW_KEYS: dict[str, tuple[str, ...]] = {
    "users": ("id",), "conversations": ("id",), "messages": ("id",), "members": ("conversation_id", "user_id"),
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
        column.primary_key and len(table.primary_key.columns) == 1 and isinstance(column.type, sa.Integer)
        and column.autoincrement in (True, "auto")
    )


@dataclass(frozen=True)
class _Sizes:
    """What the column checks need to know about the dataset."""

    largest: dict[str, int]
    conversation_types: list[str]
    message_types: list[str]
    longest_username: int


def _sizes(plan: Plan) -> _Sizes:
    return _Sizes(
        largest={"users": plan.users, "conversations": plan.conversations, "messages": plan.target_messages},
        conversation_types=[n for n, p in plan.config.conversation_generation.type_distribution.items() if p > 0],
        message_types=[n for n, p in plan.config.message_generation.type_distribution.items() if p > 0],
        longest_username=int(plan.username_length.max()),
    )


def _table_writer(
    entity: str, spec, table: sa.Table, sizes: _Sizes, problems: list[str], notes: list[str]  # noqa: ANN001 - a table spec
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
        return lambda c: id_encoder(c, owner, logical, largest[owner], problems)

    def enum_of(types: list[str]) -> Callable[[sa.Column], Encoder]:
        return lambda c: enum_encoder(spec.type, f"{table.name}.{c.name}", types, problems)

    def time_of(time_spec: TimeColumn, logical: str) -> Callable[[sa.Column], Encoder]:
        return lambda c: time_encoder(time_spec, logical)

    if entity == "users":
        email_length = sizes.longest_username + 1 + len(text.EMAIL_DOMAIN)
        add(spec.id, ids_of("users", "id"))
        add(spec.username, lambda c: text_encoder(c, "username", exact=True, longest=sizes.longest_username, problems=problems))
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
    for c in table.columns:
        if c.name in written:
            continue
        if c.name in unique and isinstance(c.type, sa.String) and not (c.nullable and c.server_default is None):
            cols.append((c.name, unique_filler(entity, c)))
            notes.append(f"{table.name}.{c.name}: unique text not covered by the mapping, written as '{c.name.lower()}-<row key>'")
            continue
        if c.nullable or _has_default(c):
            continue
        if isinstance(c.type, sa.String):
            cols.append((c.name, fill_encoder("")))
            notes.append(f"{table.name}.{c.name}: NOT NULL text not covered by the mapping, written as '' (set it with '{entity}.fill')")
        else:
            problems.append(
                f"{table.name}.{c.name} is NOT NULL without a default and not covered by the mapping "
                f"(add it to '{entity}.fill')"
            )
    unset = {name: rule for name, _ in cols if (rule := unset_rule(table.c[name])) is not None}
    return TableWriter(entity, table, cols, unset)


def build_writers(
    mapping: SchemaMapping, tables: dict[str, sa.Table], plan: Plan
) -> tuple[dict[str, TableWriter], list[str]]:
    """One `TableWriter` per entity and the notes of what was decided for the user; raises
    `MappingError` listing every problem, before any write."""
    problems: list[str] = []
    notes: list[str] = []
    sizes = _sizes(plan)
    specs = mapping.entities()
    writers = {
        entity: _table_writer(entity, specs[entity], table, sizes, problems, notes)
        for entity, table in tables.items()
    }
    if problems:
        raise MappingError("cannot write into this schema: " + "; ".join(problems))
    return writers, notes


def extra_profile_fields(mapping: SchemaMapping) -> list[str]:
    """Mapped profile columns beyond the canonical ones (generated as short filler text)."""
    return [f for f in mapping.users.profile_fields if f not in CANONICAL_USER_FIELDS and f != mapping.users.display_name]
