"""URL passwords never leave the process: console, error lines, log records, audit log, shape file,
fidelity report (JSON and HTML) and Dagster metadata.

Two canaries ride in every URL: one in the user-info (with '@', ':', '/' and '?', percent-encoded
as a URL must) and one as a `?password=` query parameter. A server that rejects the connection
(a role that does not exist, or port 1) tests the error paths; the local server's trust
authentication (any password connects on 127.0.0.1) tests the paths that succeed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pytest
import sqlalchemy as sa

import shape_pipeline.cli as cli
from shape_pipeline.audit_log import read_audit_log
from shape_pipeline.console import silent
from shape_pipeline.contracts import CalibratedConfig
from shape_pipeline.db import create_engine, parse_url
from shape_pipeline.files import load_json_model
from shape_pipeline.generation.generate import generate_dataset
from shape_pipeline.locations import production
from shape_pipeline.locations.generation_assets import result_metadata
from shape_pipeline.locations.resources import ProductionSource
from shape_pipeline_tests.calibration.shapes import SEED_SHAPE
from shape_pipeline_tests.sampling import dataset as ds
from shape_pipeline_tests.sampling.test_bad_input import calibrated_config

USERINFO_CANARY = "Canary@Pw:9/x?y"
QUERY_CANARY = "CanaryQueryPw123"
# What a leak would look like: either password, percent-encoded or not, or the half that a
# redaction ending at the first '@' would show.
LEAKS = (USERINFO_CANARY, quote(USERINFO_CANARY, safe=""), "Pw:9", "Pw%3A9", QUERY_CANARY)
SALT = "secrets-test-salt-0123456789-abcdefghijklmnop"


def with_canaries(url: str, *, user: str | None = None, port: int | None = None) -> str:
    """`url` with both canary passwords (and another user or port), as text a user would type."""
    parsed = parse_url(url)
    parsed = parsed.set(password=USERINFO_CANARY, username=user or parsed.username, port=port or parsed.port)
    parsed = parsed.update_query_dict({"password": QUERY_CANARY})
    text = parsed.render_as_string(hide_password=False)
    assert quote(USERINFO_CANARY, safe="") in text and QUERY_CANARY in text  # the URL does carry them
    return text


def assert_no_leak(*texts: str) -> None:
    for text in texts:
        for leak in LEAKS:
            assert leak not in text, leak


def written_text(folder: Path) -> str:
    """Every file under `folder`, as text (binary files decoded loosely)."""
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return calibrated_config(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def canonical_pg(make_pg_database: Callable[[str], str]) -> str:
    """A database holding the sampler tests' known dataset (13 users, 10 messages in January 2025)."""
    url = make_pg_database("secrets_prod")
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    ds.build_canonical(engine)
    engine.dispose()
    return url


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANONYMIZATION_SALT", SALT)
    for name in (
        "SHAPE_PIPELINE_EXPORT_DIR",
        "SHAPE_PIPELINE_PROD_DATABASE_URL",
        "SHAPE_PIPELINE_AUDIT_LOG",
        "SHAPE_PIPELINE_HOME",
    ):
        monkeypatch.delenv(name, raising=False)


def command(name: str, url: str, work: Path, config: Path) -> list[str]:
    """The CLI arguments of one step that reads or writes `url`, with its files under `work`."""
    return {
        "sample": ["sample", "--database-url", url, "--output", str(work), "--audit-log", str(work / "audit.jsonl")],
        "generate": ["generate", "--config", str(config), "--database-url", url, "--target-messages", "1000"],
        "validate": [
            "validate",
            "--shape",
            str(SEED_SHAPE),
            "--database-url",
            url,
            "--output",
            str(work / "report.json"),
            "--html",
            str(work / "report.html"),
        ],
        "demo": ["demo", "--workdir", str(work / "demo"), "--prod-url", url, "--messages", "1000"],
    }[name]


@pytest.mark.parametrize("step", ["sample", "generate", "validate", "demo"])
@pytest.mark.parametrize("rejection", ["unknown role", "closed port"])
def test_a_rejected_connection_shows_no_password(
    step: str, rejection: str, pg_url: str, config_path: Path, tmp_path: Path, env, capsys, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    url = with_canaries(pg_url, user="canary_nobody") if rejection == "unknown role" else with_canaries(pg_url, port=1)
    code = cli.main(command(step, url, tmp_path, config_path))
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    expected = 'role "canary_nobody" does not exist' if rejection == "unknown role" else "port 1 failed"
    assert expected in err and "***" in err  # the URL is named, its password hidden
    assert_no_leak(out, err, caplog.text, written_text(tmp_path))


def test_a_sample_that_connects_records_no_password(canonical_pg: str, tmp_path: Path, env, capsys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    url = with_canaries(canonical_pg)
    code = cli.main([*command("sample", url, tmp_path, Path()), "--as-of", "2025-01-31"])
    out, err = capsys.readouterr()
    assert code == 0, err
    [entry] = read_audit_log(tmp_path / "audit.jsonl")
    assert entry["database"].startswith("postgresql+psycopg://postgres:***@")
    assert "[Sampler] Connecting to postgresql+psycopg://postgres:***@" in out
    assert_no_leak(out, err, caplog.text, written_text(tmp_path))


def test_generate_and_validate_write_no_password_into_reports_or_metadata(
    make_pg_database: Callable[[str], str], config_path: Path, tmp_path: Path, env, capsys, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    url = with_canaries(make_pg_database("secrets"))
    assert cli.main(["generate", "--config", str(config_path), "--database-url", url, "--target-messages", "2000"]) == 0
    code = cli.main(command("validate", url, tmp_path, config_path))
    out, err = capsys.readouterr()
    assert code in (0, 1), err  # a verdict, whichever
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["synthetic_source"].startswith("postgresql+psycopg://postgres:***@")  # the asset's metadata value
    assert "<html" in (tmp_path / "report.html").read_text().lower()
    config = load_json_model(config_path, CalibratedConfig, what="calibrated config")
    result = generate_dataset(config, target_messages=1000, database_url=url, replace=True, emit=silent)
    metadata = result_metadata(result)
    assert "***" in str(metadata["destinations"])
    assert_no_leak(out, err, caplog.text, written_text(tmp_path), json.dumps(metadata, default=str))


def test_dagster_shape_metrics_metadata_and_logs_hold_no_password(canonical_pg: str, tmp_path: Path) -> None:
    resource = ProductionSource(
        database_url=with_canaries(canonical_pg),
        salt=SALT,
        export_dir=str(tmp_path / "exchange"),
        audit_log=str(tmp_path / "audit.jsonl"),
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [production.shape_metrics, production.export_audit_check],
            resources={"production": resource},
            run_config=dg.RunConfig({"shape_metrics": production.ShapeMetricsConfig(as_of="2025-01-31")}),
            instance=instance,
        )
        assert result.success
        [mat] = result.asset_materializations_for_node("shape_metrics")
        metadata = {key: str(value.value) for key, value in mat.metadata.items()}
        logs = "\n".join(event.user_message or "" for event in instance.all_logs(result.run_id))
    assert metadata["database"].startswith("postgresql+psycopg://postgres:***@")
    assert_no_leak(json.dumps(metadata), logs, written_text(tmp_path))
    for canary in ds.CANARIES:
        assert canary not in json.dumps(metadata)


def test_canary_urls_connect_on_the_local_server(canonical_pg: str) -> None:
    """The premise of the tests above: trust authentication on 127.0.0.1 accepts any password."""
    engine = create_engine(with_canaries(canonical_pg), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar() == 13
    finally:
        engine.dispose()
