"""Generation partitions: a fixed split of a plan's shards into independently loadable parts.

A dataset is made of shards (`plan.user_shards` blocks of users, `plan.conversation_shards`
blocks of conversations with their members and messages), each drawn from its own seed stream,
so any process can make any shard. A partition owns a fixed set of shards: "users" owns every
user shard; "conversations-<i>" owns the i-th of CONVERSATION_PARTITIONS contiguous ranges of
conversation shards (near-equal in size, some empty in a tiny plan). The partitions' shards
together are exactly the plan's, each once, in plan order: generating all partitions, in any
order and any processes, gives the rows of the single-process path.

The number of partitions is fixed (not a function of the plan) so the keys can be declared once
(a Dagster `StaticPartitionsDefinition`) whatever the size asked for.
"""

from __future__ import annotations

import hashlib
import json

from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.generation.plan import Plan

USERS_PARTITION = "users"
CONVERSATION_PARTITIONS = 8  # never change without a new fingerprint: it decides which shards a key owns
PARTITION_KEYS: tuple[str, ...] = (USERS_PARTITION,) + tuple(
    f"conversations-{i}" for i in range(CONVERSATION_PARTITIONS)
)

Job = tuple[str, int]  # (kind, shard): kind "users" or "conversations"


def check_key(key: str) -> None:
    if key not in PARTITION_KEYS:
        raise ShapePipelineError(f"unknown generation partition {key!r} (expected one of {', '.join(PARTITION_KEYS)})")


def conversation_range(plan: Plan, index: int) -> range:
    """The conversation shards of partition `conversations-<index>`: a contiguous range."""
    total = plan.conversation_shards
    return range(index * total // CONVERSATION_PARTITIONS, (index + 1) * total // CONVERSATION_PARTITIONS)


def partition_jobs(plan: Plan, key: str) -> list[Job]:
    """The (kind, shard) jobs partition `key` owns, in plan order."""
    check_key(key)
    if key == USERS_PARTITION:
        return [("users", s) for s in range(plan.user_shards)]
    index = int(key.rsplit("-", 1)[1])
    return [("conversations", s) for s in conversation_range(plan, index)]


def plan_jobs(plan: Plan) -> list[Job]:
    """Every job of the plan in plan order (users first): the partitions' jobs in key order."""
    return [job for key in PARTITION_KEYS for job in partition_jobs(plan, key)]


def partition_kind(key: str) -> str:
    """ "users" or "conversations": which tables a partition writes."""
    check_key(key)
    return "users" if key == USERS_PARTITION else "conversations"


def ordered_keys(keys: list[str] | tuple[str, ...]) -> list[str]:
    """`keys` checked, deduplicated, in declaration order."""
    for key in keys:
        check_key(key)
    return [k for k in PARTITION_KEYS if k in set(keys)]


def fingerprint(plan: Plan, target: str) -> str:
    """What a partition's rows depend on: the config, seed, size, content style and extra
    profile fields the plan was drawn from, the partitioning, and `target` (the target's layout
    signature, or a fixed text for Parquet only). Staging of another fingerprint is never published."""
    inputs = {
        "config": plan.config.model_dump_json(),
        "seed": plan.seed,
        "target_messages": plan.target_messages,
        "content_style": plan.content_style,
        "extra_profile_fields": plan.extra_profile_fields,
        "partitions": PARTITION_KEYS,
        "target": target,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
