"""Content length, categorical shares, temporal weights, username length, and a full shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shape_pipeline.calibration.calibrate import calibrate
from shape_pipeline.calibration.categorical import normalize
from shape_pipeline.calibration.content_length import fit_content_length, fit_mu_sigma
from shape_pipeline.calibration.fit_report import GOAL, model_mean, named_models
from shape_pipeline.calibration.spline_fit import fit_spline
from shape_pipeline.calibration.temporal import fit_temporal
from shape_pipeline.calibration.users import fit_username_length
from shape_pipeline.contracts import DistributionStats, Histogram, MessageMetrics
from shape_pipeline.distributions import discrete_percentile, quantile, sample
from shape_pipeline.sampling.shape import percentile_from_frequency  # noqa: F401 - interface exists

from .shapes import full_shape


def test_log_normal_from_two_targets_is_exact() -> None:
    mu, sigma = fit_mu_sigma(DistributionStats(mean=85, median=42), fallback_sigma=1.0)
    assert sigma == pytest.approx(math.sqrt(2 * math.log(85 / 42)), rel=1e-4)  # methods.md: 1.19
    assert mu == pytest.approx(math.log(42), rel=1e-6)
    mu, sigma = fit_mu_sigma(DistributionStats(median=42, p95=280), fallback_sigma=1.0)
    assert sigma == pytest.approx((math.log(280) - math.log(42)) / 1.6448536, rel=1e-4)


def test_log_normal_three_targets_reports_three_errors() -> None:
    model = fit_content_length(DistributionStats(mean=85, median=42, p95=280), fallback_sigma=1.0)
    pure = {e.metric: e for e in model.fit_errors if e.metric.startswith("log_normal.")}
    assert set(pure) == {"log_normal.mean", "log_normal.median", "log_normal.p95"}
    # least squares spreads the misfit: each below what mean+median alone give for p95 (6%)
    assert all(abs(e.relative_error) < 0.06 for e in pure.values())
    assert (model.mean, model.median, model.p95) == (85, 42, 280)  # the seed's keys


def test_mean_only_uses_fallback_sigma() -> None:
    model = fit_content_length(DistributionStats(mean=85), fallback_sigma=1.1874)
    assert model.sigma == pytest.approx(1.1874) and model.knots is None
    assert math.exp(model.mu + model.sigma**2 / 2) == pytest.approx(85, rel=1e-6)


def test_histogram_corrects_the_content_body() -> None:
    rng = np.random.default_rng(5)
    lengths = np.ceil(rng.gamma(1.5, 40, 200_000))  # not log-normal
    edges = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
    counts = np.histogram(lengths, bins=edges)[0].tolist()
    pcts = {k: discrete_percentile(lengths, p) for k, p in [("p10", 0.1), ("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]}
    stats = DistributionStats(mean=float(lengths.mean()), **pcts, histogram=Histogram(edges=edges, counts=counts))
    model = fit_content_length(stats, fallback_sigma=1.0)
    assert model.knots is not None and len(model.knots) > 4
    draws = sample(model, np.random.default_rng(6), 300_000)
    for key, p in [("p10", 0.1), ("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]:
        assert abs(discrete_percentile(draws, p) - pcts[key]) / pcts[key] <= GOAL
    assert abs(draws.mean() - lengths.mean()) / lengths.mean() <= GOAL


def test_normalize_keeps_zero_and_merged_categories() -> None:
    shares = normalize({"DIRECT_MESSAGE": 700, "OTHER": 300}, ("DIRECT_MESSAGE", "GROUP_CHAT", "CHANNEL"))
    assert shares == {"DIRECT_MESSAGE": 0.7, "GROUP_CHAT": 0.0, "CHANNEL": 0.0, "OTHER": 0.3}
    thirds = normalize({"A": 1, "B": 1, "C": 1})
    assert sum(thirds.values()) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError):
        normalize({"A": 0})


def test_temporal_from_the_grid_margins() -> None:
    grid = np.arange(1, 7 * 24 + 1).reshape(7, 24)
    weights, fallbacks = fit_temporal(MessageMetrics(hour_by_day_of_week=grid.tolist()))
    assert fallbacks == []
    assert weights.hourly == pytest.approx((grid.sum(axis=0) / grid.sum()).tolist(), abs=1e-8)
    assert weights.day_of_week == pytest.approx((grid.sum(axis=1) / grid.sum()).tolist(), abs=1e-8)
    assert weights.hour_by_day_of_week is not None
    assert weights.hour_by_day_of_week[6][23] == pytest.approx(grid[6, 23] / grid.sum(), abs=1e-8)


def test_username_histogram_knots_keep_the_mean() -> None:
    values = np.clip(np.rint(np.random.default_rng(8).normal(9, 2.5, 50_000)), 3, 30)
    edges = list(range(3, 32))
    stats = DistributionStats(
        mean=float(values.mean()), stddev=float(values.std()), p50=discrete_percentile(values, 0.5),
        histogram=Histogram(edges=edges, counts=np.histogram(values, bins=edges)[0].tolist()),
    )  # fmt: skip
    model, defaulted = fit_username_length(stats)
    assert not defaulted and model.knots
    draws = sample(model, np.random.default_rng(9), 200_000)
    assert abs(draws.mean() - values.mean()) < 0.05
    assert (model.min, model.max) == (3, 30)


def test_full_shape_has_no_fallback_and_every_percentile_on_goal() -> None:
    shape = full_shape()
    config = calibrate(shape)
    assert config.calibration_metadata.warnings == []
    assert config.totals == shape.totals
    assert config.message_generation.temporal.hour_by_day_of_week is not None
    assert config.user_generation.profile_field_probabilities == shape.users.profile_completeness
    checked = 0
    for name, model in named_models(config):
        for error in model.fit_errors:
            if error.metric.startswith("p"):
                assert error.within_goal, (name, error)
                checked += 1
    assert checked > 30
    msg = config.message_generation
    for model, stats in (
        (msg.inter_message_gap_seconds, shape.messages.inter_message_gap_seconds),
        (msg.messages_per_sender, shape.messages.messages_per_sender),
    ):
        draws = sample(model, np.random.default_rng(11), 300_000)
        for p, q in stats.knots():
            if q >= 5:  # small integers: one step is more than 5%
                assert abs(discrete_percentile(draws, p) - q) / q <= GOAL
    mpc = config.conversation_generation.messages_per_conversation
    assert quantile(mpc, np.array([0.5]))[0] == shape.conversations.messages_per_conversation_percentiles.p50


def test_spline_tail_alpha_is_matched_to_an_exported_mean() -> None:
    base = {"p50": 6, "p90": 75, "p99": 700, "max": 20_000}
    estimate = fit_spline(DistributionStats(**base), natural_min=1, heavy_tail=True)
    target = 1.3 * estimate.mean
    matched = fit_spline(DistributionStats(**base, mean=target), natural_min=1, heavy_tail=True)
    assert matched.tail_alpha < estimate.tail_alpha  # a heavier tail carries the larger mean
    assert abs(model_mean(matched) - target) / target <= GOAL
    assert "matched to the mean" in matched.source
    got = quantile(matched, np.array([0.5, 0.9, 0.99]))
    assert got.tolist() == [6, 75, 700]  # percentiles untouched


def test_all_suppressed_cells_fall_back_with_a_warning() -> None:
    shape = full_shape()
    shape.messages.hourly_counts = [0] * 24
    shape.messages.hour_by_day_of_week = [[0] * 24 for _ in range(7)]
    shape.messages.type_distribution = {"TEXT": 0, "IMAGE": 0}
    config = calibrate(shape)
    warnings = "\n".join(config.calibration_metadata.warnings)
    assert "messages.hourly_counts not in shape" in warnings
    assert "messages.type_distribution has no mass" in warnings
    assert config.message_generation.temporal.hour_by_day_of_week is None
    assert config.message_generation.type_distribution["TEXT"] == 0.85
    # the day-of-week counts were exported and are used as they are
    days = np.array(shape.messages.day_of_week_counts, dtype=float)
    assert config.message_generation.temporal.day_of_week == pytest.approx((days / days.sum()).tolist(), abs=1e-8)
