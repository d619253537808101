"""shape_from_frequencies and its frequency maths: hand-computed values and an independent oracle."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from shape_pipeline.contracts import PERCENTILE_KEYS, ShapeMetrics, percentile_level
from shape_pipeline.sampling.frequencies import Frequency, FrequencyTables
from shape_pipeline.sampling.privacy import NOTE_EMPTY_WINDOW
from shape_pipeline.sampling.shape import (
    cdf_at,
    histogram,
    linear_grid,
    log_grid,
    percentile_from_frequency,
    shape_from_frequencies,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2025, 1, 31, tzinfo=UTC)
AT = datetime(2025, 1, 31, 2, tzinfo=UTC)


def shape(freq: FrequencyTables, k: int | None) -> ShapeMetrics:
    return shape_from_frequencies(freq, window_start=START, window_end=END, extracted_at=AT, min_cell_count=k)


def test_discrete_percentiles_by_hand() -> None:
    # usernames of the known dataset: 3,3,4,4,4,5,5,5,5,5,7,16 (n = 12)
    f = Frequency.from_pairs([(3, 2), (4, 3), (5, 5), (7, 1), (16, 1)])
    # smallest v with F(v) >= p: F(3)=2/12, F(4)=5/12, F(5)=10/12, F(7)=11/12, F(16)=1
    expected = {0.10: 3, 0.25: 4, 0.5: 5, 0.75: 5, 5 / 12: 4, 0.84: 7, 0.9: 7, 0.95: 16, 0.99: 16}
    for p, value in expected.items():
        assert percentile_from_frequency(f, p) == value, p
    assert np.isnan(percentile_from_frequency(Frequency.empty(), 0.5))


def test_percentiles_match_numpy_inverted_cdf_on_random_data() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        values = rng.zipf(1.8, size=int(rng.integers(1, 400))).clip(max=10_000)
        f = Frequency.from_values(values)
        for key in PERCENTILE_KEYS:
            p = percentile_level(key)
            assert percentile_from_frequency(f, p) == np.percentile(values, p * 100, method="inverted_cdf")


def test_cdf_at_is_the_share_at_or_below() -> None:
    f = Frequency.from_pairs([(1, 3), (2, 2), (3, 1)])
    np.testing.assert_allclose(cdf_at(f, np.array([0, 1, 1.5, 2, 3, 99])), [0, 3 / 6, 3 / 6, 5 / 6, 1, 1])


def test_grids_are_fixed_and_cover_the_value() -> None:
    assert log_grid(30).tolist() == [0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 32]
    assert linear_grid(16).tolist() == list(range(18))
    grid = linear_grid(500)
    assert grid[63] == 63 and grid[-1] > 500 and np.all(np.diff(grid) > 0)
    f = Frequency.from_pairs([(0, 1), (1, 2), (7, 3), (31, 4)])
    assert histogram(f, log_grid(31)).tolist() == [1, 2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 4]


def known_tables() -> FrequencyTables:
    """The frequency tables of the known dataset (see dataset.py)."""
    grid = np.zeros((7, 24), dtype=np.int64)
    for dow, hour, n in [(2, 0, 3), (0, 10, 2), (0, 12, 1), (6, 23, 1), (3, 23, 1), (2, 8, 2)]:
        grid[dow, hour] = n
    return FrequencyTables(
        users_total=12,
        conversations_total=4,
        messages_total=10,
        username_length=Frequency.from_pairs([(3, 2), (4, 3), (5, 5), (7, 1), (16, 1)]),
        profile_fields_set={"display_name": 10, "avatar_url": 3, "bio": 6},
        conversation_types={"DIRECT_MESSAGE": 1, "GROUP_CHAT": 1, "CHANNEL": 1, "OTHER": 1},
        messages_per_conversation=Frequency.from_pairs([(1, 1), (2, 1), (3, 1), (4, 1)]),
        members_per_conversation={
            n: Frequency.from_pairs([(m, 1)])
            for n, m in [("DIRECT_MESSAGE", 2), ("GROUP_CHAT", 4), ("CHANNEL", 10), ("OTHER", 3)]
        },
        content_length=Frequency.from_values(np.array([2, 47, 0, 11, 6, 100, 2, 3, 7, 2])),
        message_types={"TEXT": 5, "IMAGE": 1, "FILE": 1, "AUDIO": 1, "VIDEO": 1, "OTHER": 1},
        hour_by_day_of_week=grid,
        gap_seconds=Frequency.from_values(np.array([30, 60, 0, 7200, 561599, 5])),
        messages_per_sender=Frequency.from_pairs([(1, 3), (2, 2), (3, 1)]),
    )


def test_exact_shape_without_privacy_rules() -> None:
    s = shape(known_tables(), None)
    assert s.privacy is None
    assert s.sample_window_days == 30 and s.totals.messages == 10
    mpc = s.conversations.messages_per_conversation_percentiles
    assert (mpc.p50, mpc.p75, mpc.p90, mpc.max) == (2, 3, 4, 4)  # ranks ceil(0.5*4)=2 -> 2, 3 -> 3, 4 -> 4
    assert s.conversations.messages_per_conversation_mean == 2.5
    cl = s.messages.content_length_stats
    # sorted 0,2,2,2,3,6,7,11,47,100: p50 rank 5 -> 3; p95 rank 10 -> 100; mean 180/10
    assert (cl.median, cl.p95, cl.mean, cl.max, cl.count) == (3, 100, 18.0, 100, 10)
    assert cl.histogram.total == 10
    assert s.messages.hourly_counts[0] == 3 and s.messages.day_of_week_counts == [3, 0, 5, 1, 0, 0, 1]
    gaps = s.messages.inter_message_gap_seconds
    assert (gaps.p50, gaps.max) == (30, 561599)  # raw max: no rounding without privacy
    assert s.users.profile_completeness == {"display_name": 10 / 12, "avatar_url": 3 / 12, "bio": 6 / 12}
    assert s.conversations.type_distribution == {"DIRECT_MESSAGE": 1, "GROUP_CHAT": 1, "CHANNEL": 1, "OTHER": 1}
    assert s.conversations.members_per_conversation["CHANNEL"].max == 10
    assert s.messages.messages_per_sender.p99 == 3


def test_privacy_rules_merge_small_cells_and_round_the_max() -> None:
    k = 2
    s = shape(known_tables(), k)
    assert s.privacy.min_cell_count == k
    assert s.privacy.merged_cells > 0 and s.privacy.suppressed_cells > 0
    # every category was a single conversation: all merged into OTHER, nothing derivable
    assert s.conversations.type_distribution == {"OTHER": 4}
    assert s.messages.type_distribution == {"TEXT": 5, "OTHER": 5}
    # members of the merged categories are reported under OTHER: 2, 3, 4, 10
    assert s.conversations.members_per_conversation["OTHER"].count == 4
    # max rounded up to two significant digits: 561599 -> 570000
    assert s.messages.inter_message_gap_seconds.max == 570_000
    for stats in (s.messages.content_length_stats, s.messages.inter_message_gap_seconds, s.users.username_length):
        if stats.histogram:
            assert all(c == 0 or c >= k for c in stats.histogram.counts)
            assert stats.histogram.total == stats.count
    assert all(c == 0 or c >= k for c in s.messages.hourly_counts)
    assert all(c == 0 or c >= k for row in s.messages.hour_by_day_of_week for c in row)


def test_distributions_over_fewer_entities_than_the_threshold_are_omitted() -> None:
    s = shape(known_tables(), 11)
    assert s.conversations.messages_per_conversation_percentiles is None  # 4 conversations
    assert s.messages.content_length_stats is None  # 10 messages
    assert s.users.username_length is not None  # 12 users
    assert s.users.profile_completeness["avatar_url"] == 0.0  # 3 users set it: a small cell


def test_empty_window_is_a_well_defined_empty_shape() -> None:
    s = shape(FrequencyTables(users_total=40), 10)
    assert s.totals.model_dump() == {"users": 40, "conversations": 0, "messages": 0}
    assert s.messages.content_length_stats is None and s.conversations.messages_per_conversation_percentiles is None
    assert s.messages.hourly_counts == [0] * 24 and s.messages.type_distribution["TEXT"] == 0
    assert NOTE_EMPTY_WINDOW in s.privacy.notes
    ShapeMetrics.model_validate_json(s.model_dump_json())  # round-trips through the contract


@pytest.mark.parametrize("k", [1, 3, 10])
def test_histograms_keep_every_entity_after_merging(k: int) -> None:
    rng = np.random.default_rng(k)
    tables = FrequencyTables(
        messages_total=5000, content_length=Frequency.from_values(rng.lognormal(3.5, 1.2, 5000).astype(int))
    )
    stats = shape(tables, k).messages.content_length_stats
    assert stats.histogram.total == 5000
    assert all(c == 0 or c >= k for c in stats.histogram.counts)
    assert stats.max >= stats.p99
