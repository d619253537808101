"""`synthetic_dataset` as Dagster partitions, on a real PostgreSQL and a temporary instance: one
run over every partition (the single-run backfill) publishes; one run per partition publishes
only in the last; the eager chain calibrate -> generate -> validate, tick by tick."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from shape_pipeline.db import create_engine
from shape_pipeline.generation.partitions import PARTITION_KEYS
from shape_pipeline.locations import calibration_assets as ca
from shape_pipeline.locations import fidelity_assets as fa
from shape_pipeline.locations import generation_assets as ga
from shape_pipeline.locations.resources import DevelopmentTarget

SEED = Path(__file__).resolve().parents[2] / "shape_pipeline" / "examples" / "shape-metrics-seed.json"
KEY = dg.AssetKey("synthetic_dataset")
ALL_PARTITIONS = {
    "dagster/asset_partition_range_start": PARTITION_KEYS[0],
    "dagster/asset_partition_range_end": PARTITION_KEYS[-1],
}
MESSAGES = 6_000


@pytest.fixture
def development(tmp_path: Path, make_pg_database) -> DevelopmentTarget:
    imports = tmp_path / "import"
    imports.mkdir()
    shape = Path(shutil.copy(SEED, imports / "shape-metrics-prod-20251022.json"))
    then = time.time() - 600
    os.utime(shape, (then, then))
    return DevelopmentTarget(
        import_dir=str(imports),
        config_dir=str(tmp_path / "configs"),
        report_dir=str(tmp_path / "reports"),
        database_url=make_pg_database("asset_parts"),
        parquet_dir=str(tmp_path / "parquet"),
    )


def _calibrate(instance: dg.DagsterInstance, development: DevelopmentTarget) -> None:
    result = dg.materialize(
        [ca.calibrated_config, ca.shape_metrics_spec],
        selection=[ca.calibrated_config.key],
        instance=instance,
        resources={"development": development},
    )
    assert result.success


def _generate(
    instance: dg.DagsterInstance,
    development: DevelopmentTarget,
    *,
    partition_key: str | None = None,
    extra: list | None = None,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [ga.synthetic_dataset, ca.shape_metrics_spec, *(extra or [])],
        selection=[KEY, *[a.key for a in extra or []]],
        instance=instance,
        resources={"development": development},
        run_config={"ops": {"synthetic_dataset": {"config": {"target_messages": MESSAGES, "seed": "parts"}}}},
        partition_key=partition_key,
        tags={} if partition_key else ALL_PARTITIONS,
        raise_on_error=False,
    )


def _messages(development: DevelopmentTarget) -> int:
    engine = create_engine(development.database_url)
    with engine.connect() as conn:
        exists = sa.inspect(conn).has_table("messages")
        count = conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one() if exists else 0
    engine.dispose()
    return count


def test_partitions_and_single_run_backfill_policy():
    assert ga.synthetic_dataset.partitions_def == ga.GENERATION_PARTITIONS
    assert ga.GENERATION_PARTITIONS.get_partition_keys() == list(PARTITION_KEYS)
    assert ga.synthetic_dataset.backfill_policy == dg.BackfillPolicy.single_run()


def test_one_run_over_every_partition_publishes_then_fidelity_report(development):
    with dg.instance_for_test() as instance:
        _calibrate(instance, development)
        result = _generate(instance, development)
        assert result.success
        events = result.asset_materializations_for_node("synthetic_dataset")
        assert sorted(e.partition for e in events) == sorted(PARTITION_KEYS)  # one run, every partition
        metadata = events[0].metadata
        assert metadata["published"].value is True
        assert metadata["partitions_staged"].value == ", ".join(PARTITION_KEYS)
        assert metadata["rows_messages"].value == MESSAGES and metadata["seed"].value == "parts"
        assert _messages(development) == MESSAGES
        assert ds.dataset(Path(development.parquet_dir) / "messages").count_rows() == MESSAGES
        report = dg.materialize(
            [fa.fidelity_report, ca.shape_metrics_spec, ga.synthetic_dataset],
            selection=[fa.fidelity_report.key],
            instance=instance,
            resources={"development": development},
            raise_on_error=False,
        )
        (materialized,) = report.asset_materializations_for_node("fidelity_report")
        assert materialized.metadata["overall_verdict"].value in ("PASS", "WARNING", "FAIL")
        assert list(Path(development.report_dir).glob("fidelity-report-*.json"))


def test_a_run_per_partition_publishes_in_the_last(development):
    with dg.instance_for_test() as instance:
        _calibrate(instance, development)
        for key in PARTITION_KEYS:
            assert _messages(development) == 0  # nothing published while a partition is missing
            result = _generate(instance, development, partition_key=key)
            assert result.success
            metadata = result.asset_materializations_for_node("synthetic_dataset")[0].metadata
            assert metadata["partitions_staged"].value == key
            assert metadata["published"].value is (key == PARTITION_KEYS[-1])
        assert _messages(development) == MESSAGES


def test_a_failure_is_one_line(development):
    target = DevelopmentTarget(
        config_dir=development.config_dir,
        database_url=development.database_url,
        production_database_url=development.database_url,
    )
    with dg.instance_for_test() as instance:
        _calibrate(instance, development)
        result = _generate(instance, target)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "is the configured production database" in failure.description


def test_eager_chain_plans_calibrate_then_every_partition_then_validate(development):
    defs = dg.Definitions.merge(ca.defs, ga.defs, fa.defs, dg.Definitions(resources={"development": development}))
    config, report = ca.calibrated_config.key, fa.fidelity_report.key
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        context = dg.build_sensor_context(instance=instance, resources={"development": development})
        for event in ca.shape_import_folder_sensor(context).asset_events:
            instance.report_runless_asset_event(event)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        # a partitioned child is not planned in the tick of its unpartitioned parent...
        assert tick.get_requested_partitions(config) == {None}
        assert tick.get_requested_partitions(KEY) == set() == tick.get_requested_partitions(report)
        _calibrate(instance, development)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        # ...but in the next one, every partition (launched as one single-run backfill)
        assert tick.get_requested_partitions(KEY) == set(PARTITION_KEYS)
        assert tick.get_requested_partitions(report) == set()
        assert _generate(instance, development).success
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert tick.get_requested_partitions(report) == {None}
        assert tick.get_requested_partitions(KEY) == set()
