"""Frequency tables from the agreed Parquet layout, by Arrow group-bys (no Python loop per row).

Layout (the generator writes it): `DIR/{users,conversations,members,messages}/part-NNNNN.parquet`,
canonical column names, logical type values, timestamps `timestamp[us, tz=UTC]`, int64 ids.
Definitions are the sampler's (see `sampling/extract.py`): messages with
window_start <= created_at < window_end; conversations with a message in the window; users
created before window_end; gaps are floor(seconds) between consecutive in-window messages of a
conversation, rounded above an hour exactly as the sampler's SQL does (`round_gaps`); hours and weekdays in UTC, Monday = 0.
The skews follow the sampler too: lifetime = floor(seconds) from a conversation's first to last
in-window message, rounded like gaps; recency against the window's last 7 / 30 days
(`recent_bound`); the top sender's share per mille in the sampler's integer rounding
(`top_sender_permille`; a null sender counts in the total, never as the top sender); members
are member rows with a user id (0 for an active conversation without any); messages per day
= floor((created_at - window_start) / 1 day).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.mapping import CANONICAL_MAPPING, CONVERSATION_TYPES, MESSAGE_TYPES, OTHER
from shape_pipeline.sampling.extract import (
    RECENT_DAYS,
    SECONDS_PER_DAY,
    gap_segments,
    recent_bound,
    round_gaps,
    top_sender_permille,
    window_day_count,
)
from shape_pipeline.sampling.frequencies import (
    MEMBER_EDGES,
    SIZE_EDGES,
    Frequency,
    FrequencyTables,
    power_of_two_bucket,
)

TABLES: dict[str, tuple[str, ...]] = {
    "users": ("id", "username", "created_at"),
    "conversations": ("id", "type", "created_at"),
    "members": ("conversation_id", "user_id"),
    "messages": ("id", "conversation_id", "sender_id", "type", "content", "created_at"),
}
_MICROS = 1_000_000


def open_table(parquet_dir: str | Path, name: str) -> ds.Dataset:
    """The pyarrow dataset of one table; a missing folder or column is one clear error."""
    folder = Path(parquet_dir) / name
    if not folder.is_dir() or not any(folder.glob("*.parquet")):
        raise ShapePipelineError(f"{folder}: no Parquet files (expected {name}/part-NNNNN.parquet)")
    dataset = ds.dataset(folder, format="parquet")
    missing = [c for c in TABLES[name] if c not in dataset.schema.names]
    if missing:
        raise ShapePipelineError(f"{folder}: missing column(s) {', '.join(missing)}")
    return dataset


def utc_scalar(moment: datetime) -> pa.Scalar:
    """A window bound as an Arrow scalar comparable with `timestamp[us, tz=UTC]` columns."""
    return pa.scalar(moment, type=pa.timestamp("us", tz="UTC"))


def in_window(column: str, window_start: datetime, window_end: datetime) -> ds.Expression:
    field = ds.field(column)
    return (field >= utc_scalar(window_start)) & (field < utc_scalar(window_end))


def _frequency_of(values: pa.Array | pa.ChunkedArray) -> Frequency:
    counts = pc.value_counts(values)
    if len(counts) == 0:
        return Frequency.empty()
    flat = counts.flatten()
    return Frequency.from_pairs(np.column_stack([flat[0].to_numpy(zero_copy_only=False), flat[1].to_numpy()]))


def _group_sizes(table: pa.Table, key: str) -> pa.Table:
    return table.group_by(key).aggregate([([], "count_all")])


def _logical(values: pa.ChunkedArray, allowed: tuple[str, ...], default: str | None) -> pa.Array:
    """Logical category per row: known names kept, null -> default, anything else -> OTHER."""
    if default is not None:
        values = pc.fill_null(values, default)
    known = pc.is_in(values, value_set=pa.array(allowed))
    return pc.if_else(known, values, pa.scalar(OTHER))


def _category_counts(values: pa.Array) -> dict[str, int]:
    counts = pc.value_counts(values).flatten()
    return {str(k): int(n) for k, n in zip(counts[0].to_pylist(), counts[1].to_pylist(), strict=True)}


def read_messages(parquet_dir: str | Path, window_start: datetime, window_end: datetime) -> pa.Table:
    """In-window messages reduced to the columns the shape needs (content -> its length)."""
    dataset = open_table(parquet_dir, "messages")
    return dataset.to_table(
        columns={
            "conversation_id": ds.field("conversation_id"),
            "sender_id": ds.field("sender_id"),
            "type": ds.field("type"),
            "created_at": ds.field("created_at"),
            "content_length": pc.utf8_length(ds.field("content")),
        },
        filter=in_window("created_at", window_start, window_end),
    )


def gap_seconds(conversation_id: np.ndarray, created_us: np.ndarray) -> np.ndarray:
    """floor(seconds) between consecutive messages of the same conversation."""
    order = np.lexsort((created_us, conversation_id))
    conv, t = conversation_id[order], created_us[order]
    same = conv[1:] == conv[:-1]
    return (np.diff(t)[same]) // _MICROS


def _micros(moment: datetime) -> int:
    return int(utc_scalar(moment).value)


def _conversation_runs(conversation_id: np.ndarray, created_us: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per conversation (ascending id): id, messages, first and last message time (µs)."""
    order = np.lexsort((created_us, conversation_id))
    conv, t = conversation_id[order], created_us[order]
    starts = np.flatnonzero(np.r_[True, conv[1:] != conv[:-1]]) if conv.size else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], conv.size].astype(np.int64)
    return conv[starts], ends - starts, t[starts], t[ends - 1]


def _top_sender(messages: pa.Table) -> Frequency:
    """Top sender's share per mille of each conversation, as the sampler rounds it."""
    pairs = (
        messages.select(["conversation_id", "sender_id"])
        .group_by(["conversation_id", "sender_id"])
        .aggregate([([], "count_all")])
    )
    named = pc.if_else(pc.is_valid(pairs["sender_id"]), pairs["count_all"], pa.scalar(None, pa.int64()))
    per = (
        pairs.append_column("named", named)
        .group_by("conversation_id")
        .aggregate([("named", "max"), ("count_all", "sum")])
        .filter(pc.is_valid(pc.field("named_max")))
    )
    top, total = per["named_max"].to_numpy(), per["count_all_sum"].to_numpy()
    return Frequency.from_values(top_sender_permille(top, total)) if top.size else Frequency.empty()


class _SkewFields(TypedDict):
    """The issue-10 fields of FrequencyTables."""

    conversations_per_user: Frequency
    top_sender_permille: Frequency
    lifetime_seconds: Frequency
    active_last_7_days: int
    active_last_30_days: int
    size_by_members: np.ndarray
    messages_per_day: np.ndarray


def _skews(messages: pa.Table, members: pa.Table, window_start: datetime, window_end: datetime) -> _SkewFields:
    """The issue-10 fields of FrequencyTables, by the sampler's definitions."""
    created_us = messages["created_at"].cast(pa.int64()).to_numpy()
    conv, sizes, first, last = _conversation_runs(messages["conversation_id"].to_numpy(), created_us)
    lifetime = round_gaps((last - first) // _MICROS, gap_segments((window_end - window_start).total_seconds()))
    last_7, last_30 = (int((last >= _micros(recent_bound(window_start, window_end, d))).sum()) for d in RECENT_DAYS)
    member_rows = members.filter(pc.is_valid(members["user_id"]))
    active_rows = member_rows.filter(pc.is_in(member_rows["conversation_id"], value_set=pa.array(conv)))
    member_conv = active_rows["conversation_id"].to_numpy()
    member_counts = np.zeros(conv.size, dtype=np.int64)
    np.add.at(member_counts, np.searchsorted(conv, member_conv), 1)
    grid = np.zeros((len(SIZE_EDGES) - 1, len(MEMBER_EDGES) - 1), dtype=np.int64)
    np.add.at(grid, (power_of_two_bucket(sizes, SIZE_EDGES), power_of_two_bucket(member_counts, MEMBER_EDGES)), 1)
    per_user = _group_sizes(active_rows.select(["user_id"]), "user_id")["count_all"]
    days = (created_us - _micros(window_start)) // (SECONDS_PER_DAY * _MICROS)
    return {
        "conversations_per_user": _frequency_of(per_user),
        "top_sender_permille": _top_sender(messages),
        "lifetime_seconds": Frequency.from_values(lifetime) if lifetime.size else Frequency.empty(),
        "active_last_7_days": last_7,
        "active_last_30_days": last_30,
        "size_by_members": grid,
        "messages_per_day": np.bincount(days, minlength=window_day_count(window_start, window_end)).astype(np.int64),
    }


def frequencies_from_parquet(
    parquet_dir: str | Path, *, window_start: datetime, window_end: datetime
) -> FrequencyTables:
    """Every frequency table of one window, computed from a Parquet dataset folder."""
    messages = read_messages(parquet_dir, window_start, window_end)
    users = open_table(parquet_dir, "users").to_table(filter=ds.field("created_at") < utc_scalar(window_end))
    conversations = open_table(parquet_dir, "conversations").to_table(columns=["id", "type"])
    members = open_table(parquet_dir, "members").to_table(columns=["conversation_id", "user_id"])

    per_conv = _group_sizes(messages.select(["conversation_id"]), "conversation_id")
    active = conversations.join(per_conv, keys="id", right_keys="conversation_id", join_type="inner")
    conv_types = _logical(active["type"], CONVERSATION_TYPES, None)
    active = active.set_column(active.schema.get_field_index("type"), "type", conv_types)

    member_counts = _group_sizes(members.select(["conversation_id"]), "conversation_id").rename_columns(
        ["conversation_id", "members"]
    )
    typed_members = member_counts.join(
        active.select(["id", "type"]), keys="conversation_id", right_keys="id", join_type="inner"
    )
    members_by_type = {
        str(kind): _frequency_of(typed_members.filter(pc.equal(typed_members["type"], kind))["members"])
        for kind in pc.unique(typed_members["type"]).to_pylist()
    }

    hours = pc.hour(messages["created_at"]).to_numpy(zero_copy_only=False)
    days = pc.day_of_week(messages["created_at"]).to_numpy(zero_copy_only=False)
    grid = np.bincount(days.astype(np.int64) * 24 + hours, minlength=168).reshape(7, 24)

    created_us = messages["created_at"].cast(pa.int64()).to_numpy()
    gaps = round_gaps(
        gap_seconds(messages["conversation_id"].to_numpy(), created_us),
        gap_segments((window_end - window_start).total_seconds()),
    )

    msg_default = CANONICAL_MAPPING.messages.type.default
    profile_fields = [f for f in CANONICAL_MAPPING.users.profile_fields if f in users.schema.names]
    return FrequencyTables(
        users_total=users.num_rows,
        conversations_total=per_conv.num_rows,
        messages_total=messages.num_rows,
        username_length=_frequency_of(pc.utf8_length(users["username"])),
        profile_fields_set={f: _filled(users[f]) for f in profile_fields},
        conversation_types=_category_counts(conv_types),
        messages_per_conversation=_frequency_of(per_conv["count_all"]),
        members_per_conversation=members_by_type,
        content_length=_frequency_of(messages["content_length"]),
        message_types=_category_counts(_logical(messages["type"], MESSAGE_TYPES, msg_default)),
        hour_by_day_of_week=grid.astype(np.int64),
        gap_seconds=Frequency.from_values(gaps) if gaps.size else Frequency.empty(),
        messages_per_sender=_frequency_of(_group_sizes(messages.select(["sender_id"]), "sender_id")["count_all"]),
        **_skews(messages, members, window_start, window_end),
    )


def _filled(column: pa.ChunkedArray) -> int:
    """Rows with the field set: not null and, for text, not empty."""
    valid = pc.is_valid(column)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        valid = pc.and_(valid, pc.greater(pc.utf8_length(pc.fill_null(column, "")), 0))
    return int(pc.sum(valid).as_py() or 0)
