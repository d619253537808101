"""When things happen: the daily trend and the weekly waves from the config's weights, bursts
and silences from its gaps, conversation lifetimes and recency.

Messages are laid out on an "activity clock" that runs fast in busy hours and on busy days
and slowly at night (a time warp built from the day-of-window x hour-of-week weights), so
messages follow the waves and the trend. Read through the clock, a gap drawn in activity time
comes out shorter in busy hours and longer across a night; `activity_gap_table` corrects the
gap quantile function for exactly that (a fixed-point iteration on the pooled quantiles), so
the real gaps follow the exported ones.

Inside a shard, each conversation draws its gaps from a band of quantile levels [0, b]: a busy
conversation takes the low levels (bursts) so its gaps fit its span; the bands' pooled level
distribution is mapped back to uniform, and levels are stratified inside each conversation.
Lifetimes and recency, when the config has them, decide each conversation's span and end first
(`lifetimes.py`); the gaps are then fitted to the span (a sparse conversation's shortfall goes
into its longest gaps: silences between bursts). Fitting, recency and the clock move the pooled
gaps, so the activity table is fitted once per config on a fixed reference plan run through
this very code (`fitted_gap_table`) until the pooled real gaps have the model's quantiles.
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
BAND_STEPS = np.linspace(-1.0, 0.0, 513)[1:]  # band parameter s: levels [0, 1 + s]
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
        grid = np.outer(
            np.asarray(temporal.day_of_week, dtype=np.float64), np.asarray(temporal.hourly, dtype=np.float64)
        )
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
    """The band of levels for a band parameter s <= 0: [0, 1 + s] (a busy conversation's bursts)."""
    return np.zeros_like(step), np.minimum(1.0 + step, 1.0)


def choose_bands(
    mean_gap: np.ndarray, slots: np.ndarray, table: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    """Gaps changed so each conversation's add up to its span.

    Gaps that fall short put the difference into the conversation's longest gaps (in proportion
    to each gap squared: a silence or two, its bursts kept as drawn), as in production, where a
    sparse conversation is a few bursts with long silences between them. Gaps that run over
    shrink only the part of each gap above the conversation's mean gap (span / slots). A
    conversation whose gaps are all zero gets its mean gap everywhere.
    """
    k = slots.size
    mean = span / np.maximum(slots, 1)
    total = np.bincount(owner, weights=gaps, minlength=k)
    weight = gaps * gaps
    room = np.bincount(owner, weights=weight, minlength=k)
    short = total < span
    add = np.where(short, (span - total) / np.maximum(room, 1e-300), 0.0)
    above = np.maximum(gaps - mean[owner], 0.0)
    excess = np.bincount(owner, weights=above, minlength=k)
    cut = np.where(short, 0.0, (total - span) / np.maximum(excess, 1e-300))
    out = gaps + weight * add[owner] - above * cut[owner]
    return np.where((room > 0)[owner], out, mean[owner])


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
    inside the window. Gaps come from `fitted_gap_table`, so the pooled real gaps are the model's.
    """
    gaps, start_a = shard_gaps(rng, counts, config, warp, fitted_gap_table(config, warp))
    return lay_out(rng, counts, gaps, start_a, warp)


def shard_gaps(
    rng: np.random.Generator, counts: np.ndarray, config: CalibratedConfig, warp: TimeWarp, table: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Activity gaps (seconds, grouped by conversation) and each conversation's activity start
    (seconds) of one shard, gaps drawn from `table` (activity gaps at GAP_LEVELS)."""
    k = counts.size
    slots = np.maximum(counts - 1, 0)
    owner = np.repeat(np.arange(k), slots)
    length_s = warp.length_us / US
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
    return gaps, start_a


REFERENCE_MESSAGES = 100_000  # messages of the reference plan on which the gap table is fitted
REFERENCE_SHARD = 256  # conversations per reference shard (as CONVERSATIONS_PER_SHARD in the plan)
REFERENCE_SEED = 20_251_201  # the reference plan is the same in every process (deterministic output)
FIT_ROUNDS = 4  # quantile-mapping rounds (4 and 6 measured within 1% of each other)
FIT_LEVELS = (0.001, 0.999)  # levels whose realized quantiles a reference plan pins down
_FITTED: dict[tuple[int, int], tuple[object, object, np.ndarray]] = {}


def reference_counts(config: CalibratedConfig) -> np.ndarray:
    """Messages per conversation of a fixed reference plan (stratified, fixed seed): about
    REFERENCE_MESSAGES messages in whole shards."""
    model = config.conversation_generation.messages_per_conversation
    mean = max(float(np.mean(np.clip(quantile(model, (np.arange(20_000) + 0.5) / 20_000), 1, model.max))), 1.0)
    shards = int(np.clip(round(REFERENCE_MESSAGES / mean / REFERENCE_SHARD), 4, 32))
    rng = np.random.default_rng(REFERENCE_SEED)
    n = shards * REFERENCE_SHARD
    levels = (np.arange(n) + rng.random(n)) / n
    return np.clip(quantile(model, rng.permutation(levels)), 1, model.max).astype(np.int64)


def real_gaps(
    rng: np.random.Generator, counts: np.ndarray, config: CalibratedConfig, warp: TimeWarp, table: np.ndarray
) -> np.ndarray:
    """Real gaps (seconds) of one shard drawn from `table`, as the messages table holds them."""
    gaps, start_a = shard_gaps(rng, counts, config, warp, table)
    times, _ = lay_out(rng, counts, gaps, start_a, warp)
    same = np.repeat(np.arange(counts.size), counts)
    return np.diff(times)[same[1:] == same[:-1]] / US


def remap_levels(table: np.ndarray, target: np.ndarray, real: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """One round of quantile mapping: the level whose realized real gap is the target's takes
    the table value of that level (monotone, unlike scaling by target / realized, which leaves
    plateaus where the clock smears gaps); levels outside `fit` move with their neighbour."""
    realized = real[np.minimum((GAP_LEVELS * real.size).astype(np.int64), real.size - 1)]
    new = np.interp(np.interp(target, realized, GAP_LEVELS), GAP_LEVELS, table)
    first, last = np.flatnonzero(fit)[[0, -1]]
    new[:first] = table[:first] * new[first] / max(table[first], 1e-12)
    new[last + 1 :] = table[last + 1 :] * new[last] / max(table[last], 1e-12)
    return np.maximum.accumulate(new)


def fitted_gap_table(config: CalibratedConfig, warp: TimeWarp) -> np.ndarray:
    """The activity gap table whose real gaps, after everything a shard does to them (bands,
    spans, lifetimes, recency, the clock), have the model's pooled quantiles.

    Fitting a shard's gaps to lifetimes and placing conversations by recency move the pooled
    quantiles away from the table's (measured on simulated worlds: p75 +11%, p99 +13%). A
    fixed reference plan of the config (about REFERENCE_MESSAGES messages, same seed every
    round) is run through the shard code; each round scales the table at each level by target /
    realized real quantile. Cached per config and clock object (once per process).
    """
    key = (id(config), id(warp))
    cached = _FITTED.get(key)
    if cached is not None and cached[0] is config and cached[1] is warp:
        return cached[2]
    model = config.message_generation.inter_message_gap_seconds
    table = activity_gap_table(model, warp)
    target = quantile(model, GAP_LEVELS)
    counts = reference_counts(config)
    shards = [counts[i : i + REFERENCE_SHARD] for i in range(0, counts.size, REFERENCE_SHARD)]
    low, high = FIT_LEVELS
    fit = (low <= GAP_LEVELS) & (high >= GAP_LEVELS)
    for _ in range(FIT_ROUNDS):
        rng = np.random.default_rng(REFERENCE_SEED)
        real = np.sort(np.concatenate([real_gaps(rng, shard, config, warp, table) for shard in shards]))
        if real.size < 2 or not fit.any():
            break
        table = remap_levels(table, target, real, fit)
    if len(_FITTED) > 64:
        _FITTED.clear()
    _FITTED[key] = (config, warp, table)
    return table


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
