"""Dagster: the `calibrated_config` asset and what starts it when a new shape arrives.

`shape_metrics` is materialized by the production location; here it is only declared by key,
so the UI shows one lineage across both locations. A new shape reaches calibration by one of
two paths, and never twice:

* same instance: the production location's materialization of `shape_metrics` (its metadata
  carries the file's `sha256` and `path`) makes the eager condition true, and the automation
  sensor plans calibrate -> generate -> validate in one run;
* separate instance (a production boundary with its own Dagster): someone copies the file into
  the import folder; the folder sensor sees a new sha256 and reports it as a runless
  materialization of `shape_metrics`, after which the same eager condition takes over. The
  sensor stays silent when the latest `shape_metrics` materialization already carries that
  sha256 (the first path already covered the file), so both paths together start one run.
"""

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from shape_pipeline import settings
from shape_pipeline.calibration.calibrate import calibrate_file, off_goal_warnings
from shape_pipeline.calibration.fit_report import named_models
from shape_pipeline.contracts import CalibratedConfig, PowerLawTailModel, QuantileSplineModel
from shape_pipeline.conventions import (
    CALIBRATED_CONFIG,
    SHAPE_GLOB,
    SHAPE_METRICS,
    config_file_name,
)
from shape_pipeline.files import newest_file, sha256_file
from shape_pipeline.locations.failures import one_line_failure
from shape_pipeline.locations.resources import DevelopmentTarget

SHAPE_KEY = dg.AssetKey(SHAPE_METRICS)
FIT_CHECK = "fit_within_goal"
# A file younger than this is left for the next tick: a copy may still be in progress, and the
# production location's own materialization event (same instance) lands just after its write.
SETTLE_SECONDS = 60.0

shape_metrics_spec = dg.AssetSpec(
    SHAPE_METRICS,
    group_name="production_boundary",
    description="Aggregate shape of production (materialized by the production location).",
)

_FIT_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("model", "string"),
        dg.TableColumn("metric", "string"),
        dg.TableColumn("target", "float"),
        dg.TableColumn("fitted", "float"),
        dg.TableColumn("relative_error", "float"),
        dg.TableColumn("within_goal", "bool"),
    ]
)


def fit_error_table(config: CalibratedConfig) -> dg.TableMetadataValue:
    """Every model's fit errors as one table (the UI renders it)."""
    records = [
        dg.TableRecord(
            {
                "model": name.rsplit(".", 1)[-1] if "members" not in name else name.split(".", 1)[-1],
                "metric": e.metric,
                "target": e.target,
                "fitted": e.fitted,
                "relative_error": e.relative_error,
                "within_goal": e.within_goal,
            }
        )
        for name, model in named_models(config)
        for e in model.fit_errors
    ]
    return dg.MetadataValue.table(records=records, schema=_FIT_SCHEMA)


def fitted_parameters(config: CalibratedConfig) -> dict[str, Any]:
    """The key numbers of each model (the full config is in the file)."""
    conv, msg = config.conversation_generation, config.message_generation
    mpc, content = conv.messages_per_conversation, msg.content_length
    return {
        "totals": config.totals.model_dump(),
        "conversation_types": conv.type_distribution,
        "messages_per_conversation": {
            "alpha": mpc.alpha,
            "tail_start": list(mpc.tail_start) if mpc.tail_start else None,
            "min": mpc.min,
            "max": mpc.max,
            "mean": mpc.mean,
        },
        "content_length": {
            "mu": content.mu,
            "sigma": content.sigma,
            "knots": len(content.knots or []),
        },
        "message_types": msg.type_distribution,
        "username_length": {
            "mean": config.user_generation.username_length.mean,
            "stddev": config.user_generation.username_length.stddev,
        },
        "gap_seconds_tail_alpha": msg.inter_message_gap_seconds.tail_alpha,
        "messages_per_sender_tail_alpha": tail_alpha(msg.messages_per_sender),
    }


def tail_alpha(model: QuantileSplineModel | PowerLawTailModel) -> float | None:
    """The Pareto exponent of a model's tail (None: no tail)."""
    return model.alpha if isinstance(model, PowerLawTailModel) else model.tail_alpha


def config_path(development: DevelopmentTarget, when: datetime) -> Path:
    """`calibrated-config-YYYYMMDD.json` in the config folder (a same-day rerun replaces it)."""
    return development.resolved_config_dir() / config_file_name(when)


@dg.asset(
    name=CALIBRATED_CONFIG,
    deps=[shape_metrics_spec],
    group_name="development",
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[
        dg.AssetCheckSpec(
            FIT_CHECK,
            asset=CALIBRATED_CONFIG,
            description="Every exported percentile is within 5% in the fitted models.",
        )
    ],
    description="Generator parameters fitted to the newest shape file in the import folder.",
    kinds={"json"},
)
def calibrated_config(context: dg.AssetExecutionContext, development: DevelopmentTarget) -> dg.MaterializeResult:
    folder = development.resolved_import_dir()
    shape_path = newest_file(folder, SHAPE_GLOB)
    if shape_path is None:
        raise dg.Failure(description=f"no {SHAPE_GLOB} in {folder} (import folder, {settings.IMPORT_DIR})")
    output = config_path(development, datetime.now(UTC))
    with one_line_failure():
        config = calibrate_file(shape_path, output, emit=context.log.info)
    off = off_goal_warnings(config)
    meta = config.calibration_metadata
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(output)),
            "shape_path": dg.MetadataValue.path(str(shape_path)),
            "shape_sha256": meta.source_shape_sha256 or "",
            "shape_extracted_at": meta.source_shape_file,
            "fitted_parameters": dg.MetadataValue.json(fitted_parameters(config)),
            "fit_errors": fit_error_table(config),
            "warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in meta.warnings) or "none"),
            "warning_count": len(meta.warnings),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=FIT_CHECK,
                passed=not off,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"off_goal": dg.MetadataValue.json(off)},
            )
        ],
    )


def _text(value: Any) -> str | None:
    """The string inside a metadata value (TextMetadataValue, PathMetadataValue) or a raw str."""
    for attr in ("value", "text", "path"):
        inner = getattr(value, attr, None)
        if isinstance(inner, str):
            return inner
    return value if isinstance(value, str) else None


def latest_shape_sha256(instance: dg.DagsterInstance) -> str | None:
    """The sha256 the latest `shape_metrics` materialization carries (either path records it)."""
    event = instance.get_latest_materialization_event(SHAPE_KEY)
    if event is None or event.asset_materialization is None:
        return None
    return _text(event.asset_materialization.metadata.get("sha256"))


@dg.sensor(
    name="shape_import_folder_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Reports a new shape file in the import folder as a materialization of shape_metrics "
        "(for a production boundary with its own Dagster instance)."
    ),
)
def shape_import_folder_sensor(
    context: dg.SensorEvaluationContext, development: DevelopmentTarget
) -> dg.SensorResult | dg.SkipReason:
    folder = development.resolved_import_dir()
    newest = newest_file(folder, SHAPE_GLOB)
    if newest is None:
        return dg.SkipReason(f"no {SHAPE_GLOB} in {folder}")
    seen = json.loads(context.cursor) if context.cursor else {}
    mtime_ns = newest.stat().st_mtime_ns
    if seen.get("name") == newest.name and seen.get("mtime_ns") == mtime_ns:
        return dg.SkipReason(f"{newest.name} unchanged")
    if time.time() - mtime_ns / 1e9 < SETTLE_SECONDS:
        return dg.SkipReason(f"{newest.name} is new; waiting {SETTLE_SECONDS:.0f} s for it to settle")
    digest = sha256_file(newest)
    cursor = json.dumps({"name": newest.name, "mtime_ns": mtime_ns, "sha256": digest})
    if seen.get("sha256") == digest:
        return dg.SensorResult(skip_reason=f"{newest.name}: same content as before", cursor=cursor)
    if latest_shape_sha256(context.instance) == digest:
        return dg.SensorResult(skip_reason=f"{newest.name} already materialized as shape_metrics", cursor=cursor)
    event = dg.AssetMaterialization(
        SHAPE_KEY,
        description="shape file found in the import folder",
        metadata={
            "path": dg.MetadataValue.path(str(newest)),
            "sha256": digest,
            "source": "import folder sensor",
        },
    )
    return dg.SensorResult(asset_events=[event], cursor=cursor)


development_automation_sensor = dg.AutomationConditionSensorDefinition(
    "development_automation_sensor",
    # every development asset (and its checks): one sensor, so one tick plans the whole chain
    target=dg.AssetSelection.groups("development") | dg.AssetSelection.assets(CALIBRATED_CONFIG).downstream(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Plans calibrate -> generate -> validate in one run when a new shape arrives.",
)

defs = dg.Definitions(
    assets=[shape_metrics_spec, calibrated_config],
    sensors=[shape_import_folder_sensor, development_automation_sensor],
)
