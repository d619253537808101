"""The files that cross steps, as pydantic models: ShapeMetrics, CalibratedConfig, FidelityReport.

Every model forbids unknown keys (a reader names them), keeps the seed's JSON keys, and carries
`schema_version`. A file in the seed's published example form (no `schema_version`, only the
seed's keys) still reads as version 1: everything the seed did not have is optional.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1
PRIVACY_LEVEL: Final = "ANONYMIZED_SHAPE_ONLY"

# Percentile keys in ascending order; a stats block may carry any subset of them.
PERCENTILE_KEYS: tuple[str, ...] = ("p1", "p5", "p10", "p25", "p50", "p75", "p90", "p95", "p99")


def percentile_level(key: str) -> float:
    """'p95' -> 0.95."""
    return int(key[1:]) / 100.0


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_version(value: int) -> int:
    if value != SCHEMA_VERSION:
        raise ValueError(f"schema_version {value} is not supported (this tool reads version {SCHEMA_VERSION})")
    return value


# --------------------------------------------------------------------------------------
# Shape metrics (exported from production: aggregates only)
# --------------------------------------------------------------------------------------


class Histogram(Strict):
    """Buckets [edges[i], edges[i+1]) with counts[i] rows each; len(edges) == len(counts) + 1.

    Integer metrics use integer edges; log-spaced edges for heavy tails. After small-cell
    suppression every count is 0 or at least the export's `min_cell_count`.
    """

    edges: list[float]
    counts: list[int]

    @model_validator(mode="after")
    def _shape(self) -> Histogram:
        if len(self.edges) != len(self.counts) + 1:
            raise ValueError("edges must have exactly one more entry than counts")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must be strictly increasing")
        if any(c < 0 for c in self.counts):
            raise ValueError("counts must not be negative")
        return self

    @property
    def total(self) -> int:
        return int(sum(self.counts))


class Percentiles(Strict):
    """Discrete percentiles (`percentile_disc`: the smallest value with F(x) >= p) and a rounded max."""

    p1: float | None = None
    p5: float | None = None
    p10: float | None = None
    p25: float | None = None
    p50: float | None = None
    p75: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None  # rounded UP to two significant digits (privacy: a raw max is one person's value)

    @model_validator(mode="after")
    def _monotone(self) -> Percentiles:
        seen: list[tuple[str, float]] = [
            (k, v) for k in (*PERCENTILE_KEYS, "max") if (v := getattr(self, k)) is not None
        ]
        for (ka, va), (kb, vb) in zip(seen, seen[1:], strict=False):
            if vb < va:
                raise ValueError(f"percentiles must not decrease ({kb}={vb} < {ka}={va})")
        return self

    def knots(self) -> list[tuple[float, float]]:
        """[(0.5, p50), (0.75, p75), ...] for the percentiles present (max excluded)."""
        return [(percentile_level(k), float(v)) for k in PERCENTILE_KEYS if (v := getattr(self, k)) is not None]


class DistributionStats(Percentiles):
    """Summary of one numeric metric: count, moments, percentiles and (optionally) a histogram."""

    count: int | None = None
    mean: float | None = None
    median: float | None = None
    stddev: float | None = None
    histogram: Histogram | None = None

    @model_validator(mode="after")
    def _median_is_p50(self) -> DistributionStats:
        if self.median is not None and self.p50 is not None and self.median != self.p50:
            raise ValueError(f"median ({self.median}) and p50 ({self.p50}) disagree")
        return self

    def knots(self) -> list[tuple[float, float]]:
        out = super().knots()
        if self.p50 is None and self.median is not None:
            out.append((0.5, float(self.median)))
            out.sort()
        return out


class Totals(Strict):
    """Users, conversations and messages of the window. A suppression-mode export writes a
    total of 1 to k - 1 as "< k" (k: its min_cell_count), since an exact small total singles
    out the few people in it. Read a total with `count` (None for "< k") or `estimate`."""

    users: int | str
    conversations: int | str
    messages: int | str

    @staticmethod
    def threshold(value: int | str) -> int | None:
        """k of a "< k" total; None for a count (or any other text)."""
        if isinstance(value, str) and value.startswith("< ") and value[2:].isascii() and value[2:].isdigit():
            return int(value[2:])
        return None

    @field_validator("users", "conversations", "messages")
    @classmethod
    def _count_or_below(cls, value: int | str) -> int | str:
        if isinstance(value, str) and cls.threshold(value) is None:
            raise ValueError('must be a count or "< k" (a total below the threshold k)')
        if isinstance(value, int) and value < 0:
            raise ValueError("must not be negative")
        return value

    def count(self, name: str) -> int | None:
        """The exact total `name` (users, conversations, messages); None when only "< k" is known."""
        value = getattr(self, name)
        return value if isinstance(value, int) else None

    def estimate(self, name: str) -> int:
        """The exact total, or for "< k" the middle of 1 to k - 1: a stand-in to size synthetic data."""
        value = getattr(self, name)
        return value if isinstance(value, int) else max(1, (self.threshold(value) or 2) // 2)


class Histogram2D(Strict):
    """Counts over a grid of fixed, data-independent buckets: rows [row_edges[i], row_edges[i+1]),
    columns [column_edges[j], column_edges[j+1]). Small cells are 0 after suppression."""

    row_edges: list[float]
    column_edges: list[float]
    counts: list[list[int]]

    @model_validator(mode="after")
    def _shape(self) -> Histogram2D:
        for name, edges in (("row_edges", self.row_edges), ("column_edges", self.column_edges)):
            if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
                raise ValueError(f"{name} must hold at least 2 strictly increasing edges")
        if len(self.counts) != len(self.row_edges) - 1 or any(
            len(row) != len(self.column_edges) - 1 for row in self.counts
        ):
            raise ValueError("counts must be (len(row_edges) - 1) rows of (len(column_edges) - 1) cells")
        if any(c < 0 for row in self.counts for c in row):
            raise ValueError("counts must not be negative")
        return self


class Recency(Strict):
    """Conversations whose last message in the window lies in its last 7 / 30 days."""

    active_last_7_days: int = Field(ge=0)
    active_last_30_days: int = Field(ge=0)


class UserMetrics(Strict):
    username_length: DistributionStats | None = None
    conversations_per_user: DistributionStats | None = None  # memberships of active conversations, per member
    profile_completeness: dict[str, float] = Field(default_factory=dict)  # field -> share set (0..1)

    @field_validator("profile_completeness")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        for field, share in value.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"share of '{field}' must be between 0 and 1")
        return value


class ConversationMetrics(Strict):
    messages_per_conversation_percentiles: Percentiles | None = None
    messages_per_conversation_histogram: Histogram | None = None
    messages_per_conversation_mean: float | None = None
    type_distribution: dict[str, int] = Field(default_factory=dict)  # category -> conversations
    members_per_conversation: dict[str, DistributionStats] = Field(default_factory=dict)  # by type
    top_sender_share: DistributionStats | None = None  # share (0-1] of a conversation's messages by its top sender
    lifetime_seconds: DistributionStats | None = None  # last minus first message in the window, per conversation
    recency: Recency | None = None
    size_by_members: Histogram2D | None = None  # rows: messages per conversation, columns: members


class MessageMetrics(Strict):
    content_length_stats: DistributionStats | None = None
    type_distribution: dict[str, int] = Field(default_factory=dict)  # category -> messages
    hourly_counts: list[int] | None = None  # 24 entries, UTC hour 0..23
    day_of_week_counts: list[int] | None = None  # 7 entries, Monday=0 .. Sunday=6 (UTC)
    hour_by_day_of_week: list[list[int]] | None = None  # 7 rows (Monday first) x 24 hours
    inter_message_gap_seconds: DistributionStats | None = None  # gaps between consecutive messages of a conversation
    messages_per_sender: DistributionStats | None = None  # messages written per active sender
    daily_counts: list[int] | None = None  # messages per UTC day of the window, oldest first

    @field_validator("hourly_counts")
    @classmethod
    def _hours(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(value) != 24:
            raise ValueError("must have 24 entries (UTC hours 0-23)")
        return value

    @field_validator("day_of_week_counts")
    @classmethod
    def _days(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(value) != 7:
            raise ValueError("must have 7 entries (Monday first)")
        return value

    @field_validator("hour_by_day_of_week")
    @classmethod
    def _grid(cls, value: list[list[int]] | None) -> list[list[int]] | None:
        if value is not None and (len(value) != 7 or any(len(row) != 24 for row in value)):
            raise ValueError("must be 7 rows (Monday first) of 24 hours")
        return value


PrivacyMode = Literal["dp", "suppression"]
MAX_ROUNDED_UP = "up to 2 significant digits"  # suppression mode's max
MAX_AS_QUANTILE = "p99.9 of the noisy histogram"  # DP mode's max


class DpFamily(Strict):
    """One statistic family's share of the budget: discrete Laplace noise of `scale` added to
    counts whose L1 norm changes by at most `sensitivity` when one user is added or removed
    (so the family costs epsilon = sensitivity / scale)."""

    epsilon: float = Field(gt=0.0)
    sensitivity: int = Field(ge=1)
    scale: float = Field(gt=0.0)
    statistics: list[str] = Field(default_factory=list)  # dotted shape paths, e.g. "messages.content_length_stats"


class DifferentialPrivacy(Strict):
    """How a DP export was made: enough for the validator to widen its noise bands and for a
    reader to check the guarantee (epsilon per user, contributions bounded as stated)."""

    mechanism: str  # e.g. "discrete Laplace on counts over fixed buckets (OpenDP make_laplace)"
    library: str  # e.g. "opendp 0.16.0"
    privacy_unit: Literal["user"] = "user"
    epsilon: float = Field(gt=0.0)  # the sum over families (sequential composition)
    delta: float = Field(default=0.0, ge=0.0)
    max_messages_per_user: int = Field(ge=1)  # L: message-level statistics
    max_conversations_per_user: int = Field(ge=1)  # C: conversation-level statistics
    families: dict[str, DpFamily] = Field(default_factory=dict)

    def family_of(self, path: str) -> DpFamily | None:
        """The family whose statistics include `path` (or a parent of it)."""
        for family in self.families.values():
            if any(path == s or path.startswith(s + ".") for s in family.statistics):
                return family
        return None


class PrivacyReport(Strict):
    mode: PrivacyMode = "suppression"
    dp: DifferentialPrivacy | None = None  # DP mode: the guarantee and each family's noise
    min_cell_count: int | None = None  # suppression mode: the smallest count shown as its own cell
    suppressed_cells: int = 0  # cells dropped (counts below the threshold with no neighbour to absorb them)
    merged_cells: int = 0  # histogram buckets merged into a neighbour, categories merged into OTHER
    max_rounding: str = MAX_ROUNDED_UP  # what `max` is: suppression rounds it up, DP publishes a quantile
    notes: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------------------
# Phase 2: physical layout and query plans (aggregates and schema metadata only)
# --------------------------------------------------------------------------------------

IdKind = Literal["integer", "uuid", "text"]
IdAlphabet = Literal["digits", "hex", "base32", "alphanumeric", "other"]


class IdFormat(Strict):
    """What an entity's ids look like, as aggregates: never an id.

    `time_ordered`: ids sort in creation order (a sequence, UUIDv7, ULID); random ids
    (UUIDv4, Mattermost's 26-character ids) scatter new rows across the id index.
    """

    kind: IdKind
    length: int | None = Field(default=None, ge=1)  # typical length as text (text ids only)
    alphabet: IdAlphabet | None = None  # characters the ids use (text ids only)
    time_ordered: bool | None = None
    uuid_version: int | None = None  # 4 or 7 (uuid ids only)


class ColumnLayout(Strict):
    """`pg_stats` numbers of one mapped column (never most_common_vals or histogram bounds)."""

    correlation: float | None = Field(default=None, ge=-1.0, le=1.0)  # physical vs value order, 2 decimals
    avg_width: int | None = Field(default=None, ge=0)  # bytes, of the non-null values
    null_frac: float | None = Field(default=None, ge=0.0, le=1.0)  # share of NULLs, 2 decimals


class TableLayout(Strict):
    """How one mapped table lies on disk. `columns` is keyed by the mapping's logical field
    names (id, conversation_id, sender_id, created_at, content, ...), not physical names."""

    rows: int | None = Field(default=None, ge=0)  # whole table (reltuples), rounded up to two significant digits
    rows_per_page: float | None = Field(default=None, ge=0.0)  # reltuples / relpages, 1 decimal
    columns: dict[str, ColumnLayout] = Field(default_factory=dict)
    ids: IdFormat | None = None
    # The app's columns the mapping does not name (physical names: schema metadata), width and
    # NULL share only, so the generator can make rows as wide as production's.
    unmapped_columns: dict[str, ColumnLayout] = Field(default_factory=dict)


class PhysicalLayout(Strict):
    """Per entity (users, conversations, members, messages): layout statistics after ANALYZE."""

    tables: dict[str, TableLayout] = Field(default_factory=dict)


# The fields that say what PostgreSQL does at a plan node; rows and blocks are sizes, not shape.
PLAN_SHAPE_FIELDS: tuple[str, ...] = (
    "node_type",
    "join_type",
    "strategy",
    "partial_mode",
    "scan_direction",
    "parent_relationship",
    "relation",
    "index",
)


class PlanNode(Strict):
    """One node of an `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` plan reduced to its shape:
    node and join types, strategies, relation and index names (schema metadata) and rounded
    counts. No filter, condition, output, alias or constant ever appears here."""

    node_type: str
    join_type: str | None = None
    strategy: str | None = None
    partial_mode: str | None = None
    scan_direction: str | None = None
    parent_relationship: str | None = None
    relation: str | None = None
    index: str | None = None
    rows: int = Field(ge=0)  # actual rows x loops, rounded up to two significant digits
    shared_blocks: int = Field(ge=0)  # shared hit + read blocks of this node and below, rounded up likewise
    children: list[PlanNode] = Field(default_factory=list)

    def shape_key(self) -> tuple:
        """Equal for two plans of the same shape: every node's PLAN_SHAPE_FIELDS, children in order."""
        return (tuple(getattr(self, f) for f in PLAN_SHAPE_FIELDS), tuple(c.shape_key() for c in self.children))


class QueryPlan(Strict):
    """One (query, rank) of a workload: the plan shape of its last run and its timings."""

    plan: PlanNode
    shared_blocks: int = Field(ge=0)  # of the whole statement, rounded up to two significant digits
    median_ms: float = Field(ge=0.0)  # median execution time over `runs`, two significant digits
    runs: int = Field(ge=1)


class WorkloadPlans(Strict):
    """The plans of a workload file: query name -> rank label (p99, p50, ...) -> plan."""

    workload: str  # the workload's name
    workload_sha256: str  # fingerprint of the workload as rendered (the validator refuses another one)
    queries: dict[str, dict[str, QueryPlan]] = Field(default_factory=dict)


class ShapeMetrics(Strict):
    """The exported shape file: the only thing that leaves the production boundary."""

    schema_version: int = SCHEMA_VERSION
    extracted_at: datetime
    sample_window_days: int = Field(gt=0)
    window_start: datetime | None = None
    window_end: datetime | None = None
    privacy_level: Literal["ANONYMIZED_SHAPE_ONLY"] = PRIVACY_LEVEL
    tool_version: str | None = None
    totals: Totals | None = None
    users: UserMetrics | None = None
    conversations: ConversationMetrics = Field(default_factory=ConversationMetrics)
    messages: MessageMetrics = Field(default_factory=MessageMetrics)
    privacy: PrivacyReport | None = None
    physical_layout: PhysicalLayout | None = None  # Phase 2: how production's rows lie on disk
    query_plans: WorkloadPlans | None = None  # Phase 2: the workload's plan shapes in production

    _version = field_validator("schema_version")(_check_version)


# --------------------------------------------------------------------------------------
# Calibrated generator configuration
# --------------------------------------------------------------------------------------

Knot = tuple[float, float]  # (cumulative probability p in (0, 1), value q): Q(p) = q


class FitError(Strict):
    """One exported percentile (or moment) against the fitted model's value."""

    metric: str  # e.g. "p99" or "mean"
    target: float
    fitted: float
    relative_error: float
    within_goal: bool = True


class _Fitted(Strict):
    """Common to every fitted model: where its numbers came from and how well it fits."""

    source: str | None = None  # e.g. "percentiles p50-p99 + histogram", "default (shape lacks it)"
    fit_errors: list[FitError] = Field(default_factory=list)


def _check_knots(value: list[Knot] | None) -> list[Knot] | None:
    if value is None:
        return value
    for p, _ in value:
        if not 0.0 < p < 1.0:
            raise ValueError(f"knot probability {p} must be inside (0, 1)")
    for (pa, qa), (pb, qb) in zip(value, value[1:], strict=False):
        if pb <= pa:
            raise ValueError("knot probabilities must be strictly increasing")
        if qb < qa:
            raise ValueError(f"knot values must not decrease ({qb} after {qa})")
    return value


class QuantileSplineModel(_Fitted):
    """A distribution known by its quantile function through knots.

    Sampling: monotone PCHIP through (probit(p), log1p(q)), extended linearly beyond the outer
    knots; `integer` models take the ceiling, so each knot value is exactly that percentile.
    With `tail_alpha`, values above the last knot follow a Pareto tail of that exponent.
    """

    distribution: Literal["quantile_spline"] = "quantile_spline"
    knots: list[Knot]
    min: float
    max: float
    integer: bool = True
    tail_alpha: float | None = Field(default=None, gt=1.0)
    mean: float | None = None

    _k = field_validator("knots")(_check_knots)


class NormalModel(_Fitted):
    """Normal, rounded to integers and clipped to [min, max] (username length)."""

    distribution: Literal["normal"] = "normal"
    mean: float
    stddev: float = Field(ge=0.0)
    min: int
    max: int
    knots: list[Knot] | None = None  # optional body correction from the histogram/percentiles

    _k = field_validator("knots")(_check_knots)


class LogNormalModel(_Fitted):
    """Log-normal content length: mean, median and p95 as in the seed; mu/sigma of ln(length).

    `knots`, when present, correct the body so that every exported percentile is matched;
    delete them to sample from the pure log-normal (mu, sigma).
    """

    distribution: Literal["log_normal"] = "log_normal"
    mean: float
    median: float
    p95: float
    mu: float
    sigma: float = Field(gt=0.0)
    min: int = 0
    max: int
    knots: list[Knot] | None = None

    _k = field_validator("knots")(_check_knots)


class PowerLawTailModel(_Fitted):
    """Messages per conversation: a body through the percentiles and a power-law tail.

    Below `tail_start` (a knot (p_t, q_t)) the quantile function is the spline through
    `body_knots`; above it Q(u) = q_t * ((1 - p_t) / (1 - u)) ** (1 / (alpha - 1)), capped at
    `max`. Lower alpha: heavier tail, more huge rooms. The seed's keys (`alpha`, `min`, `max`,
    `p50`, `p90`, `p99`) keep their meaning.
    """

    distribution: Literal["power_law"] = "power_law"
    alpha: float = Field(gt=1.0)
    min: int = Field(ge=0)
    max: int
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    body_knots: list[Knot] = Field(default_factory=list)
    tail_start: Knot | None = None
    mean: float | None = None

    _k = field_validator("body_knots")(_check_knots)


class CalibrationMetadata(Strict):
    source_shape_file: str  # the shape's `extracted_at` (seed key), or the file name
    calibrated_at: datetime
    production_sample_window_days: int
    window_start: datetime
    window_end: datetime
    source_shape_path: str | None = None
    source_shape_sha256: str | None = None
    tool_version: str | None = None
    warnings: list[str] = Field(default_factory=list)  # each fallback to a default, each fit off its goal


class UserGeneration(Strict):
    username_length: NormalModel
    profile_field_probabilities: dict[str, float] = Field(default_factory=dict)
    conversations_per_user: QuantileSplineModel | None = None  # memberships per member (None: emergent)
    sender_share: float | None = Field(default=None, gt=0.0, le=1.0)  # users who write at least one message


class MembersBySize(Strict):
    """The joint of conversation size and member count: the production's 2-D histogram as
    weights, read as "given a size bucket, how are member counts spread"."""

    row_edges: list[float]  # messages per conversation
    column_edges: list[float]  # members
    weights: list[list[float]]


class RecencyShares(Strict):
    """Shares of conversations whose last message is in the window's last 7 / 30 days."""

    active_last_7_days: float = Field(ge=0.0, le=1.0)
    active_last_30_days: float = Field(ge=0.0, le=1.0)


class ConversationGeneration(Strict):
    type_distribution: dict[str, float]
    messages_per_conversation: PowerLawTailModel
    members_per_conversation: dict[str, QuantileSplineModel] = Field(default_factory=dict)  # by type
    members_by_size: MembersBySize | None = None
    top_sender_share: QuantileSplineModel | None = None  # non-integer, in (0, 1]
    lifetime_seconds: QuantileSplineModel | None = None
    recency: RecencyShares | None = None


class TemporalWeights(Strict):
    hourly: list[float]  # 24, sum 1
    day_of_week: list[float]  # 7, Monday first, sum 1
    hour_by_day_of_week: list[list[float]] | None = None  # 7 x 24, sum 1
    daily: list[float] | None = None  # one weight per day of the window, oldest first, sum 1 (the trend)


class MessageGeneration(Strict):
    content_length: LogNormalModel
    type_distribution: dict[str, float]
    temporal: TemporalWeights
    inter_message_gap_seconds: QuantileSplineModel
    messages_per_sender: QuantileSplineModel | PowerLawTailModel = Field(discriminator="distribution")


def _check_probabilities(value: dict[str, float]) -> dict[str, float]:
    if any(p < 0 for p in value.values()):
        raise ValueError("probabilities must not be negative")
    total = sum(value.values())
    if value and abs(total - 1.0) > 1e-6:
        raise ValueError(f"probabilities must sum to 1 (they sum to {total:.6f})")
    return value


class CalibratedConfig(Strict):
    """Generator parameters fitted to one shape file."""

    schema_version: int = SCHEMA_VERSION
    calibration_metadata: CalibrationMetadata
    totals: Totals
    user_generation: UserGeneration
    conversation_generation: ConversationGeneration
    message_generation: MessageGeneration
    id_formats: dict[str, IdFormat] = Field(default_factory=dict)  # entity -> production's id format (Phase 2)
    # entity -> unmapped physical column -> production's width and NULL share (Phase 2)
    unmapped_columns: dict[str, dict[str, ColumnLayout]] = Field(default_factory=dict)
    # Sequential user ids numbered in the order users first join a conversation: production's
    # memberships, written as people join, then correlate with user id (people join soon after
    # signing up). Set from production's members.user_id correlation (Phase 2).
    users_in_join_order: bool = False

    _version = field_validator("schema_version")(_check_version)

    @model_validator(mode="after")
    def _distributions_sum_to_one(self) -> CalibratedConfig:
        _check_probabilities(self.conversation_generation.type_distribution)
        _check_probabilities(self.message_generation.type_distribution)
        return self


# --------------------------------------------------------------------------------------
# Fidelity report
# --------------------------------------------------------------------------------------

Verdict = Literal["PASS", "WARNING", "FAIL"]
TestVerdict = Literal["PASS", "WARNING", "FAIL", "SKIPPED"]


class Recommendation(Strict):
    """A concrete, computed edit: which config key, from what, to what, and why."""

    text: str
    config_key: str | None = None
    current_value: float | str | None = None
    suggested_value: float | str | None = None


class TestResult(Strict):
    """One fidelity test. Seed keys kept; effect size decides the verdict, p-values are reported."""

    title: str
    verdict: TestVerdict
    statistic: str | None = None  # name of the deciding effect size, e.g. "total_variation_distance"
    effect_size: float | None = None
    tolerance: float | None = None
    reason: str | None = None  # why skipped / why warned / why failed
    # seed keys
    chi_square_statistic: float | None = None
    p_value: float | None = None
    ks_statistic: float | None = None
    max_percentile_error: float | None = None
    mean_error: float | None = None
    median_error: float | None = None
    # detail for humans and charts
    percentile_errors: dict[str, float] = Field(default_factory=dict)  # plain |synthetic/production - 1|
    noise_band: float | None = None  # relative error sampling noise alone can give at these sizes
    production: dict[str, Any] = Field(default_factory=dict)
    synthetic: dict[str, Any] = Field(default_factory=dict)
    recommendations: list[Recommendation] = Field(default_factory=list)


class FidelitySummary(Strict):
    passed_tests: int
    failed_tests: int
    warning_tests: int = 0
    skipped_tests: int = 0
    recommendations: list[str]


class FidelityReport(Strict):
    schema_version: int = SCHEMA_VERSION
    validation_timestamp: datetime
    tolerance_threshold: float
    overall_verdict: Verdict
    shape_extracted_at: datetime | None = None
    synthetic_source: str | None = None  # redacted URL or Parquet folder
    tests: dict[str, TestResult]
    summary: FidelitySummary

    _version = field_validator("schema_version")(_check_version)
