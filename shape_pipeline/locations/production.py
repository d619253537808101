"""The `production_boundary` code location: the `shape_metrics` asset and nothing else.

It runs inside the production boundary, so it imports no generation, calibration or
fidelity code, nor the development side of workloads (plan comparison); a test checks
`sys.modules`. The asset writes the audited shape file itself and returns only metadata: no
value is pickled by an IO manager, and the metadata holds counts (plan pairs and layout
tables included), the file path and its sha256, never a URL password, the salt or a plan.
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from shape_pipeline.conventions import DEFAULT_MIN_CELL_COUNT, DEFAULT_WINDOW_DAYS, SHAPE_METRICS
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.files import sha256_file
from shape_pipeline.locations.failures import one_line_failure
from shape_pipeline.locations.resources import ProductionSource, production_source_from_env
from shape_pipeline.privacy.defaults import (
    DEFAULT_EPSILON_PER_EXTRACTION,
    DEFAULT_MAX_MESSAGES_PER_USER,
    DEFAULT_PRIVACY,
    DEFAULT_YEARLY_EPSILON,
    PrivacyMode,
)
from shape_pipeline.sampling.audit import audit_file
from shape_pipeline.sampling.export import DpSettings, sample_to_file
from shape_pipeline.sampling.privacy import SALT_REQUIRED, random_salt
from shape_pipeline.workload.spec import DEFAULT_RUNS

ASSET_KEY = dg.AssetKey(SHAPE_METRICS)
GROUP = "production_boundary"
CHECK_NAME = "export_audit"


class ShapeMetricsConfig(dg.Config):
    """Run parameters of one extraction."""

    window_days: int = Field(default=DEFAULT_WINDOW_DAYS, ge=1, description="Days in the sampling window.")
    as_of: str | None = Field(
        default=None,
        description="The window ends at 00:00 UTC of this date (YYYY-MM-DD); empty: now.",
    )
    privacy: PrivacyMode = Field(
        default=DEFAULT_PRIVACY,
        description="dp: differential privacy (OpenDP, a guarantee per user); suppression: small cells "
        "merged, maxima rounded (does not stop differencing two extractions).",
    )
    epsilon: float = Field(
        default=DEFAULT_EPSILON_PER_EXTRACTION, gt=0, description="DP: the privacy loss this extraction spends."
    )
    epsilon_budget: float = Field(
        default=DEFAULT_YEARLY_EPSILON,
        gt=0,
        description="DP: epsilon allowed over any 365 days, summed from the audit log.",
    )
    override_budget: bool = Field(default=False, description="DP: extract beyond the budget (logged).")
    max_messages_per_user: int = Field(
        default=DEFAULT_MAX_MESSAGES_PER_USER, ge=1, description="DP: messages of one user per message-level statistic."
    )
    max_conversations_per_user: int | None = Field(
        default=None,
        ge=1,
        description="DP: conversations of one user per conversation-level statistic (empty: chosen from the noisy memberships).",
    )
    min_cell_count: int = Field(
        default=DEFAULT_MIN_CELL_COUNT, ge=1, description="Suppression: counts below this are merged or suppressed."
    )
    allow_salt_reuse: bool = Field(
        default=False, description="Allow a salt an earlier extraction used (not recommended)."
    )
    force_min_cell_count: bool = Field(default=False, description="Accept a min_cell_count below 5 (not recommended).")
    workload_path: str | None = Field(
        default=None,
        description="Workload YAML whose query plans are exported (PostgreSQL); 'default': the "
        "packaged workload; empty: no plans.",
    )
    workload_runs: int = Field(default=DEFAULT_RUNS, ge=1, description="EXPLAIN ANALYZE runs per (query, rank).")


def ensure_demo_production_database(production: ProductionSource, emit) -> None:
    """Demo mode only: build the embedded fake production database when it is missing.

    The fake production comes from `chat_simulator` (which imports nothing of the project), so
    this location never imports generation code.
    """
    from shape_pipeline.demo.bootstrap import ensure_demo_production_database as ensure

    with one_line_failure():
        ensure(production.resolved_database_url(), emit)


def _salt_for_run(production: ProductionSource, emit) -> str:
    """The configured salt; in demo mode without one, a fresh random salt per run (the demo
    data is synthetic, and the salt then rotates with every extraction)."""
    if production.salt:
        return production.salt
    if production.is_demo():
        emit("[Sampler] Demo mode: no ANONYMIZATION_SALT set, using a fresh random salt for this run")
        return random_salt()
    raise dg.Failure(description=SALT_REQUIRED)


def _privacy_metadata(shape, config: ShapeMetricsConfig) -> dict[str, float | int]:
    """DP: the epsilon spent and the bounds; suppression: k."""
    dp = shape.privacy.dp if shape.privacy else None
    if dp is None:
        return {"min_cell_count": config.min_cell_count}
    return {
        "epsilon": dp.epsilon,
        "max_messages_per_user": dp.max_messages_per_user,
        "max_conversations_per_user": dp.max_conversations_per_user,
    }


@dg.asset(
    key=ASSET_KEY,
    group_name=GROUP,
    description="Aggregate-only shape of the production chat data (counts, percentiles, histograms).",
    kinds={"python", "json"},
)
def shape_metrics(
    context: dg.AssetExecutionContext, config: ShapeMetricsConfig, production: ProductionSource
) -> dg.MaterializeResult:
    emit = context.log.info
    if production.is_demo():
        ensure_demo_production_database(production, emit)
    with one_line_failure():
        result = sample_to_file(
            production.resolved_database_url(),
            output_dir=production.resolved_export_dir(),
            mapping_path=production.mapping_path,
            window_days=config.window_days,
            as_of=config.as_of or None,
            privacy=config.privacy,
            dp=DpSettings(
                epsilon=config.epsilon,
                yearly_budget=config.epsilon_budget,
                override_budget=config.override_budget or production.is_demo(),  # the demo's production is fake
                max_messages_per_user=config.max_messages_per_user,
                max_conversations_per_user=config.max_conversations_per_user,
            ),
            min_cell_count=config.min_cell_count,
            salt=_salt_for_run(production, emit),
            audit_log=production.resolved_audit_log(),
            allow_salt_reuse=config.allow_salt_reuse,
            force_min_cell_count=config.force_min_cell_count,
            statement_timeout_ms=production.statement_timeout_ms,
            emit=emit,
            workload_path=config.workload_path or None,
            workload_runs=config.workload_runs,
        )
    shape = result.shape
    totals = shape.totals
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(result.path.absolute())),
            "sha256": result.sha256,
            "users": totals.users if totals else 0,
            "conversations": totals.conversations if totals else 0,
            "messages": totals.messages if totals else 0,
            "suppressed_cells": result.suppressed_cells,
            "merged_cells": result.merged_cells,
            "privacy": config.privacy,
            **_privacy_metadata(shape, config),
            "window_start": (shape.window_start or shape.extracted_at).isoformat(),
            "window_end": (shape.window_end or shape.extracted_at).isoformat(),
            "sample_window_days": shape.sample_window_days,
            "database": result.database,
            "demo": production.is_demo(),
            "seconds": round(result.seconds, 2),
            "query_plan_pairs": result.plan_pairs,
            "physical_layout_tables": result.layout_tables,
        }
    )


@dg.asset_check(
    asset=shape_metrics,
    name=CHECK_NAME,
    blocking=True,
    description="Re-runs the export audit (contract + allow-list) on the written shape file.",
)
def export_audit_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(ASSET_KEY)
    materialization = event.asset_materialization if event else None
    if materialization is None or "path" not in materialization.metadata:
        return dg.AssetCheckResult(passed=False, description="no materialization with a file path yet")
    path = Path(str(materialization.metadata["path"].value))
    expected = materialization.metadata.get("sha256")
    try:
        audit_file(path)
    except ShapePipelineError as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc), metadata={"path": str(path)})
    actual = sha256_file(path)
    same = expected is not None and actual == expected.value
    return dg.AssetCheckResult(
        passed=same,
        description="export audit passed" if same else "file changed since it was written (sha256 differs)",
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "sha256": actual,
            "checked_at": datetime.now(UTC).isoformat(),
        },
    )


extract_production_shape = dg.define_asset_job(
    "extract_production_shape",
    selection=dg.AssetSelection.assets(shape_metrics),
    description="Extract the production shape (asset and its blocking export audit).",
)

quarterly_shape_extraction = dg.ScheduleDefinition(
    name="quarterly_shape_extraction",
    job=extract_production_shape,
    cron_schedule="0 2 1 1,4,7,10 *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="02:00 UTC on the 1st of January, April, July and October.",
)

defs = dg.Definitions(
    assets=[shape_metrics],
    asset_checks=[export_audit_check],
    jobs=[extract_production_shape],
    schedules=[quarterly_shape_extraction],
    resources={"production": production_source_from_env()},
)
