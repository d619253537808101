"""Mapping type checks: every role's reflected column type is checked before any query or write,
on PostgreSQL and SQLite; real schemas (Mattermost-like, uuid/timestamptz/jsonb) pass."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from shape_pipeline import cli
from shape_pipeline.db import create_engine
from shape_pipeline.errors import MappingError
from shape_pipeline.mapping import (
    CANONICAL_MAPPING,
    SchemaMapping,
    canonical_metadata,
    check_column_types,
    load_mapping,
    reflect_tables,
)
from shape_pipeline.sampling.extract import extract_frequencies
from shape_pipeline_tests.sampling.dataset import WINDOW_END, WINDOW_START

# ------------------------------------------------------------------------------ the checker alone

DIALECTS = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}


def mapping_with(**fields: object) -> SchemaMapping:
    """The canonical mapping with some fields replaced: `messages__created_at={...}`."""
    data = CANONICAL_MAPPING.model_dump(by_alias=True)
    for key, value in fields.items():
        entity, field = key.split("__")
        data[entity][field] = value
    return SchemaMapping.model_validate(data)


def problems_for(
    entity: str,
    column: str,
    kind: sa.types.TypeEngine,
    mapping: SchemaMapping = CANONICAL_MAPPING,
    dialect: str = "postgresql",
) -> list[str]:
    """check_column_types on the canonical tables with one column's type replaced."""
    md = canonical_metadata()
    table = md.tables[CANONICAL_MAPPING.entities()[entity].table]
    table.c[column].type = kind
    tables = {name: md.tables[spec.table] for name, spec in CANONICAL_MAPPING.entities().items()}
    return check_column_types(tables, mapping, DIALECTS[dialect])


def test_the_canonical_schema_passes_on_both_dialects() -> None:
    md = canonical_metadata()
    tables = {name: md.tables[spec.table] for name, spec in CANONICAL_MAPPING.entities().items()}
    for dialect in DIALECTS.values():
        assert check_column_types(tables, CANONICAL_MAPPING, dialect) == []


ACCEPTED = [
    ("messages", "created_at", sa.types.NullType()),  # SQLite without a declared type
    ("messages", "created_at", postgresql.TIMESTAMP(timezone=True)),
    ("messages", "created_at", sqlite.DATETIME()),
    ("messages", "type", sa.Integer()),
    ("messages", "type", sa.SmallInteger()),
    ("messages", "type", sa.Boolean()),
    ("messages", "type", postgresql.ENUM("a", "b", name="kind")),
    ("messages", "content", postgresql.CITEXT()),
    ("messages", "content", postgresql.DOMAIN("body", sa.Text())),
    ("messages", "content", sa.CHAR(10)),
    ("users", "id", sa.Uuid()),
    ("users", "id", sa.String(26)),
    ("users", "id", sa.Numeric(20, 0)),
    ("users", "username", sa.Unicode(64)),
    ("conversations", "name", sa.Text()),
    ("users", "bio", postgresql.JSONB()),  # a profile field: any type
    ("conversation_members", "user_id", postgresql.UUID()),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("table", "column", "kind"), ACCEPTED, ids=lambda v: getattr(v, "__visit_name__", str(v)))
def test_types_that_can_hold_their_role_are_accepted(
    table: str, column: str, kind: sa.types.TypeEngine, dialect: str
) -> None:
    entity = {"conversation_members": "members"}.get(table, table)
    assert problems_for(entity, column, kind, dialect=dialect) == []


REFUSED = [
    (
        "messages",
        "created_at",
        sa.Text(),
        "messages.created_at -> messages.created_at is TEXT, expected a timestamp column (unit timestamp)",
    ),
    (
        "messages",
        "created_at",
        sa.BigInteger(),
        "is BIGINT, expected a timestamp column (unit timestamp); epoch numbers need unit epoch_s or epoch_ms",
    ),
    ("messages", "created_at", sa.Date(), "is DATE, expected a timestamp column"),
    ("messages", "content", sa.Integer(), "messages.content -> messages.content is INTEGER, expected a text column"),
    ("messages", "content", postgresql.JSONB(), "is JSONB, expected a text column"),
    (
        "messages",
        "type",
        sa.DateTime(),
        "messages.type -> messages.type is TIMESTAMP WITHOUT TIME ZONE, expected a text or integer column",
    ),
    (
        "messages",
        "sender_id",
        sa.Float(),
        "messages.sender_id -> messages.sender_id is FLOAT, expected an integer, uuid or text column",
    ),
    ("users", "id", sa.DateTime(timezone=True), "users.id -> users.id is TIMESTAMP"),
    ("users", "username", sa.Integer(), "users.username -> users.username is INTEGER, expected a text column"),
    ("users", "email", sa.LargeBinary(), "users.email -> users.email is BYTEA, expected a text column"),
    ("members", "joined_at", sa.Text(), "members.joined_at -> conversation_members.joined_at is TEXT"),
]


@pytest.mark.parametrize(("entity", "column", "kind", "fragment"), REFUSED)
def test_types_that_cannot_hold_their_role_are_refused_naming_the_column(
    entity: str, column: str, kind: sa.types.TypeEngine, fragment: str
) -> None:
    problems = problems_for(entity, column, kind)
    assert len(problems) == 1 and fragment in problems[0], problems


def test_epoch_units_need_numbers_and_timestamps_need_unit_timestamp() -> None:
    epoch = mapping_with(messages__created_at={"column": "created_at", "unit": "epoch_ms"})
    assert problems_for("messages", "created_at", sa.BigInteger(), epoch) == []
    assert problems_for("messages", "created_at", sa.Numeric(), epoch) == []
    assert problems_for("messages", "created_at", sa.Float(), epoch) == []  # epoch seconds as double
    (problem,) = problems_for("messages", "created_at", postgresql.TIMESTAMP(timezone=True), epoch)
    assert problem == (
        "messages.created_at -> messages.created_at is TIMESTAMP WITH TIME ZONE, expected an integer or "
        "numeric column (unit epoch_ms); a timestamp column needs unit timestamp"
    )


def test_one_column_for_two_roles_of_a_table_is_refused() -> None:
    # the SQLite case: the type column pointed at the (text) content column
    same = mapping_with(messages__type={"column": "content", "values": {"TEXT": "TEXT"}})
    assert problems_for("messages", "content", sa.Text(), same) == [
        "messages.type -> messages.content is also mapped as messages.content"
    ]
    members = mapping_with(members__user_id="conversation_id")
    assert problems_for("members", "user_id", sa.BigInteger(), members) == [
        "members.user_id -> conversation_members.conversation_id is also mapped as members.conversation_id"
    ]
    # an app whose username is its id (Matrix-style) or that shows the username as display name
    matrix = mapping_with(users__username="id", users__display_name="username")
    assert problems_for("users", "id", sa.Text(), matrix) == []


# ------------------------------------------------------------------------------ real databases

MATTERMOST_DDL = """
CREATE TABLE "Users" ("Id" varchar(26) PRIMARY KEY, "Username" varchar(64) NOT NULL,
    "Nickname" varchar(64) NOT NULL DEFAULT '', "Email" varchar(128) NOT NULL DEFAULT '',
    "Position" varchar(128) NOT NULL DEFAULT '', "CreateAt" bigint NOT NULL, "DeleteAt" bigint NOT NULL DEFAULT 0);
CREATE TABLE "Channels" ("Id" varchar(26) PRIMARY KEY, "Type" varchar(1) NOT NULL,
    "DisplayName" varchar(64) NOT NULL DEFAULT '', "CreateAt" bigint NOT NULL);
CREATE TABLE "ChannelMembers" ("ChannelId" varchar(26) NOT NULL, "UserId" varchar(26) NOT NULL,
    PRIMARY KEY ("ChannelId", "UserId"));
CREATE TABLE "Posts" ("Id" varchar(26) PRIMARY KEY, "ChannelId" varchar(26) NOT NULL,
    "UserId" varchar(26) NOT NULL, "Message" text NOT NULL DEFAULT '', "Type" varchar(26) NOT NULL DEFAULT '',
    "CreateAt" bigint NOT NULL, "Props" text NOT NULL DEFAULT '{}')
"""

MATTERMOST_MAPPING = """
users:
  table: Users
  id: Id
  username: Username
  email: Email
  display_name: Nickname
  created_at: {column: CreateAt, unit: epoch_ms}
  profile_fields: [Nickname, Position]
conversations:
  table: Channels
  id: Id
  type: {column: Type, values: {D: DIRECT_MESSAGE, P: GROUP_CHAT, O: CHANNEL}}
  name: DisplayName
  created_at: {column: CreateAt, unit: epoch_ms}
members:
  table: ChannelMembers
  conversation_id: ChannelId
  user_id: UserId
messages:
  table: Posts
  id: Id
  conversation_id: ChannelId
  sender_id: UserId
  content: Message
  type: {column: Type, values: {"": TEXT, system_join_channel: OTHER}, other: system_generic}
  created_at: {column: CreateAt, unit: epoch_ms}
"""

SLACK_DDL = """
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TYPE room_kind AS ENUM ('dm', 'group', 'public');
CREATE DOMAIN body_text AS text;
CREATE TABLE accounts (id uuid PRIMARY KEY, handle citext NOT NULL, email text, real_name text,
    created timestamptz NOT NULL, profile jsonb NOT NULL DEFAULT '{}', resume xml);
CREATE TABLE rooms (id uuid PRIMARY KEY, kind room_kind NOT NULL, topic text, created timestamptz NOT NULL,
    settings jsonb NOT NULL DEFAULT '{}');
CREATE TABLE room_members (room uuid NOT NULL, account uuid NOT NULL, joined timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room, account));
CREATE TABLE events (id uuid PRIMARY KEY, room uuid NOT NULL, author uuid NOT NULL, body body_text NOT NULL,
    subtype text NOT NULL DEFAULT 'message', ts timestamptz NOT NULL, blocks jsonb)
"""

SLACK_MAPPING = """
users:
  table: accounts
  id: id
  username: handle
  email: email
  display_name: real_name
  created_at: created
  profile_fields: [real_name, profile, resume]
conversations:
  table: rooms
  id: id
  type: {column: kind, values: {dm: DIRECT_MESSAGE, group: GROUP_CHAT, public: CHANNEL}}
  name: topic
  created_at: created
members:
  table: room_members
  conversation_id: room
  user_id: account
  joined_at: joined
messages:
  table: events
  id: id
  conversation_id: room
  sender_id: author
  content: body
  type: {column: subtype, values: {message: TEXT, file_share: FILE}, other: bot_message}
  created_at: ts
"""


def run_ddl(url: str, ddl: str) -> None:
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for statement in filter(str.strip, ddl.split(";")):
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def write_mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def database(kind: str, make_pg_database: Callable[[str], str], tmp_path: Path, ddl: str) -> str:
    url = make_pg_database("types") if kind == "postgresql" else f"sqlite:///{tmp_path / 'prod.db'}"
    run_ddl(url, ddl)
    return url


def reflect_and_sample(url: str, mapping: SchemaMapping) -> int:
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        assert set(reflect_tables(engine, mapping)) == {"users", "conversations", "members", "messages"}
        freq = extract_frequencies(engine, mapping, window_start=WINDOW_START, window_end=WINDOW_END)
    finally:
        engine.dispose()
    return freq.messages_total


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_a_mattermost_like_schema_is_accepted(kind: str, make_pg_database, tmp_path: Path) -> None:
    url = database(kind, make_pg_database, tmp_path, MATTERMOST_DDL)
    assert reflect_and_sample(url, load_mapping(write_mapping(tmp_path, MATTERMOST_MAPPING))) == 0


def test_a_uuid_timestamptz_jsonb_schema_with_enum_domain_and_unknown_types_is_accepted(
    make_pg_database, tmp_path: Path
) -> None:
    url = database("postgresql", make_pg_database, tmp_path, SLACK_DDL)
    assert reflect_and_sample(url, load_mapping(write_mapping(tmp_path, SLACK_MAPPING))) == 0


def test_every_type_problem_is_listed_in_one_refusal_on_postgresql(make_pg_database, tmp_path: Path) -> None:
    url = database("postgresql", make_pg_database, tmp_path, SLACK_DDL)
    bad = (
        SLACK_MAPPING.replace("  created_at: ts", "  created_at: subtype")
        .replace("  created_at: created\n  profile", "  created_at: {column: created, unit: epoch_ms}\n  profile")
        .replace("  user_id: account", "  user_id: joined")
        .replace("{column: subtype,", "{column: body,")
    )
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        with pytest.raises(MappingError) as info:
            extract_frequencies(
                engine, load_mapping(write_mapping(tmp_path, bad)), window_start=WINDOW_START, window_end=WINDOW_END
            )
    finally:
        engine.dispose()
    message = str(info.value)
    assert message.startswith("mapping does not fit the column types: ") and "\n" not in message
    for fragment in (
        "users.created_at -> accounts.created is TIMESTAMP WITH TIME ZONE, expected an integer or numeric column (unit epoch_ms)",
        "members.user_id -> room_members.joined is TIMESTAMP WITH TIME ZONE, expected an integer, uuid or text column",
        "messages.type -> events.body is also mapped as messages.content",
        "messages.created_at -> events.subtype is TEXT, expected a timestamp column (unit timestamp)",
    ):
        assert fragment in message, message
    assert not [s for s in statements if "events" in s and "SELECT" in s.upper() and "pg_" not in s]  # no aggregate ran


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_sample_refuses_created_at_on_the_text_column_with_one_line_and_no_file(
    kind: str, make_pg_database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANONYMIZATION_SALT", "mapping-types-salt-0123456789-abcdefghij")
    url = database(kind, make_pg_database, tmp_path, MATTERMOST_DDL)
    head, _, _ = MATTERMOST_MAPPING.rpartition("  type: {column: Type")
    # the SQLite case: the message type and time both pointed at the text content column
    bad = head + '  type: {column: Message, values: {"": TEXT}}\n  created_at: Message\n'
    mapping = write_mapping(tmp_path, bad)
    out = tmp_path / "shape.json"
    code = cli.main(
        [
            "sample",
            "--database-url",
            url,
            "--mapping",
            str(mapping),
            "--as-of",
            "2025-01-31",
            "--output",
            str(out),
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
        ]
    )
    printed = capsys.readouterr()
    lines = printed.err.strip().splitlines()
    assert code == 2, printed
    assert len(lines) == 1 and lines[0].startswith("error: mapping does not fit the column types: "), lines
    assert "messages.created_at -> Posts.Message is TEXT, expected a timestamp column" in lines[0]
    assert "messages.type -> Posts.Message is also mapped as messages.content" in lines[0]
    assert "Traceback" not in printed.err + printed.out
    assert not out.exists()
