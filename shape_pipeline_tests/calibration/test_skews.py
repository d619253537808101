"""Issue 10's skews: messages per sender as a heavy tail, sender share, conversations per user,
top sender share, lifetime, recency, members by size, the daily trend, one-member DMs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shape_pipeline.calibration import defaults
from shape_pipeline.calibration.activity import (
    fit_conversations_per_user,
    fit_messages_per_sender,
    sender_share,
)
from shape_pipeline.calibration.calibrate import calibrate, calibrate_file, load_shape
from shape_pipeline.calibration.conversation_skews import (
    fit_lifetime,
    fit_top_sender_share,
    recency_shares,
)
from shape_pipeline.calibration.fit_report import named_models
from shape_pipeline.calibration.joint import fit_members_by_size, nearest_filled
from shape_pipeline.calibration.shape_validation import MalformedMetric
from shape_pipeline.calibration.trend import daily_weights, fill_suppressed
from shape_pipeline.contracts import (
    CalibratedConfig,
    DistributionStats,
    Histogram,
    Histogram2D,
    PowerLawTailModel,
    QuantileSplineModel,
    Recency,
    ShapeMetrics,
    Totals,
)
from shape_pipeline.distributions import Model, discrete_percentile, quantile
from shape_pipeline.files import write_model_atomic
from shape_pipeline.sampling.frequencies import Frequency
from shape_pipeline.sampling.privacy import PrivacyTally
from shape_pipeline.sampling.shape import distribution_stats

from .shapes import SEED_SHAPE, WINDOW_DAYS, full_shape

DRAWS = 1_000_000
LEVELS = (0.5, 0.75, 0.9, 0.95, 0.99)


@pytest.fixture(scope="module")
def shape() -> ShapeMetrics:
    return full_shape()


@pytest.fixture(scope="module")
def config(shape: ShapeMetrics) -> CalibratedConfig:
    return calibrate(shape)


def fitted_pairs(shape: ShapeMetrics, config: CalibratedConfig) -> dict[str, tuple[Model, DistributionStats]]:
    """Each new numeric model with the stats block it was fitted to."""
    conv, users = config.conversation_generation, config.user_generation
    return {
        "messages_per_sender": (config.message_generation.messages_per_sender, shape.messages.messages_per_sender),
        "conversations_per_user": (users.conversations_per_user, shape.users.conversations_per_user),
        "top_sender_share": (conv.top_sender_share, shape.conversations.top_sender_share),
        "lifetime_seconds": (conv.lifetime_seconds, shape.conversations.lifetime_seconds),
    }


def stratified(n: int, seed: int) -> np.ndarray:
    """u_i = (i + U_i) / n, shuffled (methods.md: realized quantiles within one order statistic)."""
    rng = np.random.default_rng(seed)
    return rng.permutation((np.arange(n) + rng.random(n)) / n)


def is_integer(model: Model) -> bool:
    return not isinstance(model, QuantileSplineModel) or model.integer


def test_every_new_field_is_fitted_from_its_block(shape: ShapeMetrics, config: CalibratedConfig) -> None:
    assert config.calibration_metadata.warnings == []
    conv, users, temporal = (
        config.conversation_generation, config.user_generation, config.message_generation.temporal,
    )  # fmt: skip
    assert isinstance(config.message_generation.messages_per_sender, PowerLawTailModel)
    assert config.message_generation.messages_per_sender.min == 1  # every sender wrote a message
    assert users.sender_share == pytest.approx(4_000 / 5_000)
    assert users.conversations_per_user is not None and users.conversations_per_user.tail_alpha
    assert conv.top_sender_share is not None and not conv.top_sender_share.integer
    assert conv.top_sender_share.min > 0 and conv.top_sender_share.max == 1.0
    assert conv.lifetime_seconds is not None and conv.lifetime_seconds.max <= WINDOW_DAYS * 86_400
    assert conv.recency is not None
    assert (conv.recency.active_last_7_days, conv.recency.active_last_30_days) == pytest.approx((0.38, 1.0))
    grid = conv.members_by_size
    assert grid is not None
    assert grid.row_edges == shape.conversations.size_by_members.row_edges
    assert grid.column_edges == shape.conversations.size_by_members.column_edges
    assert all(sum(row) == pytest.approx(1.0, abs=1e-6) for row in grid.weights)
    assert temporal.daily is not None and len(temporal.daily) == WINDOW_DAYS
    assert sum(temporal.daily) == pytest.approx(1.0, abs=1e-6)
    assert temporal.daily[0] > temporal.daily[-1]  # the trend tails off, as in the shape
    names = {name for name, _ in named_models(config)}
    assert {
        "user_generation.conversations_per_user",
        "conversation_generation.top_sender_share",
        "conversation_generation.lifetime_seconds",
    } <= names


def test_every_exported_percentile_is_reproduced(shape: ShapeMetrics, config: CalibratedConfig) -> None:
    checked = 0
    for name, (model, stats) in fitted_pairs(shape, config).items():
        knots = stats.knots()
        got = quantile(model, np.array([p for p, _ in knots]))
        for (p, q), g in zip(knots, got, strict=True):
            if is_integer(model):
                assert g == q, (name, p, q, g)
            else:
                assert abs(g - q) <= 0.01 * q, (name, p, q, g)
            checked += 1
        assert all(e.within_goal for e in model.fit_errors if e.metric != "mean"), name
    assert checked >= 36


def test_a_million_stratified_draws_hit_p50_to_p99_within_2_percent(
    shape: ShapeMetrics, config: CalibratedConfig
) -> None:
    for seed, (name, (model, stats)) in enumerate(fitted_pairs(shape, config).items()):
        draws = quantile(model, stratified(DRAWS, seed))
        targets = dict(stats.knots())
        for p in LEVELS:
            got, want = discrete_percentile(draws, p), targets[p]
            assert abs(got - want) <= 0.02 * want, (name, p, got, want)


def test_one_member_direct_messages_are_reproduced() -> None:
    """44% of DMs with one member (notes to self): Q(p) = 1 up to 0.44, 2 above."""
    shape = full_shape()
    dm = Frequency.from_values(np.repeat([1, 2], [4_400, 5_600]))
    shape.conversations.members_per_conversation["DIRECT_MESSAGE"] = distribution_stats(dm, PrivacyTally(10))
    model = calibrate(shape).conversation_generation.members_per_conversation["DIRECT_MESSAGE"]
    assert quantile(model, np.linspace(1e-4, 0.44, 2_000)).tolist() == [1.0] * 2_000
    assert quantile(model, np.linspace(0.4401, 1 - 1e-4, 2_000)).tolist() == [2.0] * 2_000
    draws = quantile(model, stratified(DRAWS, 1))
    assert float((draws == 1).mean()) == pytest.approx(0.44, abs=1e-5)


def test_seed_form_shape_keeps_the_old_behaviour_and_says_so() -> None:
    config = calibrate(load_shape(SEED_SHAPE))
    conv, users = config.conversation_generation, config.user_generation
    unset = (
        users.conversations_per_user, users.sender_share, conv.top_sender_share,
        conv.lifetime_seconds, conv.recency, conv.members_by_size,
        config.message_generation.temporal.daily,
    )  # fmt: skip
    assert unset == (None,) * 7
    senders = config.message_generation.messages_per_sender
    assert isinstance(senders, QuantileSplineModel) and senders.source == defaults.SOURCE
    text = "\n".join(config.calibration_metadata.warnings)
    for field, (key, behaviour) in defaults.UNSET.items():
        assert f"{key} stays unset" in text, field
        assert behaviour in text, field
    assert "messages.messages_per_sender not in shape: using the default" in text


def test_summary_has_a_line_for_each_new_model(tmp_path: Path) -> None:
    shape = full_shape()
    grid = shape.conversations.size_by_members
    assert grid is not None
    shape_path = write_model_atomic(tmp_path / "shape.json", shape)
    lines: list[str] = []
    calibrate_file(shape_path, tmp_path / "config.json", emit=lines.append)
    text = "\n".join(lines)
    for expected in (
        "Users who send: 80.0%",
        "Fitting conversations per user (quantile spline, Pareto tail)",
        "Fitting messages per sender (power law)",
        "Fitting top sender's share of a conversation",
        "Fitting conversation lifetime",
        "Active in the last 7 days: 38.0%",
        f"Grid: {len(grid.row_edges) - 1} size buckets x {len(grid.column_edges) - 1} member buckets",
        "Daily trend: 30 days",
    ):
        assert expected in text, expected
    lines.clear()
    calibrate_file(SEED_SHAPE, tmp_path / "seed-config.json", emit=lines.append)
    text = "\n".join(lines)
    assert "Recency: not in shape (the generator keeps its old behaviour)" in text
    assert "Daily trend: not exported" in text


# ------------------------------------------------------------------------------ each piece


def test_messages_per_sender_falls_back_without_percentiles() -> None:
    hist = Histogram(edges=[1, 2, 4, 8, 16, 64], counts=[50, 30, 12, 6, 2])
    model, notes = fit_messages_per_sender(DistributionStats(histogram=hist))
    assert isinstance(model, QuantileSplineModel) and "no percentile" in notes[0]
    model, notes = fit_messages_per_sender(None)
    assert model.source == defaults.SOURCE and "not in shape" in notes[0]
    model, notes = fit_messages_per_sender(DistributionStats(p50=17, p90=268, p99=3_684, max=9_000))
    assert isinstance(model, PowerLawTailModel) and notes == []
    assert quantile(model, np.array([0.5, 0.9, 0.99])).tolist() == [17, 268, 3_684]


def test_heavy_tail_alpha_carries_the_exported_mean_without_moving_a_percentile() -> None:
    """A hot sender (a bot) holds more than the two-knot Pareto gives: the mean says how much."""
    base = {"p25": 2, "p50": 5, "p75": 15, "p90": 79, "p95": 151, "p99": 404, "max": 16_000}
    estimate, _ = fit_messages_per_sender(DistributionStats(**base))
    target = 1.3 * estimate.mean
    matched, _ = fit_messages_per_sender(DistributionStats(**base, mean=target))
    assert matched.alpha < estimate.alpha and "matched to the mean" in matched.source
    assert abs(matched.mean - target) / target <= 0.05
    levels = [0.25, 0.5, 0.75, 0.9, 0.95, 0.99]
    assert quantile(matched, np.array(levels)).tolist() == [2, 5, 15, 79, 151, 404]
    unreachable, _ = fit_messages_per_sender(DistributionStats(**base, mean=100 * estimate.mean))
    assert unreachable.alpha == estimate.alpha  # kept; the mean's error is reported instead
    assert not next(e for e in unreachable.fit_errors if e.metric == "mean").within_goal


def test_sender_share_is_clipped_and_unknown_without_counts() -> None:
    totals = Totals(users=100, conversations=10, messages=1_000)
    assert sender_share(DistributionStats(p50=3, count=40), totals) == 0.4
    assert sender_share(DistributionStats(p50=3, count=400), totals) == 1.0
    assert sender_share(DistributionStats(p50=3), totals) is None
    assert sender_share(DistributionStats(p50=3, count=40), None) is None
    assert sender_share(None, totals) is None


def test_conversations_per_user_tail_only_when_heavy() -> None:
    heavy = fit_conversations_per_user(DistributionStats(p10=1, p50=2, p90=13, p99=124, max=900))
    assert heavy.tail_alpha is not None  # the real corpus: alpha 2.0
    light = fit_conversations_per_user(DistributionStats(p10=1, p50=3, p90=5, p99=6, max=8))
    assert light.tail_alpha is None
    for model, values in ((heavy, [1, 2, 13, 124]), (light, [1, 3, 5, 6])):
        levels = [0.1, 0.5, 0.9, 0.99]
        assert quantile(model, np.array(levels)).tolist() == values
        assert model.min == 1


def test_top_sender_share_stays_inside_zero_one() -> None:
    hist = Histogram(edges=[0.0, 0.25, 0.5, 0.75, 1.0, 1.001], counts=[0, 20, 30, 10, 40])
    model = fit_top_sender_share(DistributionStats(p10=0.3, p50=0.62, p90=1.0, max=1.0, histogram=hist))
    assert (model.min, model.max) == (defaults.SHARE_FLOOR, 1.0)
    values = quantile(model, np.linspace(1e-6, 1 - 1e-6, 10_001))
    assert values.min() >= defaults.SHARE_FLOOR and values.max() <= 1.0
    assert quantile(model, np.array([0.1, 0.5, 0.9])) == pytest.approx([0.3, 0.62, 1.0], rel=1e-9)


def test_a_share_above_one_is_refused() -> None:
    shape = full_shape()
    shape.conversations.top_sender_share = DistributionStats(p50=0.5, p90=1.2)
    with pytest.raises(MalformedMetric, match=r"conversations.top_sender_share: shares must lie in \(0, 1\]"):
        calibrate(shape)


def test_lifetime_never_exceeds_the_window() -> None:
    window = 30 * 86_400
    model = fit_lifetime(DistributionStats(p50=3_600, p90=900_000, p99=2_500_000, max=2_600_000), window)
    assert model.max == window and model.min == 0
    assert quantile(model, np.array([0.5, 0.9, 0.99])).tolist() == [3_600, 900_000, 2_500_000]
    assert quantile(model, np.array([1 - 1e-9]))[0] == window


def test_recency_shares_are_clipped() -> None:
    shares = recency_shares(Recency(active_last_7_days=30, active_last_30_days=80), 200)
    assert (shares.active_last_7_days, shares.active_last_30_days) == (0.15, 0.4)
    over = recency_shares(Recency(active_last_7_days=300, active_last_30_days=250), 200)
    assert (over.active_last_7_days, over.active_last_30_days) == (1.0, 1.0)
    assert recency_shares(Recency(active_last_7_days=3, active_last_30_days=8), 0) is None


def test_recency_without_totals_is_unset_with_a_warning() -> None:
    shape = full_shape().model_copy(update={"totals": None})
    config = calibrate(shape)
    assert config.conversation_generation.recency is None
    assert any(
        w.startswith("conversations.recency has no totals.conversations") for w in config.calibration_metadata.warnings
    )


def test_members_by_size_rows_are_normalised_and_empty_rows_borrow_the_nearest() -> None:
    grid = Histogram2D(
        row_edges=[1, 2, 4, 8, 16], column_edges=[1, 2, 4],
        counts=[[0, 0], [30, 10], [0, 0], [5, 15]],
    )  # fmt: skip
    fitted = fit_members_by_size(grid)
    assert fitted.weights == [[0.75, 0.25], [0.75, 0.25], [0.75, 0.25], [0.25, 0.75]]
    assert fitted.row_edges == [1, 2, 4, 8, 16] and fitted.column_edges == [1, 2, 4]
    assert nearest_filled(np.array([False, True, False, False, True, False])).tolist() == [1, 1, 1, 4, 4, 4]
    with pytest.raises(ValueError, match="no count"):
        fit_members_by_size(Histogram2D(row_edges=[1, 2], column_edges=[1, 2], counts=[[0]]))


def test_suppressed_days_are_interpolated_below_the_cell_limit() -> None:
    counts = [0, 5, 0, 9, 0, 0, 12, 0]
    filled = fill_suppressed(counts, 10)
    assert filled.tolist() == [5, 5, 7, 9, 9, 9, 12, 9]  # interpolated, capped at k - 1 = 9
    big = fill_suppressed([5_000, 0, 5_000], 10)
    assert big.tolist() == [5_000, 9, 5_000]  # a zero day held fewer than 10 messages
    assert fill_suppressed(counts, None).tolist() == [float(c) for c in counts]  # exact: real zeros
    weights = daily_weights(counts, 10)
    assert sum(weights) == pytest.approx(1.0, abs=1e-6) and min(weights) > 0


def test_fully_suppressed_blocks_stay_unset_and_negative_counts_are_one_error_line() -> None:
    shape = full_shape()
    shape.messages.daily_counts = [0] * WINDOW_DAYS
    grid = shape.conversations.size_by_members
    shape.conversations.size_by_members = grid.model_copy(update={"counts": [[0] * len(row) for row in grid.counts]})
    config = calibrate(shape)
    assert config.message_generation.temporal.daily is None
    assert config.conversation_generation.members_by_size is None
    warnings = "\n".join(config.calibration_metadata.warnings)
    assert "messages.daily_counts has no mass (every cell suppressed)" in warnings
    assert "conversations.size_by_members has no mass (every cell suppressed)" in warnings
    shape.messages.daily_counts = [-1] + [10] * (WINDOW_DAYS - 1)
    with pytest.raises(MalformedMetric, match="messages.daily_counts: counts must not be negative"):
        calibrate(shape)
