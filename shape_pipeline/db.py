"""Engines and URLs: libpq and SQLAlchemy URL forms, psycopg 3 always, passwords never shown.

Every password a URL carries (user-info or a query parameter such as `password=` or
`sslpassword=`) is remembered when the URL is parsed, so that `redact` hides it in URLs and
`scrub` removes it from any other text (a driver's error message may echo connection
parameters). Passwords shorter than `MIN_SCRUBBED_SECRET` characters are hidden in URLs but
not searched for in free text (they would garble every message and protect nothing).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.exc import DBAPIError as SADBAPIError

from shape_pipeline.errors import DatabaseError, ShapePipelineError

_POSTGRES_SCHEMES = {"postgres", "postgresql"}
URL_EXAMPLE = "postgresql://user@host:5432/db or sqlite:///file.db"
HIDDEN = "***"
UNPARSEABLE = "<unparseable database URL>"
MIN_SCRUBBED_SECRET = 4
# Query parameters whose value is a secret: password, sslpassword, passwd, pass, pwd, *secret*,
# *token*; `passfile` (a path) is not one.
_SECRET_KEY = re.compile(r"pass(word|wd|phrase)?$|pwd|secret|token|credential", re.IGNORECASE)
_KNOWN_SECRETS: set[str] = set()


def is_secret_key(name: str) -> bool:
    """True for a URL query parameter whose value must never be shown (`password`, `sslpassword`...)."""
    return bool(_SECRET_KEY.search(name))


def _secret_values(url: URL) -> list[str]:
    values = [url.password] if url.password else []
    for key, value in url.query.items():
        if is_secret_key(key):
            values.extend([value] if isinstance(value, str) else list(value))
    return [str(v) for v in values if v]


def remember_secrets(url: URL) -> None:
    """Record the URL's passwords (decoded and percent-encoded) for `scrub`."""
    for value in _secret_values(url):
        for form in {value, quote(value, safe=""), quote(value)}:
            if len(form) >= MIN_SCRUBBED_SECRET:
                _KNOWN_SECRETS.add(form)


def scrub(text: str) -> str:
    """`text` with every password seen in a parsed URL replaced by `***` (longest first)."""
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, HIDDEN)
    return text


def _after_scheme(text: str) -> str:
    return text.partition("://")[2]


def _check_port(parsed: URL, option: str) -> None:
    port = parsed.port
    if port is not None and not 1 <= port <= 65535:
        raise ShapePipelineError(f"{option}: port {port} is out of range (1 to 65535)")


def parse_url(url: str | URL, *, option: str = "--database-url") -> URL:
    """Parse a database URL in libpq form (`postgresql://…`) or SQLAlchemy form.

    Every PostgreSQL URL is bound to the psycopg 3 driver, whatever driver it named. Errors
    name `option` and never echo the URL (it may hold a password).
    """
    if isinstance(url, URL):
        parsed = url
    else:
        text = (url or "").strip()
        if not text:
            raise ShapePipelineError(f"{option}: a database URL is required")
        if _after_scheme(text).count("@") > 1:
            # libpq and SQLAlchemy both end the user-info at the first '@': the rest of the
            # password would become the host (and be shown). Refuse rather than guess.
            raise ShapePipelineError(
                f"{option}: the URL holds more than one '@'; write '@' inside a user name, password or parameter as %40"
            )
        try:
            parsed = sa.make_url(text)
        except ArgumentError:
            raise ShapePipelineError(f"{option}: not a database URL (expected {URL_EXAMPLE})") from None
        except ValueError:  # SQLAlchemy's int(port): ':abc', or an unclosed IPv6 bracket
            raise ShapePipelineError(
                f"{option}: malformed host or port (the port must be a number from 1 to 65535; "
                "an IPv6 host goes in brackets: postgresql://user@[::1]:5432/db)"
            ) from None
    _check_port(parsed, option)
    remember_secrets(parsed)
    backend = parsed.get_backend_name()
    if backend in _POSTGRES_SCHEMES:
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise ShapePipelineError(f"{option}: unsupported database '{backend}' (use postgresql or sqlite)")


def _render(url: URL) -> str:
    secret_keys = {key: HIDDEN for key in url.query if is_secret_key(key)}
    shown = url.update_query_dict(secret_keys) if secret_keys else url
    text = shown.render_as_string(hide_password=True)
    return text.replace(quote(HIDDEN, safe=""), HIDDEN)


def _redact_query_text(text: str) -> str:
    """`host/db?password=x&a=b` -> `host/db?password=***&a=b` without parsing the URL."""
    base, sep, query = text.partition("?")
    if not sep:
        return text
    items = []
    for item in query.split("&"):
        key, eq, _ = item.partition("=")
        items.append(f"{key}={HIDDEN}" if eq and is_secret_key(unquote(key)) else item)
    return f"{base}?{'&'.join(items)}"


def _redact_text(text: str) -> str:
    """A URL SQLAlchemy cannot parse: hide all of `://…@` but a plain user name, and secret parameters."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return UNPARSEABLE
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return f"{scheme}://{_redact_query_text(rest)}"
    user, colon, _ = userinfo.partition(":")
    plain = user and not re.search(r"[@/?#\[\]]", user)
    shown = (f"{user}:{HIDDEN}" if colon else user) if plain else HIDDEN
    return f"{scheme}://{shown}@{_redact_query_text(hostpart)}"


def redact(url: str | URL) -> str:
    """The URL as text with every password (user-info and `password=`-like parameters) as `***`.

    Safe for consoles, logs, files and metadata whatever the input: text that SQLAlchemy cannot
    parse faithfully (a bad port, several '@') never shows what lies between `://` and the
    last '@'.
    """
    if isinstance(url, URL):
        return _render(url)
    text = str(url).strip()
    if _after_scheme(text).count("@") <= 1:
        try:
            return _render(sa.make_url(text))
        except ArgumentError:
            return UNPARSEABLE if "://" not in text else _redact_text(text)
        except ValueError:
            pass
    return _redact_text(text)


def is_postgres(target: Engine | Connection | URL) -> bool:
    dialect = target.get_backend_name() if isinstance(target, URL) else target.dialect.name
    return dialect in _POSTGRES_SCHEMES


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL opens (None for an in-memory database)."""
    database = url.database or ""
    if str(url.query.get("uri", "")).lower() in {"true", "1"} and database.startswith("file:"):
        database = database.removeprefix("file:").partition("?")[0]
    if database in {"", ":memory:"} or url.query.get("mode") == "memory":
        return None
    return Path(database)


def require_existing_sqlite(url: URL, *, option: str = "--database-url") -> None:
    """A database that is only read must already exist: SQLite would create an empty file."""
    if url.get_backend_name() != "sqlite":
        return
    path = sqlite_file(url)
    if path is None or path.is_file():
        return
    what = "is a folder, not a SQLite database file" if path.is_dir() else "no such SQLite database file"
    raise ShapePipelineError(f"{option}: {path}: {what}; nothing was created")


def create_engine(
    url: str | URL,
    *,
    application_name: str = "shape-pipeline",
    option: str = "--database-url",
    must_exist: bool = False,
    **kwargs: Any,
) -> Engine:
    """An engine for `url`; PostgreSQL connections carry `application_name`.

    `must_exist=True` (readers: the sampler, the validator) refuses a SQLite file that does not
    exist instead of letting SQLite create an empty one.
    """
    parsed = parse_url(url, option=option)
    if must_exist:
        require_existing_sqlite(parsed, option=option)
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", None) or {})
    if parsed.get_backend_name() == "postgresql":
        connect_args.setdefault("application_name", application_name)
        connect_args.setdefault("connect_timeout", 10)
        parsed, secrets = _without_secret_query(parsed)
        for key, value in secrets.items():
            connect_args.setdefault(key, value)
    return sa.create_engine(parsed, connect_args=connect_args, **kwargs)


def _without_secret_query(url: URL) -> tuple[URL, dict[str, Any]]:
    """(URL without `password=`-like parameters, those parameters): SQLAlchemy's own `str(url)`
    and `repr(engine)` hide the user-info password but print query parameters."""
    secrets = {key: value for key, value in url.query.items() if is_secret_key(key)}
    return (url.difference_update_query(secrets) if secrets else url), secrets


def short_reason(exc: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's boilerplate or any known password."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return scrub(text[0]) if text else type(original).__name__


def check_connection(engine: Engine) -> None:
    """Connect once; raise a one-line `DatabaseError` (no traceback) if that fails."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except (OperationalError, SADBAPIError) as exc:
        raise DatabaseError(f"cannot connect to {redact(engine.url)}: {short_reason(exc)}") from None


def same_database(a: str | URL, b: str | URL) -> bool:
    """True when two URLs point at the same database (host, port and name; drivers ignored)."""
    try:
        ua, ub = parse_url(a), parse_url(b)
    except ShapePipelineError:
        return False
    if ua.get_backend_name() != ub.get_backend_name():
        return False
    if ua.get_backend_name() == "sqlite":
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
