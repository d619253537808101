"""Knots of a quantile function, from what a shape exports: percentiles and histogram CDF points.

A knot (p, q) says Q(p) = q. Exported percentiles are exact knots (`percentile_disc`); a
histogram adds one CDF point per bucket edge (F(edge) = share of rows below it), which shapes
the body between and around the percentiles. Percentiles always win: a histogram point that
would contradict them, or sits on top of one, is left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from shape_pipeline.contracts import Histogram, Knot, Percentiles

_MIN_P_GAP = 1e-4  # histogram points closer than this to a percentile's level are redundant


class KnotsArgument(TypedDict, total=False):
    """`knots` as an optional keyword of a model: passed when present, left out (unset) when not."""

    knots: list[Knot]


def histogram_knots(histogram: Histogram, *, integer: bool = True) -> list[Knot]:
    """One knot per inner bucket edge: (share of rows below the edge, largest value below it).

    Integer buckets [a, b) hold values a..b-1, so the point is (F, b - 1). Empty buckets add no
    new level (the first value reaching a level is the percentile), nor do the 0 and 1 ends.
    """
    counts = np.asarray(histogram.counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return []
    cumulative = np.cumsum(counts) / total
    uppers = np.asarray(histogram.edges[1:], dtype=np.float64) - (1.0 if integer else 0.0)
    out: list[Knot] = []
    for p, q in zip(cumulative, uppers, strict=True):
        if not 0.0 < p < 1.0 - 1e-12:
            continue
        if out and p <= out[-1][0] + 1e-12:
            continue
        out.append((float(p), float(q)))
    return out


def merge_knots(primary: Sequence[Knot], extra: Sequence[Knot]) -> list[Knot]:
    """`primary` plus every `extra` knot that agrees with it (monotone, not a near-duplicate level)."""
    merged = sorted(primary)
    for p, q in extra:
        if any(abs(p - pp) < _MIN_P_GAP for pp, _ in merged):
            continue
        below = [qq for pp, qq in merged if pp < p]
        above = [qq for pp, qq in merged if pp > p]
        if (below and q < below[-1]) or (above and q > above[0]):
            continue
        merged.append((p, q))
        merged.sort()
    return merged


def mid_step(knots: Sequence[Knot]) -> list[Knot]:
    """Percentile knots of an integer metric, moved to the middle of their step: (p, q - 0.5).

    `percentile_disc` says only F(q - 1) < p <= F(q). A curve through (p, q) puts the model's
    step edge exactly at p, so a sample's percentile flips between q and q + 1; through
    (p, q - 0.5) the ceiling still gives Q(p) = q, with p inside q's step.
    """
    return [(p, q - 0.5 if q >= 1 else q) for p, q in knots]


def shape_knots(percentiles: Percentiles | None, histogram: Histogram | None, *, integer: bool = True) -> list[Knot]:
    """All knots a metric offers: its percentiles (and median), then agreeing histogram points."""
    primary = percentiles.knots() if percentiles is not None else []
    if integer:
        primary = mid_step(primary)
    extra = histogram_knots(histogram, integer=integer) if histogram is not None else []
    return merge_knots(primary, extra)


def round_up_2sig(value: float) -> float:
    """Round up to two significant digits (how the sampler rounds a max for privacy)."""
    if value <= 0 or not math.isfinite(value):
        return value
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(value / step - 1e-9) * step


def value_floor(
    histogram: Histogram | None, knots: Sequence[Knot], natural_min: float, *, integer: bool = True
) -> float:
    """The model's minimum: the histogram's first edge or the metric's natural minimum, whichever
    is higher (a log grid starts at 0 even for counts that start at 1), never above the lowest
    knot's value."""
    low = max(histogram.edges[0], natural_min) if histogram is not None else natural_min
    if not knots:
        return low
    lowest = math.ceil(knots[0][1] - 1e-9) if integer else knots[0][1]
    return min(low, lowest)


def exported_cap(percentiles: Percentiles | None, histogram: Histogram | None, *, integer: bool = True) -> float | None:
    """The exported (rounded) max, else the histogram's last edge; None when neither exists."""
    if percentiles is not None and percentiles.max is not None:
        return float(percentiles.max)
    if histogram is not None:
        return float(histogram.edges[-1]) - (1.0 if integer else 0.0)
    return None


def extrapolation_level(knots: Sequence[Knot]) -> float:
    """Where a missing max is read off the model: 100 times rarer than the top knot."""
    return 1.0 - (1.0 - knots[-1][0]) / 100.0
