"""Turn one exported DistributionStats into a QuantileSplineModel (gaps, messages per sender,
members per conversation).

The spline passes through every exported percentile (and agreeing histogram CDF point), so the
model's percentiles are the shape's by construction; `min`/`max` come from the histogram's
outer edges and the exported (rounded) max. Heavy-tailed metrics continue above the top knot
with a Pareto tail whose alpha is read from the two top knots, as for messages per conversation.
"""

from __future__ import annotations

import math

import numpy as np

from shape_pipeline.calibration.fit_report import model_errors, model_mean
from shape_pipeline.calibration.heavy_tail import estimate_alpha, tail_pair
from shape_pipeline.calibration.knots import (
    exported_cap,
    extrapolation_level,
    round_up_2sig,
    shape_knots,
    value_floor,
)
from shape_pipeline.contracts import DistributionStats, QuantileSplineModel
from shape_pipeline.distributions import quantile


def fit_spline(
    stats: DistributionStats,
    *,
    integer: bool = True,
    natural_min: float = 0.0,
    heavy_tail: bool = False,
    source: str = "shape",
) -> QuantileSplineModel:
    """Fit a quantile spline to `stats`; raises ValueError when it has no percentile at all."""
    knots = shape_knots(stats, stats.histogram, integer=integer)
    if not knots:
        raise ValueError("needs at least one percentile or a histogram")
    pair = tail_pair(knots) if heavy_tail and knots[-1][0] >= 0.9 else None
    alpha = round(estimate_alpha(*pair), 4) if pair is not None else None
    low = value_floor(stats.histogram, knots, natural_min)
    cap = exported_cap(stats, stats.histogram, integer=integer)
    if cap is None:
        open_model = QuantileSplineModel(
            knots=knots, min=low, max=math.inf, integer=integer, tail_alpha=alpha
        )
        cap = round_up_2sig(float(quantile(open_model, np.array([extrapolation_level(knots)]))[0]))
    model = QuantileSplineModel(
        knots=knots,
        min=low,
        max=max(cap, knots[-1][1]),
        integer=integer,
        tail_alpha=alpha,
        source=source,
    )
    errors = model_errors(model, stats.knots(), mean=stats.mean)
    return model.model_copy(update={"mean": round(model_mean(model), 3), "fit_errors": errors})
