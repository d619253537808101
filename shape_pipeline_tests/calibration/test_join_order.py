"""Calibration asks for users numbered in join order only when production's memberships show it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shape_pipeline.calibration.calibrate import JOIN_ORDER_CORRELATION, calibrate, load_shape
from shape_pipeline.contracts import ColumnLayout, IdFormat, PhysicalLayout, TableLayout

from .shapes import SEED_SHAPE

NOW = datetime(2025, 10, 22, tzinfo=UTC)


def layout(correlation: float | None, kind: str = "integer") -> PhysicalLayout:
    ids = IdFormat(kind=kind, length=26 if kind == "text" else None)
    return PhysicalLayout(
        tables={
            "users": TableLayout(ids=ids),
            "members": TableLayout(columns={"user_id": ColumnLayout(correlation=correlation)}),
        }
    )


@pytest.mark.parametrize(
    ("correlation", "kind", "expected"),
    [
        (0.66, "integer", True),  # people join soon after signing up, ids in sign-up order
        (JOIN_ORDER_CORRELATION, "integer", True),
        (0.1, "integer", False),  # memberships in no relation to user ids
        (0.9, "text", False),  # random text ids: numbering order means nothing
        (None, "integer", False),  # never analyzed
    ],
)
def test_users_in_join_order_follows_production(correlation: float | None, kind: str, expected: bool) -> None:
    shape = load_shape(SEED_SHAPE)
    config = calibrate(shape.model_copy(update={"physical_layout": layout(correlation, kind)}), now=NOW)
    assert config.users_in_join_order is expected
    assert calibrate(shape, now=NOW).users_in_join_order is False  # no layout: today's numbering
