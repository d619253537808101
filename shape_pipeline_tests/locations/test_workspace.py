"""Both code locations of workspace.yaml load, and together they form one lineage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml

REPO = Path(__file__).resolve().parents[2]


def validate_workspace(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """`dagster definitions validate -w workspace.yaml` in a clean environment (no SHAPE_PIPELINE_,
    salt or DAGSTER_ variables but `variables`) with a temporary DAGSTER_HOME."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SHAPE_PIPELINE_", "ANONYMIZATION_SALT", "DAGSTER_"))
    }
    env.update(DAGSTER_HOME=str(tmp_path), **variables)
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_dagster_definitions_validate_on_the_workspace_without_variables(tmp_path: Path) -> None:
    done = validate_workspace(tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Validation successful for code location production_boundary" in output
    assert "Validation successful for code location development" in output


def test_workspace_names_the_two_locations() -> None:
    entries = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    names = {e["python_module"]["location_name"]: e["python_module"]["module_name"] for e in entries}
    assert names == {
        "production_boundary": "shape_pipeline.locations.production",
        "development": "shape_pipeline.locations.development",
    }


def test_one_lineage_across_the_two_locations() -> None:
    from shape_pipeline.locations.development import defs as development
    from shape_pipeline.locations.production import defs as production

    prod_graph = production.resolve_asset_graph()
    dev_graph = development.resolve_asset_graph()
    key = dg.AssetKey
    assert prod_graph.get(key("shape_metrics")).is_materializable
    assert not dev_graph.get(key("shape_metrics")).is_materializable  # declared by key only
    assert dev_graph.get(key("calibrated_config")).parent_keys == {key("shape_metrics")}
    assert dev_graph.get(key("synthetic_dataset")).parent_keys == {key("calibrated_config")}
    assert dev_graph.get(key("fidelity_report")).parent_keys == {key("shape_metrics"), key("synthetic_dataset")}
    assert {k.to_user_string() for k in prod_graph.get_all_asset_keys()} == {"shape_metrics"}
    fidelity_checks = [c for c in dev_graph.asset_check_keys if c.asset_key == key("fidelity_report")]
    assert len(fidelity_checks) >= 4


def test_quarterly_schedule_is_on_by_default() -> None:
    from shape_pipeline.locations.production import defs as production

    schedule = production.resolve_schedule_def("quarterly_shape_extraction")
    assert schedule.cron_schedule == "0 2 1 1,4,7,10 *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
