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
from shape_pipeline.calibration.knots import exported_cap, shape_knots
from shape_pipeline.contracts import DistributionStats, NormalModel


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
    knots = shape_knots(stats, stats.histogram, integer=True)
    centre = (
        stats.mean if stats.mean is not None else (knots[len(knots) // 2][1] if knots else None)
    )
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
    model = NormalModel(
        mean=round(centre, 4),
        stddev=round(spread if spread is not None else defaults.USERNAME_STDDEV, 4),
        min=int(math.floor(low)),
        max=int(math.ceil(high)),
        knots=knots if len(knots) >= 2 else None,
        source="shape users.username_length"
        + (" (knots from percentiles/histogram)" if len(knots) >= 2 else ""),
    )
    return model.model_copy(
        update={"fit_errors": model_errors(model, stats.knots(), mean=stats.mean)}
    ), False


def profile_probabilities(completeness: dict[str, float] | None) -> tuple[dict[str, float], bool]:
    """Share of users with each profile field set; the documented defaults when none exported."""
    if completeness:
        return {k: round(float(v), 6) for k, v in completeness.items()}, False
    return dict(defaults.PROFILE_FIELDS), True
