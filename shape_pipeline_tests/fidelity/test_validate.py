"""The validator end to end: faithful data passes, each shift fails its own test, bad input exits 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shape_pipeline import cli
from shape_pipeline.contracts import ShapeMetrics
from shape_pipeline.contracts import TestResult as Result
from shape_pipeline.db import create_engine
from shape_pipeline.fidelity import integrity
from shape_pipeline.fidelity.comparisons import TEST_KEYS
from shape_pipeline.fidelity.parquet_source import frequencies_from_parquet
from shape_pipeline.fidelity.recommendations import ALL_PASS
from shape_pipeline.fidelity.validate import validate
from shape_pipeline.mapping import CANONICAL_MAPPING, canonical_metadata
from shape_pipeline.sampling.extract import extract_frequencies
from shape_pipeline_tests.fidelity.conftest import FAITHFUL_SEED
from shape_pipeline_tests.fidelity.world import (
    WINDOW_END,
    WINDOW_START,
    Knobs,
    World,
    draw,
    to_parquet,
    to_postgres,
)

# The skew tests of issue 10: SKIPPED while the shape lacks their blocks (test_skews.py feeds them).
SKEW_KEYS = {
    "conversations_per_user",
    "top_sender_share",
    "conversation_lifetime",
    "recency",
    "size_by_members",
    "messages_per_day",
}
# Phase 2 (issue 11): SKIPPED while the shape has no physical layout or query plans (test_plans.py feeds them).
PHASE_TWO_KEYS = {"physical_layout", "query_plans"}


def _skipped_for_lack(result: Result) -> bool:
    return result.verdict == "SKIPPED" and (result.reason or "").startswith("the shape has no")


def test_a_faithful_dataset_passes(production_shape: ShapeMetrics, synthetic_dir: Callable[..., Path]) -> None:
    report = validate(production_shape, parquet_dir=synthetic_dir())
    for key, result in report.tests.items():
        assert result.verdict == "PASS" or (key in SKEW_KEYS | PHASE_TWO_KEYS and _skipped_for_lack(result)), (
            key,
            result.reason,
        )
    assert report.overall_verdict == "PASS"
    assert report.summary.recommendations == list(ALL_PASS)
    assert report.summary.passed_tests == len(TEST_KEYS) - report.summary.skipped_tests


def _direction(rec) -> float:  # noqa: ANN001 - a Recommendation
    return float(rec.suggested_value) - float(rec.current_value)


# knob change -> (the test that must fail, other tests allowed to fail with it, check of the first recommendation)
SHIFTS: dict[str, tuple[dict, str, set[str], Callable]] = {
    "conversation types": (
        {"conversation_types": (0.5, 0.4, 0.1)},
        "conversation_types",
        # fewer DMs: bigger rooms, so members per user, top sender shares and the size grid move too
        {"size_by_members", "conversations_per_user", "top_sender_share"},
        lambda r: r.config_key.endswith("DIRECT_MESSAGE") and _direction(r) > 0,  # too few DMs
    ),
    "message types": (
        {"message_types": (0.6, 0.3, 0.05, 0.03, 0.02)},
        "message_types",
        set(),
        lambda r: r.config_key.endswith("TEXT") and _direction(r) > 0,
    ),
    # hot rooms make hot senders (and live longer): messages per sender and lifetimes move with the tail
    "heavier tail": (
        {"tail_factor": 2.5},
        "messages_per_conversation",
        {"messages_per_sender", "conversation_lifetime"},
        lambda r: r.config_key.endswith(".alpha") and _direction(r) > 0,  # raise alpha: lighter tail
    ),
    "lighter tail": (
        {"tail_factor": 0.5},
        "messages_per_conversation",
        {"messages_per_sender", "conversation_lifetime"},
        lambda r: r.config_key.endswith(".alpha") and _direction(r) < 0,  # lower alpha: heavier tail
    ),
    "longer content": (
        {"content_median": 60.0},
        "content_length",
        set(),
        lambda r: r.config_key.endswith("content_length.median") and _direction(r) < 0,
    ),
    "shifted hours": (
        {"hour_shift": 6},
        "hourly_pattern",
        set(),
        lambda r: r.config_key.startswith("message_generation.temporal.hourly["),
    ),
    "slower conversations": (
        {"gap_median_s": 80.0},
        "inter_message_gaps",
        {"conversation_lifetime"},  # longer gaps, longer lives
        lambda r: "inter_message_gap_seconds" in r.config_key and _direction(r) < 0,
    ),
    "senders outside the room": (
        {"strangers": 20},
        "integrity",
        set(),
        lambda r: r.text.startswith("20 messages whose sender is not a member"),
    ),
    "messages outside the window": (
        {"outside_window": 20},
        "integrity",
        set(),
        lambda r: "outside the shape's window" in r.text,
    ),
}


@pytest.mark.parametrize("name", list(SHIFTS))
def test_each_shift_fails_its_own_test(
    name: str, production_shape: ShapeMetrics, synthetic_dir: Callable[..., Path]
) -> None:
    knobs, target, allowed, points_right = SHIFTS[name]
    report = validate(production_shape, parquet_dir=synthetic_dir(**knobs))
    failed = {k for k, t in report.tests.items() if t.verdict == "FAIL"}
    assert target in failed
    assert failed - {target} <= allowed, f"{name} also failed {failed - {target} - allowed}"
    assert report.overall_verdict == "FAIL"
    first = report.tests[target].recommendations[0]
    assert points_right(first), first.text
    assert report.summary.recommendations[-2].startswith("Regenerate: shape-pipeline generate")
    assert report.summary.recommendations[-1].startswith("Re-validate: shape-pipeline validate")


def test_recommendations_use_the_config_values(
    production_shape: ShapeMetrics, synthetic_dir: Callable[..., Path]
) -> None:
    from shape_pipeline.calibration.calibrate import calibrate

    config = calibrate(production_shape)
    report = validate(production_shape, parquet_dir=synthetic_dir(content_median=60.0), config=config)
    rec = report.tests["content_length"].recommendations[0]
    assert rec.current_value == pytest.approx(config.message_generation.content_length.median, rel=1e-3)
    assert rec.suggested_value < rec.current_value
    hours = validate(production_shape, parquet_dir=synthetic_dir(hour_shift=6), config=config)
    text = hours.tests["hourly_pattern"].recommendations[0].text
    assert "already matches production" in text and "does not follow" in text


def test_zero_mass_category_in_synthetic_data_fails(
    production_shape: ShapeMetrics, synthetic_dir: Callable[..., Path]
) -> None:
    types = dict(production_shape.conversations.type_distribution)
    types.pop("CHANNEL", None)
    types["GROUP_CHAT"] = types.get("GROUP_CHAT", 0) + 1
    shape = production_shape.model_copy(deep=True)
    shape.conversations.type_distribution = types | {"CHANNEL": 0}
    result = validate(shape, parquet_dir=synthetic_dir()).tests["conversation_types"]
    assert result.verdict == "FAIL"
    assert "CHANNEL has zero production mass" in (result.reason or "")
    assert result.synthetic["cohens_w"] is None
    assert result.recommendations[0].config_key.endswith("CHANNEL")
    assert result.recommendations[0].suggested_value == 0.0


def test_a_tiny_dataset_gets_a_clear_verdict(production_shape: ShapeMetrics, tmp_path: Path) -> None:
    folder = to_parquet(draw(Knobs(seed=9, conversations=4, users=40)), tmp_path)
    report = validate(production_shape, parquet_dir=folder)
    assert report.overall_verdict in ("WARNING", "FAIL")
    for key, result in report.tests.items():
        assert result.verdict in ("PASS", "WARNING", "FAIL") or (
            key in SKEW_KEYS | PHASE_TWO_KEYS and _skipped_for_lack(result)
        ), key
        assert result.reason, key
    assert "4 synthetic conversations" in report.tests["messages_per_conversation"].reason


def test_a_seed_form_shape_skips_what_it_lacks(synthetic_dir: Callable[..., Path], tmp_path: Path) -> None:
    seed_form = {
        "extracted_at": WINDOW_END.isoformat(),
        "sample_window_days": 30,
        "privacy_level": "ANONYMIZED_SHAPE_ONLY",
        "conversations": {
            "messages_per_conversation_percentiles": {
                "p50": 45,
                "p75": 120,
                "p90": 450,
                "p95": 1200,
                "p99": 5000,
                "max": 15000,
            },
            "type_distribution": {"DIRECT_MESSAGE": 12500, "GROUP_CHAT": 3500},
        },
        "messages": {"content_length_stats": {"mean": 85, "median": 42, "p95": 280}},
    }
    report = validate(ShapeMetrics.model_validate(seed_form), parquet_dir=synthetic_dir())
    skipped = {k for k, t in report.tests.items() if t.verdict == "SKIPPED"}
    assert skipped == {
        "message_types",  # the seed's example has no message type counts
        "username_length",
        "members_per_conversation",
        "hourly_pattern",
        "day_of_week_pattern",
        "inter_message_gaps",
        "messages_per_sender",
        *SKEW_KEYS,
        *PHASE_TWO_KEYS,
    }
    assert all(report.tests[k].reason.startswith("the shape has no") for k in skipped)
    assert report.summary.skipped_tests == len(skipped)
    # the seed's numbers are far from this world: its messages-per-conversation test fails
    assert report.tests["messages_per_conversation"].verdict == "FAIL"
    assert report.overall_verdict == "FAIL"


# --------------------------------------------------------------------------------------
# The database path (real PostgreSQL) and the command line
# --------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """The real `shape-pipeline` entry point, with only this area's subcommand registered."""
    saved = cli.COMMAND_MODULES
    cli.COMMAND_MODULES = ("shape_pipeline.fidelity.command",)
    try:
        return cli.main(argv)
    finally:
        cli.COMMAND_MODULES = saved


@pytest.fixture(scope="module")
def faithful_pg(make_pg_database: Callable[[str], str]) -> str:
    return to_postgres(draw(Knobs(seed=FAITHFUL_SEED)), make_pg_database("fidelity"))


def test_parquet_source_matches_the_sampler_sql(faithful_pg: str, synthetic_dir: Callable[..., Path]) -> None:
    engine = create_engine(faithful_pg)
    sql = extract_frequencies(engine, CANONICAL_MAPPING, window_start=WINDOW_START, window_end=WINDOW_END)
    arrow = frequencies_from_parquet(synthetic_dir(), window_start=WINDOW_START, window_end=WINDOW_END)
    for name in (
        "users_total",
        "conversations_total",
        "messages_total",
        "conversation_types",
        "message_types",
        "profile_fields_set",
    ):
        assert getattr(sql, name) == getattr(arrow, name), name
    for name in (
        "username_length",
        "messages_per_conversation",
        "content_length",
        "gap_seconds",
        "messages_per_sender",
    ):
        a, b = getattr(sql, name), getattr(arrow, name)
        assert a.values.tolist() == b.values.tolist() and a.counts.tolist() == b.counts.tolist(), name
    assert sql.hour_by_day_of_week.tolist() == arrow.hour_by_day_of_week.tolist()
    assert set(sql.members_per_conversation) == set(arrow.members_per_conversation)
    for kind, freq in sql.members_per_conversation.items():
        assert freq.counts.tolist() == arrow.members_per_conversation[kind].counts.tolist()
    found = integrity.check_database(engine, CANONICAL_MAPPING, window_start=WINDOW_START, window_end=WINDOW_END)
    engine.dispose()
    assert found.breaches == {}
    assert "messages_without_sender" in found.not_checked  # enforced by the canonical foreign keys


def _with_odd_direct_messages(world: World) -> World:
    """Two message-less direct messages appended, one with no member and one with a single
    member (a note to self: allowed), and a third member added to the first direct message."""
    n = world.conversations.num_rows
    created = world.conversations["created_at"][0].as_py()
    conversations = pa.concat_tables(
        [
            world.conversations,
            pa.table(
                {
                    "id": [n + 1, n + 2],
                    "type": ["DIRECT_MESSAGE"] * 2,
                    "name": [None, None],
                    "created_at": [created] * 2,
                },
                schema=world.conversations.schema,
            ),
        ]
    )
    first_dm = world.conversations["id"][world.conversations["type"].to_pylist().index("DIRECT_MESSAGE")].as_py()
    in_first = set(world.members.filter(pc.equal(world.members["conversation_id"], first_dm))["user_id"].to_pylist())
    stranger = min(set(world.users["id"].to_pylist()) - in_first)
    joined = world.members["joined_at"][0].as_py()
    members = pa.concat_tables(
        [
            world.members,
            pa.table(
                {"conversation_id": [n + 2, first_dm], "user_id": [1, stranger], "joined_at": [joined] * 2},
                schema=world.members.schema,
            ),
        ]
    )
    return World(world.users, conversations, members, world.messages)


def test_integrity_in_sql_counts_the_breaches(make_pg_database: Callable[[str], str], tmp_path: Path) -> None:
    world = _with_odd_direct_messages(draw(Knobs(seed=5, conversations=300, users=200, strangers=7, outside_window=3)))
    url = to_postgres(world, make_pg_database("breaches"))
    engine = create_engine(url)
    found = integrity.check_database(engine, CANONICAL_MAPPING, window_start=WINDOW_START, window_end=WINDOW_END)
    engine.dispose()
    parquet = integrity.check_parquet(to_parquet(world, tmp_path), window_start=WINDOW_START, window_end=WINDOW_END)
    assert found.counts["senders_not_members"] == parquet.counts["senders_not_members"] == 7
    assert found.counts["messages_outside_window"] == parquet.counts["messages_outside_window"] == 3
    assert found.counts["messages_before_conversation"] == parquet.counts["messages_before_conversation"] == 3
    # the empty one and the one with three members; the note to self is no breach
    key = "direct_messages_without_one_or_two_members"
    assert found.counts[key] == parquet.counts[key] == 2


def test_cli_validates_a_database_and_writes_both_reports(
    faithful_pg: str, shape_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, page = tmp_path / "fidelity-report.json", tmp_path / "fidelity-report.html"
    code = main(
        [
            "validate",
            "--shape",
            str(shape_file),
            "--database-url",
            faithful_pg,
            "--output",
            str(out),
            "--html",
            str(page),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.startswith("=== FIDELITY VALIDATION ===")
    assert "[Test 1] Conversation type distribution..." in printed
    assert "Overall Verdict: PASS" in printed and f"[Output] ✓ Written to {out}" in printed
    data = json.loads(out.read_text())
    assert data["overall_verdict"] == "PASS"
    assert {"chi_square_statistic", "p_value", "verdict"} <= data["tests"]["conversation_types"].keys()
    assert {"ks_statistic", "max_percentile_error", "verdict"} <= data["tests"]["messages_per_conversation"].keys()
    assert {"mean_error", "median_error", "verdict"} <= data["tests"]["content_length"].keys()
    assert data["summary"]["recommendations"] == list(ALL_PASS)
    html = page.read_text()
    assert "Overall verdict: PASS" in html and html.count("<svg") >= 9
    assert "<script" not in html and "src=" not in html  # self-contained


def test_cli_exit_codes_follow_the_verdict(
    shape_file: Path, synthetic_dir: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    base = ["validate", "--shape", str(shape_file), "--output", str(out)]
    assert main([*base, "--parquet-dir", str(synthetic_dir(gap_median_s=80.0))]) == 1
    warning = synthetic_dir(seed=2)  # a faithful draw whose message-type p-value rejects by chance
    assert json.loads(out.read_text())["overall_verdict"] == "FAIL"
    assert main([*base, "--parquet-dir", str(warning)]) == 0
    assert json.loads(out.read_text())["overall_verdict"] == "WARNING"
    assert main([*base, "--parquet-dir", str(warning), "--strict"]) == 1
    capsys.readouterr()


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_inputs_exit_2_with_one_line(
    shape_file: Path,
    make_pg_database: Callable[[str], str],
    synthetic_dir: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "never.json"
    parquet = ["--parquet-dir", str(synthetic_dir()), "--output", str(out)]
    assert main(["validate", "--shape", str(tmp_path / "missing.json"), *parquet]) == 2
    assert "missing.json" in _one_line_error(capsys)

    wrong = tmp_path / "v2.json"
    wrong.write_text(json.dumps(json.loads(shape_file.read_text()) | {"schema_version": 2}))
    assert main(["validate", "--shape", str(wrong), *parquet]) == 2
    assert "schema_version" in _one_line_error(capsys)

    empty = make_pg_database("empty")
    engine = create_engine(empty)
    canonical_metadata().create_all(engine)
    engine.dispose()
    assert main(["validate", "--shape", str(shape_file), "--database-url", empty, "--output", str(out)]) == 2
    assert "no messages" in _one_line_error(capsys)

    assert (
        main(["validate", "--shape", str(shape_file), "--parquet-dir", str(tmp_path / "nope"), "--output", str(out)])
        == 2
    )
    assert "nope" in _one_line_error(capsys)

    assert main(["validate", "--shape", str(shape_file), *parquet, "--tolerance", "1.5"]) == 2
    assert "--tolerance" in _one_line_error(capsys)
    assert not out.exists()


def test_an_unreachable_database_is_one_line_without_the_password(production_shape: ShapeMetrics) -> None:
    from shape_pipeline.errors import ShapePipelineError

    with pytest.raises(ShapePipelineError) as caught:
        validate(production_shape, database_url="postgresql://fid:s3cretpw@127.0.0.1:1/nowhere")
    assert "s3cretpw" not in str(caught.value) and "cannot connect" in str(caught.value)


def test_the_demo_sqlite_path_counts_the_same_breaches(production_shape: ShapeMetrics, tmp_path: Path) -> None:
    from shape_pipeline_tests.fidelity.world import to_sqlite

    world = draw(Knobs(seed=6, conversations=200, users=150, strangers=4, outside_window=2))
    url = to_sqlite(world, tmp_path / "development.db")
    report = validate(production_shape, database_url=url)
    parquet = integrity.check_parquet(
        to_parquet(world, tmp_path / "pq"), window_start=WINDOW_START, window_end=WINDOW_END
    )
    counts = report.tests["integrity"].synthetic["counts"]
    assert counts == parquet.counts  # SQLite does not enforce FKs: every rule is counted
    assert counts["senders_not_members"] == 4 and counts["messages_outside_window"] == 2
    assert report.tests["integrity"].verdict == "FAIL"
    assert report.synthetic_source.startswith("sqlite:///")
