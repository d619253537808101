"""Frequency tables -> ShapeMetrics: pure functions, shared by sampling and fidelity.

Percentiles are discrete (`percentile_disc`: the smallest value v with F(v) >= p), so every
exported percentile is a value somebody really has and integer metrics stay integers.
Histogram edges come from fixed, data-independent grids (linear for short lengths,
log-spaced for heavy tails), so an edge never reveals a value; only the last edge depends on
the (rounded) maximum.

With privacy (suppression mode) nothing exported is one entity's exact value: see
`shape_pipeline.sampling.privacy` for the rules and why each is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from shape_pipeline import __version__
from shape_pipeline.contracts import (
    PERCENTILE_KEYS,
    ConversationMetrics,
    DistributionStats,
    Histogram,
    Histogram2D,
    MessageMetrics,
    Percentiles,
    PrivacyReport,
    Recency,
    ShapeMetrics,
    Totals,
    UserMetrics,
    percentile_level,
)
from shape_pipeline.mapping import CONVERSATION_TYPES, MESSAGE_TYPES, OTHER
from shape_pipeline.privacy.dp import histogram_quantiles
from shape_pipeline.sampling.frequencies import MEMBER_EDGES, SIZE_EDGES, Frequency, FrequencyTables
from shape_pipeline.sampling.privacy import (
    NOTE_EMPTY_WINDOW,
    NOTE_MOMENTS,
    NOTE_SKEW_CELLS,
    NOTE_SMALL_DISTRIBUTION,
    NOTE_SMALL_TOTALS,
    NOTE_TAIL_ROUNDING,
    NOTE_TIME_CELLS,
    PrivacyTally,
    merge_small_buckets,
    merge_small_categories,
    private_moments,
    round_up_cap,
    suppress_cumulative,
    suppress_with_complements,
    total_or_below,
)

LINEAR_GRID_CAP = 64  # username lengths: 1-wide buckets up to here, log-spaced beyond
PERMILLE = 1000  # the top sender's share is extracted as round(1000 * share)
SHARE_BUCKETS = 20  # its histogram: 20 equal buckets over (0, 1]


# ------------------------------------------------------------------------------ frequency maths


def _rank(p: float, total: int) -> int:
    """1-based position of the discrete percentile p among `total` entities (as percentile_disc)."""
    return max(1, int(np.ceil(p * total - 1e-9)))


def percentile_from_frequency(freq: Frequency, p: float) -> float:
    """Discrete percentile: the smallest value v with F(v) >= p (NaN for an empty table)."""
    total = freq.total
    if total == 0:
        return float("nan")
    index = int(np.searchsorted(np.cumsum(freq.counts), _rank(p, total), side="left"))
    return float(freq.values[min(index, len(freq.values) - 1)])


def cdf_at(freq: Frequency, x: np.ndarray) -> np.ndarray:
    """F(x): share of entities with value <= x (0 for an empty table)."""
    x = np.asarray(x, dtype=np.float64)
    if freq.total == 0:
        return np.zeros_like(x)
    cum = np.concatenate([[0], np.cumsum(freq.counts)])
    return cum[np.searchsorted(freq.values, x, side="right")] / freq.total


def _mean_std(freq: Frequency) -> tuple[float, float]:
    w = freq.counts.astype(np.float64)
    mean = float(np.average(freq.values, weights=w))
    var = float(np.average((freq.values - mean) ** 2, weights=w))
    return mean, float(np.sqrt(var))


def log_grid(upper: float) -> np.ndarray:
    """0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 32, ... (10 steps a decade) up to the first
    edge above `upper`."""
    edges = [0.0]
    i = 0
    while edges[-1] <= upper:
        value = float(round(10 ** (i / 10)))
        if value > edges[-1]:
            edges.append(value)
        i += 1
    return np.asarray(edges)


def linear_grid(upper: float) -> np.ndarray:
    """1-wide integer buckets up to LINEAR_GRID_CAP, log-spaced beyond; ends above `upper`."""
    if upper < LINEAR_GRID_CAP:
        return np.arange(0.0, np.floor(upper) + 2.0)
    tail = log_grid(upper)
    return np.concatenate([np.arange(0.0, LINEAR_GRID_CAP), tail[tail >= LINEAR_GRID_CAP]])


def histogram(freq: Frequency, edges: np.ndarray) -> np.ndarray:
    """Counts per bucket [edges[i], edges[i+1])."""
    index = np.searchsorted(edges, freq.values, side="right") - 1
    return np.bincount(index, weights=freq.counts, minlength=len(edges) - 1).astype(np.int64)


# ------------------------------------------------------------------------------ stats blocks


def _exact_stats(freq: Frequency, grid) -> DistributionStats:
    """No privacy (synthetic data): exact moments, percentiles, max and histogram."""
    mean, std = _mean_std(freq)
    pct = {key: percentile_from_frequency(freq, percentile_level(key)) for key in PERCENTILE_KEYS}
    top = float(freq.values[-1])
    edges = grid(top)
    return DistributionStats(
        count=freq.total, mean=mean, median=pct["p50"], stddev=std, max=top,
        histogram=Histogram(edges=[float(e) for e in edges], counts=[int(c) for c in histogram(freq, edges)]),
        **pct,
    )  # fmt: skip


def _rests_on_few(p: float, total: int, k: int) -> bool:
    """Fewer than k entities lie beyond percentile p: its value may be one person's."""
    return min(p, 1 - p) * total < k


def _private_stats(freq: Frequency, tally: PrivacyTally, grid) -> DistributionStats:
    """Suppression mode. The histogram runs on the fixed grid up to the maximum rounded up
    (`round_up_cap`), small buckets merged; the max is that cap (or the top bucket's largest
    value when smaller). Mean and stddev are rounded so that they pin no one
    (`private_moments`). Percentiles are exact where they rest on k entities either side or
    their value is held by k entities. The others: below the median, read from the published
    (merged) histogram, linearly inside their bucket (`privacy.dp.histogram_quantiles`, shared
    with DP mode), which tells nothing the histogram does not (the shortest messages of a
    small database stay hidden); above it, rounded up like the max (`round_up_cap`: 2
    significant digits, a multiple of 10 below 100), which keeps a p99 near the tail where a
    bucket edge of a merged tail bucket would be the maximum. Values are integers here
    (lengths, seconds, counts, per mille)."""
    k, n = tally.min_cell_count, freq.total
    fixed = grid(round_up_cap(float(freq.values[-1])))
    fixed_counts = histogram(freq, fixed)
    edges, counts, merged, _ = merge_small_buckets(fixed, fixed_counts, k)  # n >= k: never suppressed
    tally.merged_cells += merged
    unit = 1.0 if np.array_equal(freq.values, np.round(freq.values)) else 0.0  # bucket [a, b) ends at b - unit
    top = min(round_up_cap(float(freq.values[-1])), float(edges[np.flatnonzero(counts)[-1] + 1]) - unit)
    levels = [percentile_level(key) for key in PERCENTILE_KEYS]
    exact = [percentile_from_frequency(freq, p) for p in levels]
    held = dict(zip(freq.values.tolist(), freq.counts.tolist(), strict=True))
    published = histogram_quantiles(edges, counts, levels, integer=bool(unit))
    low: list[float] = []
    high: list[float] = []
    for p, value, read in zip(levels, exact, published, strict=True):
        if _rests_on_few(p, n, k) and held[value] < k:
            tally.note(NOTE_TAIL_ROUNDING)
            value = min(read, top) if p < 0.5 else min(round_up_cap(value), top)
        (low if p < 0.5 else high).append(value)
    # An exact common value can sit above a value read after it (or below a rounded one before
    # it); a running maximum restores the order and lifts a value only to another published one.
    pct = dict(zip(PERCENTILE_KEYS, np.maximum.accumulate([*low, *high]).tolist(), strict=True))
    shown = [v for p, v in zip(levels, exact, strict=True) if not _rests_on_few(p, n, k)]
    mean, std = private_moments(freq, _mean_std(freq), fixed, fixed_counts, k, shown)
    tally.note(NOTE_MOMENTS)
    return DistributionStats(
        count=n, mean=mean, median=pct["p50"], stddev=std, max=top,
        histogram=Histogram(edges=[float(e) for e in edges], counts=[int(c) for c in counts]),
        **pct,
    )  # fmt: skip


def _too_small(freq: Frequency, tally: PrivacyTally | None) -> bool:
    if freq.total == 0:
        return True
    if tally is not None and freq.total < tally.min_cell_count:
        tally.suppressed_cells += 1
        tally.note(NOTE_SMALL_DISTRIBUTION)
        return True
    return False


def distribution_stats(freq: Frequency, tally: PrivacyTally | None, *, grid=log_grid) -> DistributionStats | None:
    """Count, moments, discrete percentiles and a histogram; None for an empty (or, with
    privacy, too small) table."""
    if _too_small(freq, tally):
        return None
    return _exact_stats(freq, grid) if tally is None else _private_stats(freq, tally, grid)


def _categories(
    counts: dict[str, int], known: tuple[str, ...], tally: PrivacyTally | None
) -> tuple[dict[str, int], list[str]]:
    full = {name: int(counts.get(name, 0)) for name in known}
    if counts.get(OTHER):
        full[OTHER] = int(counts[OTHER])
    if tally is None:
        return full, []
    out, merged_names, merged, suppressed = merge_small_categories(full, tally.min_cell_count)
    tally.merged_cells += merged
    tally.suppressed_cells += suppressed
    return out, merged_names


def _combine(freqs: list[Frequency]) -> Frequency:
    if not freqs:
        return Frequency.empty()
    values = np.concatenate([f.values for f in freqs])
    counts = np.concatenate([f.counts for f in freqs])
    uniq, inverse = np.unique(values, return_inverse=True)
    return Frequency(uniq, np.bincount(inverse, weights=counts).astype(np.int64))


def _members(
    freq: FrequencyTables, types: dict[str, int], merged_names: list[str], tally: PrivacyTally | None
) -> dict[str, DistributionStats]:
    """Members per conversation, by the exported conversation categories (merged ones in OTHER)."""
    groups: dict[str, list[Frequency]] = {}
    for name, table in freq.members_per_conversation.items():
        target = OTHER if name in merged_names else name
        groups.setdefault(target, []).append(table)
    out: dict[str, DistributionStats] = {}
    for name in types:
        stats = distribution_stats(_combine(groups.get(name, [])), tally)
        if stats is not None:
            out[name] = stats
    return out


def _grid_lines(rows: int, columns: int) -> list[np.ndarray]:
    """Flat indices of each row and each column of a grid: lines whose totals may be known."""
    index = np.arange(rows * columns).reshape(rows, columns)
    return [*index, *index.T]


def _time_arrays(grid: np.ndarray, tally: PrivacyTally | None) -> tuple[list[int], list[int], list[list[int]]]:
    """The hour x day-of-week grid and its margins. With privacy, small cells are zeroed with
    complements per row (daily_counts give a weekday's total), per column and overall
    (totals.messages), and the margins are sums of the published grid: margins of the true
    grid would give every zeroed cell back as margin minus the rest of its line."""
    grid = np.asarray(grid, dtype=np.int64)
    if tally is not None:
        grid, zeroed = suppress_with_complements(grid, tally.min_cell_count, _grid_lines(*grid.shape))
        tally.suppressed_cells += zeroed
        if zeroed:
            tally.note(NOTE_TIME_CELLS)
    hourly, daily = grid.sum(axis=0), grid.sum(axis=1)
    return [int(x) for x in hourly], [int(x) for x in daily], [[int(x) for x in row] for row in grid]


# ------------------------------------------------------------------------------ skews (issue 10)


def share_grid(upper: float) -> np.ndarray:
    """Fixed per-mille edges of the top sender's share: 0, 50, ..., 950 and 1001, so that a
    conversation with a single sender (1000) falls in the last of the 20 buckets."""
    return np.append(np.arange(0.0, PERMILLE, PERMILLE / SHARE_BUCKETS), PERMILLE + 1.0)


def scaled_stats(stats: DistributionStats | None, divisor: float) -> DistributionStats | None:
    """`stats` of integer units (per mille) expressed in the metric's own unit: every value,
    moment and histogram edge divided by `divisor` (counts unchanged, order kept)."""
    if stats is None:
        return None
    data = stats.model_dump()
    for key in (*PERCENTILE_KEYS, "max", "mean", "median", "stddev"):
        if data[key] is not None:
            data[key] = data[key] / divisor
    if data["histogram"] is not None:
        data["histogram"]["edges"] = [e / divisor for e in data["histogram"]["edges"]]
    return DistributionStats.model_validate(data)


def _suppress(values: np.ndarray, tally: PrivacyTally | None, lines: Sequence[np.ndarray] = ()) -> np.ndarray:
    """Cells below min_cell_count as 0, with complements so that neither the whole nor any of
    `lines` points at a single zeroed cell (`suppress_with_complements`; tallied and noted);
    exact without privacy."""
    values = np.asarray(values, dtype=np.int64)
    if tally is None:
        return values
    out, zeroed = suppress_with_complements(values, tally.min_cell_count, lines)
    tally.suppressed_cells += zeroed
    if zeroed:
        tally.note(NOTE_SKEW_CELLS)
    return out


def _omitted(total: int, cells: int, tally: PrivacyTally | None) -> bool:
    """No block for an empty population, nor (with privacy) for one below min_cell_count:
    every cell would be 0, which would read as "nobody" rather than "too few to show"."""
    if total == 0:
        return True
    if tally is not None and total < tally.min_cell_count:
        tally.suppressed_cells += cells
        tally.note(NOTE_SMALL_DISTRIBUTION)
        return True
    return False


def _cumulative(cells: list[int], tally: PrivacyTally | None) -> list[int]:
    """Cumulative counts of a partition of a published total (`suppress_cumulative`); exact
    without privacy. Each count moved is tallied as a suppressed cell."""
    exact = [int(c) for c in np.cumsum(cells)[:-1]]
    if tally is None:
        return exact
    out = suppress_cumulative(cells, tally.min_cell_count)
    tally.suppressed_cells += sum(a != b for a, b in zip(out, exact, strict=True))
    return out


def _recency(freq: FrequencyTables, tally: PrivacyTally | None) -> Recency | None:
    """Last 7 and last 30 days cut the (published) conversations total into three cells: each
    difference of published counts (7-30 days, older) must be 0 or at least k as well."""
    if _omitted(freq.conversations_total, 2, tally):
        return None
    last_7, last_30, total = freq.active_last_7_days, freq.active_last_30_days, freq.conversations_total
    cut_7, cut_30 = _cumulative([last_7, last_30 - last_7, total - last_30], tally)
    if (cut_7, cut_30) != (last_7, last_30) and tally is not None:
        tally.note(NOTE_SKEW_CELLS)
    return Recency(active_last_7_days=cut_7, active_last_30_days=cut_30)


def nonempty_extent(counts: np.ndarray) -> tuple[slice, slice] | None:
    """Rows and columns from the first to the last non-empty one (None when all are 0)."""
    rows, cols = np.nonzero(counts.any(axis=1))[0], np.nonzero(counts.any(axis=0))[0]
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _size_by_members(freq: FrequencyTables, tally: PrivacyTally | None) -> Histogram2D | None:
    """The size x members grid, small cells zeroed, trimmed to its non-empty extent (edges of
    the kept buckets: fixed powers of two, never data)."""
    if _omitted(int(freq.size_by_members.sum()), int(np.count_nonzero(freq.size_by_members)), tally):
        return None
    # Totals of rows and columns follow from the messages-per-conversation and members
    # histograms wherever their buckets line up with these powers of two, the whole from
    # totals.conversations: every line is complemented.
    return size_members_grid(_suppress(freq.size_by_members, tally, _grid_lines(*freq.size_by_members.shape)))


def size_members_grid(grid: np.ndarray) -> Histogram2D | None:
    """A published size x members grid trimmed to its non-empty extent (the kept buckets' edges
    are fixed powers of two, never data); None when every cell is 0."""
    extent = nonempty_extent(grid)
    if extent is None:
        return None
    rows, cols = extent
    return Histogram2D(
        row_edges=[float(e) for e in SIZE_EDGES[rows.start : rows.stop + 1]],
        column_edges=[float(e) for e in MEMBER_EDGES[cols.start : cols.stop + 1]],
        counts=grid[rows, cols].tolist(),
    )


def percentiles_of(stats: DistributionStats | None) -> Percentiles | None:
    """The percentiles and max of a stats block (messages per conversation is exported so)."""
    return Percentiles(**stats.model_dump(include={*PERCENTILE_KEYS, "max"})) if stats else None


def _daily_counts(freq: FrequencyTables, start: datetime, tally: PrivacyTally | None) -> list[int] | None:
    """Messages per day. With privacy, complemented overall (totals.messages) and per weekday:
    the days of one weekday sum to a row of the hour x day-of-week grid. (A weekday with a
    single small day, in a window under 8 days, has nothing to complement it with; its grid row
    is then below k in every cell, all 0, so its total is not known either.)"""
    days = freq.messages_per_day
    if len(days) == 0 or _omitted(int(days.sum()), int(np.count_nonzero(days)), tally):
        return None
    weekday = (start.astimezone(UTC).weekday() + np.arange(len(days))) % 7
    return [int(x) for x in _suppress(days, tally, [np.flatnonzero(weekday == w) for w in range(7)])]


def _profile(freq: FrequencyTables, tally: PrivacyTally | None) -> dict[str, float]:
    """Share of users with each field set. Each field cuts the (published) users total in two:
    a small "set" is shown as 0, a small "unset" as all (`suppress_cumulative`), so total
    minus the shown part never gives back a small count."""
    n = freq.users_total
    if n == 0 or (tally is not None and n < tally.min_cell_count):
        if n and freq.profile_fields_set:
            tally.suppressed_cells += len(freq.profile_fields_set)  # type: ignore[union-attr]
            tally.note(NOTE_SMALL_DISTRIBUTION)  # type: ignore[union-attr]
        return {}
    return {name: _cumulative([count, n - count], tally)[0] / n for name, count in freq.profile_fields_set.items()}


def _totals(freq: FrequencyTables, tally: PrivacyTally | None) -> Totals:
    """Exact totals; with privacy one of 1 to k - 1 is "< k" (so few people can be singled out).

    Distribution counts are subsets of these totals (senders, members, users with a
    username); their differences (users who wrote nothing, say) are not suppressed: each is
    one count of people without an activity, tied to no published value."""
    k = tally.min_cell_count if tally is not None else None
    totals = Totals(
        users=total_or_below(freq.users_total, k),
        conversations=total_or_below(freq.conversations_total, k),
        messages=total_or_below(freq.messages_total, k),
    )
    below = sum(isinstance(v, str) for v in totals.model_dump().values())
    if tally is not None and below:
        tally.suppressed_cells += below
        tally.note(NOTE_SMALL_TOTALS)
    return totals


# ------------------------------------------------------------------------------ the shape


def shape_from_frequencies(
    freq: FrequencyTables,
    *,
    window_start: datetime,
    window_end: datetime,
    extracted_at: datetime,
    min_cell_count: int | None,
) -> ShapeMetrics:
    """The shape of one window. `min_cell_count=None`: exact, no privacy rules (synthetic data);
    a number: small cells merged or suppressed (with complements), maxima rounded up, tail
    percentiles as bucket edges, moments rounded, small totals "< k", a `privacy` block added.

    An empty window is a well-defined empty shape: totals of 0 (users still counted), zero
    type counts and hour/day arrays, no distribution blocks, and a note saying so.
    """
    tally = PrivacyTally(min_cell_count) if min_cell_count is not None else None
    conv_types, merged_conv = _categories(freq.conversation_types, CONVERSATION_TYPES, tally)
    msg_types, _ = _categories(freq.message_types, MESSAGE_TYPES, tally)
    per_conv = distribution_stats(freq.messages_per_conversation, tally)
    hourly, daily, grid = _time_arrays(freq.hour_by_day_of_week, tally)
    conversations = ConversationMetrics(
        messages_per_conversation_percentiles=(percentiles_of(per_conv)),
        messages_per_conversation_histogram=per_conv.histogram if per_conv else None,
        messages_per_conversation_mean=per_conv.mean if per_conv else None,
        type_distribution=conv_types,
        members_per_conversation=_members(freq, conv_types, merged_conv, tally),
        top_sender_share=scaled_stats(distribution_stats(freq.top_sender_permille, tally, grid=share_grid), PERMILLE),
        lifetime_seconds=distribution_stats(freq.lifetime_seconds, tally),
        recency=_recency(freq, tally),
        size_by_members=_size_by_members(freq, tally),
    )
    messages = MessageMetrics(
        content_length_stats=distribution_stats(freq.content_length, tally),
        type_distribution=msg_types,
        hourly_counts=hourly,
        day_of_week_counts=daily,
        hour_by_day_of_week=grid,
        inter_message_gap_seconds=distribution_stats(freq.gap_seconds, tally),
        messages_per_sender=distribution_stats(freq.messages_per_sender, tally),
        daily_counts=_daily_counts(freq, window_start, tally),
    )
    users = UserMetrics(
        username_length=distribution_stats(freq.username_length, tally, grid=linear_grid),
        conversations_per_user=distribution_stats(freq.conversations_per_user, tally),
        profile_completeness=_profile(freq, tally),
    )
    totals = _totals(freq, tally)
    privacy = None
    if tally is not None:
        if freq.messages_total == 0:
            tally.note(NOTE_EMPTY_WINDOW)
        privacy = PrivacyReport(
            min_cell_count=tally.min_cell_count,
            suppressed_cells=tally.suppressed_cells,
            merged_cells=tally.merged_cells,
            notes=tally.notes,
        )
    return window_shape(window_start, window_end, extracted_at, totals, users, conversations, messages, privacy)


def window_shape(
    window_start: datetime,
    window_end: datetime,
    extracted_at: datetime,
    totals: Totals,
    users: UserMetrics,
    conversations: ConversationMetrics,
    messages: MessageMetrics,
    privacy: PrivacyReport | None,
) -> ShapeMetrics:
    """One window's ShapeMetrics from its parts (exact, k-rule or DP alike): the window's length
    in whole days (at least one), this tool's version."""
    return ShapeMetrics(
        extracted_at=extracted_at,
        sample_window_days=max(1, round((window_end - window_start).total_seconds() / 86_400)),
        window_start=window_start,
        window_end=window_end,
        tool_version=__version__,
        totals=totals,
        users=users,
        conversations=conversations,
        messages=messages,
        privacy=privacy,
    )
