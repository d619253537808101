"""`shape-pipeline demo` as a user runs it: a fresh folder, no variables, then on PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from shape_pipeline.contracts import FidelityReport, ShapeMetrics
from shape_pipeline.db import create_engine

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SHAPE_PIPELINE_", "ANONYMIZATION_SALT"))}
FILE_LINE = re.compile(r"^\[Demo\]   (?P<label>[^:]+): (?P<path>/.+)$", re.M)


def run_demo(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shape_pipeline", "demo", *args],
        cwd=folder, env=CLEAN_ENV, capture_output=True, text=True, timeout=600, check=False,
    )


def pii_like_values(url: str) -> set[str]:
    """Distinctive text values of the fake production that must never leave it."""
    engine = create_engine(url)
    with engine.connect() as conn:
        emails = conn.execute(sa.text("SELECT email FROM users LIMIT 50")).scalars().all()
        names = conn.execute(sa.text("SELECT username FROM users LIMIT 50")).scalars().all()
        texts = conn.execute(sa.text("SELECT content FROM messages WHERE length(content) > 30 LIMIT 20")).scalars().all()
    engine.dispose()
    return {v for v in [*emails, *names, *texts] if v and len(v) >= 6}


@pytest.fixture(scope="module")
def embedded_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    folder = tmp_path_factory.mktemp("fresh-checkout")
    return run_demo(folder), folder


def test_demo_on_embedded_sqlite_ends_with_a_verdict_and_every_file(embedded_demo) -> None:
    done, folder = embedded_demo
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for title in ("PRODUCTION SHAPE SAMPLING", "GENERATOR CALIBRATION", "SYNTHETIC DATA GENERATION",
                  "FIDELITY VALIDATION", "DEMO SUMMARY"):
        assert f"=== {title} ===" in out
    verdict = re.search(r"^\[Demo\] Overall Verdict: (PASS|WARNING|FAIL)$", out, re.M)
    assert verdict and verdict.group(1) in {"PASS", "WARNING"}
    files = {m["label"]: Path(m["path"]) for m in FILE_LINE.finditer(out)}
    assert len(files) == 8
    for label, path in files.items():
        assert path.exists(), label
        assert path.is_relative_to(folder / ".shape-pipeline" / "demo"), path
    report = FidelityReport.model_validate_json(files["fidelity report (JSON)"].read_text())
    assert report.overall_verdict == verdict.group(1)
    assert "<svg" in files["fidelity report (HTML)"].read_text()
    assert len(list(files["Parquet dataset"].glob("messages/*.parquet"))) >= 1


def test_demo_shape_file_holds_no_value_of_the_fake_production(embedded_demo) -> None:
    done, folder = embedded_demo
    files = {m["label"]: Path(m["path"]) for m in FILE_LINE.finditer(done.stdout)}
    shape_path = files["shape metrics (the only file that leaves production)"]
    shape_text = shape_path.read_text()
    ShapeMetrics.model_validate(json.loads(shape_text))
    canaries = pii_like_values(f"sqlite:///{files['production database']}")
    assert any("@example." in c for c in canaries), "the fake production must hold PII-looking e-mails"
    leaked = [c for c in canaries if c in shape_text or c in done.stdout or c in done.stderr]
    assert leaked == []


def test_demo_on_postgresql(make_pg_database: Callable[[str], str], tmp_path: Path) -> None:
    prod, dev = make_pg_database("demo_prod"), make_pg_database("demo_dev")
    done = run_demo(tmp_path, "--prod-url", prod, "--dev-url", dev, "--messages", "200000")
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^\[Demo\] Overall Verdict: (PASS|WARNING)$", done.stdout, re.M)
    engine = create_engine(dev)
    with engine.connect() as conn:
        messages = conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one()
    engine.dispose()
    assert abs(messages - 200_000) <= 2_000
    # A second run into the now non-empty databases is refused unless --replace.
    again = run_demo(tmp_path, "--prod-url", prod, "--dev-url", dev, "--messages", "200000")
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "--replace" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
