"""Dagster: the `fidelity_report` asset, one blocking check per fidelity test, and the alerts.

A FAIL is a failed ERROR check: blocking, so the run fails. A WARNING is a failed WARN check:
the run stays green, which a `run_failure_sensor` never hears of. Two run-status sensors
therefore read the check evaluations of every finished run from the instance (one for green
runs, one for failed runs) and send one alert per run with failed fidelity checks, to the
apprise destinations in `SHAPE_PIPELINE_ALERT_URLS`. A run tag marks a run as alerted, so a
re-evaluated tick never repeats a message.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from shape_pipeline.contracts import CalibratedConfig, FidelityReport, TestResult
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.fidelity import alerts
from shape_pipeline.fidelity.comparisons import TEST_KEYS
from shape_pipeline.fidelity.validate import validate_to_files
from shape_pipeline.files import load_json_model, newest_file
from shape_pipeline.locations.resources import DevelopmentTarget
from shape_pipeline.workload.compare import DEFAULT_MAX_LOG2_RATIO

ASSET_KEY = dg.AssetKey("fidelity_report")
SHAPE_PATTERN = "shape-metrics-prod-*.json"
CONFIG_PATTERN = "calibrated-config-*.json"
ALERTED_TAG = "shape_pipeline/fidelity_alerted"


class FidelityRunConfig(dg.Config):
    """Run parameters of a validation."""

    tolerance: float = Field(
        default=0.15, gt=0.0, lt=1.0, description="Effect-size tolerance (0.15 = 15%)."
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
    config_path = newest_file(development.resolved_config_dir(), CONFIG_PATTERN)
    if config_path is not None:
        config = load_json_model(config_path, CalibratedConfig, what="calibrated config")
        source = config.calibration_metadata.source_shape_path
        if source:
            # the calibrator records the file's name; it lives in the import folder
            for candidate in (Path(source), development.resolved_import_dir() / Path(source).name):
                if candidate.is_file():
                    return candidate, config_path
    shape = newest_file(development.resolved_import_dir(), SHAPE_PATTERN)
    if shape is None:
        raise ShapePipelineError(
            f"no shape file: neither a config naming its shape in {development.resolved_config_dir()} "
            f"nor {SHAPE_PATTERN} in {development.resolved_import_dir()}"
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
        metadata["recommendations"] = dg.MetadataValue.md(
            "\n".join(f"- {r.text}" for r in result.recommendations)
        )
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
    name="fidelity_report",
    deps=["shape_metrics", "synthetic_dataset"],
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
    try:
        shape_path, config_path = find_inputs(development)
        stamp = datetime.now(UTC).strftime("%Y%m%d")
        report_dir = development.resolved_report_dir()
        json_path = report_dir / f"fidelity-report-{stamp}.json"
        html_path = report_dir / f"fidelity-report-{stamp}.html"
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
    except ShapePipelineError as exc:
        raise dg.Failure(description=str(exc)) from None
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


# --------------------------------------------------------------------------------------
# Alerts
# --------------------------------------------------------------------------------------


def _text(metadata: dict[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    return None if value is None else str(getattr(value, "value", value))


def _number(metadata: dict[str, Any], key: str) -> float | None:
    value = metadata.get(key)
    raw = getattr(value, "value", value)
    return float(raw) if isinstance(raw, int | float) else None


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[alerts.FailedCheck]:
    """The fidelity check evaluations of one run that did not pass, in catalog order."""
    found: dict[str, alerts.FailedCheck] = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data if record.dagster_event else None
        if evaluation is None or evaluation.passed or evaluation.asset_key != ASSET_KEY:
            continue
        md = dict(evaluation.metadata or {})
        recs = _text(md, "recommendations") or ""
        found[evaluation.check_name] = alerts.FailedCheck(
            name=evaluation.check_name,
            severity=evaluation.severity.value,
            verdict=_text(md, "verdict") or "FAIL",
            reason=_text(md, "reason") or "",
            statistic=_text(md, "statistic"),
            effect_size=_number(md, "effect_size"),
            tolerance=_number(md, "tolerance"),
            noise_band=_number(md, "noise_band"),
            recommendations=[line[2:] for line in recs.splitlines() if line.startswith("- ")],
        )
    return [found[k] for k in TEST_KEYS if k in found]


def _report_path(instance: dg.DagsterInstance, run_id: str) -> str | None:
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        event = record.dagster_event
        mat = event.event_specific_data.materialization if event else None
        if mat is not None and mat.asset_key == ASSET_KEY and "html_report" in mat.metadata:
            return str(mat.metadata["html_report"].value)
    return None


def alert_for_run(
    context: dg.RunStatusSensorContext, development: DevelopmentTarget
) -> dg.SkipReason | None:
    """Send one alert for a finished run with failed fidelity checks (once per run)."""
    run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run  # fresh tags
    if run.tags.get(ALERTED_TAG):
        return dg.SkipReason(f"run {run.run_id} was already alerted")
    checks = failed_checks(context.instance, run.run_id)
    if not checks:
        return dg.SkipReason(f"run {run.run_id}: no failed fidelity check")
    urls = alerts.alert_urls(development.alert_urls)
    if not urls:
        return dg.SkipReason("failed fidelity checks, but no alert destination is configured (SHAPE_PIPELINE_ALERT_URLS)")
    title, body = alerts.compose(checks, run_id=run.run_id, report_path=_report_path(context.instance, run.run_id))
    if not alerts.send(title, body, urls):
        raise RuntimeError(f"fidelity alert for run {run.run_id} was not accepted by every destination")
    context.instance.add_run_tags(run.run_id, {ALERTED_TAG: "true"})
    context.log.info(f"fidelity alert sent for run {run.run_id}: {len(checks)} failed check(s)")
    return None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="fidelity_warning_alerts",
    description="Green runs whose fidelity checks failed with WARN severity.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def fidelity_warning_alerts(context: dg.RunStatusSensorContext, development: DevelopmentTarget):
    return alert_for_run(context, development)


@dg.run_failure_sensor(
    name="fidelity_failure_alerts",
    description="Runs failed by a blocking ERROR fidelity check.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def fidelity_failure_alerts(context: dg.RunFailureSensorContext, development: DevelopmentTarget):
    return alert_for_run(context, development)


ASSETS: list[Any] = [fidelity_report]
ASSET_CHECKS: list[Any] = []  # the checks live in the asset's own op (check_specs)
SENSORS: list[Any] = [fidelity_warning_alerts, fidelity_failure_alerts]
JOBS: list[Any] = []
SCHEDULES: list[Any] = []
