"""Members per conversation: each type's model, conditional on size where the shape says how.

Drawn once in the plan at stratified levels. A direct message follows its own model (notes to
self have one member); exactly two only where the config says nothing.
"""

from __future__ import annotations

import numpy as np

from shape_pipeline.contracts import CalibratedConfig, MembersBySize, QuantileSplineModel
from shape_pipeline.distributions import Model, quantile, sample_stratified, stratified_levels

DIRECT_MESSAGE = "DIRECT_MESSAGE"
MEMBER_GRID = 4096  # quantile levels on which a type's member model is spread over size buckets

# Members per conversation for a type the config lacks (documented defaults).
DEFAULT_MEMBERS: dict[str, QuantileSplineModel] = {
    DIRECT_MESSAGE: QuantileSplineModel(knots=[(0.5, 2.0)], min=2, max=2, source="default"),  # a pair
    "GROUP_CHAT": QuantileSplineModel(
        knots=[(0.5, 5.0), (0.9, 12.0), (0.99, 40.0)], min=3, max=250, source="default"
    ),
    "CHANNEL": QuantileSplineModel(
        knots=[(0.5, 25.0), (0.9, 150.0), (0.99, 900.0)], min=3, max=5000, source="default"
    ),
}
FALLBACK_MEMBERS = DEFAULT_MEMBERS["GROUP_CHAT"]

def members_model(config: CalibratedConfig, name: str) -> Model:
    """Members per conversation of a type: its model, else a documented default (2 for direct messages)."""
    models = config.conversation_generation.members_per_conversation
    return models.get(name) or DEFAULT_MEMBERS.get(name, FALLBACK_MEMBERS)


def draw_member_counts(
    config: CalibratedConfig,
    types: list[str],
    type_index: np.ndarray,
    message_counts: np.ndarray,
    users: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Members per conversation by type, at stratified levels; conditional on size where the
    config has `members_by_size` (see `members_given_size`). Clipped to [1, users]."""
    joint = config.conversation_generation.members_by_size
    counts = np.empty(type_index.size, dtype=np.int64)
    for i, name in enumerate(types):
        where = np.flatnonzero(type_index == i)
        if where.size == 0:
            continue
        model = members_model(config, name)
        if joint is None:
            counts[where] = sample_stratified(model, rng, where.size)
        else:
            counts[where] = members_given_size(model, joint, message_counts[where], rng)
    return np.clip(counts, 1, users)


def bucket_of(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Index of the bucket [edges[i], edges[i+1]) of each value (the outer buckets are open)."""
    return np.clip(np.searchsorted(np.asarray(edges), values, side="right") - 1, 0, len(edges) - 2)


def members_given_size(model: Model, joint: MembersBySize, sizes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Member counts of one type's conversations given their sizes.

    The member bucket of a conversation in size row r is drawn with weights
    joint[r, b] * P_type(b) / P_all(b): the production's "members given size" for all types,
    reweighted by how this type's own model spreads over the buckets (conditional independence
    of type and size given members). The type's marginal is kept exactly when sizes tell nothing
    about members, and approximately otherwise (the trade-off: a type's members cannot follow
    both its own model and an all-types grid exactly). Inside its bucket the count is drawn from
    the type's model restricted to the bucket.
    """
    grid_levels = (np.arange(MEMBER_GRID) + 0.5) / MEMBER_GRID
    grid = quantile(model, grid_levels)
    columns = len(joint.column_edges) - 1
    grid_bucket = bucket_of(grid, joint.column_edges)
    own = np.bincount(grid_bucket, minlength=columns) / MEMBER_GRID
    weights = np.maximum(np.asarray(joint.weights, dtype=np.float64), 0.0)
    overall = weights.sum(axis=0)
    overall = overall / overall.sum() if overall.sum() > 0 else np.full(columns, 1.0 / columns)
    rows = bucket_of(sizes, joint.row_edges)
    bucket = np.empty(sizes.size, dtype=np.int64)
    for row in np.unique(rows).tolist():
        where = np.flatnonzero(rows == row)
        p = weights[row] * np.divide(own, overall, out=np.zeros(columns), where=overall > 0)
        p = p / p.sum() if p.sum() > 0 else own
        cdf = np.cumsum(p)
        cdf[-1] = 1.0
        bucket[where] = np.minimum(np.searchsorted(cdf, stratified_levels(rng, where.size), side="right"), columns - 1)
    low = np.searchsorted(grid_bucket, bucket, side="left") / MEMBER_GRID
    high = np.searchsorted(grid_bucket, bucket, side="right") / MEMBER_GRID
    return quantile(model, low + (high - low) * rng.random(sizes.size)).astype(np.int64)


