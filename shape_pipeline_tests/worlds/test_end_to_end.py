"""The whole flow on worlds the generator did not make: sample -> calibrate -> generate at the
same size and at 5x -> validate, through the CLI, on each simulated schema.

Each world is a `chat_simulator` production (real-schema quirks: varchar(26) ids, epoch-ms,
NOT NULL DEFAULT '' columns, unmapped system type codes, one-member DMs, uuid ids, jsonb and
extra NOT NULL columns). Asserted here: no refusal, no traceback, every step's file written,
the dataset's size and integrity, and the verdict: at 1x and 5x every one of the 17 marginal,
skew and integrity tests (none skipped: the shape supports them all) is PASS; the Phase 2
tests (query plans, physical layout) are judged in test_plans.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from chat_simulator import SCHEMAS, World, build_world
from shape_pipeline import settings
from shape_pipeline.cli import main
from shape_pipeline.db import create_engine

END = datetime(2025, 6, 2, tzinfo=UTC)
WORLD_MESSAGES = 60_000  # about 45,000 in the 30-day window
SALT = "end-to-end-world-salt-0123456789abcdef"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def count(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one())
    finally:
        engine.dispose()


def empty_schema(url: str, world: World) -> None:
    """The development database holds the app's tables, empty (as after its migrations)."""
    engine = create_engine(url)
    try:
        world.schema.metadata().create_all(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("schema", SCHEMAS)
def test_sample_calibrate_generate_validate_on_a_simulated_world(
    schema: str,
    make_pg_database: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(settings.SALT, SALT)
    world = build_world(schema, WORLD_MESSAGES, f"e2e-{schema}", END)
    production = make_pg_database(f"e2e_prod_{schema}")
    world.load(production)
    mapping = ["--mapping", str(world.write_mapping(tmp_path / "mapping.yaml"))] if schema != "canonical" else []

    shape_path, config_path = tmp_path / "shape.json", tmp_path / "config.json"
    code, out, err = run_cli(
        capsys,
        "sample",
        "--privacy",
        "suppression",
        "--database-url",
        production,
        *mapping,
        "--as-of",
        END.date().isoformat(),
        "--window-days",
        "30",
        "--output",
        str(shape_path),
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
    )
    assert (code, err) == (0, ""), err
    shape = json.loads(shape_path.read_text())
    assert shape["totals"]["messages"] > WORLD_MESSAGES // 2
    assert shape["messages"]["type_distribution"].get("OTHER", 0) > 0  # system codes the mapping leaves out

    code, out, err = run_cli(capsys, "calibrate", "--shape", str(shape_path), "--output", str(config_path))
    assert (code, err) == (0, ""), err

    development = make_pg_database(f"e2e_dev_{schema}")
    if schema != "canonical":
        empty_schema(development, world)
    messages_table = world.schema.metadata().tables
    posts = next(t.name for t in messages_table.values() if t.name.lower() in ("messages", "posts", "message"))
    for factor in (1, 5):
        target = shape["totals"]["messages"] * factor
        code, out, err = run_cli(
            capsys,
            "generate",
            "--config",
            str(config_path),
            "--database-url",
            development,
            *mapping,
            "--target-messages",
            str(target),
            "--replace",
            "--seed",
            f"e2e-{factor}",
        )
        assert code == 0 and "error:" not in err and "Traceback" not in err, err  # stderr: progress bar
        assert count(development, posts) == target
        report_path = tmp_path / f"report-{factor}.json"
        code, out, err = run_cli(
            capsys,
            "validate",
            "--shape",
            str(shape_path),
            "--database-url",
            development,
            *mapping,
            "--config",
            str(config_path),
            "--output",
            str(report_path),
            "--html",
            str(tmp_path / f"r{factor}.html"),
        )
        assert code in (0, 1) and err == "", err  # a verdict, never a refusal
        report = json.loads(report_path.read_text())
        integrity = report["tests"]["integrity"]
        assert integrity["verdict"] == "PASS", integrity
        phase_two = {"query_plans", "physical_layout"}  # judged in test_plans.py, with a workload
        not_passed = {
            k: t["reason"] for k, t in report["tests"].items() if t["verdict"] != "PASS" and k not in phase_two
        }
        assert not not_passed, (factor, not_passed)  # every marginal and skew test, none skipped
        assert report["tests"]["query_plans"]["verdict"] == "SKIPPED"  # sampled without --workload
        layout = report["tests"]["physical_layout"]
        failing = [
            (i["entity"], i["field"])
            for i in layout["synthetic"]["items"]
            if i["error"] > i["limit"] and i["measure"] != "rows"
        ]  # 30 of 42 days, at 1x and 5x: sizes differ by design
        # messages lie like production's; the correlation of sequential conversation and user ids
        # with members' insert order is a known gap (see test_plans.py)
        assert not [f for f in failing if f[0] not in ("members", "conversations")], failing
        assert report["overall_verdict"] == ("PASS" if layout["verdict"] != "FAIL" else "FAIL")
