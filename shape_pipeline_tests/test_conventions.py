"""`shape_pipeline.conventions`: every convention written once, importable without dependencies."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from shape_pipeline import conventions as c

PACKAGE = Path(c.__file__).resolve().parent


def test_it_imports_only_the_standard_library() -> None:
    code = (
        "import json, sys; before = set(sys.modules); import shape_pipeline.conventions; "
        "print(json.dumps(sorted(m for m in set(sys.modules) - before "
        "if m.split('.')[0] not in sys.stdlib_module_names)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["shape_pipeline", "shape_pipeline.conventions"]


def test_the_values() -> None:
    assert (c.SHAPE_METRICS, c.CALIBRATED_CONFIG, c.SYNTHETIC_DATASET, c.FIDELITY_REPORT) == (
        "shape_metrics",
        "calibrated_config",
        "synthetic_dataset",
        "fidelity_report",
    )
    assert (c.DEFAULT_WINDOW_DAYS, c.DEFAULT_MIN_CELL_COUNT, c.DEFAULT_TOLERANCE) == (30, 10, 0.15)
    assert c.DEFAULT_STATEMENT_TIMEOUT_MS == 600_000
    assert c.BANDS == {"dev": 500_000, "pilot": 5_000_000, "perf": 50_000_000}
    assert c.BAND_NAMES == ("dev", "pilot", "perf") and c.DEFAULT_BAND in c.BAND_NAMES
    assert (c.SHAPE_GLOB, c.CONFIG_GLOB, c.REPORT_GLOB) == (
        "shape-metrics-prod-*.json",
        "calibrated-config-*.json",
        "fidelity-report-*.json",
    )
    assert (c.SHAPE_PLACEHOLDER, c.CONFIG_PLACEHOLDER, c.REPORT_PLACEHOLDER) == (
        "shape-metrics-prod.json",
        "calibrated-config.json",
        "fidelity-report.json",
    )


def test_the_file_names_match_their_globs() -> None:
    when = datetime(2025, 10, 22, 13, 4, 5, tzinfo=UTC)
    assert c.shape_file_name(when) == "shape-metrics-prod-20251022.json"
    assert c.shape_file_name(when, with_time=True) == "shape-metrics-prod-20251022-130405.json"
    assert c.config_file_name(when) == "calibrated-config-20251022.json"
    assert c.report_file_name(when) == "fidelity-report-20251022.json"
    assert c.report_file_name(when, ".html") == "fidelity-report-20251022.html"
    assert Path(c.shape_file_name(when, with_time=True)).match(c.SHAPE_GLOB)
    assert Path(c.config_file_name(when)).match(c.CONFIG_GLOB)
    assert Path(c.report_file_name(when)).match(c.REPORT_GLOB)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (they may describe a convention)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def test_no_other_module_writes_a_convention_again() -> None:
    """File prefixes and the statement timeout appear as values only in `conventions`."""
    prefixes = (
        c.SHAPE_PREFIX,
        c.CONFIG_PREFIX,
        c.REPORT_PREFIX,
        c.SHAPE_PLACEHOLDER,
        c.CONFIG_PLACEHOLDER,
        c.REPORT_PLACEHOLDER,
    )
    copies = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "conventions.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or id(node) in docstrings:
                continue
            value = node.value
            if (isinstance(value, str) and any(p in value for p in prefixes)) or (
                type(value) is int and value == c.DEFAULT_STATEMENT_TIMEOUT_MS
            ):
                copies.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {value!r}")
    assert copies == []
