"""The plan of a dataset: sizes, per-conversation counts and per-user traits, drawn once.

Everything that ties shards together (how many messages each conversation holds, its type and
member count, who its members are and how many messages each writes, each user's username
length) is drawn here from the seed's own plan stream; the shards then fill in rows
independently. Per-entity quantities are stratified draws (generation/stratified.py), so their
percentiles sit on the model's at any size. The plan is small: a few numbers per user, per
conversation and per membership, never per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from shape_pipeline.contracts import CalibratedConfig
from shape_pipeline.distributions import (
    Model,
    quantile,
    sample_stratified,
    stratified_levels,
)
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.generation import seeds
from shape_pipeline.generation.assign import (
    activity_by_load,
    allocate_messages,
    assortative_allocation,
    configuration_membership,
    pair_with_degrees,
    top_counts,
)
from shape_pipeline.generation.bands import BANDS, DEFAULT_BAND, band_messages  # noqa: F401 - re-exported
from shape_pipeline.generation.members import (  # noqa: F401 - DEFAULT_MEMBERS, DIRECT_MESSAGE re-exported
    DEFAULT_MEMBERS,
    DIRECT_MESSAGE,
    draw_member_counts,
    members_model,
)
from shape_pipeline.generation.stratified import apportion, cap_keeping_sum, draw_adding_up, spread
from shape_pipeline.generation.timeline import TimeWarp, build_time_warp

CONVERSATIONS_PER_SHARD = 256  # the unit of randomness for conversations, members and messages
USERS_PER_SHARD = 16_384  # the unit of randomness for users
DEGREE_EXPONENT = 0.75  # without conversations_per_user: degree ~ activity ** this (a real corpus: ~0.77)
MAX_DEGREE_SHARE = 0.5  # no user is in more than this share of the conversations (a spline's far tail can ask for all)
DEFAULT_USERS_PER_MESSAGE = 1 / 24  # when the config's totals hold no messages

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
    user_activity: np.ndarray  # float64 per user: target messages written (0: writes nothing)
    user_degree: np.ndarray  # int64 per user: target conversations (0: member of none)
    member_users: np.ndarray  # per member slot (grouped by conversation): user index
    member_messages: np.ndarray  # int64 per member slot: messages that member writes there
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
        """Member slots of all conversations before `conversation` (index into member_users)."""
        return int(self._member_offsets[conversation])

    def member_slice(self, rows: slice) -> slice:
        """The member slots of the conversations `rows`."""
        return slice(self.member_offset(rows.start), self.member_offset(rows.stop))

    def __post_init__(self) -> None:
        self._message_offsets = np.concatenate([[0], np.cumsum(self.message_counts)])
        self._member_offsets = np.concatenate([[0], np.cumsum(self.member_counts)])


def draw_message_counts(config: CalibratedConfig, rng: np.random.Generator, target: int) -> np.ndarray:
    """Messages per conversation at stratified levels, adding up to exactly `target`.

    As many conversations as the model's mean implies; the small remainder moves only the
    conversations above p99 (generation/stratified.py), so p50-p99 sit where the draw put them.
    """
    model = config.conversation_generation.messages_per_conversation
    return draw_adding_up(model, rng, target, max(model_mean(model), 1.0), floor=1, cap=float(model.max))


def model_mean(model: Model) -> float:
    """The model's mean on a fixed grid of probabilities (no random draws)."""
    u = (np.arange(20_000) + 0.5) / 20_000
    return float(np.mean(quantile(model, u)))


def draw_categories(shares: dict[str, float], rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    """Category names (positive shares only, in the config's order) and n indexes at stratified levels."""
    names = [name for name, p in shares.items() if p > 0]
    if not names:
        raise ShapePipelineError("config: a type distribution has no category with a positive share")
    probabilities = np.array([shares[name] for name in names], dtype=np.float64)
    cdf = np.cumsum(probabilities / probabilities.sum())
    cdf[-1] = 1.0
    return names, np.searchsorted(cdf, stratified_levels(rng, n), side="right").astype(np.int8)


def users_per_message(config: CalibratedConfig) -> float:
    """The shape's users per message; the default when a total is 0 or only known as "< k"."""
    users, messages = config.totals.count("users"), config.totals.count("messages")
    return users / messages if users and messages else DEFAULT_USERS_PER_MESSAGE


def user_count(config: CalibratedConfig, target: int) -> int:
    """Users scale with the shape's users-per-message ratio (at least 2)."""
    return max(int(round(target * users_per_message(config))), 2)


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


def draw_user_targets(
    config: CalibratedConfig, rng: np.random.Generator, users: int, member_counts: np.ndarray, target: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(member counts, conversations per user, activity targets) for `users` users.

    Members: as many users as `conversations_per_user`'s mean implies, each with a stratified
    degree, the degrees adding up to the member slots (member counts are clipped to the members).
    Senders: `sender_share` of the users, else as many as `messages_per_sender`'s mean implies,
    at most the members; their stratified activity targets add up to the target (handed to users
    later, by load: assign.activity_by_load). Without `conversations_per_user` the members are the
    senders (plus lurkers where a room needs more members), with degree 1 + a share of the other
    slots in proportion to activity ** DEGREE_EXPONENT.
    Degrees are capped at MAX_DEGREE_SHARE of the conversations (the excess goes to the others)
    and go to random user indexes (users of degree 0 are in no conversation).
    """
    gen = config.user_generation
    k = member_counts.size
    mps = config.message_generation.messages_per_sender
    mean_mps = max(model_mean(mps), 1.0)
    wanted = round(gen.sender_share * users) if gen.sender_share else round(target / mean_mps)
    slots = int(member_counts.sum())
    if gen.conversations_per_user is not None:
        cpu = gen.conversations_per_user
        degrees = draw_adding_up(cpu, rng, slots, max(model_mean(cpu), 1.0), floor=1, max_entities=min(users, slots))
        member_counts = np.minimum(member_counts, degrees.size)
        senders = int(min(max(wanted, 1), degrees.size))
        activity = draw_adding_up(mps, rng, target, mean_mps, floor=1, count=senders)
    else:
        senders = int(min(max(wanted, 1), users, slots))
        activity = draw_adding_up(mps, rng, target, mean_mps, floor=1, count=senders)
        member_counts = np.minimum(member_counts, users)
        n_members = int(max(senders, member_counts.max(initial=1)))
        weights = np.zeros(n_members)
        weights[:senders] = activity.astype(np.float64) ** DEGREE_EXPONENT
        degrees = 1 + apportion(int(member_counts.sum()) - n_members, weights)
    slots = int(member_counts.sum())
    cap = min(k, max(int(k * MAX_DEGREE_SHARE), -(-slots // degrees.size)))
    degrees = cap_keeping_sum(spread(degrees, slots, 1, True), cap)
    degree_of_user = np.zeros(users, dtype=np.int64)
    degree_of_user[rng.permutation(users)[: degrees.size]] = degrees
    return member_counts, degree_of_user, activity.astype(np.float64)


def who_writes_what(
    config: CalibratedConfig,
    rng: np.random.Generator,
    members: np.ndarray,
    counts: np.ndarray,
    degrees: np.ndarray,
    targets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user per member slot, messages per member slot, activity per user) (generation/assign.py).

    With a top-sender-share model: each conversation's top sender writes its drawn share and
    membership is assortative; without: a random configuration model and plain IPF.
    """
    model = config.conversation_generation.top_sender_share
    if model is None:
        member_users = configuration_membership(rng, members, degrees)
        activity = activity_by_load(rng, members, member_users, counts, degrees.size, targets)
        return member_users, allocate_messages(members, member_users, counts, activity), activity
    tops = top_counts(rng, model, counts, members)
    activity = pair_with_degrees(rng, degrees, targets)
    return assortative_allocation(rng, members, counts, tops, degrees, activity)


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
    members = draw_member_counts(config, types, type_index, counts, users, rng)
    members, degrees, targets = draw_user_targets(config, rng, users, members, target_messages)
    member_users, member_messages, activity = who_writes_what(config, rng, members, counts, degrees, targets)
    lengths = np.maximum(sample_stratified(config.user_generation.username_length, rng, users), 1)
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
        user_degree=degrees,
        member_users=member_users.astype(np.int32 if users < 2**31 else np.int64),
        member_messages=member_messages,
        username_length=lengths,
        username_rank=ranks,
        username_suffix=digits,
        extra_profile_fields=list(extra_profile_fields or []),
        content_style=content_style,
    )
