"""Members per conversation: each type's model, conditional on size where the shape says how.

Drawn once in the plan at stratified levels. A direct message follows its own model (notes to
self have one member); exactly two only where the config says nothing.
"""

from __future__ import annotations

import numpy as np

from shape_pipeline.contracts import CalibratedConfig, MembersBySize, QuantileSplineModel
from shape_pipeline.distributions import Model, quantile, sample_stratified, stratified_levels
from shape_pipeline.generation.stratified import fill_tail_to

DIRECT_MESSAGE = "DIRECT_MESSAGE"
MEMBER_GRID = 4096  # quantile levels on which a type's member model is spread over size buckets
IPF_ROUNDS = 50  # type x size x members fitting rounds
GRID_FLOOR = 0.01  # share given to each cell of a grid row before fitting (suppressed cells are not impossible)

# Members per conversation for a type the config lacks (documented defaults).
DEFAULT_MEMBERS: dict[str, QuantileSplineModel] = {
    DIRECT_MESSAGE: QuantileSplineModel(knots=[(0.5, 2.0)], min=2, max=2, source="default"),  # a pair
    "GROUP_CHAT": QuantileSplineModel(knots=[(0.5, 5.0), (0.9, 12.0), (0.99, 40.0)], min=3, max=250, source="default"),
    "CHANNEL": QuantileSplineModel(knots=[(0.5, 25.0), (0.9, 150.0), (0.99, 900.0)], min=3, max=5000, source="default"),
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
    models = [members_model(config, name) for name in types]
    if joint is not None:
        counts = members_given_size(models, joint, message_counts, type_index, rng)
    else:
        counts = np.empty(type_index.size, dtype=np.int64)
        for i, model in enumerate(models):
            where = np.flatnonzero(type_index == i)
            counts[where] = sample_stratified(model, rng, where.size)
    return add_up_to_means(models, type_index, np.clip(counts, 1, users), users)


def add_up_to_means(models: list[Model], type_index: np.ndarray, counts: np.ndarray, users: int) -> np.ndarray:
    """Each type's member counts moved towards conversations x the model's `mean` (the exported
    mean, calibration carries it) through the type's rooms above p99 only, up to the model's
    max and the users (stratified.fill_tail_to): p1-p99 stay where the draw put them, and the
    plan holds as many memberships as the data, so there are as many members as senders."""
    out = counts.copy()
    for kind, model in enumerate(models):
        mean = getattr(model, "mean", None)
        where = np.flatnonzero(type_index == kind)
        if mean is None or where.size == 0:
            continue
        cap = float(min(getattr(model, "max", users), users))
        out[where] = fill_tail_to(out[where], int(round(where.size * mean)), cap)
    return out


def bucket_of(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Index of the bucket [edges[i], edges[i+1]) of each value (the outer buckets are open)."""
    return np.clip(np.searchsorted(np.asarray(edges), values, side="right") - 1, 0, len(edges) - 2)


def grid_given_size(joint: MembersBySize) -> tuple[np.ndarray, np.ndarray]:
    """The grid's member-bucket shares per size row (a floor of GRID_FLOOR for each cell: a
    zero is usually a suppressed small cell, not an impossible one), and which rows it knows."""
    weights = np.maximum(np.asarray(joint.weights, dtype=np.float64), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    known = total[:, 0] > 0
    shares = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0) + GRID_FLOOR
    return shares / shares.sum(axis=1, keepdims=True), known


def bucket_table(per_row: np.ndarray, own: np.ndarray, joint: MembersBySize) -> np.ndarray:
    """Expected conversations per (type, size row, member bucket): iterative proportional
    fitting of three margins, each type's conversations per size row (`per_row`, exact), each
    type's own member buckets (`own`, shares) and, summed over types, the grid's member shares
    in each row it knows. The type margin comes last but one, so each type's member
    distribution holds; the grid holds as far as the types allow."""
    shares, known = grid_given_size(joint)
    size_total = per_row.sum(axis=0)
    grid_target = size_total[:, None] * shares
    type_target = per_row.sum(axis=1)[:, None] * own
    x = per_row[:, :, None] * own[:, None, :]
    for _ in range(IPF_ROUNDS):
        cell = x.sum(axis=0)
        x *= np.where(known[:, None] & (cell > 0), grid_target / np.maximum(cell, 1e-300), 1.0)[None]
        by_type = x.sum(axis=1)
        x *= np.where(by_type > 0, type_target / np.maximum(by_type, 1e-300), 1.0)[:, None, :]
        by_row = x.sum(axis=2)
        x *= np.where(by_row > 0, per_row / np.maximum(by_row, 1e-300), 0.0)[:, :, None]
    return x


def members_given_size(
    models: list[Model], joint: MembersBySize, sizes: np.ndarray, type_index: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Member counts of every conversation given its type and size.

    Each type's model is spread over the grid's member buckets; `bucket_table` then decides how
    many conversations of each type and size row fall in each bucket, so that every type keeps
    its own member distribution and all types together follow the grid's "members given size".
    Buckets are drawn at stratified levels inside each (type, size row); inside its bucket the
    count is drawn from the type's model restricted to the bucket.
    """
    grid_levels = (np.arange(MEMBER_GRID) + 0.5) / MEMBER_GRID
    columns = len(joint.column_edges) - 1
    rows = bucket_of(sizes, joint.row_edges)
    n_rows = len(joint.row_edges) - 1
    grid_bucket = [bucket_of(quantile(model, grid_levels), joint.column_edges) for model in models]
    own = np.array([np.bincount(b, minlength=columns) / MEMBER_GRID for b in grid_bucket])
    per_row = np.bincount(type_index * n_rows + rows, minlength=len(models) * n_rows).reshape(len(models), n_rows)
    table = bucket_table(per_row.astype(np.float64), own, joint)
    counts = np.empty(sizes.size, dtype=np.int64)
    for kind, model in enumerate(models):
        of_type = type_index == kind
        if not of_type.any():
            continue
        bucket = np.empty(sizes.size, dtype=np.int64)
        for row in np.unique(rows[of_type]).tolist():
            where = np.flatnonzero(of_type & (rows == row))
            p = table[kind, row]
            cdf = np.cumsum(p / p.sum()) if p.sum() > 0 else np.cumsum(own[kind])
            cdf[-1] = 1.0
            bucket[where] = np.minimum(
                np.searchsorted(cdf, stratified_levels(rng, where.size), side="right"), columns - 1
            )
        where = np.flatnonzero(of_type)
        low = np.searchsorted(grid_bucket[kind], bucket[where], side="left") / MEMBER_GRID
        high = np.searchsorted(grid_bucket[kind], bucket[where], side="right") / MEMBER_GRID
        counts[where] = quantile(model, low + (high - low) * rng.random(where.size)).astype(np.int64)
    return counts
