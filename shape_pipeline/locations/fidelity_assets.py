"""Dagster: the `fidelity_report` asset and one blocking check per fidelity test.

A FAIL is a failed ERROR check: blocking, so the run fails. A WARNING is a failed WARN check:
the run stays green. The alerts on both are in `fidelity_alerts`.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from shape_pipeline.contracts import CalibratedConfig, FidelityReport, TestResult
from shape_pipeline.conventions import (
    CONFIG_GLOB,
    DEFAULT_TOLERANCE,
    FIDELITY_REPORT,
    SHAPE_GLOB,
    SHAPE_METRICS,
    SYNTHETIC_DATASET,
    report_file_name,
)
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.fidelity.comparisons import TEST_KEYS
from shape_pipeline.fidelity.validate import validate_to_files
from shape_pipeline.files import load_json_model, newest_file
from shape_pipeline.locations.failures import one_line_failure
from shape_pipeline.locations.resources import DevelopmentTarget
from shape_pipeline.workload.compare import DEFAULT_MAX_LOG2_RATIO

ASSET_KEY = dg.AssetKey(FIDELITY_REPORT)


class FidelityRunConfig(dg.Config):
    """Run parameters of a validation."""

    tolerance: float = Field(
        default=DEFAULT_TOLERANCE,
        gt=0.0,
        lt=1.0,
        description=f"Effect-size tolerance ({DEFAULT_TOLERANCE:g} = {DEFAULT_TOLERANCE:.0%}).",
    )
    workload_path: str | None = Field(
        default=None,
        description="The workload file the shape's query plans were made with (default: the shipped default workload).",
    )
    plan_log2_ratio: float = Field(
        default=DEFAULT_MAX_LOG2_RATIO,
        gt=0.0,
        description="Query plans: rows and buffers within |log2 ratio| <= this (0.5: a factor of about 1.41).",
    )


def find_inputs(development: DevelopmentTarget) -> tuple[Path, Path | None]:
    """(shape file, config file or None): the shape the newest config was calibrated from,
    else the newest shape in the import folder."""
    config_path = newest_file(development.resolved_config_dir(), CONFIG_GLOB)
    if config_path is not None:
        config = load_json_model(config_path, CalibratedConfig, what="calibrated config")
        source = config.calibration_metadata.source_shape_path
        if source:
            # the calibrator records the file's name; it lives in the import folder
            for candidate in (Path(source), development.resolved_import_dir() / Path(source).name):
                if candidate.is_file():
                    return candidate, config_path
    shape = newest_file(development.resolved_import_dir(), SHAPE_GLOB)
    if shape is None:
        raise ShapePipelineError(
            f"no shape file: neither a config naming its shape in {development.resolved_config_dir()} "
            f"nor {SHAPE_GLOB} in {development.resolved_import_dir()}"
        )
    return shape, config_path


def synthetic_target(development: DevelopmentTarget) -> dict[str, Any]:
    """Where the synthetic dataset is: the configured database, else a configured Parquet
    folder, else the demo's development database."""
    if development.database_url or not development.parquet_dir:
        return {
            "database_url": development.resolved_database_url(),
            "mapping_path": development.mapping_path,
        }
    return {"parquet_dir": development.resolved_parquet_dir()}


def tests_table(report: FidelityReport) -> str:
    """A markdown table of every test (the asset's metadata)."""
    rows = ["| # | test | verdict | statistic | value | tolerance |", "|---|---|---|---|---|---|"]
    for n, (key, t) in enumerate(report.tests.items(), start=1):
        value = "" if t.effect_size is None else f"{t.effect_size:.3f}"
        tol = "" if t.tolerance is None else f"{t.tolerance:g}"
        rows.append(f"| {n} | {key} | {t.verdict} | {t.statistic or ''} | {value} | {tol} |")
    return "\n".join(rows)


def check_result(key: str, result: TestResult) -> dg.AssetCheckResult:
    """PASS/SKIPPED pass; WARNING fails with WARN severity; FAIL fails with ERROR severity."""
    metadata: dict[str, Any] = {"verdict": result.verdict}
    for name in ("statistic", "effect_size", "tolerance", "noise_band", "reason", "p_value"):
        value = getattr(result, name)
        if value is not None:
            metadata[name] = value
    if result.recommendations:
        metadata["recommendations"] = dg.MetadataValue.md("\n".join(f"- {r.text}" for r in result.recommendations))
    return dg.AssetCheckResult(
        check_name=key,
        asset_key=ASSET_KEY,
        passed=result.verdict in ("PASS", "SKIPPED"),
        severity=dg.AssetCheckSeverity.WARN if result.verdict == "WARNING" else dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
    )


CHECK_SPECS = [
    dg.AssetCheckSpec(
        key,
        asset=ASSET_KEY,
        blocking=True,
        description=f"Fidelity test {key}: FAIL fails it with ERROR (the run fails), WARNING with WARN.",
    )
    for key in TEST_KEYS
]


@dg.asset(
    name=FIDELITY_REPORT,
    deps=[SHAPE_METRICS, SYNTHETIC_DATASET],
    group_name="development",
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=CHECK_SPECS,
    kinds={"python"},
    description="GO/NO-GO: the synthetic dataset's shape against production's, test by test.",
)
def fidelity_report(
    context: dg.AssetExecutionContext, config: FidelityRunConfig, development: DevelopmentTarget
) -> dg.MaterializeResult:
    """Validate the synthetic dataset against the shape it was calibrated from; write JSON + HTML."""
    with one_line_failure():
        shape_path, config_path = find_inputs(development)
        now = datetime.now(UTC)
        report_dir = development.resolved_report_dir()
        json_path = report_dir / report_file_name(now)
        html_path = report_dir / report_file_name(now, ".html")
        report = validate_to_files(
            shape_path,
            json_path,
            tolerance=config.tolerance,
            html_path=html_path,
            config_path=config_path,
            emit=context.log.info,
            workload_path=config.workload_path,
            plan_log2_ratio=config.plan_log2_ratio,
            **synthetic_target(development),
        )
    return dg.MaterializeResult(
        metadata={
            "overall_verdict": report.overall_verdict,
            "tests": dg.MetadataValue.md(tests_table(report)),
            "html_report": dg.MetadataValue.path(str(html_path)),
            "json_report": dg.MetadataValue.path(str(json_path)),
            "shape_file": dg.MetadataValue.path(str(shape_path)),
            "synthetic_source": report.synthetic_source or "",
            "tolerance": report.tolerance_threshold,
            "passed": report.summary.passed_tests,
            "warnings": report.summary.warning_tests,
            "failed": report.summary.failed_tests,
            "skipped": report.summary.skipped_tests,
        },
        check_results=[check_result(key, report.tests[key]) for key in TEST_KEYS],
    )


defs = dg.Definitions(assets=[fidelity_report])  # its checks live in the asset's own op (check_specs)
