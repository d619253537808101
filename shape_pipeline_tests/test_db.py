"""URL handling and connection errors against the real PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shape_pipeline.db import (
    check_connection,
    create_engine,
    parse_url,
    read_only_snapshot,
    redact,
    same_database,
)
from shape_pipeline.errors import DatabaseError, ShapePipelineError


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:secret@db.internal:5432/chat",
        "postgres://u:secret@db.internal:5432/chat",
        "postgresql+psycopg2://u:secret@db.internal:5432/chat",
        "postgresql+psycopg://u:secret@db.internal:5432/chat",
    ],
)
def test_every_postgres_form_uses_psycopg3(url: str) -> None:
    parsed = parse_url(url)
    assert parsed.drivername == "postgresql+psycopg"
    assert (parsed.host, parsed.port, parsed.database) == ("db.internal", 5432, "chat")


def test_sqlite_url_is_kept() -> None:
    assert parse_url("sqlite:///some/file.db").database == "some/file.db"


@pytest.mark.parametrize("url", ["", "not a url", "mysql://u@h/db"])
def test_bad_urls_name_the_option(url: str) -> None:
    with pytest.raises(ShapePipelineError, match="--dev-url"):
        parse_url(url, option="--dev-url")


def test_redact_hides_the_password() -> None:
    text = redact("postgresql://alice:hunter2-very-secret@h:5432/db")
    assert "hunter2" not in text and "alice" in text and "***" in text


def test_same_database_ignores_driver_and_localhost_spelling() -> None:
    assert same_database("postgresql://a@localhost/chat", "postgresql+psycopg://b@127.0.0.1:5432/chat")
    assert not same_database("postgresql://a@localhost/chat", "postgresql://a@localhost/chat_dev")
    assert not same_database("sqlite:///a.db", "postgresql://a@localhost/a.db")


def test_same_database_for_sqlite_files(tmp_path) -> None:
    a = tmp_path / "x.db"
    assert same_database(f"sqlite:///{a}", f"sqlite:///{tmp_path}/./x.db")
    assert not same_database(f"sqlite:///{a}", f"sqlite:///{tmp_path}/y.db")


def test_unreachable_database_is_one_line_without_password() -> None:
    engine = create_engine("postgresql://bob:pw-secret@127.0.0.1:1/nowhere")
    with pytest.raises(DatabaseError) as info:
        check_connection(engine)
    message = str(info.value)
    assert "\n" not in message and "pw-secret" not in message
    assert message.startswith("cannot connect to postgresql+psycopg://bob:***@127.0.0.1:1/nowhere")


def test_connections_carry_application_name(pg_url: str) -> None:
    engine = create_engine(pg_url, application_name="shape-pipeline-test")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SHOW application_name")).scalar() == "shape-pipeline-test"
    engine.dispose()


def test_read_only_snapshot_refuses_writes_and_sets_timeout(pg_url: str) -> None:
    engine = create_engine(pg_url)
    with read_only_snapshot(engine, statement_timeout_ms=1234) as conn:
        assert conn.execute(sa.text("SHOW transaction_isolation")).scalar() == "repeatable read"
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "1234ms"
        with pytest.raises(sa.exc.DBAPIError, match="read-only"):
            conn.execute(sa.text("CREATE TABLE should_not_exist (x int)"))
    engine.dispose()
