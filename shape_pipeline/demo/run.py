"""`shape-pipeline demo`: the whole workflow on one machine, as a user would run it.

Fake production (embedded SQLite by default) -> sample -> calibrate -> generate (dev database
and Parquet) -> validate, with each step's own console summary, then the verdict and where
every file is. The same library functions serve the CLI commands and the Dagster assets. On
PostgreSQL (--prod-url and --dev-url) the demo is Phase 2 as well: the default workload's plans
are sampled with the shape and compared on the synthetic database.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from shape_pipeline import settings
from shape_pipeline.calibration.calibrate import calibrate_file
from shape_pipeline.console import Emit, Reporter, fmt_int
from shape_pipeline.conventions import config_file_name, report_file_name
from shape_pipeline.db import is_postgres, parse_url, redact
from shape_pipeline.demo.production_data import DEFAULT_PRODUCTION_MESSAGES, build_demo_production
from shape_pipeline.fidelity.validate import validate_to_files
from shape_pipeline.generation.generate import generate_dataset
from shape_pipeline.privacy.defaults import DEMO_PRIVACY
from shape_pipeline.sampling.export import DpSettings, sample_to_file

DEV_SEED = "demo-development-v1"


@dataclass
class DemoResult:
    verdict: str
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def run_demo(
    workdir: Path | None = None,
    *,
    prod_url: str | None = None,
    dev_url: str | None = None,
    messages: int = DEFAULT_PRODUCTION_MESSAGES,
    replace: bool = False,
    emit: Emit = print,
    privacy: str = DEMO_PRIVACY,
) -> DemoResult:
    """Run every step; embedded SQLite databases under `workdir` unless URLs are given.

    The embedded databases are the demo's own and are rebuilt on each run; a database given by
    URL must be empty, or `replace` must be set.
    """
    started = time.perf_counter()
    work = Path(workdir or settings.demo_dir()).absolute()
    work.mkdir(parents=True, exist_ok=True)
    prod = prod_url or sqlite_url(work / "production.db")
    dev = dev_url or sqlite_url(work / "development.db")
    out = Reporter("Demo", emit)
    out.header("SHAPE-PIPELINE DEMO")
    out.line(f"Production (fake, with PII-looking values): {redact(prod)}")
    out.line(f"Development: {redact(dev)}")
    out.line(f"Files: {work}")
    out.line(
        f"Privacy: {privacy}"
        + (" (the fake production holds nobody; --privacy dp shows DP's cost)" if privacy != "dp" else "")
    )
    workload = "default" if is_postgres(parse_url(prod)) and is_postgres(parse_url(dev)) else None
    if workload:
        out.line("Phase 2: the default workload's query plans are compared too (PostgreSQL)")
    out.blank()

    out.line(f"Step 0/4: building the fake production database ({fmt_int(messages)} messages)...")
    build_demo_production(prod, messages=messages, replace=replace or prod_url is None, emit=emit)
    out.blank()

    out.line("Step 1/4: sampling the production shape (aggregates only)...")
    sampled = sample_to_file(
        prod,
        output_dir=work / "exchange",
        salt=secrets.token_urlsafe(48),  # the demo rotates its salt on every extraction
        audit_log=work / "audit" / "extractions.jsonl",
        privacy=privacy,
        dp=DpSettings(override_budget=True),  # the fake production is rebuilt on every run
        workload_path=workload,
        emit=emit,
    )
    out.blank()

    out.line("Step 2/4: calibrating the generator...")
    config_path = work / "configs" / config_file_name(sampled.shape.extracted_at)
    config = calibrate_file(sampled.path, config_path, emit=emit)
    out.blank()

    out.line("Step 3/4: generating the synthetic dataset...")
    parquet = work / "parquet"
    generate_dataset(
        config,
        target_messages=messages,
        seed=DEV_SEED,
        database_url=dev,
        parquet_dir=parquet,
        replace=replace or dev_url is None,
        production_url=prod,
        emit=emit,
        progress=True,
    )
    out.blank()

    out.line("Step 4/4: validating fidelity...")
    report_path = work / "reports" / report_file_name(sampled.shape.extracted_at)
    html_path = report_path.with_suffix(".html")
    report = validate_to_files(
        sampled.path,
        report_path,
        database_url=dev,
        html_path=html_path,
        config_path=config_path,
        workload_path=workload,
        emit=emit,
    )
    out.blank()

    files = {
        "production database": work / "production.db" if prod_url is None else Path(redact(prod)),
        "shape metrics (the only file that leaves production)": sampled.path,
        "extraction audit log": sampled.audit_log,
        "calibrated config": config_path,
        "development database": work / "development.db" if dev_url is None else Path(redact(dev)),
        "Parquet dataset": parquet,
        "fidelity report (JSON)": report_path,
        "fidelity report (HTML)": html_path,
    }
    seconds = time.perf_counter() - started
    out.header("DEMO SUMMARY")
    out.line(f"Overall Verdict: {report.overall_verdict}")
    out.line(f"Finished in {seconds:.0f}s")
    for label, path in files.items():
        out.detail(f"{label}: {path}")
    return DemoResult(report.overall_verdict, seconds, files)
