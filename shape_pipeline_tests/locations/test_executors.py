"""The development location runs on the multiprocess, Kubernetes or Celery executor by
configuration only: `SHAPE_PIPELINE_EXECUTOR` picks the executor, `deploy/*.yaml` configures it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from shape_pipeline import settings
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.locations import development
from shape_pipeline.locations.executors import EXECUTORS, executor_from_env
from shape_pipeline_tests.locations.test_workspace import validate_workspace

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {"multiprocess": "multi_or_in_process_executor", "k8s": "k8s", "celery": "celery"}


def validate(tmp_path: Path, executor: str) -> subprocess.CompletedProcess[str]:
    return validate_workspace(tmp_path, SHAPE_PIPELINE_HOME=str(tmp_path / "home"), **{settings.EXECUTOR: executor})


@pytest.mark.parametrize("executor", ["k8s", "celery"])
def test_definitions_validate_with_each_deployment_executor(tmp_path: Path, executor: str) -> None:
    done = validate(tmp_path, executor)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "Validation successful for code location development" in done.stdout + done.stderr


def test_an_unknown_executor_fails_validation_naming_the_variable(tmp_path: Path) -> None:
    done = validate(tmp_path, "spark")
    assert done.returncode == 1
    assert f"{settings.EXECUTOR}: unknown executor 'spark'" in done.stdout + done.stderr


@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_variable_picks_the_executor_of_every_asset_job(monkeypatch: pytest.MonkeyPatch, executor: str) -> None:
    monkeypatch.setenv(settings.EXECUTOR, executor)
    job = development.definitions().resolve_implicit_global_asset_job_def()
    assert job.executor_def.name == EXPECTED[executor]


def holds(resolved: object, given: object) -> bool:
    """Every value given is in the resolved config (which adds defaults at any depth)."""
    if isinstance(given, dict):
        return isinstance(resolved, dict) and all(k in resolved and holds(resolved[k], v) for k, v in given.items())
    return resolved == given


@pytest.mark.parametrize("executor", ["k8s", "celery"])
def test_the_deploy_run_config_is_valid_for_its_executor(monkeypatch: pytest.MonkeyPatch, executor: str) -> None:
    monkeypatch.setenv(settings.EXECUTOR, executor)
    job = development.definitions().resolve_implicit_global_asset_job_def()
    run_config = yaml.safe_load((REPO / "deploy" / f"{executor}.yaml").read_text())
    validated = dg.validate_run_config(job, run_config)["execution"]
    given = run_config["execution"]["config"]
    assert list(validated) == [executor]  # resolved under the executor's name, defaults filled
    assert holds(validated[executor], given)
    other = "celery" if executor == "k8s" else "k8s"
    with pytest.raises(dg.DagsterInvalidConfigError):  # each file is for its own executor
        dg.validate_run_config(job, yaml.safe_load((REPO / "deploy" / f"{other}.yaml").read_text()))


def test_a_missing_integration_library_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.EXECUTOR, "k8s")
    monkeypatch.setitem(sys.modules, "dagster_k8s", None)  # as if the extra were not installed
    with pytest.raises(
        ShapePipelineError, match=r"dagster_k8s is not installed \(pip install 'shape-pipeline\[k8s\]'\)"
    ):
        executor_from_env()


def test_integration_libraries_pair_with_the_pinned_core() -> None:
    """dagster, dagster-webserver and dagster-graphql pinned to one 1.13.Y; every integration
    library (0.29.Z) pinned with Z == Y, in the dependencies and in every extra."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = [*project["dependencies"], *(p for extra in project["optional-dependencies"].values() for p in extra)]
    dagster = dict(p.split("==") for p in pins if p.startswith("dagster"))
    core = {dagster[name] for name in ("dagster", "dagster-webserver", "dagster-graphql")}
    assert len(core) == 1 and next(iter(core)).startswith("1.13."), dagster
    patch = next(iter(core)).split(".")[2]
    integrations = {name: version for name, version in dagster.items() if version.startswith("0.")}
    assert {"dagster-k8s", "dagster-celery"} <= set(integrations)
    assert all(version == f"0.29.{patch}" for version in integrations.values()), integrations
