"""Per-user activity: messages per sender, the share of users who send, conversations per user.

Messages per sender is as concentrated as messages per conversation (a few senders write most
messages), so it gets the same model: a spline body through every exported percentile and
histogram CDF point, a Pareto tail through the top percentile (`heavy_tail.fit_heavy_tail`).
A shape with a histogram but no percentile falls back to the quantile spline; a shape without
the block to the documented default spline.

Conversations per user (memberships of active conversations, per member) is an integer spline
through every knot, with a Pareto tail only when its top percentiles say it is heavy.
"""

from __future__ import annotations

from shape_pipeline.calibration import defaults
from shape_pipeline.calibration.heavy_tail import fit_heavy_tail_stats, looks_heavy
from shape_pipeline.calibration.spline_fit import fit_spline
from shape_pipeline.contracts import (
    DistributionStats,
    PowerLawTailModel,
    QuantileSplineModel,
    Totals,
)

SENDERS = "messages.messages_per_sender"
CONVERSATIONS_PER_USER = "users.conversations_per_user"


def fit_messages_per_sender(
    stats: DistributionStats | None,
) -> tuple[PowerLawTailModel | QuantileSplineModel, list[str]]:
    """The heavy-tail model when percentiles are exported, else a spline; plus any notes.

    Every sender wrote at least one message, so the model starts at 1.
    """
    if stats is None:
        model = fit_spline(defaults.MESSAGES_PER_SENDER, natural_min=1, heavy_tail=True, source=defaults.SOURCE)
        return model, [f"{SENDERS} not in shape: using the default distribution (see defaults.py)"]
    if not stats.knots():
        note = f"{SENDERS}: no percentile exported; a quantile spline through the histogram (no Pareto tail)"
        model = fit_spline(stats, natural_min=1, heavy_tail=True, source=f"shape {SENDERS}")
        return model, [note]
    source = f"shape {SENDERS} (body through percentiles" + (
        " + histogram, Pareto tail)" if stats.histogram is not None else ", Pareto tail)"
    )
    return fit_heavy_tail_stats(stats, name=SENDERS, natural_min=1, source=source)


def sender_share(stats: DistributionStats | None, totals: Totals | None) -> float | None:
    """Share of users who sent at least one message in the window, in (0, 1]; None when the
    shape does not say (no sender count, no exported totals, or users only known as "< k")."""
    users = totals.count("users") if totals is not None else None
    if stats is None or stats.count is None or not users or stats.count <= 0:
        return None
    return round(min(stats.count / users, 1.0), 6)


def fit_conversations_per_user(stats: DistributionStats) -> QuantileSplineModel:
    """Integer spline through every knot (a member belongs to at least one conversation)."""
    heavy = looks_heavy(stats)
    return fit_spline(
        stats,
        natural_min=1,
        heavy_tail=heavy,
        source=f"shape {CONVERSATIONS_PER_USER}" + (" (Pareto tail)" if heavy else ""),
    )
