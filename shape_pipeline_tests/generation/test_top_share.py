"""Top sender share (issue 10): each conversation's top sender writes the model's share, the
assortative membership keeps every total exact, and the pieces it is built of hold their promises."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from shape_pipeline.distributions import quantile
from shape_pipeline.generation.assign import feed_starving, top_counts, water_fill
from shape_pipeline.generation.generate import iter_chunks
from shape_pipeline.generation.plan import make_plan
from shape_pipeline_tests.generation.skew import (
    DEGREE_TARGETS,
    TOP_SHARE,
    make_top_share_config,
    memberships_per_user,
    percentiles,
    sent_per_user,
    top_sender_shares,
)

SEEDS = [str(i) for i in range(8)]


def ks_permille(shares: np.ndarray, model=TOP_SHARE) -> float:
    """KS distance in permille (the validator's unit) between realized shares and the model."""
    reference = np.round(1000 * quantile(model, (np.arange(100_000) + 0.5) / 100_000)).astype(np.int64)
    realized = np.round(1000 * shares).astype(np.int64)
    grid = np.arange(1001)
    model_cdf = np.searchsorted(np.sort(reference), grid, side="right") / reference.size
    realized_cdf = np.searchsorted(np.sort(realized), grid, side="right") / realized.size
    return float(np.max(np.abs(model_cdf - realized_cdf)))


def test_top_sender_share_follows_the_model_and_every_total_holds():
    """KS against the model (measured 0.035-0.052 over these seeds at 200k); conversation totals
    exact; the first slot is the top sender and no member writes more. Degrees: where hub users
    sit in hundreds of rooms among few users, the matching cannot always separate duplicates
    (measured: 87.3-100% of users keep their planned degree, p99 124 -> 130-142 at 200k; exact
    on the simulated worlds and at 1M)."""
    config = make_top_share_config()
    for seed in SEEDS:
        plan = make_plan(config, target_messages=200_000, seed=seed)
        starts = np.cumsum(plan.member_counts) - plan.member_counts
        assert np.array_equal(np.add.reduceat(plan.member_messages, starts), plan.message_counts), seed
        assert plan.member_messages.min() >= 0
        top = np.maximum.reduceat(plan.member_messages, starts)
        assert np.array_equal(plan.member_messages[starts], top), seed
        assert ks_permille(top_sender_shares(plan)) <= 0.07, seed
        degree = memberships_per_user(plan)
        assert np.mean(degree == plan.user_degree) >= 0.85, seed
        realized = percentiles(degree[degree > 0], DEGREE_TARGETS)
        assert all(abs(realized[k] / v - 1) <= 0.2 for k, v in DEGREE_TARGETS.items()), (seed, realized)


def test_the_assortative_plan_is_deterministic_and_chunks_keep_it():
    config = make_top_share_config()
    one = make_plan(config, target_messages=120_000, seed="same")
    two = make_plan(config, target_messages=120_000, seed="same")
    assert np.array_equal(one.member_users, two.member_users)
    assert np.array_equal(one.member_messages, two.member_messages)
    tables = []
    for size in (30_000, 120_000):
        chunks = [c for c in iter_chunks(one, size) if "messages" in c.tables]
        tables.append(pa.concat_tables([c.tables["messages"].select(["conversation_id", "sender_id"]) for c in chunks]))
    assert tables[0].equals(tables[1])
    members = pa.concat_tables([c.tables["members"] for c in iter_chunks(one, 30_000) if "members" in c.tables])
    pairs = set(zip(members["conversation_id"].to_pylist(), members["user_id"].to_pylist(), strict=True))
    written = set(zip(tables[0]["conversation_id"].to_pylist(), tables[0]["sender_id"].to_pylist(), strict=True))
    assert written <= pairs and len(pairs) == members.num_rows
    per_user = np.bincount(tables[0]["sender_id"].to_numpy() - 1, minlength=one.users)
    assert np.array_equal(per_user, sent_per_user(one))


def test_rooms_that_cannot_split_take_share_one_first():
    counts = np.array([1, 1, 10, 10, 10, 10, 7, 9])
    members = np.array([2, 5, 1, 2, 2, 2, 3, 3])
    tops = top_counts(np.random.default_rng(3), TOP_SHARE, counts, members)
    assert tops[0] == 1 and tops[1] == 1 and tops[2] == 10  # one message, one member
    assert np.all(tops >= -(-counts // members)) and np.all(tops <= counts)  # at least the even split
    many = np.full(4_000, 100)
    shares = top_counts(np.random.default_rng(4), TOP_SHARE, many, np.full(4_000, 3)) / 100
    assert ks_permille(shares) <= 0.02


def test_water_fill_caps_and_adds_up_even_where_every_weight_vanished():
    conv = np.array([0, 0, 0, 0, 1, 1, 1])
    eligible = np.array([False, True, True, True, False, True, True])
    weight = np.array([0.0, 5.0, 5.0, 0.0, 0.0, 0.0, 0.0])  # room 1: all weights underflowed
    cap = np.array([6.0, 6.0, 6.0, 6.0, 4.0, 4.0, 4.0])
    value = water_fill(conv, weight, np.array([13.0, 6.0]), cap, eligible)
    assert np.allclose(np.bincount(conv, value), [13.0, 6.0])
    assert np.all(value <= cap + 1e-9) and value[0] == 0 and value[4] == 0
    assert np.allclose(value[1:4], [6.0, 6.0, 1.0]) and np.allclose(value[5:], [3.0, 3.0])


def test_water_fill_adds_up_where_the_weights_left_after_capping_are_denormal():
    """Seen with a DP shape: IPF left a room's last free slot a weight of 1e-322; after the two
    others were capped its share was floored to 1e-22 and the room lost 3 of its 15 messages."""
    conv = np.zeros(4, dtype=np.int64)
    eligible = np.array([False, True, True, True])
    weight = np.array([0.0, 5.0, 1e-9, 1.3e-322])
    value = water_fill(conv, weight, np.array([15.0]), np.full(4, 6.0), eligible)
    assert np.isclose(value.sum(), 15.0) and np.all(value <= 6.0 + 1e-9)
    assert value[3] >= 1.0  # the room's remainder went to its free slot


@settings(max_examples=300, deadline=None)
@given(
    exponents=st.lists(st.integers(-330, 3), min_size=2, max_size=8),
    cap=st.integers(1, 20),
    total=st.integers(0, 200),
)
def test_water_fill_adds_up_whatever_the_weights(exponents: list[int], cap: int, total: int) -> None:
    """Any weights, from denormal to large: a room's values add up to its total when its free
    slots can hold it, and none is above its cap."""
    weight = np.array([10.0**e if e > -330 else 0.0 for e in exponents])
    slots = weight.size
    total = min(total, cap * slots)
    value = water_fill(
        np.zeros(slots, dtype=np.int64),
        weight,
        np.array([float(total)]),
        np.full(slots, float(cap)),
        np.ones(slots, dtype=bool),
    )
    assert np.isclose(value.sum(), total) and np.all(value <= cap + 1e-9) and np.all(value >= 0)


def test_a_sender_left_with_nothing_takes_one_message_from_a_busier_member():
    conv = np.array([0, 0, 0, 1, 1])
    users = np.array([0, 1, 2, 0, 3])
    sent = np.array([5, 3, 0, 2, 0])
    is_top = np.array([True, False, False, True, False])
    sender = np.array([True, True, True, False])  # user 3 is a lurker
    fed = feed_starving(conv, users, sent, is_top, sender)
    assert fed.tolist() == [5, 2, 1, 2, 0]
