"""The plan of a dataset: sizes, per-conversation counts and per-user traits, drawn once.

Everything that ties shards together (how many messages each conversation holds, its type and
member count, each user's activity and username length) is drawn here from the seed's own
plan stream; the shards then fill in rows independently. The plan is small: a few numbers per
user and per conversation, never per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from shape_pipeline.contracts import CalibratedConfig, QuantileSplineModel
from shape_pipeline.distributions import Model, quantile, sample
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.generation import seeds
from shape_pipeline.generation.bands import BANDS, DEFAULT_BAND, band_messages  # noqa: F401 - re-exported
from shape_pipeline.generation.timeline import TimeWarp, build_time_warp

CONVERSATIONS_PER_SHARD = 256  # the unit of randomness for conversations, members and messages
USERS_PER_SHARD = 16_384  # the unit of randomness for users
MEMBERSHIP_EXPONENT = 0.0  # popularity = activity ** this; 0 (uniform) measured closest to messages-per-sender
DIRECT_MESSAGE = "DIRECT_MESSAGE"
DEFAULT_USERS_PER_MESSAGE = 1 / 24  # when the config's totals hold no messages

# Members per conversation for a type the config lacks (documented defaults).
DEFAULT_MEMBERS: dict[str, QuantileSplineModel] = {
    "GROUP_CHAT": QuantileSplineModel(
        knots=[(0.5, 5.0), (0.9, 12.0), (0.99, 40.0)], min=3, max=250, source="default"
    ),
    "CHANNEL": QuantileSplineModel(
        knots=[(0.5, 25.0), (0.9, 150.0), (0.99, 900.0)], min=3, max=5000, source="default"
    ),
}
FALLBACK_MEMBERS = DEFAULT_MEMBERS["GROUP_CHAT"]
ALPHABET_SIZE = 36  # usernames: a-z then 0-9


@dataclass
class Plan:
    """Sizes and per-entity traits of one dataset (see module doc)."""

    config: CalibratedConfig
    seed: str
    target_messages: int
    window_start: datetime
    window_end: datetime
    warp: TimeWarp
    conversation_types: list[str]  # category names; conversation_type holds indexes into it
    message_counts: np.ndarray  # int64 per conversation, sums to target_messages
    conversation_type: np.ndarray  # int8 per conversation
    member_counts: np.ndarray  # int64 per conversation
    user_activity: np.ndarray  # float64 per user: relative share of messages written
    membership_cdf: np.ndarray  # float64 per user: cumulative popularity, last = 1
    username_length: np.ndarray  # int64 per user
    username_rank: np.ndarray  # int64 per user: rank among users of the same length
    username_suffix: dict[int, int] = field(default_factory=dict)  # length -> digits of the rank
    extra_profile_fields: list[str] = field(default_factory=list)
    content_style: str = "filler"

    @property
    def users(self) -> int:
        return int(self.user_activity.size)

    @property
    def conversations(self) -> int:
        return int(self.message_counts.size)

    @property
    def members(self) -> int:
        return int(self.member_counts.sum())

    @property
    def user_shards(self) -> int:
        return -(-self.users // USERS_PER_SHARD)

    @property
    def conversation_shards(self) -> int:
        return -(-self.conversations // CONVERSATIONS_PER_SHARD)

    def conversation_slice(self, shard: int) -> slice:
        start = shard * CONVERSATIONS_PER_SHARD
        return slice(start, min(start + CONVERSATIONS_PER_SHARD, self.conversations))

    def user_slice(self, shard: int) -> slice:
        start = shard * USERS_PER_SHARD
        return slice(start, min(start + USERS_PER_SHARD, self.users))

    def message_offset(self, conversation: int) -> int:
        """Messages of all conversations before `conversation` (message ids start after it)."""
        return int(self._message_offsets[conversation])

    def member_offset(self, conversation: int) -> int:
        return int(self._member_offsets[conversation])

    def __post_init__(self) -> None:
        self._message_offsets = np.concatenate([[0], np.cumsum(self.message_counts)])
        self._member_offsets = np.concatenate([[0], np.cumsum(self.member_counts)])


def draw_message_counts(config: CalibratedConfig, rng: np.random.Generator, target: int) -> np.ndarray:
    """Messages per conversation drawn from the model until they add up to exactly `target`.

    Conversations are drawn in batches and the last one is cut to the remainder, so the
    number of conversations follows from the model's mean, not from a rescaling that would
    shift every percentile.
    """
    model = config.conversation_generation.messages_per_conversation
    guess = max(int(target / max(model_mean(model), 1.0) * 1.1), 16)
    parts: list[np.ndarray] = []
    total = 0
    while total < target:
        batch = np.maximum(sample(model, rng, guess), 1)
        parts.append(batch)
        total += int(batch.sum())
    counts = np.concatenate(parts)
    cumulative = np.cumsum(counts)
    last = int(np.searchsorted(cumulative, target))
    counts = counts[: last + 1].copy()
    counts[-1] -= int(cumulative[last]) - target
    return counts


def model_mean(model: Model) -> float:
    """The model's mean on a fixed grid of probabilities (no random draws)."""
    u = (np.arange(20_000) + 0.5) / 20_000
    return float(np.mean(quantile(model, u)))


def draw_categories(shares: dict[str, float], rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    """Category names (positive shares only, in the config's order) and n drawn indexes."""
    names = [name for name, p in shares.items() if p > 0]
    if not names:
        raise ShapePipelineError("config: a type distribution has no category with a positive share")
    probabilities = np.array([shares[name] for name in names], dtype=np.float64)
    cdf = np.cumsum(probabilities / probabilities.sum())
    cdf[-1] = 1.0
    return names, np.searchsorted(cdf, rng.random(n), side="right").astype(np.int8)


def draw_member_counts(
    config: CalibratedConfig, types: list[str], type_index: np.ndarray, users: int, rng: np.random.Generator
) -> np.ndarray:
    """Members per conversation by type: a direct message has exactly 2, others their model."""
    models = config.conversation_generation.members_per_conversation
    counts = np.empty(type_index.size, dtype=np.int64)
    for i, name in enumerate(types):
        where = type_index == i
        n = int(where.sum())
        if name == DIRECT_MESSAGE:
            counts[where] = 2
            continue
        model = models.get(name) or DEFAULT_MEMBERS.get(name, FALLBACK_MEMBERS)
        counts[where] = sample(model, rng, n) if n else 0
    return np.clip(counts, 1, users)


def user_count(config: CalibratedConfig, target: int) -> int:
    """Users scale with the shape's users-per-message ratio (at least 2)."""
    totals = config.totals
    ratio = totals.users / totals.messages if totals.messages > 0 and totals.users > 0 else DEFAULT_USERS_PER_MESSAGE
    return max(int(round(target * ratio)), 2)


def username_ranks(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """Lengths (bumped where a length has more users than strings), rank within length, digits.

    A username is random letters followed by its rank in base 36 on a fixed number of digits
    per length, so usernames are unique by construction, across shards, without a lookup.
    """
    lengths = lengths.astype(np.int64).copy()
    for length in range(int(lengths.min()), int(lengths.max()) + 64):
        where = np.flatnonzero(lengths == length)
        capacity = ALPHABET_SIZE**length if length < 12 else np.iinfo(np.int64).max
        if where.size > capacity:
            lengths[where[capacity:]] = length + 1
        if length > lengths.max():
            break
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    group_start = np.searchsorted(sorted_lengths, sorted_lengths, side="left")
    ranks = np.empty_like(lengths)
    ranks[order] = np.arange(lengths.size) - group_start
    digits: dict[int, int] = {}
    values, counts = np.unique(lengths, return_counts=True)
    for length, count in zip(values.tolist(), counts.tolist(), strict=True):
        width = 1
        while ALPHABET_SIZE**width < count:
            width += 1
        digits[int(length)] = min(width, int(length))
    return lengths, ranks, digits


def make_plan(
    config: CalibratedConfig,
    *,
    target_messages: int,
    seed: str,
    extra_profile_fields: list[str] | None = None,
    content_style: str = "filler",
) -> Plan:
    """Draw the dataset's plan from the seed's plan stream (see module doc)."""
    if target_messages < 1:
        raise ShapePipelineError("--target-messages: must be at least 1")
    meta = config.calibration_metadata
    if meta.window_end <= meta.window_start:
        raise ShapePipelineError("config: calibration_metadata.window_end must be after window_start")
    rng = seeds.stream(seed, seeds.PLAN)
    counts = draw_message_counts(config, rng, target_messages)
    types, type_index = draw_categories(config.conversation_generation.type_distribution, rng, counts.size)
    users = user_count(config, target_messages)
    members = draw_member_counts(config, types, type_index, users, rng)
    activity = sample(config.message_generation.messages_per_sender, rng, users).astype(np.float64)
    activity = np.maximum(activity, 1e-3)
    popularity = activity**MEMBERSHIP_EXPONENT
    cdf = np.cumsum(popularity / popularity.sum())
    cdf[-1] = 1.0
    lengths = np.maximum(sample(config.user_generation.username_length, rng, users), 1)
    lengths, ranks, digits = username_ranks(lengths)
    return Plan(
        config=config,
        seed=seed,
        target_messages=target_messages,
        window_start=meta.window_start,
        window_end=meta.window_end,
        warp=build_time_warp(config.message_generation.temporal, meta.window_start, meta.window_end),
        conversation_types=types,
        message_counts=counts,
        conversation_type=type_index,
        member_counts=members,
        user_activity=activity,
        membership_cdf=cdf,
        username_length=lengths,
        username_rank=ranks,
        username_suffix=digits,
        extra_profile_fields=list(extra_profile_fields or []),
        content_style=content_style,
    )
