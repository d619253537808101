"""When things happen: daily and weekly waves from the config's weights, bursts from its gaps.

Conversations are laid out on an "activity clock" that runs fast in busy hours and slowly at
night (a time warp built from the 24x7 grid, or from hourly x day-of-week weights), so start
times follow the waves. Inside a conversation, gaps come from the gap model: gaps shorter than
`SESSION_BREAK_S` are kept exactly in real seconds (bursts), longer gaps start a new session and
are laid out on the activity clock, so sessions also follow the waves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from shape_pipeline.contracts import CalibratedConfig, QuantileSplineModel, TemporalWeights
from shape_pipeline.distributions import quantile

US = 1_000_000
HOUR_US = 3600 * US
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
MAX_CREATION_LEAD_S = 3600.0
SPAN_SHARE = 0.8  # a conversation's gaps should fit in this share of the window
ALLOCATION_GRID = 2048  # quantile levels on which gap caps and their complement are worked out


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch (UTC)."""
    return int(round(moment.timestamp() * US))


@dataclass(frozen=True)
class TimeWarp:
    """Piecewise-linear map from activity time to real time (both in µs from the window start)."""

    start_us: int
    length_us: int
    real_edges: np.ndarray
    activity_edges: np.ndarray

    shrink: float = 1.0  # geometric mean of the clock's speed, weighted by messages

    def to_real(self, activity_us: np.ndarray) -> np.ndarray:
        return np.interp(activity_us, self.activity_edges, self.real_edges)

    def gap_factor(self, gap_s: np.ndarray) -> np.ndarray:
        """How much longer a gap must be on the activity clock to come out at its drawn length.

        A gap inside an hour is shrunk by the local speed (typically `shrink`); a gap of a day
        or more spans the whole wave and comes out as drawn. In between, log-linear.
        """
        span = np.log(np.maximum(gap_s, 3600.0) / 3600.0) / np.log(24.0)
        return self.shrink ** np.clip(1.0 - span, 0.0, 1.0)


def hour_weights(temporal: TemporalWeights) -> np.ndarray:
    """7 x 24 weights (Monday first, UTC), from the grid or from hourly x day-of-week."""
    if temporal.hour_by_day_of_week is not None:
        grid = np.asarray(temporal.hour_by_day_of_week, dtype=np.float64)
    else:
        grid = np.outer(np.asarray(temporal.day_of_week, dtype=np.float64), np.asarray(temporal.hourly, dtype=np.float64))
    grid = np.maximum(grid, 0.0)
    if grid.sum() <= 0:
        grid = np.ones((7, 24))
    grid = grid / grid.mean()
    return np.maximum(grid, 1e-3)  # a zero cell gets (almost) nothing, and the clock stays invertible


def build_time_warp(temporal: TemporalWeights, window_start: datetime, window_end: datetime) -> TimeWarp:
    """The activity clock of the window: each real hour lasts its weight in activity time."""
    start, end = to_us(window_start), to_us(window_end)
    first_hour = start // HOUR_US
    last_hour = -(-end // HOUR_US)
    hours = np.arange(first_hour, last_hour)
    edges = np.clip(np.append(hours, last_hour) * HOUR_US, start, end) - start
    cell = ((hours // 24 + EPOCH_WEEKDAY) % 7) * 24 + hours % 24
    duration = np.diff(edges).astype(np.float64)
    # The weights are shares of the window's messages: a weekday that occurs five times in the
    # window shares its weight among five days, so the window's totals match the weights.
    occurrences = np.bincount(cell, weights=duration / HOUR_US, minlength=7 * 24)
    weight = hour_weights(temporal).reshape(-1) / np.maximum(occurrences, 1e-9)
    activity = np.concatenate([[0.0], np.cumsum(duration * weight[cell])])
    activity *= (end - start) / activity[-1]
    speed = np.diff(activity) / np.maximum(duration, 1.0)  # activity per real second, per bin
    share = np.diff(activity) / activity[-1]  # messages land in proportion to activity
    shrink = float(np.exp(np.sum(share * np.log(np.maximum(speed, 1e-12)))))
    return TimeWarp(start, end - start, edges.astype(np.float64), activity, shrink)


def segment_cumsum(values: np.ndarray, starts: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at each segment start (segment = segment index of each item)."""
    total = np.cumsum(values)
    base = total[starts] - values[starts]
    return total - base[segment]


def allocate_gaps(rng: np.random.Generator, counts: np.ndarray, model: QuantileSplineModel, warp: TimeWarp) -> np.ndarray:
    """Gaps before each message (0 before a conversation's first), drawn by quantile level.

    A busy conversation whose gaps would not fit in SPAN_SHARE of the window at the model's
    mean draws its levels from [0, cap] (its own gaps then fit on average), and the other
    conversations draw their levels from the complement, so that the pooled levels are still
    uniform and the pooled gaps follow the model (where the shard allows it).
    """
    n = int(counts.sum())
    slots = np.maximum(counts - 1, 0)
    grid = (np.arange(ALLOCATION_GRID) + 0.5) / ALLOCATION_GRID
    values = quantile(model, grid)
    running_mean = np.cumsum(values) / np.arange(1, ALLOCATION_GRID + 1)
    allowance = SPAN_SHARE * warp.length_us / US / np.maximum(slots, 1)
    capped = allowance < running_mean[-1]
    cap = np.where(capped, np.maximum(np.searchsorted(running_mean, allowance, side="right"), 1) / ALLOCATION_GRID, 1.0)
    share = slots / max(int(slots.sum()), 1)
    free = float(share[~capped].sum())
    levels = rng.random(n - counts.size) * np.repeat(cap, slots)
    if free > 0 and capped.any():
        # pooled CDF of levels must be u: the free conversations supply what the capped lack
        supply = (share[capped, None] * np.minimum(grid[None, :] / cap[capped, None], 1.0)).sum(axis=0)
        need = np.maximum.accumulate(np.clip((grid - supply) / free, 0.0, 1.0))
        xs, ys = np.r_[0.0, need, 1.0], np.r_[0.0, grid, 1.0]
        loose = np.repeat(~capped, slots)
        levels[loose] = np.interp(levels[loose], xs, ys)
    gap = np.zeros(n, dtype=np.float64)
    first = np.cumsum(counts) - counts
    mask = np.ones(n, dtype=bool)
    mask[first] = False
    gap[mask] = quantile(model, levels)
    return gap


def message_times(
    rng: np.random.Generator,
    counts: np.ndarray,
    config: CalibratedConfig,
    warp: TimeWarp,
) -> tuple[np.ndarray, np.ndarray]:
    """Message times (µs since epoch, ascending within each conversation) and conversation creation times.

    Gaps are laid out on the activity clock, so messages follow the daily and weekly waves;
    the clock shrinks gaps in busy hours and stretches them at night, so short gaps are first
    lengthened by the clock's typical shrink (`TimeWarp.gap_factor`). Every message lies in
    [window start, window end); each conversation is created at or before its first message,
    inside the window.
    """
    k = counts.size
    conv = np.repeat(np.arange(k), counts)
    starts = np.cumsum(counts) - counts
    gap = allocate_gaps(rng, counts, config.message_generation.inter_message_gap_seconds, warp)
    length_s = warp.length_us / US
    scaled = gap * warp.gap_factor(gap)  # activity seconds
    span = np.bincount(conv, weights=scaled, minlength=k)
    squeeze = np.minimum(1.0, 0.98 * length_s / np.maximum(span, 1.0))  # rare after allocate_gaps
    # stratified origins: a shard's conversations spread evenly over the window, not in clumps
    origin = (rng.permutation(k) + rng.random(k)) / k * np.maximum(length_s - span * squeeze, 0.0)
    scaled *= squeeze[conv]
    clock = warp.to_real((origin[conv] + segment_cumsum(scaled, starts, conv)) * US)
    real = clock
    rel = np.clip(np.rint(real).astype(np.int64), 0, warp.length_us - 1)
    first = rel[starts]
    lead = np.rint(rng.random(k) * np.minimum(MAX_CREATION_LEAD_S * US, first)).astype(np.int64)
    return rel + warp.start_us, first - lead + warp.start_us
