"""Ids as the app writes them: sequential numbers, random text ids, UUIDv4/v7, time-ordered text.

Plans follow what ids look like: 26-character random ids make an index about a third bigger
than short numbers, and random ids scatter new rows over the id index where a sequence (or a
UUIDv7) appends. So each entity's ids take the app's own format (`IdEncoding`; which one is
decided in `schema_writer`: the mapping, else production's format, else the column type).

Every id is a pure vectorized function of (seed, entity, logical id), plus the creation time
for time-ordered formats: a user's id encodes to the same value in users, members and messages,
in any shard, without a lookup table. The random bits come from splitmix64-style mixing; the
part of each id that carries the logical id (62 bits of a UUID, the first up to 64 bits of a
text id) is a bijective mix of it, so ids are unique by construction, not merely likely to be.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shape_pipeline.generation import text

IdKind = Literal["sequential", "random", "uuid4", "uuid7"]

BASE32 = b"ybndrfg8ejkmcpqxot1uwisza345h769"  # Mattermost's NewId alphabet (z-base-32)
SORTED_BASE32 = b"0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's, lowercase: sorts as it counts (ULID-like)
ALPHABETS: dict[str, bytes] = {
    "base32": BASE32,
    "hex": b"0123456789abcdef",
    "digits": b"0123456789",
    "alphanumeric": b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
}
DEFAULT_TEXT_LENGTH = 26  # Mattermost's ids, ULIDs
UUID_LENGTH = 36
SPARSE_BITS = 32  # random text ids by default only where the id space is 2^32 times the ids
TIME_BITS = 48  # milliseconds since the epoch in time-ordered ids (UUIDv7, ULID)

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_UUID_HEX_POSITIONS = np.array([*range(8), *range(9, 13), *range(14, 18), *range(19, 23), *range(24, 36)])


@dataclass(frozen=True)
class IdEncoding:
    """One entity's id format. `length` and `alphabet` are for random text ids;
    `time_ordered` random text ids start with the creation time (ULID-like)."""

    kind: IdKind
    length: int = 0
    alphabet: bytes = BASE32
    time_ordered: bool = False

    @property
    def needs_time(self) -> bool:
        return self.kind == "uuid7" or (self.kind == "random" and self.time_ordered)

    @property
    def width(self) -> int | None:
        """Characters of every id as text (None for sequential ids: it depends on the count)."""
        return UUID_LENGTH if self.kind in ("uuid4", "uuid7") else self.length if self.kind == "random" else None

    def unique_bits(self) -> int:
        """Bits of the bijective part: at most 2^this ids can be told apart."""
        if self.kind == "sequential":
            return 63
        if self.kind != "random":
            return 62
        chars = self.length - (time_chars(len(self.alphabet)) if self.time_ordered else 0)
        return _word_bits(min(chars, chars_per_word(len(self.alphabet))), len(self.alphabet)) if chars > 0 else 0

    def fits(self, largest: int, *, sparse: bool = False) -> bool:
        """Whether ids 1..largest stay distinct (and, with `sparse`, leave the id space sparse
        enough to look random: a random 3-character id space full of ids is a shuffled sequence)."""
        needed = max(int(largest), 1).bit_length() + (SPARSE_BITS if sparse and self.kind == "random" else 0)
        return self.unique_bits() >= needed

    def describe(self) -> str:
        if self.kind == "sequential":
            return "sequential"
        if self.kind in ("uuid4", "uuid7"):
            return "UUIDv4" if self.kind == "uuid4" else "UUIDv7 (time-ordered)"
        order = "time-ordered " if self.time_ordered else ""
        return f"{order}random {self.length}-character text"


def random_text(length: int, alphabet: str | None = "base32", *, time_ordered: bool = False) -> IdEncoding:
    """Random text ids of `length` characters over a named alphabet (base32 when unknown); a
    time-ordered one uses an alphabet that sorts in ASCII order, so ids sort by creation."""
    chars = ALPHABETS.get(alphabet or "base32", BASE32)
    if time_ordered:
        chars = SORTED_BASE32 if chars == BASE32 else bytes(sorted(chars))
    return IdEncoding("random", length, chars, time_ordered)


def chars_per_word(radix: int) -> int:
    """Characters one 64-bit word fills (nearly uniformly)."""
    return max(int(64 // math.log2(radix)), 1)


def time_chars(radix: int) -> int:
    """Characters holding TIME_BITS of milliseconds (10 in base32, as in a ULID)."""
    return math.ceil(TIME_BITS / math.log2(radix))


def _word_bits(chars: int, radix: int) -> int:
    """Bits of a bijective word that `chars` characters of `radix` can spell (at most 64)."""
    return min(64, int(math.floor(chars * math.log2(radix) + 1e-9)))


# ------------------------------------------------------------------------------ mixing


def entity_salt(seed: str, entity: str) -> int:
    """A 64-bit salt per (seed, entity): other seeds, other ids; users and messages never share them."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0ids\0{entity}".encode()).digest()[:8], "big")


def mix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer (a bijection of uint64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def permute(values: np.ndarray, bits: int, salt: int) -> np.ndarray:
    """A bijection of [0, 2^bits): add a salt, then xor-shifts and odd multiplications, each
    one invertible modulo 2^bits (the splitmix64 finalizer at 64 bits)."""
    mask = np.uint64((1 << bits) - 1)
    shifts = [np.uint64(max((bits * s) // 64, 1)) for s in (30, 27, 31)]
    x = (values.astype(np.uint64) + np.uint64(salt % (1 << 64))) & mask
    for shift, multiplier in zip(shifts, (_M1, _M2), strict=False):
        x = ((x ^ (x >> shift)) * multiplier) & mask
    return x ^ (x >> shifts[2])


def stream(values: np.ndarray, salt: int, index: int) -> np.ndarray:
    """The index-th 64-bit random word of each logical id (splitmix64 of a salted id)."""
    start = np.uint64((salt + index * 0x632BE59BD9B4E019) % (1 << 64))
    return mix64(values.astype(np.uint64) * _GAMMA + start)


def uniform(seed: str, purpose: str, values: np.ndarray) -> np.ndarray:
    """A uniform number in [0, 1) per logical id: a pure function of (seed, purpose, id)."""
    return (stream(values, entity_salt(seed, purpose), 0) >> np.uint64(11)).astype(np.float64) * 2.0**-53


# ------------------------------------------------------------------------------ encoding


def _spell(out: np.ndarray, start: int, chars: int, word: np.ndarray, radix: int) -> None:
    """Write `word` in `radix`, most significant character first, into out[:, start:start+chars]
    (shifts and masks for a power of two: numpy's 64-bit division is ten times slower)."""
    bits = radix.bit_length() - 1
    if radix == 1 << bits:
        mask = np.uint64(radix - 1)
        for j in range(chars):
            out[:, start + chars - 1 - j] = (word >> np.uint64(bits * j)) & mask
        return
    base = np.uint64(radix)
    for j in range(chars - 1, -1, -1):
        word, digit = np.divmod(word, base)
        out[:, start + j] = digit


def random_strings(encoding: IdEncoding, salt: int, logical: np.ndarray, times_us: np.ndarray | None) -> pa.Array:
    """Random text ids: [creation time,] a bijective word of the logical id, then random words."""
    radix = len(encoding.alphabet)
    n, length = logical.size, encoding.length
    digits = np.empty((n, length), dtype=np.uint8)
    at = 0
    if encoding.time_ordered:
        assert times_us is not None
        at = min(time_chars(radix), length)
        _spell(digits, 0, at, (times_us // 1000).astype(np.uint64), radix)
    per_word, index = chars_per_word(radix), 1
    if at < length:
        first = min(length - at, per_word)
        _spell(digits, at, first, permute(logical, _word_bits(first, radix), salt), radix)
        at += first
    while at < length:
        chars = min(length - at, per_word)
        _spell(digits, at, chars, stream(logical, salt, index), radix)
        at, index = at + chars, index + 1
    letters = np.frombuffer(encoding.alphabet, dtype=np.uint8)[digits]
    return text.strings_from_bytes(letters.reshape(-1), np.full(n, length, dtype=np.int64))


def uuid_strings(encoding: IdEncoding, salt: int, logical: np.ndarray, times_us: np.ndarray | None) -> pa.Array:
    """RFC 9562 UUIDs as text: version 4 (random) or 7 (48-bit milliseconds first); the 62 bits
    after the variant are a bijective mix of the logical id."""
    low = permute(logical, 62, salt) | np.uint64(0x8000000000000000)
    high = stream(logical, salt, 1)
    if encoding.kind == "uuid7":
        assert times_us is not None
        ms = (times_us // 1000).astype(np.uint64) & np.uint64((1 << TIME_BITS) - 1)
        high = (ms << np.uint64(16)) | np.uint64(0x7000) | (high & np.uint64(0x0FFF))
    else:
        high = (high & ~np.uint64(0xF000)) | np.uint64(0x4000)
    nibbles = np.empty((logical.size, 32), dtype=np.uint8)
    _spell(nibbles, 0, 16, high, 16)
    _spell(nibbles, 16, 16, low, 16)
    out = np.full((logical.size, UUID_LENGTH), ord("-"), dtype=np.uint8)
    out[:, _UUID_HEX_POSITIONS] = np.frombuffer(ALPHABETS["hex"], dtype=np.uint8)[nibbles]
    return text.strings_from_bytes(out.reshape(-1), np.full(logical.size, UUID_LENGTH, dtype=np.int64))


def encode_ids(
    encoding: IdEncoding,
    salt: int,
    logical: pa.Array | pa.ChunkedArray,
    times_us: np.ndarray | None = None,
    *,
    as_text: bool = False,
) -> pa.Array:
    """The ids of `logical` (1-based int64) in `encoding`: int64 for sequential ids (decimal
    text with `as_text`), text otherwise. Time-ordered formats need each row's creation time."""
    if isinstance(logical, pa.ChunkedArray):
        logical = logical.combine_chunks()
    if encoding.kind == "sequential":
        return pc.cast(logical, pa.string()) if as_text else logical
    values = np.asarray(logical.to_numpy(zero_copy_only=False), dtype=np.int64)
    make = uuid_strings if encoding.kind in ("uuid4", "uuid7") else random_strings
    return make(encoding, salt, values, times_us if encoding.needs_time else None)
