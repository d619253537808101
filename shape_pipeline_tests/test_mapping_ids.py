"""The mapping's `id_format` / `id_length`: parsed, checked against every column holding the ids
(one line naming the field and the column), and never mistaken for a column name."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.mapping import (
    CANONICAL_MAPPING,
    SchemaMapping,
    canonical_metadata,
    check_column_types,
    load_mapping,
)

DIALECT = postgresql.dialect()


def canonical_with(**fields: object) -> SchemaMapping:
    """The canonical mapping with some fields set: `users__id_format="uuid7"`."""
    data = CANONICAL_MAPPING.model_dump(by_alias=True, exclude_none=True)
    for key, value in fields.items():
        entity, field = key.split("__")
        data[entity][field] = value
    return SchemaMapping.model_validate(data)


def problems(mapping: SchemaMapping, **types: sa.types.TypeEngine) -> list[str]:
    """check_column_types on the canonical tables, some columns retyped: `users__id=sa.Uuid()`
    (physical table names)."""
    md = canonical_metadata()
    for key, kind in types.items():
        table, column = key.split("__")
        md.tables[table].c[column].type = kind
    tables = {name: md.tables[spec.table] for name, spec in CANONICAL_MAPPING.entities().items()}
    return check_column_types(tables, mapping, DIALECT)


def test_id_format_fields_are_settings_not_columns() -> None:
    mapping = canonical_with(users__id_format="random", users__id_length=20, messages__id_format="uuid7")
    assert mapping.users.id_format == "random" and mapping.users.id_length == 20
    assert "random" not in mapping.required_columns()["users"] and "20" not in mapping.required_columns()["users"]
    assert mapping.required_columns()["users"][0] == "id"
    assert CANONICAL_MAPPING.users.id_format is None


def test_formats_that_fit_every_id_column_pass() -> None:
    text = sa.String(36)
    assert (
        problems(
            canonical_with(users__id_format="uuid4"),
            users__id=sa.Uuid(),
            conversation_members__user_id=sa.Uuid(),
            messages__sender_id=text,
        )
        == []
    )
    assert (
        problems(
            canonical_with(conversations__id_format="random", conversations__id_length=12),
            conversations__id=sa.String(12),
            conversation_members__conversation_id=sa.Text(),
            messages__conversation_id=sa.String(26),
        )
        == []
    )
    assert problems(canonical_with(messages__id_format="ulid"), messages__id=sa.String(26)) == []
    assert problems(canonical_with(messages__id_format="sequential")) == []


@pytest.mark.parametrize(
    ("fields", "types", "expected"),
    [
        (
            {"users__id_format": "uuid7"},
            {},
            "users.id_format: uuid7 ids need a uuid column or text of at least 36 characters; users.id -> users.id is BIGINT",
        ),
        (
            {"conversations__id_format": "random"},
            {"conversations__id": sa.String(26), "messages__conversation_id": sa.String(26)},
            "conversations.id_format: random ids need a text column of at least 26 characters; members.conversation_id -> "
            "conversation_members.conversation_id is BIGINT",
        ),
        (
            {"messages__id_format": "random", "messages__id_length": 30},
            {"messages__id": sa.String(26)},
            "messages.id_format: random ids need a text column of at least 30 characters; messages.id -> messages.id is VARCHAR(26)",
        ),
        (
            {"messages__id_format": "sequential"},
            {"messages__id": sa.Uuid()},
            "messages.id_format: sequential ids need an integer or text column; messages.id -> messages.id is UUID",
        ),
    ],
)
def test_a_format_a_column_cannot_hold_is_one_line_naming_the_field(fields, types, expected) -> None:
    found = problems(canonical_with(**fields), **types)
    assert found[0] == expected
    assert all("\n" not in p for p in found)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "  id_format: snowflake\n",
            "users.id_format: Input should be 'sequential', 'random', 'ulid', 'uuid4' or 'uuid7'",
        ),
        ("  id_length: 20\n", "users: Value error, id_length: only with id_format: random"),
        ("  id_format: random\n  id_length: 0\n", "users.id_length: Input should be greater than or equal to 1"),
    ],
)
def test_bad_id_settings_in_a_mapping_file_are_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    base = CANONICAL_MAPPING.model_dump(by_alias=True, exclude_none=True)
    lines = ["users:"] + [
        f"  {k}: {v!r}" if not isinstance(v, dict | list) else f"  {k}: {v}"
        for k, v in base["users"].items()
        if k != "fill"
    ]
    body = "\n".join(lines) + "\n" + text
    for entity in ("conversations", "members", "messages"):
        body += f"{entity}: {base[entity]}\n"
    path = tmp_path / "mapping.yaml"
    path.write_text(body.replace("'", '"'))
    with pytest.raises(ShapePipelineError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)) and fragment in message
