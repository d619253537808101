"""Property tests over random monotone percentile sets: every fitted quantile function is
monotone and passes through the knots it was given."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shape_pipeline.calibration.activity import fit_messages_per_sender
from shape_pipeline.calibration.content_length import fit_content_length
from shape_pipeline.calibration.heavy_tail import fit_messages_per_conversation
from shape_pipeline.calibration.spline_fit import fit_spline
from shape_pipeline.contracts import (
    PERCENTILE_KEYS,
    DistributionStats,
    Histogram,
    Percentiles,
    PowerLawTailModel,
    percentile_level,
)
from shape_pipeline.distributions import quantile

GRID = np.linspace(0.0005, 0.9995, 4001)


@st.composite
def percentile_sets(draw: st.DrawFn, low: int = 1) -> dict[str, float]:
    """A random non-empty subset of p1..p99 with non-decreasing integer values, and a max."""
    keys = draw(st.lists(st.sampled_from(PERCENTILE_KEYS), min_size=1, max_size=9, unique=True))
    keys.sort(key=percentile_level)
    steps = draw(st.lists(st.integers(0, 5_000), min_size=len(keys), max_size=len(keys)))
    start = draw(st.integers(low, 50))
    values = np.cumsum([start, *steps[1:]]).tolist()
    out = dict(zip(keys, map(float, values), strict=True))
    out["max"] = float(values[-1] + draw(st.integers(0, 50_000)))
    return out


def _monotone(model) -> None:  # noqa: ANN001 - any fitted model
    values = quantile(model, GRID)
    assert np.all(np.diff(values) >= 0)
    assert values.min() >= model.min and values.max() <= model.max


@settings(max_examples=80, deadline=None)
@given(percentile_sets())
@example({"p1": 1.0, "p5": 899.0, "max": 899.0})  # alpha 1.0055: a rounded alpha missed p5 by one
def test_heavy_tail_model_is_monotone_and_matches_knots(pct: dict[str, float]) -> None:
    model, _ = fit_messages_per_conversation(Percentiles(**pct))
    _monotone(model)
    knots = Percentiles(**pct).knots()
    got = quantile(model, np.array([p for p, _ in knots]))
    for (p, q), g in zip(knots, got, strict=True):
        assert g == q, (p, q, g)
    assert all(e.within_goal for e in model.fit_errors)


@settings(max_examples=80, deadline=None)
@given(percentile_sets(low=0), st.booleans())
def test_spline_model_is_monotone_and_matches_knots(pct: dict[str, float], heavy: bool) -> None:
    stats = DistributionStats(**pct)
    model = fit_spline(stats, heavy_tail=heavy)
    _monotone(model)
    knots = stats.knots()
    got = quantile(model, np.array([p for p, _ in knots]))
    assert got.tolist() == [q for _, q in knots]


@settings(max_examples=60, deadline=None)
@given(percentile_sets())
def test_content_length_knots_match_every_exported_percentile(pct: dict[str, float]) -> None:
    stats = DistributionStats(**pct)
    model = fit_content_length(stats, fallback_sigma=1.2)
    assert model.sigma > 0
    _monotone(model)
    if len(stats.knots()) >= 2:
        got = quantile(model, np.array([p for p, _ in stats.knots()]))
        assert got.tolist() == [q for _, q in stats.knots()]


@settings(max_examples=80, deadline=None)
@given(percentile_sets(), st.integers(0, 3))
def test_messages_per_sender_heavy_tail_is_monotone_and_matches_knots(
    pct: dict[str, float], histogram_buckets: int
) -> None:
    """Messages per sender goes through the same heavy-tail fit, histogram points included."""
    top = pct["max"]
    edges = sorted({1.0, *np.geomspace(1, top + 1, histogram_buckets + 2).round().tolist()})
    histogram = None
    if histogram_buckets and len(edges) >= 3:
        counts = np.linspace(100, 10, len(edges) - 1).round().astype(int).tolist()
        histogram = Histogram(edges=edges, counts=counts)
    stats = DistributionStats(**pct, histogram=histogram)
    model, _ = fit_messages_per_sender(stats)
    assert isinstance(model, PowerLawTailModel)
    _monotone(model)
    assert model.min >= 1
    knots = stats.knots()
    got = quantile(model, np.array([p for p, _ in knots]))
    assert got.tolist() == [q for _, q in knots]
