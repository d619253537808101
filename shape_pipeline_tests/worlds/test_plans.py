"""Phase 2 on a world the generator did not make: the app's queries get production's plans.

A canonical `chat_simulator` production (time-ordered inserts, hot senders and rooms, the app's
indexes, autovacuumed) is sampled with the default workload over its whole history, so the
synthetic tables are as large as production's. The faithful dataset generated from that shape
keeps the plans; the same config with the hot-user skew removed (every sender writes about
the mean) keeps the marginal shape (message counts per conversation, lengths, types, hours)
but loses the plans of the hot-user queries: that is what plan parity catches.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chat_simulator import build_world
from shape_pipeline import settings
from shape_pipeline.cli import main
from shape_pipeline.db import create_engine

END = datetime(2025, 6, 2, tzinfo=UTC)
WORLD_MESSAGES = 60_000
HISTORY_DAYS = 42  # the simulated span (6 weeks): the shape covers every row the queries see
SALT = "phase-two-world-salt-0123456789abcdef"
MARGINAL_TESTS = ("messages_per_conversation", "content_length", "message_types", "hourly_pattern")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def uniform_senders(config: dict) -> dict:
    """The same config with every sender writing about the mean number of messages."""
    activity = config["message_generation"]["messages_per_sender"]
    mean = float(activity.get("mean") or 10.0)
    config["message_generation"]["messages_per_sender"] = {
        "distribution": "quantile_spline",
        "knots": [[0.01, mean], [0.99, mean + 1]],
        "min": mean,
        "max": mean + 1,
        "integer": True,
        "source": "test: hot-user skew removed",
    }
    config["conversation_generation"]["top_sender_share"] = None
    return config


@pytest.fixture(scope="module", params=["mattermost", "canonical"])
def phase_two(
    request: pytest.FixtureRequest, make_pg_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> dict:
    """A production world (loaded, autovacuumed) and the folder its shape and config go to."""
    folder = tmp_path_factory.mktemp(f"phase2-{request.param}")
    world = build_world(request.param, WORLD_MESSAGES, "phase-two", END)
    production = make_pg_database(f"plans_prod_{request.param}")
    world.load(production)
    mapping = [] if request.param == "canonical" else ["--mapping", str(world.write_mapping(folder / "mapping.yaml"))]
    return {"folder": folder, "production": production, "world": world, "mapping": mapping}


def development(phase_two: dict, make_pg_database: Callable[[str], str], label: str) -> str:
    """A development database holding the app's tables, empty (as after its migrations)."""
    url = make_pg_database(label)
    if phase_two["mapping"]:
        engine = create_engine(url)
        try:
            phase_two["world"].schema.metadata().create_all(engine)
        finally:
            engine.dispose()
    return url


def sample_and_calibrate(phase_two: dict, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    folder = Path(phase_two["folder"])
    shape_path, config_path = folder / "shape.json", folder / "config.json"
    if not shape_path.exists():
        code, _, err = run_cli(
            capsys,
            "sample",
            "--privacy",
            "suppression",
            "--database-url",
            str(phase_two["production"]),
            *phase_two["mapping"],
            "--workload",
            "default",
            "--as-of",
            END.date().isoformat(),
            "--window-days",
            str(HISTORY_DAYS),
            "--output",
            str(shape_path),
            "--audit-log",
            str(folder / "audit.jsonl"),
        )
        assert (code, err) == (0, ""), err
        code, _, err = run_cli(capsys, "calibrate", "--shape", str(shape_path), "--output", str(config_path))
        assert (code, err) == (0, ""), err
    return shape_path, config_path


def generate_and_validate(
    capsys: pytest.CaptureFixture[str], config: Path, shape: Path, url: str, report: Path, mapping: list[str]
) -> dict:
    target = json.loads(shape.read_text())["totals"]["messages"]
    code, _, err = run_cli(
        capsys,
        "generate",
        "--config",
        str(config),
        "--database-url",
        url,
        *mapping,
        "--target-messages",
        str(target),
        "--seed",
        "phase-two",
    )
    assert code == 0 and "error:" not in err, err
    code, _, err = run_cli(
        capsys,
        "validate",
        "--shape",
        str(shape),
        "--database-url",
        url,
        *mapping,
        "--workload",
        "default",
        "--config",
        str(config),
        "--output",
        str(report),
        "--html",
        str(report.with_suffix(".html")),
    )
    assert code in (0, 1) and err == "", err
    return json.loads(report.read_text())


def test_the_faithful_dataset_gets_production_plans(
    phase_two: dict,
    make_pg_database: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(settings.SALT, SALT)
    shape, config = sample_and_calibrate(phase_two, capsys)
    assert len([1 for ranks in json.loads(shape.read_text())["query_plans"]["queries"].values() for _ in ranks]) == 16
    folder = Path(phase_two["folder"])
    report = generate_and_validate(
        capsys,
        config,
        shape,
        development(phase_two, make_pg_database, "plans_faithful"),
        folder / "faithful.json",
        phase_two["mapping"],
    )
    plans, layout = report["tests"]["query_plans"], report["tests"]["physical_layout"]
    pairs = plans["synthetic"]["pairs"]
    differing = [f"{p['query']} {p['rank']}" for p in pairs if not p["shape_equal"]]
    assert plans["synthetic"]["median_blocks_log2"] <= 0.5
    if phase_two["mapping"]:
        # the goal: the same plan shape on at least 90% of (query, rank) pairs, buffers
        # within |log2| 0.5 in the median; rows of single cold entities may differ (WARNING)
        assert plans["verdict"] in ("PASS", "WARNING"), (plans["reason"], pairs)
        assert len(differing) <= 0.1 * len(pairs) and len(pairs) == 16, differing
        assert layout["verdict"] in ("PASS", "WARNING"), layout["reason"]
    else:
        # canonical, sequential ids: production's users join right after signing up, so
        # members.user_id correlates with insert order (0.6); numbering users by mean join time
        # reaches about 0.5, and the sidebar query of typical users still flips Index Scan /
        # Bitmap Heap Scan over the same rows. ANALYZE samples its statistics at random, so
        # member_messages' choice between two indexes of nearly the same cost may flip for both
        # of its ranks together (seen in CI); of the other pairs at most one flips. The layout holds.
        unexplained = set(differing) - {"user_conversations p50", "user_conversations p10"}
        index_choice = {"member_messages p10", "member_messages p50"}
        assert len(unexplained - index_choice) + min(1, len(unexplained & index_choice)) <= 1, differing
        failing = [(i["entity"], i["field"]) for i in layout["synthetic"]["items"] if i["error"] > i["limit"]]
        assert failing in ([], [("members", "user_id")]), failing


def test_removing_the_hot_users_changes_the_plans_but_not_the_marginals(
    phase_two: dict,
    make_pg_database: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(settings.SALT, SALT)
    shape, config = sample_and_calibrate(phase_two, capsys)
    folder = Path(phase_two["folder"])
    flat = folder / "uniform-config.json"
    flat.write_text(json.dumps(uniform_senders(json.loads(config.read_text()))))
    report = generate_and_validate(
        capsys,
        flat,
        shape,
        development(phase_two, make_pg_database, "plans_uniform"),
        folder / "uniform.json",
        phase_two["mapping"],
    )
    marginal = {key: report["tests"][key]["verdict"] for key in MARGINAL_TESTS}
    assert set(marginal.values()) == {"PASS"}, marginal
    plans = report["tests"]["query_plans"]
    assert plans["verdict"] == "FAIL", (plans["reason"], plans["synthetic"].get("pairs"))
    assert any("sender" in r["text"] or "user" in r["text"] for r in plans["recommendations"]), plans["recommendations"]
