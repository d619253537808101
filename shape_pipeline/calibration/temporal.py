"""Temporal weights: 24 hourly, 7 day-of-week (Monday first) and, when exported, the 24x7 grid.

Hourly and daily weights come from their own counts, else from the grid's margins, else from
the documented defaults (a diurnal wave, quieter weekends). The grid is kept only when the
shape exported it: the generator then draws (day, hour) jointly, which keeps e.g. late Friday
evenings as busy as production had them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shape_pipeline.calibration import defaults
from shape_pipeline.contracts import MessageMetrics, TemporalWeights

_DIGITS = 8


def weights(counts: Sequence[float] | np.ndarray) -> list[float]:
    """Counts -> shares summing to 1; raises ValueError on negative or all-zero counts."""
    arr = np.asarray(counts, dtype=np.float64)
    if (arr < 0).any():
        raise ValueError("counts must not be negative")
    total = arr.sum()
    if total <= 0:
        raise ValueError("has no positive count")
    return [round(float(x), _DIGITS) for x in (arr / total).ravel()]


def _usable(counts: Sequence[float] | Sequence[Sequence[float]] | None) -> np.ndarray | None:
    """The counts as an array, or None when absent or all zero (every cell suppressed)."""
    if counts is None:
        return None
    arr = np.asarray(counts, dtype=np.float64)
    return arr if arr.sum() > 0 else None


def fit_temporal(messages: MessageMetrics) -> tuple[TemporalWeights, list[str]]:
    """The weights and the list of parts that fell back to defaults (absent or all zero)."""
    fallbacks: list[str] = []
    grid = _usable(messages.hour_by_day_of_week)
    hourly_counts = _usable(messages.hourly_counts)
    daily_counts = _usable(messages.day_of_week_counts)

    def marginal(counts, axis: int, default, field: str):  # noqa: ANN001, ANN202
        """The exported counts, else the grid's margin, else the default (a fallback)."""
        if counts is not None:
            return weights(counts)
        if grid is not None:
            return weights(grid.sum(axis=axis))
        fallbacks.append(field)
        return weights(default)

    hourly = marginal(hourly_counts, 0, defaults.HOURLY, "messages.hourly_counts")
    daily = marginal(daily_counts, 1, defaults.DAY_OF_WEEK, "messages.day_of_week_counts")
    cells = None
    if grid is not None:
        flat = weights(grid)
        cells = [flat[day * 24 : (day + 1) * 24] for day in range(7)]
    return TemporalWeights(hourly=hourly, day_of_week=daily, hour_by_day_of_week=cells), fallbacks
