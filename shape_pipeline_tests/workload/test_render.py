"""Rendering a query's logical SQL through the schema mapping into the statement PostgreSQL prepares."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy.dialects import postgresql

from chat_simulator.schemas import schema
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.mapping import CANONICAL_MAPPING, SchemaMapping
from shape_pipeline.workload.render import render_query
from shape_pipeline.workload.spec import load_workload

PREPARER = postgresql.dialect().identifier_preparer


def mapping_of(name: str) -> SchemaMapping:
    return SchemaMapping.model_validate(yaml.safe_load(schema(name).mapping_yaml or ""))


def test_mattermost_names_are_quoted_and_parameters_numbered() -> None:
    query = load_workload(None).queries["sender_messages"]
    rendered = render_query("sender_messages", query.sql, mapping_of("mattermost"), PREPARER)
    assert rendered.params == ["sender", "since", "until"]
    assert 'FROM "Posts"' in rendered.sql
    assert 'WHERE "Posts"."UserId" = $1' in rendered.sql
    assert '"Posts"."CreateAt" >= $2' in rendered.sql and '"Posts"."CreateAt" < $3' in rendered.sql
    assert "{" not in rendered.sql and ":" not in rendered.sql


def test_alias_form_gives_the_bare_column_and_schema_qualifies_tables() -> None:
    mapping = CANONICAL_MAPPING.model_copy(update={"schema_": "Chat"})
    sql = "SELECT m.{messages.created_at}, {messages}.{messages.id} FROM {messages} m JOIN {users} ON {users.id} = m.{messages.sender_id}"
    rendered = render_query("q", sql, mapping, PREPARER)
    assert rendered.sql == (
        'SELECT m.created_at, "Chat".messages.id FROM "Chat".messages m '
        'JOIN "Chat".users ON "Chat".users.id = m.sender_id'
    )


def test_literals_comments_and_casts_are_copied_as_written() -> None:
    sql = (
        "SELECT '{messages.id} :nope', \"{odd}\", $$ :x {y} $$, {messages.id}::text -- :c {z}\n"
        "/* :d {w} */ FROM {messages} WHERE {messages.content} LIKE '100%' AND {messages.id} = :id AND {messages.sender_id} = :id"
    )
    rendered = render_query("q", sql, CANONICAL_MAPPING, PREPARER)
    assert rendered.params == ["id"]
    assert rendered.sql == (
        "SELECT '{messages.id} :nope', \"{odd}\", $$ :x {y} $$, messages.id::text -- :c {z}\n"
        "/* :d {w} */ FROM messages WHERE messages.content LIKE '100%' AND messages.id = $1 AND messages.sender_id = $1"
    )


def test_physical_sql_is_used_as_written() -> None:
    sql = 'SELECT "Id" FROM "Posts" WHERE "ChannelId" = :channel ORDER BY "CreateAt" DESC LIMIT 50'
    rendered = render_query("q", sql, mapping_of("mattermost"), PREPARER)
    assert rendered.sql == sql.replace(":channel", "$1")


@pytest.mark.parametrize("name", ["canonical", "mattermost", "slack"])
def test_every_default_query_renders_on_every_simulated_schema(name: str) -> None:
    mapping = CANONICAL_MAPPING if name == "canonical" else mapping_of(name)
    tables = {spec.table for spec in mapping.entities().values()}
    for query_name, query in load_workload(None).queries.items():
        rendered = render_query(query_name, query.sql, mapping, PREPARER)
        assert "{" not in rendered.sql
        assert any(PREPARER.quote(t) in rendered.sql for t in tables)


def test_a_field_the_mapping_leaves_out_is_an_error_naming_the_query() -> None:
    sql = "SELECT {members.joined_at} FROM {members}"
    with pytest.raises(ShapePipelineError) as caught:
        render_query("joins", sql, mapping_of("mattermost"), PREPARER)  # ChannelMembers has no join time
    assert str(caught.value) == "workload query 'joins': {members.joined_at} is not mapped to a column"
    with pytest.raises(ShapePipelineError, match=r"^workload query 'typo': \{message\} names no entity"):
        render_query("typo", "SELECT 1 FROM {message}", CANONICAL_MAPPING, PREPARER)
