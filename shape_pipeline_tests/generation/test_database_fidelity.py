"""Fidelity measured in the database, not on the model: percentiles and rare categories read
back with SQL from a generated PostgreSQL dataset, and the verdict near the tolerance, end to end.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from shape_pipeline.calibration.calibrate import calibrate
from shape_pipeline.console import silent
from shape_pipeline.contracts import CalibratedConfig, ShapeMetrics
from shape_pipeline.db import create_engine
from shape_pipeline.fidelity.validate import validate
from shape_pipeline.files import load_json_model
from shape_pipeline.generation.generate import generate_dataset
from shape_pipeline_tests.calibration.shapes import SEED_SHAPE

DEV_BAND = 500_000
LEVELS = (0.5, 0.75, 0.9, 0.95, 0.99)


@pytest.fixture(scope="module")
def seed_shape() -> ShapeMetrics:
    return load_json_model(SEED_SHAPE, ShapeMetrics, what="shape metrics")


@pytest.fixture(scope="module")
def seed_config(seed_shape: ShapeMetrics) -> CalibratedConfig:
    return calibrate(seed_shape)


def scalars(url: str, sql: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).one())
    finally:
        engine.dispose()


def percentiles_sql(expression: str, source: str) -> str:
    cols = ", ".join(f"percentile_disc({p}) WITHIN GROUP (ORDER BY {expression})" for p in LEVELS)
    return f"SELECT {cols} FROM {source}"


@pytest.fixture(scope="module")
def dev_band_database(make_pg_database: Callable[[str], str], seed_config: CalibratedConfig) -> str:
    url = make_pg_database("dev_band")
    generate_dataset(seed_config, target_messages=DEV_BAND, seed="database-fidelity", database_url=url, emit=silent)
    return url


def test_messages_per_conversation_in_the_database_at_the_dev_band(
    dev_band_database: str, seed_shape: ShapeMetrics
) -> None:
    """p50-p95 within 5% and p99 within 10% of the seed's, counted by SQL (the tail included)."""
    got = scalars(
        dev_band_database, percentiles_sql("n", "(SELECT count(*) AS n FROM messages GROUP BY conversation_id) c")
    )
    exported = seed_shape.conversations.messages_per_conversation_percentiles
    assert exported is not None
    targets = [exported.p50, exported.p75, exported.p90, exported.p95, exported.p99]
    for level, value, target in zip(LEVELS, got, targets, strict=True):
        bound = 0.10 if level == 0.99 else 0.05
        assert abs(value / target - 1) <= bound, (level, value, target)


def test_content_length_and_rare_types_in_the_database(
    dev_band_database: str, seed_shape: ShapeMetrics, seed_config: CalibratedConfig
) -> None:
    """Content length median and p95 within 5%; AUDIO and VIDEO (1% each) within 15% of their
    own share (a relative bound: an absolute one would pass a halved category)."""
    median, _, _, p95, _ = scalars(dev_band_database, percentiles_sql("length(content)", "messages"))
    stats = seed_shape.messages.content_length_stats
    assert stats is not None and stats.median and stats.p95
    assert abs(median / stats.median - 1) <= 0.05 and abs(p95 / stats.p95 - 1) <= 0.05
    audio, video, total = scalars(
        dev_band_database,
        "SELECT count(*) FILTER (WHERE type = 'AUDIO'), count(*) FILTER (WHERE type = 'VIDEO'), count(*) FROM messages",
    )
    expected = seed_config.message_generation.type_distribution  # the seed's published shares
    assert abs(audio / total / expected["AUDIO"] - 1) <= 0.15
    assert abs(video / total / expected["VIDEO"] - 1) <= 0.15


def scaled_conversations(config: CalibratedConfig, factor: float) -> CalibratedConfig:
    """Every messages-per-conversation value times `factor` (the whole distribution shifted)."""
    model = config.conversation_generation.messages_per_conversation
    moved = model.model_copy(
        update={
            "body_knots": [(p, q * factor) for p, q in model.body_knots],
            "tail_start": (model.tail_start[0], model.tail_start[1] * factor) if model.tail_start else None,
            "max": int(model.max * factor),
            "min": max(1, int(model.min * factor)),
        }
    )
    conv = config.conversation_generation.model_copy(update={"messages_per_conversation": moved})
    return config.model_copy(update={"conversation_generation": conv})


@pytest.mark.parametrize(
    ("factor", "verdicts"),
    [(1.0, {"PASS"}), (1.10, {"PASS", "WARNING"}), (1.30, {"FAIL"})],
)
def test_the_verdict_near_the_tolerance_end_to_end(
    factor: float,
    verdicts: set[str],
    make_pg_database: Callable[[str], str],
    seed_shape: ShapeMetrics,
    seed_config: CalibratedConfig,
) -> None:
    """Generate into PostgreSQL from a config shifted by `factor`, validate against the shape: a
    faithful dataset passes, a 10% shift is never a FAIL at tolerance 0.15, a 30% one always is."""
    url = make_pg_database(f"near_tolerance_{int(factor * 100)}")
    config = scaled_conversations(seed_config, factor)
    generate_dataset(config, target_messages=300_000, seed="near-tolerance", database_url=url, emit=silent)
    report = validate(seed_shape, database_url=url)
    result = report.tests["messages_per_conversation"]
    assert result.verdict in verdicts, (factor, result.reason)
    assert result.max_percentile_error is not None
    assert abs(result.max_percentile_error - abs(factor - 1)) <= 0.05  # the plain relative error
