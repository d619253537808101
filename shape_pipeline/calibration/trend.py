"""The trend over the window: one weight per UTC day (growth, decline, launches).

The sampler exports messages per day and zeroes a day holding fewer than `min_cell_count`
messages (the small-cell rule). Such a zero is not "no traffic": it stands for 0 to
min_cell_count - 1 messages. Each zero day of a privacy-checked shape is therefore filled by
linear interpolation between its nearest non-zero neighbours (the nearest one at either end of
the window), capped at min_cell_count - 1, the most the suppressed day can have held. A shape
without a privacy block (exact counts) keeps its zeros. The weights then sum to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shape_pipeline.calibration.temporal import weights


def fill_suppressed(counts: Sequence[int], min_cell_count: int | None) -> np.ndarray:
    """Counts with each suppressed (zero) day interpolated from its neighbours, capped at k - 1."""
    values = np.asarray(counts, dtype=np.float64)
    if min_cell_count is None or min_cell_count <= 1:
        return values
    kept = np.flatnonzero(values > 0)
    if kept.size == 0:
        return values
    days = np.arange(values.size)
    guess = np.interp(days, kept, values[kept])  # constant beyond the outer non-zero days
    zero = values == 0
    values[zero] = np.minimum(guess[zero], float(min_cell_count - 1))
    return values


def daily_weights(counts: Sequence[int], min_cell_count: int | None) -> list[float]:
    """Shares per day of the window summing to 1; raises ValueError when every day is zero."""
    return weights(fill_suppressed(counts, min_cell_count))
