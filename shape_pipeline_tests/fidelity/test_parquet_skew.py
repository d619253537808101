"""The validator's Parquet source computes the skew tables (issue 10) exactly as the sampler's SQL.

One generated dataset written to PostgreSQL, SQLite and Parquet must give identical tables on
every source; a chat_simulator world written in the Parquet layout must give the ground truth
computed from its logical tables with plain Python (the sampler test's independent `truth`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from chat_simulator import build_world
from shape_pipeline.console import silent
from shape_pipeline.db import create_engine
from shape_pipeline.fidelity.parquet_source import frequencies_from_parquet
from shape_pipeline.generation.generate import generate_dataset
from shape_pipeline.mapping import CANONICAL_MAPPING
from shape_pipeline.sampling.extract import extract_frequencies
from shape_pipeline.sampling.frequencies import FrequencyTables
from shape_pipeline_tests.generation.conftest import WINDOW_END, WINDOW_START, make_config
from shape_pipeline_tests.sampling.test_skew_aggregates import (
    WORLD_END,
    WORLD_START,
    grid_cells,
    pairs,
    truth,
)

SKEW_FIELDS = (
    "conversations_per_user",
    "top_sender_permille",
    "lifetime_seconds",
    "active_last_7_days",
    "active_last_30_days",
    "size_by_members",
    "messages_per_day",
)


def skews(f: FrequencyTables) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in SKEW_FIELDS:
        value = getattr(f, name)
        if hasattr(value, "counts") and hasattr(value, "values"):
            value = pairs(value)
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[name] = value
    return out


def from_sql(url: str, start=WINDOW_START, end=WINDOW_END, mapping=CANONICAL_MAPPING) -> FrequencyTables:
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return extract_frequencies(engine, mapping, window_start=start, window_end=end)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def generated(make_pg_database, tmp_path_factory) -> tuple[str, str, Path]:
    """One seed, written to PostgreSQL with Parquet beside it, and to SQLite."""
    folder = tmp_path_factory.mktemp("skew_parquet")
    pg = make_pg_database("skew_generated")
    sqlite = f"sqlite:///{folder / 'generated.db'}"
    config = make_config()
    common = dict(target_messages=8_000, seed="skews", emit=silent)
    generate_dataset(config, database_url=pg, parquet_dir=folder / "parquet", **common)
    generate_dataset(config, database_url=sqlite, **common)
    return pg, sqlite, folder / "parquet"


@pytest.mark.parametrize(
    "window",
    [
        (WINDOW_START, WINDOW_END),
        (WINDOW_START + timedelta(days=3, minutes=7, milliseconds=1), WINDOW_END - timedelta(days=2)),
    ],
    ids=["whole-window", "inner-window-off-the-hour"],
)
def test_parquet_agrees_with_postgres_and_sqlite_on_every_skew(generated, window) -> None:
    pg, sqlite, parquet = generated
    start, end = window
    expected = skews(from_sql(pg, start, end))
    assert expected["top_sender_permille"] and sum(expected["messages_per_day"]) > 1_000
    assert len(expected["messages_per_day"]) == -(-(end - start) // timedelta(days=1))
    assert skews(frequencies_from_parquet(parquet, window_start=start, window_end=end)) == expected
    assert skews(from_sql(sqlite, start, end)) == expected


def world_to_parquet(world, folder: Path) -> Path:
    """The world's logical tables in the agreed layout (canonical names, microsecond UTC times)."""
    us = pa.timestamp("us", tz="UTC")
    logical = world.logical
    tables = {
        "users": logical.users.select(["id", "username", "created_at"]),
        "conversations": pa.table(
            {
                "id": logical.conversations["id"],
                "type": logical.conversations["kind"],
                "created_at": logical.conversations["created_at"],
            }
        ),
        "members": logical.members.select(["conversation_id", "user_id"]),
        "messages": pa.table(
            {
                "id": logical.messages["id"],
                "conversation_id": logical.messages["conversation_id"],
                "sender_id": logical.messages["sender_id"],
                "type": logical.messages["kind"],
                "content": logical.messages["content"],
                "created_at": logical.messages["created_at"],
            }
        ),
    }
    for name, table in tables.items():
        if "created_at" in table.column_names:
            index = table.column_names.index("created_at")
            table = table.set_column(index, "created_at", table["created_at"].cast(us))
        (folder / name).mkdir(parents=True)
        pq.write_table(table, folder / name / "part-00000.parquet")
    return folder


def test_a_simulated_world_in_parquet_gives_its_ground_truth(tmp_path: Path) -> None:
    world = build_world("canonical", 5_000, "parquet-skews", WORLD_END)
    f = frequencies_from_parquet(world_to_parquet(world, tmp_path), window_start=WORLD_START, window_end=WORLD_END)
    expected = truth(world, WORLD_START, WORLD_END)
    assert pairs(f.top_sender_permille) == expected["top"]
    assert pairs(f.lifetime_seconds) == expected["life"]
    assert (f.active_last_7_days, f.active_last_30_days) == expected["recent"]
    assert grid_cells(f.size_by_members) == expected["grid"]
    assert pairs(f.conversations_per_user) == expected["per_user"]
    assert f.messages_per_day.tolist() == expected["days"]
    assert len(expected["top"]) > 5
