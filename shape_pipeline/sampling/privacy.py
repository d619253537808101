"""Privacy rules of the export: small cells, rounded maxima, the salt and keyed tokens.

- Small cells: a count below `min_cell_count` can single out a few people (the one user with
  a 40-character name, the one channel of 9,000 members). Histogram buckets are merged into
  a neighbour, categories into OTHER; fixed-length hour/day arrays zero their small cells.
- A raw maximum (and a high percentile over few entities) is one entity's exact value: it is
  rounded UP to two significant digits, which keeps the tail's scale and hides the value.
- The salt keys every token (HMAC-SHA256, domain-separated), so a token cannot be reversed by
  hashing guessed identifiers; it must be long, secret and rotated, and only its keyed
  fingerprint is ever recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

import numpy as np

from shape_pipeline import settings
from shape_pipeline.errors import PrivacyError
from shape_pipeline.mapping import OTHER

MIN_SALT_LENGTH = 32
SALT_REQUIRED = f"{settings.SALT} environment variable required"

# The only free-text notes an export may carry (the audit allows exactly these).
NOTE_EMPTY_WINDOW = "empty window: no messages between window_start and window_end"
NOTE_TIME_CELLS = "hour and day-of-week cells below min_cell_count are reported as 0"
NOTE_SMALL_DISTRIBUTION = "distributions over fewer entities than min_cell_count are omitted"
NOTE_TAIL_ROUNDING = "percentiles resting on fewer than min_cell_count entities are rounded up to 2 significant digits"
NOTE_NO_SUPPRESSION = "no small-cell suppression (min_cell_count not applied)"
NOTE_SKEW_CELLS = "recency counts, size x members cells and daily counts below min_cell_count are reported as 0"
ALLOWED_NOTES: frozenset[str] = frozenset(
    {
        NOTE_EMPTY_WINDOW,
        NOTE_TIME_CELLS,
        NOTE_SMALL_DISTRIBUTION,
        NOTE_TAIL_ROUNDING,
        NOTE_NO_SUPPRESSION,
        NOTE_SKEW_CELLS,
    }
)


# ------------------------------------------------------------------------------ salt, tokens


MIN_SALT_DISTINCT = 8  # distinct characters: 'aaaa…' or 'abab…' is no secret
MIN_SALT_BITS = 96.0  # entropy estimated from the salt's own character frequencies
SALT_HINT = "generate one, e.g. `openssl rand -hex 32`"


def salt_bits(salt: str) -> float:
    """The salt's entropy estimated from its character frequencies (Shannon, bits per
    character x length): about 4 bits per character for hex, 0 for one repeated character.
    A lower bound it is not (a dictionary word scores high), but it refuses the obvious."""
    counts = Counter(salt)
    per_char = -sum(c / len(salt) * math.log2(c / len(salt)) for c in counts.values())
    return per_char * len(salt)


def require_salt(value: str | None = None) -> str:
    """The salt (argument, else `ANONYMIZATION_SALT`); refuse a missing, short, blank or
    guessable one (the message describes the salt, never shows it)."""
    salt = value if value is not None else os.environ.get(settings.SALT)
    if not salt:
        raise PrivacyError(SALT_REQUIRED)
    if not salt.strip():
        raise PrivacyError(f"{settings.SALT} is only whitespace: {SALT_HINT}")
    if len(salt) < MIN_SALT_LENGTH:
        raise PrivacyError(
            f"{settings.SALT} is too short: it has {len(salt)} characters, "
            f"at least {MIN_SALT_LENGTH} are required"
        )
    distinct, bits = len(set(salt)), salt_bits(salt)
    if distinct < MIN_SALT_DISTINCT or bits < MIN_SALT_BITS:
        raise PrivacyError(
            f"{settings.SALT} is guessable: {distinct} distinct characters, about {bits:.0f} bits by its "
            f"character frequencies (at least {MIN_SALT_DISTINCT} and {MIN_SALT_BITS:.0f} bits required); {SALT_HINT}"
        )
    return salt


def random_salt() -> str:
    """A fresh 64-character salt (demo runs: a new one per extraction)."""
    return secrets.token_hex(32)


def token(salt: str, domain: str, identifier: object) -> str:
    """HMAC-SHA256 of `domain:identifier` under the salt: equal ids in one domain match,
    ids of different domains (a user 7 and a conversation 7) never do."""
    message = f"{domain}:{identifier}".encode()
    return hmac.new(salt.encode(), message, hashlib.sha256).hexdigest()


def salt_fingerprint(salt: str) -> str:
    """A keyed fingerprint that detects salt reuse without revealing or weakening the salt."""
    return token(salt, "shape-pipeline", "salt-fingerprint")[:32]


# ------------------------------------------------------------------------------ rounding


def round_up_2sig(value: float) -> float:
    """Round up to two significant digits: 14_213 -> 15_000, 123 -> 130, 7 -> 7.

    Decimal arithmetic on the value's shortest exact spelling, so the result is never below
    the value (float division lost the last unit of 370_000_000_001) and is monotone: a larger
    value never rounds to a smaller result.
    """
    if value <= 0 or not math.isfinite(value):
        return float(value)
    exact = Decimal(repr(float(value)))
    exponent = exact.adjusted() - 1
    if exponent <= 0 and exact == exact.to_integral_value():
        return float(value)
    step = Decimal(1).scaleb(exponent)
    return float((exact / step).to_integral_value(rounding=ROUND_CEILING) * step)


def round_up_monotone(values: Sequence[float], rounded: Sequence[bool]) -> list[float]:
    """Round up the flagged entries of an ascending vector (percentiles, then max) and keep it
    ascending: a running maximum after rounding.

    Rounding each percentile on its own breaks the order when neighbours are close (p25 3660
    -> 3700 above an exact p50 of 3660). A running maximum keeps every entry at or above its
    true value (each is the maximum of values that are) and lifts an entry only to a value a
    lower one was rounded to.
    """
    out: list[float] = []
    for value, flag in zip(values, rounded, strict=True):
        value = round_up_2sig(value) if flag else float(value)
        out.append(max(value, out[-1]) if out else value)
    return out


# ------------------------------------------------------------------------------ small cells


@dataclass
class PrivacyTally:
    """Counts of what the rules changed, for the shape's `privacy` block."""

    min_cell_count: int
    merged_cells: int = 0
    suppressed_cells: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in ALLOWED_NOTES:
            raise ValueError(f"unknown privacy note: {text}")
        if text not in self.notes:
            self.notes.append(text)


def merge_small_buckets(
    edges: np.ndarray, counts: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Merge every bucket with 0 < count < k into its right neighbour (the last into its left).

    Returns (edges, counts, merged, suppressed). Empty buckets stay (they say "nobody"). When
    the whole histogram holds fewer than k entities nothing can be shown: every non-empty
    bucket is suppressed and empty arrays are returned.
    """
    edges = np.asarray(edges, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    nonzero = int((counts > 0).sum())
    if counts.sum() < k:
        return np.zeros(0), np.zeros(0, dtype=np.int64), 0, nonzero
    out_edges: list[float] = [float(edges[0])]
    out_counts: list[int] = []
    pending = 0  # entities in the open (not yet closed) bucket
    for i, c in enumerate(counts):
        c = int(c)
        if pending == 0 and c == 0:
            out_edges.append(float(edges[i + 1]))
            out_counts.append(0)
            continue
        pending += c
        if pending >= k:
            out_edges.append(float(edges[i + 1]))
            out_counts.append(pending)
            pending = 0
    if pending:
        # A small tail: fold it into the last non-empty bucket (there is one: total >= k).
        last = max(i for i, c in enumerate(out_counts) if c > 0)
        out_counts[last] += pending
        del out_edges[last + 1 : len(out_edges)]
        del out_counts[last + 1 :]
        out_edges.append(float(edges[-1]))
    merged = int(((counts > 0) & (counts < k)).sum())  # every small bucket went somewhere
    return np.asarray(out_edges), np.asarray(out_counts, dtype=np.int64), merged, 0


def merge_small_categories(
    counts: Mapping[str, int], k: int
) -> tuple[dict[str, int], list[str], int, int]:
    """Merge categories with 0 < count < k into OTHER; if OTHER itself stays below k, merge
    the next smallest category in as well (else totals minus the rest would reveal it).

    Returns (counts, names merged into OTHER, merged, suppressed). Merged names leave the
    dict (a 0 would falsely say "nobody"); true zero counts stay.
    """
    out = {name: int(n) for name, n in counts.items()}
    other = out.pop(OTHER, 0)
    small = sorted((n, name) for name, n in out.items() if 0 < n < k)
    merged_names = [name for _, name in small]
    for n, name in small:
        other += n
        del out[name]
    while 0 < other < k:
        rest = sorted((n, name) for name, n in out.items() if n > 0)
        if not rest:
            break
        n, name = rest[0]
        other += n
        del out[name]
        merged_names.append(name)
    merged = len(merged_names)
    suppressed = 0
    if 0 < other < k:
        # Everything together is below k: nothing can be shown.
        suppressed = merged + 1
        merged = 0
        other = 0
    if other:
        out[OTHER] = other
    return out, merged_names, merged, suppressed


def zero_small_cells(values: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Fixed-length arrays (24 hours, 7 days, the grid): small cells become 0."""
    arr = np.asarray(values, dtype=np.int64).copy()
    small = (arr > 0) & (arr < k)
    arr[small] = 0
    return arr, int(small.sum())
