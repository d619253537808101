"""Simulated production worlds (canonical, Mattermost, Slack schemas) loaded once per session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
import yaml

from chat_simulator import World, build_world
from shape_pipeline.db import create_engine
from shape_pipeline.mapping import CANONICAL_MAPPING, SchemaMapping

END = datetime(2025, 6, 2, tzinfo=UTC)
MESSAGES = 25_000


@dataclass(frozen=True)
class LoadedWorld:
    world: World
    url: str
    mapping: SchemaMapping
    mapping_path: str | None


def load(make_pg_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, schema: str) -> LoadedWorld:
    world = build_world(schema, MESSAGES, "workload", END)
    url = make_pg_database(f"workload_{schema}")
    world.load(url)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))  # the same statistics every run: stable plans
    engine.dispose()
    if schema == "canonical":
        return LoadedWorld(world, url, CANONICAL_MAPPING, None)
    path = world.write_mapping(tmp_path_factory.mktemp(f"mapping_{schema}") / "mapping.yaml")
    return LoadedWorld(world, url, SchemaMapping.model_validate(yaml.safe_load(world.mapping_yaml or "")), str(path))


@pytest.fixture(scope="session")
def canonical_world(make_pg_database, tmp_path_factory) -> LoadedWorld:
    return load(make_pg_database, tmp_path_factory, "canonical")


@pytest.fixture(scope="session")
def mattermost_world(make_pg_database, tmp_path_factory) -> LoadedWorld:
    return load(make_pg_database, tmp_path_factory, "mattermost")


@pytest.fixture(scope="session")
def slack_world(make_pg_database, tmp_path_factory) -> LoadedWorld:
    return load(make_pg_database, tmp_path_factory, "slack")
