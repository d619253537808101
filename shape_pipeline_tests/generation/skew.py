"""A config as skewed as a real chat corpus (258k messages, 1,315 users), and what the plan makes of it.

Messages per sender p50 17 / p90 268 / p99 3,684 (a body and a Pareto tail), conversations per
user p10 1 / p50 2 / p90 13 / p99 124, 44% of direct messages with one member, three quarters
of the users writing; `make_top_share_config` adds the worlds' top sender share. Run as a script to print realized against target:

    .venv/bin/python -m shape_pipeline_tests.generation.skew [messages ...]
"""

from __future__ import annotations

import sys

import numpy as np

from shape_pipeline.contracts import (
    CalibratedConfig,
    PowerLawTailModel,
    QuantileSplineModel,
    Totals,
)
from shape_pipeline.distributions import discrete_percentile
from shape_pipeline.generation.plan import Plan, make_plan
from shape_pipeline_tests.generation.conftest import make_config

REAL_MESSAGES, REAL_USERS = 258_000, 1_315
SENDER_TARGETS = {"p50": 17, "p90": 268, "p99": 3_684}
DEGREE_TARGETS = {"p10": 1, "p50": 2, "p90": 13, "p99": 124}
ONE_MEMBER_DM = 0.44
# Top sender share shaped like the simulated worlds' (dialogues: two people share most rooms),
# its mass at 1 (45%) holding the one-member direct messages and one-message rooms of this config.
TOP_SHARE = QuantileSplineModel(
    knots=[(0.01, 0.3), (0.05, 0.5), (0.2, 0.6), (0.4, 0.694), (0.5, 0.8), (0.55, 1.0), (0.99, 1.0)],
    min=0.001,
    max=1.0,
    integer=False,
)


def make_skewed_config() -> CalibratedConfig:
    """The test config with the real corpus's skews (knots at x - 0.5: integer models take the ceiling)."""
    base = make_config()
    users = base.user_generation.model_copy(
        update={
            "conversations_per_user": QuantileSplineModel(
                knots=[(0.1, 0.5), (0.5, 1.5), (0.9, 12.5), (0.99, 123.5)], min=1, max=2_000
            ),
            "sender_share": 0.75,
        }
    )
    conversations = base.conversation_generation.model_copy(
        update={
            "type_distribution": {"DIRECT_MESSAGE": 0.62, "GROUP_CHAT": 0.3, "CHANNEL": 0.08},
            "messages_per_conversation": PowerLawTailModel(
                alpha=2.0,
                min=1,
                max=20_000,
                body_knots=[(0.5, 9.5), (0.75, 40.0), (0.9, 150.0), (0.95, 400.0)],
                tail_start=(0.99, 2_500.0),
            ),
            "members_per_conversation": {
                "DIRECT_MESSAGE": QuantileSplineModel(knots=[(ONE_MEMBER_DM, 1.0), (0.5, 1.5)], min=1, max=2),
                "GROUP_CHAT": QuantileSplineModel(knots=[(0.5, 4.5), (0.9, 11.5), (0.99, 30.5)], min=3, max=60),
                "CHANNEL": QuantileSplineModel(knots=[(0.5, 24.5), (0.9, 89.5), (0.99, 399.5)], min=3, max=1_315),
            },
        }
    )
    messages = base.message_generation.model_copy(
        update={
            "messages_per_sender": PowerLawTailModel(
                alpha=2.0,
                min=1,
                max=60_000,
                body_knots=[(0.5, 16.5), (0.75, 70.0), (0.9, 267.5), (0.95, 800.0)],
                tail_start=(0.99, 3_683.5),
            )
        }
    )
    return base.model_copy(
        update={
            "totals": Totals(users=REAL_USERS, conversations=1_777, messages=REAL_MESSAGES),
            "user_generation": users,
            "conversation_generation": conversations,
            "message_generation": messages,
        }
    )


def make_top_share_config() -> CalibratedConfig:
    """The skewed config with a top-sender-share model (the generator's assortative path)."""
    config = make_skewed_config()
    conversations = config.conversation_generation.model_copy(update={"top_sender_share": TOP_SHARE})
    return config.model_copy(update={"conversation_generation": conversations})


def sent_per_user(plan: Plan) -> np.ndarray:
    """Messages each user writes (over all its memberships)."""
    return np.bincount(plan.member_users, plan.member_messages, plan.users).astype(np.int64)


def memberships_per_user(plan: Plan) -> np.ndarray:
    return np.bincount(plan.member_users, minlength=plan.users)


def top_sender_shares(plan: Plan) -> np.ndarray:
    """Per conversation: its most active member's messages over its messages."""
    starts = np.cumsum(plan.member_counts) - plan.member_counts
    return np.maximum.reduceat(plan.member_messages, starts) / plan.message_counts


def percentiles(values: np.ndarray, keys: dict[str, float] | list[str]) -> dict[str, float]:
    return {key: discrete_percentile(values, int(key[1:]) / 100) for key in keys}


def relative_errors(realized: dict[str, float], targets: dict[str, float]) -> dict[str, float]:
    return {key: realized[key] / targets[key] - 1 for key in targets}


def report(messages: int, seed: str = "skew", config: CalibratedConfig | None = None) -> str:
    """Realized against target for one plan (a few lines)."""
    plan = make_plan(config or make_skewed_config(), target_messages=messages, seed=seed)
    sent = sent_per_user(plan)
    degree = memberships_per_user(plan)
    senders = sent[sent > 0]
    activity = plan.user_activity
    active = activity > 0
    deviation = np.abs(sent[active] - activity[active]) / activity[active]
    dm = plan.conversation_types.index("DIRECT_MESSAGE")
    one = float(np.mean(plan.member_counts[plan.conversation_type == dm] == 1))
    top = top_sender_shares(plan)
    return "\n".join(
        [
            f"{messages:,} messages: {plan.users:,} users, {plan.conversations:,} conversations, "
            f"{plan.members:,} memberships, {senders.size:,} senders ({int(np.sum(~active & (sent > 0)))} unplanned)",
            f"  messages per sender {percentiles(senders, SENDER_TARGETS)} vs {SENDER_TARGETS}",
            f"  conversations per user {percentiles(degree[degree > 0], DEGREE_TARGETS)} vs {DEGREE_TARGETS}",
            f"  user totals vs targets: median |error| {np.median(deviation):.1%}, p90 {np.quantile(deviation, 0.9):.1%}, "
            f"share of messages off target {np.abs(sent[active] - activity[active]).sum() / messages:.1%}",
            f"  users whose memberships differ from their planned degree: {int(np.sum(degree != plan.user_degree))}",
            f"  one-member direct messages {one:.1%} (target {ONE_MEMBER_DM:.0%})",
            f"  top sender share p10/p50/p90 {np.quantile(top, [0.1, 0.5, 0.9]).round(2).tolist()}, "
            f"share 1 in {np.mean(top == 1):.0%}",
        ]
    )


if __name__ == "__main__":
    for size in [int(a) for a in sys.argv[1:]] or [REAL_MESSAGES, 1_000_000]:
        print(report(size))
        print("with a top sender share model:", report(size, config=make_top_share_config()))
