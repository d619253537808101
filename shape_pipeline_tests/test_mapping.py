"""Schema mapping: parsing, validation and reflection against PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from shape_pipeline.db import create_engine
from shape_pipeline.errors import MappingError, ShapePipelineError
from shape_pipeline.mapping import (
    CANONICAL_MAPPING,
    canonical_metadata,
    load_mapping,
    reflect_tables,
)

ISSUE_EXAMPLE = """
schema: public
users:
  table: User
  id: id
  username: handle
  email: email
  created_at: createdAt
  profile_fields: [avatarUrl, bio]
conversations:
  table: Conversation
  id: id
  type: {column: kind, values: {dm: DIRECT_MESSAGE, group: GROUP_CHAT, channel: CHANNEL}}
  created_at: createdAt
members:
  table: ConversationParticipant
  conversation_id: conversationId
  user_id: userId
messages:
  table: Message
  id: id
  conversation_id: conversationId
  sender_id: authorId
  content: body
  type: {column: kind, values: {text: TEXT, image: IMAGE, file: FILE, audio: AUDIO, video: VIDEO}, default: TEXT}
  created_at: {column: sentAt, unit: epoch_ms}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    return path


def test_issue_example_parses(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, ISSUE_EXAMPLE))
    assert mapping.schema_ == "public"
    assert mapping.users.created_at.unit == "timestamp"
    assert mapping.messages.created_at.column == "sentAt"
    assert mapping.messages.created_at.unit == "epoch_ms"
    assert mapping.conversations.type.values["dm"] == "DIRECT_MESSAGE"
    assert mapping.messages.type.raw_for("IMAGE") == "image"
    assert mapping.required_columns()["users"] == ["id", "handle", "email", "createdAt", "avatarUrl", "bio"]


def test_constant_type(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE.replace(
        "type: {column: kind, values: {text: TEXT, image: IMAGE, file: FILE, audio: AUDIO, video: VIDEO}, default: TEXT}",
        "type: {constant: TEXT}",
    )
    mapping = load_mapping(write(tmp_path, text))
    assert mapping.messages.type.constant == "TEXT"
    assert "kind" not in mapping.required_columns()["messages"]


def test_no_mapping_means_canonical() -> None:
    assert load_mapping(None) is CANONICAL_MAPPING


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (ISSUE_EXAMPLE.replace("GROUP_CHAT", "GROUPCHAT"), "conversations.type"),
        (ISSUE_EXAMPLE.replace("  username: handle\n", ""), "users.username"),
        (ISSUE_EXAMPLE + "extra_entity: {}\n", "extra_entity"),
        ("users: [1, 2", "not valid YAML"),
    ],
)
def test_bad_mapping_files_name_the_field(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ShapePipelineError) as info:
        load_mapping(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ShapePipelineError, match="No such file or directory"):
        load_mapping(tmp_path / "nope.yaml")


def test_reflection_refuses_missing_tables_and_columns(pg_url: str, tmp_path: Path) -> None:
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE SCHEMA IF NOT EXISTS mapping_test'))
        conn.execute(sa.text('CREATE TABLE mapping_test."User" (id text, handle text, "createdAt" timestamptz)'))
    mapping = load_mapping(write(tmp_path, ISSUE_EXAMPLE.replace("schema: public", "schema: mapping_test")))
    with pytest.raises(MappingError) as info:
        reflect_tables(engine, mapping)
    message = str(info.value)
    assert 'column mapping_test.User.avatarUrl (users)' in message
    assert "table mapping_test.Conversation (conversations)" in message
    assert "table mapping_test.Message (messages)" in message
    engine.dispose()


def test_canonical_schema_reflects_cleanly(pg_url: str) -> None:
    engine = create_engine(pg_url)
    md = canonical_metadata(schema="canonical_test")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS canonical_test"))
        md.create_all(conn)
    mapping = CANONICAL_MAPPING.model_copy(update={"schema_": "canonical_test"})
    tables = reflect_tables(engine, mapping)
    assert set(tables) == {"users", "conversations", "members", "messages"}
    assert tables["messages"].c.sender_id.foreign_keys
    engine.dispose()
