"""What a user does in the Dagster UI, through the real webserver, daemon and a real browser.

1. Both code locations load; the lineage runs shape_metrics (production_boundary) ->
   calibrated_config -> synthetic_dataset -> fidelity_report (development), checks attached.
2. Launching the production extraction through GraphQL makes the development side calibrate,
   generate and validate by itself (automation), ending in a fidelity verdict.
3. Headless Chromium (Debian's chromium + chromedriver) clicks "Materialize all" on the
   development assets and waits for the run to end as its verdict says; a screenshot is saved.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from shape_pipeline.generation.partitions import PARTITION_KEYS
from shape_pipeline_tests.e2e.conftest import DagsterStack

pytestmark = pytest.mark.e2e

DEV_ASSETS = ["calibrated_config", "synthetic_dataset", "fidelity_report"]
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}

LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name
    locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""

ASSET_NODES = """
query($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) {
  assetKey { path }
  repository { location { name } }
  isMaterializable
  dependencyKeys { path }
  assetChecksOrError { ... on AssetChecks { checks {
      name blocking
      executionForLatestMaterialization { status evaluation { success severity } }
  } } }
  assetMaterializations(limit: 1) { runId metadataEntries {
      label ... on TextMetadataEntry { text } ... on PathMetadataEntry { path }
  } }
} }
"""

RUNS = """
{ runsOrError(limit: 50) { ... on Runs { results {
  runId status jobName assetSelection { path } tags { key value }
} } } }
"""


def client(stack: DagsterStack) -> DagsterGraphQLClient:
    return DagsterGraphQLClient("127.0.0.1", port_number=stack.port, timeout=120)


def wait_for_run(stack: DagsterStack, run_id: str, timeout: float = 900) -> DagsterRunStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client(stack).get_run_status(run_id)
        if status in FINISHED:
            return status
        time.sleep(2)
    pytest.fail(f"run {run_id} did not finish in {timeout:.0f}s", pytrace=False)


def runs_selecting(stack: DagsterStack, asset: str) -> list[dict]:
    results = stack.graphql(RUNS)["runsOrError"]["results"]
    return [r for r in results if [asset] in [a["path"] for a in (r["assetSelection"] or [])]]


def asset_nodes(stack: DagsterStack, names: list[str]) -> dict[str, dict]:
    data = stack.graphql(ASSET_NODES, {"keys": [{"path": [n]} for n in names]})
    return {node["assetKey"]["path"][0]: node for node in data["assetNodes"]}


def metadata(node: dict) -> dict[str, str]:
    [latest] = node["assetMaterializations"]
    return {e["label"]: e.get("text") or e.get("path") for e in latest["metadataEntries"]}


def ensure_shape_extracted(stack: DagsterStack) -> None:
    if list((stack.shape_home / "exchange").glob("shape-metrics-prod-*.json")):
        return
    run_id = client(stack).submit_job_execution(
        "extract_production_shape", repository_location_name="production_boundary"
    )
    assert wait_for_run(stack, run_id) == DagsterRunStatus.SUCCESS, (stack.logs / "daemon.log").read_text()[-3000:]


def test_both_locations_load_with_one_lineage(dagster_stack: DagsterStack) -> None:
    entries = dagster_stack.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
    loaded = {e["name"]: e["locationOrLoadError"] for e in entries}
    assert set(loaded) == {"production_boundary", "development"}
    for name, state in loaded.items():
        assert state["__typename"] == "RepositoryLocation", f"{name}: {state}"

    nodes = asset_nodes(dagster_stack, ["shape_metrics", *DEV_ASSETS])
    assert nodes["shape_metrics"]["isMaterializable"]
    assert nodes["shape_metrics"]["repository"]["location"]["name"] == "production_boundary"
    upstream = {name: {tuple(k["path"]) for k in node["dependencyKeys"]} for name, node in nodes.items()}
    assert ("shape_metrics",) in upstream["calibrated_config"]
    assert ("calibrated_config",) in upstream["synthetic_dataset"]
    assert {("shape_metrics",), ("synthetic_dataset",)} <= upstream["fidelity_report"]
    for name in DEV_ASSETS:
        assert nodes[name]["repository"]["location"]["name"] == "development"
    assert nodes["shape_metrics"]["assetChecksOrError"]["checks"], "shape_metrics has its export audit check"
    assert len(nodes["fidelity_report"]["assetChecksOrError"]["checks"]) >= 4


def test_production_extraction_triggers_calibrate_generate_validate(dagster_stack: DagsterStack) -> None:
    ensure_shape_extracted(dagster_stack)
    shapes = list((dagster_stack.shape_home / "exchange").glob("shape-metrics-prod-*.json"))
    assert len(shapes) == 1

    # The development side reacts by itself (automation condition sensor in the daemon):
    # calibrated_config, then every synthetic_dataset partition in one backfill run (single-run
    # backfill policy: a partitioned asset cannot share a run with its unpartitioned parent),
    # then fidelity_report.
    deadline = time.monotonic() + 900
    finished: list[dict] = []
    while time.monotonic() < deadline and not finished:
        finished = [
            r for r in runs_selecting(dagster_stack, "fidelity_report") if DagsterRunStatus(r["status"]) in FINISHED
        ]
        time.sleep(3)
    assert finished, (
        "no automatic calibrate -> generate -> validate runs:\n"
        + (dagster_stack.logs / "daemon.log").read_text()[-3000:]
    )
    runs = {name: runs_selecting(dagster_stack, name) for name in DEV_ASSETS}
    for name in DEV_ASSETS:
        assert runs[name] and all(tags(r).get("dagster/from_automation_condition") == "true" for r in runs[name]), name
    assert [r["status"] for r in runs["calibrated_config"]] == ["SUCCESS"]
    [generation] = runs["synthetic_dataset"]
    assert generation["status"] == "SUCCESS" and "dagster/backfill" in tags(generation)
    assert (
        tags(generation)["dagster/asset_partition_range_start"],
        tags(generation)["dagster/asset_partition_range_end"],
    ) == (
        PARTITION_KEYS[0],
        PARTITION_KEYS[-1],
    )
    verdict = assert_run_matches_verdict(dagster_stack, finished[0])
    assert verdict in {"PASS", "WARNING", "FAIL"}


def tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


def assert_run_matches_verdict(stack: DagsterStack, run: dict) -> str:
    """The run ends as its verdict says: SUCCESS on PASS or WARNING; on FAIL the report is still
    written and materialized, and a blocking ERROR check fails the run (that is the alert).

    The demo's production is an independent simulated world, so its verdict is whatever the
    generator achieves on it; this checks that Dagster carries that verdict faithfully.
    """
    nodes = asset_nodes(stack, ["calibrated_config", "fidelity_report"])
    assert nodes["fidelity_report"]["assetMaterializations"][0]["runId"] == run["runId"]
    report = metadata(nodes["fidelity_report"])
    verdict = report["overall_verdict"]
    assert Path(report["html_report"]).is_file()
    checks = nodes["fidelity_report"]["assetChecksOrError"]["checks"]
    executed = [c["executionForLatestMaterialization"] for c in checks if c["executionForLatestMaterialization"]]
    assert len(executed) == len(checks)
    failed_errors = [
        e
        for e in executed
        if e["evaluation"] and not e["evaluation"]["success"] and e["evaluation"]["severity"] == "ERROR"
    ]
    if verdict == "FAIL":
        assert run["status"] == "FAILURE" and failed_errors
    else:
        assert run["status"] == "SUCCESS" and not failed_errors
    return verdict


def click_when_unobstructed(driver, wait, xpath: str, folder: Path, attempts: int = 5) -> None:
    """Click a button once no dialog or backdrop covers it (screenshot before clicking).

    The UI may open an overlay (a toast, a dialog) while it loads; Escape closes it.
    """
    from selenium.common.exceptions import ElementClickInterceptedException, TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def dismiss(name: str) -> None:
        driver.save_screenshot(str(folder / f"{name}.png"))
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        time.sleep(2)

    for attempt in range(attempts):
        button = wait.until(ec.element_to_be_clickable((By.XPATH, xpath)))
        try:
            WebDriverWait(driver, 15).until(
                ec.invisibility_of_element_located((By.CSS_SELECTOR, ".bp5-overlay-backdrop"))
            )
        except TimeoutException:
            dismiss(f"overlay-{attempt}")
            continue
        driver.save_screenshot(str(folder / "asset-graph.png"))
        try:
            button.click()
            return
        except ElementClickInterceptedException:
            dismiss(f"obstructed-{attempt}")
    pytest.fail(f"the button {xpath} stayed covered; see {folder}", pytrace=False)


def test_materialize_all_in_a_real_browser(dagster_stack: DagsterStack, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    ensure_shape_extracted(dagster_stack)
    before = {r["runId"] for r in runs_selecting(dagster_stack, "fidelity_report")}

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"{dagster_stack.url}/locations/development/asset-groups/development")
        wait = WebDriverWait(driver, 120)
        click_when_unobstructed(driver, wait, "//button[.//span[starts-with(text(), 'Materialize all')]]", tmp_path)
        # synthetic_dataset is partitioned ("Materialize all…"): the UI asks which partitions; the
        # user picks All and launches a backfill (one run per step of the lineage; all partitions
        # of synthetic_dataset in one run, its backfill policy)
        dialog = "//div[contains(@class, 'bp5-dialog')]"
        try:
            wait.until(ec.element_to_be_clickable((By.XPATH, f"{dialog}//button[normalize-space(.)='All']"))).click()
            launch = wait.until(
                ec.element_to_be_clickable(
                    (By.XPATH, f"{dialog}//button[normalize-space(.)='Launch backfill' and not(@disabled)]")
                )
            )
        finally:
            driver.save_screenshot(str(tmp_path / "partitions-dialog.png"))
        launch.click()

        deadline = time.monotonic() + 900
        new: list[dict] = []
        while time.monotonic() < deadline:
            new = [r for r in runs_selecting(dagster_stack, "fidelity_report") if r["runId"] not in before]
            if new and DagsterRunStatus(new[0]["status"]) in FINISHED:
                break
            time.sleep(3)
        assert new, "clicking Materialize all launched no run"
        verdict = assert_run_matches_verdict(dagster_stack, new[0])
        driver.get(f"{dagster_stack.url}/runs/{new[0]['runId']}")
        shown = "Failure" if verdict == "FAIL" else "Success"
        wait.until(ec.presence_of_element_located((By.XPATH, f"//*[contains(text(), '{shown}')]")))
        driver.save_screenshot(str(tmp_path / "run-finished.png"))
    finally:
        driver.quit()
    assert (tmp_path / "asset-graph.png").stat().st_size > 10_000
    assert (tmp_path / "run-finished.png").stat().st_size > 10_000
