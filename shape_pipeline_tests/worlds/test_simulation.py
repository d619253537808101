"""The simulated worlds: deterministic, and each quirk a real production shows is present."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import yaml

import chat_simulator
from chat_simulator import World, build_world, simulate

END = datetime(2025, 6, 2, tzinfo=UTC)
HUMAN = ["TEXT", "IMAGE", "FILE", "AUDIO", "VIDEO"]


@pytest.fixture(scope="module")
def world() -> chat_simulator.LogicalWorld:
    return simulate(60_000, "quirks", END)


def per_user(world: chat_simulator.LogicalWorld) -> np.ndarray:
    return np.bincount(world.messages["sender_id"].to_numpy(), minlength=world.users.num_rows)


def test_same_seed_same_world_other_seed_other_world() -> None:
    for schema in chat_simulator.SCHEMAS:
        a, b = build_world(schema, 3_000, "s1", END), build_world(schema, 3_000, "s1", END)
        assert a.tables.keys() == b.tables.keys()
        assert all(a.tables[n].equals(b.tables[n]) for n in a.tables), schema
    one, other = simulate(3_000, "s1", END), simulate(3_000, "s2", END)
    assert not one.messages.equals(other.messages)
    assert one.messages["created_at"] != other.messages["created_at"]


def test_size_is_about_the_target_from_hundreds_to_hundreds_of_thousands() -> None:
    for target in (300, 5_000):
        assert abs(simulate(target, "size", END).messages.num_rows - target) <= max(10, target // 50)
    started = time.perf_counter()
    big = simulate(200_000, "size", END)
    assert big.messages.num_rows == 200_000
    assert time.perf_counter() - started < 15


def test_every_message_lies_in_the_six_weeks_before_end(world) -> None:
    created = world.messages["created_at"]
    assert pc.min(created).as_py() >= datetime(2025, 4, 21, tzinfo=UTC)
    assert pc.max(created).as_py() < END
    assert world.start == datetime(2025, 4, 21, tzinfo=UTC) and world.end == END


def test_activity_is_heavy_tailed_and_some_people_are_silent(world) -> None:
    counts = per_user(world)
    humans = ~world.users["is_bot"].to_numpy(zero_copy_only=False)
    human_counts = np.sort(counts[humans])[::-1]
    top = human_counts[: max(1, human_counts.size // 100)].sum() / human_counts.sum()
    assert top >= 0.30
    senders = human_counts[human_counts > 0]
    assert np.median(senders) <= 10
    assert (human_counts == 0).mean() >= 0.15


def test_rooms_grow_by_preferential_attachment(world) -> None:
    kinds = world.conversations["kind"].to_numpy(zero_copy_only=False)
    sizes = np.bincount(world.members["conversation_id"].to_numpy(), minlength=kinds.size)
    rooms = np.sort(sizes[np.isin(kinds, ["OPEN", "PRIVATE"])])[::-1]
    assert rooms.size >= 40
    assert np.median(rooms) <= 5
    assert rooms[1] >= 20 * np.median(rooms)  # the biggest non-default rooms dwarf the median one


def test_direct_messages_include_notes_to_self(world) -> None:
    kinds = world.conversations["kind"].to_numpy(zero_copy_only=False)
    sizes = np.bincount(world.members["conversation_id"].to_numpy(), minlength=kinds.size)
    direct = sizes[kinds == "DIRECT"]
    assert set(np.unique(direct)) <= {1, 2}
    assert 0.10 <= (direct == 1).mean() <= 0.40


def test_replies_come_in_bursts_with_long_silences(world) -> None:
    conv = world.messages["conversation_id"].to_numpy()
    ms = world.messages["created_at"].cast("int64").to_numpy()
    order = np.lexsort((ms, conv))
    same = conv[order][1:] == conv[order][:-1]
    gaps = np.diff(ms[order])[same] / 1000
    assert np.mean(gaps < 120) >= 0.3  # a message raises the short-term rate of its conversation
    assert np.mean(gaps > 6 * 3600) >= 0.05
    assert world.messages["root_id"].null_count < world.messages.num_rows  # some replies are threaded


def test_time_zones_days_and_the_volume_over_the_window(world) -> None:
    assert len(set(world.users["time_zone"].to_pylist())) >= 6
    ms = world.messages["created_at"].cast("int64").to_numpy()
    days = (ms - ms.min()) // 86_400_000
    per_day = np.bincount(days)
    weekday = (ms // 86_400_000 + 3) % 7
    assert np.mean(weekday >= 5) < 0.2  # quieter weekends (2/7 = 0.29 if flat)
    assert per_day[-14:].mean() > 1.15 * per_day[:14].mean()  # growth and a launch spike
    hours = np.bincount((ms // 3_600_000) % 24, minlength=24)
    assert hours.max() > 3 * hours.min()


def test_bots_post_many_messages_at_a_regular_cadence(world) -> None:
    bots = np.flatnonzero(world.users["is_bot"].to_numpy(zero_copy_only=False))
    assert 2 <= bots.size <= 8
    counts = per_user(world)
    sender = world.messages["sender_id"].to_numpy()
    ms = world.messages["created_at"].cast("int64").to_numpy()
    for bot in bots.tolist():
        assert counts[bot] >= np.percentile(counts, 99)
        gaps = np.diff(np.sort(ms[sender == bot]))
        assert gaps.std() < 0.05 * gaps.mean()


def test_system_media_edits_and_soft_deletes(world) -> None:
    kinds = world.messages["kind"].value_counts().to_pylist()
    share = {k["values"]: k["counts"] / world.messages.num_rows for k in kinds}
    for system in ("JOIN", "LEAVE", "HEADER"):
        assert share[system] > 0
    assert share["IMAGE"] > 0.03 and share["FILE"] > 0.01
    assert 0 < share["AUDIO"] < 0.01 and 0 < share["VIDEO"] < 0.01
    assert world.messages["edited_at"].null_count < world.messages.num_rows
    assert world.messages["deleted_at"].null_count < world.messages.num_rows
    assert world.users["deleted_at"].null_count < world.users.num_rows
    edited = world.messages.filter(pc.is_valid(world.messages["edited_at"]))
    assert pc.all(pc.greater(edited["edited_at"], edited["created_at"])).as_py()


def test_content_lengths_are_heavy_tailed_and_file_posts_often_empty(world) -> None:
    lengths = pc.utf8_length(world.messages["content"]).to_numpy()
    kinds = world.messages["kind"].to_numpy(zero_copy_only=False)
    text = lengths[kinds == "TEXT"]
    assert 15 <= np.median(text) <= 80
    assert np.percentile(text, 99.9) > 20 * np.median(text)
    assert np.mean(lengths[np.isin(kinds, ["IMAGE", "FILE"])] == 0) > 0.4


def test_unset_profile_values_are_both_null_and_empty(world) -> None:
    for column in ("display_name", "bio", "avatar_url", "nickname", "position"):
        values = world.users[column]
        assert values.null_count > 0, column
        assert pc.sum(pc.equal(values, "")).as_py() > 0, column


def test_the_world_looks_like_it_holds_personal_data(world) -> None:
    emails = world.users["email"].to_pylist()
    assert len(set(emails)) == len(emails) and all(e.split("@")[1].startswith("example.") for e in emails)
    content = " ".join(world.messages["content"].to_pylist()[:3_000])
    assert "@example." in content and "555-01" in content


def test_each_schema_has_its_mapping(tmp_path: Path) -> None:
    small = build_world("mattermost", 500, "m", END)
    assert isinstance(small, World)
    written = yaml.safe_load(small.write_mapping(tmp_path / "mapping.yaml").read_text())
    posts = written["messages"]["type"]
    assert posts["values"][""] == "TEXT" and not any(raw.startswith("system_") for raw in posts["values"])
    assert posts["other"] == "system_join_channel"  # written for OTHER; the system codes stay unnamed
    slack = yaml.safe_load(build_world("slack", 500, "m", END).mapping_yaml or "")["messages"]["type"]
    assert slack["default"] == "TEXT" and not any(raw.startswith("channel_") for raw in slack["values"])
    assert slack["other"] == "channel_join"
    assert "SYSTEM" not in (build_world("canonical", 500, "m", END).mapping_yaml or "").split("users:")[1]


def test_a_million_messages_in_memory_in_under_thirty_seconds() -> None:
    started = time.perf_counter()
    world = build_world("mattermost", 1_000_000, "big", END)
    assert world.tables["Posts"].num_rows == 1_000_000
    assert time.perf_counter() - started < 30


def test_the_simulator_is_independent_of_the_project() -> None:
    probe = (
        "import sys, chat_simulator, chat_simulator.load; "
        "print([m for m in sys.modules if m == 'shape_pipeline' or m.startswith('shape_pipeline.')])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    package = Path(chat_simulator.__file__).parent
    files = list(package.rglob("*.py"))
    assert len(files) >= 8
    assert [f.name for f in files if "shape_pipeline" in f.read_text()] == []
