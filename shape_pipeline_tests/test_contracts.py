"""The file contracts: the seed's published example reads; bad files name their field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shape_pipeline.contracts import Histogram, Percentiles, ShapeMetrics
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.files import load_json_model, newest_file, write_text_atomic

SEED_SHAPE = {
    "extracted_at": "2025-10-22T14:30:00Z",
    "sample_window_days": 30,
    "privacy_level": "ANONYMIZED_SHAPE_ONLY",
    "conversations": {
        "messages_per_conversation_percentiles": {
            "p50": 45,
            "p75": 120,
            "p90": 450,
            "p95": 1200,
            "p99": 5000,
            "max": 15000,
        },
        "type_distribution": {"DIRECT_MESSAGE": 12500, "GROUP_CHAT": 3500},
    },
    "messages": {"content_length_stats": {"mean": 85, "median": 42, "p95": 280}},
}


def dump(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "shape.json"
    path.write_text(json.dumps(data))
    return path


def test_seed_example_reads_as_version_1(tmp_path: Path) -> None:
    shape = load_json_model(dump(tmp_path, SEED_SHAPE), ShapeMetrics, what="shape metrics")
    assert shape.schema_version == 1
    percentiles = shape.conversations.messages_per_conversation_percentiles
    assert percentiles is not None and percentiles.knots()[0] == (0.5, 45.0)
    assert shape.messages.content_length_stats.knots() == [(0.5, 42.0), (0.95, 280.0)]


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"schema_version": 2}, "schema_version 2 is not supported"),
        ({"surprise": 1}, "unknown key(s): surprise"),
        ({"sample_window_days": 0}, "sample_window_days"),
        ({"privacy_level": "RAW"}, "privacy_level"),
    ],
)
def test_bad_top_level_fields(tmp_path: Path, patch: dict, fragment: str) -> None:
    path = dump(tmp_path, {**SEED_SHAPE, **patch})
    with pytest.raises(ShapePipelineError) as info:
        load_json_model(path, ShapeMetrics, what="shape metrics")
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_non_monotone_percentiles_name_the_field(tmp_path: Path) -> None:
    data = json.loads(json.dumps(SEED_SHAPE))
    data["conversations"]["messages_per_conversation_percentiles"]["p90"] = 100
    with pytest.raises(ShapePipelineError, match=r"messages_per_conversation_percentiles.*p90=100"):
        load_json_model(dump(tmp_path, data), ShapeMetrics, what="shape metrics")


def test_not_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ShapePipelineError, match="not a valid JSON"):
        load_json_model(bad, ShapeMetrics, what="shape metrics")
    with pytest.raises(ShapePipelineError, match="No such file or directory"):
        load_json_model(tmp_path / "missing.json", ShapeMetrics, what="shape metrics")


def test_histogram_rules() -> None:
    assert Histogram(edges=[1, 2, 4], counts=[10, 20]).total == 30
    with pytest.raises(ValueError, match="one more"):
        Histogram(edges=[1, 2], counts=[1, 2])
    with pytest.raises(ValueError, match="strictly increasing"):
        Histogram(edges=[1, 1, 2], counts=[1, 2])
    with pytest.raises(ValueError, match="must not decrease"):
        Percentiles(p50=10, p75=5)


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "out" / "file.json"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]


def test_newest_file_by_mtime(tmp_path: Path) -> None:
    import os

    older, newer = tmp_path / "shape-metrics-prod-20250101.json", tmp_path / "shape-metrics-prod-20240101.json"
    older.write_text("{}")
    newer.write_text("{}")
    os.utime(older, ns=(1_000_000_000, 1_000_000_000))
    assert newest_file(tmp_path, "shape-metrics-prod-*.json") == newer
    assert newest_file(tmp_path / "none", "*.json") is None


def test_null_knots_are_allowed_where_optional() -> None:
    from shape_pipeline.contracts import LogNormalModel

    model = LogNormalModel.model_validate(
        {"mean": 85, "median": 42, "p95": 280, "mu": 3.7, "sigma": 1.2, "max": 5000, "knots": None}
    )
    assert model.knots is None
