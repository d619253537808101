"""PostgreSQL's own words in `EXPLAIN (FORMAT JSON)`: the only plan strings besides relation and
index names that may leave production.

Taken from `ExplainNode` in PostgreSQL 15's src/backend/commands/explain.c (a few later names,
such as PostgreSQL 16's "Right Anti" join, are included so that a newer server's plans pass).
A fixed list, so an export audit can refuse anything else a plan node might carry.
"""

from __future__ import annotations

NODE_TYPES = frozenset(
    {
        "Result",
        "ProjectSet",
        "ModifyTable",
        "Append",
        "Merge Append",
        "Recursive Union",
        "BitmapAnd",
        "BitmapOr",
        "Nested Loop",
        "Merge Join",
        "Hash Join",
        "Seq Scan",
        "Sample Scan",
        "Gather",
        "Gather Merge",
        "Index Scan",
        "Index Only Scan",
        "Bitmap Index Scan",
        "Bitmap Heap Scan",
        "Tid Scan",
        "Tid Range Scan",
        "Subquery Scan",
        "Function Scan",
        "Table Function Scan",
        "Values Scan",
        "CTE Scan",
        "Named Tuplestore Scan",
        "WorkTable Scan",
        "Foreign Scan",
        "Custom Scan",
        "Materialize",
        "Memoize",
        "Sort",
        "Incremental Sort",
        "Group",
        "Aggregate",
        "WindowAgg",
        "Unique",
        "SetOp",
        "LockRows",
        "Limit",
        "Hash",
    }
)
JOIN_TYPES = frozenset({"Inner", "Left", "Full", "Right", "Semi", "Anti", "Right Anti"})
STRATEGIES = frozenset({"Plain", "Sorted", "Hashed", "Mixed"})  # Aggregate; SetOp uses Sorted/Hashed
PARTIAL_MODES = frozenset({"Simple", "Partial", "Finalize"})
SCAN_DIRECTIONS = frozenset({"Forward", "Backward", "NoMovement"})
PARENT_RELATIONSHIPS = frozenset({"Outer", "Inner", "Member", "InitPlan", "SubPlan", "Subquery"})

# PlanNode field -> the values it may hold.
PLAN_VALUES: dict[str, frozenset[str]] = {
    "node_type": NODE_TYPES,
    "join_type": JOIN_TYPES,
    "strategy": STRATEGIES,
    "partial_mode": PARTIAL_MODES,
    "scan_direction": SCAN_DIRECTIONS,
    "parent_relationship": PARENT_RELATIONSHIPS,
}
