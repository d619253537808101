"""A calibrated config built from the contract models (independent of the calibrator)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shape_pipeline.contracts import (
    CalibratedConfig,
    CalibrationMetadata,
    ConversationGeneration,
    LogNormalModel,
    MessageGeneration,
    NormalModel,
    PowerLawTailModel,
    QuantileSplineModel,
    TemporalWeights,
    Totals,
    UserGeneration,
)

WINDOW_START = datetime(2025, 9, 22, tzinfo=UTC)
WINDOW_END = datetime(2025, 10, 22, tzinfo=UTC)


def _normalized(values: list[float]) -> list[float]:
    total = sum(values)
    return [v / total for v in values]


def make_config() -> CalibratedConfig:
    """Seed-like numbers: p50 45 messages per conversation with a power-law tail, 78% DMs."""
    hourly = _normalized([2, 1, 1, 1, 1, 2, 4, 7, 9, 10, 10, 10, 11, 10, 10, 10, 10, 11, 12, 12, 10, 8, 5, 3])
    day = _normalized([16, 16, 16, 16, 15, 11, 10])
    return CalibratedConfig(
        calibration_metadata=CalibrationMetadata(
            source_shape_file="2025-10-22T14:30:00Z",
            calibrated_at=datetime(2025, 10, 22, 15, tzinfo=UTC),
            production_sample_window_days=30,
            window_start=WINDOW_START,
            window_end=WINDOW_END,
        ),
        totals=Totals(users=50_000, conversations=16_000, messages=1_200_000),
        user_generation=UserGeneration(
            username_length=NormalModel(mean=8.5, stddev=2.3, min=3, max=30),
            profile_field_probabilities={"display_name": 0.7, "avatar_url": 0.4, "bio": 0.2},
        ),
        conversation_generation=ConversationGeneration(
            type_distribution={"DIRECT_MESSAGE": 0.7813, "GROUP_CHAT": 0.2187, "CHANNEL": 0.0},
            messages_per_conversation=PowerLawTailModel(
                alpha=2.13,
                min=1,
                max=15_000,
                body_knots=[(0.5, 45.0), (0.75, 120.0), (0.9, 450.0), (0.95, 1200.0)],
                tail_start=(0.95, 1200.0),
            ),
            members_per_conversation={
                "GROUP_CHAT": QuantileSplineModel(knots=[(0.5, 6.0), (0.9, 15.0), (0.99, 60.0)], min=3, max=300),
            },
        ),
        message_generation=MessageGeneration(
            content_length=LogNormalModel(
                mean=85,
                median=42,
                p95=280,
                mu=3.738,
                sigma=1.19,
                min=1,
                max=4000,
                knots=[(0.5, 42.0), (0.95, 280.0)],
            ),
            type_distribution={"TEXT": 0.85, "IMAGE": 0.1, "FILE": 0.03, "AUDIO": 0.01, "VIDEO": 0.01},
            temporal=TemporalWeights(hourly=hourly, day_of_week=day),
            inter_message_gap_seconds=QuantileSplineModel(
                knots=[(0.25, 4.0), (0.5, 25.0), (0.75, 120.0), (0.9, 900.0), (0.99, 21_600.0)],
                min=0,
                max=30 * 86_400,
            ),
            messages_per_sender=QuantileSplineModel(
                knots=[(0.5, 12.0), (0.9, 150.0), (0.99, 2000.0)],
                min=1,
                max=100_000,
            ),
        ),
    )


@pytest.fixture(scope="session")
def config() -> CalibratedConfig:
    return make_config()
