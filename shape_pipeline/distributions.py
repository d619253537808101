"""Quantile functions of the fitted models: the one place that turns a model into numbers.

Calibration uses these to measure its own fit, generation to sample (inverse-transform:
x = Q(U)), fidelity to rebuild the production distribution. One implementation serves all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.special import ndtri

from shape_pipeline.contracts import (
    PERCENTILE_KEYS,
    Knot,
    LogNormalModel,
    NormalModel,
    PowerLawTailModel,
    QuantileSplineModel,
    percentile_level,
)

Model = QuantileSplineModel | NormalModel | LogNormalModel | PowerLawTailModel

_EPS = 1e-12
PINNED_LEVELS: tuple[float, ...] = tuple(percentile_level(key) for key in PERCENTILE_KEYS)


def probit(u: np.ndarray | float) -> np.ndarray:
    """Phi^-1(u), with u kept strictly inside (0, 1)."""
    return ndtri(np.clip(np.asarray(u, dtype=np.float64), _EPS, 1.0 - _EPS))


def spline_quantile(knots: Sequence[Knot], u: np.ndarray) -> np.ndarray:
    """Continuous quantile function through `knots` (monotone PCHIP in probit/log1p space).

    Outside the outer knots the curve continues along its end tangents (a log-normal-like
    tail). One knot gives a constant.
    """
    u = np.asarray(u, dtype=np.float64)
    if len(knots) == 0:
        raise ValueError("a quantile spline needs at least one knot")
    p = np.array([k[0] for k in knots], dtype=np.float64)
    g = np.log1p(np.maximum(np.array([k[1] for k in knots], dtype=np.float64), 0.0))
    if len(knots) == 1:
        return np.full(u.shape, np.expm1(g[0]))
    z_knots = probit(p)
    z = probit(u)
    curve = PchipInterpolator(z_knots, g, extrapolate=False)
    slope = curve.derivative()
    out = curve(z)
    below, above = z < z_knots[0], z > z_knots[-1]
    out[below] = g[0] + float(slope(z_knots[0])) * (z[below] - z_knots[0])
    out[above] = g[-1] + float(slope(z_knots[-1])) * (z[above] - z_knots[-1])
    return np.expm1(out)


def pareto_alpha(low: Knot, high: Knot) -> float | None:
    """The Pareto exponent (pdf x^-alpha) through two upper percentiles (p_a, q_a), (p_b, q_b):
    alpha = 1 + ln((1 - p_a) / (1 - p_b)) / ln(q_b / q_a), the inverse of `pareto_tail`; None
    where no tail passes through both (needs 0 < q_a < q_b and p_a < p_b < 1)."""
    (p_a, q_a), (p_b, q_b) = low, high
    if not (0.0 < q_a < q_b and p_a < p_b < 1.0):
        return None
    return 1.0 + math.log((1.0 - p_a) / (1.0 - p_b)) / math.log(q_b / q_a)


def pareto_tail(start: Knot, alpha: float, u: np.ndarray) -> np.ndarray:
    """Q(u) = q_t * ((1 - p_t) / (1 - u)) ** (1 / (alpha - 1)) for u above p_t."""
    p_t, q_t = start
    u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0 - _EPS)
    return q_t * ((1.0 - p_t) / (1.0 - u)) ** (1.0 / (alpha - 1.0))


def _finish(x: np.ndarray, lo: float, hi: float, integer: bool) -> np.ndarray:
    if integer:
        x = np.ceil(x - 1e-9)
    return np.clip(x, lo, hi) + 0.0  # + 0.0 turns the ceiling's -0.0 into 0.0


def quantile(model: Model, u: np.ndarray) -> np.ndarray:
    """Q(u) for any fitted model, as float64 (integers for integer models)."""
    u = np.asarray(u, dtype=np.float64)
    if isinstance(model, PowerLawTailModel):
        return _power_law_quantile(model, u)
    if isinstance(model, QuantileSplineModel):
        x = spline_quantile(model.knots, u)
        if model.tail_alpha is not None:
            top = model.knots[-1]
            tail = u > top[0]
            x[tail] = pareto_tail(top, model.tail_alpha, u[tail])
        return _finish(x, model.min, model.max, model.integer)
    if isinstance(model, NormalModel):
        x = spline_quantile(model.knots, u) if model.knots else model.mean + model.stddev * probit(u)
        return np.clip(np.rint(x), model.min, model.max)
    if isinstance(model, LogNormalModel):
        x = spline_quantile(model.knots, u) if model.knots else np.exp(model.mu + model.sigma * probit(u))
        return _finish(x, model.min, model.max, True)
    raise TypeError(f"no quantile function for {type(model).__name__}")


def _power_law_quantile(model: PowerLawTailModel, u: np.ndarray) -> np.ndarray:
    if model.tail_start is None:
        # A pure power law from `min` (the seed's form): continuous Pareto, then ceiling.
        x = pareto_tail((0.0, float(max(model.min, 1))), model.alpha, u)
    else:
        knots = [k for k in model.body_knots if k[0] < model.tail_start[0]] + [model.tail_start]
        x = spline_quantile(knots, u)
        tail = u > model.tail_start[0]
        x[tail] = pareto_tail(model.tail_start, model.alpha, u[tail])
    return _finish(x, model.min, model.max, True)


def sample(model: Model, rng: np.random.Generator, size: int) -> np.ndarray:
    """`size` draws from `model` by inverse transform (int64 for integer models)."""
    x = quantile(model, rng.random(size))
    integer = not isinstance(model, QuantileSplineModel) or model.integer
    return x.astype(np.int64) if integer else x


def discrete_percentile(values: np.ndarray, p: float) -> float:
    """`percentile_disc`: the smallest value v with F(v) >= p (what the sampler exports)."""
    ordered = np.sort(np.asarray(values))
    if ordered.size == 0:
        raise ValueError("no values")
    index = max(int(np.ceil(p * ordered.size)) - 1, 0)
    return float(ordered[index])


def stratified_levels(rng: np.random.Generator, size: int) -> np.ndarray:
    """u_i = (i + U_i) / n in a seeded random order: one level in each of n equal strata.

    Realized quantiles then sit within one order statistic of the model's at any n (Latin
    hypercube sampling), where i.i.d. levels scatter them by O(1/sqrt(n)). The top stratum
    still reaches into the tail, so Pareto draws beyond the last knot are kept. The stratum that
    holds an exported percentile level (p1 ... p99: the order statistic `percentile_disc` reads)
    gets exactly that level, so those percentiles come out as the model's own.
    """
    if size <= 0:
        return np.zeros(0, dtype=np.float64)
    levels = (np.arange(size, dtype=np.float64) + rng.random(size)) / size
    for p in PINNED_LEVELS:
        levels[max(int(np.ceil(p * size)) - 1, 0)] = p
    return levels[rng.permutation(size)]


def sample_stratified(model: Model, rng: np.random.Generator, size: int) -> np.ndarray:
    """`size` draws from `model` at stratified levels (see `stratified_levels`), typed like `sample`."""
    x = quantile(model, stratified_levels(rng, size))
    return x.astype(np.int64) if is_integer(model) else x


def is_integer(model: Model) -> bool:
    """Whether `model` draws whole numbers (every model but a non-integer quantile spline)."""
    return not isinstance(model, QuantileSplineModel) or model.integer
