"""The calibrator's console summary in the seed's style (`=== GENERATOR CALIBRATION ===`).

Totals, each fitted model with its key numbers and its fit errors against the shape's own
percentiles, then every fallback and every fit off its goal as a warning. The CLI prints it;
the Dagster asset sends the same lines to `context.log.info`.
"""

from __future__ import annotations

from collections.abc import Sequence

from shape_pipeline.calibration.content_length import PURE_PREFIX
from shape_pipeline.console import Reporter, fmt_int, fmt_pct
from shape_pipeline.contracts import (
    CalibratedConfig,
    ConversationGeneration,
    FitError,
    PowerLawTailModel,
    QuantileSplineModel,
    TemporalWeights,
    UserGeneration,
)

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def start(reporter: Reporter) -> None:
    reporter.header("GENERATOR CALIBRATION")
    reporter.line("Loading shape metrics...")


def fit_line(errors: Sequence[FitError]) -> str:
    """'p50 45 (+0.0%), p99 5,000 (+0.0%)' with a flag on any entry off its goal."""
    parts = [f"{e.metric} {e.fitted:,.6g} ({e.relative_error:+.1%}){'' if e.within_goal else ' ⚠'}" for e in errors]
    return "Fit: " + (", ".join(parts) if parts else "no exported percentile to compare")


def _shares(reporter: Reporter, title: str, shares: dict[str, float]) -> None:
    reporter.blank()
    reporter.line(f"Normalizing {title}...")
    for key, share in shares.items():
        reporter.detail(f"{key}: {fmt_pct(share)}")


def _num(value: float) -> str:
    """Whole numbers with thousands separators, fractions with three significant digits."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def _spline(reporter: Reporter, title: str, model: QuantileSplineModel, unit: str = "") -> None:
    reporter.blank()
    reporter.line(f"Fitting {title} (quantile spline{', Pareto tail' if model.tail_alpha else ''})...")
    tail = f", tail alpha {model.tail_alpha:g}" if model.tail_alpha else ""
    mean = f", mean {_num(round(model.mean, 3))}" if model.mean is not None else ""
    reporter.detail(f"Range: [{_num(model.min)}, {_num(model.max)}]{unit}, knots {len(model.knots)}{tail}{mean}")
    reporter.detail(fit_line(model.fit_errors))


def _power_law(reporter: Reporter, title: str, model: PowerLawTailModel) -> None:
    """A body-plus-Pareto-tail model in the seed's power-law wording."""
    reporter.blank()
    reporter.line(f"Fitting {title} (power law)...")
    start_at = f" (tail from p{model.tail_start[0] * 100:g} = {model.tail_start[1]:,.0f})" if model.tail_start else ""
    reporter.detail(f"Alpha: {model.alpha:g}{start_at}")
    reporter.detail(f"Range: [{model.min}, {model.max}]")
    for key in ("p50", "p90", "p99"):
        if (value := getattr(model, key)) is not None:
            reporter.detail(f"Production {key}: {value:g}")
    reporter.detail(f"Model mean: {model.mean:,.1f}")
    reporter.detail(fit_line(model.fit_errors))


def _absent(reporter: Reporter, title: str) -> None:
    reporter.blank()
    reporter.line(f"{title}: not in shape (the generator keeps its old behaviour)")


def _optional_spline(reporter: Reporter, title: str, model: QuantileSplineModel | None, unit: str = "") -> None:
    if model is None:
        _absent(reporter, title[0].upper() + title[1:])
    else:
        _spline(reporter, title, model, unit)


def _users(reporter: Reporter, user: UserGeneration) -> None:
    """Sender share and conversations per user (issue 10's per-user skews)."""
    share = user.sender_share
    reporter.detail(f"Users who send: {fmt_pct(share)}" if share is not None else "Users who send: not known")
    _optional_spline(reporter, "conversations per user", user.conversations_per_user)


def _conversation_skews(reporter: Reporter, conv: ConversationGeneration) -> None:
    """Top sender share, lifetime, recency and the size x members grid."""
    _optional_spline(reporter, "top sender's share of a conversation", conv.top_sender_share)
    _optional_spline(reporter, "conversation lifetime", conv.lifetime_seconds, " s")
    if conv.recency is None:
        _absent(reporter, "Recency")
    else:
        reporter.blank()
        reporter.line("Extracting recency...")
        reporter.detail(
            f"Active in the last 7 days: {fmt_pct(conv.recency.active_last_7_days)}, "
            f"last 30 days: {fmt_pct(conv.recency.active_last_30_days)}"
        )
    grid = conv.members_by_size
    if grid is None:
        _absent(reporter, "Members by size")
    else:
        reporter.blank()
        reporter.line("Normalizing members by size (per size bucket)...")
        reporter.detail(f"Grid: {len(grid.row_edges) - 1} size buckets x {len(grid.column_edges) - 1} member buckets")


def _trend(reporter: Reporter, temporal: TemporalWeights) -> None:
    """The daily trend: first week against last week."""
    daily = temporal.daily
    if daily is None:
        reporter.detail("Daily trend: not exported (flat over the window)")
        return
    week = min(7, len(daily))
    reporter.detail(
        f"Daily trend: {len(daily)} days, first {week} days {fmt_pct(sum(daily[:week]))}, "
        f"last {week} days {fmt_pct(sum(daily[-week:]))} of messages"
    )


def report(config: CalibratedConfig, reporter: Reporter) -> None:
    """Everything after loading: totals, models, warnings, completion."""
    meta, totals = config.calibration_metadata, config.totals
    user, conv, msg = (
        config.user_generation,
        config.conversation_generation,
        config.message_generation,
    )
    reporter.ok(f"Loaded metrics from {meta.source_shape_file}")
    for total in ("users", "conversations", "messages"):
        value = getattr(totals, total)  # a count, or "< k" in a hand-made config
        reporter.detail(f"{total.capitalize()}: {fmt_int(value) if isinstance(value, int) else value}")
    reporter.detail(
        f"Window: {meta.window_start:%Y-%m-%d %H:%M} to {meta.window_end:%Y-%m-%d %H:%M} UTC "
        f"({meta.production_sample_window_days} days)"
    )
    reporter.blank()
    reporter.line("Fitting parametric models...")

    name = user.username_length
    reporter.blank()
    reporter.line("Fitting username length (normal distribution)...")
    reporter.detail(f"Mean: {name.mean:g}, StdDev: {name.stddev:g}, Range: [{name.min}, {name.max}]")
    profile = ", ".join(f"{k} {fmt_pct(v)}" for k, v in user.profile_field_probabilities.items())
    reporter.detail(f"Profile fields set: {profile or 'none'}")
    _users(reporter, user)

    _shares(reporter, "conversation type distribution", conv.type_distribution)

    _power_law(reporter, "messages per conversation", conv.messages_per_conversation)

    content = msg.content_length
    reporter.blank()
    reporter.line("Fitting content length (log-normal)...")
    reporter.detail(f"Mean: {content.mean:g}, Median: {content.median:g}, P95: {content.p95:g}")
    pure = [e for e in content.fit_errors if e.metric.startswith(PURE_PREFIX)]
    pure_text = ", ".join(f"{e.metric.removeprefix(PURE_PREFIX)} {e.relative_error:+.1%}" for e in pure)
    reporter.detail(
        f"Mu: {content.mu:.4f}, Sigma: {content.sigma:.4f}"
        + (f" (log-normal errors: {pure_text})" if pure_text else "")
    )
    if content.knots:
        reporter.detail(f"Body corrected by {len(content.knots)} knots (every exported percentile matched)")
    reporter.detail(fit_line([e for e in content.fit_errors if not e.metric.startswith(PURE_PREFIX)]))

    _shares(reporter, "message type distribution", msg.type_distribution)

    temporal = msg.temporal
    reporter.blank()
    reporter.line("Extracting temporal patterns...")
    peak = max(range(24), key=lambda h: temporal.hourly[h])
    quiet = min(range(24), key=lambda h: temporal.hourly[h])
    busiest = max(range(7), key=lambda d: temporal.day_of_week[d])
    reporter.detail(
        f"Hourly: peak {peak:02d}:00 UTC ({fmt_pct(temporal.hourly[peak])}), quietest {quiet:02d}:00 ({fmt_pct(temporal.hourly[quiet])})"
    )
    reporter.detail(f"Day of week: busiest {DAYS[busiest]}, weekend share {fmt_pct(sum(temporal.day_of_week[5:]))}")
    reporter.detail(
        f"24x7 grid: {'from the shape' if temporal.hour_by_day_of_week else 'not exported (hourly x daily)'}"
    )
    _trend(reporter, temporal)

    _spline(reporter, "gaps between messages of a conversation", msg.inter_message_gap_seconds, " s")
    if isinstance(msg.messages_per_sender, PowerLawTailModel):
        _power_law(reporter, "messages per sender", msg.messages_per_sender)
    else:
        _spline(reporter, "messages per sender", msg.messages_per_sender)
    for kind, model in conv.members_per_conversation.items():
        _spline(reporter, f"members per {kind} conversation", model)
    _conversation_skews(reporter, conv)

    if meta.warnings:
        reporter.blank()
        reporter.warn(f"{len(meta.warnings)} warning(s):")
        for warning in meta.warnings:
            reporter.warn(warning)
    reporter.blank()
    reporter.ok("Calibration complete")
