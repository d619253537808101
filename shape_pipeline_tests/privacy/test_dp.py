"""OpenDP noise and the post-processing that turns noisy counts into publishable statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shape_pipeline.contracts import DpFamily
from shape_pipeline.privacy.dp import (
    Budget,
    FamilySpec,
    clean_cells,
    clean_histogram,
    edge_threshold,
    histogram_moments,
    histogram_quantiles,
    noisy_counts,
    publishable_histogram,
)

SPECS = {
    "a": FamilySpec(1.0, 1, ("users.username_length",)),
    "b": FamilySpec(3.0, 20, ("messages.content_length_stats",)),
}


def test_noise_comes_from_opendp_unseeded_and_at_the_family_scale() -> None:
    family = DpFamily(epsilon=0.5, sensitivity=10, scale=20.0)
    counts = np.full(2_000, 1_000, dtype=np.int64)
    first, second = noisy_counts(counts, family), noisy_counts(counts, family)
    assert first.dtype == np.int64 and first.shape == counts.shape
    assert not np.array_equal(first, second)  # never seeded: two runs differ
    # discrete Laplace of scale b: mean |noise| is about b
    assert 15.0 < float(np.mean(np.abs(first - counts))) < 25.0


def test_a_family_whose_scale_is_too_small_for_its_epsilon_is_refused() -> None:
    # OpenDP itself certifies epsilon = sensitivity / scale; claiming less must fail
    with pytest.raises(AssertionError, match="OpenDP certifies"):
        noisy_counts(np.array([1, 2]), DpFamily(epsilon=0.1, sensitivity=10, scale=10.0))


def test_budget_splits_epsilon_by_weight_and_reports_every_family() -> None:
    budget = Budget(2.0, SPECS, max_messages_per_user=20, max_conversations_per_user=8)
    budget.noisy("b", np.array([5, 5]))
    report = budget.report()
    assert set(report.families) == {"a", "b"}  # charged even when unused
    assert math.isclose(sum(f.epsilon for f in report.families.values()), 2.0)
    assert math.isclose(report.families["b"].epsilon, 1.5)
    assert math.isclose(report.families["b"].scale, 20 / 1.5)
    assert report.family_of("messages.content_length_stats.p50") == report.families["b"]


def test_rebound_keeps_weights_and_what_was_already_noised() -> None:
    budget = Budget(2.0, SPECS, max_messages_per_user=20, max_conversations_per_user=8)
    budget.noisy("a", np.array([1]))
    budget.rebound({**SPECS, "b": FamilySpec(3.0, 40, SPECS["b"].statistics)}, 16)
    assert budget.family("b").sensitivity == 40 and budget.max_conversations_per_user == 16
    with pytest.raises(ValueError, match="already noised"):
        budget.rebound({**SPECS, "a": FamilySpec(1.0, 2, SPECS["a"].statistics)}, 16)
    with pytest.raises(ValueError, match="weight"):
        budget.rebound({**SPECS, "b": FamilySpec(1.0, 40, SPECS["b"].statistics)}, 16)


def test_clean_histogram_drops_noise_in_empty_buckets_and_keeps_a_thin_real_tail() -> None:
    scale = 5.0
    body = np.zeros(60, dtype=np.int64)
    body[10:20] = 400
    phantom = body.copy()
    phantom[45] = 30  # an isolated noisy bucket far above the data, below the edge threshold
    assert edge_threshold(scale, 60) > 30
    assert clean_histogram(phantom, scale)[45] == 0
    phantom[50] = 60  # even when noise lifts it over the threshold, it stands alone: left out
    assert edge_threshold(scale, 60) < 60
    assert clean_histogram(phantom, scale)[40:].sum() == 0
    tail = body.copy()
    tail[20:30] = 14  # ten buckets of a few heavy users each, every one below the threshold
    cleaned = clean_histogram(tail, scale)
    assert cleaned[20:30].sum() == 140 and cleaned[30:].sum() == 0
    negative = body.copy()
    negative[12] = -7
    assert clean_histogram(negative, scale).min() == 0


def test_a_lone_noisy_bucket_never_becomes_the_body_of_a_thin_population() -> None:
    scale = 5.0
    thin = np.zeros(60, dtype=np.int64)
    thin[5:15] = int(0.5 * edge_threshold(scale, 60))  # real, but no bucket clears the threshold
    thin[50] = int(1.5 * edge_threshold(scale, 60))  # noise that cleared it, far from the data
    assert not clean_histogram(thin, scale)[40:].any()


def test_a_thin_population_is_published_at_a_coarser_resolution() -> None:
    edges = np.arange(0.0, 33.0)
    noisy = np.full(32, int(0.6 * edge_threshold(10.0, 32)), dtype=np.int64)  # spread thin: no bucket clears alone
    assert not clean_histogram(noisy, 10.0).any()
    merged_edges, counts = publishable_histogram(edges, noisy, 10.0)
    assert counts.sum() > 0 and len(counts) < 32
    assert merged_edges[0] == 0 and merged_edges[-1] == 32 and set(merged_edges) <= set(edges)


def test_clean_cells_zeroes_counts_noise_alone_can_make() -> None:
    out = clean_cells(np.array([1_000, 3, -2, 500]), 2.0)
    assert out.tolist() == [1_000, 0, 0, 500]


def test_quantiles_from_a_histogram_are_monotone_and_exact_on_unit_buckets() -> None:
    edges = np.arange(0.0, 11.0)
    counts = np.array([0, 0, 10, 0, 30, 0, 0, 50, 0, 10])
    q = histogram_quantiles(edges, counts, [0.05, 0.1, 0.5, 0.9, 0.99, 0.999], integer=True)
    assert q == sorted(q)
    assert q[0] == 2 and q[2] == 7 and q[-1] == 9  # values somebody can have: the buckets' own


def test_moments_of_unit_buckets_are_the_exact_moments() -> None:
    edges = np.arange(0.0, 6.0)
    counts = np.array([0, 2, 0, 2, 0])
    mean, std = histogram_moments(edges, counts, integer=True)
    assert mean == pytest.approx(2.0) and std == pytest.approx(1.0)
