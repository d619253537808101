"""The calibrator: one shape file in, one generator configuration out.

`calibrate` is pure (a ShapeMetrics in, a CalibratedConfig out); `calibrate_file` adds the
file handling and the seed-style console summary used by the CLI and the Dagster asset. Every
metric the shape lacks falls back to a documented default (`defaults.py`) and is listed in
`calibration_metadata.warnings`, as is every fitted percentile off its 5% goal.

The skews that decide index behaviour (conversations per user, sender share, top sender share,
lifetime, recency, members by size, the daily trend) have no default: a shape without the
block (or with every cell suppressed) leaves the config field unset, with a warning naming what
the generator does instead (`defaults.UNSET`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from shape_pipeline import __version__
from shape_pipeline.calibration import defaults, summary
from shape_pipeline.calibration.activity import (
    fit_conversations_per_user,
    fit_messages_per_sender,
    sender_share,
)
from shape_pipeline.calibration.categorical import normalize
from shape_pipeline.calibration.content_length import PURE_PREFIX, fit_content_length
from shape_pipeline.calibration.conversation_skews import (
    fit_lifetime,
    fit_top_sender_share,
    recency_shares,
)
from shape_pipeline.calibration.fit_report import GOAL, named_models
from shape_pipeline.calibration.heavy_tail import fit_messages_per_conversation, looks_heavy
from shape_pipeline.calibration.joint import fit_members_by_size
from shape_pipeline.calibration.shape_validation import check_shape, metric
from shape_pipeline.calibration.spline_fit import fit_spline
from shape_pipeline.calibration.temporal import fit_temporal
from shape_pipeline.calibration.trend import daily_weights
from shape_pipeline.calibration.users import fit_username_length, profile_probabilities
from shape_pipeline.console import Emit, Reporter
from shape_pipeline.contracts import (
    PERCENTILE_KEYS,
    CalibratedConfig,
    CalibrationMetadata,
    ColumnLayout,
    ConversationGeneration,
    DistributionStats,
    IdFormat,
    MessageGeneration,
    QuantileSplineModel,
    RecencyShares,
    ShapeMetrics,
    Totals,
    UserGeneration,
)
from shape_pipeline.files import load_json_model, sha256_file, write_model_atomic
from shape_pipeline.mapping import CONVERSATION_TYPES, DIRECT_MESSAGE_MEMBERS, MESSAGE_TYPES

DEFAULT = defaults.SOURCE
T = TypeVar("T")
U = TypeVar("U")


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _default_warning(field: str, what: str) -> str:
    return f"{field} not in shape: using the default {what}"


def window(shape: ShapeMetrics) -> tuple[datetime, datetime, list[str]]:
    """The sample window; a seed-form shape's window ends at `extracted_at`."""
    notes: list[str] = []
    end = shape.window_end
    if end is None:
        end = shape.extracted_at
        notes.append("window_end not in shape: the window ends at extracted_at")
    start = shape.window_start or end - timedelta(days=shape.sample_window_days)
    return start, end, notes


def totals(shape: ShapeMetrics) -> tuple[Totals, list[str]]:
    """Exported totals (a "< k" one as its estimate, with a note: the generator needs a number);
    else conversations from the type counts and the seed's ratios per conversation."""
    if shape.totals is not None:
        names = ("users", "conversations", "messages")
        notes = [
            f"totals.{name} is '{getattr(shape.totals, name)}' in the shape (a small total, suppressed): "
            f"sized as {shape.totals.estimate(name)}"
            for name in names
            if shape.totals.count(name) is None
        ]
        return Totals(**{name: shape.totals.estimate(name) for name in names}), notes
    # the documented defaults are counts, never "< k": estimate() returns them unchanged
    base_users, base_conversations, base_messages = (
        defaults.TOTALS.estimate(name) for name in ("users", "conversations", "messages")
    )
    conversations = sum(shape.conversations.type_distribution.values()) or base_conversations
    scale = conversations / base_conversations
    derived = Totals(
        users=round(base_users * scale),
        conversations=conversations,
        messages=round(base_messages * scale),
    )
    note = (
        "totals not in shape: conversations from the type counts, users and messages at the "
        f"seed's ratios ({base_users / base_conversations:.3g} users and "
        f"{base_messages / base_conversations:.3g} messages per conversation)"
    )
    return derived, [note]


def _unset_warning(field: str, reason: str = "not in shape") -> str:
    """The warning for a skew the shape lacks: its config key stays unset, and what then."""
    key, behaviour = defaults.UNSET[field]
    return f"{field} {reason}: {key} stays unset; the generator keeps its old behaviour ({behaviour})"


def _optional(
    where: str,
    field: str,
    block: T | None,
    fit: Callable[[T], U],
    warnings: list[str],
    *,
    empty: Callable[[T], bool] | None = None,
) -> U | None:
    """`fit(block)` (fitting errors name the field), or None and a warning when it is absent
    or `empty` (every cell suppressed: a small production, not a broken file)."""
    if block is None:
        warnings.append(_unset_warning(field))
        return None
    if empty is not None and empty(block):
        warnings.append(_unset_warning(field, "has no mass (every cell suppressed)"))
        return None
    with metric(where, field):
        return fit(block)


def _spline(
    where: str,
    field: str,
    stats: DistributionStats | None,
    fallback: DistributionStats,
    warnings: list[str],
    *,
    natural_min: float,
    heavy_tail: bool,
) -> QuantileSplineModel:
    if stats is None:
        warnings.append(_default_warning(field, "distribution (see defaults.py)"))
        return fit_spline(fallback, natural_min=natural_min, heavy_tail=heavy_tail, source=DEFAULT)
    with metric(where, field):
        return fit_spline(stats, natural_min=natural_min, heavy_tail=heavy_tail, source=f"shape {field}")


def _members(
    where: str, shape: ShapeMetrics, kinds: list[str], warnings: list[str], users: int | None = None
) -> dict[str, QuantileSplineModel]:
    exported = shape.conversations.members_per_conversation
    out: dict[str, QuantileSplineModel] = {}
    defaulted: list[str] = []
    for kind in dict.fromkeys([*kinds, *exported]):
        field = f"conversations.members_per_conversation.{kind}"
        if kind in exported:
            low, high = DIRECT_MESSAGE_MEMBERS if kind == "DIRECT_MESSAGE" else (1, users or None)
            stats = _within(exported[kind], low, high)
            with metric(where, field):  # big rooms: a Pareto tail when the top says so
                model = fit_spline(stats, natural_min=1, heavy_tail=looks_heavy(stats), source=f"shape {field}")
            out[kind] = carry_exported_mean(model, stats.mean)
            continue
        base = kind if kind in defaults.MEMBERS_PER_CONVERSATION else "GROUP_CHAT"
        defaulted.append(kind if base == kind else f"{kind} (as GROUP_CHAT)")
        out[kind] = fit_spline(
            defaults.MEMBERS_PER_CONVERSATION[base],
            natural_min=defaults.MEMBERS_MIN[base],
            source=DEFAULT,
        )
    if defaulted:
        warnings.append(
            _default_warning("conversations.members_per_conversation", f"members for {', '.join(defaulted)}")
        )
        mean = _defaulted_members_mean(shape, out, [k for k in out if k not in exported])
        if mean is not None:
            out.update({k: carry_exported_mean(out[k], mean) for k in out if k not in exported})
    return out


def _defaulted_members_mean(
    shape: ShapeMetrics, models: dict[str, QuantileSplineModel], defaulted: list[str]
) -> float | None:
    """DP shapes: a type too rare to show its member counts gets the mean that makes all
    memberships add up to users x memberships per user (both exported), instead of the seed's
    default rooms (a mean of 192 members a channel turned 7,500 users into 250,000 memberships)."""
    per_user = shape.users.conversations_per_user if shape.users else None
    types, totals = shape.conversations.type_distribution, shape.totals
    if (
        shape.privacy is None
        or shape.privacy.mode != "dp"
        or per_user is None
        or per_user.mean is None
        or totals is None
    ):
        return None
    rooms = sum(types.get(k, 0) for k in defaulted)
    shown = sum(types.get(k, 0) * (models[k].mean or 0.0) for k in models if k not in defaulted)
    if rooms <= 0:
        return None
    left = totals.estimate("users") * per_user.mean - shown
    return round(max(float(defaults.MEMBERS_MIN["GROUP_CHAT"]), left / rooms), 3)


def _within(stats: DistributionStats, low: float, high: float | None) -> DistributionStats:
    """Member counts a conversation can have: a DM has one or two members by definition, and no
    conversation more members than there are users. A DP shape's noisy histogram can put a few
    conversations beyond, which the generator would turn into invalid or impossible rooms."""
    if high is None or (stats.max is not None and low <= (stats.p1 or low) and stats.max <= high):
        return stats
    data = stats.model_dump()
    for key in (*PERCENTILE_KEYS, "max", "median", "mean"):
        if data.get(key) is not None:
            data[key] = float(min(max(data[key], low), high))
    if data.get("histogram"):
        hist = data["histogram"]
        keep = [i for i, e in enumerate(hist["edges"][:-1]) if low <= e <= high]
        data["histogram"] = (
            {
                "edges": [hist["edges"][i] for i in keep] + [hist["edges"][keep[-1] + 1]],
                "counts": [hist["counts"][i] for i in keep],
            }
            if keep
            else None
        )
    return DistributionStats.model_validate(data)


def carry_exported_mean(model: QuantileSplineModel, mean: float | None) -> QuantileSplineModel:
    """Member counts carry the exported mean: the generator makes each type's counts add up to
    conversations x mean (generation/members.py). A room tail's mean rests on one or two huge
    rooms that a spline through p1..p99 and a Pareto tail under the max cannot hold (a world's
    group chats: mean 10.5, the model's 5.8); without them the plan has far fewer memberships
    than the data, hence fewer senders, each writing more. The model's own mean stays in its
    fit errors."""
    if mean is None or mean <= 0:
        return model
    return model.model_copy(update={"mean": round(float(mean), 3)})


def _shares(
    field: str,
    counts: dict[str, int],
    fallback: Mapping[str, float],
    known: tuple[str, ...],
    warnings: list[str],
) -> dict[str, float]:
    """Normalised category shares; the seed's shares when the shape has none (or no mass)."""
    if sum(counts.values()) > 0:
        return normalize(counts, known)
    reason = "has no mass (every cell suppressed)" if counts else "not in shape"
    warnings.append(f"{field} {reason}: using the default seed shares")
    return normalize(fallback, known)


def _conversation_generation(
    where: str, shape: ShapeMetrics, window_seconds: float, warnings: list[str]
) -> ConversationGeneration:
    conv = shape.conversations
    types = _shares(
        "conversations.type_distribution", conv.type_distribution, defaults.CONVERSATION_TYPES,
        CONVERSATION_TYPES, warnings,
    )  # fmt: skip
    percentiles = conv.messages_per_conversation_percentiles
    field = "conversations.messages_per_conversation_percentiles"
    if percentiles is None:
        warnings.append(_default_warning(field, "seed percentiles (p50 45 ... p99 5000, max 15000)"))
        mpc, notes = fit_messages_per_conversation(defaults.MESSAGES_PER_CONVERSATION, source=DEFAULT)
    else:
        with metric(where, field):
            mpc, notes = fit_messages_per_conversation(
                percentiles,
                conv.messages_per_conversation_histogram,
                conv.messages_per_conversation_mean,
                source="shape percentiles" + (" + histogram" if conv.messages_per_conversation_histogram else ""),
            )
    warnings.extend(notes)
    members = _members(where, shape, list(types), warnings, shape.totals.estimate("users") if shape.totals else None)
    conversations = shape.totals.count("conversations") if shape.totals is not None else None
    return ConversationGeneration(
        type_distribution=types,
        messages_per_conversation=mpc,
        members_per_conversation=members,
        members_by_size=_optional(
            where, "conversations.size_by_members", conv.size_by_members, fit_members_by_size,
            warnings, empty=lambda grid: not any(map(any, grid.counts)),
        ),
        top_sender_share=_optional(
            where, "conversations.top_sender_share", conv.top_sender_share, fit_top_sender_share,
            warnings,
        ),
        lifetime_seconds=_optional(
            where, "conversations.lifetime_seconds", conv.lifetime_seconds,
            lambda stats: fit_lifetime(stats, window_seconds), warnings,
        ),
        recency=_recency(where, shape, conversations, warnings),
    )  # fmt: skip


def _recency(where: str, shape: ShapeMetrics, conversations: int | None, warnings: list[str]) -> RecencyShares | None:
    """Recency shares need the exported number of active conversations as their denominator."""
    field = "conversations.recency"
    if shape.conversations.recency is not None and not conversations:
        warnings.append(_unset_warning(field, "has no totals.conversations to divide by"))
        return None
    return _optional(
        where, field, shape.conversations.recency,
        lambda recency: recency_shares(recency, conversations), warnings,
    )  # fmt: skip


def _daily(where: str, shape: ShapeMetrics, warnings: list[str]) -> list[float] | None:
    """Trend weights per day; suppressed days interpolated (see trend.py)."""
    k = shape.privacy.min_cell_count if shape.privacy is not None else None
    return _optional(
        where, "messages.daily_counts", shape.messages.daily_counts,
        lambda counts: daily_weights(counts, k), warnings, empty=lambda counts: not any(counts),
    )  # fmt: skip


def _message_generation(where: str, shape: ShapeMetrics, warnings: list[str]) -> MessageGeneration:
    msg = shape.messages
    field = "messages.content_length_stats"
    if msg.content_length_stats is None:
        warnings.append(_default_warning(field, "seed content length (mean 85, median 42, p95 280)"))
        content = fit_content_length(defaults.CONTENT_LENGTH, fallback_sigma=defaults.CONTENT_SIGMA, source=DEFAULT)
    else:
        with metric(where, field):
            content = fit_content_length(
                msg.content_length_stats,
                fallback_sigma=defaults.CONTENT_SIGMA,
                source=f"shape {field}",
            )
    types = _shares(
        "messages.type_distribution", msg.type_distribution, defaults.MESSAGE_TYPES,
        MESSAGE_TYPES, warnings,
    )  # fmt: skip
    with metric(where, "messages"):
        temporal, temporal_defaults = fit_temporal(msg)
    temporal = temporal.model_copy(update={"daily": _daily(where, shape, warnings)})
    warnings.extend(
        _default_warning(f, "diurnal wave" if "hourly" in f else "weekday/weekend weights") for f in temporal_defaults
    )
    gaps = _spline(
        where, "messages.inter_message_gap_seconds", msg.inter_message_gap_seconds,
        defaults.gap_seconds(shape.sample_window_days), warnings, natural_min=0, heavy_tail=True,
    )  # fmt: skip
    with metric(where, "messages.messages_per_sender"):
        senders, notes = fit_messages_per_sender(msg.messages_per_sender)
    warnings.extend(notes)
    return MessageGeneration(
        content_length=content,
        type_distribution=types,
        temporal=temporal,
        inter_message_gap_seconds=gaps,
        messages_per_sender=senders,
    )


def _user_generation(where: str, shape: ShapeMetrics, warnings: list[str]) -> UserGeneration:
    users = shape.users
    with metric(where, "users.username_length"):
        username, defaulted = fit_username_length(users.username_length if users else None)
    if defaulted:
        warnings.append(_default_warning("users.username_length", "normal (mean 8.5, sd 2.3)"))
    profile, defaulted = profile_probabilities(users.profile_completeness if users else None)
    if defaulted:
        warnings.append(_default_warning("users.profile_completeness", "fill rates"))
    share = sender_share(shape.messages.messages_per_sender, shape.totals)
    if share is None:
        warnings.append(_unset_warning("messages.messages_per_sender.count", "or totals.users not in shape"))
    return UserGeneration(
        username_length=username,
        profile_field_probabilities=profile,
        conversations_per_user=_optional(
            where, "users.conversations_per_user", users.conversations_per_user if users else None,
            fit_conversations_per_user, warnings,
        ),
        sender_share=share,
    )  # fmt: skip


def id_formats(shape: ShapeMetrics) -> dict[str, IdFormat]:
    """Production's id format per entity (`physical_layout.tables[entity].ids`: aggregates, never
    an id), so the generator writes ids that look like production's."""
    layout = shape.physical_layout
    if layout is None:
        return {}
    return {entity: table.ids for entity, table in layout.tables.items() if table.ids is not None}


def unmapped_columns(shape: ShapeMetrics) -> dict[str, dict[str, ColumnLayout]]:
    """Production's width and NULL share of the columns the mapping does not name, per entity
    (`physical_layout.tables[entity].unmapped_columns`), so the generator writes rows as wide."""
    layout = shape.physical_layout
    if layout is None:
        return {}
    return {entity: dict(table.unmapped_columns) for entity, table in layout.tables.items() if table.unmapped_columns}


JOIN_ORDER_CORRELATION = 0.3  # production's members.user_id correlation from which ids follow joins


def users_in_join_order(shape: ShapeMetrics) -> bool:
    """True when production's memberships, in insert order, correlate with sequential user ids
    (`pg_stats.correlation` of members.user_id at least JOIN_ORDER_CORRELATION, integer ids):
    the generator then numbers users in the order they first join."""
    layout = shape.physical_layout
    members = layout.tables.get("members") if layout else None
    users = layout.tables.get("users") if layout else None
    column = members.columns.get("user_id") if members else None
    correlation = column.correlation if column else None
    sequential = users is not None and users.ids is not None and users.ids.kind == "integer"
    return sequential and correlation is not None and correlation >= JOIN_ORDER_CORRELATION


def off_goal_warnings(config: CalibratedConfig) -> list[str]:
    """One warning per fitted percentile or mean the model misses by more than the goal."""
    return [
        f"{name} {e.metric}: model {e.fitted:,.6g} vs shape {e.target:,.6g} "
        f"({e.relative_error:+.1%}), off the {GOAL:.0%} goal"
        for name, model in named_models(config)
        for e in model.fit_errors
        if not e.within_goal and not e.metric.startswith(PURE_PREFIX)
    ]


def calibrate(shape: ShapeMetrics, *, source_path: Path | None = None, now: datetime | None = None) -> CalibratedConfig:
    """Fit every generator model to `shape`; raises ShapePipelineError naming file and field."""
    where = str(source_path) if source_path is not None else "shape"
    check_shape(shape, where)
    start, end, warnings = window(shape)
    total, notes = totals(shape)
    warnings += notes
    seconds = (end - start).total_seconds()
    conversation = _conversation_generation(where, shape, seconds, warnings)
    message = _message_generation(where, shape, warnings)
    user = _user_generation(where, shape, warnings)
    path = Path(source_path) if source_path is not None else None
    metadata = CalibrationMetadata(
        source_shape_file=_iso(shape.extracted_at),
        calibrated_at=now or datetime.now(UTC),
        production_sample_window_days=shape.sample_window_days,
        window_start=start,
        window_end=end,
        source_shape_path=path.name if path is not None else None,
        source_shape_sha256=sha256_file(path) if path is not None and path.is_file() else None,
        tool_version=__version__,
        warnings=warnings,
    )
    config = CalibratedConfig(
        calibration_metadata=metadata,
        totals=total,
        user_generation=user,
        conversation_generation=conversation,
        message_generation=message,
        id_formats=id_formats(shape),
        unmapped_columns=unmapped_columns(shape),
        users_in_join_order=users_in_join_order(shape),
    )
    metadata.warnings.extend(off_goal_warnings(config))
    return config


def load_shape(shape_path: str | Path) -> ShapeMetrics:
    """Read and contract-check a shape file (one-line errors naming file and field)."""
    return load_json_model(shape_path, ShapeMetrics, what="shape metrics")


def calibrate_file(shape_path: str | Path, output_path: str | Path, *, emit: Emit | None = print) -> CalibratedConfig:
    """Load, calibrate, print the seed-style summary, then write the config atomically.

    Nothing is written when any step fails.
    """
    reporter = Reporter("Calibrator", emit)
    summary.start(reporter)
    shape = load_shape(shape_path)
    config = calibrate(shape, source_path=Path(shape_path))
    summary.report(config, reporter)
    written = write_model_atomic(output_path, config)
    reporter.blank()
    reporter.ok(f"Written to {written}", tag="Output")
    return config
