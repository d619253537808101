"""`shape-pipeline workload` on one and two databases: exit codes, the JSON file, no value shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from chat_simulator.schemas import schema
from shape_pipeline.cli import main
from shape_pipeline.contracts import WorkloadPlans
from shape_pipeline.db import create_engine
from shape_pipeline_tests.workload.conftest import LoadedWorld

CANARY = "CANARY-TEXT-77c2"


def ids_of(world: LoadedWorld) -> set[str]:
    engine = create_engine(world.url)
    with engine.connect() as conn:
        found = set(conn.execute(sa.text('SELECT "Id" FROM "Channels" UNION ALL SELECT "Id" FROM "Users"')).scalars())
    engine.dispose()
    return found


def test_one_database_prints_plans_and_writes_them(mattermost_world: LoadedWorld, tmp_path: Path, capsys) -> None:
    workload = tmp_path / "workload.yaml"
    workload.write_text(
        "name: canary\nqueries:\n  latest:\n    sql: |\n"
        f'      SELECT count(*) FROM "Posts" WHERE "Message" <> \'{CANARY}\' AND "ChannelId" = :channel\n'
        "    params:\n      channel: {entity: conversation, by: messages, at: [p99, p10]}\n",
        encoding="utf-8",
    )
    output = tmp_path / "out" / "plans.json"
    url = mattermost_world.url.replace("postgres@", "postgres:hunter22@")  # trust auth ignores it
    code = main(
        [
            "workload",
            "--database-url",
            url,
            "--mapping",
            str(mattermost_world.mapping_path),
            "--workload",
            str(workload),
            "--runs",
            "1",
            "--output",
            str(output),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "=== WORKLOAD PLANS ===" in out and "[Workload] latest (p99):" in out and "[Workload] latest (p10):" in out
    assert "on Posts" in out and "✓ 2 plans" in out
    assert "hunter22" not in out and "postgres:***@" in out
    plans = WorkloadPlans.model_validate_json(output.read_text(encoding="utf-8"))
    assert list(plans.queries["latest"]) == ["p99", "p10"]
    shown = out + output.read_text(encoding="utf-8")
    assert CANARY not in shown
    assert not any(i in shown for i in ids_of(mattermost_world))


def test_two_databases_are_compared(
    canonical_world: LoadedWorld, slack_world: LoadedWorld, tmp_path: Path, capsys
) -> None:
    same = ["workload", "--database-url", canonical_world.url, "--compare-url", canonical_world.url, "--runs", "1"]
    assert main([*same, "--strict"]) == 0  # a database against itself: every plan the same
    out = capsys.readouterr().out
    assert "=== PLAN COMPARISON ===" in out and "Same shape: 16/16 pairs" in out

    output = tmp_path / "comparison.json"
    other = [
        "workload",
        "--database-url",
        canonical_world.url,
        "--compare-url",
        slack_world.url,
        "--compare-mapping",
        str(slack_world.mapping_path),
        "--runs",
        "1",
        "--output",
        str(output),
    ]
    assert main(other) == 0  # informational by default
    out = capsys.readouterr().out
    assert "DIFFERS" in out and "messages_author_idx" in out  # slack's own index names
    document = json.loads(output.read_text(encoding="utf-8"))
    assert set(document) == {"plans", "compare_plans", "comparison"}
    assert len(document["comparison"]["pairs"]) == 16 and document["comparison"]["same_shape_share"] < 1
    assert WorkloadPlans.model_validate(document["compare_plans"]).queries
    assert main([*other, "--strict"]) == 1


def test_command_errors_are_one_line(canonical_world: LoadedWorld, tmp_path: Path, capsys) -> None:
    assert main(["workload", "--database-url", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --database-url: the workload needs PostgreSQL") and err.count("\n") == 1

    assert main(["workload", "--database-url", canonical_world.url, "--strict"]) == 2
    assert "--strict: needs --compare-url" in capsys.readouterr().err

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nqueries:\n  cast:\n    sql: SELECT ('x' || :c)::integer\n"
        "    params:\n      c: {entity: user, by: messages_sent, at: [p99]}\n",
        encoding="utf-8",
    )
    assert (
        main(
            [
                "workload",
                "--database-url",
                canonical_world.url,
                "--compare-url",
                canonical_world.url,
                "--workload",
                str(bad),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err == (
        "error: --database-url: workload query 'cast' (p99) failed: InvalidTextRepresentation (SQLSTATE 22P02)\n"
    )

    missing = ["workload", "--database-url", canonical_world.url, "--mapping", str(tmp_path / "nope.yaml")]
    assert main(missing) == 2 and "No such file or directory" in capsys.readouterr().err

    mattermost = tmp_path / "mattermost.yaml"
    mattermost.write_text(schema("mattermost").mapping_yaml or "", encoding="utf-8")
    assert main(["workload", "--database-url", canonical_world.url, "--mapping", str(mattermost)]) == 2
    assert capsys.readouterr().err.startswith("error: --database-url: mapping does not match the database; missing:")


@pytest.mark.parametrize("value", ["yesterday", "2025-13-01"])
def test_bad_window_end_is_a_usage_error(value: str, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["workload", "--database-url", "postgresql://x@localhost/db", "--window-end", value])
    assert caught.value.code == 2 and "expected an ISO 8601 time" in capsys.readouterr().err
