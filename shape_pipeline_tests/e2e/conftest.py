"""A real Dagster stack for end-to-end tests: `dagster-webserver` + `dagster-daemon` on workspace.yaml.

Both run in their own process groups with a temporary DAGSTER_HOME (holding a copy of the
project's dagster.yaml) and a temporary SHAPE_PIPELINE_HOME, so the demo defaults apply.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DagsterStack:
    port: int
    dagster_home: Path
    shape_home: Path
    logs: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = open(log, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def dagster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterStack]:
    base = tmp_path_factory.mktemp("dagster-stack")
    stack = DagsterStack(free_port(), base / "dagster_home", base / "shape_home", base / "logs")
    for folder in (stack.dagster_home, stack.shape_home, stack.logs):
        folder.mkdir()
    shutil.copy(REPO / "dagster.yaml", stack.dagster_home / "dagster.yaml")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SHAPE_PIPELINE_", "ANONYMIZATION_SALT", "DAGSTER_"))
    }
    env.update(
        DAGSTER_HOME=str(stack.dagster_home),
        SHAPE_PIPELINE_HOME=str(stack.shape_home),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    workspace = ["-w", str(REPO / "workspace.yaml")]
    # Create the instance's storage once, before the webserver and the daemon start together:
    # both creating a fresh SQLite storage at once can leave two alembic heads (seen: a code
    # location then fails to load with "more than one head present").
    subprocess.run(
        [str(BIN / "dagster"), "instance", "info"], cwd=REPO, env=env, check=True, capture_output=True, timeout=120
    )
    webserver = _start(
        [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(stack.port), *workspace],
        env,
        stack.logs / "webserver.log",
    )
    daemon = _start([str(BIN / "dagster-daemon"), "run", *workspace], env, stack.logs / "daemon.log")
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{stack.url}/server_info", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            if webserver.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "dagster-webserver did not start:\n" + (stack.logs / "webserver.log").read_text()[-3000:],
                    pytrace=False,
                )
            time.sleep(1)
        yield stack
    finally:
        _stop(webserver)
        _stop(daemon)
