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
    short_reason,
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


CANARY = "Canary@Pw:9/x?y"
CANARY_ENCODED = "Canary%40Pw%3A9%2Fx%3Fy"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://bob:{CANARY_ENCODED}@h:5432/db", "postgresql://bob:***@h:5432/db"),
        (f"postgresql://bob:{CANARY}@h:5432/db", "postgresql://bob:***@h:5432/db"),  # raw: up to the last '@'
        (
            "postgresql://bob@h/db?password=CanaryQueryPw123&sslmode=require",
            "postgresql://bob@h/db?password=***&sslmode=require",
        ),
        (
            "postgresql://bob@h/db?PassWord=CanaryQueryPw123&sslpassword=CanarySsl1",
            "postgresql://bob@h/db?PassWord=***&sslpassword=***",
        ),
        ("postgresql://bob:CanaryPw1@h:abc/db?password=CanaryQueryPw123", "postgresql://bob:***@h:abc/db?password=***"),
        ("postgresql://bob:CanaryPw1@[::1/db", "postgresql://bob:***@[::1/db"),
        (f"postgresql://{CANARY}@h/db", "postgresql://***@h/db"),  # no ':' but '@' inside: hide it all
    ],
)
def test_redact_hides_every_password_form(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_redact_keeps_parameters_that_are_not_secrets() -> None:
    assert (
        redact("postgresql://bob@h/db?passfile=/home/bob/.pgpass")
        == "postgresql://bob@h/db?passfile=%2Fhome%2Fbob%2F.pgpass"
    )


def test_engine_url_holds_no_query_password_but_connects(pg_url: str) -> None:
    """SQLAlchemy's own str(url)/repr(engine) print query parameters: the password moves to connect_args."""
    engine = create_engine(parse_url(pg_url).update_query_dict({"password": "CanaryQueryPw123"}))
    try:
        assert "CanaryQueryPw123" not in str(engine.url) + repr(engine)
        with engine.connect() as conn:  # trust auth locally: any password connects
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u:CanaryPw1@127.0.0.1:abc/x", "--database-url: malformed host or port"),
        ("postgresql://u:CanaryPw1@[::1/x", "--database-url: malformed host or port"),
        ("postgresql://u:CanaryPw1@127.0.0.1:99999/x", "--database-url: port 99999 is out of range"),
        (f"postgresql://u:{CANARY}@127.0.0.1/x", "--database-url: the URL holds more than one '@'"),
    ],
)
def test_malformed_urls_are_one_line_without_the_url(url: str, message: str) -> None:
    with pytest.raises(ShapePipelineError) as info:
        parse_url(url)
    assert str(info.value).startswith(message)
    assert "Canary" not in str(info.value) and "\n" not in str(info.value)


def test_short_reason_scrubs_a_password_the_driver_echoes(pg_url: str) -> None:
    """A real PostgreSQL error that quotes the password text (here: a failed cast of it)."""
    url = parse_url(pg_url).set(password=CANARY)
    engine = create_engine(url)
    try:
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as info:
            conn.execute(sa.text("SELECT CAST(:v AS integer)"), {"v": CANARY})
    finally:
        engine.dispose()
    assert CANARY in str(info.value.orig)  # the driver did echo it
    reason = short_reason(info.value)
    assert CANARY not in reason and "invalid input syntax for type integer" in reason


def test_readers_refuse_a_missing_sqlite_file(tmp_path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(ShapePipelineError) as info:
        create_engine(f"sqlite:///{missing}", must_exist=True)
    assert str(info.value) == f"--database-url: {missing}: no such SQLite database file; nothing was created"
    with pytest.raises(ShapePipelineError, match="is a folder"):
        create_engine(f"sqlite:///{tmp_path}", must_exist=True)
    assert list(tmp_path.iterdir()) == []
    engine = create_engine(f"sqlite:///{missing}")  # writers may create it
    with engine.connect():
        pass
    engine.dispose()
    assert missing.is_file()
    create_engine(f"sqlite:///{missing}", must_exist=True).dispose()
