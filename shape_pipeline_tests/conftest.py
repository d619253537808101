"""Test fixtures: a real PostgreSQL, one throw-away database per test session.

The server comes from `SHAPE_PIPELINE_TEST_DATABASE_URL` (default
`postgresql://postgres@127.0.0.1:5432/postgres`). A server that cannot be reached fails the
session; it is never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from shape_pipeline.db import create_engine, parse_url

ADMIN_URL = os.environ.get(
    "SHAPE_PIPELINE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin_engine() -> sa.Engine:
    return create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


@pytest.fixture(scope="session")
def make_pg_database() -> Iterator[Callable[[str], str]]:
    """Factory: `make_pg_database("label")` creates a fresh database and returns its URL.

    Every database created this way is dropped when the test session ends.
    """
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - turn into a clear failure
        pytest.fail(f"PostgreSQL test server not reachable at {ADMIN_URL}: {exc}", pytrace=False)
    session_id = uuid.uuid4().hex[:8]
    created: list[str] = []

    def make(label: str = "db") -> str:
        name = f"sp_test_{session_id}_{label}_{len(created)}".lower()
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return parse_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_url(make_pg_database: Callable[[str], str]) -> str:
    """The session's own throw-away PostgreSQL database (URL in SQLAlchemy form)."""
    return make_pg_database("session")
