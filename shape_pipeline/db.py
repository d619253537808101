"""Engines and URLs: libpq and SQLAlchemy URL forms, psycopg 3 always, passwords never shown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.exc import DBAPIError as SADBAPIError

from shape_pipeline.errors import DatabaseError, ShapePipelineError

_POSTGRES_SCHEMES = {"postgres", "postgresql"}


def parse_url(url: str | URL, *, option: str = "--database-url") -> URL:
    """Parse a database URL in libpq form (`postgresql://…`) or SQLAlchemy form.

    Every PostgreSQL URL is bound to the psycopg 3 driver, whatever driver it named.
    """
    if isinstance(url, URL):
        parsed = url
    else:
        text = (url or "").strip()
        if not text:
            raise ShapePipelineError(f"{option}: a database URL is required")
        try:
            parsed = sa.make_url(text)
        except ArgumentError:
            raise ShapePipelineError(
                f"{option}: not a database URL (expected postgresql://user@host:5432/db "
                "or sqlite:///file.db)"
            ) from None
    backend = parsed.get_backend_name()
    if backend in _POSTGRES_SCHEMES:
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise ShapePipelineError(f"{option}: unsupported database '{backend}' (use postgresql or sqlite)")


def redact(url: str | URL) -> str:
    """The URL as text with its password replaced by `***` (safe for logs and metadata)."""
    try:
        parsed = url if isinstance(url, URL) else sa.make_url(str(url))
    except ArgumentError:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


def is_postgres(target: Engine | Connection | URL) -> bool:
    dialect = target.get_backend_name() if isinstance(target, URL) else target.dialect.name
    return dialect in _POSTGRES_SCHEMES


def create_engine(
    url: str | URL,
    *,
    application_name: str = "shape-pipeline",
    option: str = "--database-url",
    **kwargs: object,
) -> Engine:
    """An engine for `url`; PostgreSQL connections carry `application_name`."""
    parsed = parse_url(url, option=option)
    connect_args: dict[str, object] = dict(kwargs.pop("connect_args", {}) or {})  # type: ignore[arg-type]
    if parsed.get_backend_name() == "postgresql":
        connect_args.setdefault("application_name", application_name)
        connect_args.setdefault("connect_timeout", 10)
    return sa.create_engine(parsed, connect_args=connect_args, **kwargs)  # type: ignore[arg-type]


def short_reason(exc: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's boilerplate."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


def check_connection(engine: Engine) -> None:
    """Connect once; raise a one-line `DatabaseError` (no traceback) if that fails."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except (OperationalError, SADBAPIError) as exc:
        raise DatabaseError(
            f"cannot connect to {redact(engine.url)}: {short_reason(exc)}"
        ) from None


def same_database(a: str | URL, b: str | URL) -> bool:
    """True when two URLs point at the same database (host, port and name; drivers ignored)."""
    try:
        ua, ub = parse_url(a), parse_url(b)
    except ShapePipelineError:
        return False
    if ua.get_backend_name() != ub.get_backend_name():
        return False
    if ua.get_backend_name() == "sqlite":
        from pathlib import Path

        da, db_ = ua.database or "", ub.database or ""
        if not da or not db_ or ":memory:" in (da, db_):
            return False
        return Path(da).resolve() == Path(db_).resolve()
    local = {None, "", "localhost", "127.0.0.1", "::1"}
    host_a = "localhost" if ua.host in local else ua.host
    host_b = "localhost" if ub.host in local else ub.host
    return (host_a, ua.port or 5432, ua.database) == (host_b, ub.port or 5432, ub.database)


_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+")


@contextmanager
def read_only_snapshot(
    engine: Engine, *, statement_timeout_ms: int | None = None, snapshot: str | None = None
) -> Iterator[Connection]:
    """One read-only transaction with a consistent snapshot across all queries.

    PostgreSQL: `REPEATABLE READ READ ONLY` and a `statement_timeout`; `snapshot` (an id from
    `pg_export_snapshot()` in another such transaction) makes this transaction see exactly that
    snapshot, so several connections can read one consistent state concurrently. SQLite: one
    deferred transaction (SQLite reads are already snapshot-consistent inside a transaction).
    """
    if snapshot is not None and not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    with engine.connect() as conn:
        if is_postgres(conn):
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                conn.execute(sa.text("SET TRANSACTION READ ONLY"))
                if snapshot is not None:  # must precede every query of the transaction
                    conn.execute(sa.text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
                if statement_timeout_ms:
                    conn.execute(
                        sa.text("SELECT set_config('statement_timeout', :ms, true)"),
                        {"ms": str(int(statement_timeout_ms))},
                    )
                yield conn
        else:
            with conn.begin():
                yield conn
