"""Dagster resources of both code locations, configured from environment variables.

A variable that is set is passed as `dg.EnvVar`, so the UI shows its name and never its value
(URLs with passwords, the salt). A variable that is unset falls back to the demo's embedded
databases and folders under `SHAPE_PIPELINE_HOME`, so "Materialize all" works on a fresh
checkout. This module imports no generation or fidelity code (the production location uses it).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from shape_pipeline import settings
from shape_pipeline.conventions import DEFAULT_STATEMENT_TIMEOUT_MS


def _env(name: str) -> dg.EnvVar | None:
    return dg.EnvVar(name) if os.environ.get(name) else None


class ProductionSource(dg.ConfigurableResource):
    """The production database and the boundary's export folder, salt and audit log."""

    database_url: str | None = None
    salt: str | None = None
    mapping_path: str | None = None
    export_dir: str | None = None
    audit_log: str | None = None
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS

    def is_demo(self) -> bool:
        """No production URL configured: the embedded demo 'production' database is used."""
        return not self.database_url

    def resolved_database_url(self) -> str:
        return self.database_url or settings.default_prod_database_url()

    def resolved_export_dir(self) -> Path:
        return Path(self.export_dir or settings.default_exchange_dir())

    def resolved_audit_log(self) -> Path:
        return Path(self.audit_log or settings.default_audit_log())


class DevelopmentTarget(dg.ConfigurableResource):
    """The development side: where shapes arrive, configs and reports go, data is loaded."""

    database_url: str | None = None
    mapping_path: str | None = None
    parquet_dir: str | None = None
    import_dir: str | None = None
    config_dir: str | None = None
    report_dir: str | None = None
    production_database_url: str | None = None  # to refuse loading into production
    alert_urls: str | None = None  # apprise URLs, separated by spaces or commas

    def resolved_database_url(self) -> str:
        return self.database_url or settings.default_dev_database_url()

    def resolved_import_dir(self) -> Path:
        return Path(self.import_dir or settings.default_exchange_dir())

    def resolved_config_dir(self) -> Path:
        return Path(self.config_dir or settings.home() / "configs")

    def resolved_report_dir(self) -> Path:
        return Path(self.report_dir or settings.home() / "reports")

    def resolved_parquet_dir(self) -> Path | None:
        return Path(self.parquet_dir) if self.parquet_dir else None


def production_source_from_env() -> ProductionSource:
    timeout = os.environ.get(settings.STATEMENT_TIMEOUT_MS)
    return ProductionSource(
        database_url=_env(settings.PROD_DATABASE_URL),
        salt=_env(settings.SALT),
        mapping_path=_env(settings.PROD_MAPPING),
        export_dir=_env(settings.EXPORT_DIR),
        audit_log=_env(settings.AUDIT_LOG),
        statement_timeout_ms=int(timeout) if timeout else DEFAULT_STATEMENT_TIMEOUT_MS,
    )


def development_target_from_env() -> DevelopmentTarget:
    return DevelopmentTarget(
        database_url=_env(settings.DEV_DATABASE_URL),
        mapping_path=_env(settings.DEV_MAPPING),
        parquet_dir=_env(settings.PARQUET_DIR),
        import_dir=_env(settings.IMPORT_DIR),
        config_dir=_env(settings.CONFIG_DIR),
        report_dir=_env(settings.REPORT_DIR),
        production_database_url=_env(settings.PROD_DATABASE_URL),
        alert_urls=_env(settings.ALERT_URLS),
    )
