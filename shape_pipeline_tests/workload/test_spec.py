"""The workload file: the default workload, the format's rules and one-line errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.workload.spec import ALL, RankedParameter, TimeParameter, load_workload

LATEST = """\
name: mine
queries:
  latest:
    description: The latest messages
    sql: SELECT {messages.id} FROM {messages} WHERE {messages.conversation_id} = :conversation LIMIT 5
    params:
      conversation: {entity: conversation, by: messages, at: [p99, p10]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workload.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_workload_has_the_six_app_queries_and_sixteen_pairs() -> None:
    workload = load_workload(None)
    assert list(workload.queries) == [
        "latest_messages",
        "user_conversations",
        "unread_count",
        "sender_messages",
        "busiest_conversations",
        "member_messages",
    ]
    pairs = workload.pairs()
    assert len(pairs) == 16 and ("busiest_conversations", ALL) in pairs
    assert pairs[:3] == [("latest_messages", "p99"), ("latest_messages", "p50"), ("latest_messages", "p10")]
    member = workload.queries["member_messages"].params["member"]
    assert isinstance(member, RankedParameter) and member.sql_names("member") == ["member_conversation", "member_user"]
    since = workload.queries["sender_messages"].params["since"]
    assert isinstance(since, TimeParameter) and since.minus_seconds == 7 * 86_400
    until = workload.queries["sender_messages"].params["until"]
    assert isinstance(until, TimeParameter) and until.minus_seconds == 0  # `until: window_end` shorthand


def test_fingerprint_ignores_spelling_and_descriptions_but_not_sql(tmp_path: Path) -> None:
    base = load_workload(write(tmp_path, LATEST))
    respelled = LATEST.replace("description: The latest messages", "description: other words").replace(
        "{entity: conversation, by: messages, at: [p99, p10]}",
        "\n        entity: conversation\n        by: messages\n        at: [p99, p10]",
    )
    assert load_workload(write(tmp_path, respelled)).fingerprint() == base.fingerprint()
    changed = LATEST.replace("LIMIT 5", "LIMIT 6")
    assert load_workload(write(tmp_path, changed)).fingerprint() != base.fingerprint()
    assert len(base.fingerprint()) == 64


def test_time_parameters_shorthand_and_columns(tmp_path: Path) -> None:
    text = """\
name: t
queries:
  recent:
    sql: "SELECT 1 FROM {members} WHERE {members.joined_at} > :since AND {members.joined_at} < :now"
    params:
      since: {time: window_end, minus: 30 minutes, column: members.joined_at}
      now: window_end
"""
    query = load_workload(write(tmp_path, text)).queries["recent"]
    assert query.ranks() == [ALL]
    since, now = query.params["since"], query.params["now"]
    assert isinstance(since, TimeParameter) and since.minus_seconds == 1800 and since.column == "members.joined_at"
    assert isinstance(now, TimeParameter) and now.column == "messages.created_at"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("at: [p99, p10]", "at: [p99, p101]"), "queries.latest.params.conversation.at: rank 'p101' is not p0 to p100"),
        (("at: [p99, p10]", "at: [top]"), "rank 'top' is not p0 to p100"),
        (("by: messages", "by: reactions"), "a conversation is ranked by messages or members, not 'reactions'"),
        (("entity: conversation", "entity: team"), "queries.latest.params.conversation.entity"),
        (("= :conversation", "= :conversaton"), "queries.latest: sql uses :conversaton, not declared in params"),
        (("LIMIT 5", "AND 1 = :extra LIMIT 5"), "sql uses :extra, not declared"),
        (("{messages.id} FROM", "{messages.uuid} FROM"), "{messages.uuid}: messages has no field uuid"),
        (("FROM {messages}", "FROM {posts}"), "{posts} names no entity"),
        (("LIMIT 5", "LIMIT $1"), "write parameters as :name, not $1"),
        (("LIMIT 5", "LIMIT 'five"), "unclosed ' quote"),
        (("description:", "descripton:"), "queries.latest: unknown key 'descripton'"),
        (("name: mine", "name: ''"), "name: String should have at least 1 character"),
    ],
)
def test_bad_workloads_are_one_line_errors_naming_the_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = write(tmp_path, LATEST.replace(*change))
    with pytest.raises(ShapePipelineError) as caught:
        load_workload(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_unused_parameter_and_mismatched_ranks_are_refused(tmp_path: Path) -> None:
    unused = LATEST + "      since: {time: window_end, minus: 1 day}\n"
    with pytest.raises(ShapePipelineError, match=r"params: :since not used in sql"):
        load_workload(write(tmp_path, unused))
    mismatched = LATEST.replace("LIMIT 5", "AND {messages.sender_id} = :sender LIMIT 5") + (
        "      sender: {entity: user, by: messages_sent, at: [p50]}\n"
    )
    with pytest.raises(ShapePipelineError, match="must list the same ranks"):
        load_workload(write(tmp_path, mismatched))
    bad_time = LATEST.replace("LIMIT 5", "AND {messages.created_at} > :since LIMIT 5") + (
        "      since: {time: window_end, minus: a fortnight}\n"
    )
    with pytest.raises(ShapePipelineError, match="'a fortnight' is not a duration"):
        load_workload(write(tmp_path, bad_time))
    bad_column = bad_time.replace("minus: a fortnight", "column: messages.content")
    with pytest.raises(ShapePipelineError, match="'messages.content' is not a time field"):
        load_workload(write(tmp_path, bad_column))


def test_file_problems_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ShapePipelineError, match="No such file or directory: .*missing.yaml \\(workload\\)"):
        load_workload(tmp_path / "missing.yaml")
    with pytest.raises(ShapePipelineError, match="not valid YAML"):
        load_workload(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ShapePipelineError, match="must be a YAML mapping"):
        load_workload(write(tmp_path, "- a list\n"))
    with pytest.raises(ShapePipelineError, match="queries: Dictionary should have at least 1 item"):
        load_workload(write(tmp_path, "name: x\nqueries: {}\n"))
