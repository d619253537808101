"""Calibration on a real export: a chat_simulator world loaded into PostgreSQL, sampled by the
sampler, calibrated. Each issue-10 config field is set exactly when its shape block is present,
and every fitted model reproduces the exported percentiles at their levels."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from chat_simulator import build_world
from shape_pipeline.calibration.calibrate import calibrate
from shape_pipeline.contracts import (
    CalibratedConfig,
    DistributionStats,
    PowerLawTailModel,
    QuantileSplineModel,
    ShapeMetrics,
)
from shape_pipeline.distributions import Model, quantile
from shape_pipeline.sampling.export import sample_to_file

END = datetime(2025, 6, 2, tzinfo=UTC)
SALT = "calibration-world-salt-0123456789abcdef"


@pytest.fixture(scope="module")
def exported(
    make_pg_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[ShapeMetrics, CalibratedConfig]:
    world = build_world("canonical", 100_000, "cal", END)
    url = make_pg_database("calibration_world")
    world.load(url)
    folder: Path = tmp_path_factory.mktemp("world")
    result = sample_to_file(
        url, output=folder / "shape.json", as_of=END.date(), window_days=30, salt=SALT,
        audit_log=folder / "audit.jsonl", now=END, privacy="suppression",
    )  # fmt: skip
    return result.shape, calibrate(result.shape, source_path=result.path)


def pairs(shape: ShapeMetrics, config: CalibratedConfig) -> dict[str, tuple[object, object]]:
    """Shape block -> config field, for every skew of issue 10."""
    conv, msg, users = shape.conversations, shape.messages, shape.users
    cg, ug = config.conversation_generation, config.user_generation
    return {
        "users.conversations_per_user": (users.conversations_per_user if users else None, ug.conversations_per_user),
        "conversations.top_sender_share": (conv.top_sender_share, cg.top_sender_share),
        "conversations.lifetime_seconds": (conv.lifetime_seconds, cg.lifetime_seconds),
        "conversations.recency": (conv.recency, cg.recency),
        "conversations.size_by_members": (conv.size_by_members, cg.members_by_size),
        "messages.daily_counts": (msg.daily_counts, config.message_generation.temporal.daily),
    }


def assert_reproduces(name: str, model: Model, stats: DistributionStats) -> None:
    knots = stats.knots()
    got = quantile(model, np.array([p for p, _ in knots]))
    integer = not isinstance(model, QuantileSplineModel) or model.integer
    for (p, q), g in zip(knots, got, strict=True):
        if integer:
            assert g == q, (name, p, q, g)
        else:
            assert abs(g - q) <= 0.01 * q, (name, p, q, g)


def test_each_config_field_is_set_iff_its_block_is_exported(
    exported: tuple[ShapeMetrics, CalibratedConfig],
) -> None:
    shape, config = exported
    warnings = "\n".join(config.calibration_metadata.warnings)
    for field, (block, fitted) in pairs(shape, config).items():
        assert (block is None) == (fitted is None), field
        assert (f"{field} not in shape" in warnings) == (block is None), field
        if isinstance(block, DistributionStats):
            assert_reproduces(field, fitted, block)
    conv, cg = shape.conversations, config.conversation_generation
    if conv.recency is not None:
        total = shape.totals.conversations
        assert cg.recency.active_last_30_days == pytest.approx(min(conv.recency.active_last_30_days / total, 1))
    if conv.size_by_members is not None:
        assert cg.members_by_size.row_edges == conv.size_by_members.row_edges
        assert all(sum(row) == pytest.approx(1, abs=1e-6) for row in cg.members_by_size.weights)
    daily = config.message_generation.temporal.daily
    if daily is not None:
        assert len(daily) == len(shape.messages.daily_counts) and sum(daily) == pytest.approx(1, abs=1e-6)


def test_messages_per_sender_is_the_heavy_tail_through_every_percentile(
    exported: tuple[ShapeMetrics, CalibratedConfig],
) -> None:
    shape, config = exported
    stats = shape.messages.messages_per_sender
    assert stats is not None and len(stats.knots()) >= 5
    model = config.message_generation.messages_per_sender
    assert isinstance(model, PowerLawTailModel) and model.min >= 1
    assert_reproduces("messages_per_sender", model, stats)
    mean = next(e for e in model.fit_errors if e.metric == "mean")
    assert mean.within_goal, mean  # the hottest senders carry the exported mean (a bot's 16k)
    share = config.user_generation.sender_share
    assert share == pytest.approx(min(stats.count / shape.totals.users, 1.0), abs=1e-6)
    assert 0 < share <= 1


def test_members_per_conversation_follow_the_export_for_every_type(
    exported: tuple[ShapeMetrics, CalibratedConfig],
) -> None:
    """The world has one-member DMs (notes to self): the DM model keeps them."""
    shape, config = exported
    members = shape.conversations.members_per_conversation
    assert "DIRECT_MESSAGE" in members and members["DIRECT_MESSAGE"].knots()[0][1] == 1
    for kind, stats in members.items():
        model = config.conversation_generation.members_per_conversation[kind]
        assert_reproduces(kind, model, stats)
        assert model.mean == round(stats.mean, 3), kind  # the generator adds member counts up to it
