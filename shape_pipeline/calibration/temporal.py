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


def fit_temporal(messages: MessageMetrics) -> tuple[TemporalWeights, list[str]]:
    """The weights and the list of parts that fell back to defaults."""
    fallbacks: list[str] = []
    grid = (
        np.asarray(messages.hour_by_day_of_week, dtype=np.float64)
        if messages.hour_by_day_of_week is not None
        else None
    )
    if messages.hourly_counts is not None:
        hourly = weights(messages.hourly_counts)
    elif grid is not None:
        hourly = weights(grid.sum(axis=0))
    else:
        hourly = weights(defaults.HOURLY)
        fallbacks.append("messages.hourly_counts")
    if messages.day_of_week_counts is not None:
        daily = weights(messages.day_of_week_counts)
    elif grid is not None:
        daily = weights(grid.sum(axis=1))
    else:
        daily = weights(defaults.DAY_OF_WEEK)
        fallbacks.append("messages.day_of_week_counts")
    cells = None
    if grid is not None:
        flat = weights(grid)
        cells = [flat[day * 24 : (day + 1) * 24] for day in range(7)]
    return TemporalWeights(hourly=hourly, day_of_week=daily, hour_by_day_of_week=cells), fallbacks
