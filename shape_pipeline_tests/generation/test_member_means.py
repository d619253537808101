"""Member counts add up to conversations x the exported mean; starving senders are fed."""

from __future__ import annotations

import numpy as np

from shape_pipeline.contracts import QuantileSplineModel
from shape_pipeline.generation.assign import feed_starving
from shape_pipeline.generation.members import add_up_to_means
from shape_pipeline.generation.stratified import fill_tail_to


def test_the_tail_grows_up_to_the_cap_and_the_body_stays():
    values = np.arange(1, 201, dtype=np.int64)  # p99 order statistic: 198
    grown = fill_tail_to(values, int(values.sum()) + 1500, cap=1000.0)
    assert grown.sum() == values.sum() + 1500
    assert np.array_equal(grown[:198], values[:198]) and grown.max() <= 1000


def test_below_a_hundred_rooms_the_largest_grows_then_the_rooms_above_p95():
    values = np.full(50, 3, dtype=np.int64)
    values[-1] = 40
    grown = fill_tail_to(values, int(values.sum()) + 1200, cap=690.0)
    assert grown.sum() == values.sum() + 1200 and grown.max() == 690
    assert np.sort(grown)[:47].tolist() == [3] * 47  # only the three above p95 moved


def test_each_type_adds_up_to_its_mean_where_the_cap_allows():
    group = QuantileSplineModel(knots=[(0.5, 3.0), (0.99, 40.0)], min=1, max=690, mean=10.5)
    pair = QuantileSplineModel(knots=[(0.5, 2.0)], min=2, max=2)  # no mean: untouched
    types = np.array([0] * 113 + [1] * 20)
    counts = np.where(types == 0, 3, 2).astype(np.int64)
    out = add_up_to_means([group, pair], types, counts, users=1500)
    assert out[types == 0].sum() == round(113 * 10.5) and out[types == 1].sum() == 40


def test_a_starving_sender_takes_from_the_top_only_while_it_stays_the_top():
    conv = np.array([0, 0, 0, 0, 1, 1, 1])
    users = np.array([0, 1, 2, 3, 4, 5, 6])
    sent = np.array([3, 1, 0, 0, 2, 2, 0])  # room 1: taking from its top would tie it
    is_top = np.array([True, False, False, False, True, False, False])
    fed = feed_starving(conv, users, sent, is_top, np.ones(7, dtype=bool))
    assert fed[:4].sum() == 4 and fed[0] == 2 and sorted(fed[2:4].tolist()) == [0, 1]
    assert fed[4:].tolist() == [2, 1, 1]
