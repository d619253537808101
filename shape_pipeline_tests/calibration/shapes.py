"""Shapes for calibration tests: the seed's example file, and a full shape built by the sampler's
own pure shape builder from synthetic frequency tables (with the privacy rules on).

The full shape carries the skew blocks of issue 10 too (conversations per user, top sender
share, lifetime, recency, size x members, daily counts). The tables hold them; when the
sampler's shape builder does not (yet) export a block, `with_skews` builds it here from the
same tables with the sampler's own stats function, so the calibration tests do not depend on
the order in which the two sides land.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from shape_pipeline.contracts import Histogram2D, Recency, ShapeMetrics
from shape_pipeline.sampling.frequencies import (
    MEMBER_EDGES,
    SIZE_EDGES,
    Frequency,
    FrequencyTables,
    power_of_two_bucket,
)
from shape_pipeline.sampling.privacy import PrivacyTally, zero_small_cells
from shape_pipeline.sampling.shape import distribution_stats, shape_from_frequencies

SEED_SHAPE = Path(__file__).resolve().parents[2] / "shape_pipeline" / "examples" / "shape-metrics-seed.json"
WINDOW_END = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW_DAYS = 30
MIN_CELL_COUNT = 10
DM_ONE_MEMBER = 0.44  # share of direct messages with one member (notes to self)


def _tenths(upper: float) -> np.ndarray:
    """Histogram edges for shares: tenths from 0 to just above 1."""
    return np.append(np.linspace(0.0, 1.0, 11), 1.001)


def skew_tables(tables: FrequencyTables, members: np.ndarray, rng: np.random.Generator) -> None:
    """Fill the issue-10 tables of `tables` (sizes from its messages per conversation)."""
    sizes = np.repeat(tables.messages_per_conversation.values, tables.messages_per_conversation.counts)
    sizes = rng.permutation(sizes).astype(np.int64)
    n = sizes.size
    users = tables.users_total
    tables.conversations_per_user = Frequency.from_values(
        np.ceil((1 - rng.random(users)) ** (-1 / 1.0))  # Pareto, pdf exponent 2: p50 2, p99 100
    )
    single = sizes == 1
    permille = np.where(single | (rng.random(n) < 0.25), 1000, rng.integers(250, 1000, n))
    tables.top_sender_permille = Frequency.from_values(permille)
    window = WINDOW_DAYS * 86_400
    lifetime = np.minimum(np.floor(np.exp(rng.normal(11.5, 2.0, n))), window)
    tables.lifetime_seconds = Frequency.from_values(np.where(single, 0, lifetime))
    tables.active_last_30_days = n
    tables.active_last_7_days = int(0.38 * n)
    grid = np.zeros((len(SIZE_EDGES) - 1, len(MEMBER_EDGES) - 1), dtype=np.int64)
    np.add.at(grid, (power_of_two_bucket(sizes, SIZE_EDGES), power_of_two_bucket(members, MEMBER_EDGES)), 1)
    tables.size_by_members = grid
    days = np.arange(WINDOW_DAYS)
    per_day = np.rint(tables.messages_total / WINDOW_DAYS * (1.3 - 0.6 * days / WINDOW_DAYS)).astype(np.int64)
    per_day[[3, 17]] = 4  # an outage: small cells the privacy rule zeroes
    tables.messages_per_day = per_day


def with_skews(shape: ShapeMetrics, tables: FrequencyTables, min_cell_count: int) -> ShapeMetrics:
    """`shape` with every issue-10 block the shape builder left out, built from `tables`."""
    tally = PrivacyTally(min_cell_count)
    users = shape.users.model_copy() if shape.users is not None else None
    if users is not None and users.conversations_per_user is None:
        users.conversations_per_user = distribution_stats(tables.conversations_per_user, tally)
    conv = shape.conversations.model_copy()
    if conv.top_sender_share is None:
        shares = Frequency(tables.top_sender_permille.values / 1000.0, tables.top_sender_permille.counts)
        conv.top_sender_share = distribution_stats(shares, tally, grid=_tenths)
    if conv.lifetime_seconds is None:
        conv.lifetime_seconds = distribution_stats(tables.lifetime_seconds, tally)
    if conv.recency is None:
        conv.recency = Recency(
            active_last_7_days=tables.active_last_7_days, active_last_30_days=tables.active_last_30_days
        )
    if conv.size_by_members is None:
        grid, _ = zero_small_cells(tables.size_by_members, min_cell_count)
        conv.size_by_members = Histogram2D(
            row_edges=[float(e) for e in SIZE_EDGES],
            column_edges=[float(e) for e in MEMBER_EDGES],
            counts=np.asarray(grid).tolist(),
        )
    messages = shape.messages.model_copy()
    if messages.daily_counts is None:
        daily, _ = zero_small_cells(tables.messages_per_day, min_cell_count)
        messages.daily_counts = [int(x) for x in daily]
    return shape.model_copy(update={"users": users, "conversations": conv, "messages": messages})


def full_shape(seed: int = 3) -> ShapeMetrics:
    """Every metric present, heavy tails and the issue-10 skews included, exported with
    min_cell_count=10. Direct messages have one member in 44% of cases."""
    rng = np.random.default_rng(seed)
    per_conversation = np.ceil(np.exp(rng.normal(3.5, 1.6, 20_000))).astype(np.int64)
    dm_members = np.where(rng.random(14_000) < DM_ONE_MEMBER, 1, 2)
    group_members = rng.integers(3, 40, 5_000)
    channel_members = np.ceil(np.exp(rng.normal(4, 1.2, 1_000)))
    tables = FrequencyTables(
        users_total=5_000,
        conversations_total=per_conversation.size,
        messages_total=int(per_conversation.sum()),
        username_length=Frequency.from_values(np.clip(np.rint(rng.normal(9, 2.5, 5_000)), 3, 30)),
        profile_fields_set={"display_name": 3_000, "avatar_url": 2_000, "bio": 1_000},
        conversation_types={"DIRECT_MESSAGE": 14_000, "GROUP_CHAT": 5_000, "CHANNEL": 1_000},
        messages_per_conversation=Frequency.from_values(per_conversation),
        members_per_conversation={
            "DIRECT_MESSAGE": Frequency.from_values(dm_members),
            "GROUP_CHAT": Frequency.from_values(group_members),
            "CHANNEL": Frequency.from_values(channel_members),
        },
        content_length=Frequency.from_values(np.ceil(np.exp(rng.normal(3.7, 1.0, 300_000)))),
        message_types={"TEXT": 250_000, "IMAGE": 40_000, "FILE": 9_000, "AUDIO": 990, "VIDEO": 10},
        hour_by_day_of_week=rng.integers(50, 500, (7, 24)),
        gap_seconds=Frequency.from_values(np.floor(np.exp(rng.normal(4, 2.5, 300_000)))),
        messages_per_sender=Frequency.from_values(np.ceil((1 - rng.random(4_000)) ** (-1 / 1.2))),
    )
    members = np.concatenate([dm_members, group_members, channel_members]).astype(np.int64)
    skew_tables(tables, members, rng)
    shape = shape_from_frequencies(
        tables,
        window_start=WINDOW_END - timedelta(days=WINDOW_DAYS),
        window_end=WINDOW_END,
        extracted_at=WINDOW_END + timedelta(hours=2),
        min_cell_count=MIN_CELL_COUNT,
    )
    return with_skews(shape, tables, MIN_CELL_COUNT)
