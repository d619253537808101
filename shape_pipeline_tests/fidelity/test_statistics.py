"""Statistics and the verdict rule on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shape_pipeline.contracts import Histogram, Percentiles
from shape_pipeline.distributions import pareto_alpha
from shape_pipeline.fidelity import statistics as st
from shape_pipeline.fidelity.recommendations import tail_alpha_suggestion
from shape_pipeline.fidelity.verdict import decide, overall
from shape_pipeline.sampling.frequencies import Frequency


def test_tvd_cohens_w_and_chi_square_by_hand() -> None:
    cmp = st.compare_categories({"A": 60, "B": 40}, {"A": 50, "B": 50})
    assert cmp.tvd == pytest.approx(0.10)
    assert cmp.cohens_w == pytest.approx(math.sqrt(0.1**2 / 0.6 + 0.1**2 / 0.4))
    # 2x2 contingency: expected 55/45 in each row -> chi2 = 2 * (5^2/55 + 5^2/45)
    assert cmp.chi_square == pytest.approx(2 * (25 / 55 + 25 / 45))
    assert 0.1 < cmp.p_value < 0.2
    assert cmp.zero_mass == []


def test_zero_mass_category_is_named_not_nan() -> None:
    cmp = st.compare_categories(
        {"DIRECT_MESSAGE": 70, "GROUP_CHAT": 30, "CHANNEL": 0}, {"DIRECT_MESSAGE": 69, "GROUP_CHAT": 30, "CHANNEL": 1}
    )
    assert cmp.zero_mass == ["CHANNEL"]
    assert cmp.cohens_w is None
    assert cmp.chi_square is not None and math.isfinite(cmp.chi_square)


def test_design_effect_scales_chi_square() -> None:
    prod, syn = {"a": 500, "b": 500}, {"a": 560, "b": 440}
    plain = st.compare_categories(prod, syn)
    clustered = st.compare_categories(prod, syn, design_effect=4.0)
    assert clustered.chi_square == pytest.approx(plain.chi_square / 4)
    assert clustered.p_value > plain.p_value
    sizes = Frequency.from_pairs([(1, 3), (10, 1)])  # 13 rows: deff = (3*1 + 100)/13
    assert st.cluster_design_effect(sizes) == pytest.approx(103 / 13)


def test_ks_is_exact_at_histogram_edges() -> None:
    # production: values 1..4 with counts 1,1,1,1 -> F(1)=.25, F(2)=.5, F(3)=.75, F(4)=1
    hist = Histogram(edges=[1, 2, 3, 4, 5], counts=[1, 1, 1, 1])
    same = Frequency.from_pairs([(1, 10), (2, 10), (3, 10), (4, 10)])
    assert st.ks_distance(st.production_cdf_points(None, hist), same) == pytest.approx(0.0)
    shifted = Frequency.from_pairs([(1, 20), (2, 10), (3, 5), (4, 5)])  # F = .5, .75, .875, 1
    assert st.ks_distance(st.production_cdf_points(None, hist), shifted) == pytest.approx(0.25)


def test_ks_at_percentile_knots_is_zero_exactly_when_the_discrete_percentile_agrees() -> None:
    freq = Frequency.from_pairs([(1, 50), (2, 30), (5, 20)])  # F(1)=.5, F(2)=.8, F(5)=1
    agree = Percentiles(p50=1, p75=2, p90=5)
    assert st.ks_distance(st.production_cdf_points(agree, None), freq) == pytest.approx(0.0)
    # production says p75 = 5: then F(4) < .75, but the synthetic F(4) = .8 -> D >= .05
    disagree = Percentiles(p50=1, p75=5)
    assert st.ks_distance(st.production_cdf_points(disagree, None), freq) == pytest.approx(0.05)
    # production max 3 (rounded up): synthetic has values above it -> F(3) = .8 < 1
    capped = Percentiles(p50=1, max=3)
    assert st.ks_distance(st.production_cdf_points(capped, None), freq) == pytest.approx(0.2)


def test_percentile_error_is_plain_and_the_noise_band_shrinks_with_size() -> None:
    rng = np.random.default_rng(0)
    small = Frequency.from_values(np.ceil(rng.lognormal(3, 1, 300)))
    big = Frequency.from_values(np.ceil(rng.lognormal(3, 1, 2_000_000)))
    for freq in (small, big):  # the seed's number: |synthetic / production - 1|, whatever the size
        target = st.percentile_from_frequency(freq, 0.99) * 1.1  # production 10% above
        assert st.percentile_error(freq, 0.99, target) == pytest.approx(1 - 1 / 1.1)
    # 3 entities above p99 of 300: noise alone gives far more than 10%; at two million, a unit or so
    assert st.percentile_noise_band(small, 0.99, None) > 0.3
    assert st.percentile_noise_band(big, 0.99, None) < 0.02
    assert st.percentile_noise_band(big, 0.99, 300) > 0.3  # production's own count counts too


def test_noise_band_formula_by_hand() -> None:
    # values 1..1000 once each: Q(p) = ceil(1000 p); se at p50 with n_s = n_p = 1000 is
    # sqrt(.25 * 2/1000) = 0.02236; z = 3 -> Q(.5 -/+ .0671) = 433 and 568: the larger error
    # production could show by noise is 500/433 - 1 (the other side gives 1 - 500/568)
    freq = Frequency.from_values(np.arange(1, 1001))
    assert st.percentile_noise_band(freq, 0.5, 1000) == pytest.approx(500 / 433 - 1, rel=1e-9)
    # a share of 1% from 10,000 rows each side: 3 * sqrt(.01 * .99 * 2e-4) / .01 = 0.422
    assert st.share_noise_band(0.01, 10_000, 10_000) == pytest.approx(0.422, abs=0.001)
    assert st.share_error(0.008, 0.01) == pytest.approx(0.2)
    assert st.unexplained({"p50": 0.2, "p99": 0.4}, {"p50": 0.1, "p99": 0.5}) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("effect", "p_value", "expected"),
    [
        (0.16, None, "FAIL"),
        (0.15, None, "WARNING"),  # at the tolerance: inside, but in the top third
        (0.101, None, "WARNING"),
        (0.099, None, "PASS"),
        (0.02, 0.001, "WARNING"),  # p-value rejects while the effect is small
        (0.02, 0.3, "PASS"),
    ],
)
def test_verdict_rule(effect: float, p_value: float | None, expected: str) -> None:
    assert decide(effect, 0.15, p_value=p_value)[0] == expected


def test_noise_softens_a_verdict_by_one_step_and_no_further() -> None:
    verdict, reason = decide(0.30, 0.15, unexplained=0.0, noise_band=0.35)
    assert verdict == "WARNING" and "0.300" in reason and "noise band 0.350" in reason
    assert decide(0.30, 0.15, unexplained=0.16, noise_band=0.35)[0] == "FAIL"  # another error is beyond noise
    assert decide(0.30, 0.15, unexplained=0.12)[0] == "WARNING"  # never softer than one step
    assert decide(0.12, 0.15, unexplained=0.0)[0] == "PASS"  # a top-third warning noise explains
    assert decide(0.12, 0.15, unexplained=0.11)[0] == "WARNING"
    assert decide(0.12, 0.15, unexplained=0.0, p_value=0.01)[0] == "WARNING"  # the p-value rule still holds


def test_overall_ignores_skipped() -> None:
    assert overall(["PASS", "SKIPPED"]) == "PASS"
    assert overall(["PASS", "WARNING", "SKIPPED"]) == "WARNING"
    assert overall(["WARNING", "FAIL"]) == "FAIL"


def test_alpha_suggestion_reproduces_the_issue_example() -> None:
    # Seed numbers: p95 = 1200, p99 = 5000 give alpha 2.13; synthetic p99 3,900 -> about 1.95.
    alpha = pareto_alpha((0.95, 1200), (0.99, 5000))
    assert alpha is not None
    assert alpha == pytest.approx(2.13, abs=0.005)
    suggested = tail_alpha_suggestion(alpha, (0.95, 1200), 0.99, 5000 / 3900)
    assert suggested == pytest.approx(1.96, abs=0.02)
    assert tail_alpha_suggestion(alpha, (0.95, 1200), 0.99, 3900 / 5000) > alpha  # lighter tail
