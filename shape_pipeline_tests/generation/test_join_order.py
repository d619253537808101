"""Users numbered in join order (config.users_in_join_order), on a real PostgreSQL: memberships
in insert order then carry rising user ids, as in an app whose people join soon after signing
up; every reference follows the new numbers and ids still rise with sign-up time."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from shape_pipeline.generation import staging
from shape_pipeline.generation.generate import generate_dataset
from shape_pipeline.generation.join_order import JoinOrder
from shape_pipeline_tests.generation.test_layout import correlation
from shape_pipeline_tests.generation.test_targets import query

MESSAGES = 60_000


def members(joined: list[int], users: list[int]) -> pa.Table:
    order = staging.ORDER_COLUMNS
    return pa.table({order[0]: joined, order[1]: [1] * len(users), order[2]: users, "user_id": users})


def test_numbers_follow_the_mean_join_time_and_never_joined_users_come_last() -> None:
    numbering = JoinOrder(4)
    numbering.see(members([50, 10, 30], [1, 2, 3]))
    numbering.see(members([5, 90], [3, 1]))  # user 3: mean 17.5; user 1: mean 70; user 4 never joins
    assert numbering.numbers().tolist() == [3, 1, 2, 4]
    renumbered = numbering.renumber(members([1], [3]), "user_id")
    assert renumbered.column("user_id").to_pylist() == [2] and renumbered.column("user_id").type == pa.int64()


@pytest.fixture(scope="module")
def loads(config, make_pg_database) -> dict[bool, str]:
    out = {}
    for ordered in (False, True):
        url = make_pg_database(f"join_order_{ordered}")
        generate_dataset(
            config.model_copy(update={"users_in_join_order": ordered}),
            target_messages=MESSAGES,
            seed="join-order",
            database_url=url,
            emit=None,
        )
        out[ordered] = url
    return out


def test_memberships_carry_rising_user_ids_only_when_asked(loads: dict[bool, str]) -> None:
    assert abs(correlation(loads[False], "conversation_members", "user_id")) < 0.2
    assert correlation(loads[True], "conversation_members", "user_id") > 0.3
    assert correlation(loads[True], "conversation_members", "joined_at") > 0.9  # still in join order


def test_references_follow_and_ids_still_rise_with_sign_up(loads: dict[bool, str]) -> None:
    url = loads[True]
    assert query(
        url, "SELECT count(*) FROM conversation_members m LEFT JOIN users u ON u.id = m.user_id WHERE u.id IS NULL"
    ) == [(0,)]
    assert query(
        url,
        """SELECT count(*) FROM messages m LEFT JOIN conversation_members c
        ON c.conversation_id = m.conversation_id AND c.user_id = m.sender_id WHERE c.user_id IS NULL""",
    ) == [(0,)]
    assert query(
        url,
        """SELECT count(*) FROM (SELECT created_at, lag(created_at) OVER (ORDER BY id) prev
        FROM users) s WHERE created_at < prev""",
    ) == [(0,)]
    # the same people: memberships per user and messages per sender are the same multisets
    for sql in (
        "SELECT count(*) FROM conversation_members GROUP BY user_id",
        "SELECT count(*) FROM messages GROUP BY sender_id",
    ):
        counts = [sorted(np.ravel(query(loads[flag], sql)).tolist()) for flag in (False, True)]
        assert counts[0] == counts[1]
