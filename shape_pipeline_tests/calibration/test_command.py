"""`shape-pipeline calibrate` through the real CLI entry point: good input, and each bad input
of the issue (one line naming file and field, exit 2, no output file)."""

from __future__ import annotations

import importlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from shape_pipeline import cli
from shape_pipeline.contracts import CalibratedConfig
from shape_pipeline.files import load_json_model, write_model_atomic
from shape_pipeline.sampling.frequencies import FrequencyTables
from shape_pipeline.sampling.shape import shape_from_frequencies

from .shapes import SEED_SHAPE, WINDOW_END


@pytest.fixture(autouse=True)
def importable_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run `cli.main` with the command modules that exist today (others are built in parallel)."""
    present = []
    for name in cli.COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        present.append(name)
    assert "shape_pipeline.calibration.command" in present
    monkeypatch.setattr(cli, "COMMAND_MODULES", tuple(present))


def _seed() -> dict:
    return json.loads(SEED_SHAPE.read_text())


def _run(tmp_path: Path, shape: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str, Path]:
    out = tmp_path / "out" / "calibrated-config.json"
    code = cli.main(["calibrate", "--shape", str(shape), "--output", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, out


def test_seed_shape_calibrates_with_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err, path = _run(tmp_path, SEED_SHAPE, capsys)  # its speed: README's benchmark table
    assert code == 0 and err == ""
    config = load_json_model(path, CalibratedConfig, what="calibrated config")
    assert config.conversation_generation.messages_per_conversation.p99 == 5000
    lines = out.splitlines()
    assert lines[0] == "=== GENERATOR CALIBRATION ==="
    assert "[Calibrator] ✓ Loaded metrics from 2025-10-22T14:30:00Z" in lines
    assert "[Calibrator]   Users: 50,000" in lines
    assert "[Calibrator]   Messages: 1,200,000" in lines
    assert "[Calibrator]   DIRECT_MESSAGE: 78.1%" in lines
    assert any(line.startswith("[Calibrator]   Alpha: 2.12") for line in lines)
    assert any(line.startswith("[Calibrator]   Fit: p50 45 (+0.0%)") for line in lines)
    warnings = [line for line in lines if line.startswith("[Calibrator] ⚠")]
    assert len(warnings) == 1 + len(config.calibration_metadata.warnings)
    assert "[Calibrator] ✓ Calibration complete" in lines
    assert lines[-1] == f"[Output] ✓ Written to {path}"


def test_off_goal_fit_is_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _seed()
    data["conversations"]["messages_per_conversation_mean"] = 2000  # far above what p99 allows
    shape = tmp_path / "shape.json"
    shape.write_text(json.dumps(data))
    code, out, _, path = _run(tmp_path, shape, capsys)
    assert code == 0
    flagged = [line for line in out.splitlines() if "off the 5% goal" in line]
    assert len(flagged) == 1 and "messages_per_conversation mean" in flagged[0]


BAD_INPUTS = {
    "not_json": ("{ this is not json", "not a valid JSON"),
    "schema_version": (lambda d: {**d, "schema_version": 2}, "schema_version"),
    "non_monotone": (
        lambda d: d["conversations"]["messages_per_conversation_percentiles"].update(p90=100) or d,
        "conversations.messages_per_conversation_percentiles",
    ),
    "malformed_histogram": (
        lambda d: (
            d["conversations"].update(messages_per_conversation_histogram={"edges": [1, 2], "counts": [3, 4]}) or d
        ),
        "conversations.messages_per_conversation_histogram",
    ),
    "wrong_type": (
        lambda d: d["messages"]["content_length_stats"].update(mean="long") or d,
        "messages.content_length_stats.mean",
    ),
    "negative_count": (
        lambda d: d["conversations"]["type_distribution"].update(GROUP_CHAT=-5) or d,
        "conversations.type_distribution",
    ),
    "empty_stats": (
        lambda d: d["messages"].update(inter_message_gap_seconds={"count": 10}) or d,
        "messages.inter_message_gap_seconds",
    ),
    "unknown_key": (lambda d: {**d, "user_ids": [1, 2]}, "user_ids"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_nothing_written(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, field = BAD_INPUTS[case]
    shape = tmp_path / "shape-metrics-prod-20251022.json"
    shape.write_text(edit if isinstance(edit, str) else json.dumps(edit(_seed())))
    code, out, err, path = _run(tmp_path, shape, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert str(shape) in err and field in err
    assert not path.exists() and not path.parent.exists()


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "shape-metrics-prod-19990101.json"
    code, _, err, path = _run(tmp_path, missing, capsys)
    assert code == 2 and str(missing) in err and err.count("\n") == 1
    assert not path.exists()


def test_failed_run_leaves_an_existing_output_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _, path = _run(tmp_path, SEED_SHAPE, capsys)
    before = path.read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    code, _, err, _ = _run(tmp_path, bad, capsys)
    assert code == 2 and "JSON object" in err
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind


def test_empty_window_shape_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = shape_from_frequencies(
        FrequencyTables(users_total=40),
        window_start=WINDOW_END - timedelta(days=30),
        window_end=WINDOW_END,
        extracted_at=WINDOW_END,
        min_cell_count=10,
    )
    shape = write_model_atomic(tmp_path / "shape-metrics-prod-20261101.json", empty)
    code, _, err, path = _run(tmp_path, shape, capsys)
    assert code == 2 and "totals.messages" in err and str(shape) in err
    assert not path.exists()
