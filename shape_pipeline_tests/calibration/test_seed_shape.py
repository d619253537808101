"""The seed's own example shape: fitted, sampled a million times, every percentile within 5%."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shape_pipeline.calibration.calibrate import calibrate, load_shape
from shape_pipeline.contracts import CalibratedConfig
from shape_pipeline.distributions import discrete_percentile, sample

from .shapes import SEED_SHAPE

DRAWS = 1_000_000
SEED_MPC = {0.50: 45, 0.75: 120, 0.90: 450, 0.95: 1200, 0.99: 5000}


@pytest.fixture(scope="module")
def config() -> CalibratedConfig:
    return calibrate(load_shape(SEED_SHAPE), source_path=SEED_SHAPE)


def test_messages_per_conversation_reproduces_seed_percentiles(config: CalibratedConfig) -> None:
    model = config.conversation_generation.messages_per_conversation
    draws = sample(model, np.random.default_rng(20251022), DRAWS)
    for p, target in SEED_MPC.items():
        got = discrete_percentile(draws, p)
        assert abs(got - target) / target <= 0.05, (p, got, target)
    assert draws.min() >= 1 and draws.max() == 15000  # the seed's range [1, 15000]


def test_content_length_reproduces_seed_mean_median_p95(config: CalibratedConfig) -> None:
    model = config.message_generation.content_length
    draws = sample(model, np.random.default_rng(42), DRAWS)
    assert abs(discrete_percentile(draws, 0.5) - 42) / 42 <= 0.05
    assert abs(discrete_percentile(draws, 0.95) - 280) / 280 <= 0.05
    assert abs(draws.mean() - 85) / 85 <= 0.05


def test_model_errors_are_reported_and_within_goal(config: CalibratedConfig) -> None:
    mpc = config.conversation_generation.messages_per_conversation
    assert [e.metric for e in mpc.fit_errors] == ["p50", "p75", "p90", "p95", "p99"]
    assert all(e.within_goal and abs(e.relative_error) < 1e-3 for e in mpc.fit_errors)
    content = config.message_generation.content_length
    metrics = {e.metric for e in content.fit_errors}
    assert {
        "p50",
        "p95",
        "mean",
        "log_normal.mean",
        "log_normal.median",
        "log_normal.p95",
    } <= metrics


def test_alpha_is_estimated_from_the_two_tail_percentiles(config: CalibratedConfig) -> None:
    mpc = config.conversation_generation.messages_per_conversation
    expected = 1 + math.log(0.05 / 0.01) / math.log(5000 / 1200)  # methods.md: 2.13
    assert mpc.alpha == pytest.approx(expected, abs=1e-3)  # knots sit mid-step (q - 0.5)
    assert mpc.tail_start == (0.95, 1199.5)
    assert (mpc.min, mpc.max, mpc.p50, mpc.p90, mpc.p99) == (1, 15000, 45, 450, 5000)


def test_seed_keys_and_normalized_types(config: CalibratedConfig) -> None:
    conv = config.conversation_generation
    assert conv.type_distribution == {
        "DIRECT_MESSAGE": 0.78125,
        "GROUP_CHAT": 0.21875,
        "CHANNEL": 0.0,
    }
    assert config.message_generation.type_distribution == {
        "TEXT": 0.85, "IMAGE": 0.1, "FILE": 0.03, "AUDIO": 0.01, "VIDEO": 0.01,
    }  # fmt: skip
    meta = config.calibration_metadata
    assert meta.source_shape_file == "2025-10-22T14:30:00Z"
    assert meta.production_sample_window_days == 30
    assert meta.window_end == load_shape(SEED_SHAPE).extracted_at
    assert (meta.window_end - meta.window_start).days == 30


def test_every_fallback_is_a_warning(config: CalibratedConfig) -> None:
    text = "\n".join(config.calibration_metadata.warnings)
    for field in (
        "window_end",
        "totals",
        "members_per_conversation",
        "messages.type_distribution",
        "hourly_counts",
        "day_of_week_counts",
        "inter_message_gap_seconds",
        "messages_per_sender",
        "username_length",
        "profile_completeness",
    ):
        assert field in text, field
    # present in the seed form, so no fallback
    assert "messages_per_conversation_percentiles" not in text
    assert "content_length_stats" not in text
    assert "conversations.type_distribution" not in text


def test_documented_defaults(config: CalibratedConfig) -> None:
    assert config.totals.model_dump() == {
        "users": 50_000,
        "conversations": 16_000,
        "messages": 1_200_000,
    }
    members = config.conversation_generation.members_per_conversation
    dm = sample(members["DIRECT_MESSAGE"], np.random.default_rng(1), 10_000)
    assert set(dm.tolist()) == {2}
    group = sample(members["GROUP_CHAT"], np.random.default_rng(1), 10_000)
    assert group.min() >= 3
    name = config.user_generation.username_length
    draws = sample(name, np.random.default_rng(2), 200_000)
    assert abs(draws.mean() - 8.5) < 0.05 and abs(draws.std() - 2.3) < 0.1
    temporal = config.message_generation.temporal
    assert len(temporal.hourly) == 24 and abs(sum(temporal.hourly) - 1) < 1e-6
    assert temporal.hourly[20] > 5 * temporal.hourly[4]  # diurnal: evening peak, night trough
    assert temporal.day_of_week[6] < temporal.day_of_week[2]  # quieter weekend
    assert temporal.hour_by_day_of_week is None
    gaps = config.message_generation.inter_message_gap_seconds
    assert gaps.tail_alpha is not None and gaps.max == 30 * 86_400
