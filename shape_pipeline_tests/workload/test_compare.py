"""Plan comparison on hand-built plans: shape equality, the first difference, log2 sizes, tables."""

from __future__ import annotations

import math

import pytest

from shape_pipeline.contracts import PlanNode, QueryPlan, WorkloadPlans
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.workload.compare import (
    DEFAULT_MAX_LOG2_RATIO,
    PlanComparison,
    check_log2_ratio,
    compare_plans,
    comparison_lines,
    first_difference,
    node_label,
    plan_lines,
)


def index_scan(rows: int = 50, blocks: int = 120, **changes: object) -> PlanNode:
    return PlanNode(
        node_type="Index Scan",
        scan_direction="Backward",
        parent_relationship="Outer",
        relation="messages",
        index="ix_messages_conversation_created",
        rows=rows,
        shared_blocks=blocks,
    ).model_copy(update=changes)


def latest(rows: int = 50, blocks: int = 120, child: PlanNode | None = None) -> PlanNode:
    return PlanNode(node_type="Limit", rows=rows, shared_blocks=blocks, children=[child or index_scan(rows, blocks)])


def bitmap(rows: int = 4000, blocks: int = 900) -> PlanNode:
    return PlanNode(
        node_type="Bitmap Heap Scan",
        parent_relationship="Outer",
        relation="messages",
        rows=rows,
        shared_blocks=blocks,
        children=[
            PlanNode(
                node_type="Bitmap Index Scan",
                parent_relationship="Outer",
                index="ix_messages_sender",
                rows=rows,
                shared_blocks=12,
            )
        ],
    )


def plans(queries: dict[str, dict[str, PlanNode]], *, blocks: int | None = None, ms: float = 1.0) -> WorkloadPlans:
    return WorkloadPlans(
        workload="default",
        workload_sha256="0" * 64,
        queries={
            q: {
                r: QueryPlan(plan=p, shared_blocks=p.shared_blocks if blocks is None else blocks, median_ms=ms, runs=3)
                for r, p in ranks.items()
            }
            for q, ranks in queries.items()
        },
    )


def test_labels_use_postgresql_words() -> None:
    assert node_label(index_scan()) == "Index Scan Backward using ix_messages_conversation_created on messages"
    assert node_label(
        PlanNode(node_type="Aggregate", strategy="Hashed", partial_mode="Partial", rows=1, shared_blocks=0)
    ) == ("Partial HashAggregate")
    assert (
        node_label(PlanNode(node_type="Aggregate", strategy="Plain", partial_mode="Simple", rows=1, shared_blocks=0))
        == "Aggregate"
    )
    assert node_label(PlanNode(node_type="Hash Join", join_type="Left", rows=1, shared_blocks=0)) == "Hash Left Join"
    assert (
        node_label(PlanNode(node_type="Nested Loop", join_type="Anti", rows=1, shared_blocks=0))
        == "Nested Loop Anti Join"
    )
    assert node_label(PlanNode(node_type="Hash Join", join_type="Inner", rows=1, shared_blocks=0)) == "Hash Join"


def test_equal_shapes_ignore_rows_and_blocks() -> None:
    assert first_difference(latest(50, 120), latest(7, 3)) is None


def test_the_first_difference_is_named_in_plain_words() -> None:
    assert first_difference(latest(), latest(child=bitmap())) == (
        "Index Scan Backward using ix_messages_conversation_created on messages vs Bitmap Heap Scan on messages"
    )
    # same words, another field: the field is named
    moved = latest(child=index_scan(parent_relationship="Inner"))
    assert first_difference(latest(), moved) == (
        "Index Scan Backward using ix_messages_conversation_created on messages: parent relationship Outer vs Inner"
    )
    # a node more on one side
    sort = PlanNode(node_type="Sort", parent_relationship="Outer", rows=50, shared_blocks=120, children=[index_scan()])
    extra = PlanNode(node_type="Limit", rows=50, shared_blocks=120, children=[sort, index_scan()])
    assert first_difference(latest(), extra) == (
        "under Limit: Index Scan Backward using ix_messages_conversation_created on messages vs "
        "Sort + Index Scan Backward using ix_messages_conversation_created on messages"
    )


def test_sizes_are_log2_ratios_with_small_counts_damped() -> None:
    prod = plans({"latest": {"p99": latest(50, 120), "p50": latest(50, 120)}})
    syn = plans({"latest": {"p99": latest(50, 120, child=index_scan(200, 120)), "p50": latest(50, 130)}})
    c = compare_plans(prod, syn)
    p99, p50 = c.pairs
    assert p99.shape_equal and p99.rows_log2 == pytest.approx(math.log2(208 / 58))
    assert p99.rows_node and p99.rows_node.startswith("Index Scan")
    assert p99.rows_log2_signed == pytest.approx(math.log2(208 / 58))  # synthetic larger: positive
    assert not p99.within  # rows beyond a factor of sqrt(2)
    assert p50.within and p50.blocks_log2 == pytest.approx(math.log2(138 / 128))
    assert c.same_shape_share == 1.0 and c.within_share == 0.5
    assert c.median_blocks_log2 == pytest.approx(math.log2(138 / 128) / 2)
    assert c.max_log2_ratio == DEFAULT_MAX_LOG2_RATIO


def test_blocks_decide_with_the_given_limit() -> None:
    prod = plans({"q": {"all": latest()}}, blocks=100)
    syn = plans({"q": {"all": latest()}}, blocks=180)
    assert not compare_plans(prod, syn).pairs[0].within  # log2(188/108) = 0.80
    assert compare_plans(prod, syn, max_log2_ratio=1.0).pairs[0].within
    assert compare_plans(prod, syn).pairs[0].blocks_log2_signed == pytest.approx(math.log2(188 / 108))


def test_a_different_shape_is_never_within_and_keeps_the_scan_rows() -> None:
    c = compare_plans(
        plans({"range": {"p99": latest(50, 900, child=bitmap(4000, 900))}}), plans({"range": {"p99": latest(50, 900)}})
    )
    pair = c.pairs[0]
    assert not pair.shape_equal and not pair.within and pair.present_in_both
    assert pair.difference is not None and pair.difference.startswith("Bitmap Heap Scan on messages vs Index Scan")
    # the matched node with the largest rows gap: the scan of messages, synthetic smaller
    assert pair.rows_node == "Bitmap Heap Scan on messages"
    assert pair.rows_log2_signed is not None and pair.rows_log2_signed < -6
    assert c.same_shape_share == 0.0 and c.differing == [pair]


def test_pairs_on_one_side_only_are_reported() -> None:
    prod = plans({"a": {"p99": latest(), "p50": latest()}})
    syn = plans({"a": {"p99": latest()}, "b": {"all": latest()}})
    c = compare_plans(prod, syn)
    assert [(p.query, p.rank) for p in c.pairs] == [("a", "p99"), ("a", "p50"), ("b", "all")]
    only_prod, only_syn = c.pairs[1], c.pairs[2]
    assert (only_prod.present_in_both, only_prod.within, only_prod.difference) == (False, False, "only in production")
    assert (only_syn.present_in_both, only_syn.difference, only_syn.production_ms) == (
        False,
        "only in the synthetic run",
        None,
    )
    assert c.within_share == pytest.approx(1 / 3)


def test_console_lines() -> None:
    tree = plan_lines(latest(child=bitmap(4000, 900)))
    assert tree == [
        "Limit (rows 50, blocks 120)",
        "-> Bitmap Heap Scan on messages (rows 4,000, blocks 900)",
        "   -> Bitmap Index Scan using ix_messages_sender (rows 4,000, blocks 12)",
    ]
    c = compare_plans(
        plans({"range": {"p99": latest(child=bitmap())}, "latest": {"p50": latest()}}, ms=2.0),
        plans({"range": {"p99": latest()}, "latest": {"p50": latest()}}, ms=0.5),
    )
    lines = comparison_lines(c)
    assert lines[0].split() == ["query", "rank", "shape", "rows", "log2", "blocks", "log2", "ms", "prod", "/", "synth"]
    assert lines[1].split()[:3] == ["range", "p99", "DIFFERS"] and lines[1].endswith("✗")
    assert lines[1].split()[-4:-1] == ["2", "/", "0.5"]
    assert lines[2].strip().startswith("Bitmap Heap Scan on messages vs Index Scan")
    assert lines[3].split()[:3] == ["latest", "p50", "same"]
    assert lines[-1].startswith("Same shape: 1/2 pairs; within |log2| <= 0.5: 1/2")


def test_empty_comparison_and_bad_limits() -> None:
    assert PlanComparison().same_shape_share == 1.0 and PlanComparison().median_blocks_log2 is None
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ShapePipelineError, match="--plan-log2-ratio"):
            check_log2_ratio(bad)
    with pytest.raises(ShapePipelineError, match="--plan-log2-ratio"):
        compare_plans(plans({}), plans({}), max_log2_ratio=0.0)
