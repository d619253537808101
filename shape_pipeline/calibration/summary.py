"""The calibrator's console summary in the seed's style (`=== GENERATOR CALIBRATION ===`).

Totals, each fitted model with its key numbers and its fit errors against the shape's own
percentiles, then every fallback and every fit off its goal as a warning. The CLI prints it;
the Dagster asset sends the same lines to `context.log.info`.
"""

from __future__ import annotations

from collections.abc import Sequence

from shape_pipeline.calibration.content_length import PURE_PREFIX
from shape_pipeline.console import Reporter, fmt_int, fmt_pct
from shape_pipeline.contracts import CalibratedConfig, FitError, QuantileSplineModel

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def start(reporter: Reporter) -> None:
    reporter.header("GENERATOR CALIBRATION")
    reporter.line("Loading shape metrics...")


def fit_line(errors: Sequence[FitError]) -> str:
    """'p50 45 (+0.0%), p99 5,000 (+0.0%)' with a flag on any entry off its goal."""
    parts = [
        f"{e.metric} {e.fitted:,.6g} ({e.relative_error:+.1%}){'' if e.within_goal else ' ⚠'}"
        for e in errors
    ]
    return "Fit: " + (", ".join(parts) if parts else "no exported percentile to compare")


def _shares(reporter: Reporter, title: str, shares: dict[str, float]) -> None:
    reporter.blank()
    reporter.line(f"Normalizing {title}...")
    for key, share in shares.items():
        reporter.detail(f"{key}: {fmt_pct(share)}")


def _spline(reporter: Reporter, title: str, model: QuantileSplineModel, unit: str = "") -> None:
    reporter.blank()
    reporter.line(
        f"Fitting {title} (quantile spline{', Pareto tail' if model.tail_alpha else ''})..."
    )
    tail = f", tail alpha {model.tail_alpha:g}" if model.tail_alpha else ""
    reporter.detail(
        f"Range: [{model.min:,.0f}, {model.max:,.0f}]{unit}, knots {len(model.knots)}{tail}, mean {model.mean:,.1f}"
    )
    reporter.detail(fit_line(model.fit_errors))


def report(config: CalibratedConfig, reporter: Reporter) -> None:
    """Everything after loading: totals, models, warnings, completion."""
    meta, totals = config.calibration_metadata, config.totals
    user, conv, msg = (
        config.user_generation,
        config.conversation_generation,
        config.message_generation,
    )
    reporter.ok(f"Loaded metrics from {meta.source_shape_file}")
    reporter.detail(f"Users: {fmt_int(totals.users)}")
    reporter.detail(f"Conversations: {fmt_int(totals.conversations)}")
    reporter.detail(f"Messages: {fmt_int(totals.messages)}")
    reporter.detail(
        f"Window: {meta.window_start:%Y-%m-%d %H:%M} to {meta.window_end:%Y-%m-%d %H:%M} UTC "
        f"({meta.production_sample_window_days} days)"
    )
    reporter.blank()
    reporter.line("Fitting parametric models...")

    name = user.username_length
    reporter.blank()
    reporter.line("Fitting username length (normal distribution)...")
    reporter.detail(
        f"Mean: {name.mean:g}, StdDev: {name.stddev:g}, Range: [{name.min}, {name.max}]"
    )
    profile = ", ".join(f"{k} {fmt_pct(v)}" for k, v in user.profile_field_probabilities.items())
    reporter.detail(f"Profile fields set: {profile or 'none'}")

    _shares(reporter, "conversation type distribution", conv.type_distribution)

    mpc = conv.messages_per_conversation
    reporter.blank()
    reporter.line("Fitting messages per conversation (power law)...")
    start_at = (
        f" (tail from p{mpc.tail_start[0] * 100:g} = {mpc.tail_start[1]:,.0f})"
        if mpc.tail_start
        else ""
    )
    reporter.detail(f"Alpha: {mpc.alpha:g}{start_at}")
    reporter.detail(f"Range: [{mpc.min}, {mpc.max}]")
    for key in ("p50", "p90", "p99"):
        if (value := getattr(mpc, key)) is not None:
            reporter.detail(f"Production {key}: {value:g}")
    reporter.detail(f"Model mean: {mpc.mean:,.1f}")
    reporter.detail(fit_line(mpc.fit_errors))

    content = msg.content_length
    reporter.blank()
    reporter.line("Fitting content length (log-normal)...")
    reporter.detail(f"Mean: {content.mean:g}, Median: {content.median:g}, P95: {content.p95:g}")
    pure = [e for e in content.fit_errors if e.metric.startswith(PURE_PREFIX)]
    pure_text = ", ".join(
        f"{e.metric.removeprefix(PURE_PREFIX)} {e.relative_error:+.1%}" for e in pure
    )
    reporter.detail(
        f"Mu: {content.mu:.4f}, Sigma: {content.sigma:.4f}"
        + (f" (log-normal errors: {pure_text})" if pure_text else "")
    )
    if content.knots:
        reporter.detail(
            f"Body corrected by {len(content.knots)} knots (every exported percentile matched)"
        )
    reporter.detail(
        fit_line([e for e in content.fit_errors if not e.metric.startswith(PURE_PREFIX)])
    )

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
    reporter.detail(
        f"Day of week: busiest {DAYS[busiest]}, weekend share {fmt_pct(sum(temporal.day_of_week[5:]))}"
    )
    reporter.detail(
        f"24x7 grid: {'from the shape' if temporal.hour_by_day_of_week else 'not exported (hourly x daily)'}"
    )

    _spline(
        reporter, "gaps between messages of a conversation", msg.inter_message_gap_seconds, " s"
    )
    _spline(reporter, "messages per sender", msg.messages_per_sender)
    for kind, model in conv.members_per_conversation.items():
        _spline(reporter, f"members per {kind} conversation", model)

    if meta.warnings:
        reporter.blank()
        reporter.warn(f"{len(meta.warnings)} warning(s):")
        for warning in meta.warnings:
            reporter.warn(warning)
    reporter.blank()
    reporter.ok("Calibration complete")
