"""The production_boundary code location: materialize with its blocking check, metadata, schedule, isolation."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from shape_pipeline import settings
from shape_pipeline.audit_log import read_audit_log
from shape_pipeline.db import create_engine
from shape_pipeline.locations import production
from shape_pipeline.locations.resources import ProductionSource
from shape_pipeline_tests.sampling import dataset as ds

SALT = "location-test-salt-0123456789-abcdefghijklmnop"


@pytest.fixture(scope="module")
def prod_url(make_pg_database: Callable[[str], str]) -> str:
    url = make_pg_database("location")
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    ds.build_canonical(engine)
    engine.dispose()
    return url


def run(resource: ProductionSource, instance: dg.DagsterInstance, **config) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [production.shape_metrics, production.export_audit_check],
        resources={"production": resource},
        run_config=dg.RunConfig({"shape_metrics": production.ShapeMetricsConfig(**config)}),
        instance=instance,
        raise_on_error=False,
    )


def run_text(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> str:
    """Every log line and event message of the run, as the UI would show them."""
    return "\n".join(e.user_message or "" for e in instance.all_logs(result.run_id))


def test_location_imports_no_generation_calibration_or_fidelity_code() -> None:
    """The workload's production side (spec, explain) is allowed; its comparison is development-side."""
    code = (
        "import json, sys; import shape_pipeline.locations.production as p; "
        "assert p.defs is not None; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(("
        "'shape_pipeline.generation', 'shape_pipeline.fidelity', 'shape_pipeline.calibration', "
        "'shape_pipeline.workload.compare', 'shape_pipeline.workload.command')))), "
        "'shape_pipeline.workload.explain' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    forbidden, explain = out.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert json.loads(forbidden) == [] and explain == "True"


def test_materialize_with_blocking_check_and_clean_metadata(prod_url: str, tmp_path: Path) -> None:
    resource = ProductionSource(
        database_url=prod_url, salt=SALT, export_dir=str(tmp_path / "exchange"), audit_log=str(tmp_path / "audit.jsonl")
    )
    with dg.instance_for_test() as instance:
        result = run(
            resource, instance, as_of="2025-01-31", privacy="suppression", min_cell_count=1, force_min_cell_count=True
        )
        assert result.success
        [evaluation] = result.get_asset_check_evaluations()
        assert evaluation.passed and evaluation.check_name == production.CHECK_NAME
        [mat] = result.asset_materializations_for_node("shape_metrics")
        meta = {k: v.value for k, v in mat.metadata.items()}
        assert (meta["users"], meta["conversations"], meta["messages"]) == (12, 4, 10)
        assert meta["suppressed_cells"] == 0 and meta["min_cell_count"] == 1
        assert (meta["query_plan_pairs"], meta["physical_layout_tables"]) == (0, 4)  # no workload asked
        path = Path(meta["path"])
        assert path.parent == tmp_path / "exchange" and path.name.startswith("shape-metrics-prod-")
        logs = run_text(instance, result)
    assert "=== PRODUCTION SHAPE SAMPLING ===" in logs
    shown = json.dumps({k: str(v) for k, v in meta.items()}) + logs + path.read_text()
    for canary in ds.CANARIES:
        assert canary not in shown
    assert SALT not in shown
    assert read_audit_log(tmp_path / "audit.jsonl")[-1]["sha256"] == meta["sha256"]


def test_dp_by_default_with_epsilon_in_metadata_and_the_budget_enforced(prod_url: str, tmp_path: Path) -> None:
    resource = ProductionSource(
        database_url=prod_url, salt=SALT, export_dir=str(tmp_path / "exchange"), audit_log=str(tmp_path / "audit.jsonl")
    )
    with dg.instance_for_test() as instance:
        result = run(resource, instance, as_of="2025-01-31", epsilon=3.0, epsilon_budget=5.0, allow_salt_reuse=True)
        assert result.success
        [mat] = result.asset_materializations_for_node("shape_metrics")
        meta = {k: v.value for k, v in mat.metadata.items()}
        assert meta["privacy"] == "dp" and meta["epsilon"] == 3.0 and "min_cell_count" not in meta
        refused = run(resource, instance, as_of="2025-01-31", epsilon=3.0, epsilon_budget=5.0, allow_salt_reuse=True)
        assert not refused.success  # 3 + 3 > 5 within 365 days
        [failure] = refused.get_step_failure_events()
        assert "epsilon budget exceeded" in failure.step_failure_data.user_failure_data.description
    entries = read_audit_log(tmp_path / "audit.jsonl")
    assert [e["privacy"] for e in entries] == ["dp"] and entries[0]["epsilon"] == 3.0


def test_check_fails_when_the_written_file_no_longer_passes_the_audit(prod_url: str, tmp_path: Path) -> None:
    resource = ProductionSource(
        database_url=prod_url, salt=SALT, export_dir=str(tmp_path), audit_log=str(tmp_path / "audit.jsonl")
    )
    with dg.instance_for_test() as instance:
        assert run(resource, instance, as_of="2025-01-31").success
        path = next(tmp_path.glob("shape-metrics-prod-*.json"))
        data = json.loads(path.read_text())
        data["tool_version"] = ds.CANARY_EMAIL
        path.write_text(json.dumps(data))
        check_only = dg.materialize(
            [production.shape_metrics, production.export_audit_check],
            selection=dg.AssetSelection.checks(production.export_audit_check),
            resources={"production": resource},
            instance=instance,
            raise_on_error=False,
        )
        [evaluation] = check_only.get_asset_check_evaluations()
    assert not evaluation.passed
    assert "e-mail" in (evaluation.description or "") and ds.CANARY_EMAIL not in (evaluation.description or "")


def test_production_url_without_salt_fails_with_the_required_message(prod_url: str, tmp_path: Path) -> None:
    resource = ProductionSource(database_url=prod_url, export_dir=str(tmp_path), audit_log=str(tmp_path / "a.jsonl"))
    with dg.instance_for_test() as instance:
        result = run(resource, instance)
        assert not result.success
        [failure] = result.get_step_failure_events()
        assert failure.step_failure_data.user_failure_data.description == (
            "ANONYMIZATION_SALT environment variable required"
        )
    assert list(tmp_path.iterdir()) == []


def test_demo_mode_rotates_a_random_salt_every_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.HOME, str(tmp_path / "home"))
    db_file = Path(settings.default_prod_database_url().removeprefix("sqlite:///"))
    db_file.parent.mkdir(parents=True)
    engine = create_engine(settings.default_prod_database_url())
    ds.build_canonical(engine)
    engine.dispose()
    resource = ProductionSource()  # no URL, no salt: the demo
    assert resource.is_demo()
    with dg.instance_for_test() as instance:
        assert run(resource, instance, as_of="2025-01-31").success
        assert run(resource, instance, as_of="2025-01-31").success  # no salt-reuse refusal
    entries = read_audit_log(settings.default_audit_log())
    assert len(entries) == 2 and entries[0]["salt_fingerprint"] != entries[1]["salt_fingerprint"]
    assert len(list(settings.default_exchange_dir().glob("shape-metrics-prod-*.json"))) == 2


def test_quarterly_schedule_and_job() -> None:
    schedule = production.quarterly_shape_extraction
    assert schedule.cron_schedule == "0 2 1 1,4,7,10 *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 4, 1, 2, tzinfo=UTC)
        )
        [request] = schedule.evaluate_tick(context).run_requests
    assert schedule.job_name == "extract_production_shape"
    assert request is not None
    job = production.defs.resolve_job_def("extract_production_shape")
    assert dg.AssetKey("shape_metrics") in job.asset_layer.selected_asset_keys
    spec = production.defs.resolve_assets_def("shape_metrics").specs_by_key[dg.AssetKey("shape_metrics")]
    assert spec.group_name == "production_boundary"
