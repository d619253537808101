"""Noise bands of a differential-privacy shape: they include the DP noise the shape records.

Production is drawn here with numpy, turned into counts over fixed buckets, and given discrete
Laplace noise of a known scale b the way a DP export does (then post-processed: negatives
clamped to 0, isolated small buckets zeroed; percentiles and the mean read off the noisy
histogram, hourly and daily margins summed off the noisy hour x day grid). A shape that
records that noise (`privacy.mode == "dp"`) widens its bands by it: a synthetic table from the
same distribution is not failed for the noise, one from another distribution still is, and a
shape without DP noise is judged exactly as before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from shape_pipeline.contracts import (
    PERCENTILE_KEYS,
    DifferentialPrivacy,
    DistributionStats,
    DpFamily,
    Histogram,
    MessageMetrics,
    PrivacyReport,
    ShapeMetrics,
    percentile_level,
)
from shape_pipeline.fidelity import statistics as st
from shape_pipeline.fidelity.comparisons import Inputs, run_tests
from shape_pipeline.sampling.frequencies import Frequency, FrequencyTables
from shape_pipeline.sampling.shape import histogram, log_grid

END = datetime(2025, 10, 22, tzinfo=UTC)
TOLERANCE = 0.15
SEEDS = range(10)
SENDERS = 3_000  # messages per sender: log-normal, median 20, sigma 1
SENDER_SCALE = 20.0  # Laplace scale of its histogram counts
TYPES = ("TEXT", "IMAGE", "FILE", "AUDIO")
TYPE_SHARES = np.array([0.86, 0.10, 0.03, 0.01])
MESSAGES = 100_000
TYPE_SCALE = 400.0
GRID_SCALE = 150.0


def laplace(rng: np.random.Generator, scale: float, size: int | tuple[int, ...]) -> np.ndarray:
    """Discrete Laplace noise of scale b: the difference of two geometric variables."""
    q = 1.0 - np.exp(-1.0 / scale)
    return rng.geometric(q, size) - rng.geometric(q, size)


def noisy(counts: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Counts with DP noise added, negatives clamped to 0 (post-processing)."""
    return np.maximum(np.asarray(counts) + laplace(rng, scale, np.shape(counts)), 0)


def isolated_zeroed(counts: np.ndarray, scale: float) -> np.ndarray:
    """Post-processing of a noisy histogram: a bucket below 3 b between two such is noise alone."""
    small = np.concatenate([[True], counts < 3 * scale, [True]])
    return np.where(small[:-2] & small[1:-1] & small[2:], 0, counts)


def dp_stats(values: np.ndarray, scale: float, rng: np.random.Generator) -> DistributionStats:
    """A DP stats block: noisy counts over the fixed log grid, then the count, the discrete
    percentiles (interpolated inside their bucket) and the mean (bucket midpoints) read off them."""
    freq = Frequency.from_values(values)
    edges = log_grid(freq.values[-1])
    counts = isolated_zeroed(noisy(histogram(freq, edges), scale, rng), scale)
    n = counts.sum()
    below = np.concatenate([[0], np.cumsum(counts)])
    pct = {}
    for key in PERCENTILE_KEYS:
        rank = percentile_level(key) * n
        k = min(int(np.searchsorted(below, rank, side="left")) - 1, len(counts) - 1)
        share = (rank - below[k]) / max(counts[k], 1)
        pct[key] = float(edges[k] - 1 + np.ceil(share * (edges[k + 1] - edges[k])))
    mid = (edges[:-1] + edges[1:]) / 2
    return DistributionStats(
        count=int(n),
        mean=float(np.dot(mid, counts) / n),
        histogram=Histogram(edges=edges.tolist(), counts=counts.tolist()),
        max=float(edges[-1]),
        **pct,
    )


def dp_privacy(scales: dict[str, float]) -> PrivacyReport:
    """A DP privacy block with one family (sensitivity 1) per statistic path."""
    families = {
        path: DpFamily(epsilon=1.0 / b, sensitivity=1, scale=b, statistics=[path]) for path, b in scales.items()
    }
    return PrivacyReport(
        mode="dp",
        dp=DifferentialPrivacy(
            mechanism="discrete Laplace on counts over fixed buckets",
            library="numpy (test)",
            epsilon=sum(f.epsilon for f in families.values()),
            max_messages_per_user=1,
            max_conversations_per_user=1,
            families=families,
        ),
    )


def senders(rng: np.random.Generator, factor: float = 1.0) -> np.ndarray:
    return np.ceil(factor * rng.lognormal(np.log(20.0), 1.0, SENDERS))


def hour_weights(shift: int = 0, amplitude: float = 0.9) -> np.ndarray:
    """A daily rhythm (7 x 24, Monday first), `shift` hours later."""
    hours = 1.0 + amplitude * np.sin(2 * np.pi * (np.arange(24) - shift) / 24)
    w = np.outer(np.linspace(1.0, 1.5, 7), hours)
    return w / w.sum()


def production(seed: int) -> ShapeMetrics:
    """A DP shape of messages per sender, message types and the hour x day grid, its privacy
    block recording the noise of each."""
    rng = np.random.default_rng(seed)
    types = noisy(rng.multinomial(MESSAGES, TYPE_SHARES), TYPE_SCALE, rng)
    grid = noisy(rng.multinomial(MESSAGES, hour_weights().ravel()).reshape(7, 24), GRID_SCALE, rng)
    messages = MessageMetrics(
        messages_per_sender=dp_stats(senders(rng), SENDER_SCALE, rng),
        type_distribution=dict(zip(TYPES, types.tolist(), strict=True)),
        hour_by_day_of_week=grid.tolist(),
        hourly_counts=grid.sum(axis=0).tolist(),
        day_of_week_counts=grid.sum(axis=1).tolist(),
    )
    privacy = dp_privacy(
        {
            "messages.messages_per_sender": SENDER_SCALE,
            "messages.type_distribution": TYPE_SCALE,
            "messages.hour_by_day_of_week": GRID_SCALE,
        }
    )
    return ShapeMetrics(extracted_at=END, sample_window_days=30, messages=messages, privacy=privacy)


def synthetic(seed: int, *, factor: float = 1.0, shift: int = 0) -> FrequencyTables:
    """Exact synthetic tables from production's distributions (lengths x `factor`, the daily
    rhythm `shift` hours later); messages in conversations of 5, for the design effect."""
    rng = np.random.default_rng(1_000 + seed)
    return FrequencyTables(
        messages_per_sender=Frequency.from_values(senders(rng, factor)),
        message_types=dict(zip(TYPES, rng.multinomial(MESSAGES, TYPE_SHARES).tolist(), strict=True)),
        hour_by_day_of_week=rng.multinomial(MESSAGES, hour_weights(shift).ravel()).reshape(7, 24),
        messages_per_conversation=Frequency.from_pairs([(5, MESSAGES // 5)]),
    )


def without_dp(shape: ShapeMetrics) -> ShapeMetrics:
    """The same noisy numbers, but a shape that does not say they are noisy."""
    return shape.model_copy(update={"privacy": None})


KEYS = ("messages_per_sender", "message_types", "hourly_pattern", "day_of_week_pattern")
# where the noise alone fails faithful data (the hourly grid's own noise fails it only where
# clamping dominates: `test_the_tvd_band_covers_the_noise_of_hourly_margins` takes it instead)
NOISY_KEYS = ("messages_per_sender", "message_types")


def verdicts(
    shape_of: Callable[[int], ShapeMetrics], synthetic_of: Callable[[int], FrequencyTables]
) -> dict[str, Counter[str]]:
    """Verdicts of the four DP-noised tests over the seeds (seed -> production, synthetic)."""
    out: dict[str, Counter[str]] = {k: Counter() for k in KEYS}
    for seed in SEEDS:
        results = run_tests(Inputs(shape_of(seed), synthetic_of(seed), None, TOLERANCE))
        for key in KEYS:
            out[key][results[key].verdict] += 1
    return out


# ------------------------------------------------------------------------------ the formulas


def test_dp_share_sd_by_hand() -> None:
    # a share of one count out of an exact total: sqrt(2) b / n
    assert st.dp_share_sd(0.3, 1_000, 5.0) == pytest.approx(np.sqrt(2) * 5 / 1_000)
    # an hour summing 7 grid cells of 168: sqrt(2 ((1 - s)^2 7 + s^2 161)) b / n
    s = 1 / 24
    assert st.dp_share_sd(s, 10_000, 5.0, 7, 161) == pytest.approx(
        np.sqrt(2 * ((1 - s) ** 2 * 7 + s**2 * 161)) * 5 / 10_000
    )


def test_the_histogram_cdf_sd_matches_simulated_noise() -> None:
    rng = np.random.default_rng(0)
    counts = np.array([40, 120, 300, 500, 420, 250, 120, 60, 25, 10])
    b = 6.0
    hist = Histogram(edges=list(range(len(counts) + 1)), counts=counts.tolist())
    noise = st.HistogramNoise.of(hist, b)
    assert noise is not None
    draws = counts + laplace(rng, b, (20_000, len(counts)))
    cdf = np.cumsum(draws, axis=1) / draws.sum(axis=1, keepdims=True)
    # the delta method within 5% of the simulated sd at every inner edge; the last edge is exact
    assert np.std(cdf[:, :-1], axis=0) == pytest.approx(noise.sd[1:-1], rel=0.05)
    assert noise.sd[0] == noise.sd[-1] == 0.0


def test_the_percentile_band_adds_dp_noise_in_quadrature() -> None:
    # values 1..1000 once each: Q(p) = ceil(1000 p). n_s = n_p = 1000 at p50: sampling
    # se^2 = .25 * 2/1000 = .0005. Production's two noisy buckets of 500 (b = 20): its CDF at
    # the middle edge has sd sqrt(2 (.25 + .25)) 20 / 1000 = .02, so se = .03; z = 3: Q(.41) = 410
    freq = Frequency.from_pairs([(v, 1) for v in range(1, 1001)])
    noise = st.HistogramNoise.of(Histogram(edges=[1, 501, 1001], counts=[500, 500]), 20.0)
    assert noise is not None and noise.sd[1] == pytest.approx(0.02)
    assert st.percentile_noise_band(freq, 0.5, 1000, dp=noise) == pytest.approx(500 / 410 - 1, rel=1e-9)
    # at p99, p + z se passes 1: noise can put the percentile anywhere up to production's top
    tail = st.HistogramNoise.of(Histogram(edges=[1, 501, 1001, 5001], counts=[500, 490, 10]), 20.0)
    assert tail is not None and tail.top == 5001
    assert st.percentile_noise_band(freq, 0.99, 1000, dp=tail) == pytest.approx(1 - 990 / 5001)
    assert st.percentile_noise_band(freq, 0.99, 1000) == pytest.approx(990 / 977 - 1)  # no DP: Q(.99 - .0133)


# ------------------------------------------------------------------------------ the verdicts


def test_the_tvd_band_covers_the_noise_of_hourly_margins() -> None:
    """Hour shares off a noisy 7 x 24 grid (each hour sums 7 cells of scale b) against a faithful
    draw: the sampling band alone is exceeded nearly always, the DP band almost never."""
    rng = np.random.default_rng(0)
    n, b, draws = MESSAGES, 100.0, 300
    weights = hour_weights(amplitude=0.5).ravel()  # cells well above b: clamping is rare
    outside = Counter()
    for _ in range(draws):
        hours = noisy(rng.multinomial(n, weights), b, rng).reshape(7, 24).sum(axis=0)
        p = hours / hours.sum()
        q = rng.multinomial(n, weights).reshape(7, 24).sum(axis=0) / n
        tvd = 0.5 * np.abs(p - q).sum()
        dp_sd = st.dp_share_sd(p, hours.sum(), b, 7, 161)
        outside["sampling"] += tvd > st.tvd_noise_band(p, int(hours.sum()), n)
        outside["dp"] += tvd > st.tvd_noise_band(p, int(hours.sum()), n, dp_sd=dp_sd)
    assert outside["sampling"] >= 0.9 * draws
    assert outside["dp"] <= 0.01 * draws


def test_production_noise_fails_a_faithful_draw_without_its_band() -> None:
    """The noise is large enough to matter: judged as exact numbers, faithful data fails."""
    results = verdicts(lambda seed: without_dp(production(seed)), synthetic)
    for key in NOISY_KEYS:
        assert results[key]["FAIL"] >= len(SEEDS) // 2, (key, results[key])


def test_a_faithful_draw_is_not_failed_for_the_recorded_dp_noise() -> None:
    results = verdicts(production, synthetic)
    for key in KEYS:
        assert results[key]["FAIL"] == 0, (key, results[key])


def test_a_real_mismatch_still_fails_with_the_dp_band() -> None:
    lengths = verdicts(production, lambda seed: synthetic(seed, factor=2.0))
    assert lengths["messages_per_sender"] == Counter({"FAIL": len(SEEDS)})
    rhythm = verdicts(production, lambda seed: synthetic(seed, shift=12))
    assert rhythm["hourly_pattern"] == Counter({"FAIL": len(SEEDS)})


def test_the_report_shows_the_band_it_used() -> None:
    results = run_tests(Inputs(production(0), synthetic(0), None, TOLERANCE))
    for key in KEYS:
        r = results[key]
        assert r.noise_band is not None and r.noise_band > 0, key
        assert r.synthetic["dp_noise"]["scale"] > 0
        assert "DP noise" in (r.reason or "")
    sender = results["messages_per_sender"]
    assert set(sender.synthetic["dp_noise"]["statistic_noise_bands"]) == {"ks_statistic"}  # no mean: it does not decide
    assert sender.statistic == "max_percentile_error"
    worst = max(
        sender.percentile_errors, key=lambda k: sender.percentile_errors[k] if k in st.DECIDING_PERCENTILES else -1
    )
    assert sender.noise_band == sender.synthetic["noise_bands"][worst]
    hourly = results["hourly_pattern"]
    assert hourly.noise_band == hourly.synthetic["dp_noise"]["statistic_noise_bands"]["total_variation_distance"]


# ------------------------------------------------------------------------------ non-DP shapes


def test_a_shape_without_dp_noise_is_judged_as_before() -> None:
    """No privacy block, a suppression block, or a DP block whose families cover none of the
    statistics: every result is the same, field for field."""
    shape = production(3)
    plain = without_dp(shape)
    suppression = shape.model_copy(update={"privacy": PrivacyReport(min_cell_count=10)})
    uncovered = shape.model_copy(update={"privacy": dp_privacy({"users.username_length": 2.0})})
    tables = synthetic(3)
    expected = {k: r.model_dump() for k, r in run_tests(Inputs(plain, tables, None, TOLERANCE)).items()}
    for other in (suppression, uncovered):
        assert {k: r.model_dump() for k, r in run_tests(Inputs(other, tables, None, TOLERANCE)).items()} == expected
    stats = shape.messages.messages_per_sender
    assert st.compare_distribution(stats, tables.messages_per_sender, dp_scale=None) == st.compare_distribution(
        stats, tables.messages_per_sender
    )
