"""Export audit of the Phase 2 blocks: query plan shapes and the physical layout.

Every refusal names the JSON path and never the value.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shape_pipeline.errors import PrivacyError
from shape_pipeline.sampling.audit import audit_export
from shape_pipeline.sampling.plan_names import NODE_TYPES
from shape_pipeline_tests.sampling.test_audit import good  # noqa: F401 - the fixture

SHA = "0f" * 32


def plan_block() -> dict[str, Any]:
    inner = {
        "node_type": "Index Scan",
        "scan_direction": "Backward",
        "parent_relationship": "Outer",
        "relation": "messages",
        "index": "ix_messages_conversation_created",
        "rows": 50,
        "shared_blocks": 12,
        "children": [],
    }
    join = {
        "node_type": "Nested Loop",
        "join_type": "Inner",
        "parent_relationship": "Outer",
        "rows": 50,
        "shared_blocks": 120,
        "children": [
            inner,
            {
                "node_type": "Index Only Scan",
                "parent_relationship": "Inner",
                "relation": "Posts",
                "index": "idx_posts$create_at",
                "rows": 1,
                "shared_blocks": 3,
            },
        ],
    }
    aggregate = {
        "node_type": "Aggregate",
        "strategy": "Hashed",
        "partial_mode": "Simple",
        "rows": 1,
        "shared_blocks": 130,
        "children": [join],
    }
    return {
        "workload": "default-chat",
        "workload_sha256": SHA,
        "queries": {
            "latest_messages": {
                "p99": {
                    "plan": {"node_type": "Limit", "rows": 50, "shared_blocks": 130, "children": [aggregate]},
                    "shared_blocks": 130,
                    "median_ms": 0.42,
                    "runs": 3,
                },
                "p0": {
                    "plan": {"node_type": "Seq Scan", "relation": "messages", "rows": 0, "shared_blocks": 1},
                    "shared_blocks": 1,
                    "median_ms": 0.01,
                    "runs": 3,
                },
            },
            "busiest.last-week": {
                "all": {
                    "plan": {"node_type": "Sort", "rows": 10, "shared_blocks": 5},
                    "shared_blocks": 5,
                    "median_ms": 1.5,
                    "runs": 1,
                }
            },
        },
    }


def layout_block() -> dict[str, Any]:
    return {
        "tables": {
            "messages": {
                "rows_per_page": 59.3,
                "columns": {
                    "id": {"correlation": 1.0, "avg_width": 8},
                    "created_at": {"correlation": 0.99, "avg_width": 8},
                    "conversation_id": {"correlation": -0.03, "avg_width": 27},
                },
                "ids": {"kind": "text", "length": 26, "alphabet": "base32", "time_ordered": False},
                "unmapped_columns": {"Props": {"avg_width": 113, "null_frac": 0.0}, "file_ids$2": {"avg_width": 3}},
            },
            "users": {"rows_per_page": None, "columns": {}, "ids": {"kind": "uuid", "uuid_version": 4}},
            "members": {"columns": {"joined_at": {"correlation": None, "avg_width": 8}}},
        }
    }


@pytest.fixture
def phase2(good: dict) -> dict:  # noqa: F811 - the imported fixture
    data = copy.deepcopy(good)
    data["query_plans"] = plan_block()
    data["physical_layout"] = layout_block()
    return data


def set_at(data: dict, path: tuple[Any, ...], value: Any) -> None:
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def rename_key(data: dict, path: tuple[Any, ...], old: str, new: str) -> None:
    target = data
    for part in path:
        target = target[part]
    target[new] = target.pop(old)


def refused(data: dict) -> str:
    with pytest.raises(PrivacyError) as err:
        audit_export(json.dumps(data))
    return str(err.value)


P99 = ("query_plans", "queries", "latest_messages", "p99", "plan")


def test_plans_and_layout_pass(phase2: dict) -> None:
    shape = audit_export(json.dumps(phase2))
    assert shape.query_plans is not None and shape.physical_layout is not None
    assert shape.query_plans.queries["latest_messages"]["p99"].plan.children[0].strategy == "Hashed"
    assert shape.physical_layout.tables["messages"].unmapped_columns["Props"].avg_width == 113


def test_every_node_type_of_the_list_passes(phase2: dict) -> None:
    for node_type in NODE_TYPES:
        set_at(phase2, (*P99, "node_type"), node_type)
        audit_export(json.dumps(phase2))


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        ((*P99, "node_type"), "Filter: (id = 123)", "latest_messages.p99.plan.node_type"),
        ((*P99, "node_type"), "seq scan", "plan.node_type"),
        ((*P99, "children", 0, "strategy"), "Sideways", "children.0.strategy"),
        ((*P99, "children", 0, "partial_mode"), "alice@example.com", "children.0.partial_mode"),
        ((*P99, "children", 0, "children", 0, "join_type"), "Inner Join on 42", "children.0.join_type"),
        ((*P99, "children", 0, "children", 0, "children", 0, "scan_direction"), "Upward", "scan_direction"),
        ((*P99, "children", 0, "children", 0, "children", 0, "parent_relationship"), "CTE x", "parent_relationship"),
        ((*P99, "children", 0, "children", 0, "children", 0, "relation"), "messages = 123", "children.0.relation"),
        ((*P99, "children", 0, "children", 0, "children", 0, "relation"), "bob's room", "relation"),
        ((*P99, "children", 0, "children", 0, "children", 0, "index"), "deadbeefcafebabe0123", "children.0.index"),
        ((*P99, "children", 0, "children", 0, "children", 0, "index"), "ix_user_5551234567", "children.0.index"),
        ((*P99, "children", 0, "children", 0, "children", 0, "index"), "x" * 64, "children.0.index"),
        (("query_plans", "workload"), "chat workload!", "query_plans.workload"),
        (("query_plans", "workload"), "user-0123456789abcdef01", "query_plans.workload"),
        (("query_plans", "workload_sha256"), SHA.upper(), "query_plans.workload_sha256"),
        (("query_plans", "workload_sha256"), SHA[:-1], "query_plans.workload_sha256"),
        (("physical_layout", "tables", "messages", "ids", "alphabet"), "klingon", "ids.alphabet"),
    ],
)
def test_a_disallowed_plan_or_layout_string_is_refused_by_path(phase2: dict, path, value: str, where: str) -> None:
    set_at(phase2, path, value)
    message = refused(phase2)
    assert where in message and value not in message
    assert message.count("\n") == 0


def test_a_sha256_is_allowed_only_at_its_own_leaf(phase2: dict) -> None:
    set_at(phase2, (*P99, "relation"), SHA)
    message = refused(phase2)
    assert "plan.relation" in message and SHA not in message and "hex" in message


@pytest.mark.parametrize(
    ("parent", "old", "new", "where"),
    [
        (("query_plans", "queries"), "latest_messages", "q_0123456789abcdef0123", "query_plans.queries has a key"),
        (("query_plans", "queries"), "latest_messages", "alice@example.com", "query_plans.queries has a key"),
        (("query_plans", "queries"), "latest_messages", "10.1.2.33", "query_plans.queries has a key"),
        (("query_plans", "queries"), "latest_messages", "latest messages", "query_plans.queries has a key"),
        (("query_plans", "queries", "latest_messages"), "p99", "p101", "queries.latest_messages has a key"),
        (("query_plans", "queries", "latest_messages"), "p99", "top_user", "queries.latest_messages has a key"),
        (("physical_layout", "tables"), "users", "secrets", "physical_layout.tables has a key"),
        (
            ("physical_layout", "tables", "messages", "columns"),
            "created_at",
            "password_hash",
            "messages.columns has a key",
        ),
        (("physical_layout", "tables", "messages", "columns"), "created_at", "CreateAt", "messages.columns has a key"),
        (
            ("physical_layout", "tables", "messages", "unmapped_columns"),
            "Props",
            "alice@example.com",
            "messages.unmapped_columns has a key",
        ),
        (
            ("physical_layout", "tables", "messages", "unmapped_columns"),
            "Props",
            "x_0123456789abcdef0123",
            "messages.unmapped_columns has a key",
        ),
        (
            ("physical_layout", "tables", "messages", "unmapped_columns"),
            "Props",
            "call 5551234567",
            "messages.unmapped_columns has a key",
        ),
    ],
)
def test_a_disallowed_name_key_is_refused_by_path(phase2: dict, parent, old: str, new: str, where: str) -> None:
    rename_key(phase2, parent, old, new)
    message = refused(phase2)
    assert where in message and new not in message


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (P99, "filter"),
        (P99, "index_cond"),
        (("query_plans", "queries", "latest_messages", "p99"), "parameters"),
        (("physical_layout", "tables", "messages"), "most_common_vals"),
        (("physical_layout", "tables", "messages", "columns", "created_at"), "histogram_bounds"),
        (("physical_layout", "tables", "messages", "unmapped_columns", "Props"), "most_common_vals"),
    ],
)
def test_keys_outside_the_contract_are_refused_with_their_path(phase2: dict, path, key: str) -> None:
    set_at(phase2, (*path, key), "2025-01-01 = 123")
    message = refused(phase2)
    assert key in message and "2025-01-01 = 123" not in message


def test_plan_strings_are_only_allowed_under_query_plans(phase2: dict) -> None:
    phase2["privacy"]["notes"].append("Index Scan")
    assert "privacy.notes" in refused(phase2)
    phase2["privacy"]["notes"].pop()
    set_at(phase2, ("physical_layout", "tables", "messages", "ids", "kind"), "Seq Scan")
    assert "physical_layout.tables.messages.ids.kind" in refused(phase2)
