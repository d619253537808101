"""Content length: a log-normal fitted to mean, median and p95, its body corrected by knots.

The seed keeps `distribution: log_normal` with `mean`, `median`, `p95`. Three numbers, two
parameters: (mu, sigma) minimise the squared log errors of all targets exported (mean, and every
percentile), and the three errors are reported. A log-normal rarely matches every percentile of
real text lengths, so when the shape exports two or more percentiles (or a histogram) the
model also carries `knots`: the generator then samples the monotone spline through them, which
matches every exported percentile; deleting `knots` falls back to the pure log-normal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

from shape_pipeline.calibration.fit_report import fit_error, model_errors
from shape_pipeline.calibration.knots import (
    KnotsArgument,
    exported_cap,
    extrapolation_level,
    round_up_2sig,
    shape_knots,
    value_floor,
)
from shape_pipeline.contracts import DistributionStats, FitError, Knot, LogNormalModel
from shape_pipeline.distributions import quantile

PURE_PREFIX = "log_normal."  # fit errors of the pure (mu, sigma) curve, reported beside the model's
_Z95 = float(ndtri(0.95))
_SIGMA_RANGE = (1e-3, 5.0)


def _targets(stats: DistributionStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log(target), and its coefficients on sigma and sigma^2: ln q = mu + a*sigma + b*sigma^2."""
    logs, a, b = [], [], []
    for p, q in stats.knots():
        logs.append(math.log(max(q, 1.0)))
        a.append(float(ndtri(p)))
        b.append(0.0)
    if stats.mean is not None:
        logs.append(math.log(max(stats.mean, 1.0)))
        a.append(0.0)
        b.append(0.5)
    return np.array(logs), np.array(a), np.array(b)


def fit_mu_sigma(stats: DistributionStats, fallback_sigma: float) -> tuple[float, float]:
    """Least squares in log space over every exported target; one target keeps `fallback_sigma`."""
    logs, a, b = _targets(stats)
    if logs.size == 0:
        raise ValueError("needs a mean, a median or a percentile")

    def mu_for(sigma: float) -> float:
        return float(np.mean(logs - a * sigma - b * sigma**2))

    if logs.size == 1:
        return mu_for(fallback_sigma), fallback_sigma
    return mu_for(best := _least_squares_sigma(logs, a, b)), best


def _least_squares_sigma(logs: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """With mu eliminated the loss is a quartic in sigma: its minimum on [1e-3, 5] is at a real
    root of the cubic derivative or at a bound (exact, no iterative optimiser)."""
    y, a, b = logs - logs.mean(), a - a.mean(), b - b.mean()
    # loss(s) = sum((y - a s - b s^2)^2), expanded in powers of s
    loss = np.polynomial.Polynomial(
        [
            np.dot(y, y),
            -2 * np.dot(a, y),
            np.dot(a, a) - 2 * np.dot(b, y),
            2 * np.dot(a, b),
            np.dot(b, b),
        ]
    )
    low, high = _SIGMA_RANGE
    # numpy's stubs type roots() as possibly object-valued; a float polynomial's are float/complex
    roots = cast("npt.NDArray[np.float64 | np.complex128]", loss.deriv().roots())
    candidates = [low, high] + [float(r.real) for r in roots if abs(r.imag) < 1e-9 and low < r.real < high]
    return min(candidates, key=loss)


def pure_errors(mu: float, sigma: float, stats: DistributionStats) -> list[FitError]:
    """The pure log-normal's errors against the seed's three numbers (those exported)."""
    out: list[FitError] = []
    if stats.mean is not None:
        out.append(fit_error(f"{PURE_PREFIX}mean", stats.mean, math.exp(mu + sigma**2 / 2)))
    median = stats.median if stats.median is not None else stats.p50
    if median is not None:
        out.append(fit_error(f"{PURE_PREFIX}median", median, math.exp(mu)))
    if stats.p95 is not None:
        out.append(fit_error(f"{PURE_PREFIX}p95", stats.p95, math.exp(mu + _Z95 * sigma)))
    return out


def fit_content_length(stats: DistributionStats, *, fallback_sigma: float, source: str = "shape") -> LogNormalModel:
    """Fit the log-normal and, with two or more knots, the body correction."""
    mu, sigma = fit_mu_sigma(stats, fallback_sigma)
    knots: Sequence[Knot] = shape_knots(stats, stats.histogram, integer=True)
    body = list(knots) if len(knots) >= 2 else None
    median = stats.median if stats.median is not None else stats.p50
    low = int(value_floor(stats.histogram, knots, natural_min=1.0))
    body_knots: KnotsArgument = {"knots": body} if body is not None else {}
    model = LogNormalModel(
        mean=stats.mean if stats.mean is not None else round(math.exp(mu + sigma**2 / 2), 3),
        median=median if median is not None else round(math.exp(mu), 3),
        p95=stats.p95 if stats.p95 is not None else round(math.exp(mu + _Z95 * sigma), 3),
        mu=round(mu, 6),
        sigma=round(sigma, 6),
        min=low,
        max=1,
        **body_knots,  # contracts refuse an explicit None
        source=source,
    )
    cap = exported_cap(stats, stats.histogram, integer=True)
    if cap is None:
        level = extrapolation_level(knots) if knots else 0.9995
        open_model = model.model_copy(update={"max": 10**12})
        cap = round_up_2sig(float(quantile(open_model, np.array([level]))[0]))
    model = model.model_copy(update={"max": int(math.ceil(max(cap, knots[-1][1] if knots else 0)))})
    errors = model_errors(model, stats.knots(), mean=stats.mean)
    if body is not None:
        errors += pure_errors(mu, sigma, stats)
    return model.model_copy(update={"fit_errors": errors, "source": source})
