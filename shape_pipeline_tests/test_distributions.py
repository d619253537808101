"""The shared quantile functions reproduce their knots exactly (discrete percentiles)."""

from __future__ import annotations

import numpy as np
import pytest

from shape_pipeline.contracts import (
    LogNormalModel,
    NormalModel,
    PowerLawTailModel,
    QuantileSplineModel,
)
from shape_pipeline.distributions import (
    discrete_percentile,
    pareto_alpha,
    pareto_tail,
    quantile,
    sample,
    spline_quantile,
)


def test_spline_passes_through_knots() -> None:
    knots = [(0.1, 3.0), (0.5, 45.0), (0.9, 450.0)]
    values = spline_quantile(knots, np.array([k[0] for k in knots]))
    assert np.allclose(values, [3.0, 45.0, 450.0])


def test_spline_is_monotone_beyond_the_knots() -> None:
    u = np.linspace(1e-6, 1 - 1e-6, 10_001)
    values = spline_quantile([(0.25, 2.0), (0.5, 10.0), (0.75, 11.0), (0.99, 500.0)], u)
    assert np.all(np.diff(values) >= -1e-9)


def test_power_law_tail_matches_percentiles_at_a_million_draws() -> None:
    model = PowerLawTailModel(
        alpha=2.13,
        min=1,
        max=15000,
        body_knots=[(0.5, 45), (0.75, 120), (0.9, 450)],
        tail_start=(0.95, 1200),
    )
    draws = sample(model, np.random.default_rng(7), 1_000_000)
    for p, target in [(0.5, 45), (0.75, 120), (0.9, 450), (0.95, 1200), (0.99, 5000)]:
        assert abs(discrete_percentile(draws, p) - target) / target < 0.05
    assert draws.max() <= 15000 and draws.min() >= 1


def test_lower_alpha_means_heavier_tail() -> None:
    base = dict(min=1, max=1_000_000, body_knots=[(0.5, 45)], tail_start=(0.95, 1200))
    u = np.array([0.99, 0.999])
    heavy = quantile(PowerLawTailModel(alpha=1.8, **base), u)
    light = quantile(PowerLawTailModel(alpha=2.5, **base), u)
    assert np.all(heavy > light)


def test_seed_form_pure_power_law_has_median_near_two() -> None:
    model = PowerLawTailModel(alpha=1.85, min=1, max=15000)
    draws = sample(model, np.random.default_rng(1), 200_000)
    assert discrete_percentile(draws, 0.5) in (2.0, 3.0)


def test_other_models() -> None:
    rng = np.random.default_rng(3)
    normal = sample(NormalModel(mean=8.5, stddev=2.3, min=3, max=20), rng, 100_000)
    assert abs(normal.mean() - 8.5) < 0.05 and normal.min() >= 3
    lognormal = sample(LogNormalModel(mean=85, median=42, p95=297, mu=np.log(42), sigma=1.19, max=10_000), rng, 200_000)
    assert abs(discrete_percentile(lognormal, 0.5) - 42) <= 1
    spline = QuantileSplineModel(knots=[(0.5, 2.0)], min=2, max=2)
    assert set(sample(spline, rng, 10).tolist()) == {2}


def test_discrete_percentile_definition() -> None:
    values = np.array([1, 2, 3, 4])
    assert discrete_percentile(values, 0.5) == 2.0
    assert discrete_percentile(values, 0.51) == 3.0
    with pytest.raises(ValueError):
        discrete_percentile(np.array([]), 0.5)


def test_no_negative_zero_at_the_floor() -> None:
    model = QuantileSplineModel(knots=[(0.1, 0.0), (0.5, 30.0)], min=0, max=1000)
    values = quantile(model, np.array([0.001, 0.01, 0.1]))
    assert not np.any(np.signbit(values))


def test_pareto_alpha_inverts_the_pareto_tail() -> None:
    start = (0.9, 120.0)
    for alpha in (1.3, 2.13, 4.0):
        q99 = float(pareto_tail(start, alpha, np.array([0.99]))[0])
        assert pareto_alpha(start, (0.99, q99)) == pytest.approx(alpha)
    assert pareto_alpha((0.95, 10), (0.99, 10)) is None  # flat: no tail passes through both
    assert pareto_alpha((0.95, 0), (0.99, 10)) is None
    assert pareto_alpha((0.99, 10), (0.95, 20)) is None  # levels out of order
