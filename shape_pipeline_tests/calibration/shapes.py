"""Shapes for calibration tests: the seed's example file, and a full shape built by the sampler's
own pure shape builder from synthetic frequency tables (with the privacy rules on)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from shape_pipeline.contracts import ShapeMetrics
from shape_pipeline.sampling.frequencies import Frequency, FrequencyTables
from shape_pipeline.sampling.shape import shape_from_frequencies

SEED_SHAPE = (
    Path(__file__).resolve().parents[2] / "shape_pipeline" / "examples" / "shape-metrics-seed.json"
)
WINDOW_END = datetime(2026, 11, 1, tzinfo=UTC)


def full_shape(seed: int = 3) -> ShapeMetrics:
    """Every metric present, heavy tails included, exported with min_cell_count=10."""
    rng = np.random.default_rng(seed)
    per_conversation = np.ceil(np.exp(rng.normal(3.5, 1.6, 20_000))).astype(np.int64)
    tables = FrequencyTables(
        users_total=5_000,
        conversations_total=per_conversation.size,
        messages_total=int(per_conversation.sum()),
        username_length=Frequency.from_values(np.clip(np.rint(rng.normal(9, 2.5, 5_000)), 3, 30)),
        profile_fields_set={"display_name": 3_000, "avatar_url": 2_000, "bio": 1_000},
        conversation_types={"DIRECT_MESSAGE": 14_000, "GROUP_CHAT": 5_000, "CHANNEL": 1_000},
        messages_per_conversation=Frequency.from_values(per_conversation),
        members_per_conversation={
            "DIRECT_MESSAGE": Frequency.from_values(np.full(14_000, 2)),
            "GROUP_CHAT": Frequency.from_values(rng.integers(3, 40, 5_000)),
            "CHANNEL": Frequency.from_values(np.ceil(np.exp(rng.normal(4, 1.2, 1_000)))),
        },
        content_length=Frequency.from_values(np.ceil(np.exp(rng.normal(3.7, 1.0, 300_000)))),
        message_types={"TEXT": 250_000, "IMAGE": 40_000, "FILE": 9_000, "AUDIO": 990, "VIDEO": 10},
        hour_by_day_of_week=rng.integers(50, 500, (7, 24)),
        gap_seconds=Frequency.from_values(np.floor(np.exp(rng.normal(4, 2.5, 300_000)))),
        messages_per_sender=Frequency.from_values(np.ceil((1 - rng.random(8_000)) ** (-1 / 1.2))),
    )
    return shape_from_frequencies(
        tables,
        window_start=WINDOW_END - timedelta(days=30),
        window_end=WINDOW_END,
        extracted_at=WINDOW_END + timedelta(hours=2),
        min_cell_count=10,
    )
