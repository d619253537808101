"""Schema mapping: the logical chat entities -> the app's physical tables, columns and enum values.

Production schemas differ from app to app. The sampler reads, and the generator writes, the
app's own tables through one YAML mapping; without a mapping the canonical schema is assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shape_pipeline.errors import MappingError, ShapePipelineError

CONVERSATION_TYPES: tuple[str, ...] = ("DIRECT_MESSAGE", "GROUP_CHAT", "CHANNEL")
MESSAGE_TYPES: tuple[str, ...] = ("TEXT", "IMAGE", "FILE", "AUDIO", "VIDEO")
OTHER = "OTHER"

TimeUnit = Literal["timestamp", "epoch_s", "epoch_ms"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeColumn(_Strict):
    """A time column: a real timestamp, or a number of seconds/milliseconds since the epoch."""

    column: str
    unit: TimeUnit = "timestamp"


class EnumColumn(_Strict):
    """A type column whose raw values map to logical categories, or a constant category."""

    column: str | None = None
    values: dict[str, str] = Field(default_factory=dict)  # raw value -> logical category
    default: str | None = None  # logical category for NULL raw values
    constant: str | None = None  # the app has no type column: every row is this category

    @model_validator(mode="after")
    def _column_or_constant(self) -> EnumColumn:
        if (self.column is None) == (self.constant is None):
            raise ValueError("give either 'column' (with 'values') or 'constant'")
        return self

    def raw_for(self, logical: str) -> str | None:
        """The raw value the app stores for a logical category (None if unmapped)."""
        for raw, name in self.values.items():
            if name == logical:
                return raw
        return None


def _time_column(value: Any) -> Any:
    return {"column": value} if isinstance(value, str) else value


class _Table(_Strict):
    table: str
    fill: dict[str, Any] = Field(default_factory=dict)  # constants for uncovered NOT NULL columns


class UsersMapping(_Table):
    id: str
    username: str
    email: str | None = None
    display_name: str | None = None
    created_at: TimeColumn
    profile_fields: list[str] = Field(default_factory=list)

    _tc = field_validator("created_at", mode="before")(_time_column)


class ConversationsMapping(_Table):
    id: str
    type: EnumColumn
    name: str | None = None
    created_at: TimeColumn

    _tc = field_validator("created_at", mode="before")(_time_column)


class MembersMapping(_Table):
    conversation_id: str
    user_id: str
    joined_at: TimeColumn | None = None

    _tc = field_validator("joined_at", mode="before")(_time_column)


class MessagesMapping(_Table):
    id: str
    conversation_id: str
    sender_id: str
    content: str
    type: EnumColumn
    created_at: TimeColumn

    _tc = field_validator("created_at", mode="before")(_time_column)


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
            ("conversations.type", self.conversations.type, CONVERSATION_TYPES),
            ("messages.type", self.messages.type, MESSAGE_TYPES),
        )
        for where, enum, allowed in checks:
            named = list(enum.values.values()) + [v for v in (enum.default, enum.constant) if v]
            unknown = sorted(set(named) - set(allowed))
            if unknown:
                raise ValueError(
                    f"{where}: unknown categories {unknown} (allowed: {', '.join(allowed)})"
                )
        return self

    def entities(self) -> dict[str, _Table]:
        return {
            "users": self.users,
            "conversations": self.conversations,
            "members": self.members,
            "messages": self.messages,
        }

    def required_columns(self) -> dict[str, list[str]]:
        """Entity -> the physical columns the mapping names for it."""
        out: dict[str, list[str]] = {}
        for entity, spec in self.entities().items():
            cols: list[str] = []
            for name, value in spec:
                if name in ("table", "fill") or value is None:
                    continue
                if isinstance(value, str):
                    cols.append(value)
                elif isinstance(value, TimeColumn) or isinstance(value, EnumColumn) and value.column:
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
            "type": {"column": "type", "values": {t: t for t in CONVERSATION_TYPES}},
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
            "type": {"column": "type", "values": {t: t for t in MESSAGE_TYPES}, "default": "TEXT"},
            "created_at": "created_at",
        },
    }
)


def load_mapping(path: str | Path | None) -> SchemaMapping:
    """Read a YAML mapping file; `None` means the canonical schema."""
    if path is None or str(path) == "":
        return CANONICAL_MAPPING
    file = Path(path)
    if not file.is_file():
        raise ShapePipelineError(f"No such file or directory: {file} (schema mapping)")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ShapePipelineError(f"{file}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ShapePipelineError(f"{file}: a mapping file must be a YAML mapping of entities")
    try:
        return SchemaMapping.model_validate(data)
    except ValidationError as exc:
        from shape_pipeline.files import describe_validation_error

        raise ShapePipelineError(f"{file}: {describe_validation_error(exc)}") from None


def canonical_metadata(schema: str | None = None) -> sa.MetaData:
    """The canonical chat schema with primary and foreign keys (demo and unmapped generation)."""
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
    )
    return md


def reflect_tables(conn: sa.Connection | sa.Engine, mapping: SchemaMapping) -> dict[str, sa.Table]:
    """Reflect the mapped tables; refuse, listing every missing table and column, before any query.

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
        table = sa.Table(table_name, md, autoload_with=conn)
        absent = [c for c in columns if c not in table.c]
        missing.extend(f"column {where}{table_name}.{c} ({entity})" for c in absent)
        tables[entity] = table
    if missing:
        raise MappingError("mapping does not match the database; missing: " + ", ".join(missing))
    return tables
