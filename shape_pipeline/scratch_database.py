"""Throw-away PostgreSQL databases on a server: the tests' and the benchmarks' own.

Each is created under a unique name and dropped `WITH (FORCE)` when done, so a run that was
interrupted leaves at most its own databases behind (named with its prefix).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from shape_pipeline.db import create_engine, parse_url
from shape_pipeline.errors import ShapePipelineError

NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class ScratchServer:
    """A PostgreSQL server (URL of its maintenance database) to make databases on."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)

    def check(self) -> None:
        """Connect once (raises the driver's error when the server cannot be reached)."""
        with self.admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def url_of(self, name: str) -> str:
        return parse_url(self.url).set(database=name).render_as_string(hide_password=False)

    def exists(self, name: str) -> bool:
        with self.admin.connect() as conn:
            found = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        return found is not None

    def create(self, name: str) -> str:
        """Create database `name` (lower-case letters, digits and _); its URL."""
        if not NAME.fullmatch(name):
            raise ShapePipelineError(f"database name {name!r}: lower-case letters, digits and _ only")
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        return self.url_of(name)

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    @contextmanager
    def database(self, prefix: str) -> Iterator[str]:
        """A new database named `prefix_<random>` (its URL), dropped on exit."""
        name = unique_name(prefix)
        url = self.create(name)
        try:
            yield url
        finally:
            self.drop(name)

    def close(self) -> None:
        self.admin.dispose()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}".lower()
