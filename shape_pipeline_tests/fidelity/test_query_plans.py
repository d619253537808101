"""The "Query plans" and "Physical layout" tests on real PostgreSQL worlds.

Production is one simulated world; a faithful synthetic is another seed of the same world
parameters (same plan shapes but for statistics noise: WARNING at worst); a different one is
that world loaded without the (conversation_id, created_at) index (other plans: FAIL, with
advice naming the pairs); a third is the faithful world written grouped by conversation
(CLUSTER), the physical order the issue found flipping plans.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from shape_pipeline.cli import main
from shape_pipeline.contracts import FidelityReport, ShapeMetrics
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.fidelity.database_source import parquet_findings, read_database_findings
from shape_pipeline.fidelity.plans import RANKED_METRICS, query_plans_result
from shape_pipeline.fidelity.render_console import render
from shape_pipeline.fidelity.report_html import render_html
from shape_pipeline.fidelity.validate import validate
from shape_pipeline.files import model_json, write_model_atomic
from shape_pipeline.mapping import load_mapping
from shape_pipeline.workload.spec import default_workload_path, load_workload
from shape_pipeline_tests.fidelity.plan_worlds import END, load_world, phase_two_shape


@pytest.fixture(scope="module")
def worlds(make_pg_database: Callable[[str], str]) -> dict[str, str]:
    return {
        "production": load_world(make_pg_database, "plans_prod", "plans-prod"),
        "faithful": load_world(make_pg_database, "plans_same", "plans-syn"),
        "unindexed": load_world(
            make_pg_database, "plans_unindexed", "plans-syn", after="DROP INDEX ix_messages_conversation_created"
        ),
        "grouped": load_world(
            make_pg_database,
            "plans_grouped",
            "plans-syn",
            after="CLUSTER messages USING ix_messages_conversation_created",
        ),
    }


@pytest.fixture(scope="module")
def shape(worlds: dict[str, str]) -> ShapeMetrics:
    return phase_two_shape(worlds["production"])


@pytest.fixture(scope="module")
def reports(worlds: dict[str, str], shape: ShapeMetrics) -> dict[str, FidelityReport]:
    return {name: validate(shape, database_url=worlds[name]) for name in ("faithful", "unindexed", "grouped")}


def test_the_shape_holds_every_pair_of_the_default_workload(shape: ShapeMetrics) -> None:
    workload = load_workload(None)
    assert shape.query_plans is not None and shape.physical_layout is not None
    assert shape.query_plans.workload_sha256 == workload.fingerprint()
    assert [(q, r) for q, ranks in shape.query_plans.queries.items() for r in ranks] == workload.pairs()


def test_a_faithful_world_passes_or_warns(reports: dict[str, FidelityReport]) -> None:
    plans = reports["faithful"].tests["query_plans"]
    assert plans.verdict in ("PASS", "WARNING"), plans.reason
    assert plans.statistic == "share_of_plans_differing" and plans.effect_size is not None
    # flips over the same rows and blocks are the planner's noise; the rest stays within 10%
    assert plans.synthetic["unexplained_share"] <= 0.10 and plans.synthetic["median_blocks_log2"] <= 0.5
    assert plans.effect_size <= 0.25
    assert plans.synthetic["count"] == len(load_workload(None).pairs())
    assert plans.production["median_ms"] > 0 and plans.synthetic["median_ms"] > 0  # reported beside
    layout = reports["faithful"].tests["physical_layout"]
    assert layout.verdict in ("PASS", "WARNING"), layout.reason
    assert not layout.synthetic["id_mismatches"] and layout.synthetic["items"]


def test_a_different_world_fails_with_advice_naming_the_pairs(reports: dict[str, FidelityReport]) -> None:
    plans = reports["unindexed"].tests["query_plans"]
    assert plans.verdict == "FAIL" and plans.effect_size is not None and plans.effect_size > 0.10
    pairs = plans.synthetic["pairs"]
    in_order = [f"{p['query']} {p['rank']}" for p in pairs if not p["shape_equal"]]
    differing = set(in_order)
    assert (
        in_order
        and f"{len(in_order)} of {len(pairs)} (query, rank) pairs have another plan shape ({in_order[0]}"
        in plans.reason
    )
    assert plans.synthetic["unexplained_share"] > 0.10 and plans.synthetic["median_blocks_log2"] > 0.5
    recs = plans.recommendations
    assert recs and len(recs) <= 5
    for rec in recs:  # each names a pair that is not within
        head = " ".join(rec.text.split(":")[0].split()[:2])
        assert head in {f"{p['query']} {p['rank']}" for p in pairs if not p["within"]}, rec.text
    first = recs[0].text  # shape differences come first, in plain words
    assert re.match(r"\S+ p?\w+: production uses .+, synthetic .+", first), first
    assert " ".join(first.split(":")[0].split()[:2]) in differing
    metrics = {test for _, test, _ in RANKED_METRICS.values()}
    advised = [r for r in recs if r.config_key]
    assert advised and all(any(f"check {m}'s" in r.text for m in metrics) for r in advised)
    # the index production reads and the synthetic database lacks is named first
    assert "production reads ix_messages_conversation_created, the synthetic plan does not" in first
    # the summary carries the advice and the re-validate command
    assert recs[0].text in reports["unindexed"].summary.recommendations


def test_a_world_written_grouped_by_conversation_fails_the_layout(reports: dict[str, FidelityReport]) -> None:
    layout = reports["grouped"].tests["physical_layout"]
    assert layout.verdict == "FAIL" and layout.statistic == "correlation_difference"
    assert layout.reason.startswith("messages.")
    worst = max(layout.synthetic["items"], key=lambda it: it["error"] / it["limit"])
    assert worst["entity"] == "messages" and worst["measure"] == "correlation" and worst["error"] > 0.3
    assert any("write messages in the order the app inserts them" in r.text for r in layout.recommendations)
    # the same rows, another order: plans flip, and with the layout off that is no noise
    plans = reports["grouped"].tests["query_plans"]
    assert plans.verdict == "FAIL" and plans.synthetic["layout_matches"] is False, plans.reason
    assert plans.effect_size > 0.10 and "the physical layout differs too" in plans.reason


def test_console_json_and_html_carry_the_plan_table(reports: dict[str, FidelityReport]) -> None:
    report = reports["unindexed"]
    lines: list[str] = []
    render(report, lines.append)
    text = "\n".join(lines)
    assert "Query plans..." in text and "Physical layout" in text
    assert re.search(r"query\s+rank\s+shape\s+rows log2\s+blocks log2\s+ms prod / synth", text)
    assert "DIFFERS" in text and "Same shape: " in text and "Median Time: production" in text
    again = FidelityReport.model_validate_json(model_json(report))
    assert again.tests["query_plans"].synthetic["pairs"] == report.tests["query_plans"].synthetic["pairs"]
    page = render_html(report)
    assert '<table class="plans">' in page and '<div class="node diff"' in page
    assert page.count('<td class="tree">') == 2 * len(report.tests["query_plans"].synthetic["pairs"])
    assert "production plan</th><th>synthetic plan" in page


def test_skipped_without_plans_or_postgresql(shape: ShapeMetrics, tmp_path: Path) -> None:
    lacking = query_plans_result(None, parquet_findings())
    assert lacking.verdict == "SKIPPED" and lacking.reason.startswith("the shape has no query_plans")
    parquet = query_plans_result(shape.query_plans, parquet_findings())
    assert parquet.verdict == "SKIPPED" and "Parquet folder" in (parquet.reason or "")
    db = tmp_path / "dev.db"
    sqlite3.connect(db).close()
    found = read_database_findings(
        f"sqlite:///{db}", load_mapping(None), workload=load_workload(None), want_layout=True, window_end=END
    )
    result = query_plans_result(shape.query_plans, found)
    assert result.verdict == "SKIPPED" and "sqlite database" in (result.reason or "")


def test_another_workload_is_refused_naming_the_file(
    worlds: dict[str, str], shape: ShapeMetrics, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(default_workload_path().read_text().replace("LIMIT 50", "LIMIT 40"))
    with pytest.raises(
        ShapePipelineError, match=f"--workload {re.escape(str(other))}: .*not the one the shape's plans"
    ):
        validate(shape, database_url=worlds["faithful"], workload_path=other)
    shape_path = write_model_atomic(tmp_path / "shape.json", shape)
    args = [
        "validate",
        "--shape",
        str(shape_path),
        "--database-url",
        worlds["faithful"],
        "--output",
        str(tmp_path / "r.json"),
    ]
    assert main([*args, "--workload", str(other)]) == 2
    err = capsys.readouterr().err
    assert str(other) in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--plan-log2-ratio", "0"]) == 2
    assert "--plan-log2-ratio" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_the_cli_passes_the_workload_and_the_factor(
    worlds: dict[str, str], shape: ShapeMetrics, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shape_path = write_model_atomic(tmp_path / "shape.json", shape)
    out = tmp_path / "report.json"
    code = main(
        [
            "validate",
            "--shape",
            str(shape_path),
            "--database-url",
            worlds["faithful"],
            "--output",
            str(out),
            "--workload",
            str(default_workload_path()),
            "--plan-log2-ratio",
            "2",
        ]
    )
    printed = capsys.readouterr().out
    assert code in (0, 1)
    plans = json.loads(out.read_text())["tests"]["query_plans"]
    assert plans["synthetic"]["max_log2_ratio"] == 2.0
    assert plans["verdict"] in ("PASS", "WARNING")
    assert "within |log2| <= 2:" in printed
