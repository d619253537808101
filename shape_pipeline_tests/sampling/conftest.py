"""Fixtures of the sampler tests: the known dataset in PostgreSQL (canonical and mapped) and SQLite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from shape_pipeline.db import create_engine
from shape_pipeline_tests.sampling import dataset

SALT = "test-salt-0123456789-abcdefghijklmnopqrstuvwxyz"


def _build(url: str, builder: Callable[[sa.Engine], None]) -> str:
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        builder(engine)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def canonical_pg(make_pg_database: Callable[[str], str]) -> str:
    """URL of a PostgreSQL database holding the known dataset in the canonical schema."""
    return _build(make_pg_database("canonical"), dataset.build_canonical)


@pytest.fixture(scope="session")
def mapped_pg(make_pg_database: Callable[[str], str]) -> str:
    """URL of a PostgreSQL database holding the same data in an app's own schema."""
    return _build(make_pg_database("mapped"), dataset.build_mapped)


@pytest.fixture(scope="session")
def mapping_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dataset.write_mapping(tmp_path_factory.mktemp("mapping"))


@pytest.fixture(scope="session")
def canonical_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "production.db"
    return _build(f"sqlite:///{path}", dataset.build_canonical)


@pytest.fixture(scope="session")
def mapped_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "mapped.db"
    return _build(f"sqlite:///{path}", dataset.build_mapped)


@pytest.fixture
def salt_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ANONYMIZATION_SALT", SALT)
    return SALT
