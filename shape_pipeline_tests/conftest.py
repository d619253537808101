"""Test fixtures: a real PostgreSQL, one throw-away database per test session.

The server comes from `SHAPE_PIPELINE_TEST_DATABASE_URL` (default
`postgresql://postgres@127.0.0.1:5432/postgres`). A server that cannot be reached fails the
session; it is never skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from shape_pipeline.scratch_database import ScratchServer
from shape_pipeline.settings import scratch_server_url

ADMIN_URL = scratch_server_url()


@pytest.fixture(scope="session")
def make_pg_database() -> Iterator[Callable[[str], str]]:
    """Factory: `make_pg_database("label")` creates a fresh database and returns its URL.

    Every database created this way is dropped when the test session ends.
    """
    server = ScratchServer(ADMIN_URL)
    try:
        server.check()
    except Exception as exc:  # noqa: BLE001 - turn into a clear failure
        pytest.fail(f"PostgreSQL test server not reachable at {ADMIN_URL}: {exc}", pytrace=False)
    session_id = uuid.uuid4().hex[:8]
    created: list[str] = []

    def make(label: str = "db") -> str:
        name = f"sp_test_{session_id}_{label}_{len(created)}".lower()
        url = server.create(name)
        created.append(name)
        return url

    yield make
    for name in created:
        server.drop(name)
    server.close()


@pytest.fixture(scope="session")
def pg_url(make_pg_database: Callable[[str], str]) -> str:
    """The session's own throw-away PostgreSQL database (URL in SQLAlchemy form)."""
    return make_pg_database("session")
