"""Outputs that cannot be written, Parquet folders that are files, impossible sizes and SIGTERM,
through the real command line: one `error:` line naming the option or file, the exit code, and
nothing left behind (issue 9, item 4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from shape_pipeline import settings
from shape_pipeline.cli import main
from shape_pipeline.db import create_engine

SEED_SHAPE = Path(__file__).parents[1] / "shape_pipeline" / "examples" / "shape-metrics-seed.json"
SALT = "a-test-salt-that-is-long-enough-for-the-sampler"
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SHAPE_PIPELINE_", "ANONYMIZATION_SALT"))}
UNWRITABLE = ["{tmp}/file.txt/out.json", "/proc/r.json", "/proc/x/y.json"]


@dataclass(frozen=True)
class World:
    """A calibrated config and a tiny canonical dataset made by the CLI itself."""

    config: Path
    database: Path
    parquet: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("bad-outputs-world")
    config, database, parquet = base / "cfg.json", base / "canonical.db", base / "parquet"
    assert main(["calibrate", "--shape", str(SEED_SHAPE), "--output", str(config)]) == 0
    assert (
        main(
            [
                "generate",
                "--config",
                str(config),
                "--target-messages",
                "500",
                "--database-url",
                f"sqlite:///{database}",
                "--parquet-dir",
                str(parquet),
            ]
        )
        == 0
    )
    return World(config, database, parquet)


@pytest.fixture
def place(tmp_path: Path) -> Path:
    (tmp_path / "file.txt").write_text("a file, not a folder")
    (tmp_path / "folder").mkdir()
    return tmp_path


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line, which must be an `error:` line."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def sample_argv(world: World, output: str, audit: Path) -> list[str]:
    return [
        "sample",
        "--database-url",
        f"sqlite:///{world.database}",
        "--output",
        output,
        "--audit-log",
        str(audit),
        "--as-of",
        "2025-10-23",
    ]


def validate_argv(output: str, source: Path, html: str | None = None) -> list[str]:
    argv = ["validate", "--shape", str(SEED_SHAPE), "--parquet-dir", str(source), "--output", output]
    return argv + (["--html", html] if html else [])


@pytest.mark.parametrize("pattern", UNWRITABLE)
def test_sample_output_that_cannot_be_written(world, place, pattern, capsys, monkeypatch) -> None:
    monkeypatch.setenv(settings.SALT, SALT)
    output, audit = pattern.format(tmp=place), place / "audit.jsonl"
    before = listing(place)
    assert main(sample_argv(world, output, audit)) == 2
    line = one_error(capsys)
    assert f"cannot write {output}: " in line
    assert listing(place) == before  # no shape file, no temporary file, no audit-log line
    assert not Path(output).exists()


@pytest.mark.parametrize("pattern", UNWRITABLE)
def test_calibrate_output_that_cannot_be_written(place, pattern, capsys) -> None:
    output = pattern.format(tmp=place)
    before = listing(place)
    assert main(["calibrate", "--shape", str(SEED_SHAPE), "--output", output]) == 2
    assert one_error(capsys).startswith(f"error: --output: cannot write {output}: ")
    assert capsys.readouterr().out == ""  # refused before the fit and its summary
    assert listing(place) == before


@pytest.mark.parametrize("pattern", UNWRITABLE)
def test_validate_output_or_html_that_cannot_be_written(world, place, pattern, capsys) -> None:
    bad = pattern.format(tmp=place)
    before = listing(place)
    assert main(validate_argv(bad, world.parquet)) == 2
    assert one_error(capsys).startswith(f"error: --output: cannot write {bad}: ")
    assert main(validate_argv(str(place / "r.json"), world.parquet, html=bad)) == 2
    assert one_error(capsys).startswith(f"error: --html: cannot write {bad}: ")
    assert listing(place) == before  # never a report without its HTML


def test_validate_writes_report_and_html_together(world, place, capsys) -> None:
    report, html = place / "new" / "r.json", place / "new" / "r.html"
    assert main(validate_argv(str(report), world.parquet, html=str(html))) in (0, 1)
    assert report.read_text().startswith("{") and "<html" in html.read_text().lower()
    assert "error" not in capsys.readouterr().err


@pytest.mark.parametrize("command", ["calibrate", "validate"])
def test_output_that_is_a_folder_is_refused(world, place, command, capsys) -> None:
    """calibrate and validate take a FILE for --output (sample takes a file or a folder)."""
    folder = place / "folder"
    argv = (
        ["calibrate", "--shape", str(SEED_SHAPE), "--output", str(folder)]
        if command == "calibrate"
        else validate_argv(str(folder), world.parquet)
    )
    assert main(argv) == 2
    assert one_error(capsys) == f"error: --output: cannot write {folder}: it is a directory"
    assert list(folder.iterdir()) == []


def test_sample_output_that_is_a_folder_gets_the_default_name(world, place, capsys, monkeypatch) -> None:
    monkeypatch.setenv(settings.SALT, SALT)
    assert main(sample_argv(world, str(place / "folder"), place / "audit.jsonl")) == 0
    names = [p.name for p in (place / "folder").iterdir()]
    assert len(names) == 1 and names[0].startswith("shape-metrics-prod-") and names[0].endswith(".json")
    assert "error" not in capsys.readouterr().err


@pytest.mark.parametrize("relative", ["file.txt", "file.txt/sub"])
def test_generate_parquet_dir_that_is_a_file(world, place, relative, capsys) -> None:
    before = listing(place)
    target = place / relative
    argv = ["generate", "--config", str(world.config), "--target-messages", "500", "--parquet-dir", str(target)]
    assert main(argv) == 2
    assert one_error(capsys) == f"error: --parquet-dir: cannot write {target}: {place / 'file.txt'} is not a directory"
    assert listing(place) == before


def test_validate_parquet_dir_that_is_a_file(place, capsys) -> None:
    assert main(validate_argv(str(place / "r.json"), place / "file.txt")) == 2
    assert one_error(capsys) == f"error: --parquet-dir: {place / 'file.txt'} is not a directory"
    assert not (place / "r.json").exists()


def test_generate_size_this_machine_cannot_plan(world, place, capsys) -> None:
    started = time.perf_counter()
    argv = [
        "generate",
        "--config",
        str(world.config),
        "--target-messages",
        "10000000000000",
        "--parquet-dir",
        str(place / "out"),
    ]
    assert main(argv) == 2
    line = one_error(capsys)
    assert line.startswith("error: --target-messages: 10,000,000,000,000 messages cannot be planned on this machine")
    assert "at most about " in line and " GiB of memory)" in line
    assert time.perf_counter() - started < 10
    assert not (place / "out").exists()


# SIGTERM: the process gets an exception, so the same clean-ups as Ctrl-C run.


def start_generate(config: Path, *target: str) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "shape_pipeline",
        "generate",
        "--config",
        str(config),
        "--target-messages",
        "5000000",
        *target,
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)


def terminate_when(process: subprocess.Popen[str], ready: Callable[[], bool]) -> tuple[int, str]:
    """Send SIGTERM as soon as `ready()` (the load is under way); return (exit code, stderr)."""
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, f"finished before it could be interrupted: {process.stderr.read()}"
        assert time.monotonic() < deadline, "the load never started"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def assert_terminated(code: int, err: str) -> None:
    assert code == 143
    assert "Traceback" not in err
    errors = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error")]
    assert errors == ["error: terminated; nothing was written"]


def test_sigterm_during_parquet_generation_leaves_nothing(world, tmp_path) -> None:
    target = tmp_path / "out"
    process = start_generate(world.config, "--parquet-dir", str(target))
    code, err = terminate_when(process, lambda: any(target.glob(".staging-*/messages/part-*")))
    assert_terminated(code, err)
    assert not target.exists()  # no staging folder, no dataset, not even the folder it made
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_postgres_load_leaves_no_rows(world, make_pg_database) -> None:
    url = make_pg_database("sigterm")
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    database = sa.engine.make_url(url).database
    copying = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND query ILIKE 'COPY%'")

    def loading() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(copying, {"db": database}).scalar())

    try:
        code, err = terminate_when(start_generate(world.config, "--database-url", url), loading)
        assert_terminated(code, err)
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            rows = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar() for t in tables}
        assert all(count == 0 for count in rows.values()), rows  # one transaction: rolled back
    finally:
        engine.dispose()
