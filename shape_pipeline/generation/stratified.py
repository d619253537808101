"""Per-entity quantities drawn at stratified levels that add up to an exact total.

Messages per conversation must add up to the target, memberships per user to the members the
conversations hold, messages per sender to the target. Stratified draws (distributions.
`sample_stratified`) put every percentile within one order statistic of the model; the sum
then still misses the total by the noise of the top stratum (a Pareto tail). The remainder is
taken from or given to the entities above TAIL_LEVEL only, so p50-p99 stay where the draw put
them: shrinking never takes an entity below the TAIL_LEVEL order statistic, growing at most
doubles the tail. When the tail cannot absorb the remainder, whole entities are added (a
stratified batch of their own) or removed (a seeded random choice) first.
"""

from __future__ import annotations

import numpy as np

from shape_pipeline.distributions import Model, is_integer, sample_stratified

TAIL_LEVEL = 0.99  # the remainder only moves entities above this percentile
MAX_GROWTH = 1.0  # the tail may grow by at most this share of its own total
MAX_ROUNDS = 64


def apportion(amount: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to `weights` that add up to exactly `amount` (largest remainder)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.size == 0:
        return np.zeros(0, dtype=np.int64)
    total = float(weights.sum())
    share = weights / total * amount if total > 0 else np.full(weights.size, amount / weights.size)
    base = np.floor(share).astype(np.int64)
    left = int(amount - base.sum())
    if left > 0:
        base[np.argsort(base - share, kind="stable")[:left]] += 1
    return base


def tail_positions(values: np.ndarray, level: float = TAIL_LEVEL) -> tuple[np.ndarray, float]:
    """Indexes of the entities ranked above the `level` order statistic, and that statistic."""
    n = values.size
    rank = max(int(np.ceil(level * n)) - 1, 0)
    order = np.argsort(values, kind="stable")
    return order[rank + 1 :], float(values[order[rank]]) if n else 0.0


def absorb(values: np.ndarray, gap: float, cap: float, integer: bool) -> np.ndarray | None:
    """`values` with `gap` added to (or taken from) the tail only, or None if the tail cannot."""
    top, threshold = tail_positions(values)
    if top.size == 0:
        return None
    x = values[top].astype(np.float64)
    if gap < 0:
        weights = x - threshold
        if -gap > weights.sum():
            return None
    else:
        weights = np.minimum(x, cap - x).clip(min=0.0)
        if gap > MAX_GROWTH * weights.sum():
            return None
    out = values.copy()
    if integer:
        out[top] += np.sign(gap).astype(np.int64) * apportion(int(abs(gap)), weights)
    else:
        out[top] = x + gap * weights / weights.sum()
    return out


def spread(values: np.ndarray, total: float, floor: float, integer: bool) -> np.ndarray:
    """Last resort for tiny sizes: scale every value (above `floor`) to reach `total`."""
    gap = total - values.sum()
    weights = values - floor if gap < 0 else values.astype(np.float64)
    if weights.sum() <= 0:
        weights = np.ones(values.size)
    out = values.copy()
    if integer:
        out += int(np.sign(gap)) * apportion(int(abs(gap)), weights)
    else:
        out = out + gap * weights / weights.sum()
    return out


def draw_adding_up(
    model: Model,
    rng: np.random.Generator,
    total: float,
    mean: float,
    *,
    floor: float = 1.0,
    cap: float = np.inf,
    max_entities: int | None = None,
    count: int | None = None,
) -> np.ndarray:
    """Stratified draws from `model`, as many as the mean implies, adding up to exactly `total`.

    Integer models give int64 (with `total` an integer), others float64. Every value is at
    least `floor`; at most `max_entities` entities (then the sum is met by spreading). With
    `count`, exactly that many entities: the tail absorbs what it can, the rest is spread.
    """
    integer = is_integer(model)
    limit = max_entities if max_entities is not None else np.iinfo(np.int64).max
    n = count if count is not None else int(min(max(round(total / max(mean, 1e-12)), 1), limit))
    values = np.maximum(sample_stratified(model, rng, n), floor)
    for _ in range(MAX_ROUNDS if count is None else 1):
        gap = total - values.sum()
        if gap == 0:
            return values
        fitted = absorb(values, gap, cap, integer)
        if fitted is not None:
            return fitted
        if count is not None:
            break
        if gap > 0:
            extra = int(min(max(round(gap / max(mean, 1e-12)), 1), limit - values.size))
            if extra <= 0:
                break
            values = np.concatenate([values, np.maximum(sample_stratified(model, rng, extra), floor)])
        else:
            order = rng.permutation(values.size)
            drop = order[: int(np.searchsorted(np.cumsum(values[order]), -gap, side="right"))]
            if drop.size == 0 or drop.size >= values.size:
                break
            values = np.delete(values, np.sort(drop))
    return spread(values, total, floor, integer)


def cap_keeping_sum(values: np.ndarray, cap: int) -> np.ndarray:
    """Integers clipped to `cap`, the excess handed to the others with room (sum unchanged where it fits)."""
    out = values.copy()
    for _ in range(MAX_ROUNDS):
        excess = int(np.maximum(out - cap, 0).sum())
        if excess == 0:
            break
        out = np.minimum(out, cap)
        room = np.flatnonzero(out < cap)
        if room.size == 0:
            break
        out[room] += apportion(min(excess, int((cap - out[room]).sum())), out[room].astype(np.float64))
    return out


FILL_LEVELS = (TAIL_LEVEL, 0.95, 0.9)  # `fill_tail_to` reaches down to these percentiles in turn


def fill_tail_to(values: np.ndarray, total: int, cap: float) -> np.ndarray:
    """Integers whose sum moves towards `total` through the top entities only: those above p99
    first (at least the largest), then above p95 and p90 if that is not enough; growing each
    up to `cap` in proportion to its room, shrinking none below the level's order statistic.
    Unlike `absorb`, growth is not limited to doubling: a room tail whose mean rests on one
    huge room needs that room, not a tail twice as big as drawn."""
    out = values.copy()
    for level in FILL_LEVELS:
        gap = int(total - out.sum())
        if gap == 0 or out.size == 0:
            break
        top, threshold = tail_positions(out, level)
        if top.size == 0:
            top = np.array([int(np.argmax(out))])
        x = out[top].astype(np.float64)
        room = np.maximum(cap - x, 0.0) if gap > 0 else np.maximum(x - threshold, 0.0)
        amount = int(min(abs(gap), np.floor(room.sum())))
        if amount > 0:
            out[top] += int(np.sign(gap)) * apportion(amount, room)
    return out
