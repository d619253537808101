"""The `calibrated_config` asset and both paths by which a new shape starts calibration, on a
real temporary Dagster instance: the production location materializing `shape_metrics` in the
same instance, and a file copied into the import folder from a boundary with its own instance.
Together they must start one calibration, never two."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from shape_pipeline.contracts import CalibratedConfig
from shape_pipeline.files import load_json_model, sha256_file
from shape_pipeline.locations import calibration_assets as ca
from shape_pipeline.locations.resources import DevelopmentTarget

SEED = Path(__file__).resolve().parents[2] / "shape_pipeline" / "examples" / "shape-metrics-seed.json"
CONFIG = dg.AssetKey("calibrated_config")


@pytest.fixture
def development(tmp_path: Path) -> DevelopmentTarget:
    return DevelopmentTarget(import_dir=str(tmp_path / "import"), config_dir=str(tmp_path / "configs"))


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


# stand-ins for the other areas' assets, to see the eager chain planned in one tick
@dg.asset(deps=[CONFIG], group_name="development", automation_condition=dg.AutomationCondition.eager())
def synthetic_dataset() -> None: ...


@dg.asset(
    deps=[synthetic_dataset],
    group_name="development",
    automation_condition=dg.AutomationCondition.eager(),
)
def fidelity_report() -> None: ...


def _defs(development: DevelopmentTarget, *extra: dg.AssetsDefinition) -> dg.Definitions:
    return dg.Definitions(
        assets=[*ca.defs.assets, *extra], sensors=ca.defs.sensors, resources={"development": development}
    )


def _drop_shape(
    development: DevelopmentTarget,
    name: str = "shape-metrics-prod-20251022.json",
    *,
    age: float = 600,
) -> Path:
    """Copy the seed shape into the import folder, `age` seconds old (past the settle time)."""
    folder = development.resolved_import_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(shutil.copy(SEED, folder / name))
    _age(path, age)
    return path


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _tick(
    instance: dg.DagsterInstance, development: DevelopmentTarget, cursor: str | None
) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"development": development})
    result = ca.shape_import_folder_sensor(context)
    for event in getattr(result, "asset_events", None) or []:
        instance.report_runless_asset_event(event)  # what the sensor daemon does with them
    return result


def _materialize(instance: dg.DagsterInstance, development: DevelopmentTarget) -> dg.ExecuteInJobResult:
    return dg.materialize(
        [ca.calibrated_config, ca.shape_metrics_spec],
        selection=[CONFIG],
        instance=instance,
        resources={"development": development},
        raise_on_error=False,
    )


def test_definitions_declare_the_boundary_and_run_by_default(
    development: DevelopmentTarget,
) -> None:
    defs = _defs(development)
    graph = defs.resolve_asset_graph()
    node = graph.get(CONFIG)
    assert node.parent_keys == {ca.SHAPE_KEY}
    assert node.group_name == "development"
    assert node.automation_condition is not None and "eager" in node.automation_condition.get_label()
    assert not graph.get(ca.SHAPE_KEY).is_materializable
    assert graph.get(ca.SHAPE_KEY).group_name == "production_boundary"
    statuses = {s.name: s.default_status for s in ca.defs.sensors}
    assert set(statuses.values()) == {dg.DefaultSensorStatus.RUNNING}
    assert isinstance(ca.development_automation_sensor, dg.AutomationConditionSensorDefinition)
    chain = _defs(development, synthetic_dataset, fidelity_report)
    covered = ca.development_automation_sensor.asset_selection.resolve(chain.resolve_asset_graph())
    assert covered == {CONFIG, synthetic_dataset.key, fidelity_report.key}
    names = {s.name for s in chain.get_repository_def().sensor_defs}
    assert "default_automation_condition_sensor" not in names  # no second planner
    assert not (ca.defs.asset_checks or ca.defs.jobs or ca.defs.schedules)


def test_asset_calibrates_the_newest_shape(development: DevelopmentTarget, instance: dg.DagsterInstance) -> None:
    old = _drop_shape(development, "shape-metrics-prod-20250101.json")
    data = json.loads(old.read_text())
    data["conversations"]["type_distribution"] = {"DIRECT_MESSAGE": 1, "GROUP_CHAT": 1}
    old.write_text(json.dumps(data))
    os.utime(old, (1_000_000_000, 1_000_000_000))
    newest = _drop_shape(development)
    result = _materialize(instance, development)
    assert result.success
    meta = result.asset_materializations_for_node("calibrated_config")[0].metadata
    path = Path(meta["path"].value)
    assert path.parent == development.resolved_config_dir()
    assert path.name.startswith("calibrated-config-") and path.name.endswith(".json")
    config = load_json_model(path, CalibratedConfig, what="calibrated config")
    assert config.conversation_generation.type_distribution["DIRECT_MESSAGE"] == 0.78125  # newest file
    assert meta["shape_sha256"].value == sha256_file(newest)
    table = meta["fit_errors"].value
    rows = [r.data for r in table.records]
    assert {"model", "metric", "target", "fitted", "relative_error", "within_goal"} <= set(rows[0])
    assert any(r["model"] == "messages_per_conversation" and r["metric"] == "p99" for r in rows)
    params = meta["fitted_parameters"].value
    assert params["messages_per_conversation"]["alpha"] == pytest.approx(2.1275, abs=1e-3)
    assert meta["warning_count"].value == len(config.calibration_metadata.warnings) > 0
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == ca.FIT_CHECK and check.passed
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # atomic: no temporary left


def test_asset_without_a_shape_fails_with_the_folder_named(
    development: DevelopmentTarget, instance: dg.DagsterInstance
) -> None:
    result = _materialize(instance, development)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert str(development.resolved_import_dir()) in failure.description
    assert not development.resolved_config_dir().exists()


def test_separate_instance_path_folder_sensor_then_eager(
    development: DevelopmentTarget, instance: dg.DagsterInstance
) -> None:
    defs = _defs(development, synthetic_dataset, fidelity_report)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0  # no shape yet: nothing to calibrate
    assert isinstance(_tick(instance, development, None), dg.SkipReason)

    shape = _drop_shape(development)
    reported = _tick(instance, development, None)
    assert isinstance(reported, dg.SensorResult) and len(reported.asset_events) == 1
    assert ca.latest_shape_sha256(instance) == sha256_file(shape)

    planned = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    chain = (CONFIG, synthetic_dataset.key, fidelity_report.key)
    # one tick plans the whole chain: calibrate -> generate -> validate
    assert all(planned.get_requested_partitions(key) == {None} for key in chain)
    assert _materialize(instance, development).success

    # the same file again, even touched, is not a new shape
    assert isinstance(_tick(instance, development, reported.cursor), dg.SkipReason)
    _age(shape, 300)
    touched = _tick(instance, development, reported.cursor)
    assert isinstance(touched, dg.SensorResult) and not touched.asset_events
    # new content is
    data = json.loads(shape.read_text())
    data["sample_window_days"] = 31
    shape.write_text(json.dumps(data))
    settling = _tick(instance, development, touched.cursor)
    assert isinstance(settling, dg.SkipReason) and "settle" in settling.skip_message
    _age(shape, 120)
    changed = _tick(instance, development, touched.cursor)
    assert isinstance(changed, dg.SensorResult) and len(changed.asset_events) == 1


def test_same_instance_path_starts_exactly_one_calibration(
    development: DevelopmentTarget, instance: dg.DagsterInstance
) -> None:
    shape = _drop_shape(development)  # the production location writes into the shared folder

    @dg.asset(key=ca.SHAPE_KEY, group_name="production_boundary")
    def production_shape_metrics() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"path": str(shape), "sha256": sha256_file(shape)})

    defs = _defs(development)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert dg.materialize([production_shape_metrics], instance=instance).success

    silent = _tick(instance, development, None)  # the folder sensor sees the same file
    assert isinstance(silent, dg.SensorResult) and not silent.asset_events
    assert "already materialized" in str(silent.skip_reason)

    planned = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert planned.get_requested_partitions(CONFIG) == {None}
    assert _materialize(instance, development).success
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=planned.cursor)
    assert after.total_requested == 0
    assert isinstance(_tick(instance, development, silent.cursor), dg.SkipReason)
    events = instance.fetch_materializations(ca.SHAPE_KEY, limit=10).records
    assert len(events) == 1  # the sensor added no second shape_metrics event
