"""Dagster: the `synthetic_dataset` asset (calibrated config -> dev database and Parquet), partitioned
by generation partition (generation/partitions.py) and published all or nothing."""

from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from shape_pipeline import db
from shape_pipeline.contracts import CalibratedConfig
from shape_pipeline.conventions import CALIBRATED_CONFIG, CONFIG_GLOB, SYNTHETIC_DATASET
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.files import load_json_model, newest_file
from shape_pipeline.generation.bands import BAND_NAMES, BANDS_HELP, DEFAULT_BAND, band_messages
from shape_pipeline.generation.columns import ENTITIES
from shape_pipeline.generation.generate import GenerationResult, PartitionedGeneration
from shape_pipeline.generation.partitions import PARTITION_KEYS
from shape_pipeline.generation.seeds import DEFAULT_SEED
from shape_pipeline.locations.failures import one_line_failure
from shape_pipeline.locations.resources import DevelopmentTarget


class GenerationConfig(dg.Config):
    """Run parameters of `synthetic_dataset` (shown in the launchpad)."""

    # Literal[BAND_NAMES] is Literal["dev", "pilot", "perf"]: the launchpad shows the choices
    band: Literal[BAND_NAMES] = Field(default=DEFAULT_BAND, description=BANDS_HELP)  # type: ignore[valid-type]
    target_messages: int | None = Field(default=None, ge=1, description="exact number of messages (overrides band)")
    seed: str = Field(default=DEFAULT_SEED, description="any text; same seed, same rows")
    replace: bool = Field(
        default=True, description="empty the target tables first (the dev database is the pipeline's)"
    )
    workers: int = Field(
        default=1, ge=1, description="processes generating shards in parallel (same rows for any number)"
    )


def result_metadata(result: GenerationResult) -> dict[str, Any]:
    """Rows per table, seed, wall time, speed, target and (redacted) destinations."""
    metadata: dict[str, Any] = {f"rows_{name}": count for name, count in result.rows.items()}
    metadata.update(
        {
            "seed": result.seed,
            "target_messages": result.target_messages,
            "wall_time_seconds": round(result.seconds, 2),
            "rows_per_second": round(result.rows_per_second),
            "messages_per_second": round(result.messages_per_second),
            "destinations": ", ".join(result.destinations),
            "warnings": "\n".join(result.warnings) or "none",
        }
    )
    metadata.update({f"share_moved_{key}": round(share, 6) for key, share in result.moved_shares.items()})
    return metadata


GENERATION_PARTITIONS = dg.StaticPartitionsDefinition(list(PARTITION_KEYS))


@dg.asset(
    name=SYNTHETIC_DATASET,
    deps=[CALIBRATED_CONFIG],
    group_name="development",
    automation_condition=dg.AutomationCondition.eager(),
    partitions_def=GENERATION_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="Production-shaped synthetic users, conversations, members and messages, generated "
    "as partitions (users, then conversation shard ranges) staged apart from the application's tables, "
    "then published into the development database (one transaction) and the Parquet folder if "
    "configured, once every partition is staged. A backfill of all partitions is one run.",
)
def synthetic_dataset(
    context: dg.AssetExecutionContext, config: GenerationConfig, development: DevelopmentTarget
) -> dg.MaterializeResult:
    """Stage this run's partitions; publish if every partition of this plan is now staged (a
    single-run backfill: this run; a run per partition: the last one to finish)."""
    with one_line_failure():
        folder = development.resolved_config_dir()
        path = newest_file(folder, CONFIG_GLOB)
        if path is None:
            raise ShapePipelineError(f"No such file or directory: {folder}/{CONFIG_GLOB} (calibrated config)")
        calibrated = load_json_model(path, CalibratedConfig, what="calibrated config")
        target = config.target_messages or band_messages(config.band)
        url = development.resolved_database_url()
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        keys = list(context.partition_keys)
        context.log.info(
            f"Config: {path.name}; target: {target:,} messages; partitions {', '.join(keys)}; into {db.redact(url)}"
        )
        with PartitionedGeneration(
            calibrated,
            target_messages=target,
            seed=config.seed,
            database_url=url,
            mapping_path=development.mapping_path,
            replace=config.replace,
            parquet_dir=development.resolved_parquet_dir(),
            production_url=development.production_database_url,
            emit=context.log.info,
        ) as generation:
            staged = generation.stage(keys, workers=config.workers)
            missing = generation.missing()
            result = generation.publish() if not missing else None
    rows = {name: sum(r.get(name, 0) for r in staged.rows.values()) for name in ENTITIES}
    metadata: dict[str, Any] = {f"staged_rows_{name}": count for name, count in rows.items()}
    metadata.update(
        {
            "seed": config.seed,
            "target_messages": target,
            "partitions_staged": ", ".join(staged.rows),
            "partitions_missing": ", ".join(missing) or "none",
            "published": result is not None,
            "staging_seconds": round(staged.seconds, 2),
            "fingerprint": generation.fingerprint[:16],
            "config_file": path.name,
        }
    )
    if result is not None:
        result.seconds += staged.seconds  # this run's staging and the publish
        metadata.update(result_metadata(result))
    elif missing:
        context.log.info(f"Not published yet: waiting for partition(s) {', '.join(missing)}")
    else:
        context.log.info("Already published by another run")
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[synthetic_dataset])
