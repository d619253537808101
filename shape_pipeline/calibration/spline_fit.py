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

from shape_pipeline.calibration.fit_report import GOAL, model_errors, model_mean, relative_error
from shape_pipeline.calibration.heavy_tail import alpha_for_mean, estimate_alpha, tail_pair
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
    bounds: tuple[float, float] | None = None,
    source: str = "shape",
) -> QuantileSplineModel:
    """Fit a quantile spline to `stats`; raises ValueError when it has no percentile at all.

    `bounds` are the metric's hard limits (a share in (0, 1], a lifetime inside the window):
    the model's min and max never leave them, whatever the histogram edges or rounded max say.
    """
    knots = shape_knots(stats, stats.histogram, integer=integer)
    if not knots:
        raise ValueError("needs at least one percentile or a histogram")
    pair = tail_pair(knots) if heavy_tail and knots[-1][0] >= 0.9 else None
    alpha = round(estimate_alpha(*pair), 4) if pair is not None else None
    low = value_floor(stats.histogram, knots, natural_min, integer=integer)
    cap = exported_cap(stats, stats.histogram, integer=integer)
    if cap is None:
        open_model = QuantileSplineModel(knots=knots, min=low, max=math.inf, integer=integer, tail_alpha=alpha)
        cap = round_up_2sig(float(quantile(open_model, np.array([extrapolation_level(knots)]))[0]))
    high = max(cap, knots[-1][1])
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    model = QuantileSplineModel(
        knots=knots,
        min=low,
        max=high,
        integer=integer,
        tail_alpha=alpha,
        source=source,
    )
    if alpha is not None and stats.mean is not None:
        model = match_tail_to_mean(model, stats.mean)
    errors = model_errors(model, stats.knots(), mean=stats.mean)
    return model.model_copy(update={"mean": round(model_mean(model), 3), "fit_errors": errors})


def match_tail_to_mean(model: QuantileSplineModel, mean: float) -> QuantileSplineModel:
    """Re-fit the tail's alpha so the model's mean matches the exported mean, when the two-knot
    estimate misses it by more than the goal.

    Above the top knot only the tail moves, so every exported percentile stays exact. A heavy
    tail's mean rests on few entities (the top histogram bucket is wide after privacy merges);
    the exported mean is the one number that says how heavy it really is.
    """
    if abs(relative_error(model_mean(model), mean)) <= GOAL:
        return model
    alpha = alpha_for_mean(lambda a: model_mean(model.model_copy(update={"tail_alpha": a})), mean)
    if alpha is None:
        return model  # out of reach within the cap: keep the estimate, the error is reported
    return model.model_copy(
        update={
            "tail_alpha": round(alpha, 4),
            "source": f"{model.source}; tail alpha matched to the mean",
        }
    )
