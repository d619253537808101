"""Conversations, their members and their messages, one shard of conversations at a time.

Who is a member and how many messages each member writes were decided globally in the plan
(generation/assign.py: a user's total spans shards); a shard slices them, puts each
conversation's senders in a seeded random order and draws times, types and contents.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shape_pipeline.distributions import sample_stratified
from shape_pipeline.generation import seeds, text
from shape_pipeline.generation.assign import order_senders
from shape_pipeline.generation.columns import Chunk, ids, int64s, strings, times
from shape_pipeline.generation.plan import DIRECT_MESSAGE, Plan, draw_categories
from shape_pipeline.generation.timeline import message_times


def conversation_chunk(plan: Plan, shard: int, pool: np.ndarray) -> Chunk:
    """Conversations, members and messages of one shard (ids global, from the plan's offsets)."""
    rng = seeds.stream(plan.seed, seeds.CONVERSATIONS, shard)
    rows = plan.conversation_slice(shard)
    k = rows.stop - rows.start
    cfg = plan.config
    counts = plan.message_counts[rows]
    member_counts = plan.member_counts[rows]
    type_index = plan.conversation_type[rows]
    slots = plan.member_slice(rows)
    members = plan.member_users[slots].astype(np.int64)
    senders = order_senders(rng, members, plan.member_messages[slots], counts)
    sent_at, created = message_times(rng, counts, cfg, plan.warp)
    lengths = sample_stratified(cfg.message_generation.content_length, rng, int(counts.sum()))
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
            "conversation_id": int64s(
                np.repeat(np.arange(rows.start + 1, rows.stop + 1, dtype=np.int64), member_counts)
            ),
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
