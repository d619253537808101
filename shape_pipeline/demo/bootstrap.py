"""Demo mode of the production location: build the embedded fake production when missing.

The fake production comes from `chat_simulator`, which imports nothing of the project, so the
production code location builds it in its own process without loading generation code. It is
built under a temporary name and renamed when complete, so an interrupted first run never
leaves a half-built database that later runs would take for the real thing. This happens only
in demo mode (no production URL configured) and never touches a real database.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

from shape_pipeline.console import Emit
from shape_pipeline.errors import ShapePipelineError


def ensure_demo_production_database(url: str, emit: Emit) -> None:
    """Build the embedded SQLite demo production database at `url` unless it already exists."""
    from shape_pipeline.demo.production_data import build_demo_production

    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise ShapePipelineError(f"demo mode expects an embedded SQLite database, not {parsed.get_backend_name()}")
    target = Path(parsed.database)
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    emit(f"[Demo] Building the embedded demo production database at {target} (first run only)...")
    try:
        partial.unlink(missing_ok=True)
        build_demo_production(
            parsed.set(database=str(partial)).render_as_string(hide_password=False), replace=True, emit=emit
        )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    emit(f"[Demo] ✓ Demo production database ready at {target}")
