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
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS mapping_test"))
        conn.execute(sa.text('CREATE TABLE mapping_test."User" (id text, handle text, "createdAt" timestamptz)'))
    mapping = load_mapping(write(tmp_path, ISSUE_EXAMPLE.replace("schema: public", "schema: mapping_test")))
    with pytest.raises(MappingError) as info:
        reflect_tables(engine, mapping)
    message = str(info.value)
    assert "column mapping_test.User.avatarUrl (users)" in message
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


# ------------------------------------------------------------------------------ OTHER, raw values

MM_TYPE = (
    "type: {column: kind, values: {text: TEXT, image: IMAGE, file: FILE, audio: AUDIO, video: VIDEO}, default: TEXT}"
)


def with_message_type(tmp_path: Path, spec: str) -> Path:
    return write(tmp_path, ISSUE_EXAMPLE.replace(MM_TYPE, f"type: {spec}"))


def test_other_is_a_category_like_the_others(tmp_path: Path) -> None:
    spec = '{column: kind, values: {"": TEXT, image: IMAGE, system_join: OTHER}, default: OTHER, other: system_generic}'
    enum = load_mapping(with_message_type(tmp_path, spec)).messages.type
    assert enum.raw_for("OTHER") == "system_generic"  # `other:` wins
    assert enum.raw_for("TEXT") == "" and enum.raw_for("IMAGE") == "image" and enum.raw_for("VIDEO") is None
    assert enum.default == "OTHER"
    assert enum.categories_by_raw() == {"": "TEXT", "image": "IMAGE", "system_join": "OTHER", "system_generic": "OTHER"}


def test_without_other_key_the_first_raw_value_counted_as_other_is_written(tmp_path: Path) -> None:
    spec = "{column: kind, values: {text: TEXT, sys_a: OTHER, sys_b: OTHER}}"
    assert load_mapping(with_message_type(tmp_path, spec)).messages.type.raw_for("OTHER") == "sys_a"
    plain = load_mapping(write(tmp_path, ISSUE_EXAMPLE)).messages.type
    assert plain.raw_for("OTHER") is None and plain.other is None


def test_yaml_numbers_and_booleans_as_raw_values_are_read_as_the_database_spells_them(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE.replace(
        "{dm: DIRECT_MESSAGE, group: GROUP_CHAT, channel: CHANNEL}",
        "{1: DIRECT_MESSAGE, 2: GROUP_CHAT, 3: CHANNEL}, other: 9",
    ).replace(MM_TYPE, "type: {column: kind, values: {false: TEXT, true: IMAGE}}")
    mapping = load_mapping(write(tmp_path, text))
    assert mapping.conversations.type.values == {"1": "DIRECT_MESSAGE", "2": "GROUP_CHAT", "3": "CHANNEL"}
    assert mapping.conversations.type.raw_for("OTHER") == "9"
    assert mapping.messages.type.values == {"false": "TEXT", "true": "IMAGE"}  # PostgreSQL's boolean::text


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("{constant: OTHER}", "constant: OTHER names no category"),
        ("{constant: TEXT, other: x}", "'other' needs a 'column'"),
        ("{column: kind, values: {x: TEXT}, other: x}", "'other: x' is already mapped to TEXT"),
        ("{column: kind, values: {x: OTHERS}}", "unknown categories ['OTHERS']"),
    ],
)
def test_other_is_refused_where_it_makes_no_sense(tmp_path: Path, spec: str, fragment: str) -> None:
    path = with_message_type(tmp_path, spec)
    with pytest.raises(ShapePipelineError) as info:
        load_mapping(path)
    message = str(info.value)
    assert fragment in message and "messages.type" in message and str(path) in message
    assert "\n" not in message


def test_a_mapping_file_that_is_not_utf8_is_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(ISSUE_EXAMPLE.replace("handle", "h\xe4ndle").encode("latin-1"))
    with pytest.raises(ShapePipelineError, match=r"latin1\.yaml: not a UTF-8 text file$"):
        load_mapping(path)


def test_sample_with_a_mapping_that_is_not_utf8_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shape_pipeline import cli

    monkeypatch.setenv("ANONYMIZATION_SALT", "mapping-test-salt-0123456789-abcdefghijkl")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"users:\n  table: \xff\xfe\n")
    database = tmp_path / "prod.db"
    sqlite_engine = sa.create_engine(f"sqlite:///{database}")
    canonical_metadata().create_all(sqlite_engine)
    sqlite_engine.dispose()
    out = tmp_path / "shape.json"
    code = cli.main(
        [
            "sample",
            "--database-url",
            f"sqlite:///{database}",
            "--mapping",
            str(bad),
            "--output",
            str(out),
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"error: {bad}: not a UTF-8 text file"]
    assert not out.exists()
