"""Named, independent random streams from one seed (a string or an integer).

Each concept (users, rooms, messages, ...) draws from its own child of one `SeedSequence`, so
adding draws to one concept never shifts another's numbers.
"""

from __future__ import annotations

import hashlib

import numpy as np

STREAMS: tuple[str, ...] = ("users", "rooms", "timeline", "messages", "text", "ids", "render")


def entropy_of(seed: str | int) -> int:
    """A 128-bit integer from any seed: integers as given, strings through SHA-256."""
    if isinstance(seed, int) and not isinstance(seed, bool):
        return abs(seed)
    return int.from_bytes(hashlib.sha256(str(seed).encode("utf-8")).digest()[:16], "big")


def stream(seed: str | int, name: str) -> np.random.Generator:
    """The generator of one named concept (names are fixed in `STREAMS`)."""
    key = STREAMS.index(name)
    return np.random.default_rng(np.random.SeedSequence(entropy_of(seed), spawn_key=(key,)))
