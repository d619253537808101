"""Percentile rounding never crashes the sampler: property tests of `distribution_stats` (the
function that turns one frequency table into an exported stats block) over tiny populations,
all-equal values, tightly clustered values and huge values.

The issue's failure: p1..p25 rest on fewer than min_cell_count entities and were rounded up on
their own (3660 -> 3700), above an exact p50 of 3660, and the contract refused the shape. Such
percentiles are now an edge of their histogram bucket; the vector must still never decrease.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shape_pipeline.contracts import (
    PERCENTILE_KEYS,
    DistributionStats,
    ShapeMetrics,
    percentile_level,
)
from shape_pipeline.privacy.dp import histogram_quantiles
from shape_pipeline.sampling.frequencies import Frequency, FrequencyTables
from shape_pipeline.sampling.privacy import (
    NOTE_TAIL_ROUNDING,
    PrivacyTally,
    round_sig,
    round_up_2sig,
    round_up_cap,
    round_up_monotone,
)
from shape_pipeline.sampling.shape import (
    distribution_stats,
    percentile_from_frequency,
    shape_from_frequencies,
)

KEYS = (*PERCENTILE_KEYS, "max")
START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2025, 1, 31, tzinfo=UTC)

tiny = st.lists(st.integers(0, 10_000), min_size=1, max_size=50)
all_equal = st.builds(lambda v, n: [v] * n, st.integers(0, 10**12), st.integers(1, 50))
clustered = st.lists(st.integers(3650, 3710), min_size=1, max_size=999)
huge = st.lists(st.integers(0, 10**12), min_size=1, max_size=50)
populations = st.one_of(tiny, all_equal, clustered, huge)
thresholds = st.integers(1, 20)


def exact_vector(freq: Frequency) -> list[float]:
    return [percentile_from_frequency(freq, percentile_level(k)) for k in PERCENTILE_KEYS] + [float(freq.values[-1])]


def check_block(freq: Frequency, k: int) -> DistributionStats | None:
    """Every property the exported block must have; returns it for further checks."""
    tally = PrivacyTally(k)
    stats = distribution_stats(freq, tally)
    if freq.total < k:
        assert stats is None
        return None
    got = [getattr(stats, key) for key in KEYS]
    assert all(b >= a for a, b in zip(got, got[1:], strict=False)), got
    assert stats.max >= stats.p99 and stats.median == stats.p50
    exact = exact_vector(freq)
    held = dict(zip(freq.values.tolist(), freq.counts.tolist(), strict=True))
    edges, counts = stats.histogram.edges, stats.histogram.counts
    assert all(c == 0 or c >= k for c in counts) and sum(counts) == stats.count == freq.total
    top_edge = edges[max(i for i, c in enumerate(counts) if c) + 1]
    assert stats.max == min(round_up_cap(exact[-1]), top_edge - 1) >= exact[-1]
    reads = histogram_quantiles(edges, counts, [percentile_level(key) for key in KEYS[:-1]], integer=True)
    for i, (key, value, true) in enumerate(zip(KEYS[:-1], got[:-1], exact[:-1], strict=True)):
        p = percentile_level(key)
        lifted = i > 0 and value == got[i - 1]  # the running maximum lifts to a published value
        if min(p, 1 - p) * freq.total >= k or held[true] >= k:
            assert value == true or lifted, (key, value, true)  # resting on k entities, or a value k share
        elif p < 0.5:  # read from the published histogram: nothing the histogram hides
            assert value == reads[i] or lifted, (key, value, reads[i])
        else:  # rounded up like the max
            assert value == min(round_up_cap(true), stats.max) or lifted, (key, value, true)
    for moment in (stats.mean, stats.stddev):  # 2 significant digits, 1, or omitted
        assert moment is None or moment in (round_sig(moment, 2), round_sig(moment, 1))
    DistributionStats.model_validate(stats.model_dump())  # the contract accepts it
    return stats


@settings(max_examples=300, deadline=None)
@given(populations, thresholds)
def test_a_stats_block_is_monotone_rounded_up_and_valid(values: list[int], k: int) -> None:
    check_block(Frequency.from_values(np.array(values)), k)


@settings(max_examples=60, deadline=None)
@given(populations, thresholds)
def test_the_whole_shape_validates_with_such_a_distribution_everywhere(values: list[int], k: int) -> None:
    freq = Frequency.from_values(np.array(values))
    tables = FrequencyTables(
        users_total=freq.total,
        conversations_total=freq.total,
        messages_total=int((freq.values * freq.counts).sum()),
        messages_per_conversation=freq,
        content_length=freq,
        gap_seconds=freq,
        messages_per_sender=freq,
        username_length=freq,
    )
    shape = shape_from_frequencies(tables, window_start=START, window_end=END, extracted_at=END, min_cell_count=k)
    ShapeMetrics.model_validate_json(shape.model_dump_json())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 1e12, allow_nan=False), min_size=1, max_size=12).map(sorted), st.data())
def test_round_up_monotone_keeps_order_and_never_rounds_down(values: list[float], data: st.DataObject) -> None:
    flags = data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    out = round_up_monotone(values, flags)
    assert all(b >= a for a, b in zip(out, out[1:], strict=False))
    assert all(o >= v for o, v in zip(out, values, strict=True))
    assert all(
        o == round_up_2sig(v) or o == out[i - 1]
        for i, (o, v, f) in enumerate(zip(out, values, flags, strict=True))
        if f
    )


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**15), st.integers(0, 10**15))
def test_round_up_2sig_is_monotone_and_never_below_its_value(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert round_up_2sig(low) >= low and round_up_2sig(high) >= high
    assert round_up_2sig(low) <= round_up_2sig(high)
    # two significant digits at most
    assert len(str(int(round_up_2sig(high))).rstrip("0")) <= 2 or high < 100


def test_huge_integers_round_up_exactly() -> None:
    # float division lost the trailing unit: 370_000_000_001 came back as 370_000_000_000
    assert round_up_2sig(370_000_000_001) == 380_000_000_000
    assert round_up_2sig(12.000_000_000_1) == 13


def test_the_issues_case_300_conversations_clustered_at_3650_to_3710() -> None:
    """The exact failure of the issue, through the shape builder: p1 rests on 3 of 300
    conversations (< 10) and is read from the published histogram, not 3,640; p5 (15) stays
    exact."""
    rng = np.random.default_rng(9)
    counts = rng.integers(3650, 3711, size=300)
    counts[:3] = 3640  # p1: 3 conversations alone at 3640 (rounded up, it was 3700 above p5..p50)
    freq = Frequency.from_values(counts)
    exact = exact_vector(freq)
    assert exact[PERCENTILE_KEYS.index("p5")] < 3700  # the case really is the crashing one
    tables = FrequencyTables(
        users_total=40, conversations_total=300, messages_total=int(counts.sum()), messages_per_conversation=freq
    )
    shape = shape_from_frequencies(tables, window_start=START, window_end=END, extracted_at=END, min_cell_count=10)
    pct = shape.conversations.messages_per_conversation_percentiles
    hist = shape.conversations.messages_per_conversation_histogram
    [read] = histogram_quantiles(hist.edges, hist.counts, [0.01], integer=True)
    assert pct.p1 == read != 3640 and pct.max == 3800  # 3710 -> 3800
    assert pct.p5 == exact[PERCENTILE_KEYS.index("p5")]
    for key in ("p5", "p50", "p90"):  # rest on at least 15 conversations either side: exact
        assert getattr(pct, key) == exact[PERCENTILE_KEYS.index(key)]
    assert pct.p99 == 3800  # its bucket [3162, 3981) holds up to 3980: capped by the max
    assert NOTE_TAIL_ROUNDING in shape.privacy.notes
    ShapeMetrics.model_validate_json(shape.model_dump_json())
