"""Environment variables and default folders, named in one place (README lists each).

With no variables set, every path falls under `SHAPE_PIPELINE_HOME` (default
`./.shape-pipeline`), where the demo keeps its embedded SQLite databases and files.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME = "SHAPE_PIPELINE_HOME"
SALT = "ANONYMIZATION_SALT"
PROD_DATABASE_URL = "SHAPE_PIPELINE_PROD_DATABASE_URL"
PROD_MAPPING = "SHAPE_PIPELINE_PROD_MAPPING"
EXPORT_DIR = "SHAPE_PIPELINE_EXPORT_DIR"
AUDIT_LOG = "SHAPE_PIPELINE_AUDIT_LOG"
STATEMENT_TIMEOUT_MS = "SHAPE_PIPELINE_STATEMENT_TIMEOUT_MS"
IMPORT_DIR = "SHAPE_PIPELINE_IMPORT_DIR"
CONFIG_DIR = "SHAPE_PIPELINE_CONFIG_DIR"
DEV_DATABASE_URL = "SHAPE_PIPELINE_DEV_DATABASE_URL"
DEV_MAPPING = "SHAPE_PIPELINE_DEV_MAPPING"
PARQUET_DIR = "SHAPE_PIPELINE_PARQUET_DIR"
REPORT_DIR = "SHAPE_PIPELINE_REPORT_DIR"
ALERT_URLS = "SHAPE_PIPELINE_ALERT_URLS"
EXECUTOR = "SHAPE_PIPELINE_EXECUTOR"
TEST_DATABASE_URL = "SHAPE_PIPELINE_TEST_DATABASE_URL"  # the server the tests and benchmarks make databases on
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def home() -> Path:
    return Path(os.environ.get(HOME) or ".shape-pipeline").absolute()


def env_or(name: str, default: str | os.PathLike[str]) -> str:
    """The variable's value, or `default` when it is unset or empty."""
    return os.environ.get(name) or str(default)


def demo_dir() -> Path:
    return home() / "demo"


def default_prod_database_url() -> str:
    return f"sqlite:///{demo_dir() / 'production.db'}"


def default_dev_database_url() -> str:
    return f"sqlite:///{demo_dir() / 'development.db'}"


def default_exchange_dir() -> Path:
    """The shape export folder of the production side, which is the development side's import folder by default."""
    return home() / "exchange"


def default_audit_log() -> Path:
    return home() / "audit" / "extractions.jsonl"


def scratch_server_url() -> str:
    """The PostgreSQL server (its maintenance database) the tests and benchmarks use."""
    return os.environ.get(TEST_DATABASE_URL) or DEFAULT_TEST_DATABASE_URL
