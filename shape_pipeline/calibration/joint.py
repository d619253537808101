"""Members by size: the production's size x members grid as per-row weights.

Row i (conversations with messages in [row_edges[i], row_edges[i+1])) becomes the shares of
its member-count buckets, so the generator reads "given this size, how are member counts
spread". A row without any count (no conversation of that size, or every cell suppressed)
takes the weights of the nearest row that has counts (the smaller size on a tie), so every
row is a distribution and sizes beyond the exported ones (the Pareto tail) keep the members
of the largest exported size.
"""

from __future__ import annotations

import numpy as np

from shape_pipeline.calibration.temporal import weights
from shape_pipeline.contracts import Histogram2D, MembersBySize


def nearest_filled(filled: np.ndarray) -> np.ndarray:
    """For each row index, the nearest index whose row has counts (the lower one on a tie)."""
    rows = np.flatnonzero(filled)
    index = np.arange(filled.size)
    distance = np.abs(index[:, None] - rows[None, :])
    return rows[np.argmin(distance, axis=1)]  # argmin takes the first (lower) of equal distances


def fit_members_by_size(grid: Histogram2D) -> MembersBySize:
    """Row-normalised weights on the exported edges; raises ValueError when no cell has a count."""
    counts = np.asarray(grid.counts, dtype=np.float64)
    filled = counts.sum(axis=1) > 0
    if not filled.any():
        raise ValueError("has no count (every cell empty or suppressed)")
    source = nearest_filled(filled)
    return MembersBySize(
        row_edges=list(grid.row_edges),
        column_edges=list(grid.column_edges),
        weights=[weights(counts[row]) for row in source],
    )
