"""Documented defaults for every metric a shape lacks (seed-form files carry only a few).

Each default is a *shape* (percentiles, counts, weights), not a fitted model: it goes through
the same fitting code as a real export, so a default model states its own fit errors too, and
the summary lists every fallback as a warning. Sources: the seed's published example (totals,
messages per conversation, conversation and message types, content length, username length);
the rest are typical figures for a consumer chat product, chosen to be plausible, not measured.

| metric | default | why |
|---|---|---|
| totals | 50,000 users, 16,000 conversations, 1,200,000 messages | seed console example |
| window | `sample_window_days` ending at `extracted_at` | seed form has no window bounds |
| messages per conversation | p50 45, p75 120, p90 450, p95 1200, p99 5000, max 15000 | seed example |
| tail alpha (when not estimable) | 1.85 | seed example config |
| conversation types | DIRECT_MESSAGE 12,500, GROUP_CHAT 3,500, CHANNEL 0 | seed example |
| message types | TEXT .85, IMAGE .10, FILE .03, AUDIO .01, VIDEO .01 | seed example config |
| content length | mean 85, median 42, p95 280 | seed example |
| username length | normal mean 8.5, sd 2.3, rounded, clipped to [3, 24] | seed console example |
| profile fields | display_name .72, avatar_url .55, bio .25 | typical fill rates |
| members per conversation | DIRECT_MESSAGE exactly 2; GROUP_CHAT p50 4, p90 12, p99 50, max 250 (at least 3); CHANNEL p50 35, p90 350, p99 3000, max 10000 | DMs are pairs; groups small; channels heavy-tailed |
| gap between messages of a conversation | p10 2 s, p50 45 s, p90 1 h, p99 1 day, max = window | bursty: half the replies within a minute, then hours to days of silence |
| messages per sender | p50 6, p90 75, p99 700, max 20000 | heavy-tailed: a few senders write most messages |
| hourly weights | diurnal wave (UTC): trough 03-05, rise from 07, plateau midday, peak 19-21 | typical chat traffic |
| day-of-week weights | Mon-Thu 1.0, Fri 0.95, Sat 0.75, Sun 0.7 | weekends quieter |
| lowest top-sender share | 0.001 | the export's resolution (shares are counted in permille) |

The skews added for index behaviour (conversations per user, sender share, top sender share,
lifetime, recency, size x members, daily trend) have no default: when the shape lacks one, its
config field stays unset (`null`) and the generator keeps its earlier behaviour, named in
`UNSET` and in the calibration warning.
"""

from __future__ import annotations

from shape_pipeline.contracts import DistributionStats, Percentiles, Totals

TOTALS = Totals(users=50_000, conversations=16_000, messages=1_200_000)

TAIL_ALPHA = 1.85

MESSAGES_PER_CONVERSATION = Percentiles(p50=45, p75=120, p90=450, p95=1200, p99=5000, max=15000)

CONVERSATION_TYPES: dict[str, int] = {"DIRECT_MESSAGE": 12_500, "GROUP_CHAT": 3_500, "CHANNEL": 0}

MESSAGE_TYPES: dict[str, float] = {
    "TEXT": 0.85,
    "IMAGE": 0.10,
    "FILE": 0.03,
    "AUDIO": 0.01,
    "VIDEO": 0.01,
}

CONTENT_LENGTH = DistributionStats(mean=85, median=42, p95=280)

USERNAME_MEAN = 8.5
USERNAME_STDDEV = 2.3
USERNAME_MIN = 3
USERNAME_MAX = 24

PROFILE_FIELDS: dict[str, float] = {"display_name": 0.72, "avatar_url": 0.55, "bio": 0.25}

MEMBERS_PER_CONVERSATION: dict[str, DistributionStats] = {
    "DIRECT_MESSAGE": DistributionStats(p50=2, max=2),
    "GROUP_CHAT": DistributionStats(p25=3, p50=4, p75=7, p90=12, p95=20, p99=50, max=250),
    "CHANNEL": DistributionStats(p25=12, p50=35, p75=110, p90=350, p95=800, p99=3000, max=10_000),
}
MEMBERS_MIN: dict[str, float] = {"DIRECT_MESSAGE": 2, "GROUP_CHAT": 3, "CHANNEL": 1}

MESSAGES_PER_SENDER = DistributionStats(p25=2, p50=6, p75=22, p90=75, p95=160, p99=700, max=20_000)

# Relative message volume per UTC hour 0..23 (normalised when used).
HOURLY: tuple[float, ...] = (
    3.0, 2.0, 1.3, 0.9, 0.8, 1.0, 1.6, 2.6, 3.6, 4.4, 4.9, 5.2,
    5.4, 5.3, 5.2, 5.2, 5.3, 5.5, 5.8, 6.1, 6.3, 6.0, 5.0, 4.0,
)  # fmt: skip

# Relative message volume Monday..Sunday.
DAY_OF_WEEK: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 0.95, 0.75, 0.7)


SOURCE = "default (shape lacks it)"  # the `source` of every model fitted to a default

SHARE_FLOOR = 0.001

# Shape field -> (config key left unset, what the generator does instead) when the shape lacks it.
UNSET: dict[str, tuple[str, str]] = {
    "users.conversations_per_user": (
        "user_generation.conversations_per_user",
        "memberships follow from members per conversation",
    ),
    "messages.messages_per_sender.count": (
        "user_generation.sender_share",
        "every generated user may send",
    ),
    "conversations.top_sender_share": (
        "conversation_generation.top_sender_share",
        "senders drawn by activity within each conversation",
    ),
    "conversations.lifetime_seconds": (
        "conversation_generation.lifetime_seconds",
        "a conversation's span follows from its gaps",
    ),
    "conversations.recency": (
        "conversation_generation.recency",
        "last messages spread over the whole window",
    ),
    "conversations.size_by_members": (
        "conversation_generation.members_by_size",
        "member counts drawn independently of size",
    ),
    "messages.daily_counts": (
        "message_generation.temporal.daily",
        "a flat trend over the window, hour and day-of-week weights only",
    ),
}


def gap_seconds(window_days: int) -> DistributionStats:
    """Bursty gaps between consecutive messages of one conversation, capped at the window."""
    return DistributionStats(
        p10=2, p25=8, p50=45, p75=420, p90=3_600, p95=14_400, p99=86_400,
        max=max(86_400, window_days * 86_400),
    )  # fmt: skip


# Content-length sigma when only one target is exported: the seed's mean/median relation,
# sigma = sqrt(2 ln(85 / 42)) = 1.19.
CONTENT_SIGMA = 1.1874
