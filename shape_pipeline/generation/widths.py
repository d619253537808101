"""Columns the mapping does not name, written as wide as production's.

Apps keep JSON settings and lists in columns no mapping mentions (Mattermost's NotifyProps,
Props, FileIds). Production fills them; written as '' or NULL, synthetic rows are narrower, a
table has fewer pages and scans read fewer buffers than production's, so plans can differ.
The sampler exports each such column's `avg_width` and `null_frac` (numbers only), and here a
text column gets one filler value of that width: a run of 'x', or a JSON-shaped value where
the column holds JSON (a json/jsonb type, or a text column whose default is '{...}' or '[...]'),
so it stays valid for the app. A nullable integer, float or boolean column that production
fills and that has no default gets 0 (false): its width is its type's. Rows are NULL for about `null_frac` of them, chosen by a hash of
the row's logical key (deterministic for a seed). A column whose constant default is already
about as wide as production's keeps its default (a role name stays a role name; a column empty
in most rows stays empty where it is, since queries filter on it), and a column
under a foreign key or a CHECK is left alone (a filler could break it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from shape_pipeline.contracts import ColumnLayout
from shape_pipeline.generation.ids import mix64, uniform
from shape_pipeline.generation.unset_values import default_literal
from shape_pipeline.mapping import base_type

Shape = Literal["text", "object", "array"]
SHORT_HEADER = 126  # a varlena up to this many payload bytes has a 1-byte header on disk, else 4
JSONB_OVERHEAD = {"object": 13, "array": 8}  # jsonb bytes around one string value: header, entries, key
_DRESS = {"object": ('{"x":"', '"}'), "array": ('["', '"]')}  # JSON text around the run of 'x'
_EMPTY = {"object": "{}", "array": "[]"}
# Bytes a constant text default may be off production's average and still be kept: a column
# empty in most rows (Mattermost's RootId: '' but for replies) keeps the value queries filter on.
DEFAULT_SLACK = 8
Encoder = Callable[[pa.Table], pa.Array]


@dataclass(frozen=True)
class Filler:
    """The value every written row of one column gets, and the share of rows left NULL."""

    column: str
    value: object  # text of production's width, or 0 / false in a fixed-width column
    null_frac: float  # 0 for NOT NULL columns
    width: int  # production's avg_width (bytes), for the note

    def note(self) -> str:
        return f"{self.column} ({self.width} bytes, {self.null_frac:.0%} NULL)"


def payload(width: int) -> int:
    """Bytes of content in a value `pg_stats.avg_width` says is `width` bytes (less the header)."""
    return max(width - (1 if width <= SHORT_HEADER + 1 else 4), 0)


def json_shape(column: sa.Column) -> Shape:
    """object / array where the column holds JSON (its type, or a '{..}' / '[..]' default), else text."""
    literal = default_literal(column)
    if isinstance(literal, str) and literal[:1] in ("{", "["):
        return "object" if literal[0] == "{" else "array"
    return "object" if isinstance(base_type(column.type), sa.JSON) else "text"


def filler_text(width: int, shape: Shape, *, jsonb: bool = False, length: int | None = None) -> str:
    """One value of about `width` bytes on disk (`avg_width`), at most `length` characters."""
    size = payload(width)
    if shape == "text":
        return "x" * (size if length is None else min(size, length))
    head, tail = _DRESS[shape]
    run = size - JSONB_OVERHEAD[shape] if jsonb else size - len(head) - len(tail)
    if length is not None:
        run = min(run, length - len(head) - len(tail))
    if run < 1:
        empty = _EMPTY[shape]
        return empty if length is None or len(empty) <= length else ""
    return head + "x" * run + tail


def constrained(column: sa.Column) -> bool:
    """A foreign key or a CHECK naming the column: a filler value could break it."""
    checks = [c for c in column.table.constraints if isinstance(c, sa.CheckConstraint)]
    return bool(column.foreign_keys) or any(column.name in str(c.sqltext) for c in checks)


def _fixed_zero(kind: sa.types.TypeEngine) -> object | None:
    """The value written in a fixed-width column (its width is the type's): None for other types."""
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):
        return 0
    return 0.0 if isinstance(kind, sa.Float) else None


def filler_for(column: sa.Column, layout: ColumnLayout) -> Filler | None:
    """The filler of one unmapped column, or None to keep today's rule: no width known, every
    row NULL in production, a key or CHECK on it, a constant default already about as wide, a
    fixed-width column the server or the user fills (a default, or NOT NULL), another type."""
    kind = base_type(column.type)
    null_frac = layout.null_frac or 0.0
    if layout.avg_width is None or null_frac >= 1.0 or constrained(column):
        return None
    share = null_frac if column.nullable else 0.0
    zero = _fixed_zero(kind)
    if zero is not None:
        fills = column.nullable and column.server_default is None and column.default is None and column.identity is None
        return Filler(column.name, zero, share, layout.avg_width) if fills else None
    if not isinstance(kind, sa.String | sa.JSON) or isinstance(kind, sa.Enum):
        return None
    default = default_literal(column)
    if isinstance(default, str) and abs(len(default.encode()) - payload(layout.avg_width)) <= DEFAULT_SLACK:
        return None
    length = getattr(kind, "length", None)
    value = filler_text(layout.avg_width, json_shape(column), jsonb=isinstance(kind, JSONB), length=length)
    return Filler(column.name, value, share, layout.avg_width)


def null_mask(seed: str, purpose: str, keys: list[np.ndarray], share: float) -> np.ndarray:
    """True for about `share` of rows, a pure function of (seed, purpose, the row's key columns)."""
    key: np.ndarray = np.asarray(keys[0], dtype=np.int64).astype(np.uint64)
    for more in keys[1:]:
        key = mix64(key) ^ np.asarray(more, dtype=np.int64).astype(np.uint64)
    return uniform(seed, purpose, key) < share


def filler_encoder(filler: Filler, seed: str, table: str, keys: tuple[str, ...]) -> Encoder:
    """The column as `filler.value`, NULL where the row's key hashes below `null_frac`."""
    purpose = f"null:{table}.{filler.column}"

    def encode(t: pa.Table) -> pa.Array:
        value = pa.scalar(filler.value)
        values = pa.repeat(value, t.num_rows)
        if filler.null_frac <= 0.0:
            return values
        nulls = null_mask(seed, purpose, [t.column(k).to_numpy() for k in keys], filler.null_frac)
        return pc.if_else(pa.array(nulls), pa.scalar(None, value.type), values)

    return encode


def note(table: str, fillers: list[Filler]) -> str:
    """One line per table for the generator's notes."""
    columns = ", ".join(f.note() for f in fillers)
    return f"{table}: not in the mapping, written with production's average width: {columns}"
