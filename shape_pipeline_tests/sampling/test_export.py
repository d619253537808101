"""sample_to_file and the `sample` command end to end on PostgreSQL: files, logs, errors."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

import shape_pipeline.cli as cli
from shape_pipeline.audit_log import read_audit_log
from shape_pipeline.contracts import ShapeMetrics
from shape_pipeline.errors import DatabaseError, PrivacyError
from shape_pipeline.files import sha256_file
from shape_pipeline.sampling.audit import audit_file
from shape_pipeline.sampling.export import default_output_path, resolve_window, sample_to_file
from shape_pipeline_tests.sampling import dataset as ds
from shape_pipeline_tests.sampling.conftest import SALT

NOW = datetime(2025, 2, 3, 14, 30, tzinfo=UTC)


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch):
    """The real `shape-pipeline` entry point, with only this package's subcommand loaded
    (the other steps' command modules belong to other areas)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("shape_pipeline.sampling.command",))
    monkeypatch.delenv("SHAPE_PIPELINE_EXPORT_DIR", raising=False)
    return cli.main


def assert_no_canary(text: str) -> None:
    for canary in ds.CANARIES:
        assert canary not in text, canary


def test_sample_writes_an_audited_shape_and_logs_nothing_identifying(
    canonical_pg: str, tmp_path: Path, salt_env: str, capsys, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    log = tmp_path / "audit.jsonl"
    result = sample_to_file(
        canonical_pg,
        output_dir=tmp_path,
        as_of="2025-01-31",
        privacy="suppression",
        min_cell_count=1,
        force_min_cell_count=True,
        audit_log=log,
        now=NOW,
    )
    assert result.path == tmp_path / "shape-metrics-prod-20250203.json"
    text = result.path.read_text(encoding="utf-8")
    shape = ShapeMetrics.model_validate_json(text)
    assert shape.totals.model_dump() == {"users": 12, "conversations": 4, "messages": 10}
    assert shape.conversations.type_distribution == {"DIRECT_MESSAGE": 1, "GROUP_CHAT": 1, "CHANNEL": 1, "OTHER": 1}
    assert result.sha256 == sha256_file(result.path)
    audit_file(result.path)
    out = capsys.readouterr()
    printed = out.out + out.err + caplog.text
    assert "=== PRODUCTION SHAPE SAMPLING ===" in printed and "[Sampler] ✓" in printed
    for haystack in (text, printed, log.read_text()):
        assert_no_canary(haystack)
        assert SALT not in haystack
    entry = read_audit_log(log)[-1]
    assert entry["sha256"] == result.sha256 and entry["totals"]["messages"] == 10
    assert entry["window_start"].startswith("2025-01-01") and entry["salt_fingerprint"]


def test_mapped_schema_through_the_command(
    mapped_pg: str, mapping_file: Path, tmp_path: Path, salt_env: str, run_cli, capsys
) -> None:
    out_file = tmp_path / "out.json"
    code = run_cli(
        [
            "sample",
            "--privacy",
            "suppression",
            "--database-url",
            mapped_pg,
            "--mapping",
            str(mapping_file),
            "--as-of",
            "2025-01-31",
            "--min-cell-count",
            "2",
            "--force-min-cell-count",
            "--output",
            str(out_file),
            "--audit-log",
            str(tmp_path / "a.jsonl"),
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    shape = ShapeMetrics.model_validate_json(out_file.read_text())
    assert shape.totals.messages == 10 and shape.privacy.min_cell_count == 2
    assert shape.messages.inter_message_gap_seconds.max == 570_000  # 561599 rounded up
    assert "[Output] ✓ Written to" in printed.out
    assert_no_canary(out_file.read_text() + printed.out + printed.err)


def test_a_min_cell_count_below_five_needs_force_and_says_so(
    canonical_pg: str, tmp_path: Path, salt_env: str, run_cli, capsys
) -> None:
    log = tmp_path / "a.jsonl"
    args = [
        "sample",
        "--privacy",
        "suppression",
        "--database-url",
        canonical_pg,
        "--as-of",
        "2025-01-31",
        "--min-cell-count",
        "1",
        "--output",
        str(tmp_path / "out.json"),
        "--audit-log",
        str(log),
    ]
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --min-cell-count: 1 is below 5") and "--force-min-cell-count" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out.json").exists() and not log.exists()
    assert run_cli([*args, "--force-min-cell-count"]) == 0
    assert "is below 5 (forced)" in capsys.readouterr().out
    assert read_audit_log(log)[-1]["min_cell_count_forced"] is True


def test_missing_and_short_salt_stop_before_anything_happens(
    canonical_pg: str, tmp_path: Path, run_cli, monkeypatch, capsys
) -> None:
    args = [
        "sample",
        "--database-url",
        canonical_pg,
        "--output",
        str(tmp_path),
        "--audit-log",
        str(tmp_path / "a.jsonl"),
    ]
    monkeypatch.delenv("ANONYMIZATION_SALT", raising=False)
    assert run_cli(args) == 2
    assert capsys.readouterr().err.strip() == "error: ANONYMIZATION_SALT environment variable required"
    monkeypatch.setenv("ANONYMIZATION_SALT", "too-short")
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert "too short" in err and "too-short" not in err
    assert list(tmp_path.iterdir()) == []


def test_salt_reuse_is_refused_unless_allowed(
    canonical_pg: str, tmp_path: Path, salt_env: str, run_cli, capsys
) -> None:
    args = [
        "sample",
        "--database-url",
        canonical_pg,
        "--as-of",
        "2025-01-31",
        "--output",
        str(tmp_path / "out"),
        "--audit-log",
        str(tmp_path / "a.jsonl"),
    ]
    (tmp_path / "out").mkdir()
    assert run_cli(args) == 0
    assert run_cli(args) == 2
    assert "already used by an earlier extraction" in capsys.readouterr().err
    assert len(list((tmp_path / "out").iterdir())) == 1  # the refused run wrote nothing
    assert run_cli([*args, "--allow-salt-reuse"]) == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(files) == 2 and files[1].startswith("shape-metrics-prod-") and files[0] != files[1]
    assert [e["salt_reused"] for e in read_audit_log(tmp_path / "a.jsonl")] == [False, True]


def test_unreachable_database_is_one_clear_line(tmp_path: Path, salt_env: str, run_cli, capsys) -> None:
    code = run_cli(
        [
            "sample",
            "--database-url",
            "postgresql://sampler:s3cret-pw@127.0.0.1:1/prod",
            "--output",
            str(tmp_path),
            "--audit-log",
            str(tmp_path / "a.jsonl"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: cannot connect to postgresql+psycopg://sampler:***@127.0.0.1:1/prod")
    assert err.count("\n") == 1 and "Traceback" not in err and "s3cret-pw" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_audit_writes_nothing(mapped_pg: str, tmp_path: Path, salt_env: str) -> None:
    """A profile column whose name looks like a token is blocked by the allow-list: no file, no log entry."""
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        ds.MAPPING_YAML.replace(
            "profile_fields: [displayName, avatarUrl, bio]", "profile_fields: [bio, deadbeefcafebabe01]"
        )
    )
    from shape_pipeline.db import create_engine

    engine = create_engine(mapped_pg)
    with engine.begin() as conn:
        conn.exec_driver_sql('ALTER TABLE "User" ADD COLUMN IF NOT EXISTS deadbeefcafebabe01 text')
    engine.dispose()
    with pytest.raises(PrivacyError, match="profile_completeness has a key that is not allowed"):
        sample_to_file(
            mapped_pg,
            mapping_path=mapping,
            output_dir=tmp_path / "out",
            audit_log=tmp_path / "a.jsonl",
            as_of="2025-01-31",
        )
    assert not (tmp_path / "out").exists() and not (tmp_path / "a.jsonl").exists()


def test_empty_window_exports_a_documented_empty_shape(
    canonical_pg: str, tmp_path: Path, salt_env: str, capsys
) -> None:
    # a past window after the data (an --as-of in the future is refused: test_bad_input.py)
    result = sample_to_file(
        canonical_pg,
        output=tmp_path / "s.json",
        as_of="2025-12-01",
        audit_log=tmp_path / "a.jsonl",
        privacy="suppression",
    )
    data = json.loads(result.path.read_text())
    assert data["totals"] == {"users": 13, "conversations": 0, "messages": 0}
    assert "content_length_stats" not in data["messages"]
    assert any("empty window" in n for n in data["privacy"]["notes"])
    assert "No messages in the window" in capsys.readouterr().out


def test_window_and_file_name_rules(tmp_path: Path) -> None:
    start, end = resolve_window(30, "2025-01-31", NOW)
    assert (start, end) == (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 31, tzinfo=UTC))
    assert resolve_window(7, None, NOW) == (datetime(2025, 1, 27, 14, 30, tzinfo=UTC), NOW)
    first = default_output_path(tmp_path, NOW)
    first.write_text("{}")
    assert default_output_path(tmp_path, NOW).name == "shape-metrics-prod-20250203-143000.json"
    with pytest.raises(Exception, match="--as-of: expected a date"):
        resolve_window(30, "31/01/2025", NOW)


def test_query_failures_become_one_line(canonical_pg: str, tmp_path: Path, salt_env: str) -> None:
    """A statement that PostgreSQL cancels (statement_timeout while another session holds a lock) is one line."""
    from shape_pipeline.db import create_engine

    locker = create_engine(canonical_pg)
    with locker.connect() as conn:
        conn.exec_driver_sql("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(DatabaseError, match="statement timeout") as err:
            sample_to_file(canonical_pg, output_dir=tmp_path, audit_log=tmp_path / "a.jsonl", statement_timeout_ms=200)
        conn.rollback()
    locker.dispose()
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("privacy", "aggregates"), [("suppression", 2), ("dp", 3)])
def test_gentle_on_production_application_name_and_snapshot(
    canonical_pg: str, tmp_path: Path, salt_env: str, privacy: str, aggregates: int
) -> None:
    """Every sampler connection names itself; the GROUPING SETS aggregates run in REPEATABLE READ
    (DP mode: the unbounded content pass, one statement for the ordered, content and hour
    passes over each sender's L messages (read once, as a materialized CTE), the ordered pass
    over each user's C conversations)."""
    import psycopg
    import sqlalchemy as sa

    seen: list[tuple[str | None, object, str]] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        raw = conn.connection.dbapi_connection
        seen.append((raw.info.parameter_status("application_name"), raw.isolation_level, statement))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", on_execute)
    try:
        sample_to_file(
            canonical_pg, output_dir=tmp_path, as_of="2025-01-31", audit_log=tmp_path / "a.jsonl", privacy=privacy
        )
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", on_execute)
    assert seen and {name for name, _, _ in seen} == {"shape-pipeline-sampler"}
    grouped = [iso for _, iso, st in seen if "GROUPING SETS" in st]
    assert len(grouped) == aggregates and set(grouped) == {psycopg.IsolationLevel.REPEATABLE_READ}
