"""Conversations, their members and their messages, one shard of conversations at a time.

Members are drawn by popularity (activity ** MEMBERSHIP_EXPONENT), distinct within a
conversation; each message's sender is drawn among the conversation's members in proportion
to their activity, so every sender is a member and a few users write most messages.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shape_pipeline.distributions import sample
from shape_pipeline.generation import seeds, text
from shape_pipeline.generation.columns import Chunk, ids, int64s, strings, times
from shape_pipeline.generation.plan import DIRECT_MESSAGE, Plan, draw_categories
from shape_pipeline.generation.timeline import message_times

WEIGHTED_ROUNDS = 8  # redraws of duplicate members by popularity before falling back to uniform
UNIFORM_SHARE = 0.25  # a room with more members than this share of all users is drawn uniformly


def distinct_members(rng: np.random.Generator, counts: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """User indexes of each conversation's members (grouped by conversation), distinct per conversation."""
    n_users = cdf.size
    conv = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    users = np.searchsorted(cdf, rng.random(conv.size), side="right").astype(np.int64)
    starts = np.cumsum(counts) - counts
    for i in np.flatnonzero(counts > UNIFORM_SHARE * n_users).tolist():
        users[starts[i] : starts[i] + counts[i]] = rng.choice(n_users, int(counts[i]), replace=False)
    for round_ in range(10_000):
        key = conv * n_users + users
        order = np.argsort(key, kind="stable")
        dup = order[1:][key[order][1:] == key[order][:-1]]
        if dup.size == 0:
            break
        if round_ < WEIGHTED_ROUNDS:
            users[dup] = np.searchsorted(cdf, rng.random(dup.size), side="right")
        else:
            users[dup] = rng.integers(0, n_users, dup.size)
    return np.minimum(users, n_users - 1)


def pick_senders(
    rng: np.random.Generator, member_counts: np.ndarray, members: np.ndarray, activity: np.ndarray, message_counts: np.ndarray
) -> np.ndarray:
    """For each message, one member of its conversation, in proportion to member activity."""
    k = member_counts.size
    conv = np.repeat(np.arange(k), member_counts)
    weight = activity[members]
    total = np.cumsum(weight)
    starts = np.cumsum(member_counts) - member_counts
    before = total[starts] - weight[starts]
    share = (total - before[conv]) / (total[starts + member_counts - 1] - before)[conv]
    keys = conv + share
    msg_conv = np.repeat(np.arange(k), message_counts)
    index = np.searchsorted(keys, msg_conv + rng.random(msg_conv.size), side="right")
    index = np.clip(index, starts[msg_conv], (starts + member_counts - 1)[msg_conv])
    return members[index]


def conversation_chunk(plan: Plan, shard: int, pool: np.ndarray) -> Chunk:
    """Conversations, members and messages of one shard (ids global, from the plan's offsets)."""
    rng = seeds.stream(plan.seed, seeds.CONVERSATIONS, shard)
    rows = plan.conversation_slice(shard)
    k = rows.stop - rows.start
    cfg = plan.config
    counts = plan.message_counts[rows]
    member_counts = plan.member_counts[rows]
    type_index = plan.conversation_type[rows]
    members = distinct_members(rng, member_counts, plan.membership_cdf)
    senders = pick_senders(rng, member_counts, members, plan.user_activity, counts)
    sent_at, created = message_times(rng, counts, cfg, plan.warp)
    lengths = sample(cfg.message_generation.content_length, rng, int(counts.sum()))
    kinds, kind_index = draw_categories(cfg.message_generation.type_distribution, rng, lengths.size)
    content = text.pool_text(pool, lengths, rng)
    conversation_ids = ids(rows.start, k)
    type_names = strings(plan.conversation_types).take(int64s(type_index))
    direct = plan.conversation_types.index(DIRECT_MESSAGE) if DIRECT_MESSAGE in plan.conversation_types else -1
    names = text.join(text.choose(text.invented_names(), rng, k), " ", text.choose(text.vocabulary(), rng, k))
    conversations = pa.table(
        {
            "id": conversation_ids,
            "type": type_names,
            "name": text.null_where(names, type_index == direct),
            "created_at": times(created),
        }
    )
    member_table = pa.table(
        {
            "conversation_id": int64s(np.repeat(np.arange(rows.start + 1, rows.stop + 1, dtype=np.int64), member_counts)),
            "user_id": int64s(members + 1),
            "joined_at": times(np.repeat(created, member_counts)),
        }
    )
    messages = pa.table(
        {
            "id": ids(plan.message_offset(rows.start), lengths.size),
            "conversation_id": int64s(np.repeat(np.arange(rows.start + 1, rows.stop + 1, dtype=np.int64), counts)),
            "sender_id": int64s(senders + 1),
            "type": strings(kinds).take(int64s(kind_index)),
            "content": content,
            "created_at": times(sent_at),
        }
    )
    return Chunk({"conversations": conversations, "members": member_table, "messages": messages})
