"""`fidelity_report` in Dagster: blocking checks per test, metadata, and alerts end to end.

A failing dataset is materialized in process; the alert sensors are then evaluated against the
same instance and deliver through apprise to a local HTTP server (`json://127.0.0.1:PORT`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import pytest

from shape_pipeline.calibration.calibrate import calibrate
from shape_pipeline.contracts import ShapeMetrics
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.fidelity.comparisons import TEST_KEYS
from shape_pipeline.files import write_model_atomic
from shape_pipeline.locations import fidelity_alerts
from shape_pipeline.locations import fidelity_assets as fa
from shape_pipeline.locations.resources import DevelopmentTarget
from shape_pipeline.workload.spec import default_workload_path
from shape_pipeline_tests.fidelity.conftest import FAITHFUL_SEED, shape_of
from shape_pipeline_tests.fidelity.plan_worlds import load_world, phase_two_shape
from shape_pipeline_tests.fidelity.world import Knobs, draw, to_parquet


@pytest.fixture(scope="module")
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A local HTTP server that records every JSON body POSTed to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_address[1]}/fidelity", received
    server.shutdown()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("dev")
    production = to_parquet(draw(Knobs(seed=1)), base / "production")
    shape = shape_of(production)
    imports = base / "imports"
    write_model_atomic(imports / "shape-metrics-prod-20251022.json", shape)
    return {
        "imports": imports,
        "configs": base / "configs",
        "reports": base / "reports",
        "failing": to_parquet(draw(Knobs(seed=FAITHFUL_SEED, tail_factor=2.5)), base / "failing"),
        "warning": to_parquet(draw(Knobs(seed=2)), base / "warning"),
    }


def _target(folders: dict[str, Path], dataset: str, alert_urls: str | None = None) -> DevelopmentTarget:
    return DevelopmentTarget(
        parquet_dir=str(folders[dataset]),
        import_dir=str(folders["imports"]),
        config_dir=str(folders["configs"]),
        report_dir=str(folders["reports"]),
        alert_urls=alert_urls,
    )


def _materialize(instance: dg.DagsterInstance, target: DevelopmentTarget) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [fa.fidelity_report], instance=instance, resources={"development": target}, raise_on_error=False
    )


def test_a_failing_dataset_fails_the_run_and_alerts_once(
    folders: dict[str, Path], webhook: tuple[str, list[dict]]
) -> None:
    url, received = webhook
    received.clear()
    target = _target(folders, "failing", url)
    instance = dg.DagsterInstance.ephemeral()
    res = _materialize(instance, target)

    assert not res.success  # a blocking ERROR check fails the run...
    evaluations = {e.check_name: e for e in res.get_asset_check_evaluations()}
    assert set(evaluations) == set(TEST_KEYS)
    failing = evaluations["messages_per_conversation"]
    assert not failing.passed and failing.severity == dg.AssetCheckSeverity.ERROR
    assert failing.metadata["statistic"].value == "max_percentile_error"
    assert failing.metadata["tolerance"].value == pytest.approx(0.15)
    assert failing.metadata["effect_size"].value > 0.15
    assert evaluations["content_length"].passed
    # ...but the asset itself is materialized, with the table of tests and the HTML path
    mats = res.asset_materializations_for_node("fidelity_report")
    assert len(mats) == 1
    md = mats[0].metadata
    assert "| 2 | messages_per_conversation | FAIL |" in md["tests"].value
    assert Path(md["html_report"].value).is_file() and Path(md["json_report"].value).is_file()
    assert md["overall_verdict"].value == "FAIL"

    def evaluate() -> object:
        context = dg.build_run_status_sensor_context(
            sensor_name="fidelity_failure_alerts",
            dagster_instance=instance,
            dagster_run=res.dagster_run,
            dagster_event=res.get_run_failure_event(),
            resources={"development": target},
        ).for_run_failure()
        return fidelity_alerts.fidelity_failure_alerts(context)

    assert evaluate() is None
    assert len(received) == 1
    message = received[0]
    assert "Fidelity FAIL" in message["title"]
    assert "messages_per_conversation [ERROR] FAIL: max_percentile_error" in message["message"]
    assert "-> messages_per_conversation p9" in message["message"]  # the recommendation
    assert md["html_report"].value in message["message"]
    assert isinstance(evaluate(), dg.SkipReason)  # the same run never alerts twice
    assert len(received) == 1


def test_a_warning_keeps_the_run_green_and_still_alerts(
    folders: dict[str, Path], webhook: tuple[str, list[dict]]
) -> None:
    url, received = webhook
    received.clear()
    target = _target(folders, "warning", url)
    instance = dg.DagsterInstance.ephemeral()
    res = _materialize(instance, target)
    assert res.success
    warned = [e for e in res.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in warned] == ["message_types"]
    assert warned[0].severity == dg.AssetCheckSeverity.WARN
    context = dg.build_run_status_sensor_context(
        sensor_name="fidelity_warning_alerts",
        dagster_instance=instance,
        dagster_run=res.dagster_run,
        dagster_event=res.get_run_success_event(),
        resources={"development": target},
    )
    assert fidelity_alerts.fidelity_warning_alerts(context) is None
    assert len(received) == 1
    assert "Fidelity WARNING" in received[0]["title"]
    assert "message_types [WARN] WARNING" in received[0]["message"]


def test_the_shape_comes_from_the_newest_config(folders: dict[str, Path], tmp_path: Path) -> None:
    target = _target(folders, "warning")
    shape_path = folders["imports"] / "shape-metrics-prod-20251022.json"
    assert fa.find_inputs(target) == (shape_path, None)
    # a config names the shape it was calibrated from; that shape wins over a newer one
    imports = tmp_path / "imports"
    imports.mkdir()
    other = imports / "shape-metrics-prod-20250701.json"
    other.write_bytes(shape_path.read_bytes())
    (imports / "shape-metrics-prod-20251022.json").write_bytes(shape_path.read_bytes())
    config = calibrate(ShapeMetrics.model_validate_json(shape_path.read_text()), source_path=other)
    configs = tmp_path / "configs"
    write_model_atomic(configs / "calibrated-config-20251022.json", config)
    chosen = target.model_copy(update={"config_dir": str(configs), "import_dir": str(imports)})
    assert fa.find_inputs(chosen) == (other, configs / "calibrated-config-20251022.json")
    empty = target.model_copy(update={"import_dir": str(tmp_path / "none"), "config_dir": str(tmp_path / "none")})
    with pytest.raises(ShapePipelineError, match="no shape file"):
        fa.find_inputs(empty)


def test_definitions_load_with_the_area_definitions() -> None:
    defs = dg.Definitions.merge(
        fa.defs, fidelity_alerts.defs, dg.Definitions(resources={"development": DevelopmentTarget()})
    )
    node = defs.resolve_asset_graph().get(dg.AssetKey("fidelity_report"))
    assert node.group_name == "development"
    assert {k.to_user_string() for k in node.parent_keys} == {"shape_metrics", "synthetic_dataset"}
    assert node.automation_condition is not None
    specs = list(fa.fidelity_report.check_specs)
    assert len(specs) == len(TEST_KEYS) and all(s.blocking for s in specs)
    for name in ("fidelity_warning_alerts", "fidelity_failure_alerts"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING


def test_the_phase_two_checks_and_config_reach_the_validator(
    make_pg_database: Callable[[str], str], tmp_path: Path
) -> None:
    """Both Phase 2 keys are checks; the run config's factor and workload reach the report."""
    specs = {s.name for s in fa.fidelity_report.check_specs}
    assert {"physical_layout", "query_plans"} <= specs
    assert fa.FidelityRunConfig().plan_log2_ratio == 0.5 and fa.FidelityRunConfig().workload_path is None

    production = load_world(make_pg_database, "assets_prod", "assets-prod", messages=8_000)
    synthetic = load_world(make_pg_database, "assets_syn", "assets-syn", messages=8_000)
    imports, reports = tmp_path / "imports", tmp_path / "reports"
    write_model_atomic(imports / "shape-metrics-prod-20250602.json", phase_two_shape(production))
    target = DevelopmentTarget(
        database_url=synthetic, import_dir=str(imports), config_dir=str(tmp_path / "configs"), report_dir=str(reports)
    )
    config = {
        "ops": {"fidelity_report": {"config": {"plan_log2_ratio": 3.0, "workload_path": str(default_workload_path())}}}
    }
    res = dg.materialize(
        [fa.fidelity_report],
        instance=dg.DagsterInstance.ephemeral(),
        resources={"development": target},
        run_config=config,
        raise_on_error=False,
    )
    evaluations = {e.check_name: e for e in res.get_asset_check_evaluations()}
    assert evaluations["query_plans"].metadata["statistic"].value == "share_of_plans_differing"
    assert evaluations["physical_layout"].metadata["verdict"].value in ("PASS", "WARNING", "FAIL")
    report = json.loads(next(reports.glob("fidelity-report-*.json")).read_text())
    assert report["tests"]["query_plans"]["synthetic"]["max_log2_ratio"] == 3.0

    bad = tmp_path / "other.yaml"
    bad.write_text(default_workload_path().read_text().replace("LIMIT 50", "LIMIT 40"))
    config["ops"]["fidelity_report"]["config"]["workload_path"] = str(bad)
    failed = dg.materialize(
        [fa.fidelity_report],
        instance=dg.DagsterInstance.ephemeral(),
        resources={"development": target},
        run_config=config,
        raise_on_error=False,
    )
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    assert str(bad) in failure.event_specific_data.error.message
