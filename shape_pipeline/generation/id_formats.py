"""Which format each entity's ids take (`ids.IdEncoding`), decided once per entity.

In this order: the mapping's `id_format` (the user said so), else production's format
(`CalibratedConfig.id_formats`, copied from the shape's physical layout: aggregates only),
else the column types: integer -> a sequence; uuid -> UUIDv4; text -> random ids of the
column's length, at most 26 characters, like Mattermost's, or a sequence where the column is
too short for ids that look random at this count. A format must fit every column holding the
entity's ids (its own and every reference to it), since a user's id is the same value in
users, members and messages; production's format that does not fit falls back, with a note.
"""

from __future__ import annotations

import sqlalchemy as sa

from shape_pipeline.contracts import IdFormat
from shape_pipeline.generation.ids import DEFAULT_TEXT_LENGTH, IdEncoding, random_text
from shape_pipeline.mapping import ULID_LENGTH, IdFormatName, base_type, id_format_problem

INTEGER_LIMITS: tuple[tuple[type, int], ...] = (
    (sa.SmallInteger, 2**15 - 1),
    (sa.BigInteger, 2**63 - 1),
    (sa.Integer, 2**31 - 1),
)
SEQUENTIAL = IdEncoding("sequential")


def from_mapping(id_format: IdFormatName, id_length: int | None, columns: list[sa.Column]) -> IdEncoding:
    """The mapping's `id_format` (its fit to the columns is checked by `check_column_types`)."""
    if id_format == "ulid":
        return random_text(ULID_LENGTH, time_ordered=True)
    if id_format == "random":
        return random_text(id_length or min(_shortest(columns) or DEFAULT_TEXT_LENGTH, DEFAULT_TEXT_LENGTH))
    return IdEncoding(id_format)  # sequential, uuid4, uuid7


def from_production(found: IdFormat) -> IdEncoding:
    """Production's format as the sampler exported it."""
    if found.kind == "integer":
        return SEQUENTIAL
    if found.kind == "uuid":
        return IdEncoding("uuid7" if found.uuid_version == 7 or found.time_ordered else "uuid4")
    if found.alphabet == "digits" and found.time_ordered:
        return SEQUENTIAL  # a sequence stored as text
    return random_text(found.length or DEFAULT_TEXT_LENGTH, found.alphabet, time_ordered=bool(found.time_ordered))


def by_column_type(columns: list[sa.Column], largest: int) -> IdEncoding:
    """The format the columns suggest (see module doc)."""
    kinds = [base_type(c.type) for c in columns]
    if any(isinstance(k, sa.Integer) for k in kinds):
        return SEQUENTIAL
    if all(isinstance(k, sa.Uuid) for k in kinds):
        return IdEncoding("uuid4")
    if isinstance(kinds[0], sa.Uuid):
        return IdEncoding("uuid4")  # a text reference to a uuid id: the checks say if it is too short
    if all(isinstance(k, sa.String) for k in kinds):
        random = random_text(min(_shortest(columns) or DEFAULT_TEXT_LENGTH, DEFAULT_TEXT_LENGTH))
        if random.fits(largest, sparse=True):
            return random
    return SEQUENTIAL


def _shortest(columns: list[sa.Column]) -> int | None:
    lengths = [getattr(base_type(c.type), "length", None) for c in columns]
    known = [n for n in lengths if n is not None]
    return min(known) if known else None


def column_problem(encoding: IdEncoding, column: sa.Column, largest: int) -> str | None:
    """Why `column` cannot hold ids 1..largest in `encoding` (None: it can)."""
    kind = base_type(column.type)
    where = f"{column.table.name}.{column.name} ({column.type})"
    if encoding.kind == "sequential" and isinstance(kind, sa.Integer):
        limit = next((lim for cls, lim in INTEGER_LIMITS if isinstance(kind, cls)), 2**63 - 1)
        return f"{where} cannot hold ids up to {largest:,}" if largest > limit else None
    if encoding.kind == "sequential" and isinstance(kind, sa.String) and not isinstance(kind, sa.Uuid):
        length = getattr(kind, "length", None)
        return (
            f"{where} is too short for ids up to {largest:,}"
            if length is not None and len(str(largest)) > length
            else None
        )
    if not isinstance(kind, sa.Integer | sa.Uuid | sa.String):
        return f"{where}: unsupported id column type {column.type} (use integer, bigint, uuid, varchar or text)"
    need = id_format_problem(encoding.kind, encoding.length or None, kind)
    if need:
        return f"{where} cannot hold {encoding.describe()} ids (needs {need})"
    if not encoding.fits(largest):
        return f"{where}: {encoding.describe()} ids are too short for {largest:,} distinct ids"
    return None


def choose(
    owner: str,
    columns: list[sa.Column],
    largest: int,
    *,
    mapped: tuple[IdFormatName, int | None] | None,
    production: IdFormat | None,
) -> tuple[IdEncoding, str | None]:
    """The encoding of `owner`'s ids written into `columns` (its id column first, then the
    references), and a note when production's format had to give way to the column types."""
    if mapped is not None:
        return from_mapping(mapped[0], mapped[1], columns), None
    fallback = by_column_type(columns, largest)
    if production is None:
        return fallback, None
    wanted = from_production(production)
    if all(column_problem(wanted, c, largest) is None for c in columns):
        return wanted, None
    return fallback, (
        f"{owner} ids: production's {wanted.describe()} ids do not fit "
        f"{', '.join(f'{c.table.name}.{c.name}' for c in columns)}; written as {fallback.describe()} ids"
    )
