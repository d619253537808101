"""Text seed -> numpy random streams: one independent stream per (purpose, shard).

A shard is a fixed unit of work (a block of users or of conversations), so its rows depend only
on the seed and the shard's number, never on the chunk size or the number of workers. Streams are
`SeedSequence(entropy, spawn_key=(purpose, shard))`, which is exactly what `spawn` would hand out:
any process can rebuild any shard's stream without the others.
"""

from __future__ import annotations

import hashlib

import numpy as np

DEFAULT_SEED = "shape-pipeline"

# Purposes (the first element of each spawn key); never renumber them.
PLAN = 0
USERS = 1
CONVERSATIONS = 2
TEXT = 3


def entropy_from_text(seed: str) -> int:
    """SHA-256 of the UTF-8 seed text as a 256-bit integer (any text is a valid seed)."""
    return int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest(), "big")


def stream(seed: str, purpose: int, shard: int = 0) -> np.random.Generator:
    """The random stream of one shard of one purpose."""
    sequence = np.random.SeedSequence(entropy_from_text(seed), spawn_key=(purpose, shard))
    return np.random.Generator(np.random.PCG64(sequence))
