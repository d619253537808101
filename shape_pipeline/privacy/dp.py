"""Differential privacy of the export: OpenDP noise on counts, then post-processing.

Every published number of a DP shape is computed from counts over a fixed, data-independent
domain (histogram buckets fixed in code, category lists, the 7 x 24 grid, the window's days)
to which OpenDP adds discrete Laplace noise (`make_laplace` over integer vectors: exact
integer sampling, immune to the floating-point attack on textbook Laplace noise, Mironov
CCS 2012; never seeded). The noise scale is `sensitivity / epsilon`, where the sensitivity is
how much one user can change the counts' L1 norm once the SQL has bounded each user's
contribution. Everything after the noise (clamping, percentiles, means, margins) reads only
the noisy counts: post-processing, which costs no privacy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version

import numpy as np

from shape_pipeline.contracts import DifferentialPrivacy, DpFamily

MECHANISM = "discrete Laplace on counts over fixed buckets and categories (OpenDP make_laplace)"
LIBRARY = f"opendp {version('opendp')}"
FAILURE = 0.05  # chance that noise alone lifts an empty bucket or cell over its threshold
LONE_FAILURE = 1e-6  # the same for a bucket that would make a distribution on its own


def _laplace(scale: float):  # noqa: ANN202 - an OpenDP Measurement
    import opendp.prelude as dp

    dp.enable_features("contrib")
    domain = dp.vector_domain(dp.atom_domain(T="i64"))
    return dp.m.make_laplace(domain, dp.l1_distance(T="i64"), scale=scale)


def noisy_counts(counts: np.ndarray, family: DpFamily) -> np.ndarray:
    """`counts` (any shape) with OpenDP's discrete Laplace noise of the family's scale, after
    checking that OpenDP itself certifies the family's epsilon for its sensitivity."""
    arr = np.asarray(counts, dtype=np.int64)
    measurement = _laplace(family.scale)
    certified = measurement.map(family.sensitivity)
    if certified > family.epsilon * (1 + 1e-9):
        raise AssertionError(f"OpenDP certifies epsilon {certified}, more than the family's {family.epsilon}")
    if arr.size == 0:
        return arr
    return np.asarray(measurement([int(x) for x in arr.ravel()]), dtype=np.int64).reshape(arr.shape)


# ------------------------------------------------------------------------------ the budget


@dataclass(frozen=True)
class FamilySpec:
    """A statistic family: its share of epsilon (a weight), its sensitivity, its shape paths."""

    weight: float
    sensitivity: int
    statistics: tuple[str, ...]


@dataclass
class Budget:
    """Epsilon split over families by weight (sequential composition: the families add up to
    the extraction's epsilon), and the record of what each family used."""

    epsilon: float
    specs: Mapping[str, FamilySpec]
    max_messages_per_user: int
    max_conversations_per_user: int
    spent: dict[str, DpFamily] = field(default_factory=dict)

    def family(self, name: str) -> DpFamily:
        """The family's epsilon, sensitivity and Laplace scale (recorded as used)."""
        if name not in self.spent:
            spec = self.specs[name]
            total = sum(s.weight for s in self.specs.values())
            epsilon = self.epsilon * spec.weight / total
            self.spent[name] = DpFamily(
                epsilon=epsilon,
                sensitivity=spec.sensitivity,
                scale=spec.sensitivity / epsilon,
                statistics=list(spec.statistics),
            )
        return self.spent[name]

    def rebound(self, specs: Mapping[str, FamilySpec], max_conversations_per_user: int) -> None:
        """New sensitivities once a bound is chosen from earlier noisy output (post-processing:
        no privacy cost). Weights, and so each family's epsilon, must stay as they were, and a
        family already spent keeps its recorded noise."""
        if {n: s.weight for n, s in specs.items()} != {n: s.weight for n, s in self.specs.items()}:
            raise ValueError("rebound must keep every family's weight")
        for name in self.spent:
            if specs[name].sensitivity != self.specs[name].sensitivity:
                raise ValueError(f"family {name} was already noised with its old sensitivity")
        self.specs = specs
        self.max_conversations_per_user = max_conversations_per_user

    def noisy(self, name: str, counts: np.ndarray) -> np.ndarray:
        return noisy_counts(counts, self.family(name))

    def report(self) -> DifferentialPrivacy:
        """What the shape file records. Every family is charged, used or not (a family skipped
        because its data was empty still looked at the data)."""
        for name in self.specs:
            self.family(name)
        return DifferentialPrivacy(
            mechanism=MECHANISM,
            library=LIBRARY,
            epsilon=self.epsilon,
            max_messages_per_user=self.max_messages_per_user,
            max_conversations_per_user=self.max_conversations_per_user,
            families=dict(self.spent),
        )


# ------------------------------------------------------------------------------ post-processing


def edge_threshold(scale: float, cells: int, failure: float = FAILURE) -> float:
    """The count that noise alone exceeds in any of `cells` empty cells with probability at
    most `failure`: P(Laplace(b) > t) = exp(-t/b)/2 per cell, so t = b ln(cells / (2 failure))."""
    return scale * math.log(max(cells, 1) / (2 * failure))


TAIL_DRIFT = 1.0  # a thin tail is kept while it averages at least this many noise scales a bucket
TAIL_MARGIN = 4.0  # and only when it adds up to this many noise scales above that allowance


def _tail_end(noisy: np.ndarray, start: int, scale: float) -> int:
    """The last bucket of a thin tail beginning after `start` (or `start` when there is none).

    A tail of a few heavy users per bucket is below any one-bucket threshold, but it adds up.
    The tail ends where the accumulated noisy count over (start, j] stands furthest above an
    allowance of TAIL_DRIFT noise scales per bucket (a CUSUM change point): beyond a real tail
    the sum stops growing while the allowance keeps growing. Noise alone is a random walk
    with that negative drift: it rises TAIL_MARGIN scales above the allowance with probability
    about exp(-TAIL_DRIFT x TAIL_MARGIN) (2 %), so a tail is only kept when it does."""
    sums = np.cumsum(noisy[start + 1 :].astype(np.float64))
    if sums.size == 0:
        return start
    excess = sums - TAIL_DRIFT * scale * np.arange(1, len(sums) + 1)
    best = int(np.argmax(excess))
    return start + 1 + best if excess[best] > TAIL_MARGIN * scale else start


MAX_HOLE = 3  # buckets: a distribution's body has no longer run of empty buckets inside


def _body(counts: np.ndarray, scale: float) -> tuple[int, int] | None:
    """First and last bucket of the distribution's body: buckets whose count clears
    `edge_threshold` are grouped into runs with holes of at most MAX_HOLE buckets, and the run
    holding the most entities is the body. A bucket that noise alone lifted over the threshold
    (a 1-in-20 event per histogram) stands alone: a run of one bucket counts only when it clears
    a threshold noise reaches once in a million histograms, so a phantom cannot become the body
    of a population too thin to show."""
    strong = np.nonzero(counts >= edge_threshold(scale, counts.size))[0]
    if strong.size == 0:
        return None
    breaks = np.nonzero(np.diff(strong) > MAX_HOLE + 1)[0]
    lone = edge_threshold(scale, counts.size, LONE_FAILURE)
    runs = [run for run in np.split(strong, breaks + 1) if len(run) > 1 or counts[run[0]] >= lone]
    if not runs:
        return None
    best = max(runs, key=lambda run: int(counts[run[0] : run[-1] + 1].sum()))
    return int(best[0]), int(best[-1])


def clean_histogram(noisy: np.ndarray, scale: float) -> np.ndarray:
    """Noisy bucket counts made publishable: negatives to 0, and every bucket outside the
    distribution's extent to 0, so that noise in the many empty buckets of a fixed grid does
    not invent values. The extent is the body (`_body`), extended on either side by a thin
    tail whose accumulated count is significant (`_tail_end`). All zeros when no bucket clears
    the threshold (too few entities to show)."""
    raw = np.asarray(noisy, dtype=np.int64)
    counts = np.maximum(raw, 0)
    out = np.zeros_like(counts)
    body = _body(counts, scale)
    if body is not None:
        high = _tail_end(raw, body[1], scale)
        low = len(raw) - 1 - _tail_end(raw[::-1], len(raw) - 1 - body[0], scale)
        out[low : high + 1] = counts[low : high + 1]
    return out


def coarsen(edges: np.ndarray, counts: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Every `factor` neighbouring buckets merged (groups fixed by position, not by the data)."""
    groups = -(-len(counts) // factor)
    merged = np.bincount(np.arange(len(counts)) // factor, weights=counts, minlength=groups).astype(np.int64)
    return np.append(np.asarray(edges, dtype=np.float64)[::factor][:groups], edges[-1]), merged


MAX_MERGE = 8  # at most 8 neighbouring buckets merged: wider buckets would say nothing useful


def publishable_histogram(edges: np.ndarray, noisy: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """`clean_histogram` at the finest resolution where something is left: when no bucket
    clears its threshold (a small population spread thin), neighbours are merged two by two,
    then four by four, up to MAX_MERGE (the sum of f noisy counts has f times the variance: the
    scale grows by sqrt f). All zeros when nothing is left even then. The resolution is read
    from noisy counts only, so choosing it is post-processing."""
    factor = 1
    while True:
        merged_edges, merged = coarsen(edges, noisy, factor)
        counts = clean_histogram(merged, scale * math.sqrt(factor))
        if counts.any() or factor >= MAX_MERGE:
            return merged_edges, counts
        factor *= 2


def clean_cells(noisy: np.ndarray, scale: float) -> np.ndarray:
    """Noisy counts of a fixed domain (categories, a sparse grid): negatives to 0 and counts
    noise alone could have made (below `edge_threshold`) to 0."""
    counts = np.maximum(np.asarray(noisy, dtype=np.int64), 0)
    counts[counts < edge_threshold(scale, counts.size)] = 0
    return counts


def histogram_quantiles(
    edges: Sequence[float] | np.ndarray, counts: np.ndarray, levels: Sequence[float], *, integer: bool
) -> list[float]:
    """Quantiles of a bucketed distribution, linear inside each bucket [a, b) (integer
    metrics: the whole value below, so a 1-wide bucket gives its own value). Non-decreasing by
    construction: the cumulative counts are."""
    edges_arr = np.asarray(edges, dtype=np.float64)
    counts_arr = np.asarray(counts, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(counts_arr)])
    total = cum[-1]
    out: list[float] = []
    for level in levels:
        target = min(max(level, 0.0), 1.0) * total
        i = int(np.clip(np.searchsorted(cum, target, side="left") - 1, 0, len(counts_arr) - 1))
        while counts_arr[i] == 0 and i < len(counts_arr) - 1:
            i += 1
        inside = (target - cum[i]) / counts_arr[i] if counts_arr[i] else 0.0
        value = edges_arr[i] + min(max(inside, 0.0), 1.0) * (edges_arr[i + 1] - edges_arr[i])
        if integer:
            value = min(math.floor(value), edges_arr[i + 1] - 1)
        out.append(float(max(value, out[-1])) if out else float(value))
    return out


def bucket_midpoints(edges: Sequence[float] | np.ndarray, *, integer: bool) -> np.ndarray:
    """Each bucket's representative value: the middle of the integers in [a, b), or of [a, b)."""
    e = np.asarray(edges, dtype=np.float64)
    return (e[:-1] + e[1:] - 1.0) / 2.0 if integer else (e[:-1] + e[1:]) / 2.0


def histogram_moments(edges: Sequence[float] | np.ndarray, counts: np.ndarray, *, integer: bool) -> tuple[float, float]:
    """Mean and standard deviation of a bucketed distribution, values spread evenly in each
    bucket (the within-bucket variance of a uniform spread is added)."""
    e = np.asarray(edges, dtype=np.float64)
    w = np.asarray(counts, dtype=np.float64)
    mid = bucket_midpoints(e, integer=integer)
    width = e[1:] - e[:-1]
    within = (width**2 - 1.0) / 12.0 if integer else width**2 / 12.0
    mean = float(np.average(mid, weights=w))
    var = float(np.average((mid - mean) ** 2 + np.maximum(within, 0.0), weights=w))
    return mean, math.sqrt(var)
