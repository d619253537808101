"""Column-wise strings: invented words and names, message bodies, fake PII, and random ids.

Everything is built from byte buffers and offsets (`pyarrow.StringArray.from_buffers`), never
one Python object per row. Words and names are invented syllables, e-mail domains are the
reserved example domains (RFC 2606) and phone numbers the 555-01xx range reserved for fiction,
so nothing here is a real person's data, yet it looks like the PII a real chat holds.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_CONSONANTS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_VOCABULARY_SEED = 7_2025  # fixed: the vocabulary is part of the code, not of a world's seed
EMAIL_DOMAINS = ("example.org", "example.com", "example.net")
BASE32 = np.frombuffer(b"ybndrfg8ejkmcpqxot1uwisza345h769", dtype=np.uint8)  # Mattermost's NewId alphabet
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
POOL_BYTES = 1 << 21
BLOCK_ROWS = 256


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """About three thousand invented lowercase words of one to four syllables."""
    rng = np.random.default_rng(_VOCABULARY_SEED)
    syllables = np.array([c + v for c in _CONSONANTS for v in _VOWELS])
    counts = rng.choice([1, 2, 2, 3, 3, 4], 8000)
    picks = syllables[rng.integers(0, syllables.size, (8000, 4))]
    words = dict.fromkeys("".join(row[:n]) for row, n in zip(picks.tolist(), counts.tolist(), strict=True))
    return tuple(sorted(words)[:3000])


@lru_cache(maxsize=1)
def names() -> tuple[str, ...]:
    """Capitalized invented names (first and last names alike)."""
    return tuple(w.capitalize() for w in vocabulary() if 4 <= len(w) <= 9)


def strings(values: list[str] | tuple[str, ...]) -> pa.Array:
    return pa.array(list(values), pa.string())


def from_bytes(data: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """The i-th string is the next `lengths[i]` bytes of `data` (ASCII)."""
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buffer = pa.py_buffer(np.ascontiguousarray(data, dtype=np.uint8))
    if offsets[-1] < np.iinfo(np.int32).max:
        return pa.StringArray.from_buffers(lengths.size, pa.py_buffer(offsets.astype(np.int32)), buffer)
    return pa.LargeStringArray.from_buffers(lengths.size, pa.py_buffer(offsets), buffer).cast(pa.string())


def prose_pool(rng: np.random.Generator, size: int = POOL_BYTES) -> np.ndarray:
    """ASCII bytes of chat-like sentences with fake e-mails, phone numbers and full names in them."""
    words, people = vocabulary(), names()
    count = size // 5 + 64
    tokens = np.array(words, dtype=object)[rng.integers(0, len(words), count)]
    ends = np.flatnonzero(rng.random(count) < 0.1)
    tokens[ends] = [t + "." for t in tokens[ends]]
    starts = ends[ends + 1 < count] + 1
    tokens[starts] = [t.capitalize() for t in tokens[starts]]
    for i in np.flatnonzero(rng.random(count) < 0.02).tolist():
        first, last = people[int(rng.integers(len(people)))], people[int(rng.integers(len(people)))]
        kind = int(rng.integers(3))
        if kind == 0:
            tokens[i] = f"{first.lower()}.{last.lower()}@{EMAIL_DOMAINS[int(rng.integers(3))]}"
        elif kind == 1:
            tokens[i] = f"555-01{int(rng.integers(100)):02d}"
        else:
            tokens[i] = f"{first} {last}"
    data = " ".join(tokens.tolist()).encode("ascii")
    return np.frombuffer(data[:size], dtype=np.uint8)


def prose(pool: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Strings of exactly `lengths` characters, each block of rows cut from a random place in the pool."""
    lengths = np.asarray(lengths, dtype=np.int64)
    pieces: list[np.ndarray] = []
    for first in range(0, lengths.size, BLOCK_ROWS):
        need = int(lengths[first : first + BLOCK_ROWS].sum())
        while need > 0:
            take = min(need, pool.size)
            start = int(rng.integers(0, pool.size - take + 1))
            pieces.append(pool[start : start + take])
            need -= take
    data = np.concatenate(pieces) if pieces else np.zeros(0, np.uint8)
    return from_bytes(data, lengths)


def random_ids(rng: np.random.Generator, n: int, width: int, alphabet: np.ndarray) -> pa.Array:
    """n random strings of `width` characters from `alphabet` (collisions at 26 base-32
    characters, 130 bits, are as unlikely as Mattermost's own)."""
    chars = alphabet[rng.integers(0, alphabet.size, n * width)]
    return from_bytes(chars, np.full(n, width, dtype=np.int64))


def uuid4s(rng: np.random.Generator, n: int) -> pa.Array:
    """n random version-4 UUIDs in their 36-character text form."""
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    nibbles = np.stack([raw >> 4, raw & 0x0F], axis=2).reshape(n, 32)
    hexed = HEX[nibbles]
    dash = np.full((n, 1), ord("-"), dtype=np.uint8)
    parts = [hexed[:, :8], dash, hexed[:, 8:12], dash, hexed[:, 12:16], dash, hexed[:, 16:20], dash, hexed[:, 20:]]
    return from_bytes(np.concatenate(parts, axis=1).reshape(-1), np.full(n, 36, dtype=np.int64))


def base36(values: np.ndarray) -> pa.Array:
    """Non-negative integers in base 36 (short unique suffixes)."""
    return pa.array([np.base_repr(v, 36).lower() for v in values.tolist()], pa.string())


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays and constants."""
    return pc.binary_join_element_wise(*parts, "")


def pick(values: tuple[str, ...] | list[str], rng: np.random.Generator, n: int) -> pa.Array:
    """n values drawn uniformly from `values`."""
    return strings(values).take(pa.array(rng.integers(0, len(values), n)))


def unset_as(values: pa.Array, unset: np.ndarray, as_null: np.ndarray) -> pa.Array:
    """`values` where set; where `unset`, NULL or '' (as `as_null` says): apps store both."""
    empty = pc.if_else(pa.array(unset & ~as_null), pa.scalar("", pa.string()), values)
    return pc.if_else(pa.array(unset & as_null), pa.nulls(len(values), pa.string()), empty)
