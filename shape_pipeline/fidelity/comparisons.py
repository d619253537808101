"""The fidelity tests: each compares one production aggregate with the synthetic data's own.

Each test turns (production shape, synthetic frequency tables, integrity findings) into one
`TestResult` with the seed's keys, the deciding effect size and the data the charts need. A test
whose production metric is absent from the shape is SKIPPED with the reason (seed-form shapes
have no histograms, no temporal data) and does not count toward the verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from shape_pipeline.contracts import (
    PERCENTILE_KEYS,
    DistributionStats,
    Histogram,
    Histogram2D,
    Percentiles,
    ShapeMetrics,
    TestResult,
    TestVerdict,
)
from shape_pipeline.fidelity import statistics as st
from shape_pipeline.fidelity.database_source import DatabaseFindings
from shape_pipeline.fidelity.integrity import CHECKS, IntegrityFindings
from shape_pipeline.fidelity.layout import physical_layout_result
from shape_pipeline.fidelity.plans import query_plans_result
from shape_pipeline.fidelity.verdict import decide
from shape_pipeline.sampling.frequencies import MEMBER_EDGES, SIZE_EDGES, Frequency, FrequencyTables
from shape_pipeline.workload.compare import DEFAULT_MAX_LOG2_RATIO

WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Inputs:
    """Everything the tests read."""

    shape: ShapeMetrics
    synthetic: FrequencyTables
    integrity: IntegrityFindings | None
    tolerance: float
    database: DatabaseFindings | None = None  # plans and layout (a PostgreSQL synthetic database only)
    plan_log2_ratio: float = DEFAULT_MAX_LOG2_RATIO


def _skipped(title: str, reason: str) -> TestResult:
    return TestResult(title=title, verdict="SKIPPED", reason=reason)


def _dp_scale(i: Inputs, *paths: str) -> float | None:
    """The Laplace scale b of the noise a DP shape added to the statistic at `paths` (the first
    a family covers), so its noise bands can include it; None when the numbers are not noisy."""
    privacy = i.shape.privacy
    if privacy is None or privacy.mode != "dp" or privacy.dp is None:
        return None
    families = (privacy.dp.family_of(path) for path in paths)
    return next((family.scale for family in families if family is not None), None)


def _dp_reason(reason: str, dp_scale: float | None) -> str:
    """A reason that says its noise bands include the shape's DP noise (unchanged without)."""
    return f"{reason}; noise bands include the shape's DP noise (Laplace scale {dp_scale:g})" if dp_scale else reason


def _dp_detail(dp_scale: float | None, bands: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The report's DP detail: the scale the shape records and the bands of the deciding
    statistics it widened, nothing the shape does not give already ({} without DP noise)."""
    if not dp_scale:
        return {}
    return {"dp_noise": {"scale": dp_scale, **({"statistic_noise_bands": dict(bands)} if bands else {})}}


# --------------------------------------------------------------------------------------
# Categories
# --------------------------------------------------------------------------------------


RARE_SHARE = 0.10  # categories below this production share are judged by relative error too


def _rare_categories(
    cmp: st.CategoryComparison, production_count: int, design_effect: float, dp_sd: Mapping[str, float]
) -> tuple[dict[str, float], dict[str, float]]:
    """(plain relative share errors, noise bands) of the categories rarer than RARE_SHARE.

    An absolute bound cannot see a rare category: AUDIO at 1% gone entirely is a TVD of 0.01.
    Its relative error |s/p - 1| can (1.0 here), with the binomial noise band beside it.
    """
    rare = [k for k, p in cmp.production_shares.items() if 0 < p < RARE_SHARE]
    errors = {k: st.share_error(cmp.synthetic_shares[k], cmp.production_shares[k]) for k in rare}
    bands = {
        k: st.share_noise_band(
            cmp.production_shares[k], production_count, cmp.synthetic_total, design_effect, dp_sd=dp_sd.get(k, 0.0)
        )
        for k in rare
    }
    return errors, bands


def _category_dp_sd(
    cmp: st.CategoryComparison, production: Mapping[str, float], dp_scale: float | None, cells: int
) -> dict[str, float]:
    """Each production share's DP sd: a category (an hour, a day) sums `cells` noisy counts, the
    total all of the table's."""
    if not dp_scale:
        return {}
    n, rest = sum(production.values()), cells * (len(production) - 1)
    return {k: float(st.dp_share_sd(p, n, dp_scale, cells, rest)) for k, p in cmp.production_shares.items()}


def _category_test(
    title: str,
    production: Mapping[str, float],
    synthetic: dict[str, int],
    tolerance: float,
    unit: str,
    design_effect: float = 1.0,
    *,
    rare: bool = False,
    dp_scale: float | None = None,
    cells: int = 1,
) -> TestResult:
    """TVD decides; with `rare`, so does the largest relative error of a rare category, a FAIL
    softened by one step where every such error above a line lies inside its noise band.

    A DP shape's counts (each summing `cells` noisy cells) give the TVD a noise band as well, and
    a production 0 may be a noisy count clamped to 0: a category the synthetic data has no more
    of than that noise hides (z sd of its share) is not a zero-mass FAIL.
    """
    cmp = st.compare_categories(production, synthetic, design_effect=design_effect)
    n_prod = int(sum(production.values()))
    dp_sd = _category_dp_sd(cmp, production, dp_scale, cells)
    errors, bands = _rare_categories(cmp, n_prod, design_effect, dp_sd) if rare else ({}, {})
    stat_bands: dict[str, float] = {}
    if dp_sd:
        shares, sds = np.array(list(cmp.production_shares.values())), np.array(list(dp_sd.values()))
        stat_bands["total_variation_distance"] = st.tvd_noise_band(
            shares, n_prod, cmp.synthetic_total, design_effect=design_effect, dp_sd=sds
        )
    zero_mass = [k for k in cmp.zero_mass if cmp.synthetic_shares[k] > st.NOISE_Z * dp_sd.get(k, 0.0)]
    parts = {"total_variation_distance": cmp.tvd}
    if errors:
        parts["max_rare_share_error"] = max(errors.values())
    name = max(parts, key=lambda k: parts[k])
    worst = max(errors, key=lambda k: errors[k]) if errors else None
    noise_band = stat_bands.get(name, bands[worst] if worst is not None else None)
    verdict: TestVerdict
    if cmp.synthetic_total == 0:
        verdict, reason = "FAIL", f"the synthetic data has no {unit}"
    elif zero_mass:
        verdict = "FAIL"
        reason = (
            f"categor{'y' if len(zero_mass) == 1 else 'ies'} {', '.join(zero_mass)} "
            f"{'has' if len(zero_mass) == 1 else 'have'} zero production mass but appear"
            f"{'s' if len(zero_mass) == 1 else ''} in the synthetic data"
        )
    else:
        tvd = st.unexplained({"total_variation_distance": cmp.tvd}, stat_bands)
        rest = max(tvd, st.unexplained(errors, bands)) if errors or stat_bands else None
        verdict, reason = decide(parts[name], tolerance, p_value=cmp.p_value, unexplained=rest, noise_band=noise_band)
        what = (
            "total variation distance"
            if name == "total_variation_distance"
            else f"rare category {worst}: relative share error"
        )
        reason = _dp_reason(f"{what} {reason}", dp_scale)
    return TestResult(
        title=title,
        verdict=verdict,
        statistic=name,
        effect_size=parts[name],
        tolerance=tolerance,
        reason=reason,
        chi_square_statistic=cmp.chi_square,
        p_value=cmp.p_value,
        noise_band=noise_band,
        production={"shares": cmp.production_shares},
        synthetic={
            "shares": cmp.synthetic_shares,
            "count": cmp.synthetic_total,
            "total_variation_distance": cmp.tvd,
            "cohens_w": cmp.cohens_w,
            "zero_mass_categories": cmp.zero_mass,
            **({"rare_share_errors": errors, "noise_bands": bands} if errors else {}),
            **({"design_effect": design_effect} if design_effect != 1.0 else {}),
            **_dp_detail(dp_scale, stat_bands),
        },
    )


def _shape_value(shape: ShapeMetrics, path: str) -> Any:
    """The shape's block at "section.field" (None where the section or the field is absent)."""
    section, name = path.split(".")
    block = getattr(shape, section)
    return None if block is None else getattr(block, name)


@dataclass(frozen=True)
class TypeTest:
    """Category shares: production counts at `shape_path` (also the DP family's path) against
    the synthetic table's counts `synthetic`; TVD and the rare categories' errors decide."""

    key: str
    title: str
    shape_path: str
    synthetic: str  # a FrequencyTables attribute: category -> count
    unit: str  # what the synthetic data counts ("the synthetic data has no {unit}")

    def run(self, i: Inputs) -> TestResult:
        prod = _shape_value(i.shape, self.shape_path)
        if not prod:
            return _skipped(self.title, f"the shape has no {self.shape_path}")
        return _category_test(
            self.title,
            dict(prod),
            getattr(i.synthetic, self.synthetic),
            i.tolerance,
            self.unit,
            rare=True,
            dp_scale=_dp_scale(i, self.shape_path),
        )


TYPE_TESTS: tuple[TypeTest, ...] = (
    TypeTest(
        "conversation_types",
        "Conversation type distribution",
        "conversations.type_distribution",
        "conversation_types",
        "conversations",
    ),
    TypeTest("message_types", "Message type distribution", "messages.type_distribution", "message_types", "messages"),
)


def _margin(shape: ShapeMetrics, counts: str, axis: int) -> list[int] | None:
    """The messages' margin `counts` of the shape, else the hour x day grid summed over `axis`."""
    m = shape.messages
    margin = getattr(m, counts)
    if margin is not None:
        return list(margin)
    if m.hour_by_day_of_week is not None:
        return np.asarray(m.hour_by_day_of_week).sum(axis=axis).astype(int).tolist()
    return None


def _labelled(counts: list[int] | np.ndarray, labels: tuple[str, ...]) -> dict[str, int]:
    return {label: int(n) for label, n in zip(labels, counts, strict=True)}


HOURS: tuple[str, ...] = tuple(f"{h:02d}" for h in range(24))


def _clustering(i: Inputs) -> float:
    """Messages of a conversation come in bursts: their times are not independent draws."""
    return st.cluster_design_effect(i.synthetic.messages_per_conversation)


@dataclass(frozen=True)
class PatternTest:
    """A margin of the messages' hour x day grid (7 days x 24 hours, UTC): production's
    `messages.<counts>` (or its grid summed over `axis`) against the synthetic grid's, TVD with
    the design effect of messages clustered in conversations."""

    key: str
    title: str
    counts: str  # the MessageMetrics margin: hourly_counts or day_of_week_counts
    axis: int  # the grid axis the margin sums (0: the days, 1: the hours)
    labels: tuple[str, ...]
    cells: int  # noisy cells of the grid one category sums (a DP shape's noise)

    def run(self, i: Inputs) -> TestResult:
        prod = _margin(i.shape, self.counts, self.axis)
        if prod is None:
            return _skipped(self.title, f"the shape has no messages.{self.counts}")
        syn = i.synthetic.hour_by_day_of_week.sum(axis=self.axis)
        return _category_test(
            self.title,
            _labelled(prod, self.labels),
            _labelled(syn, self.labels),
            i.tolerance,
            "messages",
            _clustering(i),
            dp_scale=_dp_scale(i, f"messages.{self.counts}", "messages.hour_by_day_of_week"),
            cells=self.cells,
        )


PATTERN_TESTS: tuple[PatternTest, ...] = (
    PatternTest("hourly_pattern", "Hourly pattern (UTC)", "hourly_counts", 0, HOURS, cells=len(WEEKDAYS)),
    PatternTest(
        "day_of_week_pattern", "Day-of-week pattern (UTC)", "day_of_week_counts", 1, WEEKDAYS, cells=len(HOURS)
    ),
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
    """The deciding statistics with each error that has a noise band (percentiles; KS and mean
    of a DP shape) replaced by its part outside noise."""
    out = dict(parts)
    if "max_percentile_error" in out:
        out["max_percentile_error"] = cmp.unexplained_percentile_error or 0.0
    if "median_error" in out and "p50" in cmp.noise_bands:
        out["median_error"] = st.unexplained({"p50": parts["median_error"]}, cmp.noise_bands)
    for key, band in cmp.statistic_noise_bands.items():
        if key in out:
            out[key] = st.unexplained({key: parts[key]}, {key: band})
    return out


class _DistributionFields(TypedDict):
    """The TestResult fields every outcome of `_distribution_test` shares."""

    title: str
    tolerance: float
    ks_statistic: float | None
    max_percentile_error: float | None
    mean_error: float | None
    median_error: float | None
    percentile_errors: dict[str, float]
    noise_band: float | None
    production: dict[str, Any]
    synthetic: dict[str, Any]


def _distribution_test(
    title: str,
    cmp: st.DistributionComparison,
    deciding: dict[str, float | None],
    tolerance: float,
    unit: str,
    hist: Histogram | None,
    freq: Frequency,
    dp_scale: float | None = None,
) -> TestResult:
    """Decide on the largest of the `deciding` statistics (those that could be computed); a
    FAIL that rests only on errors inside their noise bands (percentiles; with DP noise also
    KS and mean) becomes a WARNING. The band reported is the deciding statistic's."""
    parts = {k: v for k, v in deciding.items() if v is not None}
    prod_extra, syn_extra = _histogram_data(hist, freq)
    banded = bool(cmp.noise_bands) and ("max_percentile_error" in parts or "median_error" in parts)
    stat_bands = {k: band for k, band in cmp.statistic_noise_bands.items() if k in parts}
    name = max(parts, key=lambda k: parts[k]) if parts else ""
    common: _DistributionFields = {
        "title": title,
        "tolerance": tolerance,
        "ks_statistic": cmp.ks_statistic,
        "max_percentile_error": cmp.max_percentile_error,
        "mean_error": cmp.mean_error,
        "median_error": cmp.median_error,
        "percentile_errors": cmp.percentile_errors,
        "noise_band": stat_bands.get(name, cmp.noise_band if banded else None),
        "production": {"percentiles": cmp.production_percentiles, "mean": cmp.production_mean, **prod_extra},
        "synthetic": {
            "percentiles": cmp.synthetic_percentiles,
            "mean": cmp.synthetic_mean,
            "count": cmp.synthetic_total,
            **({"noise_bands": cmp.noise_bands} if banded else {}),
            **syn_extra,
            **_dp_detail(dp_scale, stat_bands),
        },
    }
    if cmp.synthetic_total == 0:
        return TestResult(verdict="FAIL", reason=f"the synthetic data has no {unit}", **common)
    if not parts:
        return TestResult(verdict="SKIPPED", reason="no comparable production statistic", **common)
    rest = max(_unexplained_parts(cmp, parts).values()) if banded or stat_bands else None
    verdict, reason = decide(parts[name], tolerance, unexplained=rest, noise_band=common["noise_band"])
    reason = _dp_reason(f"{name.replace('_', ' ')} {reason} ({cmp.synthetic_total:,} synthetic {unit})", dp_scale)
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
    dp_scale: float | None = None,
) -> TestResult:
    if hist is None and isinstance(stats, DistributionStats):
        hist = stats.histogram
    cmp = st.compare_distribution(stats, freq, histogram=hist, mean=mean, production_count=count, dp_scale=dp_scale)
    deciding: dict[str, float | None] = {"ks_statistic": cmp.ks_statistic}
    if use_percentiles:
        deciding["max_percentile_error"] = cmp.max_percentile_error
    if use_mean or cmp.ks_statistic is None:
        deciding["mean_error"] = cmp.mean_error
        deciding["median_error"] = cmp.median_error
    return _distribution_test(title, cmp, deciding, i.tolerance, unit, hist, freq, dp_scale)


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
        count=i.shape.totals.count("conversations") if i.shape.totals else None,
        dp_scale=_dp_scale(
            i,
            "conversations.messages_per_conversation_histogram",
            "conversations.messages_per_conversation_percentiles",
        ),
    )


PERMILLE = 1000.0


def _as_permille(stats: DistributionStats) -> DistributionStats:
    """Production shares (0-1] in the synthetic table's unit, round(1000 * share), so the exact
    integer KS distance applies at every histogram edge and percentile."""
    scaled = {
        k: (round(v * PERMILLE) if k in (*PERCENTILE_KEYS, "max", "median") else v * PERMILLE)
        for k in (*PERCENTILE_KEYS, "max", "median", "mean", "stddev")
        if (v := getattr(stats, k)) is not None
    }
    hist = stats.histogram
    if hist is not None:
        hist = Histogram(edges=[round(e * PERMILLE, 6) for e in hist.edges], counts=list(hist.counts))
    return DistributionStats(count=stats.count, histogram=hist, **scaled)


@dataclass(frozen=True)
class NumericTest:
    """One numeric distribution: the production stats at `shape_path` (also the DP family's
    path) against the synthetic frequency table `synthetic`. The KS distance decides, with the
    deciding percentiles' largest relative error (`use_percentiles`) and the mean and median
    errors (`use_mean`; they decide anyway where KS cannot be computed)."""

    key: str
    title: str
    shape_path: str  # "section.field" of the shape: a DistributionStats block
    synthetic: str  # the FrequencyTables attribute: a Frequency
    unit: str  # what the synthetic table counts ("N synthetic {unit}")
    use_percentiles: bool
    use_mean: bool = False
    permille: bool = False  # production shares (0-1], compared in the table's permille

    def run(self, i: Inputs) -> TestResult:
        stats = _shape_value(i.shape, self.shape_path)
        if stats is None:
            return _skipped(self.title, f"the shape has no {self.shape_path}")
        return _numeric(
            self.title,
            _as_permille(stats) if self.permille else stats,
            getattr(i.synthetic, self.synthetic),
            i,
            self.unit,
            use_percentiles=self.use_percentiles,
            use_mean=self.use_mean,
            dp_scale=_dp_scale(i, self.shape_path),
        )


NUMERIC_TESTS: tuple[NumericTest, ...] = (
    NumericTest(
        "content_length",
        "Content length distribution",
        "messages.content_length_stats",
        "content_length",
        "messages",
        use_percentiles=False,
        use_mean=True,
    ),
    NumericTest(
        "username_length",
        "Username length distribution",
        "users.username_length",
        "username_length",
        "users",
        use_percentiles=False,
    ),
    NumericTest(
        "inter_message_gaps",
        "Within-conversation gaps (seconds)",
        "messages.inter_message_gap_seconds",
        "gap_seconds",
        "gaps",
        use_percentiles=True,
    ),
    NumericTest(
        "messages_per_sender",
        "Messages per sender distribution",
        "messages.messages_per_sender",
        "messages_per_sender",
        "senders",
        use_percentiles=True,
    ),
    # The skews that decide index behaviour. Active conversations each member belongs to: the
    # plan of a user's conversation list.
    NumericTest(
        "conversations_per_user",
        "Conversations per user",
        "users.conversations_per_user",
        "conversations_per_user",
        "members",
        use_percentiles=True,
    ),
    # How much of a conversation its most active sender writes, in permille. Decided on the
    # exact KS distance at the exported points (histogram edges, percentiles), not on relative
    # percentile errors: shares are bounded and pile up at 1.0 (single-sender rooms), so p90-p99
    # are often exactly 1000 on both sides and a relative error near the bottom of the range says
    # little; KS weighs every part of the range alike. Plain errors are reported.
    NumericTest(
        "top_sender_share",
        "Top sender share (permille of a conversation's messages)",
        "conversations.top_sender_share",
        "top_sender_permille",
        "conversations",
        use_percentiles=False,
        permille=True,
    ),
    NumericTest(
        "conversation_lifetime",
        "Conversation lifetime (seconds)",
        "conversations.lifetime_seconds",
        "lifetime_seconds",
        "conversations",
        use_percentiles=True,
    ),
)


def check_members_per_conversation(i: Inputs) -> TestResult:
    """KS distance per conversation type; the worst type decides."""
    title = "Members per conversation"
    prod = i.shape.conversations.members_per_conversation
    if not prod:
        return _skipped(title, "the shape has no conversations.members_per_conversation")
    dp_scale = _dp_scale(i, "conversations.members_per_conversation")
    per_type = {
        kind: _numeric(
            f"{title} ({kind})",
            stats,
            i.synthetic.members_per_conversation.get(kind, Frequency.empty()),
            i,
            f"{kind} conversations",
            use_percentiles=False,
            count=i.shape.conversations.type_distribution.get(kind) or None,
            dp_scale=dp_scale,
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


# --------------------------------------------------------------------------------------
# The skews that decide index behaviour: recency, trend, the size x members grid (hot users,
# hot rooms and lifetimes are rows of NUMERIC_TESTS)
# --------------------------------------------------------------------------------------


def _share_test(
    title: str,
    statistic: str,
    production: dict[str, float],
    synthetic: dict[str, float],
    counts: tuple[int | None, int],
    tolerance: float,
    design_effect: float = 1.0,
    extra: tuple[dict[str, Any], dict[str, Any]] = ({}, {}),
    *,
    dp_scale: float | None = None,
    cells: Mapping[str, tuple[int, int | None]] | None = None,
) -> TestResult:
    """Plain relative errors |s/p - 1| of a few shares; the largest decides, softened by one
    step where every error above a line lies inside its binomial noise band. A DP shape's share
    k sums cells[k] = (its noisy counts, the total's others or None) (`statistics.dp_share_sd`)."""
    n_prod, n_syn = counts
    errors = {k: st.share_error(synthetic[k], p) for k, p in production.items()}
    dp_sd = (
        {
            k: float(st.dp_share_sd(p, n_prod or 0, dp_scale, *(cells or {}).get(k, (1, None))))
            for k, p in production.items()
        }
        if dp_scale
        else {}
    )
    bands = {
        k: st.share_noise_band(p, n_prod, n_syn, design_effect, dp_sd=dp_sd.get(k, 0.0)) for k, p in production.items()
    }
    worst = max(errors, key=lambda k: errors[k])
    verdict, reason = decide(
        errors[worst], tolerance, unexplained=st.unexplained(errors, bands), noise_band=bands[worst]
    )
    return TestResult(
        title=title,
        verdict=verdict,
        statistic=statistic,
        effect_size=errors[worst],
        tolerance=tolerance,
        reason=_dp_reason(f"{worst.replace('_', ' ')}: {reason}", dp_scale),
        noise_band=bands[worst],
        production={"shares": production, **extra[0]},
        synthetic={
            "shares": synthetic,
            "count": n_syn,
            "share_errors": errors,
            "noise_bands": bands,
            **({"design_effect": design_effect} if design_effect != 1.0 else {}),
            **extra[1],
            **_dp_detail(dp_scale),
        },
    )


def check_recency(i: Inputs) -> TestResult:
    """Shares of conversations whose last message lies in the window's last 7 and 30 days."""
    title = "Recency (conversations active in the last 7 / 30 days)"
    recency = i.shape.conversations.recency
    if recency is None:
        return _skipped(title, "the shape has no conversations.recency")
    n_prod = (i.shape.totals.count("conversations") if i.shape.totals else None) or 0
    if not n_prod:
        return _skipped(title, "the shape has no totals.conversations to turn recency into shares")
    n_syn = i.synthetic.conversations_total
    if n_syn == 0:
        return TestResult(title=title, verdict="FAIL", reason="the synthetic data has no conversations")
    counts = {
        "active_last_7_days": (recency.active_last_7_days, i.synthetic.active_last_7_days),
        "active_last_30_days": (recency.active_last_30_days, i.synthetic.active_last_30_days),
    }
    return _share_test(
        title,
        "max_share_error",
        {k: p / n_prod for k, (p, _) in counts.items()},
        {k: s / n_syn for k, (_, s) in counts.items()},
        (n_prod, n_syn),
        i.tolerance,
        extra=({"counts": {k: p for k, (p, _) in counts.items()}}, {"counts": {k: s for k, (_, s) in counts.items()}}),
        dp_scale=_dp_scale(i, "conversations.recency"),  # one noisy count per share, over the totals
    )


def weekly_blocks(days: int) -> list[tuple[int, int]]:
    """[start, end) day ranges of 7 days counted back from the window's end, the oldest block
    taking the days left over (a 30-day window: days 0-9, 9-16, 16-23, 23-30)."""
    if days <= 7:
        return [(0, days)]
    ends = list(range(days, 6, -7))
    blocks = [(end - 7, end) for end in ends]
    blocks[-1] = (0, blocks[-1][1])
    return blocks[::-1]


def _padded(a: list[int] | np.ndarray, length: int) -> np.ndarray:
    out = np.zeros(length, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)[:length]
    out[: len(a)] = a
    return out


def check_messages_per_day(i: Inputs) -> TestResult:
    """The trend over the window, judged on 7-day blocks counted back from its end.

    Each block's share of the window's messages is compared by plain relative error (the daily
    series itself is too noisy, and its total variation distance too forgiving: a flat series
    against production whose last week holds half an average week is a TVD of only 0.10, but an
    error of 77% on the last block). Noise bands are binomial with the design effect of messages
    clustered in conversations. Daily shares are kept for the chart.
    """
    title = "Messages per day (trend over the window)"
    daily = i.shape.messages.daily_counts
    if not daily or sum(daily) == 0:
        return _skipped(title, "the shape has no messages.daily_counts")
    prod = _padded(daily, len(daily))
    syn = _padded(i.synthetic.messages_per_day, len(daily))
    if syn.sum() == 0:
        return TestResult(title=title, verdict="FAIL", reason="the synthetic data has no messages in the window")
    blocks = weekly_blocks(len(daily))
    label = {b: f"days {b[0] + 1}-{b[1]}" for b in blocks}
    labels = [f"{d + 1:02d}" for d in range(len(daily))]
    return _share_test(
        title,
        "max_weekly_share_error",
        {label[b]: float(prod[b[0] : b[1]].sum() / prod.sum()) for b in blocks},
        {label[b]: float(syn[b[0] : b[1]].sum() / syn.sum()) for b in blocks},
        (int(prod.sum()), int(syn.sum())),
        i.tolerance,
        design_effect=_clustering(i),
        extra=(
            {"daily_shares": _labelled(prod / prod.sum(), tuple(labels))},
            {"daily_shares": _labelled(syn / syn.sum(), tuple(labels))},
        ),
        dp_scale=_dp_scale(i, "messages.daily_counts"),
        cells={label[b]: (b[1] - b[0], len(daily) - (b[1] - b[0])) for b in blocks},  # noisy days in / out
    )


def rebin_grid(
    counts: np.ndarray, row_edges: Sequence[float], column_edges: Sequence[float], onto: Histogram2D
) -> tuple[np.ndarray, int]:
    """(counts on `onto`'s cells, count left outside its extent) of a grid with other edges.

    Each source cell goes to the target cell holding its lower corner, which is exact when the
    target edges are a subset of the source's (the production grid is the fixed power-of-two
    grid, trimmed to its non-empty extent).
    """
    src = np.asarray(counts, dtype=np.int64)
    rows = np.searchsorted(onto.row_edges, row_edges[: src.shape[0]], side="right") - 1
    cols = np.searchsorted(onto.column_edges, column_edges[: src.shape[1]], side="right") - 1
    ok_r = (rows >= 0) & (rows < len(onto.row_edges) - 1)
    ok_c = (cols >= 0) & (cols < len(onto.column_edges) - 1)
    out = np.zeros((len(onto.row_edges) - 1, len(onto.column_edges) - 1), dtype=np.int64)
    inside = src[np.ix_(ok_r, ok_c)]
    np.add.at(out, (rows[ok_r][:, None], cols[ok_c][None, :]), inside)
    return out, int(src.sum() - inside.sum())


def check_size_by_members(i: Inputs) -> TestResult:
    """The joint of conversation size and member count: TVD over the production grid's cells
    (both normalised; synthetic conversations outside its extent count as a cell of their
    own), softened by one step inside the TVD two samples of these sizes show."""
    title = "Conversation size x members (2-D)"
    grid = i.shape.conversations.size_by_members
    if grid is None:
        return _skipped(title, "the shape has no conversations.size_by_members")
    prod = np.asarray(grid.counts, dtype=np.float64)
    if prod.sum() == 0:
        return _skipped(title, "every cell of the production size x members grid is suppressed")
    syn, outside = rebin_grid(i.synthetic.size_by_members, SIZE_EDGES, MEMBER_EDGES, grid)
    n_syn = int(syn.sum()) + outside
    if n_syn == 0:
        return TestResult(title=title, verdict="FAIL", reason="the synthetic data has no conversations")
    p, q = prod / prod.sum(), syn / n_syn
    tvd = 0.5 * float(np.abs(p - q).sum() + outside / n_syn)
    dp_scale = _dp_scale(i, "conversations.size_by_members")
    dp_sd = st.dp_share_sd(p, prod.sum(), dp_scale, 1, p.size - 1) if dp_scale else 0.0  # one noisy count a cell
    band = st.tvd_noise_band(p, int(prod.sum()), n_syn, dp_sd=dp_sd)
    verdict, reason = decide(tvd, i.tolerance, unexplained=0.0 if tvd <= band else tvd, noise_band=band)
    edges = {"row_edges": grid.row_edges, "column_edges": grid.column_edges}
    return TestResult(
        title=title,
        verdict=verdict,
        statistic="total_variation_distance",
        effect_size=tvd,
        tolerance=i.tolerance,
        reason=_dp_reason(f"total variation distance {reason} ({n_syn:,} synthetic conversations)", dp_scale),
        noise_band=band,
        production={"grid": {**edges, "shares": p.tolist()}},
        synthetic={
            "grid": {**edges, "shares": q.tolist()},
            "outside_share": outside / n_syn,
            "count": n_syn,
            **_dp_detail(dp_scale),
        },
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
        "; ".join(f"{n:,} {CHECKS[k]}" for k, n in breaches.items()) if breaches else "no breach of any integrity rule"
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


# --------------------------------------------------------------------------------------
# Phase 2: how the rows lie on disk, and the plans the app's queries get
# --------------------------------------------------------------------------------------


def check_physical_layout(i: Inputs) -> TestResult:
    return physical_layout_result(i.shape.physical_layout, i.database, tolerance=i.tolerance)


def check_query_plans(i: Inputs) -> TestResult:
    """Plan flips over the same rows are noise only where the layout matches production's."""
    layout = check_physical_layout(i).verdict in ("PASS", "WARNING")
    return query_plans_result(i.shape.query_plans, i.database, max_log2_ratio=i.plan_log2_ratio, layout_matches=layout)


# The seed's four first (their report keys), then the rest; the order numbers `[Test N]`.
TEST_KEYS: tuple[str, ...] = (
    "conversation_types",
    "messages_per_conversation",
    "message_types",
    "content_length",
    "username_length",
    "members_per_conversation",
    "hourly_pattern",
    "day_of_week_pattern",
    "inter_message_gaps",
    "messages_per_sender",
    "conversations_per_user",
    "top_sender_share",
    "conversation_lifetime",
    "recency",
    "size_by_members",
    "messages_per_day",
    "physical_layout",
    "query_plans",
    "integrity",
)
_TABLE_TESTS: tuple[TypeTest | PatternTest | NumericTest, ...] = (*TYPE_TESTS, *PATTERN_TESTS, *NUMERIC_TESTS)
_CHECKS: dict[str, Callable[[Inputs], TestResult]] = {
    **{test.key: test.run for test in _TABLE_TESTS},
    "messages_per_conversation": check_messages_per_conversation,
    "members_per_conversation": check_members_per_conversation,
    "recency": check_recency,
    "size_by_members": check_size_by_members,
    "messages_per_day": check_messages_per_day,
    "physical_layout": check_physical_layout,
    "query_plans": check_query_plans,
    "integrity": check_integrity,
}
CATALOG: tuple[tuple[str, Callable[[Inputs], TestResult]], ...] = tuple((key, _CHECKS[key]) for key in TEST_KEYS)
# The category tests under the names they had as functions (the property tests call one).
check_conversation_types, check_message_types = (test.run for test in TYPE_TESTS)


def run_tests(i: Inputs) -> dict[str, TestResult]:
    """Every test of the catalog, in order."""
    return {key: fn(i) for key, fn in CATALOG}
