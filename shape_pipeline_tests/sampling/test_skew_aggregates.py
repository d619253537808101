"""The skews that decide index behaviour (issue 10): conversations per member, top sender share,
lifetime, recency, size x members grid and messages per day, extracted by SQL and turned into
shape blocks.

Hand-computed answers on the known dataset (both schemas, both engines), window edges, a
Mattermost-style world checked against ground truth computed here from its logical tables with
plain Python, the privacy rules, the export audit, and a canary: no new statement returns text.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from chat_simulator import build_world
from shape_pipeline.contracts import Histogram2D
from shape_pipeline.errors import PrivacyError
from shape_pipeline.mapping import CANONICAL_MAPPING, load_mapping
from shape_pipeline.sampling.audit import audit_export, scan_allow_list
from shape_pipeline.sampling.extract import (
    EXACT_GAP_SECONDS,
    PER_USER,
    SIZE_MEMBERS,
    TOP_SENDER,
    extract_frequencies,
    gap_key,
    gap_segments,
    pow2_bucket,
    round_gaps,
    searched_gap_key,
)
from shape_pipeline.sampling.frequencies import (
    MEMBER_EDGES,
    SIZE_EDGES,
    Frequency,
    FrequencyTables,
    power_of_two_bucket,
)
from shape_pipeline.sampling.privacy import NOTE_SKEW_CELLS, NOTE_SMALL_DISTRIBUTION
from shape_pipeline.sampling.shape import shape_from_frequencies
from shape_pipeline_tests.sampling import dataset as ds
from shape_pipeline_tests.sampling.test_extract import (
    NUMERIC_OIDS,
    Recorded,
    engine_for,
    extract,
    pairs,
    recorder,
)

# ------------------------------------------------------------------ the known dataset, by hand
# In the window: conversation 1 = messages 1-3 (u1, u2, u1; 00:00:00 -> 00:01:30.9 on Jan 1;
# its message 11 at Dec 31 23:59:59 is outside), 2 = messages 4-7 (u3, u4, u3, u1; Jan 6 10:00
# -> Jan 12 23:59:59), 3 = message 8 (Jan 30 23:59:59.999), 5 = messages 9-10 (u11 twice, Jan 15).
# Top sender: 2/3 -> 667, 2/4 -> 500, 1/1 -> 1000, 2/2 -> 1000 (message 11 would make it 750).
TOP_SENDER_PERMILLE = {500: 1, 667: 1, 1000: 2}
# Lifetime: 90.9 s -> 90 (91 with message 11), 6 d 13:59:59 = 568,799 s -> rounded like a gap
# (segment from 501,187, step 256) to 568,771; 0; 5.
LIFETIMES = {0: 1, 5: 1, 90: 1, 568_771: 1}
# Recency: the last 7 days start Jan 24 (only conversation 3); the window is 30 days, so all 4.
RECENT = (1, 4)
# Members of conversations 1, 2, 3, 5: {1,2}, {1..4}, {1..10}, {11,12,1}. Per member: u1 4,
# u2 3, u3 2, u4 2, u5..u10 1 each, u11 1, u12 1 (conversation 4 is not active: u5, u6 only 1).
PER_MEMBER = {1: 8, 2: 2, 3: 1, 4: 1}
# (messages bucket, members bucket): (3 -> 1, 2 -> 1), (4 -> 2, 4 -> 2), (1 -> 0, 10 -> 3), (2 -> 1, 3 -> 1).
GRID = {(1, 1): 2, (2, 2): 1, (0, 3): 1}
# Messages per day from Jan 1: day 0: 3, day 5: 3, day 11: 1, day 14: 2, day 29: 1.
DAYS = {0: 3, 5: 3, 11: 1, 14: 2, 29: 1}


def grid_cells(grid: np.ndarray) -> dict[tuple[int, int], int]:
    return {(int(r), int(c)): int(grid[r, c]) for r, c in np.argwhere(grid)}


def day_list(days: dict[int, int], n: int) -> list[int]:
    return [days.get(i, 0) for i in range(n)]


def assert_skews(f: FrequencyTables) -> None:
    assert pairs(f.top_sender_permille) == TOP_SENDER_PERMILLE
    assert pairs(f.lifetime_seconds) == LIFETIMES
    assert (f.active_last_7_days, f.active_last_30_days) == RECENT
    assert pairs(f.conversations_per_user) == PER_MEMBER
    assert grid_cells(f.size_by_members) == GRID
    assert f.size_by_members.shape == (len(SIZE_EDGES) - 1, len(MEMBER_EDGES) - 1)
    assert f.messages_per_day.tolist() == day_list(DAYS, 30)


@pytest.mark.parametrize("which", ["canonical_pg", "mapped_pg", "canonical_sqlite", "mapped_sqlite"])
def test_hand_computed_skews_on_both_schemas_and_engines(
    which: str, request: pytest.FixtureRequest, mapping_file
) -> None:
    url = request.getfixturevalue(which)
    mapping = load_mapping(mapping_file) if which.startswith("mapped") else CANONICAL_MAPPING
    assert_skews(extract(url, mapping))


@pytest.mark.parametrize("engine_fixture", ["canonical_pg", "canonical_sqlite"])
def test_window_edges_only_in_window_messages_count(engine_fixture: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(engine_fixture)
    tick = timedelta(milliseconds=1)
    # Start 1 ms later: message 1 leaves; conversation 1 is messages 2-3 (u2, u1): top 1/2, lifetime
    # 60.9 -> 60. Days now count from 00:00:00.001 (not a whole hour: PostgreSQL groups by the day key).
    later = extract(url, start=ds.WINDOW_START + tick)
    assert pairs(later.top_sender_permille) == {500: 2, 1000: 2}
    assert pairs(later.lifetime_seconds) == {0: 1, 5: 1, 60: 1, 568_771: 1}
    assert later.messages_per_day.tolist() == day_list({**DAYS, 0: 2}, 30)
    # End 1 ms later: message 12 (conversation 4, u5, exactly at the old end) joins on a 31st,
    # partial day; conversation 4 is one message (lifetime 0, share 1) in the last 7 days; u5, u6
    # are members of one more active conversation.
    wider = extract(url, end=ds.WINDOW_END + tick)
    assert pairs(wider.top_sender_permille) == {500: 1, 667: 1, 1000: 3}
    assert pairs(wider.lifetime_seconds) == {0: 2, 5: 1, 90: 1, 568_771: 1}
    assert (wider.active_last_7_days, wider.active_last_30_days) == (2, 5)
    assert pairs(wider.conversations_per_user) == {1: 6, 2: 4, 3: 1, 4: 1}
    assert wider.messages_per_day.tolist() == day_list({**DAYS, 30: 1}, 31)


def test_power_of_two_buckets_in_sql_match_the_contract(canonical_pg: str) -> None:
    """Integer comparisons in SQL give `power_of_two_bucket` exactly, at and around every edge."""
    values = sorted({0, *(v for e in SIZE_EDGES for v in (e - 1, e, e + 1)), 1 << 30})
    table = sa.Table("vals", sa.MetaData(), sa.Column("v", sa.BigInteger), prefixes=["TEMPORARY"])
    for url, postgres in ((canonical_pg, True), ("sqlite://", False), (canonical_pg, False)):
        with engine_for(url) as engine, engine.connect() as conn:
            table.create(conn)
            conn.execute(table.insert(), [{"v": v} for v in values])
            got = conn.execute(
                sa.select(
                    pow2_bucket(table.c.v, SIZE_EDGES, postgres=postgres),
                    pow2_bucket(table.c.v, MEMBER_EDGES, postgres=postgres),
                ).order_by(table.c.v)
            ).all()
            conn.rollback()
        assert [r[0] for r in got] == power_of_two_bucket(np.array(values), SIZE_EDGES).tolist()
        assert [r[1] for r in got] == power_of_two_bucket(np.array(values), MEMBER_EDGES).tolist()


def test_lifetime_keys_by_search_equal_the_gap_rounding(canonical_pg: str) -> None:
    """PostgreSQL rounds lifetimes with `searched_gap_key` (width_bucket): the same keys as the
    CASE of `gap_key` and the in-memory `round_gaps`, on every segment edge and around it."""
    segments = gap_segments(40 * 86_400)
    lifetimes = sorted({0, 1, *(v for start, _ in segments for v in (start - 1, start, start + 1, start + 777)), 10**8})
    table = sa.Table("life", sa.MetaData(), sa.Column("v", sa.BigInteger), prefixes=["TEMPORARY"])
    with engine_for(canonical_pg) as engine, engine.connect() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"v": v} for v in lifetimes])
        got = conn.execute(
            sa.select(searched_gap_key(table.c.v, segments), gap_key(table.c.v, segments)).order_by(table.c.v)
        ).all()
        conn.rollback()
    expected = round_gaps(np.array(lifetimes), segments).tolist()
    assert [r[0] for r in got] == expected and [r[1] for r in got] == expected
    assert expected[-1] < 10**8  # long lifetimes really are rounded


# ------------------------------------------------------------------ a Mattermost world vs its truth

WORLD_END = datetime(2025, 6, 1, tzinfo=UTC)
WORLD_START = WORLD_END - timedelta(days=30)  # the world spans six weeks: earlier messages exist


def truth(world, start: datetime, end: datetime) -> dict[str, object]:
    """The skews from the world's logical tables, by plain Python (independent of the sampler)."""
    m = world.logical.messages
    conv = m["conversation_id"].to_pylist()
    sender = m["sender_id"].to_pylist()
    at = m["created_at"].to_pylist()
    per_conv: dict[int, list[tuple[datetime, int]]] = {}
    for c, s, t in zip(conv, sender, at, strict=True):
        if start <= t < end:
            per_conv.setdefault(c, []).append((t, s))
    members: dict[int, set[int]] = {}
    for c, u in zip(
        world.logical.members["conversation_id"].to_pylist(), world.logical.members["user_id"].to_pylist(), strict=True
    ):
        members.setdefault(c, set()).add(u)
    segments = gap_segments((end - start).total_seconds())
    top, life, grid, days, per_user = Counter(), Counter(), Counter(), Counter(), Counter()
    last_7 = last_30 = 0
    for c, rows in per_conv.items():
        times = sorted(t for t, _ in rows)
        n = len(rows)
        best = Counter(s for _, s in rows).most_common(1)[0][1]
        top[(2000 * best + n) // (2 * n)] += 1
        seconds = math.floor((times[-1] - times[0]).total_seconds())
        life[int(round_gaps(np.array([seconds]), segments)[0])] += 1
        last_7 += times[-1] >= end - timedelta(days=7)
        last_30 += times[-1] >= end - timedelta(days=30)
        width = len(members.get(c, ()))
        grid[
            (min(n.bit_length() - 1, len(SIZE_EDGES) - 2), min(max(width, 1).bit_length() - 1, len(MEMBER_EDGES) - 2))
        ] += 1
        for u in members.get(c, ()):
            per_user[u] += 1
        for t in times:
            days[(t - start) // timedelta(days=1)] += 1
    return {
        "top": dict(top),
        "life": dict(life),
        "recent": (last_7, last_30),
        "grid": dict(grid),
        "per_user": dict(Counter(per_user.values())),
        "days": day_list(dict(days), 30),
    }


@pytest.fixture(scope="module")
def mattermost(make_pg_database, tmp_path_factory):
    world = build_world("mattermost", 6_000, "skews", WORLD_END)
    url = make_pg_database("mattermost_skews")
    world.load(url)
    mapping = load_mapping(world.write_mapping(tmp_path_factory.mktemp("mm") / "mapping.yaml"))
    return world, url, mapping


def test_a_mattermost_world_gives_the_skews_of_its_logical_tables(mattermost) -> None:
    world, url, mapping = mattermost
    expected = truth(world, WORLD_START, WORLD_END)
    f = extract(url, mapping, start=WORLD_START, end=WORLD_END)
    assert pairs(f.top_sender_permille) == expected["top"]
    assert pairs(f.lifetime_seconds) == expected["life"]
    assert (f.active_last_7_days, f.active_last_30_days) == expected["recent"]
    assert grid_cells(f.size_by_members) == expected["grid"]
    assert pairs(f.conversations_per_user) == expected["per_user"]
    assert f.messages_per_day.tolist() == expected["days"]
    # the world really has what these metrics are about
    assert len(expected["top"]) > 5 and max(expected["life"]) > EXACT_GAP_SECONDS
    assert f.conversations_total < world.logical.conversations.num_rows  # some are not active


def test_no_new_statement_returns_text_on_a_schema_with_text_ids(mattermost) -> None:
    """Mattermost ids are 26-character strings: the members join, the (conversation, sender)
    counts and the per-member counts must still return integers only, and no id."""
    world, url, mapping = mattermost
    ids = set(world.tables["Posts"]["UserId"].to_pylist()) | set(world.tables["Channels"]["Id"].to_pylist())
    recorded: list[Recorded] = []

    with engine_for(url) as engine:
        sa.event.listen(engine, "after_cursor_execute", recorder(recorded))
        extract_frequencies(engine, mapping, window_start=WORLD_START, window_end=WORLD_END)
    data = [r for r in recorded if re.search(r'FROM "?(Posts|Channels|ChannelMembers|Users)"?\b', r[0])]
    metrics = {int(row[0]) for _, types, rows in data if len(types) == 4 for row in rows}
    assert {TOP_SENDER, PER_USER, SIZE_MEMBERS} <= metrics  # the new queries were recorded
    for statement, types, rows in data:
        assert set(types) <= NUMERIC_OIDS, statement
        assert not {cell for row in rows for cell in row} & ids


# ------------------------------------------------------------------ shape blocks and privacy


def skew_tables(**changes: object) -> FrequencyTables:
    grid = np.zeros((len(SIZE_EDGES) - 1, len(MEMBER_EDGES) - 1), dtype=np.int64)
    grid[0, 0], grid[3, 1], grid[5, 4], grid[6, 4] = 40, 25, 3, 12  # 3 is a small cell
    base = FrequencyTables(
        users_total=200,
        conversations_total=80,
        messages_total=2_000,
        messages_per_conversation=Frequency.from_values(np.r_[np.ones(40), np.full(25, 9), np.full(15, 90)]),
        conversations_per_user=Frequency.from_pairs([(1, 100), (2, 50), (7, 30), (40, 2)]),
        top_sender_permille=Frequency.from_pairs([(333, 5), (500, 20), (750, 15), (1000, 40)]),
        lifetime_seconds=Frequency.from_pairs([(0, 40), (120, 20), (86_400, 20)]),
        active_last_7_days=4,
        active_last_30_days=80,
        size_by_members=grid,
        messages_per_day=np.array([0, 500, 3, 700, 797], dtype=np.int64),
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def shape_of(freq: FrequencyTables, k: int | None):
    return shape_from_frequencies(
        freq,
        window_start=ds.WINDOW_START,
        window_end=ds.WINDOW_START + timedelta(days=5),
        extracted_at=ds.WINDOW_END,
        min_cell_count=k,
    )


def test_without_privacy_every_block_is_exact() -> None:
    shape = shape_of(skew_tables(), None)
    share = shape.conversations.top_sender_share
    assert (share.p50, share.max, share.count) == (0.75, 1.0, 80)
    assert share.mean == pytest.approx((333 * 5 + 500 * 20 + 750 * 15 + 1000 * 40) / 80 / 1000)
    assert share.histogram.edges[:3] == [0.0, 0.05, 0.1] and share.histogram.edges[-1] == 1.001
    assert len(share.histogram.counts) == 20 and share.histogram.counts[-1] == 40
    assert shape.users.conversations_per_user.p99 == 40.0
    assert (shape.conversations.lifetime_seconds.p75, shape.conversations.lifetime_seconds.p90) == (120.0, 86_400.0)
    assert shape.conversations.recency.model_dump() == {"active_last_7_days": 4, "active_last_30_days": 80}
    grid = shape.conversations.size_by_members
    assert grid.row_edges == [1, 2, 4, 8, 16, 32, 64, 128] and grid.column_edges == [1, 2, 4, 8, 16, 32]
    assert grid.counts[0] == [40, 0, 0, 0, 0] and grid.counts[5][4] == 3
    assert shape.messages.daily_counts == [0, 500, 3, 700, 797]
    assert shape.privacy is None


def test_small_cells_are_zeroed_tallied_and_noted() -> None:
    exact, private = shape_of(skew_tables(), None), shape_of(skew_tables(), 10)
    assert private.conversations.recency.model_dump() == {"active_last_7_days": 0, "active_last_30_days": 80}
    # day 2 (3) is small, and totals.messages minus the other days would give it back (day 0 is
    # a true 0 its weekday's total confirms): the smallest other day (500) is zeroed with it
    assert private.messages.daily_counts == [0, 0, 0, 700, 797]
    # (5, 4) = 3 is small; column 4's total may follow from the members histogram, so its other
    # cell (6, 4) = 12 goes too, and the grid is trimmed to what is left
    grid = private.conversations.size_by_members
    assert grid.counts == [[40, 0], [0, 0], [0, 0], [0, 25]]
    assert NOTE_SKEW_CELLS in private.privacy.notes
    assert private.privacy.suppressed_cells >= 3  # recency 4, day 3, grid cell 3
    # tail percentiles are histogram edges and the max is rounded up, as for any distribution:
    # 40 memberships is one of 2 members' value (a multiple of 10: stays 40); shares keep their unit
    assert private.users.conversations_per_user.max >= exact.users.conversations_per_user.max
    assert 0 < private.conversations.top_sender_share.p1 <= private.conversations.top_sender_share.max <= 1.0
    assert all(c == 0 or c >= 10 for c in private.conversations.top_sender_share.histogram.counts)


def test_the_grid_is_trimmed_to_the_cells_left_after_suppression() -> None:
    grid = np.zeros((len(SIZE_EDGES) - 1, len(MEMBER_EDGES) - 1), dtype=np.int64)
    # (9, 1) is small and alone in its row and column: the whole (totals.conversations) would
    # give it back, so the smallest other cell (4, 2) = 11 is zeroed as well; row 2, column 3 left
    grid[2, 3], grid[9, 1], grid[4, 2] = 30, 2, 11
    shape = shape_of(skew_tables(size_by_members=grid), 10)
    assert shape.conversations.size_by_members == Histogram2D(row_edges=[4, 8], column_edges=[8, 16], counts=[[30]])


def test_tiny_populations_and_empty_windows_omit_the_blocks() -> None:
    tiny = skew_tables(
        conversations_total=6,
        messages_total=9,
        conversations_per_user=Frequency.from_pairs([(1, 4)]),
        top_sender_permille=Frequency.from_pairs([(1000, 6)]),
        lifetime_seconds=Frequency.from_pairs([(0, 6)]),
        active_last_7_days=2,
        active_last_30_days=6,
        size_by_members=np.eye(len(SIZE_EDGES) - 1, len(MEMBER_EDGES) - 1, dtype=np.int64) * 2,
        messages_per_day=np.array([0, 9, 0, 0, 0]),
    )
    shape = shape_of(tiny, 10)
    conv = shape.conversations
    assert shape.users.conversations_per_user is None and conv.top_sender_share is None
    assert conv.lifetime_seconds is None and conv.recency is None and conv.size_by_members is None
    assert shape.messages.daily_counts is None
    assert NOTE_SMALL_DISTRIBUTION in shape.privacy.notes
    exact = shape_of(tiny, None)  # the synthetic side sees every block
    assert exact.conversations.recency.active_last_7_days == 2 and exact.messages.daily_counts == [0, 9, 0, 0, 0]
    empty = shape_of(FrequencyTables(), None)
    assert empty.conversations.recency is None and empty.messages.daily_counts is None
    assert empty.conversations.size_by_members is None and empty.users.conversations_per_user is None


# ------------------------------------------------------------------ the export audit


def test_a_real_export_with_every_skew_block_passes_the_audit(canonical_pg: str) -> None:
    f = extract(canonical_pg)
    shape = shape_from_frequencies(
        f, window_start=ds.WINDOW_START, window_end=ds.WINDOW_END, extracted_at=ds.WINDOW_END, min_cell_count=1
    )
    data = json.loads(shape.model_dump_json())
    for block in ("top_sender_share", "lifetime_seconds", "recency", "size_by_members"):
        assert data["conversations"][block] is not None, block
    assert data["users"]["conversations_per_user"] and data["messages"]["daily_counts"]
    assert audit_export(data).conversations.recency.active_last_7_days == 1


def test_the_audit_still_refuses_anything_else_in_the_new_blocks() -> None:
    data = json.loads(shape_of(skew_tables(), 10).model_dump_json())
    smuggled = json.loads(json.dumps(data))
    smuggled["conversations"]["size_by_members"]["alice.canary@example.com"] = 1
    with pytest.raises(PrivacyError, match="size_by_members has a key that is not allowed"):
        scan_allow_list(smuggled)
    smuggled = json.loads(json.dumps(data))
    smuggled["conversations"]["recency"]["top_room"] = "secret-alice-room"
    with pytest.raises(PrivacyError, match="export audit failed"):
        audit_export(smuggled)
    smuggled = json.loads(json.dumps(data))
    smuggled["privacy"]["notes"].append("conversation secret-alice-room had 3 messages")
    with pytest.raises(PrivacyError, match="notes.* string that is not allowed"):
        audit_export(smuggled)
    assert audit_export(data).messages.daily_counts == [0, 0, 0, 700, 797]
