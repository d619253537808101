"""When things happen: the daily trend and the weekly waves from the config's weights, bursts
and silences from its gaps, conversation lifetimes and recency.

Messages are laid out on an "activity clock" that runs fast in busy hours and on busy days
and slowly at night (a time warp built from the day-of-window x hour-of-week weights), so
messages follow the waves and the trend. Read through the clock, a gap drawn in activity time
comes out shorter in busy hours and longer across a night; `activity_gap_table` corrects the
gap quantile function for exactly that (a fixed-point iteration on the pooled quantiles), so
the real gaps follow the exported ones.

Inside a shard, each conversation draws its gaps from a band of quantile levels chosen so that
its gaps add up to its span (busy conversations from the low levels: bursts; sparse ones from
the high levels: silences); the bands' pooled level distribution is mapped back to uniform, and
levels are stratified inside each conversation, so the pooled gaps follow the model at any size.
Lifetimes and recency, when the config has them, decide each conversation's span and end first
(`lifetimes.py`); the gaps are then fitted to the span.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy.special import ndtr

from shape_pipeline.contracts import CalibratedConfig, QuantileSplineModel, TemporalWeights
from shape_pipeline.distributions import quantile
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.generation import lifetimes

US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
MAX_CREATION_LEAD_S = 3600.0
SPAN_SHARE = 0.8  # without a lifetime model, a conversation's gaps should fit in this share of the window
MIN_WEIGHT = 1e-3  # an empty hour or day gets (almost) nothing, and the clock stays invertible
IPF_ROUNDS = 60  # day x hour-of-week fitting rounds (converges in a few dozen)
GAP_LEVELS = ndtr(np.linspace(-5.0, 5.3, 640))  # quantile levels of the activity gap table
CORRECTION_STARTS = 256  # gap start positions (spread evenly over the activity clock)
CORRECTION_ROUNDS = 8
BAND_GRID = 4096  # raw levels on which the bands' pooled distribution is worked out
BAND_STEPS = np.linspace(-1.0, 1.0, 1025)[1:-1]  # band parameter: <0 is [0, 1+s], >0 is [s, 1]
BAND_ROUNDS = 3


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch (UTC)."""
    return int(round(moment.timestamp() * US))


@dataclass(frozen=True)
class TimeWarp:
    """Piecewise-linear map between activity time and real time (both in µs from the window start)."""

    start_us: int
    length_us: int
    real_edges: np.ndarray
    activity_edges: np.ndarray

    def to_real(self, activity_us: np.ndarray) -> np.ndarray:
        return np.interp(activity_us, self.activity_edges, self.real_edges)

    def to_activity(self, real_us: np.ndarray) -> np.ndarray:
        return np.interp(real_us, self.real_edges, self.activity_edges)

    def periodic_real(self, activity_us: np.ndarray) -> np.ndarray:
        """to_real extended beyond the window by repeating it (for gaps that would run past the end)."""
        laps, rest = np.divmod(activity_us, float(self.length_us))
        return self.to_real(rest) + laps * self.length_us

    def key(self) -> tuple[int, int, int]:
        return (self.start_us, self.length_us, hash(self.activity_edges.tobytes()))


def hour_weights(temporal: TemporalWeights) -> np.ndarray:
    """7 x 24 weights (Monday first, UTC), from the grid or from hourly x day-of-week."""
    if temporal.hour_by_day_of_week is not None:
        grid = np.asarray(temporal.hour_by_day_of_week, dtype=np.float64)
    else:
        grid = np.outer(np.asarray(temporal.day_of_week, dtype=np.float64), np.asarray(temporal.hourly, dtype=np.float64))
    return _floored_shares(grid)


def _floored_shares(values: np.ndarray) -> np.ndarray:
    values = np.maximum(np.asarray(values, dtype=np.float64), 0.0)
    if values.sum() <= 0:
        values = np.ones_like(values)
    values = values / values.mean()
    values = np.maximum(values, MIN_WEIGHT)
    return values / values.sum()


def window_days(window_start: datetime, window_end: datetime) -> int:
    """UTC days of the window counted from its start (a partial last day counts)."""
    return -(-(to_us(window_end) - to_us(window_start)) // DAY_US)


def daily_shares(temporal: TemporalWeights, days: int) -> np.ndarray | None:
    """The trend: one share per day of the window (None without `temporal.daily`: no trend)."""
    if temporal.daily is None:
        return None
    if len(temporal.daily) != days:
        raise ShapePipelineError(
            f"config: message_generation.temporal.daily has {len(temporal.daily)} weights, "
            f"but the window has {days} days"
        )
    return _floored_shares(np.asarray(temporal.daily, dtype=np.float64))


def fit_intensity(
    day: np.ndarray, cell: np.ndarray, duration: np.ndarray, days: np.ndarray | None, cells: np.ndarray
) -> np.ndarray:
    """Messages per real µs in each hour bin, so that the hour-of-week cells' shares of the
    window hold and, with a trend, the days' shares too (iterative proportional fitting of
    day x cell). Without a trend every day has the same factor."""
    day_factor = np.ones(int(day.max()) + 1)
    cell_factor = np.ones(cells.size)
    for _ in range(IPF_ROUNDS if days is not None else 1):
        mass = duration * day_factor[day] * cell_factor[cell]
        cell_factor *= cells / np.maximum(np.bincount(cell, weights=mass, minlength=cells.size), 1e-300)
        if days is not None:
            mass = duration * day_factor[day] * cell_factor[cell]
            day_factor *= days / np.maximum(np.bincount(day, weights=mass, minlength=days.size), 1e-300)
    return day_factor[day] * cell_factor[cell]


def build_time_warp(temporal: TemporalWeights, window_start: datetime, window_end: datetime) -> TimeWarp:
    """The activity clock of the window: each real hour lasts its day x hour-of-week weight in activity time."""
    start, end = to_us(window_start), to_us(window_end)
    first_hour = start // HOUR_US
    last_hour = -(-end // HOUR_US)
    hours = np.arange(first_hour, last_hour)
    edges = np.clip(np.append(hours, last_hour) * HOUR_US, start, end) - start
    cell = ((hours // 24 + EPOCH_WEEKDAY) % 7) * 24 + hours % 24
    duration = np.diff(edges).astype(np.float64)
    day = np.minimum(edges[:-1] // DAY_US, window_days(window_start, window_end) - 1)
    days = daily_shares(temporal, window_days(window_start, window_end))
    cells = hour_weights(temporal).reshape(-1)
    # A cell of the week that the window does not hold cannot receive its share: drop it.
    present = np.bincount(cell, weights=duration, minlength=cells.size) > 0
    cells = np.where(present, cells, 0.0) / cells[present].sum()
    intensity = fit_intensity(day, cell, duration, days, cells)
    activity = np.concatenate([[0.0], np.cumsum(duration * intensity)])
    activity *= (end - start) / activity[-1]
    return TimeWarp(start, end - start, edges.astype(np.float64), activity)


_GAP_TABLES: dict[tuple[int, int], tuple[object, object, np.ndarray]] = {}


def activity_gap_table(model: QuantileSplineModel, warp: TimeWarp) -> np.ndarray:
    """Activity-time gaps (seconds) at GAP_LEVELS whose real lengths, read through the clock
    from starts that follow the clock, have the model's quantiles.

    The clock shrinks a gap in a busy hour and stretches one across a night, so read through it
    the pooled gaps are the drawn ones spread out (p99 +60% on a strong daily wave). Each round
    scales the activity gap at each level by target / realized real quantile; cached per
    model and clock object (a few ms, once per process).
    """
    key = (id(model), id(warp))
    cached = _GAP_TABLES.get(key)
    if cached is not None and cached[0] is model and cached[1] is warp:
        return cached[2]
    target = quantile(model, GAP_LEVELS) * US
    weight = np.gradient(GAP_LEVELS)
    start_a = (np.arange(CORRECTION_STARTS) + 0.5) / CORRECTION_STARTS * warp.length_us
    start_r = warp.to_real(start_a)
    gaps = target.copy()
    for _ in range(CORRECTION_ROUNDS):
        real = warp.periodic_real(start_a[:, None] + gaps[None, :]) - start_r[:, None]
        order = np.argsort(real, axis=None)
        cumulative = np.cumsum(np.broadcast_to(weight, real.shape).reshape(-1)[order])
        realized = np.interp(GAP_LEVELS * cumulative[-1], cumulative, real.reshape(-1)[order])
        gaps = np.maximum.accumulate(np.where(realized > 0, gaps * target / np.maximum(realized, 1e-9), target))
    if len(_GAP_TABLES) > 64:
        _GAP_TABLES.clear()
    _GAP_TABLES[key] = (model, warp, gaps / US)
    return gaps / US


def uniform_interp(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """np.interp(x, linspace(0, 1, len(values)), values) for x in [0, 1], without a search."""
    cells = values.size - 1
    position = np.clip(x, 0.0, 1.0) * cells
    index = np.minimum(position.astype(np.int64), cells - 1)
    low = values[index]
    return low + (position - index) * (values[index + 1] - low)


def band_cdf(lo: np.ndarray, hi: np.ndarray, weight: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Pooled CDF on `grid` of levels drawn uniformly from [lo_i, hi_i] with weights (sum 1)."""
    slope = weight / np.maximum(hi - lo, 1e-12)
    knots = np.concatenate([lo, hi])
    coef = np.concatenate([slope, -slope])
    order = np.argsort(knots, kind="stable")
    c1 = np.concatenate([[0.0], np.cumsum(coef[order])])
    c2 = np.concatenate([[0.0], np.cumsum((coef * knots)[order])])
    index = np.searchsorted(knots[order], grid, side="right")
    cdf = np.clip(grid * c1[index] - c2[index], 0.0, 1.0)
    cdf[-1] = 1.0
    return np.maximum.accumulate(cdf)


def band_bounds(step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The band of levels for a band parameter: [0, 1 + s] below 0 (bursts), [s, 1] above (silences)."""
    return np.maximum(step, 0.0), np.minimum(1.0 + step, 1.0)


def choose_bands(mean_gap: np.ndarray, slots: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each conversation's band of raw levels, and the gap at each raw level (on BAND_GRID:
    the table read at the pooled level the raw level maps to), such that a conversation's mean gap is `mean_gap` and the pooled levels are
    uniform. Solved by a few rounds of: bands for the current map, map for the bands."""
    grid = np.linspace(0.0, 1.0, BAND_GRID + 1)
    weight = slots / max(float(slots.sum()), 1.0)
    pooled = grid.copy()
    lo = np.zeros(slots.size)
    hi = np.ones(slots.size)
    step_lo, step_hi = band_bounds(BAND_STEPS)
    for _ in range(BAND_ROUNDS):
        values = np.interp(pooled, GAP_LEVELS, table)
        integral = np.concatenate([[0.0], np.cumsum((values[1:] + values[:-1]) / 2)]) / BAND_GRID
        means = (uniform_interp(step_hi, integral) - uniform_interp(step_lo, integral)) / (step_hi - step_lo)
        means = np.maximum.accumulate(means) + np.linspace(0.0, 1e-9, means.size)
        lo, hi = band_bounds(np.interp(mean_gap, means, BAND_STEPS))
        pooled = band_cdf(lo, hi, weight, grid)
    return lo, hi, np.interp(pooled, GAP_LEVELS, table)


def stratified_slots(rng: np.random.Generator, slots: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """For each gap slot, a level in [0, 1) stratified within its conversation, in random-looking
    order (stratum = a * j + b mod m with a random a coprime to m: a permutation without a sort)."""
    m = np.maximum(slots, 1)
    a = rng.integers(1, np.maximum(m, 2))
    for _ in range(8):
        bad = np.gcd(a, m) != 1
        if not bad.any():
            break
        a[bad] = rng.integers(1, np.maximum(m[bad], 2))
    a = np.where(np.gcd(a, m) == 1, a, 1)
    b = rng.integers(0, m)
    j = np.arange(owner.size) - (np.cumsum(slots) - slots)[owner]
    size = m[owner]
    stratum = (a[owner] * j + b[owner]) % size
    return (stratum + rng.random(owner.size)) / size


def draw_gaps(
    rng: np.random.Generator, slots: np.ndarray, owner: np.ndarray, mean_gap: np.ndarray, table: np.ndarray
) -> np.ndarray:
    """Activity gaps (seconds) of every slot, grouped by conversation (see module doc)."""
    lo, hi, values = choose_bands(mean_gap, slots, table)
    raw = lo[owner] + (hi - lo)[owner] * stratified_slots(rng, slots, owner)
    return uniform_interp(raw, values)


def fit_spans(gaps: np.ndarray, slots: np.ndarray, owner: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Gaps changed so each conversation's add up to its span. Only the part of each gap above
    the conversation's mean gap (span / slots) is stretched or shrunk, by one factor per
    conversation, so its short gaps (the bursts) stay as drawn; a conversation without such a
    part has its gaps scaled."""
    mean = span / np.maximum(slots, 1)
    total = np.bincount(owner, weights=gaps, minlength=slots.size).astype(np.float64)
    above = np.maximum(gaps - mean[owner], 0.0)
    room = np.bincount(owner, weights=above, minlength=slots.size)
    factor = np.where(room > 0, 1.0 - (total - span) / np.maximum(room, 1e-300), 1.0)
    out = gaps - above + above * factor[owner]
    scale = np.where(room > 0, 1.0, span / np.maximum(total, 1e-300))
    return np.where((total > 0)[owner], out * scale[owner], mean[owner])


def capped_means(slots: np.ndarray, longest: float, full_mean: float) -> np.ndarray:
    """Mean gap per conversation when gaps come first: a busy conversation whose gaps would not
    fit in `longest` at the pooled mean gets the mean that fits; the others share what the busy
    ones leave, so that the pooled mean stays the model's."""
    allowance = longest / np.maximum(slots, 1)
    mean = np.minimum(allowance, full_mean)
    total = full_mean * float(slots.sum())
    for _ in range(4):
        capped = mean >= allowance
        free = float(slots[~capped].sum())
        if free <= 0:
            break
        rest = (total - float((allowance * slots)[capped].sum())) / free
        mean = np.where(capped, allowance, np.minimum(rest, allowance))
    return mean


def budget_table(table: np.ndarray, budget: float, top: float, longest: float) -> np.ndarray:
    """The gap table with its mean moved to `budget` (the spans' total over the gaps' number) by
    stretching or shrinking only the part above the model's top knot `top`, the tail no export
    pins down; only when the tail alone cannot give enough is the whole table scaled.

    Lifetimes, messages per conversation and gaps come from three models whose tails are
    extrapolated; their totals rarely agree, and this is where the difference goes.
    """
    mean = float(np.trapezoid(table, GAP_LEVELS))
    if budget <= 0 or mean <= 0:
        return table
    tail = top < GAP_LEVELS
    base = float(np.interp(top, GAP_LEVELS, table))
    excess = np.where(tail, table - base, 0.0)
    room = float(np.trapezoid(excess, GAP_LEVELS))
    factor = 1.0 + (budget - mean) / room if room > 0 else 1.0
    out = np.minimum(table - excess + excess * max(factor, 0.0), max(longest, base))
    rest = float(np.trapezoid(out, GAP_LEVELS))
    return out * (budget / rest) if factor < 0 and rest > 0 else out


def message_times(
    rng: np.random.Generator,
    counts: np.ndarray,
    config: CalibratedConfig,
    warp: TimeWarp,
) -> tuple[np.ndarray, np.ndarray]:
    """Message times (µs since epoch, ascending within each conversation) and conversation creation times.

    With a lifetime model, each conversation's lifetime is drawn first (rank-correlated with
    its message count) and its end placed by the recency shares; its gaps are then drawn to
    fill that span. Without one, gaps are drawn first (a busy conversation's from low levels
    so that they fit in SPAN_SHARE of the window) and the span follows. Every message lies in
    [window start, window end); each conversation is created at or before its first message,
    inside the window.
    """
    k = counts.size
    slots = np.maximum(counts - 1, 0)
    owner = np.repeat(np.arange(k), slots)
    length_s = warp.length_us / US
    table = activity_gap_table(config.message_generation.inter_message_gap_seconds, warp)
    generation = config.conversation_generation
    full_mean = float(np.trapezoid(table, GAP_LEVELS))
    if generation.lifetime_seconds is not None:
        lifetime_s = lifetimes.draw_lifetimes(rng, counts, generation.lifetime_seconds, length_s)
        lower = warp.to_activity(lifetime_s * US) / US
        end_a = lifetimes.place_ends(rng, lower, warp, generation.recency, np.full(k, full_mean))
        start_a = warp.to_activity(np.maximum(warp.to_real(end_a * US) - lifetime_s * US, 0.0)) / US
        span = end_a - start_a
        budget = float(span[slots > 0].sum()) / max(float(slots.sum()), 1.0)
        top = config.message_generation.inter_message_gap_seconds.knots[-1][0]
        table = budget_table(table, budget, top, length_s)
        gaps = draw_gaps(rng, slots, owner, span / np.maximum(slots, 1), table)
        gaps = fit_spans(gaps, slots, owner, span)
    else:
        gaps = draw_gaps(rng, slots, owner, capped_means(slots, SPAN_SHARE * length_s, full_mean), table)
        span = np.bincount(owner, weights=gaps, minlength=k).astype(np.float64)
        squeeze = np.minimum(1.0, 0.98 * length_s / np.maximum(span, 1e-9))
        gaps *= squeeze[owner]
        span *= squeeze
        end_a = lifetimes.place_ends(rng, span, warp, generation.recency, span / np.maximum(slots, 1))
        start_a = end_a - span
    return lay_out(rng, counts, gaps, start_a, warp)


def lay_out(
    rng: np.random.Generator, counts: np.ndarray, gaps: np.ndarray, start_a: np.ndarray, warp: TimeWarp
) -> tuple[np.ndarray, np.ndarray]:
    """Real times from each conversation's activity start and gaps; creation up to an hour before."""
    k = counts.size
    starts = np.cumsum(counts) - counts
    step = np.zeros(int(counts.sum()))
    mask = np.ones(step.size, dtype=bool)
    mask[starts[counts > 0]] = False
    step[mask] = gaps
    total = np.cumsum(step)
    offset = total - np.repeat(total[starts[counts > 0]], counts[counts > 0])
    activity = np.repeat(start_a, counts) + offset
    real = warp.to_real(activity * US)
    rel = np.clip(np.rint(real).astype(np.int64), 0, warp.length_us - 1)
    first = np.zeros(k, dtype=np.int64)
    first[counts > 0] = rel[starts[counts > 0]]
    lead = np.rint(rng.random(k) * np.minimum(MAX_CREATION_LEAD_S * US, first)).astype(np.int64)
    return rel + warp.start_us, first - lead + warp.start_us
