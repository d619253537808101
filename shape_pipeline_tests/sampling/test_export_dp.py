"""DP mode end to end: the default, the bounds inside SQL, the epsilon ledger, the audit."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from chat_simulator import build_world
from shape_pipeline.audit_log import read_audit_log
from shape_pipeline.errors import PrivacyError, ShapePipelineError
from shape_pipeline.mapping import load_mapping
from shape_pipeline.sampling.audit import audit_export
from shape_pipeline.sampling.bounded import ContributionBound, extract_bounded, seed_from_salt
from shape_pipeline.sampling.export import DpSettings, sample_to_file

from .dataset import CANARIES

END = datetime(2025, 6, 2, tzinfo=UTC)
START = END - timedelta(days=30)


def _salt() -> str:
    return secrets.token_hex(32)


@pytest.fixture(scope="module")
def world_urls(make_pg_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One simulated production (not the generator's) in PostgreSQL and in SQLite."""
    world = build_world("canonical", 8_000, "dp-export", END)
    urls = {
        "postgresql": make_pg_database("dp_export"),
        "sqlite": f"sqlite:///{tmp_path_factory.mktemp('dp') / 'p.db'}",
    }
    for url in urls.values():
        world.load(url)
    return urls


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_bounds_hold_inside_sql_and_the_kept_rows_follow_the_salt(world_urls: dict[str, str], dialect: str) -> None:
    from shape_pipeline.db import create_engine

    engine = create_engine(world_urls[dialect])
    mapping = load_mapping(None)

    def extract(salt: str, messages: int = 5, conversations: int = 2):
        bound = ContributionBound(messages, conversations, seed_from_salt(salt))
        return extract_bounded(engine, mapping, window_start=START, window_end=END, bound=bound)

    try:
        salt = _salt()
        first, again, other = extract(salt), extract(salt), extract(_salt())
    finally:
        engine.dispose()
    assert first.per_user.messages_per_sender.values.max() > 5  # the unbounded pass sees busy senders
    assert first.per_message.messages_per_sender.values.max() <= 5  # L: at most 5 messages a sender
    assert first.per_conversation.conversations_per_user.values.max() <= 2  # C: at most 2 conversations a user
    assert first.per_message.messages_total < first.per_user.messages_total
    lengths = first.per_message.content_length
    assert np.array_equal(lengths.counts, again.per_message.content_length.counts)  # same salt, same rows
    assert not np.array_equal(lengths.counts, other.per_message.content_length.counts)  # another salt, others


def test_dp_is_the_default_and_the_file_records_the_guarantee(
    world_urls: dict[str, str], tmp_path: Path, capsys
) -> None:
    result = sample_to_file(
        world_urls["postgresql"],
        output=tmp_path / "s.json",
        as_of=END.date().isoformat(),
        salt=_salt(),
        audit_log=tmp_path / "a.jsonl",
    )
    privacy = result.shape.privacy
    assert privacy is not None and privacy.mode == "dp" and privacy.min_cell_count is None
    dp = privacy.dp
    assert dp is not None and dp.privacy_unit == "user" and dp.library.startswith("opendp ")
    assert math.isclose(sum(f.epsilon for f in dp.families.values()), dp.epsilon) and dp.epsilon == 2.0
    for family in dp.families.values():
        assert math.isclose(family.scale, family.sensitivity / family.epsilon)
    assert dp.family_of("messages.content_length_stats") is not None
    layout = result.shape.physical_layout
    assert layout is not None and all(t.rows is None for t in layout.tables.values())  # exact counts dropped
    [entry] = read_audit_log(tmp_path / "a.jsonl")
    assert entry["privacy"] == "dp" and entry["epsilon"] == 2.0 and entry["budget_override"] is False
    assert math.isclose(sum(entry["epsilon_by_family"].values()), 2.0)
    out = capsys.readouterr().out
    assert "Differential privacy: epsilon 2" in out and "(noisy)" in out
    audit_export((tmp_path / "s.json").read_text())  # and the written file passes the audit again


def test_the_yearly_budget_refuses_the_fifth_quarterly_extraction(
    world_urls: dict[str, str], tmp_path: Path, capsys
) -> None:
    log = tmp_path / "audit.jsonl"
    for quarter in range(4):
        now = END + timedelta(days=91 * quarter)
        sample_to_file(
            world_urls["sqlite"],
            output_dir=tmp_path,
            as_of=END.date().isoformat(),
            salt=_salt(),
            audit_log=log,
            now=now,
        )
    before = sorted(tmp_path.glob("*.json"))
    with pytest.raises(PrivacyError, match="epsilon budget exceeded") as refused:
        sample_to_file(
            world_urls["sqlite"],
            output_dir=tmp_path,
            as_of=END.date().isoformat(),
            salt=_salt(),
            audit_log=log,
            now=END + timedelta(days=364),
        )
    assert str(log) in str(refused.value) and "\n" not in str(refused.value)
    assert sorted(tmp_path.glob("*.json")) == before and len(read_audit_log(log)) == 4  # nothing written
    capsys.readouterr()
    sample_to_file(
        world_urls["sqlite"],
        output_dir=tmp_path,
        as_of=END.date().isoformat(),
        salt=_salt(),
        audit_log=log,
        now=END + timedelta(days=364),
        dp=DpSettings(override_budget=True),
    )
    assert "Epsilon budget overridden" in capsys.readouterr().out
    assert read_audit_log(log)[-1]["budget_override"] is True
    # a year after the first extraction it has left the window: the next one fits again
    sample_to_file(
        world_urls["sqlite"],
        output_dir=tmp_path,
        as_of=END.date().isoformat(),
        salt=_salt(),
        audit_log=tmp_path / "fresh.jsonl",
        now=END + timedelta(days=400),
    )


@pytest.mark.parametrize(
    ("settings", "option"),
    [
        (DpSettings(epsilon=0.0), "--epsilon"),
        (DpSettings(epsilon=float("nan")), "--epsilon"),
        (DpSettings(max_messages_per_user=0), "--max-messages-per-user"),
    ],
)
def test_impossible_dp_settings_are_one_line_naming_the_option(
    tmp_path: Path, settings: DpSettings, option: str
) -> None:
    with pytest.raises(ShapePipelineError, match=option):
        sample_to_file(
            "sqlite:///nowhere.db", output_dir=tmp_path, salt=_salt(), audit_log=tmp_path / "a.jsonl", dp=settings
        )
    assert list(tmp_path.iterdir()) == []


def test_unknown_privacy_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ShapePipelineError, match="--privacy"):
        sample_to_file("sqlite:///nowhere.db", output_dir=tmp_path, salt=_salt(), privacy="none")


def test_the_audit_refuses_an_unknown_family_or_statistic(world_urls: dict[str, str], tmp_path: Path) -> None:
    result = sample_to_file(
        world_urls["sqlite"],
        output=tmp_path / "s.json",
        as_of=END.date().isoformat(),
        salt=_salt(),
        audit_log=tmp_path / "a.jsonl",
    )
    data = json.loads(result.path.read_text())
    families = data["privacy"]["dp"]["families"]
    renamed = json.loads(json.dumps(data))
    renamed["privacy"]["dp"]["families"]["alice.canary@example.com"] = families["users"]
    with pytest.raises(PrivacyError, match="privacy.dp.families"):
        audit_export(renamed)
    pathed = json.loads(json.dumps(data))
    pathed["privacy"]["dp"]["families"]["users"]["statistics"].append("call 555-0142")
    with pytest.raises(PrivacyError, match="statistics"):
        audit_export(pathed)
    text = result.path.read_text()
    assert not any(canary in text for canary in CANARIES)
