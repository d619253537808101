"""Bad input through the real CLI: one `error:` line naming the option or file, exit 2, nothing written.

Malformed database URLs (sample, generate, validate), windows that cannot be computed or end in
the future, a SQLite database that does not exist, and audit logs that cannot be read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import shape_pipeline.cli as cli
from shape_pipeline.calibration.calibrate import calibrate_file
from shape_pipeline.console import silent
from shape_pipeline.sampling.export import MAX_WINDOW_DAYS
from shape_pipeline_tests.calibration.shapes import SEED_SHAPE

BAD_PORT_URLS = ("postgresql://u:p@127.0.0.1:abc/x", "postgresql://u:p@[::1/x")


def calibrated_config(folder: Path) -> Path:
    """A calibrated config of the shipped example shape (generate's required input)."""
    path = folder / "calibrated-config.json"
    calibrate_file(SEED_SHAPE, path, emit=silent)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a calibrated config (the example shape is read where it is shipped)."""
    folder = tmp_path_factory.mktemp("inputs")
    calibrated_config(folder)
    return folder


@pytest.fixture
def sample_env(monkeypatch: pytest.MonkeyPatch, salt_env: str) -> None:
    for name in ("SHAPE_PIPELINE_EXPORT_DIR", "SHAPE_PIPELINE_PROD_DATABASE_URL", "SHAPE_PIPELINE_AUDIT_LOG"):
        monkeypatch.delenv(name, raising=False)


def one_error_line(capsys: pytest.CaptureFixture[str], code: int, *names: str) -> str:
    """Assert exit 2 and a single `error:` line on stderr that names every one of `names`."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in err, (name, err)
    return err.strip()


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def sample_args(url: str, out: Path, *extra: str) -> list[str]:
    return ["sample", "--database-url", url, "--output", str(out), "--audit-log", str(out / "audit.jsonl"), *extra]


# ------------------------------------------------------------------ malformed ports


@pytest.mark.parametrize("url", BAD_PORT_URLS)
def test_sample_refuses_a_malformed_port(url: str, tmp_path: Path, sample_env, capsys) -> None:
    code = cli.main(sample_args(url, tmp_path))
    line = one_error_line(capsys, code, "--database-url", "port")
    assert "u:p@" not in line
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("url", BAD_PORT_URLS)
def test_generate_refuses_a_malformed_port(url: str, inputs: Path, tmp_path: Path, capsys) -> None:
    code = cli.main(
        [
            "generate",
            "--config",
            str(inputs / "calibrated-config.json"),
            "--database-url",
            url,
            "--parquet-dir",
            str(tmp_path / "parquet"),
            "--target-messages",
            "1000",
        ]
    )
    one_error_line(capsys, code, "--database-url", "port")
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("url", BAD_PORT_URLS)
def test_validate_refuses_a_malformed_port(url: str, tmp_path: Path, capsys) -> None:
    code = cli.main(
        [
            "validate",
            "--shape",
            str(SEED_SHAPE),
            "--database-url",
            url,
            "--output",
            str(tmp_path / "report.json"),
            "--html",
            str(tmp_path / "report.html"),
        ]
    )
    one_error_line(capsys, code, "--database-url", "port")
    assert files_in(tmp_path) == []


# ------------------------------------------------------------------ windows


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        (["--window-days", "800000"], ["--window-days", f"{MAX_WINDOW_DAYS:,}"]),
        (["--window-days", str(MAX_WINDOW_DAYS + 1)], ["--window-days"]),
        (["--as-of", "0001-01-05"], ["--as-of", "0001-01-05", "before year 1"]),
        (["--as-of", "0001-01-05", "--window-days", "5"], ["--as-of", "5 days", "before year 1"]),
    ],
)
def test_windows_that_cannot_be_computed_are_refused(
    extra: list[str], names: list[str], canonical_pg: str, tmp_path: Path, sample_env, capsys
) -> None:
    code = cli.main(sample_args(canonical_pg, tmp_path, *extra))
    one_error_line(capsys, code, *names)
    assert files_in(tmp_path) == []


def test_the_earliest_window_that_can_be_computed_still_works(canonical_pg: str, tmp_path: Path, sample_env) -> None:
    out = tmp_path / "s.json"
    assert (
        cli.main(
            [
                "sample",
                "--database-url",
                canonical_pg,
                "--output",
                str(out),
                "--audit-log",
                str(tmp_path / "a.jsonl"),
                "--as-of",
                "0001-01-05",
                "--window-days",
                "4",
            ]
        )
        == 0
    )
    assert out.is_file()


def test_an_as_of_in_the_future_is_refused(canonical_pg: str, tmp_path: Path, sample_env, capsys) -> None:
    future = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    code = cli.main(sample_args(canonical_pg, tmp_path, "--as-of", future))
    line = one_error_line(capsys, code, "--as-of", future, "in the future")
    assert line.startswith(f"error: --as-of: {future} is in the future")
    assert files_in(tmp_path) == []


def test_as_of_today_and_the_default_still_work(canonical_pg: str, tmp_path: Path, sample_env, capsys) -> None:
    today = datetime.now(UTC).date().isoformat()
    for number, extra in enumerate((["--as-of", today], ["--allow-salt-reuse"])):
        out = tmp_path / f"s{number}.json"
        args = [
            "sample",
            "--database-url",
            canonical_pg,
            "--output",
            str(out),
            "--audit-log",
            str(tmp_path / "a.jsonl"),
        ]
        assert cli.main([*args, *extra]) == 0, capsys.readouterr().err
        assert out.is_file()


# ------------------------------------------------------------------ SQLite files that do not exist


def test_sample_refuses_a_missing_sqlite_database(tmp_path: Path, sample_env, capsys) -> None:
    missing = tmp_path / "missing.db"
    out = tmp_path / "out"
    out.mkdir()
    code = cli.main(sample_args(f"sqlite:///{missing}", out))
    one_error_line(capsys, code, "--database-url", str(missing), "no such SQLite database file")
    assert files_in(tmp_path) == ["out"]


def test_validate_refuses_a_missing_sqlite_database(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.db"
    code = cli.main(
        [
            "validate",
            "--shape",
            str(SEED_SHAPE),
            "--database-url",
            f"sqlite:///{missing}",
            "--output",
            str(tmp_path / "report.json"),
        ]
    )
    one_error_line(capsys, code, "--database-url", str(missing))
    assert files_in(tmp_path) == []


# ------------------------------------------------------------------ audit logs that cannot be read


@pytest.mark.parametrize(
    ("content", "names"),
    [
        (b'{"salt_fingerprint": "a"}\n\xff\xfe not utf-8\n', ["line 2", "not UTF-8"]),
        (b'{"salt_fingerprint": "a"}\n[1, 2]\n', ["line 2", "not a JSON object"]),
        (b'"just a string"\n', ["line 1", "not a JSON object"]),
        (b'{"salt_fingerprint": "a"}\n\n{broken\n', ["line 3", "not valid JSON"]),
    ],
)
def test_an_unreadable_audit_log_is_one_line_naming_it(
    content: bytes, names: list[str], canonical_pg: str, tmp_path: Path, sample_env, capsys
) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_bytes(content)
    code = cli.main(sample_args(canonical_pg, tmp_path, "--as-of", "2025-01-31"))
    one_error_line(capsys, code, str(log), "--audit-log", *names)
    assert files_in(tmp_path) == ["audit.jsonl"] and log.read_bytes() == content


def test_an_audit_log_that_is_a_folder_is_refused(canonical_pg: str, tmp_path: Path, sample_env, capsys) -> None:
    (tmp_path / "audit.jsonl").mkdir()
    code = cli.main(sample_args(canonical_pg, tmp_path, "--as-of", "2025-01-31"))
    one_error_line(capsys, code, str(tmp_path / "audit.jsonl"), "is a folder", "--audit-log")
    assert files_in(tmp_path) == ["audit.jsonl"]
