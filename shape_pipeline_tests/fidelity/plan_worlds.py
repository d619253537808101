"""Simulated worlds in PostgreSQL for the Phase 2 tests, and a shape holding production's plans.

`load_world` puts a canonical `chat_simulator` world into a fresh database and ends, as the
generator does, with VACUUM ANALYZE (after optional SQL that changes its layout or indexes).
`phase_two_shape` reads a database's plans for the default workload and its physical layout
the way the sampler does, into a shape with only those blocks and the window.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from chat_simulator import build_world
from shape_pipeline.contracts import ShapeMetrics
from shape_pipeline.db import create_engine
from shape_pipeline.fidelity.database_source import read_database_findings
from shape_pipeline.mapping import load_mapping
from shape_pipeline.workload.spec import load_workload

END = datetime(2025, 6, 2, tzinfo=UTC)
WINDOW_DAYS = 30
WORLD_MESSAGES = 30_000


def load_world(
    make_pg_database: Callable[[str], str],
    label: str,
    seed: str,
    *,
    messages: int = WORLD_MESSAGES,
    after: str | None = None,
) -> str:
    """A fresh database holding one canonical world, analyzed; returns its URL."""
    url = make_pg_database(label)
    build_world("canonical", messages, seed, END).load(url)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if after:
                conn.execute(sa.text(after))
            conn.execute(sa.text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    return url


def phase_two_shape(url: str) -> ShapeMetrics:
    """A shape of the world at `url` with only its window, query plans and physical layout."""
    found = read_database_findings(
        url, load_mapping(None), workload=load_workload(None), want_layout=True, window_end=END
    )
    return ShapeMetrics(
        extracted_at=END,
        sample_window_days=WINDOW_DAYS,
        window_start=END - timedelta(days=WINDOW_DAYS),
        window_end=END,
        query_plans=found.plans,
        physical_layout=found.layout,
    )
