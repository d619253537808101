"""How many messages this machine can plan: refuse an impossible size up front, in one line.

The plan (generation/plan.py) holds a few numbers per user and per conversation in memory
before any row is written; everything after it streams in fixed-size chunks. Without this
check `--target-messages 10000000000000` ends in numpy's "Unable to allocate 284 GiB"
traceback after the database was already opened.

Bytes per entity were measured with tracemalloc on `make_plan` (peak while planning, 0.4 to
4 million messages, seed config and a config of short conversations and many users):
82 bytes per user and 37 to 45 per conversation at the peak, 32 and 33 kept afterwards
(each worker process of `--workers` gets its own copy). Since membership and message
allocation are planned globally (generation/assign.py), the plan also holds arrays per
membership: measured 73 MB peak at 400k messages on a config of many small rooms, about 40
bytes per membership at the peak and 16 kept. The constants below round them up.
"""

from __future__ import annotations

import os
from pathlib import Path

from shape_pipeline.contracts import CalibratedConfig
from shape_pipeline.errors import ShapePipelineError

PEAK_BYTES_PER_USER = 96
PEAK_BYTES_PER_CONVERSATION = 56
PEAK_BYTES_PER_MEMBER = 40
PLAN_OVERHEAD_BYTES = 1 << 20  # grids and temporaries that do not grow with the size (measured 0.2 MB)
KEPT_BYTES_PER_USER = 48
KEPT_BYTES_PER_CONVERSATION = 40
KEPT_BYTES_PER_MEMBER = 16
WORST_MEMBERS_PER_CONVERSATION = 2.0  # without a config: direct messages
MEMORY_SHARE = 0.5  # the plan may take half the memory; chunks, drivers and the OS need the rest
WORST_MESSAGES_PER_CONVERSATION = 1.0  # without a config: every message its own conversation
CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2 ("max" when unlimited)
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


def machine_memory() -> int | None:
    """Physical memory, or the container's memory limit when lower (None if unknown)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    limits = [total]
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits) if total > 0 else None


def ratios(config: CalibratedConfig | None) -> tuple[float, float, float]:
    """(users, conversations, memberships) per message the plan will draw for `config`.

    Without a config: the generator's default users per message and the worst case of one
    message per direct-message conversation.
    """
    from shape_pipeline.generation.plan import (
        DEFAULT_USERS_PER_MESSAGE,
        members_model,
        model_mean,
        users_per_message,
    )

    if config is None:
        conversations = 1.0 / WORST_MESSAGES_PER_CONVERSATION
        return DEFAULT_USERS_PER_MESSAGE, conversations, conversations * WORST_MEMBERS_PER_CONVERSATION
    users = users_per_message(config)
    conversations = 1.0 / max(model_mean(config.conversation_generation.messages_per_conversation), 1.0)
    shares = config.conversation_generation.type_distribution
    members = sum(p * model_mean(members_model(config, name)) for name, p in shares.items() if p > 0)
    return users, conversations, conversations * max(members, 1.0)


def bytes_per_message(config: CalibratedConfig | None = None, *, workers: int = 1) -> float:
    """Plan memory per message at the peak (plus one kept copy per worker process)."""
    users, conversations, members = ratios(config)
    peak = users * PEAK_BYTES_PER_USER + conversations * PEAK_BYTES_PER_CONVERSATION + members * PEAK_BYTES_PER_MEMBER
    kept = users * KEPT_BYTES_PER_USER + conversations * KEPT_BYTES_PER_CONVERSATION + members * KEPT_BYTES_PER_MEMBER
    return peak + (kept * workers if workers > 1 else 0.0)


def plan_bytes(target_messages: int, config: CalibratedConfig | None = None, *, workers: int = 1) -> int:
    """Memory the plan of `target_messages` needs at its peak (plus one copy per worker process)."""
    return int(target_messages * bytes_per_message(config, workers=workers)) + PLAN_OVERHEAD_BYTES


def largest_plannable_messages(
    config: CalibratedConfig | None = None, *, workers: int = 1, memory: int | None = None
) -> int:
    """The most messages whose plan fits in this machine's share of memory (0 if unknown)."""
    available = memory if memory is not None else machine_memory()
    if not available:
        return 0
    budget = available * MEMORY_SHARE - PLAN_OVERHEAD_BYTES
    return max(int(budget / bytes_per_message(config, workers=workers)), 0)


def about(number: int) -> str:
    """`number` rounded down to three significant digits, with thousands separators."""
    step = 10 ** max(len(str(number)) - 3, 0)
    return f"{number // step * step:,}"


def gib(size: int) -> str:
    value = size / 2**30
    return f"{value:.0f} GiB" if value >= 10 else f"{value:.1f} GiB"


def check_plannable(
    target_messages: int,
    option: str = "--target-messages",
    *,
    config: CalibratedConfig | None = None,
    workers: int = 1,
) -> None:
    """Refuse, before anything is opened, a size whose plan cannot fit in this machine's memory.

    With `config` the estimate uses its users per message and mean conversation length;
    without, a conservative default. Unknown memory: no check.
    """
    memory = machine_memory()
    if not memory:
        return
    largest = largest_plannable_messages(config, workers=workers, memory=memory)
    if target_messages > largest:
        raise ShapePipelineError(
            f"{option}: {target_messages:,} messages cannot be planned on this machine "
            f"(at most about {about(largest)} with {gib(memory)} of memory)"
        )
