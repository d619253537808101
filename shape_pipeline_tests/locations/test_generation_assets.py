"""The `synthetic_dataset` asset on a real PostgreSQL and a temporary Dagster instance."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from shape_pipeline.db import create_engine
from shape_pipeline.files import write_model_atomic
from shape_pipeline.generation.partitions import PARTITION_KEYS
from shape_pipeline.locations import generation_assets as ga
from shape_pipeline.locations.resources import DevelopmentTarget
from shape_pipeline_tests.generation.conftest import make_config


@pytest.fixture
def development(tmp_path: Path, make_pg_database) -> DevelopmentTarget:
    configs = tmp_path / "configs"
    old = write_model_atomic(configs / "calibrated-config-20250101.json", make_config())
    os.utime(old, (1, 1))
    write_model_atomic(configs / "calibrated-config-20251022.json", make_config())
    return DevelopmentTarget(
        config_dir=str(configs),
        database_url=make_pg_database("asset"),
        parquet_dir=str(tmp_path / "parquet"),
    )


ALL_PARTITIONS = {  # a single-run backfill of every partition: one run, the whole range
    "dagster/asset_partition_range_start": PARTITION_KEYS[0],
    "dagster/asset_partition_range_end": PARTITION_KEYS[-1],
}


def materialize(development: DevelopmentTarget, **config):
    with dg.instance_for_test() as instance:
        return dg.materialize(
            ga.defs.assets,
            instance=instance,
            resources={"development": development},
            run_config={"ops": {"synthetic_dataset": {"config": config}}},
            tags=ALL_PARTITIONS,
            raise_on_error=False,
        )


def failure(result) -> str:
    """The step failure with its cause (the user's error line)."""
    return result.get_step_failure_events()[0].event_specific_data.error.to_string()


def test_asset_definition():
    spec = ga.synthetic_dataset
    key = dg.AssetKey("synthetic_dataset")
    assert spec.group_names_by_key[key] == "development"
    assert dg.AssetKey("calibrated_config") in spec.asset_deps[key]
    assert spec.automation_conditions_by_key[key] is not None
    assert list(ga.defs.assets or []) == [ga.synthetic_dataset]
    assert not (ga.defs.asset_checks or ga.defs.sensors or ga.defs.jobs or ga.defs.schedules)
    assert ga.GenerationConfig().band == "dev" and ga.GenerationConfig().replace is True


def test_materializes_into_the_dev_database_and_parquet_twice(development):
    for _ in range(2):  # replace=True by default: the second run empties and reloads
        result = materialize(development, target_messages=4000, seed="asset-seed")
        assert result.success
    metadata = result.asset_materializations_for_node("synthetic_dataset")[0].metadata
    assert metadata["rows_messages"].value == 4000
    assert metadata["seed"].value == "asset-seed"
    assert metadata["target_messages"].value == 4000
    assert metadata["rows_per_second"].value > 0 and metadata["wall_time_seconds"].value > 0
    assert metadata["config_file"].value == "calibrated-config-20251022.json"
    engine = create_engine(development.database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one() == 4000
    engine.dispose()
    assert ds.dataset(Path(development.parquet_dir) / "messages").count_rows() == 4000
    assert "postgres@" in metadata["destinations"].value


def test_refuses_the_production_database_and_leaks_no_password(development):
    url = development.database_url
    with_password = url.replace("postgres@", "postgres:s3cret@")
    target = DevelopmentTarget(
        config_dir=development.config_dir, database_url=with_password, production_database_url=url
    )
    result = materialize(target, target_messages=1000)
    assert not result.success
    text = failure(result)
    assert "is the configured production database" in text and "s3cret" not in text


def test_missing_config_is_a_clear_failure(tmp_path, make_pg_database):
    target = DevelopmentTarget(config_dir=str(tmp_path / "none"), database_url=make_pg_database("asset_none"))
    result = materialize(target, target_messages=1000)
    assert not result.success
    assert "No such file or directory" in failure(result) and "calibrated-config-*.json" in failure(result)
