"""Comparison statistics: effect sizes that stay meaningful at millions of rows, p-values beside them.

Production is known only by aggregates (counts, percentiles, histograms); the synthetic side by
exact frequency tables. Categories: total variation distance (deciding), Cohen's w and a
two-sample chi-square test (reported). Numeric metrics: the exact KS distance over integer
values at every point where the production CDF is known (histogram edges, percentile knots,
the rounded max), percentile relative errors, and mean/median errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import chi2, chi2_contingency

from shape_pipeline.contracts import PERCENTILE_KEYS, DistributionStats, Histogram, Percentiles
from shape_pipeline.sampling.frequencies import Frequency
from shape_pipeline.sampling.shape import cdf_at, percentile_from_frequency

# --------------------------------------------------------------------------------------
# Frequency tables (the synthetic side: the sampler's own definitions)
# --------------------------------------------------------------------------------------


def frequency_mean(freq: Frequency) -> float | None:
    if freq.total == 0:
        return None
    return float(np.dot(freq.values, freq.counts) / freq.total)


# --------------------------------------------------------------------------------------
# Categories
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryComparison:
    """Production vs synthetic shares of one categorical variable."""

    categories: list[str]
    production_shares: dict[str, float]
    synthetic_shares: dict[str, float]
    synthetic_total: int
    tvd: float
    cohens_w: float | None  # None when a synthetic category has zero production mass
    chi_square: float | None
    p_value: float | None
    zero_mass: list[str] = field(default_factory=list)  # in synthetic, absent from production


def _shares(counts: Mapping[str, float], keys: Sequence[str]) -> np.ndarray:
    values = np.array([float(counts.get(k, 0)) for k in keys])
    total = values.sum()
    return values / total if total > 0 else values


def compare_categories(
    production: Mapping[str, float], synthetic: Mapping[str, int], *, design_effect: float = 1.0
) -> CategoryComparison:
    """TVD, Cohen's w and a two-sample chi-square (homogeneity) test of two count tables.

    Both sides are samples, so the chi-square test is the 2 x K contingency test; categories
    empty on both sides are dropped. Rows that are not independent (messages clustered in
    conversations) pass a `design_effect` > 1: the statistic is divided by it (first-order
    Rao-Scott correction). A category absent (or zero) in production but present in the
    synthetic data is listed in `zero_mass` (Cohen's w is then undefined, not NaN).
    """
    keys = sorted(set(production) | set(synthetic))
    p = _shares(production, keys)
    q = _shares(synthetic, keys)
    syn_counts = np.array([float(synthetic.get(k, 0)) for k in keys])
    prod_counts = np.array([float(production.get(k, 0)) for k in keys])
    zero_mass = [k for k, pk, sk in zip(keys, p, syn_counts, strict=True) if pk == 0 and sk > 0]
    tvd = float(0.5 * np.abs(p - q).sum())
    cohens_w = None if zero_mass else _cohens_w(p, q)
    chi, pv = _chi_square(prod_counts, syn_counts, max(design_effect, 1.0))
    return CategoryComparison(
        categories=keys,
        production_shares={k: float(v) for k, v in zip(keys, p, strict=True)},
        synthetic_shares={k: float(v) for k, v in zip(keys, q, strict=True)},
        synthetic_total=int(syn_counts.sum()),
        tvd=tvd,
        cohens_w=cohens_w,
        chi_square=chi,
        p_value=pv,
        zero_mass=zero_mass,
    )


def _cohens_w(p: np.ndarray, q: np.ndarray) -> float:
    inside = p > 0
    return float(np.sqrt(np.sum((q[inside] - p[inside]) ** 2 / p[inside])))


def _chi_square(prod: np.ndarray, syn: np.ndarray, deff: float) -> tuple[float | None, float | None]:
    if prod.sum() <= 0 or syn.sum() <= 0:
        return None, None
    keep = (prod + syn) > 0
    if keep.sum() < 2:
        return 0.0, 1.0
    table = np.vstack([prod[keep], syn[keep]])
    result = chi2_contingency(table, correction=False)
    statistic = float(result.statistic) / deff
    return statistic, float(chi2.sf(statistic, result.dof))


def cluster_design_effect(cluster_sizes: Frequency) -> float:
    """Kish's design effect of rows clustered in groups, with full within-group correlation.

    deff = sum(m^2) / sum(m) over the group sizes m (the upper bound, rho = 1): the number of
    rows one independent observation is worth. 1.0 for an empty table.
    """
    rows = float(np.dot(cluster_sizes.values, cluster_sizes.counts))
    if rows <= 0:
        return 1.0
    return float(np.dot(cluster_sizes.values**2, cluster_sizes.counts) / rows)


# --------------------------------------------------------------------------------------
# Numeric distributions
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CdfPoint:
    """What production says about its CDF at one integer x: lo <= F(x) <= hi (lo < hi for knots)."""

    x: float
    lo: float
    hi: float
    strict_below: float | None = None  # for a percentile knot p: F(x - 1) < p


def production_cdf_points(
    percentiles: Percentiles | None, histogram: Histogram | None
) -> list[CdfPoint]:
    """Every point where the production CDF of an integer metric is known.

    Histogram bucket [a, b) with cumulative share c below b: F(ceil(b) - 1) = c exactly.
    Discrete percentile q_p: F(q_p - 1) < p <= F(q_p). Rounded-up max m: F(m) = 1.
    """
    points: list[CdfPoint] = []
    if histogram is not None and histogram.total > 0:
        cum = np.cumsum(histogram.counts) / histogram.total
        for edge, share in zip(histogram.edges[1:], cum, strict=True):
            x = float(np.ceil(edge) - 1)
            points.append(CdfPoint(x, float(share), float(share)))
    if percentiles is not None:
        for p, q in percentiles.knots():
            points.append(CdfPoint(q, p, 1.0, strict_below=p))
        if percentiles.max is not None:
            points.append(CdfPoint(float(percentiles.max), 1.0, 1.0))
    return points


def ks_distance(points: Sequence[CdfPoint], freq: Frequency) -> float | None:
    """Exact KS D between the synthetic CDF and production at the known points (None if none).

    At a knot the distance is how far p lies outside [F_syn(q - 1), F_syn(q)]: zero exactly
    when the synthetic data has the same discrete percentile.
    """
    if not points or freq.total == 0:
        return None
    x = np.array([pt.x for pt in points])
    f = cdf_at(freq, x)
    f_below = cdf_at(freq, x - 1)
    lo = np.array([pt.lo for pt in points])
    hi = np.array([pt.hi for pt in points])
    dev = np.maximum(lo - f, f - hi)
    strict = np.array([np.nan if pt.strict_below is None else pt.strict_below for pt in points])
    knot = ~np.isnan(strict)
    dev[knot] = np.maximum(dev[knot], f_below[knot] - strict[knot])
    return float(max(np.max(dev), 0.0))


def relative_error(synthetic: float, production: float) -> float:
    """|syn - prod| / prod, with prod floored at 1 (a production 0 is an integer count)."""
    return abs(synthetic - production) / max(abs(production), 1.0)


# The seed's percentiles: `max_percentile_error` is taken over these (others are reported).
DECIDING_PERCENTILES: tuple[str, ...] = ("p50", "p75", "p90", "p95", "p99")
NOISE_Z = 3.0  # a noise band spans three standard errors of sampling noise


def percentile_error(freq: Frequency, level: float, production: float) -> float:
    """The seed's plain relative error |synthetic / production - 1| of one percentile."""
    return relative_error(percentile_from_frequency(freq, level), production)


def percentile_noise_band(freq: Frequency, level: float, production_count: int | None) -> float:
    """The relative error sampling noise alone can give at percentile `level` at these sizes.

    Both percentiles are order statistics. The share of a sample below the true p-quantile has
    binomial standard error sqrt(p(1-p)/n); the difference of the production share (n_p
    entities, when the shape gives the count) and the synthetic one (n_s) has
        se = sqrt(p (1 - p) (1/n_s + 1/n_p)).
    Read through the synthetic quantile function Q (the best estimate of both at hand), the
    production percentile lies between lo = Q(p - z se) and hi = Q(p + z se) (z = NOISE_Z) when
    the two differ by noise only; the band is the larger plain error that gives:
        band = max(|Q(p)/lo - 1|, |Q(p)/hi - 1|).
    At millions of rows it shrinks to the spacing of neighbouring values; at p99 of 3,000
    entities it is about 0.37 for a log-normal of sigma 1 (p50: 0.10).
    """
    inverse = 1.0 / freq.total + (1.0 / production_count if production_count else 0.0)
    se = float(np.sqrt(level * (1.0 - level) * inverse))
    q = percentile_from_frequency(freq, level)
    lo = percentile_from_frequency(freq, max(level - NOISE_Z * se, 1e-12))
    hi = percentile_from_frequency(freq, min(level + NOISE_Z * se, 1.0))
    return max(relative_error(q, lo), relative_error(q, hi))


def share_noise_band(production_share: float, production_count: int | None, synthetic_count: int, design_effect: float = 1.0) -> float:
    """The relative error of a share that sampling noise alone can give (binomial).

    A share p from n independent rows has standard error sqrt(p(1-p)/n); rows clustered in
    groups count n / design_effect times. The band is z * sqrt(p(1-p)(deff/n_s + deff/n_p)) / p
    (z = NOISE_Z), on the production share p; 0 (no softening) for a production share of 0.
    """
    if production_share <= 0 or synthetic_count <= 0:
        return 0.0
    inverse = design_effect / synthetic_count + (design_effect / production_count if production_count else 0.0)
    se = float(np.sqrt(production_share * (1.0 - production_share) * inverse))
    return NOISE_Z * se / production_share


def share_error(synthetic: float, production: float) -> float:
    """|synthetic / production - 1| of a share; 1.0 when production is 0 and synthetic is not."""
    if production <= 0:
        return 0.0 if synthetic <= 0 else 1.0
    return abs(synthetic / production - 1.0)


def tvd_noise_band(production_shares: np.ndarray, production_count: int | None, synthetic_count: int) -> float:
    """The total variation distance two samples of these sizes from one distribution show.

    Cell i's share difference is about normal with sd s_i = sqrt(p_i(1-p_i)(1/n_s + 1/n_p)), so
    E[TVD] = 1/2 sum s_i sqrt(2/pi) and sd[TVD] ~ 1/2 sqrt(sum s_i^2 (1 - 2/pi)); the band is
    E + z sd (z = NOISE_Z). Sparse grids of many cells have a visible floor: 50 cells of 3,000
    conversations each side give about 0.10.
    """
    p = np.asarray(production_shares, dtype=np.float64).ravel()
    if synthetic_count <= 0:
        return 0.0
    inverse = 1.0 / synthetic_count + (1.0 / production_count if production_count else 0.0)
    s = np.sqrt(p * (1.0 - p) * inverse)
    mean = 0.5 * float(s.sum()) * np.sqrt(2.0 / np.pi)
    sd = 0.5 * float(np.sqrt(np.sum(s**2) * (1.0 - 2.0 / np.pi)))
    return mean + NOISE_Z * sd


def unexplained(errors: Mapping[str, float], bands: Mapping[str, float]) -> float:
    """The largest error that lies outside its own noise band (0 when noise explains them all)."""
    return max((e for k, e in errors.items() if e > bands.get(k, 0.0)), default=0.0)


@dataclass(frozen=True)
class DistributionComparison:
    """Production aggregates vs the synthetic frequency table of one numeric metric."""

    synthetic_total: int
    ks_statistic: float | None
    production_percentiles: dict[str, float]
    synthetic_percentiles: dict[str, float]
    percentile_errors: dict[str, float]  # key -> plain relative error |synthetic / production - 1|
    noise_bands: dict[str, float]  # key -> the relative error sampling noise alone can give there
    production_mean: float | None
    synthetic_mean: float | None
    mean_error: float | None
    median_error: float | None

    @property
    def max_percentile_error(self) -> float | None:
        """The largest error over the seed's p50/p75/p90/p95/p99 (those present)."""
        worst = self.worst_percentile
        return None if worst is None else self.percentile_errors[worst]

    @property
    def worst_percentile(self) -> str | None:
        """The deciding percentile with the largest plain error."""
        deciding = [k for k in self.percentile_errors if k in DECIDING_PERCENTILES]
        return max(deciding, key=lambda k: self.percentile_errors[k]) if deciding else None

    @property
    def noise_band(self) -> float | None:
        """The noise band at the percentile `max_percentile_error` reports."""
        worst = self.worst_percentile
        return None if worst is None else self.noise_bands[worst]

    @property
    def unexplained_percentile_error(self) -> float | None:
        """The largest deciding percentile error outside its own noise band (0 if none)."""
        if self.worst_percentile is None:
            return None
        deciding = {k: v for k, v in self.percentile_errors.items() if k in DECIDING_PERCENTILES}
        return unexplained(deciding, self.noise_bands)


def compare_distribution(
    percentiles: Percentiles | None,
    freq: Frequency,
    *,
    histogram: Histogram | None = None,
    mean: float | None = None,
    production_count: int | None = None,
) -> DistributionComparison:
    """Compare a production metric (percentiles, histogram, mean) with a synthetic table."""
    if isinstance(percentiles, DistributionStats):
        histogram = histogram or percentiles.histogram
        mean = percentiles.mean if mean is None else mean
        production_count = production_count or percentiles.count
    if production_count is None and histogram is not None:
        production_count = histogram.total or None
    prod_pct: dict[str, float] = {}
    if percentiles is not None:
        prod_pct = {k: float(v) for k in PERCENTILE_KEYS if (v := getattr(percentiles, k)) is not None}
        median = getattr(percentiles, "median", None)
        if "p50" not in prod_pct and median is not None:
            prod_pct["p50"] = float(median)
    syn_pct: dict[str, float] = {}
    errors: dict[str, float] = {}
    bands: dict[str, float] = {}
    if freq.total > 0:
        for key, value in prod_pct.items():
            level = int(key[1:]) / 100.0
            syn_pct[key] = percentile_from_frequency(freq, level)
            errors[key] = percentile_error(freq, level, value)
            bands[key] = percentile_noise_band(freq, level, production_count)
    syn_mean = frequency_mean(freq)
    mean_error = (
        relative_error(syn_mean, mean) if mean is not None and syn_mean is not None else None
    )
    return DistributionComparison(
        synthetic_total=freq.total,
        ks_statistic=ks_distance(production_cdf_points(percentiles, histogram), freq),
        production_percentiles=prod_pct,
        synthetic_percentiles=syn_pct,
        percentile_errors=errors,
        noise_bands=bands,
        production_mean=mean,
        synthetic_mean=syn_mean,
        mean_error=mean_error,
        median_error=errors.get("p50"),
    )


def bin_frequency(freq: Frequency, edges: Sequence[float]) -> np.ndarray:
    """Counts of a frequency table in buckets [edges[i], edges[i+1]) (for side-by-side charts)."""
    e = np.asarray(edges, dtype=np.float64)
    index = np.searchsorted(e, freq.values, side="right") - 1
    inside = (index >= 0) & (index < len(e) - 1)
    return np.bincount(index[inside], weights=freq.counts[inside], minlength=len(e) - 1)
