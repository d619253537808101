"""The physical layout test and the query plans verdict on hand-built inputs (no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shape_pipeline.contracts import (
    CalibratedConfig,
    ColumnLayout,
    IdFormat,
    PhysicalLayout,
    PlanNode,
    QueryPlan,
    TableLayout,
    WorkloadPlans,
)
from shape_pipeline.fidelity.database_source import DatabaseFindings
from shape_pipeline.fidelity.layout import (
    CORRELATION_LIMIT,
    layout_recommendations,
    physical_layout_result,
)
from shape_pipeline.fidelity.plans import plan_recommendations, query_plans_result

RANDOM_IDS = IdFormat(kind="text", length=26, alphabet="base32", time_ordered=False)


def layout(
    *,
    correlation: float = -0.03,
    width: int = 27,
    rows_per_page: float = 40.0,
    ids: IdFormat | None = RANDOM_IDS,
    content_correlation: float = 0.0,
    rows: int = 120_000,
) -> PhysicalLayout:
    return PhysicalLayout(
        tables={
            "messages": TableLayout(
                rows=rows,
                rows_per_page=rows_per_page,
                columns={
                    "id": ColumnLayout(correlation=0.01, avg_width=width),
                    "conversation_id": ColumnLayout(correlation=correlation, avg_width=27),
                    "created_at": ColumnLayout(correlation=1.0, avg_width=8),
                    "content": ColumnLayout(correlation=content_correlation, avg_width=60),
                },
                ids=ids,
            )
        }
    )


def judge(synthetic: PhysicalLayout, tolerance: float = 0.15):  # noqa: ANN201 - a TestResult
    return physical_layout_result(layout(), DatabaseFindings(layout=synthetic), tolerance=tolerance)


def test_the_same_layout_passes_and_free_text_correlation_is_not_judged() -> None:
    result = judge(layout(content_correlation=0.9))
    assert result.verdict == "PASS", result.reason
    assert {(it["field"], it["measure"]) for it in result.synthetic["items"]} >= {
        ("conversation_id", "correlation"),
        ("id", "avg_width"),
        (None, "rows_per_page"),
    }
    assert ("content", "correlation") not in {(it["field"], it["measure"]) for it in result.synthetic["items"]}


def test_a_table_holding_only_the_window_fails_on_size_and_names_the_target() -> None:
    result = judge(layout(rows=30_000))  # production's table holds 120,000 rows of history
    assert result.verdict == "FAIL" and result.reason.startswith("messages rows: ")
    [rec] = [r for r in layout_recommendations(result, None) if "rows" in r.text]
    assert "--target-messages 120000" in rec.text and "--window-days" in rec.text
    assert judge(layout(rows=110_000)).verdict == "PASS"


def test_rows_grouped_by_conversation_fail_on_correlation() -> None:
    result = judge(layout(correlation=0.59))
    assert result.verdict == "FAIL" and result.statistic == "correlation_difference"
    assert result.effect_size == pytest.approx(0.62) and result.tolerance == CORRELATION_LIMIT
    assert result.reason.startswith("messages.conversation_id correlation: ")
    recs = layout_recommendations(result, None)
    assert recs[0].text.startswith("messages.conversation_id correlation is 0.59 vs -0.03 in production")
    assert "write messages in the order the app inserts them" in recs[0].text
    # in the top third of the band: WARNING
    assert judge(layout(correlation=0.22)).verdict == "WARNING"


def test_short_sequential_ids_fail_on_the_id_format() -> None:
    sequential = IdFormat(kind="integer", time_ordered=True)
    result = judge(layout(ids=sequential, width=8, rows_per_page=60.0))
    assert result.verdict == "FAIL" and result.statistic == "id_format_mismatches" and result.effect_size == 1.0
    assert "messages: integer, time-ordered vs text, 26 characters, base32, random order" in result.reason
    recs = layout_recommendations(result, None)
    assert recs[0].config_key == "id_formats.messages"
    assert (recs[0].current_value, recs[0].suggested_value) == (
        "integer, time-ordered",
        "text, 26 characters, base32, random order",
    )
    assert "set id_formats.messages in the calibrated config" in recs[0].text
    assert any(r.text.startswith("messages.id avg width is 8 vs 27") and "ids are narrower" in r.text for r in recs)
    assert any(r.text.startswith("messages rows per page is 60 vs 40") and "narrower" in r.text for r in recs)


def test_a_config_that_already_holds_the_format_points_at_the_generator(calibrated: CalibratedConfig) -> None:
    config = calibrated.model_copy(update={"id_formats": {"messages": RANDOM_IDS}})
    result = judge(layout(ids=IdFormat(kind="integer", time_ordered=True)))
    assert "already holds it: the generator does not follow it" in layout_recommendations(result, config)[0].text


def test_an_unanalyzed_database_fails_and_asks_for_analyze() -> None:
    bare = PhysicalLayout(tables={"messages": TableLayout(ids=RANDOM_IDS)})
    result = judge(bare)
    assert result.verdict == "FAIL" and "never analyzed" in (result.reason or "")
    assert result.synthetic["not_analyzed"] == [
        "messages rows per page",
        "messages.id",
        "messages.conversation_id",
        "messages.created_at",
        "messages.content",
    ]
    assert "VACUUM ANALYZE" in layout_recommendations(result, None)[0].text
    assert (
        physical_layout_result(None, DatabaseFindings(layout=bare), tolerance=0.15).reason
        == "the shape has no physical_layout"
    )


# ------------------------------------------------------------------------------ plans verdict


def _plans(kinds: list[str], blocks: int = 100, rows: int = 10) -> WorkloadPlans:
    return WorkloadPlans(
        workload="w",
        workload_sha256="0" * 64,
        queries={
            f"q{i}": {
                "p99": QueryPlan(
                    plan=PlanNode(
                        node_type=k, relation="messages", rows=rows if k == "Seq Scan" else 10, shared_blocks=blocks
                    ),
                    shared_blocks=blocks,
                    median_ms=1.0,
                    runs=3,
                )
            }
            for i, k in enumerate(kinds)
        },
    )


def test_the_plans_verdict_rule() -> None:
    base = ["Index Scan"] * 10
    same = query_plans_result(_plans(base), DatabaseFindings(plans=_plans(base)))
    assert (same.verdict, same.effect_size) == ("PASS", 0.0)
    one = query_plans_result(_plans(base), DatabaseFindings(plans=_plans(["Seq Scan", *base[1:]], rows=200)))
    assert (one.verdict, one.effect_size) == ("WARNING", 0.1)
    assert one.reason.startswith("1 of 10 (query, rank) pairs have another plan shape (q0 p99)")
    # two flips over other row counts: a difference in the data, FAIL
    two = query_plans_result(
        _plans(base), DatabaseFindings(plans=_plans(["Seq Scan", "Seq Scan", *base[2:]], rows=200))
    )
    assert (two.verdict, two.effect_size, two.synthetic["unexplained_share"]) == ("FAIL", 0.2, 0.2)
    rec = plan_recommendations(two)[0].text
    assert rec == (
        "q0 p99: production uses Index Scan on messages, synthetic Seq Scan on messages: the synthetic messages "
        "table is larger (rows log2 +3.5 at Index Scan on messages against Seq Scan on messages): check the totals"
    )
    # two flips over the same rows and blocks: the planner's near-equal choice, WARNING
    flips = DatabaseFindings(plans=_plans(["Seq Scan", "Seq Scan", *base[2:]]))
    noise = query_plans_result(_plans(base), flips, layout_matches=True)
    assert (noise.verdict, noise.effect_size, noise.synthetic["unexplained_share"]) == ("WARNING", 0.2, 0.0)
    assert "statistics noise" in (noise.reason or "")
    # ...but on a layout that differs (or was not compared) the same flips fail
    laid_out = query_plans_result(_plans(base), flips)
    assert (laid_out.verdict, laid_out.synthetic["unexplained_share"]) == ("FAIL", 0.2)
    assert "the physical layout differs too" in (laid_out.reason or "")
    assert plan_recommendations(noise)[0].text == (
        "q0 p99: production uses Index Scan on messages, synthetic Seq Scan on messages: rows and blocks are alike, "
        "so the planner's estimates differ: check the physical layout test (correlation, avg width) and that both "
        "databases were analyzed (VACUUM ANALYZE)"
    )
    # same shapes, but every statement reads three times the blocks: the median fails
    heavy = query_plans_result(_plans(base), DatabaseFindings(plans=_plans(base, blocks=300)))
    assert heavy.verdict == "FAIL" and heavy.reason.startswith("median blocks |log2| 1.51 is above 0.5")
    assert "reads 300 blocks vs 100 (blocks log2 +1.5)" in plan_recommendations(heavy)[0].text
    # a wider factor lets it pass
    assert (
        query_plans_result(_plans(base), DatabaseFindings(plans=_plans(base, blocks=300)), max_log2_ratio=2.0).verdict
        == "PASS"
    )


@pytest.fixture
def calibrated() -> CalibratedConfig:
    from shape_pipeline.calibration.calibrate import calibrate
    from shape_pipeline.contracts import ShapeMetrics

    shape = ShapeMetrics.model_validate(
        {
            "extracted_at": datetime(2025, 10, 22, tzinfo=UTC).isoformat(),
            "sample_window_days": 30,
            "conversations": {
                "messages_per_conversation_percentiles": {"p50": 45, "p90": 450, "p99": 5000},
                "type_distribution": {"DIRECT_MESSAGE": 12500, "GROUP_CHAT": 3500},
            },
            "messages": {"content_length_stats": {"mean": 85, "median": 42, "p95": 280}},
        }
    )
    return calibrate(shape)
