"""Two runs of one workload, pair by pair: the same plan shape? rows and buffers within a factor?

A plan's shape is its tree on the fields that say what PostgreSQL does (`contracts.PLAN_SHAPE_FIELDS`, children
in order); rows and blocks are sizes, not shape. Sizes are compared as |log2((a+8)/(b+8))|: a
factor of two either way is about 1.0 whatever the direction, and the +8 (`SMALL_COUNT`) keeps
a cold entity's 0 rows against 2 from counting as a factor. Production is always the first side, the synthetic (or compared) run the
second, so a signed log2 below zero means the second side is smaller.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field

from shape_pipeline.contracts import PLAN_SHAPE_FIELDS, PlanNode, QueryPlan, WorkloadPlans
from shape_pipeline.errors import ShapePipelineError

DEFAULT_MAX_LOG2_RATIO = 0.5
# PostgreSQL's own words for aggregate and set-operation strategies (its text EXPLAIN format).
_STRATEGY_NAMES = {
    ("Aggregate", "Sorted"): "GroupAggregate",
    ("Aggregate", "Hashed"): "HashAggregate",
    ("Aggregate", "Mixed"): "MixedAggregate",
    ("SetOp", "Hashed"): "HashSetOp",
}
_DEFAULT_QUALIFIERS = {None, "Plain", "Simple", "Inner", "Forward", "NoMovement"}


def check_log2_ratio(value: float, *, option: str = "--plan-log2-ratio") -> float:
    """The factor limit as a log2, refused in one line unless it is positive."""
    if not (value > 0 and math.isfinite(value)):
        raise ShapePipelineError(f"{option}: {value} must be a positive number (0.5 = a factor of about 1.41)")
    return float(value)


SMALL_COUNT = 8.0  # rows or blocks below this are a cold entity's noise (0 vs 2 messages is no factor of 3)


def log2_ratio(a: float, b: float) -> float:
    """log2((a + SMALL_COUNT) / (b + SMALL_COUNT)): positive when `a` is the larger; counts far
    below SMALL_COUNT cannot make a pair differ on their own."""
    return math.log2((a + SMALL_COUNT) / (b + SMALL_COUNT))


def node_label(node: PlanNode) -> str:
    """One node in PostgreSQL's own words: 'Index Scan Backward using ix on messages',
    'Hash Left Join', 'Partial HashAggregate' (the defaults Inner, Plain, Simple left out)."""
    name = _STRATEGY_NAMES.get((node.node_type, node.strategy or ""), node.node_type)
    if node.strategy not in _DEFAULT_QUALIFIERS and (node.node_type, node.strategy) not in _STRATEGY_NAMES:
        name = f"{name} ({node.strategy})"
    if node.join_type not in _DEFAULT_QUALIFIERS:
        name = (
            name.replace(" Join", f" {node.join_type} Join")
            if name.endswith("Join")
            else f"{name} {node.join_type} Join"
        )
    if node.partial_mode not in _DEFAULT_QUALIFIERS:
        name = f"{node.partial_mode} {name}"
    if node.scan_direction == "Backward":
        name = f"{name} Backward"
    if node.index:
        name = f"{name} using {node.index}"
    if node.relation:
        name = f"{name} on {node.relation}"
    return name


def _children_text(node: PlanNode) -> str:
    return " + ".join(node_label(c) for c in node.children) or "nothing"


def first_difference(a: PlanNode, b: PlanNode) -> str | None:
    """The first node (depth first, children in order) where the two shapes part, in plain
    words ('Index Scan using ix on messages vs Bitmap Heap Scan on messages'); None if equal."""
    differing = [f for f in PLAN_SHAPE_FIELDS if getattr(a, f) != getattr(b, f)]
    if differing:
        la, lb = node_label(a), node_label(b)
        if la != lb:
            return f"{la} vs {lb}"
        f = differing[0]
        return f"{la}: {f.replace('_', ' ')} {getattr(a, f)} vs {getattr(b, f)}"
    if len(a.children) != len(b.children):
        return f"under {node_label(a)}: {_children_text(a)} vs {_children_text(b)}"
    for ca, cb in zip(a.children, b.children, strict=True):
        found = first_difference(ca, cb)
        if found is not None:
            return found
    return None


def matched_nodes(a: PlanNode, b: PlanNode) -> Iterator[tuple[PlanNode, PlanNode]]:
    """Node pairs at the same place in both trees (all of them when the shapes are equal; where
    they part, the nodes standing in each other's place, e.g. the two scans of one table)."""
    yield a, b
    for ca, cb in zip(a.children, b.children, strict=False):
        yield from matched_nodes(ca, cb)


@dataclass(frozen=True)
class PairComparison:
    """One (query, rank) of the workload on both sides."""

    query: str
    rank: str
    shape_equal: bool
    difference: str | None  # the first differing node, production's side first
    rows_log2: float | None  # largest |log2_ratio| of matched nodes' rows
    blocks_log2: float | None  # |log2| of the statement's shared blocks
    production_ms: float | None
    synthetic_ms: float | None
    within: bool  # shape equal and both log2 values within the limit
    present_in_both: bool
    # the matched node with the largest rows log2, and both sides' numbers (for advice and tables)
    rows_node: str | None = None  # production's node
    synthetic_rows_node: str | None = None  # the synthetic node in its place (another label where shapes part)
    production_rows: int | None = None
    synthetic_rows: int | None = None
    production_blocks: int | None = None
    synthetic_blocks: int | None = None

    @property
    def rows_log2_signed(self) -> float | None:
        """log2 of synthetic over production rows at `rows_node` (negative: synthetic smaller)."""
        if self.production_rows is None or self.synthetic_rows is None:
            return None
        return log2_ratio(self.synthetic_rows, self.production_rows)

    @property
    def blocks_log2_signed(self) -> float | None:
        if self.production_blocks is None or self.synthetic_blocks is None:
            return None
        return log2_ratio(self.synthetic_blocks, self.production_blocks)


@dataclass(frozen=True)
class PlanComparison:
    """Every pair of two runs of one workload, and the limit they were judged against."""

    pairs: list[PairComparison] = field(default_factory=list)
    max_log2_ratio: float = DEFAULT_MAX_LOG2_RATIO

    def _share(self, ok: int) -> float:
        return ok / len(self.pairs) if self.pairs else 1.0

    @property
    def same_shape_share(self) -> float:
        """Share of pairs with the same plan shape (a pair missing on one side is not)."""
        return self._share(sum(p.shape_equal for p in self.pairs))

    @property
    def within_share(self) -> float:
        return self._share(sum(p.within for p in self.pairs))

    @property
    def median_blocks_log2(self) -> float | None:
        values = [p.blocks_log2 for p in self.pairs if p.blocks_log2 is not None]
        return float(statistics.median(values)) if values else None

    @property
    def differing(self) -> list[PairComparison]:
        """The pairs not within (a different shape, or rows or blocks beyond the factor)."""
        return [p for p in self.pairs if not p.within]


def _one_side(query: str, rank: str, prod: QueryPlan | None, syn: QueryPlan | None) -> PairComparison:
    return PairComparison(
        query=query,
        rank=rank,
        shape_equal=False,
        difference="only in production" if syn is None else "only in the synthetic run",
        rows_log2=None,
        blocks_log2=None,
        production_ms=prod.median_ms if prod else None,
        synthetic_ms=syn.median_ms if syn else None,
        within=False,
        present_in_both=False,
        production_blocks=prod.shared_blocks if prod else None,
        synthetic_blocks=syn.shared_blocks if syn else None,
    )


def compare_pair(query: str, rank: str, prod: QueryPlan, syn: QueryPlan, max_log2_ratio: float) -> PairComparison:
    """One (query, rank) present on both sides."""
    difference = first_difference(prod.plan, syn.plan)
    worst_a, worst_b = max(matched_nodes(prod.plan, syn.plan), key=lambda ab: abs(log2_ratio(ab[0].rows, ab[1].rows)))
    rows = abs(log2_ratio(worst_a.rows, worst_b.rows))
    blocks = abs(log2_ratio(prod.shared_blocks, syn.shared_blocks))
    return PairComparison(
        query=query,
        rank=rank,
        shape_equal=difference is None,
        difference=difference,
        rows_log2=rows,
        blocks_log2=blocks,
        production_ms=prod.median_ms,
        synthetic_ms=syn.median_ms,
        within=difference is None and rows <= max_log2_ratio and blocks <= max_log2_ratio,
        present_in_both=True,
        rows_node=node_label(worst_a),
        synthetic_rows_node=node_label(worst_b),
        production_rows=worst_a.rows,
        synthetic_rows=worst_b.rows,
        production_blocks=prod.shared_blocks,
        synthetic_blocks=syn.shared_blocks,
    )


def compare_plans(
    production: WorkloadPlans, synthetic: WorkloadPlans, *, max_log2_ratio: float = DEFAULT_MAX_LOG2_RATIO
) -> PlanComparison:
    """Every (query, rank) of either side, production's order first; pairs on one side only are
    reported (present_in_both False, never within)."""
    check_log2_ratio(max_log2_ratio)
    keys = [(q, r) for q, ranks in production.queries.items() for r in ranks]
    keys += [(q, r) for q, ranks in synthetic.queries.items() for r in ranks if r not in production.queries.get(q, {})]
    pairs = []
    for q, r in keys:
        prod, syn = production.queries.get(q, {}).get(r), synthetic.queries.get(q, {}).get(r)
        if prod is None or syn is None:
            pairs.append(_one_side(q, r, prod, syn))
        else:
            pairs.append(compare_pair(q, r, prod, syn, max_log2_ratio))
    return PlanComparison(pairs=pairs, max_log2_ratio=max_log2_ratio)


# ------------------------------------------------------------------------------ console lines


def plan_lines(plan: PlanNode) -> list[str]:
    """An indented tree, one node per line: 'Limit (rows 50, blocks 120)', children under '-> '."""
    lines: list[str] = []

    def walk(node: PlanNode, depth: int) -> None:
        prefix = "" if depth == 0 else "   " * (depth - 1) + "-> "
        lines.append(f"{prefix}{node_label(node)} (rows {node.rows:,}, blocks {node.shared_blocks:,})")
        for child in node.children:
            walk(child, depth + 1)

    walk(plan, 0)
    return lines


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def comparison_lines(c: PlanComparison) -> list[str]:
    """A table for consoles: query, rank, same shape?, rows log2, blocks log2, ms production /
    synthetic; under each differing shape its first difference; then a summary line."""
    header = ("query", "rank", "shape", "rows log2", "blocks log2", "ms prod / synth")
    rows = [
        (
            p.query,
            p.rank,
            "same" if p.shape_equal else ("DIFFERS" if p.present_in_both else "MISSING"),
            _num(p.rows_log2),
            _num(p.blocks_log2),
            f"{_ms(p.production_ms)} / {_ms(p.synthetic_ms)}",
        )
        for p in c.pairs
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

    lines = [fmt(header)]
    for pair, row in zip(c.pairs, rows, strict=True):
        mark = "" if pair.within else "  ✗"
        lines.append(fmt(row) + mark)
        if pair.difference:
            lines.append(f"    {pair.difference}")
    n = len(c.pairs)
    median = c.median_blocks_log2
    lines.append(
        f"Same shape: {round(c.same_shape_share * n)}/{n} pairs; within |log2| <= {c.max_log2_ratio:g}: "
        f"{round(c.within_share * n)}/{n}; median blocks |log2| {_num(median)}"
    )
    return lines
