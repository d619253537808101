"""Calibration copies production's widths of unmapped columns into the config (and nothing else)."""

from __future__ import annotations

from datetime import UTC, datetime

from shape_pipeline.calibration.calibrate import calibrate, load_shape, unmapped_columns
from shape_pipeline.contracts import CalibratedConfig, ColumnLayout, PhysicalLayout, TableLayout

from .shapes import SEED_SHAPE

NOW = datetime(2025, 10, 22, tzinfo=UTC)


def test_unmapped_column_widths_reach_the_config_per_entity() -> None:
    shape = load_shape(SEED_SHAPE)
    assert unmapped_columns(shape) == {}  # a shape without a physical layout
    notify = ColumnLayout(avg_width=113, null_frac=0.0)
    props = ColumnLayout(avg_width=40, null_frac=0.62)
    layout = PhysicalLayout(
        tables={
            "members": TableLayout(rows_per_page=37.9, unmapped_columns={"NotifyProps": notify}),
            "messages": TableLayout(columns={"content": ColumnLayout(avg_width=60)}, unmapped_columns={"Props": props}),
            "users": TableLayout(),  # nothing unmapped: no entry
        }
    )
    config = calibrate(shape.model_copy(update={"physical_layout": layout}), now=NOW)
    assert config.unmapped_columns == {"members": {"NotifyProps": notify}, "messages": {"Props": props}}
    again = CalibratedConfig.model_validate_json(config.model_dump_json())  # survives the config file
    assert again.unmapped_columns["members"]["NotifyProps"].avg_width == 113
    assert calibrate(shape, now=NOW).unmapped_columns == {}
