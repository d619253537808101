"""How long each conversation lives in the window and where it ends (lifetime and recency).

A conversation's lifetime (last minus first message) is drawn from the lifetime model at a
stratified level that is rank-correlated with its message count (a Gaussian copula of strength
LIFETIME_RANK_CORRELATION: busy conversations tend to live longer, as in production), so the
shard's lifetimes follow the model exactly. Its end is then placed so that the shares of
conversations ending in the window's last 7 and 30 days are the config's recency shares; a
conversation too long to end earlier is forced into the recent segment it reaches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import ndtr

from shape_pipeline.contracts import QuantileSplineModel, RecencyShares
from shape_pipeline.distributions import probit, quantile

if TYPE_CHECKING:
    from shape_pipeline.generation.timeline import TimeWarp

LIFETIME_RANK_CORRELATION = 0.8  # Spearman of messages vs lifetime measured 0.79 on a simulated world
DAY_S = 86_400.0
RECENT_DAYS = (7.0, 30.0)
EDGE_PIN = 1.5  # alive-at-an-edge chance = EDGE_PIN * span / 2W


def stratified_levels(rng: np.random.Generator, rank: np.ndarray) -> np.ndarray:
    """u_i = (rank_i + U_i) / n: levels whose empirical quantiles are exact at any n."""
    return (rank + rng.random(rank.size)) / max(rank.size, 1)


def ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    out = np.empty(values.size, dtype=np.int64)
    out[order] = np.arange(values.size)
    return out


LIFETIME_LEVELS = ndtr(np.linspace(-5.0, 5.3, 1024))
_TABLES: dict[int, tuple[QuantileSplineModel, np.ndarray]] = {}


def lifetime_quantile(model: QuantileSplineModel, levels: np.ndarray) -> np.ndarray:
    """The model's quantile function, tabulated once per model object (building the spline
    per shard cost more than all the rest of the lifetimes)."""
    cached = _TABLES.get(id(model))
    if cached is None or cached[0] is not model:
        if len(_TABLES) > 64:
            _TABLES.clear()
        grid = np.concatenate([[0.0], LIFETIME_LEVELS, [1.0]])
        cached = _TABLES[id(model)] = (model, quantile(model, grid))
    return np.interp(levels, np.concatenate([[0.0], LIFETIME_LEVELS, [1.0]]), cached[1])


def draw_lifetimes(
    rng: np.random.Generator, counts: np.ndarray, model: QuantileSplineModel, window_s: float
) -> np.ndarray:
    """Lifetime in seconds per conversation (0 for a single message), shorter than the window.

    Single-message conversations take the lowest levels (their lifetime is 0, as in the
    export); the others are ranked by a noisy copy of their count's normal score.
    """
    k = counts.size
    count_score = probit((ranks(counts + rng.random(k)) + 0.5) / max(k, 1))
    rho = LIFETIME_RANK_CORRELATION
    score = rho * count_score + np.sqrt(1.0 - rho * rho) * rng.standard_normal(k)
    score = np.where(counts <= 1, -np.inf, score)
    lifetime = lifetime_quantile(model, stratified_levels(rng, ranks(score)))
    lifetime = np.where(counts <= 1, 0.0, lifetime)
    return np.clip(lifetime, 0.0, window_s * (1.0 - 1e-9))


def recent_shares(
    lower: np.ndarray, bounds: tuple[float, float], recency: RecencyShares
) -> tuple[np.ndarray, np.ndarray]:
    """Per conversation, the chance its end lies after bounds[0] (last 7 days) and after bounds[1]
    (last 30 days): 1 where its span forces it, else the one chance that meets the shares."""
    k = max(lower.size, 1)

    def chance(forced: np.ndarray, share: float, floor: float) -> np.ndarray:
        free = int((~forced).sum())
        wanted = (share * k - forced.sum()) / max(free, 1)
        return np.where(forced, 1.0, float(np.clip(wanted, floor, 1.0)))

    after_7 = chance(lower > bounds[0], recency.active_last_7_days, 0.0)
    free_7 = float(after_7[lower <= bounds[0]].max()) if (lower <= bounds[0]).any() else 0.0
    after_30 = chance(lower > bounds[1], recency.active_last_30_days, free_7)
    return after_7, np.maximum(after_30, after_7)


def stationary_ends(
    v: np.ndarray, within: np.ndarray, lower: np.ndarray, length: float, edge_slack: np.ndarray
) -> np.ndarray:
    """Ends without recency shares: a conversation of span s is alive at the window's start
    (its first message within `edge_slack` of it) with chance s / 2W, alive at its end likewise,
    and otherwise ends uniformly in [s, W]. Uniform ends alone leave the window's first and last
    days with a fraction of their messages (a long span rarely reaches an edge); in production
    the conversations alive at the edges fill them."""
    pinned = EDGE_PIN * lower / (2.0 * length)
    slack = np.minimum(edge_slack, length - lower) * within
    return np.where(
        v < pinned, lower + slack, np.where(v < 2 * pinned, length - slack, lower + within * (length - lower))
    )


def place_ends(
    rng: np.random.Generator, lower: np.ndarray, warp: TimeWarp, recency: RecencyShares | None, edge_slack: np.ndarray
) -> np.ndarray:
    """Each conversation's end on the activity clock (seconds), at or after `lower` (its span),
    spread with the clock (so ends follow the waves and the trend) and, with recency shares,
    split between the last 7 days, the 30 days before and the rest as they say."""
    length = warp.length_us / 1e6
    pick = rng.permutation(lower.size)
    v = stratified_levels(rng, pick)
    within = rng.random(lower.size)
    if recency is None:
        return stationary_ends(v, within, lower, length, edge_slack)
    real_bounds = [max(warp.length_us - days * DAY_S * 1e6, 0.0) for days in RECENT_DAYS]
    b7, b30 = (float(warp.to_activity(np.array([b]))[0]) / 1e6 for b in real_bounds)
    after_7, after_30 = recent_shares(lower, (b7, b30), recency)
    seg_lo = np.where(v < after_7, b7, np.where(v < after_30, b30, 0.0))
    seg_hi = np.where(v < after_7, length, np.where(v < after_30, b7, b30))
    seg_lo = np.maximum(seg_lo, lower)
    seg_hi = np.maximum(seg_hi, seg_lo)
    return seg_lo + within * (seg_hi - seg_lo)
