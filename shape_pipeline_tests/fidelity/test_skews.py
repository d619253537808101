"""The six skew tests of issue 10: a faithful draw passes each, a shift of one skew fails its own
test only, and each shows in the console, the JSON, the HTML and a Dagster check.

Production and synthetic frequency tables are drawn here from known distributions (numpy), and
the production shape gets its skew blocks the way the sampler exports them: percentiles and a
histogram, small cells suppressed, the size x members grid trimmed to its non-empty extent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pytest

from shape_pipeline.contracts import Histogram2D, Recency, ShapeMetrics
from shape_pipeline.fidelity.comparisons import weekly_blocks
from shape_pipeline.fidelity.render_console import render
from shape_pipeline.fidelity.report_html import render_html
from shape_pipeline.fidelity.validate import compare
from shape_pipeline.locations.fidelity_assets import check_result
from shape_pipeline.sampling.frequencies import (
    MEMBER_EDGES,
    SIZE_EDGES,
    Frequency,
    FrequencyTables,
    power_of_two_bucket,
)
from shape_pipeline.sampling.privacy import PrivacyTally
from shape_pipeline.sampling.shape import distribution_stats, shape_from_frequencies

END = datetime(2025, 10, 22, tzinfo=UTC)
DAYS = 30
START = END - timedelta(days=DAYS)
K = 10  # the sampler's default min_cell_count
SKEW_KEYS = (
    "conversations_per_user",
    "top_sender_share",
    "conversation_lifetime",
    "recency",
    "size_by_members",
    "messages_per_day",
)


@dataclass(frozen=True)
class Skews:
    """The distributions one side is drawn from (defaults: production's)."""

    conversations: int = 20_000
    memberships_scale: float = 1.0  # conversations per user x this
    top_sender_beta: tuple[float, float] = (3.0, 2.0)  # share = 0.2 + 0.8 * Beta(a, b)
    lifetime_scale: float = 1.0
    last_7: float = 0.30  # share of conversations active in the last 7 days
    last_30: float = 0.85
    members_mean: float = 3.0  # members = 1 + Poisson(mean)
    trend: bool = True  # the last 7 days hold half an average week
    seed: int = 0


def daily_weights(trend: bool) -> np.ndarray:
    w = np.ones(DAYS)
    if trend:
        w[-7:] = 0.5
    return w / w.sum()


def tables(s: Skews) -> FrequencyTables:
    rng = np.random.default_rng(s.seed)
    n = s.conversations
    sizes = np.ceil(rng.lognormal(np.log(12.0), 1.1, n)).astype(np.int64)
    members = 1 + rng.poisson(s.members_mean, n)
    grid = np.zeros((len(SIZE_EDGES) - 1, len(MEMBER_EDGES) - 1), dtype=np.int64)
    np.add.at(grid, (power_of_two_bucket(sizes, SIZE_EDGES), power_of_two_bucket(members, MEMBER_EDGES)), 1)
    a, b = s.top_sender_beta
    share = 0.2 + 0.8 * rng.beta(a, b, n)
    per_user = np.ceil(s.memberships_scale * rng.lognormal(np.log(8.0), 1.0, n // 2))
    lifetime = np.floor(s.lifetime_scale * rng.lognormal(np.log(86_400.0), 1.2, n))
    total = int(sizes.sum())
    return FrequencyTables(
        users_total=n,
        conversations_total=n,
        messages_total=total,
        messages_per_conversation=Frequency.from_values(sizes),
        conversations_per_user=Frequency.from_values(per_user),
        top_sender_permille=Frequency.from_values(np.round(1000 * share)),
        lifetime_seconds=Frequency.from_values(lifetime),
        active_last_7_days=int(rng.binomial(n, s.last_7)),
        active_last_30_days=int(rng.binomial(n, s.last_30)),
        size_by_members=grid,
        messages_per_day=rng.multinomial(total, daily_weights(s.trend)),
    )


def share_grid(upper: float) -> np.ndarray:
    """The top sender share's fixed grid: 20 buckets of 0.05 and one holding 1.0."""
    return np.round(np.arange(0.0, 1.0501, 0.05), 2)


def trimmed(grid: np.ndarray) -> Histogram2D:
    """Small cells zeroed, then the grid cut to its non-empty extent, with its edges."""
    g = np.where(grid < K, 0, grid)
    rows, cols = np.nonzero(g.sum(axis=1))[0], np.nonzero(g.sum(axis=0))[0]
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return Histogram2D(
        row_edges=[float(e) for e in SIZE_EDGES[r0 : r1 + 1]],
        column_edges=[float(e) for e in MEMBER_EDGES[c0 : c1 + 1]],
        counts=g[r0:r1, c0:c1].tolist(),
    )


def production_shape(t: FrequencyTables) -> ShapeMetrics:
    """The shape with the skew blocks, as the sampler exports them (privacy rules on)."""
    shape = shape_from_frequencies(t, window_start=START, window_end=END, extracted_at=END, min_cell_count=K)
    tally = PrivacyTally(K)
    shares = Frequency(t.top_sender_permille.values / 1000.0, t.top_sender_permille.counts)
    shape.users.conversations_per_user = distribution_stats(t.conversations_per_user, tally)
    c = shape.conversations
    c.top_sender_share = distribution_stats(shares, tally, grid=share_grid)
    c.lifetime_seconds = distribution_stats(t.lifetime_seconds, tally)
    c.recency = Recency(active_last_7_days=t.active_last_7_days, active_last_30_days=t.active_last_30_days)
    c.size_by_members = trimmed(t.size_by_members)
    shape.messages.daily_counts = [int(x) for x in t.messages_per_day]
    return ShapeMetrics.model_validate(shape.model_dump())


@pytest.fixture(scope="module")
def production() -> ShapeMetrics:
    return production_shape(tables(Skews()))


def _verdicts(shape: ShapeMetrics, synthetic: FrequencyTables) -> dict[str, str]:
    report = compare(shape, synthetic, None, tolerance=0.15, now=END)
    return {k: report.tests[k].verdict for k in SKEW_KEYS}


def test_a_faithful_draw_passes_every_skew_test(production: ShapeMetrics) -> None:
    assert _verdicts(production, tables(Skews(seed=1))) == dict.fromkeys(SKEW_KEYS, "PASS")


SHIFTS: dict[str, tuple[dict, str]] = {
    "users in more conversations": ({"memberships_scale": 1.4}, "conversations_per_user"),
    "one sender writes more": ({"top_sender_beta": (6.0, 1.0)}, "top_sender_share"),
    "longer-lived conversations": ({"lifetime_scale": 1.4}, "conversation_lifetime"),
    "fewer recent conversations": ({"last_7": 0.20}, "recency"),
    "more members per room": ({"members_mean": 8.0}, "size_by_members"),
    "a flat trend": ({"trend": False}, "messages_per_day"),
}


@pytest.mark.parametrize("name", list(SHIFTS))
def test_each_shift_fails_its_own_skew_test_only(name: str, production: ShapeMetrics) -> None:
    knobs, target = SHIFTS[name]
    verdicts = _verdicts(production, tables(replace(Skews(seed=1), **knobs)))
    assert verdicts[target] == "FAIL"
    assert {k for k, v in verdicts.items() if v == "FAIL"} == {target}


def test_a_flat_series_fails_against_a_trend_that_tvd_would_pass(production: ShapeMetrics) -> None:
    """The brief's example: production's last 7 days hold half an average week."""
    report = compare(production, tables(Skews(seed=1, trend=False)), None, now=END)
    result = report.tests["messages_per_day"]
    p = np.asarray(production.messages.daily_counts, dtype=float)
    q = np.full(DAYS, 1.0 / DAYS)
    assert 0.5 * np.abs(p / p.sum() - q).sum() < 0.15  # the daily TVD alone would pass it
    assert result.statistic == "max_weekly_share_error"
    assert result.effect_size == pytest.approx((7 / 30) / (3.5 / 26.5) - 1, abs=0.05)  # about 77%
    assert result.synthetic["share_errors"]["days 24-30"] == result.effect_size
    assert weekly_blocks(DAYS) == [(0, 9), (9, 16), (16, 23), (23, 30)]


def test_the_grid_is_aligned_by_edges(production: ShapeMetrics) -> None:
    grid = production.conversations.size_by_members
    assert len(grid.row_edges) < len(SIZE_EDGES) and len(grid.column_edges) < len(MEMBER_EDGES)  # trimmed
    same = tables(Skews())  # production's own tables: zero distance but for the suppressed cells
    result = compare(production, same, None, now=END).tests["size_by_members"]
    suppressed = same.size_by_members[(same.size_by_members > 0) & (same.size_by_members < K)].sum()
    assert result.effect_size == pytest.approx(suppressed / same.conversations_total, abs=1e-9)
    assert result.noise_band is not None and 0 < result.noise_band < 0.05


def test_every_skew_test_is_skipped_with_its_reason_without_its_block() -> None:
    full = shape_from_frequencies(
        tables(Skews()), window_start=START, window_end=END, extracted_at=END, min_cell_count=K
    )
    conv, msg, users = full.conversations, full.messages, full.users
    plain = full.model_copy(
        update={
            "conversations": conv.model_copy(
                update=dict.fromkeys(("top_sender_share", "lifetime_seconds", "recency", "size_by_members"))
            ),
            "messages": msg.model_copy(update={"daily_counts": None}),
            "users": users.model_copy(update={"conversations_per_user": None}),
        }
    )  # a shape from before these blocks existed
    report = compare(plain, tables(Skews(seed=1)), None, now=END)
    for key in SKEW_KEYS:
        assert report.tests[key].verdict == "SKIPPED"
        assert report.tests[key].reason.startswith("the shape has no"), key


def test_the_skew_tests_show_in_console_json_html_and_dagster(production: ShapeMetrics) -> None:
    report = compare(production, tables(Skews(seed=1, trend=False, last_7=0.2)), None, now=END)
    lines: list[str] = []
    render(report, lines.append)
    text = "\n".join(lines)
    for key in SKEW_KEYS:
        assert f"{report.tests[key].title}..." in text
    assert "Share Errors: days 1-9" in text and "Noise Band:" in text
    data = report.model_dump(mode="json")
    assert data["tests"]["recency"]["noise_band"] > 0
    assert set(data["tests"]["recency"]["synthetic"]["share_errors"]) == {"active_last_7_days", "active_last_30_days"}
    page = render_html(report)
    for key in SKEW_KEYS:
        section = page[page.index(f'<section id="{key}">') :]
        section = section[: section.index("</section>")]
        assert "<svg" in section, key
    assert "<th>noise band</th>" in page
    check = check_result("messages_per_day", report.tests["messages_per_day"])
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    rec = report.tests["recency"].recommendations[0]
    assert (
        rec.config_key == "conversation_generation.recency.active_last_7_days"
        and rec.suggested_value > rec.current_value
    )
    trend = report.tests["messages_per_day"].recommendations[0]
    assert trend.config_key == "message_generation.temporal.daily" and "days 24-30" in trend.text
    assert check.metadata["noise_band"].value == pytest.approx(report.tests["messages_per_day"].noise_band)
