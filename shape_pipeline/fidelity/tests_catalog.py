"""The fidelity tests: each compares one production aggregate with the synthetic data's own.

Each test turns (production shape, synthetic frequency tables, integrity findings) into one
`TestResult` with the seed's keys, the deciding effect size and the data the charts need. A test
whose production metric is absent from the shape is SKIPPED with the reason (seed-form shapes
have no histograms, no temporal data) and does not count toward the verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shape_pipeline.contracts import (
    DistributionStats,
    Histogram,
    Percentiles,
    ShapeMetrics,
    TestResult,
)
from shape_pipeline.fidelity import statistics as st
from shape_pipeline.fidelity.integrity import CHECKS, IntegrityFindings
from shape_pipeline.fidelity.verdict import decide
from shape_pipeline.sampling.frequencies import Frequency, FrequencyTables

WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Inputs:
    """Everything the tests read."""

    shape: ShapeMetrics
    synthetic: FrequencyTables
    integrity: IntegrityFindings | None
    tolerance: float


def _skipped(title: str, reason: str) -> TestResult:
    return TestResult(title=title, verdict="SKIPPED", reason=reason)


# --------------------------------------------------------------------------------------
# Categories
# --------------------------------------------------------------------------------------


def _category_test(
    title: str,
    production: dict[str, float],
    synthetic: dict[str, int],
    tolerance: float,
    unit: str,
    design_effect: float = 1.0,
) -> TestResult:
    cmp = st.compare_categories(production, synthetic, design_effect=design_effect)
    if cmp.synthetic_total == 0:
        verdict, reason = "FAIL", f"the synthetic data has no {unit}"
    elif cmp.zero_mass:
        verdict = "FAIL"
        reason = (
            f"categor{'y' if len(cmp.zero_mass) == 1 else 'ies'} {', '.join(cmp.zero_mass)} "
            f"{'has' if len(cmp.zero_mass) == 1 else 'have'} zero production mass but appear"
            f"{'s' if len(cmp.zero_mass) == 1 else ''} in the synthetic data"
        )
    else:
        verdict, reason = decide(cmp.tvd, tolerance, p_value=cmp.p_value)
        reason = f"total variation distance {reason}"
    return TestResult(
        title=title,
        verdict=verdict,
        statistic="total_variation_distance",
        effect_size=cmp.tvd,
        tolerance=tolerance,
        reason=reason,
        chi_square_statistic=cmp.chi_square,
        p_value=cmp.p_value,
        production={"shares": cmp.production_shares},
        synthetic={
            "shares": cmp.synthetic_shares,
            "count": cmp.synthetic_total,
            "cohens_w": cmp.cohens_w,
            "zero_mass_categories": cmp.zero_mass,
            **({"design_effect": design_effect} if design_effect != 1.0 else {}),
        },
    )


def check_conversation_types(i: Inputs) -> TestResult:
    title = "Conversation type distribution"
    prod = i.shape.conversations.type_distribution
    if not prod:
        return _skipped(title, "the shape has no conversations.type_distribution")
    return _category_test(title, dict(prod), i.synthetic.conversation_types, i.tolerance, "conversations")


def check_message_types(i: Inputs) -> TestResult:
    title = "Message type distribution"
    prod = i.shape.messages.type_distribution
    if not prod:
        return _skipped(title, "the shape has no messages.type_distribution")
    return _category_test(title, dict(prod), i.synthetic.message_types, i.tolerance, "messages")


def _hourly(shape: ShapeMetrics) -> list[int] | None:
    m = shape.messages
    if m.hourly_counts is not None:
        return list(m.hourly_counts)
    if m.hour_by_day_of_week is not None:
        return np.asarray(m.hour_by_day_of_week).sum(axis=0).astype(int).tolist()
    return None


def _weekly(shape: ShapeMetrics) -> list[int] | None:
    m = shape.messages
    if m.day_of_week_counts is not None:
        return list(m.day_of_week_counts)
    if m.hour_by_day_of_week is not None:
        return np.asarray(m.hour_by_day_of_week).sum(axis=1).astype(int).tolist()
    return None


def _labelled(counts: list[int] | np.ndarray, labels: tuple[str, ...]) -> dict[str, int]:
    return {label: int(n) for label, n in zip(labels, counts, strict=True)}


HOURS: tuple[str, ...] = tuple(f"{h:02d}" for h in range(24))


def _clustering(i: Inputs) -> float:
    """Messages of a conversation come in bursts: their times are not independent draws."""
    return st.cluster_design_effect(i.synthetic.messages_per_conversation)


def check_hourly_pattern(i: Inputs) -> TestResult:
    title = "Hourly pattern (UTC)"
    prod = _hourly(i.shape)
    if prod is None:
        return _skipped(title, "the shape has no messages.hourly_counts")
    syn = i.synthetic.hour_by_day_of_week.sum(axis=0)
    return _category_test(
        title, _labelled(prod, HOURS), _labelled(syn, HOURS), i.tolerance, "messages", _clustering(i)
    )


def check_day_of_week_pattern(i: Inputs) -> TestResult:
    title = "Day-of-week pattern (UTC)"
    prod = _weekly(i.shape)
    if prod is None:
        return _skipped(title, "the shape has no messages.day_of_week_counts")
    syn = i.synthetic.hour_by_day_of_week.sum(axis=1)
    return _category_test(
        title, _labelled(prod, WEEKDAYS), _labelled(syn, WEEKDAYS), i.tolerance, "messages", _clustering(i)
    )


# --------------------------------------------------------------------------------------
# Numeric distributions
# --------------------------------------------------------------------------------------


def _histogram_data(hist: Histogram | None, freq: Frequency) -> tuple[dict[str, Any], dict[str, Any]]:
    if hist is None:
        return {}, {}
    binned = st.bin_frequency(freq, hist.edges)
    return (
        {"histogram": {"edges": hist.edges, "counts": hist.counts}},
        {"histogram": {"edges": hist.edges, "counts": binned.astype(int).tolist()}},
    )


def _unexplained_parts(cmp: st.DistributionComparison, parts: dict[str, float]) -> dict[str, float]:
    """The deciding statistics with each percentile error replaced by its part outside noise."""
    out = dict(parts)
    if "max_percentile_error" in out:
        out["max_percentile_error"] = cmp.unexplained_percentile_error or 0.0
    if "median_error" in out and "p50" in cmp.noise_bands:
        out["median_error"] = st.unexplained({"p50": parts["median_error"]}, cmp.noise_bands)
    return out


def _distribution_test(
    title: str,
    cmp: st.DistributionComparison,
    deciding: dict[str, float | None],
    tolerance: float,
    unit: str,
    hist: Histogram | None,
    freq: Frequency,
) -> TestResult:
    """Decide on the largest of the `deciding` statistics (those that could be computed); a
    FAIL that rests only on percentile errors inside their noise bands becomes a WARNING."""
    parts = {k: v for k, v in deciding.items() if v is not None}
    prod_extra, syn_extra = _histogram_data(hist, freq)
    banded = bool(cmp.noise_bands) and ("max_percentile_error" in parts or "median_error" in parts)
    common = {
        "title": title,
        "tolerance": tolerance,
        "ks_statistic": cmp.ks_statistic,
        "max_percentile_error": cmp.max_percentile_error,
        "mean_error": cmp.mean_error,
        "median_error": cmp.median_error,
        "percentile_errors": cmp.percentile_errors,
        "noise_band": cmp.noise_band if banded else None,
        "production": {"percentiles": cmp.production_percentiles, "mean": cmp.production_mean, **prod_extra},
        "synthetic": {
            "percentiles": cmp.synthetic_percentiles,
            "mean": cmp.synthetic_mean,
            "count": cmp.synthetic_total,
            **({"noise_bands": cmp.noise_bands} if banded else {}),
            **syn_extra,
        },
    }
    if cmp.synthetic_total == 0:
        return TestResult(verdict="FAIL", reason=f"the synthetic data has no {unit}", **common)
    if not parts:
        return TestResult(verdict="SKIPPED", reason="no comparable production statistic", **common)
    name = max(parts, key=lambda k: parts[k])
    rest = max(_unexplained_parts(cmp, parts).values()) if banded else None
    verdict, reason = decide(parts[name], tolerance, unexplained=rest, noise_band=common["noise_band"])
    reason = f"{name.replace('_', ' ')} {reason} ({cmp.synthetic_total:,} synthetic {unit})"
    return TestResult(verdict=verdict, statistic=name, effect_size=parts[name], reason=reason, **common)


def _numeric(
    title: str,
    stats: Percentiles | None,
    freq: Frequency,
    i: Inputs,
    unit: str,
    *,
    use_percentiles: bool,
    hist: Histogram | None = None,
    mean: float | None = None,
    use_mean: bool = False,
    count: int | None = None,
) -> TestResult:
    if hist is None and isinstance(stats, DistributionStats):
        hist = stats.histogram
    cmp = st.compare_distribution(stats, freq, histogram=hist, mean=mean, production_count=count)
    deciding: dict[str, float | None] = {"ks_statistic": cmp.ks_statistic}
    if use_percentiles:
        deciding["max_percentile_error"] = cmp.max_percentile_error
    if use_mean or cmp.ks_statistic is None:
        deciding["mean_error"] = cmp.mean_error
        deciding["median_error"] = cmp.median_error
    return _distribution_test(title, cmp, deciding, i.tolerance, unit, hist, freq)


def check_messages_per_conversation(i: Inputs) -> TestResult:
    title = "Messages per conversation distribution"
    c = i.shape.conversations
    if c.messages_per_conversation_percentiles is None and c.messages_per_conversation_histogram is None:
        return _skipped(title, "the shape has no messages_per_conversation percentiles or histogram")
    return _numeric(
        title,
        c.messages_per_conversation_percentiles,
        i.synthetic.messages_per_conversation,
        i,
        "conversations",
        use_percentiles=True,
        hist=c.messages_per_conversation_histogram,
        mean=c.messages_per_conversation_mean,
        count=i.shape.totals.conversations if i.shape.totals else None,
    )


def check_content_length(i: Inputs) -> TestResult:
    title = "Content length distribution"
    stats = i.shape.messages.content_length_stats
    if stats is None:
        return _skipped(title, "the shape has no messages.content_length_stats")
    return _numeric(
        title, stats, i.synthetic.content_length, i, "messages", use_percentiles=False, use_mean=True
    )


def check_username_length(i: Inputs) -> TestResult:
    title = "Username length distribution"
    stats = i.shape.users.username_length if i.shape.users else None
    if stats is None:
        return _skipped(title, "the shape has no users.username_length")
    return _numeric(title, stats, i.synthetic.username_length, i, "users", use_percentiles=False)


def check_inter_message_gaps(i: Inputs) -> TestResult:
    title = "Within-conversation gaps (seconds)"
    stats = i.shape.messages.inter_message_gap_seconds
    if stats is None:
        return _skipped(title, "the shape has no messages.inter_message_gap_seconds")
    return _numeric(title, stats, i.synthetic.gap_seconds, i, "gaps", use_percentiles=True)


def check_messages_per_sender(i: Inputs) -> TestResult:
    title = "Messages per sender distribution"
    stats = i.shape.messages.messages_per_sender
    if stats is None:
        return _skipped(title, "the shape has no messages.messages_per_sender")
    return _numeric(title, stats, i.synthetic.messages_per_sender, i, "senders", use_percentiles=True)


def check_members_per_conversation(i: Inputs) -> TestResult:
    """KS distance per conversation type; the worst type decides."""
    title = "Members per conversation"
    prod = i.shape.conversations.members_per_conversation
    if not prod:
        return _skipped(title, "the shape has no conversations.members_per_conversation")
    per_type = {
        kind: _numeric(
            f"{title} ({kind})",
            stats,
            i.synthetic.members_per_conversation.get(kind, Frequency.empty()),
            i,
            f"{kind} conversations",
            use_percentiles=False,
            count=i.shape.conversations.type_distribution.get(kind) or None,
        )
        for kind, stats in sorted(prod.items())
        if i.synthetic.conversation_types.get(kind, 0) > 0 or kind in i.synthetic.members_per_conversation
    }
    if not per_type:
        return _skipped(title, "the synthetic data has none of the production conversation types")
    worst = max(per_type, key=lambda k: _severity(per_type[k]))
    w = per_type[worst]
    return TestResult(
        title=title,
        verdict=w.verdict,
        statistic=w.statistic,
        effect_size=w.effect_size,
        tolerance=i.tolerance,
        reason=f"{worst}: {w.reason}",
        ks_statistic=w.ks_statistic,
        noise_band=w.noise_band,
        percentile_errors={f"{k}.{p}": e for k, r in per_type.items() for p, e in r.percentile_errors.items()},
        production={k: r.production for k, r in per_type.items()},
        synthetic={**{k: r.synthetic for k, r in per_type.items()}, "worst_type": worst},
    )


_RANK = {"FAIL": 3, "WARNING": 2, "PASS": 1, "SKIPPED": 0}


def _severity(result: TestResult) -> tuple[int, float]:
    return _RANK[result.verdict], result.effect_size or 0.0


# --------------------------------------------------------------------------------------
# Integrity
# --------------------------------------------------------------------------------------


def check_integrity(i: Inputs) -> TestResult:
    title = "Referential and window integrity"
    if i.integrity is None:
        return _skipped(title, "integrity was not checked")
    breaches = i.integrity.breaches
    total = int(sum(breaches.values()))
    reason = (
        "; ".join(f"{n:,} {CHECKS[k]}" for k, n in breaches.items())
        if breaches
        else "no breach of any integrity rule"
    )
    return TestResult(
        title=title,
        verdict="FAIL" if total else "PASS",
        statistic="integrity_breaches",
        effect_size=float(total),
        tolerance=0.0,
        reason=reason,
        synthetic={"counts": i.integrity.counts, "not_checked": i.integrity.not_checked},
    )


# The seed's four first (their report keys), then the rest; the order numbers `[Test N]`.
CATALOG: tuple[tuple[str, Callable[[Inputs], TestResult]], ...] = (
    ("conversation_types", check_conversation_types),
    ("messages_per_conversation", check_messages_per_conversation),
    ("message_types", check_message_types),
    ("content_length", check_content_length),
    ("username_length", check_username_length),
    ("members_per_conversation", check_members_per_conversation),
    ("hourly_pattern", check_hourly_pattern),
    ("day_of_week_pattern", check_day_of_week_pattern),
    ("inter_message_gaps", check_inter_message_gaps),
    ("messages_per_sender", check_messages_per_sender),
    ("integrity", check_integrity),
)
TEST_KEYS: tuple[str, ...] = tuple(key for key, _ in CATALOG)


def run_tests(i: Inputs) -> dict[str, TestResult]:
    """Every test of the catalog, in order."""
    return {key: fn(i) for key, fn in CATALOG}
