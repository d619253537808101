"""What "unset" means in a target column: NULL, the column's default, or ''.

Generated optional values (a display name, a bio, a DM's title) are NULL where unset. Many
real schemas declare such columns `NOT NULL DEFAULT ''` (Mattermost's Nickname, FirstName,
...), so NULL would fail the load. The reflected column decides: nullable columns keep NULL;
NOT NULL columns get their server default (left to the server where a whole chunk is unset,
else written as the default's literal value) or `''` for text without a usable default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

_QUOTED = re.compile(r"^\(*'((?:[^']|'')*)'\)*(?:::[\w\s\".\[\]()]+)?$")
_NUMBER = re.compile(r"^\(*(-?\d+(?:\.\d+)?)\)*(?:::[\w\s\".\[\]()]+)?$")


@dataclass(frozen=True)
class UnsetRule:
    """How one NOT NULL column receives rows that have no value."""

    value: object | None  # the literal to write; None: nothing usable to write
    server_default: bool  # the column has a default the server can fill in

    def apply(self, values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
        """`values` with unset rows filled; None to leave the whole column to the server."""
        if values.null_count == 0:
            return values
        if self.server_default and values.null_count == len(values):
            return None
        if self.value is None:
            return values
        return pc.fill_null(values, pa.scalar(self.value, values.type))


def default_literal(column: sa.Column) -> object | None:
    """The value of a constant server default ('', 'UTC'::text, 0, false), else None."""
    default = column.server_default
    arg = getattr(default, "arg", None)
    if arg is None:
        return None
    text = str(getattr(arg, "text", arg)).strip()
    if match := _QUOTED.match(text):
        return match.group(1).replace("''", "'")
    if match := _NUMBER.match(text):
        number = match.group(1)
        return float(number) if "." in number else int(number)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return None


def _is_text(column: sa.Column) -> bool:
    return isinstance(column.type, sa.String)


def unset_rule(column: sa.Column) -> UnsetRule | None:
    """The rule for `column`, or None where NULL is allowed."""
    if column.nullable:
        return None
    literal = default_literal(column)
    if _is_text(column) and not isinstance(literal, str):
        literal = "" if literal is None else str(literal)
    elif literal is not None and not _is_text(column):
        literal = None  # a typed literal is the server's to apply: leave those rows to it
    return UnsetRule(literal, column.server_default is not None)
