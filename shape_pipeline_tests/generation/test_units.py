"""Pure parts of the generator: streams, plan, text, usernames, clock (no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow.compute as pc
import pytest

from shape_pipeline.contracts import TemporalWeights
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.generation import seeds, text
from shape_pipeline.generation.assign import configuration_membership
from shape_pipeline.generation.conversations import conversation_chunk
from shape_pipeline.generation.plan import BANDS, band_messages, make_plan, username_ranks
from shape_pipeline.generation.timeline import build_time_warp
from shape_pipeline.generation.users import user_chunk


def test_streams_depend_on_seed_purpose_and_shard_only():
    a = seeds.stream("s", seeds.CONVERSATIONS, 3).random(4)
    assert np.array_equal(a, seeds.stream("s", seeds.CONVERSATIONS, 3).random(4))
    assert not np.array_equal(a, seeds.stream("s", seeds.CONVERSATIONS, 4).random(4))
    assert not np.array_equal(a, seeds.stream("s", seeds.USERS, 3).random(4))
    assert not np.array_equal(a, seeds.stream("t", seeds.CONVERSATIONS, 3).random(4))


def test_bands():
    assert BANDS == {"dev": 500_000, "pilot": 5_000_000, "perf": 50_000_000}
    assert band_messages("pilot") == 5_000_000
    with pytest.raises(ShapePipelineError, match="--band: unknown band 'huge'"):
        band_messages("huge")


@pytest.mark.parametrize("target", [1, 37, 123_457])
def test_plan_hits_the_target_exactly_and_scales_users(config, target):
    plan = make_plan(config, target_messages=target, seed="plan")
    assert int(plan.message_counts.sum()) == target
    assert plan.message_counts.min() >= 1
    assert plan.users >= max(2, round(target * 50_000 / 1_200_000))
    direct = plan.conversation_types.index("DIRECT_MESSAGE")
    assert np.all(plan.member_counts[plan.conversation_type == direct] == 2)
    assert np.all(plan.member_counts <= plan.users)


def test_usernames_are_unique_even_when_a_length_is_crowded():
    rng = np.random.default_rng(1)
    lengths = np.concatenate([np.full(3000, 2), rng.integers(3, 9, 20_000)])
    bumped, ranks, digits = username_ranks(lengths)
    assert np.sum(bumped == 2) == 36**2 and np.all(bumped >= lengths)
    names = text.usernames(bumped, ranks, digits, rng)
    assert len(pc.unique(names)) == len(names)
    assert np.array_equal(pc.utf8_length(names).to_numpy(), bumped)
    assert pc.all(pc.match_substring_regex(names, "^[a-z0-9]+$")).as_py()


def test_pool_text_has_exact_lengths_and_varied_words():
    rng = np.random.default_rng(2)
    pool = text.build_pool(rng)
    lengths = rng.integers(0, 400, 5_000)
    column = text.pool_text(pool, lengths, rng)
    assert np.array_equal(pc.utf8_length(column).to_numpy(), lengths)
    words = set(" ".join(column.to_pylist()).split())
    assert len(words) > 1_000
    assert len(set(column.to_pylist())) > 4_900


def test_pii_demo_style_has_fake_pii_and_filler_has_none(config):
    plan = make_plan(config, target_messages=20_000, seed="pii", content_style="pii_demo")
    pool = text.build_pool(seeds.stream("pii", seeds.TEXT), "pii_demo")
    users = user_chunk(plan, 0, pool).tables["users"]
    bios = " ".join(b for b in users.column("bio").to_pylist() if b)
    assert "@example.org" in bios and "555-01" in bios
    content = " ".join(conversation_chunk(plan, 0, pool).tables["messages"].column("content").to_pylist())
    assert "555-01" in content and "@example.org" in content
    plain = text.build_pool(seeds.stream("pii", seeds.TEXT)).tobytes().decode()
    assert "@" not in plain and "555-" not in plain
    emails = users.column("email").to_pylist()
    assert all(e.endswith("@example.com") for e in emails)


@pytest.mark.parametrize("seed", range(20))
def test_members_are_distinct_within_each_conversation_and_degrees_exact(seed):
    rng = np.random.default_rng(seed)
    counts = np.array([2, 50, 90, 80, 3, 1, 1, 2])
    degrees = np.r_[np.full(5, 3), np.zeros(5, dtype=np.int64), np.full(95, 2)]  # hot users in every big room
    degrees[10:34] += 1
    assert degrees.sum() == counts.sum()
    members = configuration_membership(rng, counts, degrees)
    for part in np.split(members, np.cumsum(counts)[:-1]):
        assert len(set(part.tolist())) == len(part)
    assert np.array_equal(np.bincount(members, minlength=degrees.size), degrees)


def test_the_activity_clock_follows_the_weights():
    hourly = np.r_[np.zeros(12), np.ones(12)] / 12
    temporal = TemporalWeights(hourly=hourly.tolist(), day_of_week=[1 / 7] * 7)
    start, end = datetime(2025, 1, 6, tzinfo=UTC), datetime(2025, 1, 20, tzinfo=UTC)
    warp = build_time_warp(temporal, start, end)
    real = warp.to_real(np.random.default_rng(4).random(100_000) * warp.length_us)
    hours = (real // 3_600_000_000).astype(int) % 24
    assert np.mean(hours >= 12) > 0.99
    assert real.min() >= 0.0 and real.max() <= warp.length_us
