"""Heavy-tailed counts (messages per conversation, messages per sender): a spline body through
the percentiles and a Pareto tail.

A pure power law from 1 cannot carry a median of 45 (with alpha 1.85 its median is about 2),
so the body is the monotone quantile spline through every exported percentile and agreeing
histogram CDF point; above the second-highest distinct percentile (p_a, q_a) the quantile
function is Pareto, Q(u) = q_a ((1 - p_a) / (1 - u)) ** (1 / (alpha - 1)), capped at `max`.
With alpha estimated from the two top percentiles,

    alpha = 1 + ln((1 - p_a) / (1 - p_b)) / ln(q_b / q_a),

the tail passes exactly through the top percentile (p_b, q_b). Editing `alpha` in the JSON
moves everything above p_a: lower alpha, heavier tail, a higher p99 and more huge rooms (or
more hot senders).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from shape_pipeline.calibration import defaults
from shape_pipeline.calibration.fit_report import GOAL, model_errors, model_mean, relative_error
from shape_pipeline.calibration.knots import (
    exported_cap,
    extrapolation_level,
    round_up_2sig,
    shape_knots,
    value_floor,
)
from shape_pipeline.contracts import (
    DistributionStats,
    Histogram,
    Knot,
    Percentiles,
    PowerLawTailModel,
)
from shape_pipeline.distributions import pareto_alpha, pareto_tail

HEAVY_ALPHA = 3.0  # tail exponents at or below this count as heavy (`looks_heavy`)
ALPHA_RANGE = (1.05, 20.0)  # tail exponents a mean match may choose from


def estimate_alpha(low: Knot, high: Knot) -> float:
    """Pareto exponent through two upper percentiles (`pareto_alpha`); ValueError where none passes."""
    alpha = pareto_alpha(low, high)
    if alpha is None:
        raise ValueError(f"cannot estimate alpha from {low} and {high}")
    return alpha


def alpha_for_mean(mean_at: Callable[[float], float], target: float) -> float | None:
    """The tail exponent in ALPHA_RANGE whose model mean is `target` (bisection: the mean falls
    as alpha rises); None when the target is out of reach within the model's cap."""
    low, high = ALPHA_RANGE
    if mean_at(low) < target or mean_at(high) > target:
        return None
    while high - low > 1e-3:
        middle = (low + high) / 2
        low, high = (middle, high) if mean_at(middle) > target else (low, middle)
    return (low + high) / 2


def looks_heavy(stats: Percentiles) -> bool:
    """Whether the data asks for a Pareto tail: the top value is first reached at p90 or above
    and the pair below it gives an alpha of at most `HEAVY_ALPHA`. Below 3 a Pareto has no
    finite variance; a log-normal-like continuation of the spline would put the p99.9 far too
    low. A plateau at the top (small bounded counts) is not heavy."""
    pair = tail_pair(stats.knots())
    return pair is not None and pair[1][0] >= 0.9 and estimate_alpha(*pair) <= HEAVY_ALPHA


def tail_pair(knots: Sequence[Knot]) -> tuple[Knot, Knot] | None:
    """The two knots alpha is read from: the first knot reaching the top value, and the last
    knot below it (so a plateau at the top, common for small integers, is kept in the body)."""
    if len(knots) < 2:
        return None
    top_value = knots[-1][1]
    first_top = next(i for i, (_, q) in enumerate(knots) if q == top_value)
    if first_top == 0 or knots[first_top - 1][1] <= 0:
        return None
    return knots[first_top - 1], knots[first_top]


def split_body_tail(knots: Sequence[Knot]) -> tuple[list[Knot], Knot]:
    """Body knots and the tail's start: the second-highest knot when the top two differ (the
    tail then runs through the top percentile), else the top knot itself."""
    if len(knots) >= 2 and 0 < knots[-2][1] < knots[-1][1]:
        return list(knots[:-2]), knots[-2]
    return list(knots[:-1]), knots[-1]


def fit_heavy_tail(
    percentiles: Percentiles,
    histogram: Histogram | None = None,
    mean: float | None = None,
    *,
    name: str,
    natural_min: float = 1.0,
    source: str = "shape",
) -> tuple[PowerLawTailModel, list[str]]:
    """Fit the body-plus-tail model of the count `name`; returns it and any notes (a default
    alpha, an extrapolated cap), each prefixed with `name`."""
    notes: list[str] = []
    knots = shape_knots(percentiles, histogram, integer=True)
    if not knots:
        raise ValueError("needs at least one percentile")
    pair = tail_pair(knots)
    if pair is None:
        alpha = defaults.TAIL_ALPHA
        notes.append(
            f"{name}: alpha cannot be estimated from {len(knots)} distinct "
            f"upper percentile(s); using the default alpha {alpha}"
        )
    else:
        alpha = estimate_alpha(*pair)
    body, start = split_body_tail(knots)
    low = int(value_floor(histogram, knots, natural_min=natural_min))
    cap = exported_cap(percentiles, histogram, integer=True)
    if cap is None:
        u = np.array([extrapolation_level(knots)])
        cap = round_up_2sig(float(pareto_tail(start, alpha, u)[0]))
        notes.append(
            f"{name}: no max exported; capped at {cap:,.0f} (the tail's value 100 times rarer than the top percentile)"
        )
    model = PowerLawTailModel(
        alpha=alpha,  # unrounded: near alpha 1 even the 7th digit moves the top knot by a unit
        min=low,
        max=int(math.ceil(max(cap, knots[-1][1]))),
        p50=dict(percentiles.knots()).get(0.5),  # a DistributionStats may name it `median`
        p90=percentiles.p90,
        p99=percentiles.p99,
        body_knots=body,
        tail_start=start,
        source=source,
    )
    if mean is not None:
        model = match_mean(model, knots, percentiles.knots()[-1][0], mean)
    return finish(model, percentiles.knots(), mean), notes


def match_mean(model: PowerLawTailModel, knots: Sequence[Knot], top_level: float, mean: float) -> PowerLawTailModel:
    """When the model's mean misses the exported mean by more than the goal, start the tail at
    the top exported percentile and choose the alpha that carries the mean.

    Every exported percentile stays exact (they all lie on the body); only histogram points
    above the top percentile give way. Those rest on the few largest entities after privacy
    merges, while the mean says how much they hold in total: for messages per sender, how
    much of the traffic the hottest users write.
    """
    if abs(relative_error(model_mean(model), mean)) <= GOAL:
        return model
    anchored = [k for k in knots if k[0] <= top_level]
    base = model.model_copy(update={"body_knots": anchored[:-1], "tail_start": anchored[-1]})
    alpha = alpha_for_mean(lambda a: model_mean(base.model_copy(update={"alpha": a})), mean)
    if alpha is None:
        return model  # out of reach within the cap: keep the estimate, the error is reported
    return base.model_copy(update={"alpha": alpha, "source": f"{model.source}; tail alpha matched to the mean"})


def fit_messages_per_conversation(
    percentiles: Percentiles,
    histogram: Histogram | None = None,
    mean: float | None = None,
    *,
    source: str = "shape",
) -> tuple[PowerLawTailModel, list[str]]:
    """Messages per conversation (the seed's power-law model): `fit_heavy_tail` under its name."""
    return fit_heavy_tail(percentiles, histogram, mean, name="messages_per_conversation", source=source)


def fit_heavy_tail_stats(
    stats: DistributionStats, *, name: str, natural_min: float = 1.0, source: str = "shape"
) -> tuple[PowerLawTailModel, list[str]]:
    """`fit_heavy_tail` on one exported stats block (percentiles, histogram and mean together)."""
    return fit_heavy_tail(stats, stats.histogram, stats.mean, name=name, natural_min=natural_min, source=source)


def finish(model: PowerLawTailModel, targets: Sequence[Knot], mean: float | None) -> PowerLawTailModel:
    """Attach the model's own mean and its errors against the exported percentiles."""
    errors = model_errors(model, targets, mean=mean)
    return model.model_copy(update={"mean": round(model_mean(model), 3), "fit_errors": errors})
