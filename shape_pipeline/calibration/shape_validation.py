"""Shape checks beyond the contract: a metric that is present but unusable is an error.

The pydantic contract already refuses wrong types, unknown keys, other schema versions and
decreasing percentiles. What it cannot know is what calibration needs: counts that are not
negative, a distribution with at least one percentile, a category table with some mass. Each
failure is one line naming the file and the field, raised before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from shape_pipeline.contracts import Histogram, Percentiles, ShapeMetrics
from shape_pipeline.errors import ShapePipelineError


class MalformedMetric(ShapePipelineError):
    """A metric the shape exports is present but cannot be calibrated from."""


@contextmanager
def metric(where: str, field: str) -> Iterator[None]:
    """Turn a fitting ValueError inside the block into `where: field: message`."""
    try:
        yield
    except ValueError as exc:
        raise MalformedMetric(f"{where}: {field}: {exc}") from None


def _counts(where: str, field: str, counts: Mapping[str, float] | Sequence[float]) -> None:
    """Counts must not be negative (all zero is allowed: every cell suppressed -> a default)."""
    values = list(counts.values()) if isinstance(counts, Mapping) else list(counts)
    if any(v < 0 for v in values):
        raise MalformedMetric(f"{where}: {field}: counts must not be negative")


def _percentiles(
    where: str,
    field: str,
    stats: Percentiles | None,
    hist: Histogram | None,
    *,
    enough: bool = False,
) -> None:
    """Values not negative; at least one percentile (or a non-empty histogram) unless `enough`."""
    if stats is None:
        return
    values = [v for _, v in stats.knots()]
    if any(v < 0 for v in values) or (stats.max is not None and stats.max < 0):
        raise MalformedMetric(f"{where}: {field}: values must not be negative")
    if not enough and not values and (hist is None or hist.total == 0):
        raise MalformedMetric(f"{where}: {field}: has no percentile (p50, p90, ...) to fit")


def _at_most_one(where: str, field: str, stats: Percentiles) -> None:
    """A share of a conversation's messages cannot exceed 1."""
    values = [v for _, v in stats.knots()]
    if any(v > 1 for v in values):
        raise MalformedMetric(f"{where}: {field}: shares must lie in (0, 1]")


def check_shape(shape: ShapeMetrics, where: str) -> None:
    """Raise MalformedMetric for the first unusable metric; return quietly otherwise."""
    conv, msg = shape.conversations, shape.messages
    if shape.totals is not None and shape.totals.messages == 0:
        raise MalformedMetric(f"{where}: totals.messages: the shape's window holds no message; nothing to calibrate")
    _counts(where, "conversations.type_distribution", conv.type_distribution)
    _counts(where, "messages.type_distribution", msg.type_distribution)
    for name in ("hourly_counts", "day_of_week_counts", "daily_counts"):
        if (values := getattr(msg, name)) is not None:
            _counts(where, f"messages.{name}", values)
    if msg.hour_by_day_of_week is not None:
        _counts(
            where,
            "messages.hour_by_day_of_week",
            [c for row in msg.hour_by_day_of_week for c in row],
        )
    mpc = conv.messages_per_conversation_percentiles
    if mpc is None and conv.messages_per_conversation_histogram is not None:
        raise MalformedMetric(
            f"{where}: conversations.messages_per_conversation_percentiles: missing "
            "(a histogram alone cannot place the tail)"
        )
    _percentiles(where, "conversations.messages_per_conversation_percentiles", mpc, None)
    if mpc is not None and mpc.knots() and mpc.knots()[-1][1] < 1:
        raise MalformedMetric(
            f"{where}: conversations.messages_per_conversation_percentiles: a conversation in the "
            "window has at least one message"
        )
    stats_fields = {
        "messages.content_length_stats": msg.content_length_stats,
        "messages.inter_message_gap_seconds": msg.inter_message_gap_seconds,
        "messages.messages_per_sender": msg.messages_per_sender,
        **{f"conversations.members_per_conversation.{k}": v for k, v in conv.members_per_conversation.items()},
    }
    if conv.top_sender_share is not None:
        stats_fields["conversations.top_sender_share"] = conv.top_sender_share
        _at_most_one(where, "conversations.top_sender_share", conv.top_sender_share)
    if conv.lifetime_seconds is not None:
        stats_fields["conversations.lifetime_seconds"] = conv.lifetime_seconds
    if shape.users is not None:
        stats_fields["users.username_length"] = shape.users.username_length
        stats_fields["users.conversations_per_user"] = shape.users.conversations_per_user
    for field, stats in stats_fields.items():
        if stats is not None:
            if stats.mean is not None and stats.mean < 0:
                raise MalformedMetric(f"{where}: {field}.mean: must not be negative")
            # a mean alone still fits content length and username length (default spread)
            mean_suffices = field.endswith(("content_length_stats", "username_length"))
            enough = mean_suffices and stats.mean is not None
            _percentiles(where, field, stats, stats.histogram, enough=enough)
