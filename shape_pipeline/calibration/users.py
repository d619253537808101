"""User generation: username length (normal, as in the seed) and profile-field fill rates.

Username length is a normal rounded to integers and clipped to [min, max] (seed: mean 8.5,
sd 2.3). When the shape exports two or more percentiles or a histogram, the model carries
knots that correct the body so every exported percentile is matched.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

from shape_pipeline.calibration import defaults
from shape_pipeline.calibration.fit_report import model_errors
from shape_pipeline.calibration.knots import (
    KnotsArgument,
    exported_cap,
    histogram_knots,
    merge_knots,
)
from shape_pipeline.contracts import DistributionStats, Knot, NormalModel


def _spread(stats: DistributionStats) -> float | None:
    """The standard deviation: exported, else the slope of value on z over the percentiles."""
    if stats.stddev is not None:
        return stats.stddev
    knots = stats.knots()
    if len(knots) < 2:
        return None
    z = ndtri(np.array([p for p, _ in knots]))
    q = np.array([v for _, v in knots])
    return float(max(np.polyfit(z, q, 1)[0], 0.0))


def rounded_knots(stats: DistributionStats) -> list[Knot]:
    """Knots for a model that rounds to the nearest integer (NormalModel uses rint, not ceil).

    A histogram point says F(v) = c: the curve must cross v + 0.5 at c so that rounding gives v
    below c and v + 1 above it; exported percentiles stay exact (rint(q) = q).
    """
    extra = []
    if stats.histogram is not None:
        extra = [(p, q + 0.5) for p, q in histogram_knots(stats.histogram, integer=True)]
    return merge_knots(stats.knots(), extra)


def fit_username_length(stats: DistributionStats | None) -> tuple[NormalModel, bool]:
    """The model and whether it is the documented default (the shape had no username stats)."""
    if stats is None:
        model = NormalModel(
            mean=defaults.USERNAME_MEAN,
            stddev=defaults.USERNAME_STDDEV,
            min=defaults.USERNAME_MIN,
            max=defaults.USERNAME_MAX,
            source="default (shape lacks users.username_length)",
        )
        return model, True
    knots = rounded_knots(stats)
    centre = stats.mean if stats.mean is not None else (knots[len(knots) // 2][1] if knots else None)
    if centre is None:
        raise ValueError("needs a mean, a percentile or a histogram")
    spread = _spread(stats)
    low = (
        stats.histogram.edges[0]
        if stats.histogram is not None
        else min([defaults.USERNAME_MIN, *(q for _, q in knots[:1])])
    )
    cap = exported_cap(stats, stats.histogram, integer=True)
    high = cap if cap is not None else max([defaults.USERNAME_MAX, *(q for _, q in knots[-1:])])
    body_knots: KnotsArgument = {"knots": knots} if len(knots) >= 2 else {}
    model = NormalModel(
        mean=round(centre, 4),
        stddev=round(spread if spread is not None else defaults.USERNAME_STDDEV, 4),
        min=int(math.floor(low)),
        max=int(math.ceil(high)),
        **body_knots,  # contracts refuse an explicit None
        source="shape users.username_length" + (" (knots from percentiles/histogram)" if len(knots) >= 2 else ""),
    )
    return model.model_copy(update={"fit_errors": model_errors(model, stats.knots(), mean=stats.mean)}), False


def profile_probabilities(completeness: dict[str, float] | None) -> tuple[dict[str, float], bool]:
    """Share of users with each profile field set; the documented defaults when none exported."""
    if completeness:
        return {k: round(float(v), 6) for k, v in completeness.items()}, False
    return dict(defaults.PROFILE_FIELDS), True
