"""Stratified draws, members per type, and both margins of who writes where (issue 10), over many seeds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from shape_pipeline.contracts import MembersBySize
from shape_pipeline.distributions import discrete_percentile, quantile, stratified_levels
from shape_pipeline.generation.generate import iter_chunks
from shape_pipeline.generation.plan import make_plan
from shape_pipeline.generation.stratified import apportion, draw_adding_up
from shape_pipeline_tests.generation.conftest import make_config
from shape_pipeline_tests.generation.skew import (
    DEGREE_TARGETS,
    ONE_MEMBER_DM,
    SENDER_TARGETS,
    make_skewed_config,
    memberships_per_user,
    percentiles,
    sent_per_user,
)

SEEDS = [str(i) for i in range(20)]
LEVELS = (0.5, 0.75, 0.9, 0.95, 0.99)


def worst_error(values: np.ndarray, model, levels=LEVELS) -> float:
    target = quantile(model, np.array(levels))
    realized = np.array([discrete_percentile(values, p) for p in levels])
    return float(np.max(np.abs(realized / target - 1)))


def test_stratified_levels_fill_every_stratum_once():
    levels = np.sort(stratified_levels(np.random.default_rng(5), 1_000))
    strata = np.arange(1_000)
    assert np.all((levels >= strata / 1_000) & (levels <= (strata + 1) / 1_000))
    assert {0.5, 0.9, 0.99} <= set(levels.tolist())  # the exported levels themselves


@pytest.mark.parametrize(("messages", "bound"), [(500_000, 0.05), (1_000_000, 0.02)])
def test_messages_per_conversation_hit_p50_to_p99_and_add_up(messages, bound):
    config = make_config()
    model = config.conversation_generation.messages_per_conversation
    for seed in SEEDS:
        plan = make_plan(config, target_messages=messages, seed=seed)
        assert int(plan.message_counts.sum()) == messages and plan.message_counts.min() >= 1
        assert worst_error(plan.message_counts, model) <= bound, seed


def test_group_members_hit_their_percentiles():
    config = make_config()
    model = config.conversation_generation.members_per_conversation["GROUP_CHAT"]
    for seed in SEEDS[:5]:
        plan = make_plan(config, target_messages=1_000_000, seed=seed)
        group = plan.member_counts[plan.conversation_type == plan.conversation_types.index("GROUP_CHAT")]
        assert worst_error(group, model, (0.5, 0.9)) <= 0.02, seed


def test_adding_up_exactly_whatever_the_size():
    model = make_config().conversation_generation.messages_per_conversation
    for total in (1, 2, 37, 1_000, 123_457):
        values = draw_adding_up(model, np.random.default_rng(total), total, 289.0, floor=1)
        assert int(values.sum()) == total and values.min() >= 1
    assert apportion(10, np.array([1.0, 1.0, 1.0])).tolist() in ([4, 3, 3], [3, 4, 3], [3, 3, 4])


def test_direct_messages_follow_a_one_member_model():
    config = make_skewed_config()
    for seed in SEEDS:
        plan = make_plan(config, target_messages=200_000, seed=seed)
        dm = plan.member_counts[plan.conversation_type == plan.conversation_types.index("DIRECT_MESSAGE")]
        assert set(np.unique(dm).tolist()) == {1, 2}
        assert abs(np.mean(dm == 1) - ONE_MEMBER_DM) < 0.005, seed


def test_direct_messages_are_pairs_where_the_config_says_nothing():
    plan = make_plan(make_config(), target_messages=100_000, seed="pairs")
    dm = plan.member_counts[plan.conversation_type == plan.conversation_types.index("DIRECT_MESSAGE")]
    assert dm.size > 100 and np.all(dm == 2)


def test_members_follow_the_size_grid():
    """Big conversations get the members the grid gives their size row (here: 8-15 above 64
    messages) as far as the type's own member model allows: the type's distribution is fitted
    jointly with the grid (members.py), so the few members beyond the grid's columns that the
    type's model needs (about 5% of GROUP_CHATs above 16) stay."""
    config = make_config()
    edges = [1, 64, 1_000_000]
    columns = [1, 2, 4, 8, 16, 1_000]
    grid = MembersBySize(row_edges=edges, column_edges=columns, weights=[[0, 0.5, 0.5, 0, 0], [0, 0, 0, 1.0, 0]])
    config.conversation_generation.members_by_size = grid
    config.conversation_generation.type_distribution = {"GROUP_CHAT": 1.0}
    plan = make_plan(config, target_messages=500_000, seed="grid")
    big = plan.message_counts >= 64
    assert np.mean((plan.member_counts[big] >= 8) & (plan.member_counts[big] < 16)) >= 0.8  # measured 0.85
    assert np.mean(plan.member_counts[~big] < 8) >= 0.85  # measured 0.90
    model = config.conversation_generation.members_per_conversation["GROUP_CHAT"]
    realized = np.quantile(plan.member_counts, [p for p, _ in model.knots], method="inverted_cdf")
    assert all(abs(r / q - 1) <= 0.2 for r, (_, q) in zip(realized, model.knots, strict=True)), realized


@pytest.mark.parametrize("messages", [500_000, 1_000_000])
def test_both_margins_hold_and_senders_follow_the_shape(messages):
    """Conversation totals exact; user totals within 10% of all messages (measured: at most 9.5% at
    500k, 6.4% at 1M over these seeds); conversations per user exact; messages per sender p90/p99
    within 15% at 1M (measured -6%..+4%), p50 within 15% at 1M (measured -12%..0)."""
    config = make_skewed_config()
    for seed in SEEDS:
        plan = make_plan(config, target_messages=messages, seed=seed)
        starts = np.cumsum(plan.member_counts) - plan.member_counts
        assert np.array_equal(np.add.reduceat(plan.member_messages, starts), plan.message_counts)
        sent = sent_per_user(plan)
        active = plan.user_activity > 0
        assert np.abs(sent[active] - plan.user_activity[active]).sum() <= 0.10 * messages, seed
        degree = memberships_per_user(plan)
        assert np.mean(degree == plan.user_degree) >= 0.999
        realized = percentiles(degree[degree > 0], DEGREE_TARGETS)
        assert all(abs(realized[k] / v - 1) <= 0.05 for k, v in DEGREE_TARGETS.items()), (seed, realized)
        if messages == 1_000_000:
            senders = percentiles(sent[sent > 0], SENDER_TARGETS)
            assert all(abs(senders[k] / v - 1) <= 0.15 for k, v in SENDER_TARGETS.items()), (seed, senders)


def test_every_sender_is_a_member_and_chunks_keep_the_counts():
    plan = make_plan(make_skewed_config(), target_messages=300_000, seed="chunks")
    chunks = [c for c in iter_chunks(plan, 100_000) if "messages" in c.tables]
    members = pa.concat_tables([c.tables["members"] for c in chunks])
    messages = pa.concat_tables([c.tables["messages"] for c in chunks])
    pairs = set(zip(members["conversation_id"].to_pylist(), members["user_id"].to_pylist(), strict=True))
    assert len(pairs) == members.num_rows  # distinct members
    written = set(zip(messages["conversation_id"].to_pylist(), messages["sender_id"].to_pylist(), strict=True))
    assert written <= pairs
    per_conversation = np.bincount(messages["conversation_id"].to_numpy() - 1, minlength=plan.conversations)
    assert np.array_equal(per_conversation, plan.message_counts)
    per_user = np.bincount(messages["sender_id"].to_numpy() - 1, minlength=plan.users)
    assert np.array_equal(per_user, sent_per_user(plan))


def test_content_lengths_hit_their_percentiles_in_the_rows():
    config = make_config()
    plan = make_plan(config, target_messages=500_000, seed="lengths")
    lengths = np.concatenate(
        [
            pa.compute.utf8_length(c.tables["messages"]["content"]).to_numpy()
            for c in iter_chunks(plan, 250_000)
            if "messages" in c.tables
        ]
    )
    assert worst_error(lengths, config.message_generation.content_length, (0.5, 0.95)) <= 0.02
