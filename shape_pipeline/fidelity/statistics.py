"""Comparison statistics: effect sizes that stay meaningful at millions of rows, p-values beside them.

Production is known only by aggregates (counts, percentiles, histograms); the synthetic side by
exact frequency tables. Categories: total variation distance (deciding), Cohen's w and a
two-sample chi-square test (reported). Numeric metrics: the exact KS distance over integer
values at every point where the production CDF is known (histogram edges, percentile knots,
the rounded max), percentile relative errors, and mean/median errors.

Noise bands say how large an error noise alone gives. Sampling noise always; for a
differential-privacy shape also the noise its counts carry (each noisy count of Laplace scale b
has sd sqrt(2) b), passed as a keyword whose default leaves the sampling band unchanged.
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


def production_cdf_points(percentiles: Percentiles | None, histogram: Histogram | None) -> list[CdfPoint]:
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


def dp_share_sd(
    share: float | np.ndarray,
    total: float,
    scale: float,
    cells: int | np.ndarray = 1,
    rest_cells: int | np.ndarray | None = None,
) -> float | np.ndarray:
    """The standard deviation DP noise gives a production share (a CDF value is one too).

    Each noisy count has variance 2 b^2 (b = `scale`). A share s = A / n whose A sums `cells`
    noisy counts has sd sqrt(2 cells) b / n when n is known apart from them (`rest_cells` None);
    when n = A + B also sums the `rest_cells` noisy counts of B (a histogram's CDF, a category's
    share of the noisy total) the delta method gives sqrt(2 ((1 - s)^2 cells + s^2 rest)) b / n.
    """
    s = np.asarray(share, dtype=np.float64)
    variance = cells if rest_cells is None else (1.0 - s) ** 2 * cells + s**2 * rest_cells
    return np.sqrt(2.0 * variance) * scale / max(float(total), 1.0)


@dataclass(frozen=True)
class HistogramNoise:
    """A DP shape's noisy histogram (counts of Laplace scale b), its CDF at each edge 0..K and
    the DP sd the CDF carries there."""

    histogram: Histogram
    scale: float
    cdf: np.ndarray
    sd: np.ndarray
    top: float  # upper edge of the last non-empty bucket: the largest value noise can reach

    @classmethod
    def of(cls, histogram: Histogram | None, scale: float | None) -> HistogramNoise | None:
        """None without DP noise or a histogram: the bands are sampling bands then."""
        if not scale or histogram is None or histogram.total <= 0:
            return None
        counts = np.asarray(histogram.counts, dtype=np.float64)
        below = np.arange(len(counts) + 1)  # buckets summed up to each edge
        cdf = np.concatenate([[0.0], np.cumsum(counts)]) / counts.sum()
        sd = np.asarray(dp_share_sd(cdf, counts.sum(), scale, below, len(counts) - below))
        return cls(histogram, scale, cdf, sd, float(histogram.edges[int(np.flatnonzero(counts)[-1]) + 1]))

    def at_level(self, level: float) -> float:
        """The DP sd of the CDF where it crosses `level`: the larger of the two edges of the
        bucket the percentile is read from."""
        k = min(max(int(np.searchsorted(self.cdf, level, side="left")), 1), len(self.cdf) - 1)
        return float(max(self.sd[k - 1], self.sd[k]))


def percentile_noise_band(
    freq: Frequency, level: float, production_count: int | None, *, dp: HistogramNoise | None = None
) -> float:
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
    A DP shape reads its percentiles off a noisy histogram (`dp`), whose CDF there carries an sd
    dp_sd of its own: se = sqrt(p (1 - p) (1/n_s + 1/n_p) + dp_sd^2). Where p + z se reaches 1,
    noise can put the percentile in any non-empty production bucket: hi is at least `dp.top`.
    """
    dp_sd = 0.0 if dp is None else dp.at_level(level)
    inverse = 1.0 / freq.total + (1.0 / production_count if production_count else 0.0)
    se = float(np.sqrt(level * (1.0 - level) * inverse + dp_sd**2))
    q = percentile_from_frequency(freq, level)
    lo = percentile_from_frequency(freq, max(level - NOISE_Z * se, 1e-12))
    hi = percentile_from_frequency(freq, min(level + NOISE_Z * se, 1.0))
    if dp is not None and level + NOISE_Z * se >= 1.0:
        hi = max(hi, dp.top)
    return max(relative_error(q, lo), relative_error(q, hi))


def share_noise_band(
    production_share: float,
    production_count: int | None,
    synthetic_count: int,
    design_effect: float = 1.0,
    *,
    dp_sd: float = 0.0,
) -> float:
    """The relative error of a share that sampling noise alone can give (binomial).

    A share p from n independent rows has standard error sqrt(p(1-p)/n); rows clustered in
    groups count n / design_effect times. The band is z * sqrt(p(1-p)(deff/n_s + deff/n_p)) / p
    (z = NOISE_Z), on the production share p; 0 (no softening) for a production share of 0.
    A DP production share adds its own sd in quadrature (`dp_sd`, from `dp_share_sd`).
    """
    if production_share <= 0 or synthetic_count <= 0:
        return 0.0
    inverse = design_effect / synthetic_count + (design_effect / production_count if production_count else 0.0)
    se = float(np.sqrt(production_share * (1.0 - production_share) * inverse + dp_sd**2))
    return NOISE_Z * se / production_share


def share_error(synthetic: float, production: float) -> float:
    """|synthetic / production - 1| of a share; 1.0 when production is 0 and synthetic is not."""
    if production <= 0:
        return 0.0 if synthetic <= 0 else 1.0
    return abs(synthetic / production - 1.0)


def tvd_noise_band(
    production_shares: np.ndarray,
    production_count: int | None,
    synthetic_count: int,
    *,
    design_effect: float = 1.0,
    dp_sd: float | np.ndarray = 0.0,
) -> float:
    """The total variation distance two samples of these sizes from one distribution show.

    Cell i's share difference is about normal with sd s_i = sqrt(p_i(1-p_i)(1/n_s + 1/n_p)), so
    E[TVD] = 1/2 sum s_i sqrt(2/pi) and sd[TVD] ~ 1/2 sqrt(sum s_i^2 (1 - 2/pi)); the band is
    E + z sd (z = NOISE_Z). Sparse grids of many cells have a visible floor: 50 cells of 3,000
    conversations each side give about 0.10. Clustered rows scale the binomial terms by the
    design effect; a DP production grid adds each cell's `dp_sd` to s_i in quadrature.
    """
    p = np.asarray(production_shares, dtype=np.float64).ravel()
    if synthetic_count <= 0:
        return 0.0
    inverse = design_effect / synthetic_count + (design_effect / production_count if production_count else 0.0)
    s = np.sqrt(p * (1.0 - p) * inverse + np.asarray(dp_sd, dtype=np.float64).ravel() ** 2)
    mean = 0.5 * float(s.sum()) * np.sqrt(2.0 / np.pi)
    sd = 0.5 * float(np.sqrt(np.sum(s**2) * (1.0 - 2.0 / np.pi)))
    return float(mean + NOISE_Z * sd)


def ks_noise_band(noise: HistogramNoise, synthetic_count: int) -> float:
    """The KS distance noise alone gives at a noisy histogram's edges (DP shapes only).

    At each edge the two CDFs differ by binomial sampling noise and the histogram's DP noise,
    in quadrature; the band is z (NOISE_Z) times the largest such sd over the edges, at most 1
    (noise that large explains any distance).
    """
    f = noise.cdf
    inverse = 1.0 / max(synthetic_count, 1) + 1.0 / noise.histogram.total
    return min(NOISE_Z * float(np.max(np.sqrt(f * (1.0 - f) * inverse + noise.sd**2))), 1.0)


def mean_noise_band(noise: HistogramNoise, mean: float, freq: Frequency) -> float:
    """The relative mean error noise alone gives, for a mean computed off a noisy histogram.

    mean = sum c_i mid_i / sum c_i, so noise of variance 2 b^2 in each count c_i moves it by
    sd sqrt(sum 2 b^2 (mid_i - mean)^2) / n (delta method); sampling adds sigma sqrt(1/n_s +
    1/n_p) (sigma: the synthetic standard deviation) in quadrature. Band: z sd / max(|mean|, 1),
    the unit of `relative_error`. The synthetic table must not be empty.
    """
    n = noise.histogram.total
    edges = np.asarray(noise.histogram.edges, dtype=np.float64)
    mid = (edges[:-1] + edges[1:]) / 2.0
    dp_var = 2.0 * noise.scale**2 * float(np.sum((mid - mean) ** 2)) / n**2
    syn_mean = np.average(freq.values, weights=freq.counts)
    syn_var = float(np.average((freq.values - syn_mean) ** 2, weights=freq.counts))
    sampling_var = syn_var * (1.0 / freq.total + 1.0 / n)
    return NOISE_Z * float(np.sqrt(dp_var + sampling_var)) / max(abs(mean), 1.0)


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
    # DP shapes only: bands of the other deciding statistics ("ks_statistic", "mean_error")
    statistic_noise_bands: dict[str, float] = field(default_factory=dict)

    @property
    def max_percentile_error(self) -> float | None:
        """The largest error over the seed's p50/p75/p90/p95/p99 (those present)."""
        return self._at_worst(self.percentile_errors)

    @property
    def worst_percentile(self) -> str | None:
        """The deciding percentile with the largest plain error."""
        deciding = [k for k in self.percentile_errors if k in DECIDING_PERCENTILES]
        return max(deciding, key=lambda k: self.percentile_errors[k]) if deciding else None

    @property
    def noise_band(self) -> float | None:
        """The noise band at the percentile `max_percentile_error` reports."""
        return self._at_worst(self.noise_bands)

    def _at_worst(self, table: dict[str, float]) -> float | None:
        """`table`'s entry at the worst deciding percentile (None without one)."""
        worst = self.worst_percentile
        return None if worst is None else table[worst]

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
    dp_scale: float | None = None,
) -> DistributionComparison:
    """Compare a production metric (percentiles, histogram, mean) with a synthetic table.

    `dp_scale`: the Laplace scale of a DP shape's noisy histogram counts (its percentiles and
    mean are read off that histogram); every noise band then includes that noise too.
    """
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
    noise = HistogramNoise.of(histogram, dp_scale)
    if freq.total > 0:
        for key, value in prod_pct.items():
            level = int(key[1:]) / 100.0
            syn_pct[key] = percentile_from_frequency(freq, level)
            errors[key] = percentile_error(freq, level, value)
            bands[key] = percentile_noise_band(freq, level, production_count, dp=noise)
    syn_mean = frequency_mean(freq)
    mean_error = relative_error(syn_mean, mean) if mean is not None and syn_mean is not None else None
    statistic_bands: dict[str, float] = {}
    if noise is not None and freq.total > 0:
        statistic_bands["ks_statistic"] = ks_noise_band(noise, freq.total)
        if mean is not None:
            statistic_bands["mean_error"] = mean_noise_band(noise, mean, freq)
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
        statistic_noise_bands=statistic_bands,
    )


def bin_frequency(freq: Frequency, edges: Sequence[float]) -> np.ndarray:
    """Counts of a frequency table in buckets [edges[i], edges[i+1]) (for side-by-side charts)."""
    e = np.asarray(edges, dtype=np.float64)
    index = np.searchsorted(e, freq.values, side="right") - 1
    inside = (index >= 0) & (index < len(e) - 1)
    return np.bincount(index[inside], weights=freq.counts[inside], minlength=len(e) - 1)
