"""Suppression-mode exports against an attacker who reads only the shape file (issue 12, item 3).

Each test plays the attack that recovered an exact value before: a zeroed hour x day cell from
its margins, a maximum from count x mean and the histogram, the few smallest values from low
percentiles, a tiny total. The database attacks run end to end on PostgreSQL through
`sample_to_file`; the pure ones build frequency tables. Each attack asserts that the attacker
is left with more than one candidate (or derives something other than the truth).
"""

from __future__ import annotations

import inspect
import json
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from shape_pipeline.calibration.activity import sender_share
from shape_pipeline.calibration.calibrate import totals as calibrated_totals
from shape_pipeline.contracts import DistributionStats, ShapeMetrics, Totals
from shape_pipeline.db import create_engine
from shape_pipeline.errors import PrivacyError
from shape_pipeline.mapping import canonical_metadata
from shape_pipeline.sampling.audit import audit_export, audit_file, scan_allow_list
from shape_pipeline.sampling.export import sample_to_file
from shape_pipeline.sampling.frequencies import MEMBER_EDGES, SIZE_EDGES, Frequency, FrequencyTables
from shape_pipeline.sampling.privacy import round_sig, round_up_cap
from shape_pipeline.sampling.shape import shape_from_frequencies

K = 10
START = datetime(2025, 1, 1, tzinfo=UTC)  # a Wednesday; the window is January (--as-of 2025-01-31)
END = datetime(2025, 1, 31, tzinfo=UTC)
NOW = datetime(2025, 2, 3, 14, 30, tzinfo=UTC)
CREATED = datetime(2024, 12, 1, tzinfo=UTC)

# ------------------------------------------------------------------------------ helpers


def build(url: str, users: int, messages: list[tuple[int, datetime]], conversation_size: int | None = None) -> str:
    """A canonical-schema database: `users` users, one channel of the first `conversation_size`
    (all by default), and `messages` as (sender, time) in it."""
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    md = canonical_metadata()
    md.create_all(engine)
    t = md.tables
    members = range(1, (conversation_size or users) + 1)
    try:
        with engine.begin() as conn:
            conn.execute(
                t["users"].insert(),
                [
                    dict(id=u, username=f"user{u}", email=f"user{u}@example.org", created_at=CREATED)
                    for u in range(1, users + 1)
                ],
            )
            conn.execute(t["conversations"].insert(), [dict(id=1, type="CHANNEL", name="all", created_at=CREATED)])
            conn.execute(
                t["conversation_members"].insert(),
                [dict(conversation_id=1, user_id=u, joined_at=CREATED) for u in members],
            )
            conn.execute(
                t["messages"].insert(),
                [
                    dict(id=i, conversation_id=1, sender_id=s, type="TEXT", content="x", created_at=at)
                    for i, (s, at) in enumerate(messages, start=1)
                ],
            )
    finally:
        engine.dispose()
    return url


def export(url: str, tmp_path: Path) -> ShapeMetrics:
    """One suppression-mode extraction (k = 10, a fresh strong salt), read back from the file."""
    mode = {"privacy": "suppression"} if "privacy" in inspect.signature(sample_to_file).parameters else {}
    result = sample_to_file(
        url, output=tmp_path / "shape.json", as_of="2025-01-31", min_cell_count=K, salt=secrets.token_hex(32),
        audit_log=tmp_path / "audit.jsonl", now=NOW, **mode,
    )  # fmt: skip
    return audit_file(result.path)


def shape(tables: FrequencyTables) -> ShapeMetrics:
    return shape_from_frequencies(tables, window_start=START, window_end=END, extracted_at=END, min_cell_count=K)


def burst(sender: Callable[[int], int], at: datetime, n: int) -> list[tuple[int, datetime]]:
    """n messages a second apart from `at`."""
    return [(sender(i), at + timedelta(seconds=i)) for i in range(n)]


def grid_lines(rows: int, columns: int) -> list[np.ndarray]:
    index = np.arange(rows * columns).reshape(rows, columns)
    return [*index, *index.T]


def small_cells_pinned(true: np.ndarray, published: Iterable[int], lines: list[np.ndarray]) -> list[tuple[int, int]]:
    """(cell, value) of every small cell an attacker solves, knowing the true total of each line
    and of the whole: a line's total minus its shown cells is what its zero cells hold; when a
    single zero cell can hold it (the others lie on lines that hide nothing), that is its value."""
    t, p = true.ravel(), np.asarray(list(published)).ravel()
    lines = [*lines, np.arange(t.size)]
    hidden = [int(t[line].sum() - p[line].sum()) for line in lines]
    quiet = {c for line, h in zip(lines, hidden, strict=True) if h == 0 for c in line.tolist()}
    out = []
    for line, h in zip(lines, hidden, strict=True):
        cells = [c for c in line.tolist() if p[c] == 0 and c not in quiet]
        if 0 < h < K and len(cells) == 1:
            out.append((cells[0], h))
    return out


def published_as(published: float, value: float, digits: int | None) -> bool:
    """Is `published` the value at 2 or 1 significant digits, or exact (digits None)?"""
    return published == (round_sig(value, digits) if digits else pytest.approx(value, rel=1e-9))


def top_candidates(stats: DistributionStats, others: np.ndarray) -> list[int]:
    """Every value the largest entity can have for an attacker who knows every other value
    exactly: consistent with the max's rounding, the top bucket, and the mean and stddev
    (exact, or rounded to whichever of 2 or 1 significant digits they were published at)."""
    edges, counts = stats.histogram.edges, stats.histogram.counts
    top = max(i for i, c in enumerate(counts) if c)
    out = []
    for t in range(int(edges[top]), int(edges[top + 1])):
        values = np.append(others, t).astype(float)
        if min(round_up_cap(values.max()), edges[top + 1] - 1) != stats.max:
            continue
        if stats.mean is not None and not any(
            published_as(stats.mean, values.mean(), d) and published_as(stats.stddev, values.std(), d)
            for d in (None, 2, 1)
        ):
            continue
        out.append(t)
    return out


# ------------------------------------------------------------------------------ 1. derived cells


def test_a_zeroed_hour_cell_cannot_be_derived_from_margins_days_or_totals(
    make_pg_database: Callable[[str], str], tmp_path: Path
) -> None:
    """4 messages on Monday 6 January at 10h: margins, Monday's days in daily_counts and
    totals.messages must all leave the attacker without the 4."""
    at = datetime(2025, 1, 6, 10, tzinfo=UTC)  # Monday (row 0)
    messages = [
        *burst(lambda i: 1 + i % 60, at, 4),  # the small cell: Monday 10h
        *burst(lambda i: 1 + i % 60, at + timedelta(hours=2), 30),  # Monday 12h
        *burst(lambda i: 1 + i % 60, at + timedelta(days=1), 30),  # Tuesday 10h
        *burst(lambda i: 1 + i % 60, at + timedelta(days=2, hours=2), 30),  # Wednesday 12h
        *burst(lambda i: 1 + i % 60, at + timedelta(days=3, hours=4), 40),  # Thursday 14h
        *burst(lambda i: 1 + i % 60, at + timedelta(days=7, hours=6), 3),  # Monday 13 January 16h: a small day
    ]
    s = export(build(make_pg_database("derived_cells"), 60, messages), tmp_path)
    grid = np.array(s.messages.hour_by_day_of_week)
    hourly, weekly = np.array(s.messages.hourly_counts), np.array(s.messages.day_of_week_counts)
    assert grid[0, 10] == 0 and grid.sum() > 0 and s.totals.messages == 137  # suppressed, not everything

    # The margins: margin minus the rest of the line. They are sums of the published grid now.
    assert weekly[0] - grid[0].sum() == 0 != 4 and hourly[10] - grid[:, 10].sum() == 0 != 4
    assert (hourly == grid.sum(axis=0)).all() and (weekly == grid.sum(axis=1)).all()

    # Worst case: the attacker knows every weekday's and hour's true total (daily_counts give the
    # weekdays, totals.messages the whole; nothing gives the hours). No small cell may come out.
    true = np.zeros((7, 24), dtype=np.int64)
    for _, moment in messages:
        true[moment.weekday(), moment.hour] += 1
    assert true[0, 10] == 4 and small_cells_pinned(true, grid.ravel(), grid_lines(7, 24)) == []

    # Monday's days (and every weekday's) against the grid's true rows, and the whole.
    days = np.array(s.messages.daily_counts)
    true_days = np.bincount([(moment - START).days for _, moment in messages], minlength=len(days))
    weekdays = (START.weekday() + np.arange(len(days))) % 7
    assert small_cells_pinned(true_days, days, [np.flatnonzero(weekdays == w) for w in range(7)]) == []


def test_every_total_and_its_published_parts_leave_no_small_remainder() -> None:
    """Recency, profile completeness, the size x members grid and daily counts, each against
    the total an attacker knows: what the total leaves unexplained is 0 or at least k."""
    size_grid = np.zeros((len(SIZE_EDGES) - 1, len(MEMBER_EDGES) - 1), dtype=np.int64)
    size_grid[0, 0], size_grid[0, 1], size_grid[3, 1], size_grid[3, 2] = 40, 3, 25, 12
    tables = FrequencyTables(
        users_total=100, conversations_total=80, messages_total=2_000,
        profile_fields_set={"avatar_url": 96, "bio": 4, "display_name": 50},
        active_last_7_days=50, active_last_30_days=53,  # 3 between 7 and 30 days: derivable before
        size_by_members=size_grid,
        messages_per_day=np.array([500, 3, 700, 797], dtype=np.int64),
    )  # fmt: skip
    s = shape(tables)
    recency = s.conversations.recency
    cuts = [0, recency.active_last_7_days, recency.active_last_30_days, 80]
    assert all(b - a == 0 or b - a >= K for a, b in zip(cuts, cuts[1:], strict=False)), cuts
    for field, share in s.users.profile_completeness.items():
        shown = round(share * 100)
        assert (shown == 0 or shown >= K) and (100 - shown == 0 or 100 - shown >= K), field
    published = np.zeros_like(size_grid)  # the trimmed grid, back in place (it starts at row 0, column 0)
    grid = np.array(s.conversations.size_by_members.counts)
    published[: grid.shape[0], : grid.shape[1]] = grid
    assert published[0, 1] == 0 and small_cells_pinned(size_grid, published.ravel(), grid_lines(*size_grid.shape)) == []
    # One day per weekday and no hour grid here: totals.messages is the line the attacker knows.
    assert (
        s.messages.daily_counts[1] == 0
        and small_cells_pinned(tables.messages_per_day, s.messages.daily_counts, []) == []
    )


# ------------------------------------------------------------------------------ 2. the max bypass


def test_the_max_cannot_be_solved_from_count_mean_and_the_histogram(
    make_pg_database: Callable[[str], str], tmp_path: Path
) -> None:
    """300 users with 1-3 messages and one with 4,567. The attacker reads the others off the
    1-wide buckets and the exact p99 (3: the top bucket's lower edge), then solves the sum."""
    per_user = {u: 1 + (u - 1) // 100 for u in range(1, 301)} | {301: 4_567}
    senders = [u for u, n in per_user.items() for _ in range(n)]
    messages = [(u, START + timedelta(hours=1, minutes=5 * i)) for i, u in enumerate(senders)]
    s = export(build(make_pg_database("max_bypass"), 301, messages), tmp_path)
    stats = s.messages.messages_per_sender
    edges, counts = stats.histogram.edges, stats.histogram.counts
    assert stats.count == 301 and stats.max == 4_600 and stats.p99 == 3

    # What the file tells: every entity of a 1-wide bucket, the top bucket's all but one at its edge.
    known = [edges[i] for i, c in enumerate(counts) for _ in range(c) if c and edges[i + 1] - edges[i] == 1]
    top = max(i for i, c in enumerate(counts) if c)
    known += [edges[top]] * (counts[top] - 1)
    others = np.array(known)
    assert sorted(others.tolist()) == sorted(v for u, v in per_user.items() if u != 301)  # all correct

    candidates = top_candidates(stats, others)
    assert 4_567 in candidates and len(candidates) >= 2, candidates
    assert stats.mean != pytest.approx(5_167 / 301) and stats.stddev == round_sig(stats.stddev, 2)


# ------------------------------------------------------------------------------ 3. small values


def test_low_percentiles_and_a_small_groups_size_are_not_exact_values() -> None:
    """40 messages, the 1st, 2nd and 4th shortest of lengths 0, 2 and 5 (p1, p5, p10); 12 group
    chats, the largest of 9 members (max, p99). Values under 100 were published as they are."""
    lengths = np.array([0, 2, 3, 5, *np.linspace(20, 80, 36).astype(int)])
    sizes = np.array([3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 7, 9])
    tables = FrequencyTables(
        users_total=100, conversations_total=12, messages_total=40,
        content_length=Frequency.from_values(lengths),
        conversation_types={"GROUP_CHAT": 12},
        members_per_conversation={"GROUP_CHAT": Frequency.from_values(sizes)},
    )  # fmt: skip
    s = shape(tables)
    content = s.messages.content_length_stats
    assert (content.p1, content.p5, content.p10) != (0, 2, 5)
    cumulative = np.cumsum(content.histogram.counts)
    for key, rank in (("p1", 1), ("p5", 2), ("p10", 4)):
        # The attacker's candidates for the rank-th shortest: every length of its published bucket.
        bucket = int(np.searchsorted(cumulative, rank))
        lo, hi = content.histogram.edges[bucket], content.histogram.edges[bucket + 1]
        assert hi - lo >= 2 and lo <= getattr(content, key) < hi, key

    groups = s.conversations.members_per_conversation["GROUP_CHAT"]
    assert groups.max != 9 and groups.p99 != 9
    # Even knowing the other 11 groups' sizes exactly, the largest group is not pinned.
    candidates = top_candidates(groups, sizes[:-1])
    assert 9 in candidates and len(candidates) >= 2, candidates


def test_without_a_threshold_the_synthetic_side_stays_exact() -> None:
    lengths = np.array([0, 2, 3, 5, *range(20, 56)])
    tables = FrequencyTables(messages_total=40, content_length=Frequency.from_values(lengths))
    exact = shape_from_frequencies(tables, window_start=START, window_end=END, extracted_at=END, min_cell_count=None)
    stats = exact.messages.content_length_stats
    assert (stats.p1, stats.p5, stats.p10, stats.max, stats.mean) == (0, 2, 5, 55, lengths.mean())


# ------------------------------------------------------------------------------ 4. totals below k


def test_three_users_export_their_total_as_below_the_threshold(
    make_pg_database: Callable[[str], str], tmp_path: Path
) -> None:
    messages = burst(lambda i: 1 + i % 3, datetime(2025, 1, 10, 9, tzinfo=UTC), 50)
    s = export(build(make_pg_database("three_users"), 3, messages), tmp_path)
    assert s.totals.users == "< 10" and s.totals.count("users") is None
    assert s.totals.messages == 50 and s.totals.conversations == "< 10"  # one channel
    assert s.users.username_length is None and s.users.profile_completeness == {}
    text = (tmp_path / "shape.json").read_text()
    assert json.loads(text)["totals"]["users"] == "< 10"


def test_the_audit_allows_below_k_only_as_a_total() -> None:
    data = json.loads(shape(FrequencyTables(users_total=3, conversations_total=2, messages_total=40)).model_dump_json())
    assert data["totals"] == {"users": "< 10", "conversations": "< 10", "messages": 40}
    audit_export(data)
    for where, value in (
        (("totals", "users"), "< 10 users"),
        (("totals", "users"), "<10"),
        (("totals", "messages"), "12"),
    ):
        bad = json.loads(json.dumps(data))
        bad[where[0]][where[1]] = value
        with pytest.raises(PrivacyError, match="export audit failed"):
            audit_export(bad)
    smuggled = json.loads(json.dumps(data))
    smuggled["messages"]["hourly_counts"][0] = "< 10"
    with pytest.raises(PrivacyError, match="hourly_counts.0 holds a string that is not allowed"):
        scan_allow_list(smuggled)


def test_consumers_treat_a_total_below_k_as_unknown() -> None:
    small = shape(FrequencyTables(users_total=3, conversations_total=12, messages_total=40))
    resolved, notes = calibrated_totals(small)
    assert resolved.model_dump() == {"users": 5, "conversations": 12, "messages": 40}
    assert len(notes) == 1 and "totals.users is '< 10'" in notes[0]
    senders = DistributionStats(count=3, mean=1.0)
    assert sender_share(senders, small.totals) is None
    assert sender_share(senders, Totals(users=6, conversations=1, messages=2)) == 0.5
    with pytest.raises(ValueError, match="count or"):
        Totals(users="a few", conversations=1, messages=2)
