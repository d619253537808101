"""An independent, agent-based simulator of a production chat database (test worlds, demo).

It imports nothing from the project it tests: the worlds it makes are what a validator built by the
project is tested against, so they must not share its generator's assumptions.

    world = build_world("mattermost", messages=200_000, seed="w1", end=datetime(2025, 6, 1, tzinfo=UTC))
    world.load("postgresql://postgres@127.0.0.1/prod")   # DDL + COPY in one transaction
    world.write_mapping("mapping.yaml")                    # the YAML a user would write
    world.logical.messages                                 # ground truth (Arrow)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from chat_simulator import seeds
from chat_simulator.load import TargetNotEmpty, load_tables
from chat_simulator.schemas import SCHEMAS, Schema, schema
from chat_simulator.world import LogicalWorld, simulate

__all__ = ["SCHEMAS", "LogicalWorld", "TargetNotEmpty", "World", "build_world", "load_world", "simulate"]


@dataclass(frozen=True)
class World:
    """A simulated world rendered into one schema: physical rows in load order, plus the truth."""

    schema: Schema
    logical: LogicalWorld
    tables: dict[str, pa.Table]

    @property
    def mapping_yaml(self) -> str | None:
        return self.schema.mapping_yaml

    def write_mapping(self, path: str | Path) -> Path:
        """Write the schema's mapping YAML to `path` (what a user passes as --mapping)."""
        target = Path(path)
        target.write_text(self.schema.mapping_yaml or "", encoding="utf-8")
        return target

    def load(self, url: str, *, replace: bool = False) -> dict[str, int]:
        """Create this schema's tables at `url` and fill them; returns rows per table."""
        return load_world(url, self, replace=replace)


def build_world(schema_name: str, messages: int, seed: str | int, end: datetime) -> World:
    """Simulate about `messages` messages in the six weeks before `end` and render them, the
    physical rows in the app's insert order (`LogicalWorld.insert_order`)."""
    chosen = schema(schema_name)
    logical = simulate(messages, seed, end)
    rendered = chosen.render(logical, seeds.stream(seed, "render"))
    return World(chosen, logical, in_insert_order(logical, rendered))


def in_insert_order(logical: LogicalWorld, rendered: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Reorder rendered tables (users, conversations, members, messages in that order, row i
    of each rendering logical row i) into the order the app would have inserted them."""
    orders = logical.insert_order()
    out: dict[str, pa.Table] = {}
    for (name, rows), (entity, order) in zip(rendered.items(), orders.items(), strict=True):
        if rows.num_rows != order.size:
            raise ValueError(f"{name}: {rows.num_rows} rows rendered for {order.size} logical {entity}")
        out[name] = rows.take(pa.array(order))
    return out


def load_world(url: str, world: World, *, replace: bool = False) -> dict[str, int]:
    """Load `world` into the database at `url` (PostgreSQL; SQLite for schemas that allow it)."""
    backend = url.split(":", 1)[0].split("+", 1)[0]
    dialect = "postgresql" if backend in ("postgresql", "postgres") else backend
    if dialect not in world.schema.dialects:
        raise ValueError(f"the {world.schema.name} schema loads into {', '.join(world.schema.dialects)}, not {dialect}")
    return load_tables(url, world.schema.metadata(), world.tables, replace=replace)
