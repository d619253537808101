"""Per-conversation skews: the top sender's share of messages, the lifetime, and recency.

Top sender share is a fraction in (0, 1] (many conversations sit at exactly 1: one sender), so
it is a non-integer spline bounded to [SHARE_FLOOR, 1]. Lifetime (last minus first message in
the window, whole seconds, 0 for one message) is an integer spline with a Pareto tail, never
longer than the window. Recency is two shares of the window's active conversations.
"""

from __future__ import annotations

from shape_pipeline.calibration import defaults
from shape_pipeline.calibration.spline_fit import fit_spline
from shape_pipeline.contracts import DistributionStats, QuantileSplineModel, Recency, RecencyShares

TOP_SENDER = "conversations.top_sender_share"
LIFETIME = "conversations.lifetime_seconds"
_DIGITS = 6


def fit_top_sender_share(stats: DistributionStats) -> QuantileSplineModel:
    """A continuous spline through every exported share, kept inside [SHARE_FLOOR, 1]."""
    return fit_spline(
        stats,
        integer=False,
        natural_min=defaults.SHARE_FLOOR,
        bounds=(defaults.SHARE_FLOOR, 1.0),
        source=f"shape {TOP_SENDER}",
    )


def fit_lifetime(stats: DistributionStats, window_seconds: float) -> QuantileSplineModel:
    """Whole seconds from 0 to the window's length; a Pareto tail above the top percentile."""
    return fit_spline(
        stats,
        natural_min=0,
        heavy_tail=True,
        bounds=(0.0, float(window_seconds)),
        source=f"shape {LIFETIME}",
    )


def _share(count: int, total: int) -> float:
    return round(min(max(count / total, 0.0), 1.0), _DIGITS)


def recency_shares(recency: Recency, conversations: int | None) -> RecencyShares | None:
    """Counts over the window's active conversations, clipped to [0, 1] (the 7-day share never
    above the 30-day one); None when the number of conversations is unknown or 0."""
    if not conversations:
        return None
    last_30 = _share(recency.active_last_30_days, conversations)
    last_7 = min(_share(recency.active_last_7_days, conversations), last_30)
    return RecencyShares(active_last_7_days=last_7, active_last_30_days=last_30)
