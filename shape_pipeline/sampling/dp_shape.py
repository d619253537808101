"""Bounded frequency tables -> a differentially private ShapeMetrics.

Each statistic family reads the extraction whose bounds give it a small sensitivity
(`sampling.bounded`), is counted on a domain fixed in code (the buckets below never depend on
the data), gets OpenDP noise once (`privacy.dp.Budget.noisy`), and everything published is
computed from the noisy counts alone: percentiles and means from the histogram, `max` as the
p99.9 of it, totals as sums of noisy counts, hourly and daily margins as sums of the noisy
grid. Consistency is restored by post-processing: no negative count, percentiles
non-decreasing, shares in [0, 1], recency counts within the conversations total.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from shape_pipeline.contracts import (
    MAX_AS_QUANTILE,
    PERCENTILE_KEYS,
    ConversationMetrics,
    DistributionStats,
    Histogram,
    Histogram2D,
    MessageMetrics,
    PrivacyReport,
    Recency,
    ShapeMetrics,
    Totals,
    UserMetrics,
    percentile_level,
)
from shape_pipeline.mapping import CONVERSATION_TYPES, MESSAGE_TYPES, OTHER
from shape_pipeline.privacy.defaults import (
    CONVERSATIONS_KEPT,
    MAX_CONVERSATIONS_PER_USER,
    MIN_CONVERSATIONS_PER_USER,
)
from shape_pipeline.privacy.dp import (
    Budget,
    FamilySpec,
    bucket_midpoints,
    clean_cells,
    histogram_moments,
    histogram_quantiles,
    publishable_histogram,
)
from shape_pipeline.sampling.bounded import BoundedFrequencies
from shape_pipeline.sampling.frequencies import Frequency, FrequencyTables
from shape_pipeline.sampling.shape import (
    PERMILLE,
    linear_grid,
    log_grid,
    percentiles_of,
    scaled_stats,
    share_grid,
    size_members_grid,
    window_shape,
)

MAX_LEVEL = 0.999  # `max` of a DP distribution: its p99.9 (contracts.MAX_AS_QUANTILE; a raw max is one person's value)

# Fixed domains: the upper ends of the bucket grids (values beyond fall in the last bucket).
USERNAME_LENGTH_CAP = 255
CONTENT_LENGTH_CAP = 100_000
COUNT_CAP = 10_000_000  # messages per conversation or per sender
MEMBERS_CAP = 1_000_000
MEMBERSHIPS_CAP = 100_000
MESSAGE_TOTAL_CLAMP = 1_000  # totals.messages counts at most this many messages of one user
DECADE_STEPS = 5  # DP histograms: 5 buckets a decade above 10 (noise is per bucket: fewer, fuller buckets)


def dp_grid(upper: float) -> np.ndarray:
    """Fixed edges 0, 1, 2, 3, 4, 5, 6, 8, 10, 16, 25, 40, 63, 100, 158, ... up to the first
    above `upper`: every other edge of `log_grid` above 10, so each bucket holds about twice
    the entities for the same noise (the validator bins synthetic data on the same edges)."""
    edges = log_grid(upper)
    low = edges[edges <= 10]
    high = np.array([float(round(10 ** (1 + i / DECADE_STEPS))) for i in range(1, 200)])
    high = high[: int(np.searchsorted(high, upper, side="right")) + 1]
    return np.concatenate([low, high])


def family_specs(max_messages: int, max_conversations: int, profile_fields: int) -> dict[str, FamilySpec]:
    """Every statistic family: weight (its share of epsilon), sensitivity under the bounds
    (L messages, C conversations per user), and the shape paths it produces.

    Sensitivities (L1, one user added or removed): a per-user value moves one user between
    buckets (1; the users family also counts the user and each profile field set); a message-level count loses at most L messages (L), a gap at most 3L (each
    removed message's own gap, and its successor's gap changes bucket); the grid and the days
    are counted together (2L); a conversation-level histogram has at most C conversations
    changing bucket or vanishing (2C), its type counts at most C vanishing (C); the message
    total counts at most MESSAGE_TOTAL_CLAMP messages a user.

    Conversations per user counts all of a user's memberships, not only those of conversations
    active in the window: removing the only writer of a channel would make it inactive for
    every member, so one user could change any number of values.
    """
    L, C = max_messages, max_conversations  # noqa: N806 - the paper's names
    return {
        "users": FamilySpec(
            1.0, 2 + profile_fields, ("users.username_length", "users.profile_completeness", "totals.users")
        ),
        "messages_per_sender": FamilySpec(1.0, 1, ("messages.messages_per_sender",)),
        "conversations_per_user": FamilySpec(0.5, 1, ("users.conversations_per_user",)),
        "message_total": FamilySpec(0.5, MESSAGE_TOTAL_CLAMP, ("totals.messages",)),
        "content_length": FamilySpec(1.0, L, ("messages.content_length_stats",)),
        "message_types": FamilySpec(0.5, L, ("messages.type_distribution",)),
        "gaps": FamilySpec(1.0, 3 * L, ("messages.inter_message_gap_seconds",)),
        "message_times": FamilySpec(
            1.0,
            2 * L,
            (
                "messages.hour_by_day_of_week",
                "messages.hourly_counts",
                "messages.day_of_week_counts",
                "messages.daily_counts",
            ),
        ),
        "messages_per_conversation": FamilySpec(
            1.5,
            2 * C,
            (
                "conversations.messages_per_conversation_percentiles",
                "conversations.messages_per_conversation_histogram",
                "conversations.messages_per_conversation_mean",
            ),
        ),
        "conversation_types": FamilySpec(0.5, C, ("conversations.type_distribution", "totals.conversations")),
        "members_per_conversation": FamilySpec(1.0, 2 * C, ("conversations.members_per_conversation",)),
        "top_sender_share": FamilySpec(0.5, 2 * C, ("conversations.top_sender_share",)),
        "lifetime": FamilySpec(0.5, 2 * C, ("conversations.lifetime_seconds",)),
        "recency": FamilySpec(0.25, 2 * C, ("conversations.recency",)),
        "size_by_members": FamilySpec(0.5, 2 * C, ("conversations.size_by_members",)),
    }


# ------------------------------------------------------------------------------ building blocks


def dp_share_grid() -> np.ndarray:
    """Per-mille edges of the top sender's share with a bucket of their own for exactly 500
    (two people writing half each) and 1000 (one writer): point masses that interpolation
    inside a 50-wide bucket would smear."""
    edges = list(share_grid(PERMILLE)[:-1])
    edges.insert(edges.index(PERMILLE / 2) + 1, PERMILLE / 2 + 1)
    return np.asarray([*edges, PERMILLE, PERMILLE + 1.0])


def fixed_histogram(freq: Frequency, edges: np.ndarray) -> np.ndarray:
    """Counts per bucket [edges[i], edges[i+1]); values beyond the last edge in the last bucket."""
    index = np.clip(np.searchsorted(edges, freq.values, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(index, weights=freq.counts, minlength=len(edges) - 1).astype(np.int64)


def stats_from_counts(edges: np.ndarray, counts: np.ndarray) -> DistributionStats | None:
    """Count, moments, percentiles, p99.9 as max and the trimmed histogram, all from cleaned
    noisy counts (None when nothing is left)."""
    total = int(counts.sum())
    if total == 0:
        return None
    levels = [percentile_level(k) for k in PERCENTILE_KEYS] + [MAX_LEVEL]
    values = histogram_quantiles(edges, counts, levels, integer=True)
    mean, std = histogram_moments(edges, counts, integer=True)
    nonzero = np.nonzero(counts)[0]
    keep = slice(nonzero[0], nonzero[-1] + 1)
    pct = dict(zip((*PERCENTILE_KEYS, "max"), values, strict=True))
    return DistributionStats(
        count=total,
        mean=mean,
        median=pct["p50"],
        stddev=std,
        histogram=Histogram(
            edges=[float(e) for e in edges[keep.start : keep.stop + 1]], counts=[int(c) for c in counts[keep]]
        ),
        **pct,
    )


def dp_distribution(freq: Frequency, edges: np.ndarray, budget: Budget, family: str) -> DistributionStats | None:
    """One distribution, noised as one histogram on `edges`."""
    noisy = budget.noisy(family, fixed_histogram(freq, edges))
    return stats_from_counts(*publishable_histogram(edges, noisy, budget.family(family).scale))


def _categories(
    counts: dict[str, int], known: Sequence[str], budget: Budget, family: str
) -> tuple[dict[str, int], int]:
    """Counts of each category (and OTHER, when some remain), and their total: the sum of the
    noisy counts before small ones are dropped (a less noisy total than any single count)."""
    names = [*known, OTHER]
    noisy = budget.noisy(family, np.array([counts.get(n, 0) for n in names]))
    cleaned = clean_cells(noisy, budget.family(family).scale)
    shown = {n: int(c) for n, c in zip(names, cleaned, strict=True) if n != OTHER or c > 0}
    return shown, max(int(noisy.sum()), 0)


def _times(freq: FrequencyTables, budget: Budget) -> tuple[list[list[int]], list[int], list[int], list[int] | None]:
    """Grid and per-day counts noised together; margins are the grid's sums."""
    days = np.asarray(freq.messages_per_day, dtype=np.int64)
    noisy = np.maximum(budget.noisy("message_times", np.concatenate([freq.hour_by_day_of_week.ravel(), days])), 0)
    grid = noisy[:168].reshape(7, 24)
    daily = noisy[168:]
    return (
        grid.tolist(),
        [int(x) for x in grid.sum(axis=0)],
        [int(x) for x in grid.sum(axis=1)],
        [int(x) for x in daily] if len(daily) else None,
    )


# ------------------------------------------------------------------------------ families


def _users(
    freq: FrequencyTables, fields: Sequence[str], budget: Budget
) -> tuple[DistributionStats | None, dict[str, float], int]:
    """Username lengths, profile fields set and the users total: one noisy vector."""
    edges = linear_grid(USERNAME_LENGTH_CAP)
    hist = fixed_histogram(freq.username_length, edges)
    set_counts = np.array([freq.profile_fields_set.get(f, 0) for f in fields], dtype=np.int64)
    noisy = budget.noisy("users", np.concatenate([hist, set_counts, [freq.users_total]]))
    users = max(int(noisy[-1]), 0)
    shares = {
        f: float(min(max(n / users, 0.0), 1.0)) if users else 0.0
        for f, n in zip(fields, noisy[len(hist) : len(hist) + len(fields)], strict=True)
    }
    stats = stats_from_counts(*publishable_histogram(edges, noisy[: len(hist)], budget.family("users").scale))
    return stats, shares, users


def _per_conversation(freq: FrequencyTables, budget: Budget) -> DistributionStats | None:
    """Messages per conversation."""
    edges = dp_grid(COUNT_CAP)
    noisy = budget.noisy("messages_per_conversation", fixed_histogram(freq.messages_per_conversation, edges))
    return stats_from_counts(*publishable_histogram(edges, noisy, budget.family("messages_per_conversation").scale))


def _message_total(freq: FrequencyTables, budget: Budget) -> int:
    """In-window messages, each sender's (and the senderless messages') counted up to
    MESSAGE_TOTAL_CLAMP: one noisy sum."""
    per_sender = freq.messages_per_sender
    senderless = freq.messages_total - int(np.dot(per_sender.values, per_sender.counts))
    clamped = np.minimum(per_sender.values, MESSAGE_TOTAL_CLAMP)
    total = int(np.dot(clamped, per_sender.counts)) + min(senderless, MESSAGE_TOTAL_CLAMP)
    return max(int(budget.noisy("message_total", np.array([total]))[0]), 0)


def _members(freq: FrequencyTables, types: dict[str, int], budget: Budget) -> dict[str, DistributionStats]:
    """Members per conversation by type: one histogram over (type, bucket), noised at once."""
    edges = dp_grid(MEMBERS_CAP)
    names = [*CONVERSATION_TYPES, OTHER]
    hists = [fixed_histogram(freq.members_per_conversation.get(n, Frequency.empty()), edges) for n in names]
    noisy = budget.noisy("members_per_conversation", np.stack(hists)).reshape(len(names), -1)
    scale = budget.family("members_per_conversation").scale
    out: dict[str, DistributionStats] = {}
    for name, row in zip(names, noisy, strict=True):
        stats = stats_from_counts(*publishable_histogram(edges, row, scale)) if name in types else None
        if stats is not None:
            out[name] = stats
    return out


def _recency(freq: FrequencyTables, conversations: int, budget: Budget) -> Recency | None:
    noisy = np.maximum(budget.noisy("recency", np.array([freq.active_last_7_days, freq.active_last_30_days])), 0)
    if conversations == 0:
        return None
    last_30 = int(min(noisy[1], conversations))
    return Recency(active_last_7_days=int(min(noisy[0], last_30)), active_last_30_days=last_30)


def _size_by_members(freq: FrequencyTables, budget: Budget) -> Histogram2D | None:
    scale = budget.family("size_by_members").scale
    return size_members_grid(clean_cells(budget.noisy("size_by_members", freq.size_by_members), scale))


def dp_memberships(freq: Frequency, budget: Budget) -> tuple[DistributionStats | None, int]:
    """Memberships per user (exported as conversations per user), and the conversation bound C
    read from them: the smallest C that keeps CONVERSATIONS_KEPT of all memberships, within
    [MIN_, MAX_CONVERSATIONS_PER_USER]. C comes from noisy counts only, so choosing it is
    post-processing; a fixed C cuts the memberships of every user in more conversations, which
    turns DMs of busy users into one-member conversations."""
    edges = dp_grid(MEMBERSHIPS_CAP)
    edges, counts = publishable_histogram(
        edges,
        budget.noisy("conversations_per_user", fixed_histogram(freq, edges)),
        budget.family("conversations_per_user").scale,
    )
    mid = bucket_midpoints(edges, integer=True)
    total = float(np.dot(counts, mid))
    bound = MAX_CONVERSATIONS_PER_USER
    for c in range(MIN_CONVERSATIONS_PER_USER, MAX_CONVERSATIONS_PER_USER + 1):
        if total == 0 or np.dot(counts, np.minimum(mid, c)) >= CONVERSATIONS_KEPT * total:
            bound = c
            break
    return stats_from_counts(edges, counts), bound


# ------------------------------------------------------------------------------ the shape


def dp_shape(
    bounded: BoundedFrequencies,
    budget: Budget,
    *,
    conversations_per_user: DistributionStats | None,
    profile_fields: Sequence[str],
    window_start: datetime,
    window_end: datetime,
    extracted_at: datetime,
) -> ShapeMetrics:
    """The DP shape of one window: every family noised once, the rest post-processing."""
    user, msg, conv = bounded.per_user, bounded.per_message, bounded.per_conversation
    window = dp_grid((window_end - window_start).total_seconds())

    def dist(freq: Frequency, edges: np.ndarray, family: str) -> DistributionStats | None:
        return dp_distribution(freq, edges, budget, family)

    username, profile, users = _users(user, profile_fields, budget)
    per_conv = _per_conversation(conv, budget)
    messages = _message_total(user, budget)
    conv_types, conversations = _categories(conv.conversation_types, CONVERSATION_TYPES, budget, "conversation_types")
    grid, hourly, weekly, daily = _times(msg, budget)
    conversation_metrics = ConversationMetrics(
        messages_per_conversation_percentiles=percentiles_of(per_conv),
        messages_per_conversation_histogram=per_conv.histogram if per_conv else None,
        messages_per_conversation_mean=per_conv.mean if per_conv else None,
        type_distribution=conv_types,
        members_per_conversation=_members(conv, conv_types, budget),
        top_sender_share=scaled_stats(dist(conv.top_sender_permille, dp_share_grid(), "top_sender_share"), PERMILLE),
        lifetime_seconds=dist(conv.lifetime_seconds, window, "lifetime"),
        recency=_recency(conv, conversations, budget),
        size_by_members=_size_by_members(conv, budget),
    )
    message_metrics = MessageMetrics(
        content_length_stats=dist(msg.content_length, dp_grid(CONTENT_LENGTH_CAP), "content_length"),
        type_distribution=_categories(msg.message_types, MESSAGE_TYPES, budget, "message_types")[0],
        hourly_counts=hourly,
        day_of_week_counts=weekly,
        hour_by_day_of_week=grid,
        inter_message_gap_seconds=dist(msg.gap_seconds, window, "gaps"),
        messages_per_sender=dist(user.messages_per_sender, dp_grid(COUNT_CAP), "messages_per_sender"),
        daily_counts=daily,
    )
    user_metrics = UserMetrics(
        username_length=username,
        conversations_per_user=conversations_per_user,
        profile_completeness=profile,
    )
    totals = Totals(users=users, conversations=conversations, messages=messages)
    privacy = PrivacyReport(mode="dp", dp=budget.report(), max_rounding=MAX_AS_QUANTILE)
    return window_shape(
        window_start, window_end, extracted_at, totals, user_metrics, conversation_metrics, message_metrics, privacy
    )
