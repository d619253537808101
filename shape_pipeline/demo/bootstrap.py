"""Demo mode of the production location: build the embedded fake production when missing.

The production code location must not import generation code, so the fake production
database is built by a separate process (`shape-pipeline demo --prepare-production`). This
happens only in demo mode (no production URL configured) and never touches a real database.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from shape_pipeline.console import Emit
from shape_pipeline.errors import ShapePipelineError


def ensure_demo_production_database(url: str, emit: Emit) -> None:
    """Build the embedded SQLite demo production database at `url` unless it already exists."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise ShapePipelineError(f"demo mode expects an embedded SQLite database, not {parsed.get_backend_name()}")
    if Path(parsed.database).is_file():
        return
    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    emit(f"[Demo] Building the embedded demo production database at {parsed.database} (first run only)...")
    command = [sys.executable, "-m", "shape_pipeline", "demo", "--prepare-production", "--prod-url", url]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ShapePipelineError(f"could not build the demo production database: {last}")
    emit(f"[Demo] ✓ Demo production database ready at {parsed.database}")
