"""A workload query's SQL -> the statement PostgreSQL prepares.

`{entity}` and `{entity.field}` name the mapping's logical tables and columns and become the
app's physical names, quoted as SQLAlchemy's identifier preparer quotes them; `:name` marks a
parameter and becomes `$1, $2, ...` (one number per distinct name). Quoted literals, quoted
identifiers, comments and dollar-quoted bodies are copied as written: braces or colons inside
them are text, not placeholders. `alias.{messages.sender_id}` (a placeholder right after an
identifier, or after `{entity}.`, and a dot) renders the bare column, for tables given an alias.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import UnionType
from typing import Union, get_args, get_origin

import sqlalchemy as sa

from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.mapping import EnumColumn, SchemaMapping, TimeColumn

_COLUMN_TYPES = (str, TimeColumn, EnumColumn, type(None))


def _names_a_column(name: str, annotation: object) -> bool:
    """A mapping field that names a physical column (not `table`, `fill`, lists or options)."""
    kinds = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    return name != "table" and all(kind in _COLUMN_TYPES for kind in kinds)


def logical_fields() -> dict[str, tuple[str, ...]]:
    """Entity -> the logical fields a `{entity.field}` placeholder may name (from the mapping model)."""
    out: dict[str, tuple[str, ...]] = {}
    for entity, info in SchemaMapping.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and hasattr(model, "model_fields"):
            out[entity] = tuple(f for f, i in model.model_fields.items() if _names_a_column(f, i.annotation))
    return out


ENTITY_FIELDS: dict[str, tuple[str, ...]] = logical_fields()

_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?\s*\}")
_PARAM = re.compile(r":([A-Za-z_]\w*)")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_]\w*)?\$")
_ALIAS_DOT = re.compile(r'(?:[A-Za-z_]\w*|"[^"]*"|\})\s*\.\s*$')


@dataclass(frozen=True)
class Token:
    """One piece of a query: `kind` is 'text' (copied), 'entity' / 'field' (a placeholder),
    or 'param' (a `:name`). `aliased`: a field placeholder written after `alias.`."""

    kind: str
    text: str
    entity: str | None = None
    field: str | None = None
    aliased: bool = False


def _quoted_end(sql: str, start: int) -> int:
    """End (exclusive) of the quoted literal, identifier, comment or dollar body at `start`."""
    ch = sql[start]
    if ch in "'\"":
        i = start + 1
        escapes = ch == "'" and start > 0 and sql[start - 1] in "eE"
        while i < len(sql):
            if escapes and sql[i] == "\\":
                i += 2
                continue
            if sql[i] == ch:
                if i + 1 < len(sql) and sql[i + 1] == ch:  # '' or "" inside
                    i += 2
                    continue
                return i + 1
            i += 1
        raise ValueError(f"unclosed {ch} quote")
    if sql.startswith("--", start):
        end = sql.find("\n", start)
        return len(sql) if end < 0 else end + 1
    if sql.startswith("/*", start):
        end = sql.find("*/", start + 2)
        if end < 0:
            raise ValueError("unclosed /* comment")
        return end + 2
    tag = _DOLLAR_TAG.match(sql, start)
    assert tag is not None
    end = sql.find(tag.group(0), tag.end())
    if end < 0:
        raise ValueError(f"unclosed {tag.group(0)} body")
    return end + len(tag.group(0))


def _code_tokens(code: str, before: str) -> list[Token]:
    """Placeholders and parameters in SQL outside quotes and comments."""
    tokens: list[Token] = []
    i = 0
    while i < len(code):
        ch = code[i]
        if ch == "{":
            match = _PLACEHOLDER.match(code, i)
            if match is None:
                raise ValueError("'{' starts no {entity} or {entity.field} placeholder")
            entity, field = match.group(1), match.group(2)
            aliased = field is not None and bool(_ALIAS_DOT.search(before + code[:i]))
            tokens.append(Token("field" if field else "entity", match.group(0), entity, field, aliased))
            i = match.end()
        elif ch == "}":
            raise ValueError("'}' closes no placeholder")
        elif ch == ":" and code.startswith("::", i):
            tokens.append(Token("text", "::"))
            i += 2
        elif ch == ":" and (match := _PARAM.match(code, i)):
            tokens.append(Token("param", match.group(0), field=match.group(1)))
            i = match.end()
        elif ch == "$" and i + 1 < len(code) and code[i + 1].isdigit():
            raise ValueError("write parameters as :name, not $1")
        else:
            j = i + 1
            while j < len(code) and code[j] not in "{}:$":
                j += 1
            tokens.append(Token("text", code[i:j]))
            i = j
    return tokens


def tokenize(sql: str) -> list[Token]:
    """Split `sql` into copied text, placeholders and parameters; ValueError on malformed SQL."""
    tokens: list[Token] = []
    i = code_start = 0
    while i < len(sql):
        ch = sql[i]
        opens = ch in "'\"" or sql.startswith(("--", "/*"), i) or (ch == "$" and _DOLLAR_TAG.match(sql, i))
        # A dollar sign inside an identifier (a$b$) is not a dollar quote.
        if opens and ch == "$" and i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_"):
            opens = False
        if not opens:
            i += 1
            continue
        tokens += _code_tokens(sql[code_start:i], sql[:code_start])
        end = _quoted_end(sql, i)
        tokens.append(Token("text", sql[i:end]))
        i = code_start = end
    tokens += _code_tokens(sql[code_start:], sql[:code_start])
    return tokens


def check_placeholders(tokens: list[Token]) -> None:
    """ValueError naming the first `{...}` that names no logical entity or field."""
    for token in tokens:
        if token.kind not in ("entity", "field"):
            continue
        if token.entity not in ENTITY_FIELDS:
            raise ValueError(f"{token.text} names no entity (use {', '.join(ENTITY_FIELDS)})")
        if token.field is not None and token.field not in ENTITY_FIELDS[token.entity]:
            fields = ", ".join(ENTITY_FIELDS[token.entity])
            raise ValueError(f"{token.text}: {token.entity} has no field {token.field} (use {fields})")


def parameter_names(tokens: list[Token]) -> list[str]:
    """Distinct `:name` parameters in order of first use."""
    return list(dict.fromkeys(t.field for t in tokens if t.kind == "param" and t.field))


@dataclass(frozen=True)
class RenderedQuery:
    """The statement to PREPARE (`$n` placeholders) and the parameter name behind each `$n`."""

    sql: str
    params: list[str]


def physical_column(mapping: SchemaMapping, entity: str, field: str) -> str | None:
    """The physical column a logical field maps to (None when the mapping leaves it out)."""
    value = getattr(mapping.entities()[entity], field, None)
    if isinstance(value, TimeColumn):
        return value.column
    if isinstance(value, EnumColumn):
        return value.column
    return value if isinstance(value, str) else None


def table_sql(mapping: SchemaMapping, entity: str, preparer: sa.sql.compiler.IdentifierPreparer) -> str:
    """`"schema"."Table"` of an entity, quoted where the name needs it."""
    table = preparer.quote(mapping.entities()[entity].table)
    return f"{preparer.quote_schema(mapping.schema_)}.{table}" if mapping.schema_ else table


def column_sql(
    mapping: SchemaMapping,
    entity: str,
    field: str,
    preparer: sa.sql.compiler.IdentifierPreparer,
    *,
    qualified: bool = True,
) -> str:
    """`"Table"."Column"` (or the bare quoted column) of a logical field; ValueError if unmapped."""
    column = physical_column(mapping, entity, field)
    if column is None:
        raise ValueError(f"{{{entity}.{field}}} is not mapped to a column")
    quoted = preparer.quote(column)
    return f"{table_sql(mapping, entity, preparer)}.{quoted}" if qualified else quoted


def render_query(
    name: str, sql: str, mapping: SchemaMapping, preparer: sa.sql.compiler.IdentifierPreparer
) -> RenderedQuery:
    """The physical statement of query `name`; one-line ShapePipelineError naming the query."""
    try:
        tokens = tokenize(sql)
        check_placeholders(tokens)
        params = parameter_names(tokens)
        parts: list[str] = []
        for token in tokens:
            if token.kind == "entity":
                parts.append(table_sql(mapping, str(token.entity), preparer))
            elif token.kind == "field":
                parts.append(
                    column_sql(mapping, str(token.entity), str(token.field), preparer, qualified=not token.aliased)
                )
            elif token.kind == "param":
                parts.append(f"${params.index(str(token.field)) + 1}")
            else:
                parts.append(token.text)
    except ValueError as exc:
        raise ShapePipelineError(f"workload query '{name}': {exc}") from None
    return RenderedQuery("".join(parts), params)
