"""Dagster: alerts on failed fidelity checks, for green and for failed runs.

A FAIL is a failed ERROR check: blocking, so the run fails. A WARNING is a failed WARN check:
the run stays green, which a `run_failure_sensor` never hears of. Two run-status sensors
therefore read the check evaluations of every finished run from the instance (one for green
runs, one for failed runs) and send one alert per run with failed fidelity checks, to the
apprise destinations in `SHAPE_PIPELINE_ALERT_URLS`. A run tag marks a run as alerted, so a
re-evaluated tick never repeats a message.
"""

from typing import Any

import dagster as dg

from shape_pipeline.conventions import FIDELITY_REPORT
from shape_pipeline.fidelity import alerts
from shape_pipeline.fidelity.comparisons import TEST_KEYS
from shape_pipeline.locations.resources import DevelopmentTarget

ASSET_KEY = dg.AssetKey(FIDELITY_REPORT)
ALERTED_TAG = "shape_pipeline/fidelity_alerted"


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
        evaluation = record.asset_check_evaluation
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
        mat = record.asset_materialization
        if mat is not None and mat.asset_key == ASSET_KEY and "html_report" in mat.metadata:
            return str(mat.metadata["html_report"].value)
    return None


def alert_for_run(context: dg.RunStatusSensorContext, development: DevelopmentTarget) -> dg.SkipReason | None:
    """Send one alert for a finished run with failed fidelity checks (once per run)."""
    run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run  # fresh tags
    if run.tags.get(ALERTED_TAG):
        return dg.SkipReason(f"run {run.run_id} was already alerted")
    checks = failed_checks(context.instance, run.run_id)
    if not checks:
        return dg.SkipReason(f"run {run.run_id}: no failed fidelity check")
    urls = alerts.alert_urls(development.alert_urls)
    if not urls:
        return dg.SkipReason(
            "failed fidelity checks, but no alert destination is configured (SHAPE_PIPELINE_ALERT_URLS)"
        )
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


defs = dg.Definitions(sensors=[fidelity_warning_alerts, fidelity_failure_alerts])
