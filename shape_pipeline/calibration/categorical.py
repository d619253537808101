"""Categorical distributions: counts normalised to probabilities that sum to exactly 1.

Known categories with no mass stay in the config as 0.0 (the seed's `CHANNEL: 0.0`), so that an
edit can give them mass. Categories the sampler merged into OTHER or suppressed below its
small-cell threshold stay exactly as the shape reported them: nothing is redistributed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

_DIGITS = 6


def normalize(counts: Mapping[str, float], known: Iterable[str] = ()) -> dict[str, float]:
    """{category: share}, rounded to 6 digits, summing to 1 (rounding residue on the largest).

    `known` categories missing from `counts` are added as 0.0, in their given order first.
    """
    order = list(dict.fromkeys([*known, *counts]))
    total = float(sum(counts.values()))
    if total <= 0:
        raise ValueError("has no positive count")
    shares = {key: round(float(counts.get(key, 0)) / total, _DIGITS) for key in order}
    largest = max(order, key=lambda key: shares[key])
    shares[largest] = round(shares[largest] + (1.0 - sum(shares.values())), _DIGITS)
    return shares
