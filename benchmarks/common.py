"""What every benchmark shares: the repository on the import path (import this module first),
the throw-away PostgreSQL server (`SHAPE_PIPELINE_TEST_DATABASE_URL`, as in the tests) and the
load-average line each benchmark prints, since other work on the machine skews both sides of
a ratio."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from shape_pipeline.scratch_database import ScratchServer  # noqa: E402
from shape_pipeline.settings import scratch_server_url  # noqa: E402


def scratch_server() -> ScratchServer:
    """The server the benchmark's throw-away databases are made on."""
    return ScratchServer(scratch_server_url())


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. '0.94, 1.35, 1.92'."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())
