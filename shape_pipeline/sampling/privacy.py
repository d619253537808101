"""Privacy rules of the export: small cells, rounded maxima, the salt and keyed tokens.

- Small cells: a count below `min_cell_count` can single out a few people (the one user with
  a 40-character name, the one channel of 9,000 members). Histogram buckets are merged into
  a neighbour, categories into OTHER; fixed-length hour/day arrays zero their small cells.
- Derived cells: a total minus the cells shown beside it gives back the cells zeroed (the CMS
  rule: suppress any cell the others give). Margins are sums of the published cells; wherever
  a line's total is published or derivable (the whole table, a grid's rows and columns, the
  days of one weekday) complementary suppression zeroes more cells until no line can point
  at a single zeroed cell (`suppress_with_complements`); the cut points of a partition of a
  published total move across small cells (`suppress_cumulative`).
- A raw maximum is one entity's exact value: it is rounded UP to two significant digits and
  never finer than 10 (`round_up_cap`: 7 -> 10), which keeps the tail's scale and hides the
  value. A percentile resting on fewer than `min_cell_count` entities is an edge of its
  published histogram bucket, so it says nothing the histogram does not.
- Count x mean is a sum, and count x (stddev^2 + mean^2) a sum of squares: with every other
  value known they solve for the last one. Means and standard deviations are rounded to two
  significant digits, coarser where one entity's value would still be pinned
  (`private_moments`).
- A total below `min_cell_count` is reported as "< k" (`total_or_below`).
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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

import numpy as np

from shape_pipeline import settings
from shape_pipeline.errors import PrivacyError
from shape_pipeline.mapping import OTHER
from shape_pipeline.sampling.frequencies import Frequency

MIN_SALT_LENGTH = 32
SALT_REQUIRED = f"{settings.SALT} environment variable required"

# The only free-text notes an export may carry (the audit allows exactly these).
NOTE_EMPTY_WINDOW = "empty window: no messages between window_start and window_end"
NOTE_TIME_CELLS = (
    "hour x day-of-week cells below min_cell_count, and cells a total would give back, are reported as 0; "
    "hourly and day-of-week counts are sums of the reported cells"
)
NOTE_SMALL_DISTRIBUTION = "distributions over fewer entities than min_cell_count are omitted"
NOTE_TAIL_ROUNDING = (
    "percentiles resting on fewer than min_cell_count entities are an edge of their histogram bucket "
    "(lower edge below the median, else the bucket's largest value)"
)
NOTE_NO_SUPPRESSION = "no small-cell suppression (min_cell_count not applied)"
NOTE_SKEW_CELLS = (
    "recency counts, size x members cells and daily counts below min_cell_count, "
    "and cells a total would give back, are reported as 0"
)
NOTE_MOMENTS = (
    "means and standard deviations are rounded to 2 significant digits "
    "(1, or omitted, where that would still pin one entity's value)"
)
NOTE_SMALL_TOTALS = 'totals below min_cell_count are reported as "< min_cell_count"'
ALLOWED_NOTES: frozenset[str] = frozenset(
    {
        NOTE_EMPTY_WINDOW,
        NOTE_TIME_CELLS,
        NOTE_SMALL_DISTRIBUTION,
        NOTE_TAIL_ROUNDING,
        NOTE_NO_SUPPRESSION,
        NOTE_SKEW_CELLS,
        NOTE_MOMENTS,
        NOTE_SMALL_TOTALS,
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
            f"{settings.SALT} is too short: it has {len(salt)} characters, at least {MIN_SALT_LENGTH} are required"
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


CAP_STEP = 10  # `round_up_cap` never publishes a maximum finer than a multiple of this


def round_up_cap(value: float) -> float:
    """A published maximum: `round_up_2sig`, but below 100 up to a multiple of 10 (7 -> 10,
    42 -> 50, 123 -> 130), because there two significant digits are the value itself."""
    if 0 < value < CAP_STEP * CAP_STEP:
        return float(math.ceil(value / CAP_STEP) * CAP_STEP)
    return round_up_2sig(value)


def _round_sig_array(values: np.ndarray | Sequence[float] | float, digits: int) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    magnitude = np.floor(np.log10(np.where(x == 0, 1.0, np.abs(x))))
    step = 10.0 ** (magnitude - digits + 1)
    return np.round(x / step) * step


def round_sig(value: float, digits: int = 2) -> float:
    """The nearest number with `digits` significant digits (17.17 -> 17, 0.8734 -> 0.87)."""
    return float(f"{float(_round_sig_array(value, digits)):.{digits - 1}e}")


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


def merge_small_buckets(edges: np.ndarray, counts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int, int]:
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


def merge_small_categories(counts: Mapping[str, int], k: int) -> tuple[dict[str, int], list[str], int, int]:
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


def suppress_with_complements(values: np.ndarray, k: int, lines: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, int]:
    """Zero the cells below k, then complementary suppression: no line may give a zeroed cell
    back as its total minus its shown cells.

    A line is a set of cells whose total an attacker may know: the whole array always, plus
    `lines` (index arrays into the flattened array: a grid's rows and columns, the days of one
    weekday). A published 0 may be a true 0 or a zeroed cell, so a line hiding 1 to k - 1 is
    safe while that mass can sit in two or more of its zero cells; a zero cell is ruled out
    when another line through it hides nothing. Else the line's smallest shown cell is zeroed
    too (the classic rule: no line with a single suppressed cell). Returns (cells, zeroed).
    """
    true = np.asarray(values, dtype=np.int64)
    flat = true.ravel()
    out = np.where((flat > 0) & (flat < k), 0, flat)
    member = np.zeros((len(lines) + 1, flat.size), dtype=bool)
    member[-1] = True
    for row, line in zip(member, lines, strict=False):
        row[np.asarray(line, dtype=np.int64)] = True
    while True:
        hidden = member.astype(np.int64) @ (flat - out)
        possible = (out == 0) & ~member[hidden == 0].any(axis=0)  # zero cells that may hold a hidden mass
        exposed = [
            i for i in np.flatnonzero((hidden > 0) & (hidden < k))
            if np.count_nonzero(possible & member[i]) < 2 and np.any(out[member[i]] > 0)
        ]  # fmt: skip
        if not exposed:
            return out.reshape(true.shape), int(np.count_nonzero(flat != out))
        shown = np.flatnonzero(member[exposed[0]] & (out > 0))
        out[shown[np.argmin(out[shown])]] = 0


def suppress_cumulative(cells: Sequence[int], k: int) -> list[int]:
    """The cumulative counts C_1 .. C_(m-1) of a partition into m cells whose total is
    published (recency: last 7 days, 7-30, older; a profile field: set, unset), such that no
    difference of two published counts is a small cell. Cells merge as histogram buckets do
    (`merge_small_buckets`); a boundary inside a merged bucket moves across its side that
    holds fewer than k (that side then reads as 0, a small "rest" as nothing)."""
    counts = np.asarray(cells, dtype=np.int64)
    cumulative = np.concatenate([[0], np.cumsum(counts)])
    kept = merge_small_buckets(np.arange(len(counts) + 1), counts, k)[0].astype(np.int64)
    if kept.size == 0:  # the total itself is below k
        return [0] * (len(counts) - 1)
    out: list[int] = []
    for b in range(1, len(counts)):
        lo, hi = int(kept[kept <= b].max()), int(kept[kept >= b].min())
        below, above = cumulative[b] - cumulative[lo], cumulative[hi] - cumulative[b]
        out.append(int(cumulative[lo] if below <= above else cumulative[hi]))
    return out


def total_or_below(total: int, k: int | None) -> int | str:
    """A total as exported: "< k" when it counts 1 to k - 1 entities (they are few enough to
    single out), else exact; 0 stays 0 (nobody), and `k=None` (no privacy) is always exact."""
    return f"< {k}" if k is not None and 0 < total < k else total


# ------------------------------------------------------------------------------ moments


def _same_histogram(values: np.ndarray, moved: np.ndarray, edges: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """Per value: would one entity moved from `values[i]` to `moved[i]` publish the same merged
    histogram? Always within one fixed bucket; across buckets, merged again to see."""
    src = np.searchsorted(edges, values, side="right") - 1
    dst = np.searchsorted(edges, moved, side="right") - 1
    inside = (moved >= edges[0]) & (moved < edges[-1])
    same = inside & (src == dst)
    published = merge_small_buckets(edges, counts, k)[:2]
    for i, j in {*zip(src[inside & ~same].tolist(), dst[inside & ~same].tolist(), strict=True)}:
        shifted = counts.copy()
        shifted[i] -= 1
        shifted[j] += 1
        if all(map(np.array_equal, merge_small_buckets(edges, shifted, k)[:2], published)):
            same |= inside & (src == i) & (dst == j)
    return same


def _same_cap(freq: Frequency, values: np.ndarray, step: int) -> np.ndarray:
    """Per value: would one entity moved by `step` leave the published maximum as it is? Only
    the top value can move the maximum (values are integers)."""
    top = float(freq.values[-1])
    if step > 0 or freq.counts[-1] > 1:
        new_top = max(top + step, top)
    else:
        new_top = max(top + step, float(freq.values[-2])) if len(freq.values) > 1 else top + step
    return (values != top) | (round_up_cap(new_top) == round_up_cap(top))


def private_moments(
    freq: Frequency,
    moments: tuple[float, float],
    edges: np.ndarray,
    counts: np.ndarray,
    k: int,
    shown: Collection[float] = (),
) -> tuple[float | None, float | None]:
    """Mean and standard deviation rounded to 2 significant digits, else 1, else omitted:
    the finest rounding that pins no value held by fewer than k entities.

    Count x mean is the sum and count x (stddev^2 + mean^2) the sum of squares: with every
    other entity known they give the last one's value. A value v is safe when v - 1 or v + 1
    in its place publishes the same block: the same rounded moments (from `moments`, the
    exact mean and stddev), the same histogram (`edges`: the fixed grid, `counts`: its counts
    before merging) and the same maximum. Percentiles stay too, except where v is one
    (`shown`: the exact body percentiles, resting on k entities either side by design).
    """
    n, (mean, std) = freq.total, moments
    var, values = std * std, freq.values.astype(np.float64)
    rare = values[(freq.counts < k) & ~np.isin(values, list(shown))]
    steps = {
        step: _same_histogram(rare, rare + step, edges, counts, k) & _same_cap(freq, rare, step) for step in (-1, 1)
    }
    for digits in (2, 1):
        target = _round_sig_array([mean, std], digits)
        safe = np.zeros(rare.size, dtype=bool)
        for step, block_same in steps.items():
            moved_var = var + step * (2 * rare + step - 2 * mean) / n - step * step / n**2
            moved_std = _round_sig_array(np.sqrt(np.maximum(moved_var, 0.0)), digits)
            same_mean = np.isclose(_round_sig_array(mean + step / n, digits), target[0], rtol=1e-9, atol=0.0)
            safe |= block_same & bool(same_mean) & np.isclose(moved_std, target[1], rtol=1e-9, atol=0.0)
        if safe.all():
            return round_sig(mean, digits), round_sig(std, digits)
    return None, None
