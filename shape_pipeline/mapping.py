"""Schema mapping: the logical chat entities -> the app's physical tables, columns and enum values.

Production schemas differ from app to app. The sampler reads, and the generator writes, the
app's own tables through one YAML mapping; without a mapping the canonical schema is assumed.

Type columns (`type:`) map raw values to logical categories. OTHER is a category like the
others: raw values the mapping does not name are counted as OTHER by the sampler, `values`
may send raw values to OTHER explicitly, and `other:` names the raw value the generator
writes for OTHER, e.g.

    type: {column: Type, values: {"": TEXT, system_join_channel: OTHER}, other: system_generic}

Reflection (`reflect_tables`) refuses, before any query or write, a mapping whose tables or
columns are missing or whose column types cannot hold their role (`check_column_types`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.dialects.postgresql import DOMAIN

from shape_pipeline.errors import MappingError

CONVERSATION_TYPES: tuple[str, ...] = ("DIRECT_MESSAGE", "GROUP_CHAT", "CHANNEL")
DIRECT_MESSAGE_MEMBERS: tuple[int, ...] = (1, 2)  # a note to self, or two people
MESSAGE_TYPES: tuple[str, ...] = ("TEXT", "IMAGE", "FILE", "AUDIO", "VIDEO")
OTHER = "OTHER"

TimeUnit = Literal["timestamp", "epoch_s", "epoch_ms"]
# How an entity's ids look (README, "Schema mapping"): a sequence; random text ids (`id_length`
# characters, Mattermost-like); ULID-like time-ordered random text (26 characters); UUIDs.
IdFormatName = Literal["sequential", "random", "ulid", "uuid4", "uuid7"]
ULID_LENGTH = 26
UUID_TEXT_LENGTH = 36
DEFAULT_ID_LENGTH = 26


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeColumn(_Strict):
    """A time column: a real timestamp, or a number of seconds/milliseconds since the epoch."""

    column: str
    unit: TimeUnit = "timestamp"


def _raw_text(value: Any) -> Any:
    """A raw enum value as the database spells it as text: YAML reads `1: CHANNEL` as an
    integer key and `true` as a boolean (PostgreSQL casts them to '1' and 'true')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


class EnumColumn(_Strict):
    """A type column whose raw values map to logical categories, or a constant category.

    `values` maps raw values to categories (OTHER allowed: raw values counted as OTHER);
    `default` is the category of NULL; `other` is the raw value written for OTHER (and counted
    as OTHER when read). A `constant` must be a named category: "every row is OTHER" says
    nothing the generator could write.
    """

    column: str | None = None
    values: dict[str, str] = Field(default_factory=dict)  # raw value -> logical category
    default: str | None = None  # logical category for NULL raw values
    constant: str | None = None  # the app has no type column: every row is this category
    other: str | None = None  # raw value the generator writes for OTHER

    @field_validator("values", mode="before")
    @classmethod
    def _raw_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {_raw_text(raw): name for raw, name in value.items()}
        return value

    @field_validator("other", mode="before")
    @classmethod
    def _raw_other(cls, value: Any) -> Any:
        return _raw_text(value)

    @model_validator(mode="after")
    def _column_or_constant(self) -> EnumColumn:
        if (self.column is None) == (self.constant is None):
            raise ValueError("give either 'column' (with 'values') or 'constant'")
        if self.constant == OTHER:
            raise ValueError("constant: OTHER names no category; give the category every row has")
        if self.other is not None and self.column is None:
            raise ValueError("'other' needs a 'column' to write into (not a 'constant')")
        named = self.values.get(self.other, OTHER) if self.other is not None else OTHER
        if named != OTHER:
            raise ValueError(f"'other: {self.other}' is already mapped to {named} in 'values'")
        return self

    def raw_for(self, logical: str) -> str | None:
        """The raw value the app stores for a logical category (None if unmapped). For OTHER:
        `other` if given, else the first raw value mapped to OTHER."""
        if logical == OTHER and self.other is not None:
            return self.other
        for raw, name in self.values.items():
            if name == logical:
                return raw
        return None

    def categories_by_raw(self) -> dict[str, str]:
        """Raw value -> logical category of every raw value the mapping names (`other` included)."""
        out = dict(self.values)
        if self.other is not None:
            out[self.other] = OTHER
        return out


def _time_column(value: Any) -> Any:
    return {"column": value} if isinstance(value, str) else value


class _Table(_Strict):
    table: str
    fill: dict[str, Any] = Field(default_factory=dict)  # constants for uncovered NOT NULL columns


class _Identified(_Table):
    """A table with ids of its own; `id_format`/`id_length` say what they look like (else the
    production shape, else the column type decides)."""

    id: str
    id_format: IdFormatName | None = None
    id_length: int | None = Field(default=None, ge=1, le=255)  # random text ids only

    @model_validator(mode="after")
    def _length_for_random_ids(self) -> _Identified:
        if self.id_length is not None and self.id_format != "random":
            raise ValueError("id_length: only with id_format: random")
        return self


class UsersMapping(_Identified):
    username: str
    email: str | None = None
    display_name: str | None = None
    created_at: TimeColumn
    profile_fields: list[str] = Field(default_factory=list)

    _tc = field_validator("created_at", mode="before")(_time_column)


class ConversationsMapping(_Identified):
    type: EnumColumn
    name: str | None = None
    created_at: TimeColumn

    _tc = field_validator("created_at", mode="before")(_time_column)


class MembersMapping(_Table):
    conversation_id: str
    user_id: str
    joined_at: TimeColumn | None = None

    _tc = field_validator("joined_at", mode="before")(_time_column)


class MessagesMapping(_Identified):
    conversation_id: str
    sender_id: str
    content: str
    type: EnumColumn
    created_at: TimeColumn

    _tc = field_validator("created_at", mode="before")(_time_column)


_NOT_COLUMNS = frozenset({"table", "fill", "id_format", "id_length"})
# Where each entity's ids are written: (entity, field) of its own id and of every reference to it.
ID_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "users": (("users", "id"), ("members", "user_id"), ("messages", "sender_id")),
    "conversations": (("conversations", "id"), ("members", "conversation_id"), ("messages", "conversation_id")),
    "messages": (("messages", "id"),),
}


class SchemaMapping(_Strict):
    """The whole mapping file (see README, 'Schema mapping')."""

    schema_: str | None = Field(default=None, alias="schema")
    users: UsersMapping
    conversations: ConversationsMapping
    members: MembersMapping
    messages: MessagesMapping

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _known_categories(self) -> SchemaMapping:
        checks = (
            ("conversations.type", self.conversations.type, (*CONVERSATION_TYPES, OTHER)),
            ("messages.type", self.messages.type, (*MESSAGE_TYPES, OTHER)),
        )
        for where, enum, allowed in checks:
            named = list(enum.values.values()) + [v for v in (enum.default, enum.constant) if v]
            unknown = sorted(set(named) - set(allowed))
            if unknown:
                raise ValueError(f"{where}: unknown categories {unknown} (allowed: {', '.join(allowed)})")
        return self

    def entities(self) -> dict[str, _Table]:
        return {
            "users": self.users,
            "conversations": self.conversations,
            "members": self.members,
            "messages": self.messages,
        }

    def id_spec(self, owner: str) -> _Identified:
        """The mapping of the entity whose ids these are (users, conversations, messages)."""
        spec = self.entities()[owner]
        assert isinstance(spec, _Identified)
        return spec

    def required_columns(self) -> dict[str, list[str]]:
        """Entity -> the physical columns the mapping names for it."""
        out: dict[str, list[str]] = {}
        for entity, spec in self.entities().items():
            cols: list[str] = []
            for name, value in spec:
                if name in _NOT_COLUMNS or value is None:
                    continue
                if isinstance(value, str):
                    cols.append(value)
                elif isinstance(value, TimeColumn):
                    cols.append(value.column)
                elif isinstance(value, EnumColumn):
                    if value.column:
                        cols.append(value.column)
                elif isinstance(value, list):
                    cols.extend(value)
            out[entity] = list(dict.fromkeys(cols))
        return out


CANONICAL_MAPPING = SchemaMapping.model_validate(
    {
        "users": {
            "table": "users",
            "id": "id",
            "username": "username",
            "email": "email",
            "display_name": "display_name",
            "created_at": "created_at",
            "profile_fields": ["display_name", "avatar_url", "bio"],
        },
        "conversations": {
            "table": "conversations",
            "id": "id",
            "type": {"column": "type", "values": {t: t for t in CONVERSATION_TYPES}, "other": OTHER},
            "name": "name",
            "created_at": "created_at",
        },
        "members": {
            "table": "conversation_members",
            "conversation_id": "conversation_id",
            "user_id": "user_id",
            "joined_at": "joined_at",
        },
        "messages": {
            "table": "messages",
            "id": "id",
            "conversation_id": "conversation_id",
            "sender_id": "sender_id",
            "content": "content",
            "type": {"column": "type", "values": {t: t for t in MESSAGE_TYPES}, "default": "TEXT", "other": OTHER},
            "created_at": "created_at",
        },
    }
)


def load_mapping(path: str | Path | None) -> SchemaMapping:
    """Read a YAML mapping file; `None` means the canonical schema."""
    if path is None or str(path) == "":
        return CANONICAL_MAPPING
    from shape_pipeline.files import load_yaml_model

    return load_yaml_model(
        Path(path), SchemaMapping, what="schema mapping", expected="a mapping file must be a YAML mapping of entities"
    )


def canonical_metadata(schema: str | None = None) -> sa.MetaData:
    """The canonical chat schema with primary and foreign keys and the secondary indexes the
    app's queries use (a conversation's latest messages, a user's conversations, a sender's
    messages), as the app's own database has them (demo and unmapped generation)."""
    md = sa.MetaData(schema=schema)
    sa.Table(
        "users",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("email", sa.String(255), nullable=False, unique=True),
        sa.Column("display_name", sa.String(128)),
        sa.Column("avatar_url", sa.Text),
        sa.Column("bio", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "conversations",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    prefix = f"{schema}." if schema else ""
    sa.Table(
        "conversation_members",
        md,
        sa.Column("conversation_id", sa.BigInteger, sa.ForeignKey(f"{prefix}conversations.id"), primary_key=True),
        sa.Column("user_id", sa.BigInteger, sa.ForeignKey(f"{prefix}users.id"), primary_key=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_conversation_members_user", "user_id"),
    )
    sa.Table(
        "messages",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("conversation_id", sa.BigInteger, sa.ForeignKey(f"{prefix}conversations.id"), nullable=False),
        sa.Column("sender_id", sa.BigInteger, sa.ForeignKey(f"{prefix}users.id"), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        sa.Index("ix_messages_sender", "sender_id"),
    )
    return md


def reflect_tables(conn: sa.Connection | sa.Engine, mapping: SchemaMapping) -> dict[str, sa.Table]:
    """Reflect the mapped tables; refuse, before any query or write, listing every missing table
    and column, else every column whose type cannot hold its role (`check_column_types`).
    The sampler, the generator and the validator all reflect through here.

    Returns entity name -> reflected `Table` (quoting of mixed-case and reserved names is
    SQLAlchemy's: physical names are used exactly as the mapping spells them).
    """
    inspector = sa.inspect(conn)
    schema = mapping.schema_
    missing: list[str] = []
    tables: dict[str, sa.Table] = {}
    md = sa.MetaData(schema=schema)
    where = f"{schema}." if schema else ""
    for entity, columns in mapping.required_columns().items():
        table_name = mapping.entities()[entity].table
        if not inspector.has_table(table_name, schema=schema):
            missing.append(f"table {where}{table_name} ({entity})")
            continue
        with warnings.catch_warnings():
            # Types SQLAlchemy does not know (xml, PostGIS, composites) reflect as NullType and
            # are accepted by the type checks; the warning would only add a console line.
            warnings.filterwarnings("ignore", "Did not recognize type", sa.exc.SAWarning)
            table = sa.Table(table_name, md, autoload_with=conn)
        absent = [c for c in columns if c not in table.c]
        missing.extend(f"column {where}{table_name}.{c} ({entity})" for c in absent)
        tables[entity] = table
    if missing:
        raise MappingError("mapping does not match the database; missing: " + ", ".join(missing))
    problems = check_column_types(tables, mapping, conn.dialect)
    if problems:
        raise MappingError("mapping does not fit the column types: " + "; ".join(problems))
    return tables


# ------------------------------------------------------------------------------ column types

# Fields holding identifiers and free text; every TimeColumn and EnumColumn is typed by its class.
_ID_FIELDS = frozenset({"id", "conversation_id", "user_id", "sender_id"})
_TEXT_FIELDS = frozenset({"username", "email", "display_name", "name", "content"})
# Roles that must each have a column of their own within one table (a type column that is
# the content column, or a time that is the id, reads wrong numbers without any error).
_DISTINCT_ROLES = ("id", "time", "enum", "content")

_EXPECTED = {
    "id": "an integer, uuid or text column (or numeric without decimals)",
    "text": "a text column",
    "enum": "a text or integer column",
    "timestamp": "a timestamp column (unit timestamp); epoch numbers need unit epoch_s or epoch_ms",
    "epoch": "an integer or numeric column (unit {unit}); a timestamp column needs unit timestamp",
}


def _role(field: str, value: object) -> str | None:
    """The typed role of one mapping field: id, text, enum, time (None: untyped)."""
    if isinstance(value, TimeColumn):
        return "time"
    if isinstance(value, EnumColumn):
        return "enum" if value.column is not None else None
    if isinstance(value, str):
        return "id" if field in _ID_FIELDS else "text" if field in _TEXT_FIELDS else None
    return None


def _column_name(value: str | TimeColumn | EnumColumn) -> str:
    return value if isinstance(value, str) else str(value.column)


def base_type(kind: sa.types.TypeEngine) -> sa.types.TypeEngine:
    """A PostgreSQL domain is its underlying type."""
    while isinstance(kind, DOMAIN):
        kind = kind.data_type
    return kind


def id_format_problem(id_format: str, length: int | None, kind: sa.types.TypeEngine) -> str | None:
    """What a column of type `kind` lacks to hold ids of `id_format` (None: it holds them, or
    the type is unknown). `length` is a random id's length (None: the column's, at most 26)."""
    kind = base_type(kind)
    if isinstance(kind, sa.types.NullType):
        return None
    text = isinstance(kind, sa.String) and not isinstance(kind, sa.Uuid)
    room = getattr(kind, "length", None) if text else None
    if id_format == "sequential":
        whole = isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float) and kind.scale == 0
        return None if whole or isinstance(kind, sa.Integer) or text else "an integer or text column"
    if id_format in ("uuid4", "uuid7"):
        if isinstance(kind, sa.Uuid) or (text and (room is None or room >= UUID_TEXT_LENGTH)):
            return None
        return f"a uuid column or text of at least {UUID_TEXT_LENGTH} characters"
    needed = ULID_LENGTH if id_format == "ulid" else length or min(room or DEFAULT_ID_LENGTH, DEFAULT_ID_LENGTH)
    return None if text and (room is None or room >= needed) else f"a text column of at least {needed} characters"


def _id_format_problems(tables: dict[str, sa.Table], mapping: SchemaMapping, dialect: sa.Dialect) -> list[str]:
    """Every column holding an entity's ids (its own and the references to it) that cannot hold
    the mapping's `id_format`, one line each naming the field and the column."""
    problems: list[str] = []
    specs = mapping.entities()
    for owner, places in ID_COLUMNS.items():
        spec = mapping.id_spec(owner)
        if spec.id_format is None:
            continue
        for entity, field in places:
            column = tables[entity].c[getattr(specs[entity], field)]
            need = id_format_problem(spec.id_format, spec.id_length, column.type)
            if need:
                problems.append(
                    f"{owner}.id_format: {spec.id_format} ids need {need}; {entity}.{field} -> "
                    f"{column.table.name}.{column.name} is {_type_name(column.type, dialect)}"
                )
    return problems


def _expected(role: str, value: object, kind: sa.types.TypeEngine) -> str | None:
    """What the role needs when `kind` cannot hold it (None: it can, or the type is unknown)."""
    kind = base_type(kind)
    if isinstance(kind, sa.types.NullType):
        return None  # SQLite without a declared type, a PostgreSQL type SQLAlchemy does not know
    if role == "id":
        whole = isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float) and kind.scale == 0
        ok = whole or isinstance(kind, (sa.Integer, sa.Uuid, sa.String))
    elif role == "text":
        ok = isinstance(kind, sa.String)
    elif role == "enum":
        ok = isinstance(kind, (sa.String, sa.Integer, sa.Boolean))
    elif isinstance(value, TimeColumn) and value.unit == "timestamp":
        ok, role = isinstance(kind, sa.DateTime), "timestamp"
    else:
        ok, role = isinstance(kind, (sa.Integer, sa.Numeric)), "epoch"
    return None if ok else _EXPECTED[role].format(unit=getattr(value, "unit", ""))


def _type_name(kind: sa.types.TypeEngine, dialect: sa.Dialect) -> str:
    try:
        return str(kind.compile(dialect=dialect))
    except Exception:  # noqa: BLE001 - a type the dialect cannot spell: its class name will do
        return type(kind).__name__.upper()


def check_column_types(tables: dict[str, sa.Table], mapping: SchemaMapping, dialect: sa.Dialect) -> list[str]:
    """Every role whose reflected column type cannot hold it, and every physical column that
    two distinct roles of one table share; then (once those hold) every id column that cannot
    hold its entity's `id_format`. One line each, naming the role and the column.

    Types the database reports but SQLAlchemy does not know are accepted: refusing them would
    block real schemas on a guess.
    """
    problems: list[str] = []
    schema = f"{mapping.schema_}." if mapping.schema_ else ""
    for entity, spec in mapping.entities().items():
        table = tables[entity]
        owners: dict[str, str] = {}
        for field, value in spec:
            role = _role(field, value)
            if role is None:
                continue
            column = table.c[_column_name(value)]
            where = f"{entity}.{field} -> {schema}{table.name}.{column.name}"
            expected = _expected(role, value, column.type)
            if expected:
                problems.append(f"{where} is {_type_name(column.type, dialect)}, expected {expected}")
            kind = "content" if field == "content" else role
            if kind in _DISTINCT_ROLES:
                if column.name in owners:
                    problems.append(f"{where} is also mapped as {entity}.{owners[column.name]}")
                owners.setdefault(column.name, field)
    return problems or _id_format_problems(tables, mapping, dialect)
