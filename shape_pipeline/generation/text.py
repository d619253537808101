"""Readable filler text, usernames and profile values, built column-wise in Arrow.

Text comes from a pool of invented words (about 1 MB per run, drawn from the seed); a column
of strings of exact drawn lengths is one contiguous slice of the pool cut at the cumulative
lengths, handed to `pyarrow.StringArray.from_buffers` without a Python object per row. Words
and names are made of syllables, so no real person's name or address appears; e-mails use the
reserved example domains (RFC 2606). The `pii_demo` style sprinkles fake e-mails, 555-01xx
phone numbers and invented full names into the pool, for the demo's fake production database.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shape_pipeline.generation.columns import bools, int64s, strings

POOL_BYTES = 1 << 20
EMAIL_DOMAIN = "example.com"
DEMO_EMAIL_DOMAIN = "example.org"
LETTERS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
DIGITS36 = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
_CONSONANTS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_VOCABULARY_SEED = 20251022  # fixed: the vocabulary is part of the code, not of the seed


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """About two thousand invented lowercase words of one to four syllables."""
    rng = np.random.default_rng(_VOCABULARY_SEED)
    syllables = np.array([c + v for c in _CONSONANTS for v in _VOWELS])
    words: dict[str, None] = {}
    while len(words) < 2000:
        counts = rng.choice([1, 2, 2, 3, 3, 4], 4000)
        picks = syllables[rng.integers(0, syllables.size, (4000, 4))]
        for row, count in zip(picks.tolist(), counts.tolist(), strict=True):
            words.setdefault("".join(row[:count]))
    words = dict.fromkeys(list(words)[:2000])
    return tuple(sorted(words))


@lru_cache(maxsize=1)
def invented_names() -> tuple[str, ...]:
    """Capitalized two- and three-syllable invented names (first and last names alike)."""
    return tuple(w.capitalize() for w in vocabulary() if 4 <= len(w) <= 9)


def build_pool(rng: np.random.Generator, style: str = "filler", size: int = POOL_BYTES) -> np.ndarray:
    """ASCII bytes of invented sentences (the `pii_demo` style adds fake PII every few words)."""
    words = vocabulary()
    names = invented_names()
    count = size // 5 + 64
    picks = rng.integers(0, len(words), count)
    sentence_end = rng.random(count) < 0.09
    tokens = [words[i] for i in picks.tolist()]
    for i in np.flatnonzero(sentence_end).tolist():
        tokens[i] = tokens[i] + "."
        if i + 1 < count:
            tokens[i + 1] = tokens[i + 1].capitalize()
    if style == "pii_demo":
        for i in np.flatnonzero(rng.random(count) < 0.03).tolist():
            first, last = names[int(rng.integers(len(names)))], names[int(rng.integers(len(names)))]
            kind = int(rng.integers(3))
            if kind == 0:
                tokens[i] = f"{first.lower()}.{last.lower()}@{DEMO_EMAIL_DOMAIN}"
            elif kind == 1:
                tokens[i] = f"555-01{int(rng.integers(100)):02d}"
            else:
                tokens[i] = f"{first} {last}"
    data = " ".join(tokens).encode("ascii")
    return np.frombuffer(data[:size], dtype=np.uint8)


def strings_from_bytes(data: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """A string array whose i-th value is the next `lengths[i]` bytes of `data` (ASCII)."""
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] < np.iinfo(np.int32).max:
        return pa.StringArray.from_buffers(
            lengths.size, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(np.ascontiguousarray(data))
        )
    return pa.LargeStringArray.from_buffers(
        lengths.size, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))
    )


def pool_text(pool: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Strings of exactly `lengths` characters: consecutive slices of the pool from a random start."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    start = int(rng.integers(0, pool.size))
    reps = -(-(start + total) // pool.size)
    data = np.tile(pool, reps)[start : start + total] if reps > 1 else pool[start : start + total]
    return strings_from_bytes(data, lengths)


def spread_positions(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row of each character, position of each character inside its row)."""
    rows = np.repeat(np.arange(lengths.size), lengths)
    starts = np.cumsum(lengths) - lengths
    return rows, np.arange(rows.size) - starts[rows]


def usernames(
    lengths: np.ndarray,
    ranks: np.ndarray,
    suffix: dict[int, int],
    rng: np.random.Generator,
    letters: np.ndarray | None = None,
) -> pa.Array:
    """Unique usernames: letters, then the rank in base 36 on the length's digit count.

    The letters are random, or (with `letters`, e.g. run-together invented names) a slice of
    that byte pool, so demo usernames look like names.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    table = np.zeros(max(suffix) + 1, dtype=np.int64)
    for length, width in suffix.items():
        table[length] = width
    rows, pos = spread_positions(lengths)
    place = lengths[rows] - 1 - pos  # digit place counted from the right
    in_suffix = place < table[lengths][rows]
    if letters is None:
        chars = LETTERS[rng.integers(0, LETTERS.size, rows.size)]
    else:
        start = int(rng.integers(0, letters.size))
        chars = np.tile(letters, -(-(start + rows.size) // letters.size))[start : start + rows.size]
    digit = (ranks[rows] // (np.int64(36) ** np.where(in_suffix, place, 0))) % 36
    chars = np.where(in_suffix, DIGITS36[digit], chars).astype(np.uint8)
    return strings_from_bytes(chars, lengths)


@lru_cache(maxsize=1)
def name_letters() -> np.ndarray:
    """Invented names run together in lowercase (the letters of demo usernames)."""
    return np.frombuffer("".join(invented_names()).lower().encode("ascii"), dtype=np.uint8)


def choose(values: tuple[str, ...] | list[str], rng: np.random.Generator, n: int) -> pa.Array:
    """n values drawn uniformly from `values` (one Arrow take, no per-row Python)."""
    return strings(values).take(int64s(rng.integers(0, len(values), n)))


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays and constants."""
    return pc.binary_join_element_wise(*parts, "")


def phone_numbers(rng: np.random.Generator, n: int) -> pa.Array:
    """Fictional 555-01xx numbers (reserved for fiction in North America)."""
    return join("555-01", pc.utf8_lpad(pc.cast(int64s(rng.integers(0, 100, n)), pa.string()), 2, "0"))


def null_where(values: pa.Array, missing: np.ndarray) -> pa.Array:
    """`values` with nulls where `missing` is true."""
    return pc.if_else(bools(missing), pa.nulls(len(values), values.type), values)
