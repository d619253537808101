"""Frequency tables: the source-neutral middle of shape extraction.

Every numeric metric is reduced to a frequency table (distinct value -> how many entities have
it), computed where the data lives: by SQL aggregates inside the database (sampling), or by
Arrow group-bys over a Parquet folder (fidelity). Pure functions then turn the tables into
percentiles, moments and histograms, so both sources share one implementation, and the
database never returns a row, an identifier or a text value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Frequency:
    """Distinct values (ascending) and how many entities have each."""

    values: np.ndarray  # float64 or int64, strictly ascending
    counts: np.ndarray  # int64, > 0

    @classmethod
    def from_pairs(cls, pairs: list[tuple[float, int]] | np.ndarray) -> Frequency:
        arr = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
        order = np.argsort(arr[:, 0], kind="stable")
        arr = arr[order]
        keep = arr[:, 1] > 0
        return cls(arr[keep, 0], arr[keep, 1].astype(np.int64))

    @classmethod
    def from_values(cls, values: np.ndarray) -> Frequency:
        uniq, counts = np.unique(np.asarray(values), return_counts=True)
        return cls(uniq.astype(np.float64), counts.astype(np.int64))

    @classmethod
    def empty(cls) -> Frequency:
        return cls(np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64))

    @property
    def total(self) -> int:
        return int(self.counts.sum())


@dataclass
class FrequencyTables:
    """Everything a shape is computed from, for one window."""

    users_total: int = 0
    conversations_total: int = 0  # conversations with at least one message in the window
    messages_total: int = 0  # messages in the window
    username_length: Frequency = field(default_factory=Frequency.empty)
    profile_fields_set: dict[str, int] = field(default_factory=dict)  # field -> users with it set
    conversation_types: dict[str, int] = field(default_factory=dict)  # logical type (or OTHER) -> conversations
    messages_per_conversation: Frequency = field(default_factory=Frequency.empty)
    members_per_conversation: dict[str, Frequency] = field(default_factory=dict)  # by logical type
    content_length: Frequency = field(default_factory=Frequency.empty)
    message_types: dict[str, int] = field(default_factory=dict)  # logical type (or OTHER) -> messages
    hour_by_day_of_week: np.ndarray = field(
        default_factory=lambda: np.zeros((7, 24), dtype=np.int64)
    )  # Monday first, UTC
    gap_seconds: Frequency = field(default_factory=Frequency.empty)  # consecutive messages of a conversation
    messages_per_sender: Frequency = field(default_factory=Frequency.empty)
    # Skews that decide index behaviour (issue "Hot users, bursts and exact percentiles"):
    conversations_per_user: Frequency = field(default_factory=Frequency.empty)  # per member of an active conversation
    top_sender_permille: Frequency = field(
        default_factory=Frequency.empty
    )  # round(1000 * top sender's share), per conversation
    lifetime_seconds: Frequency = field(
        default_factory=Frequency.empty
    )  # last - first message in window, per conversation
    active_last_7_days: int = 0  # conversations whose last message in the window is in its last 7 days
    active_last_30_days: int = 0
    size_by_members: np.ndarray = field(
        default_factory=lambda: np.zeros((len(SIZE_EDGES) - 1, len(MEMBER_EDGES) - 1), dtype=np.int64)
    )  # conversations by (messages bucket, members bucket) on the fixed edges below
    messages_per_day: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )  # UTC days from window start


# Fixed, data-independent bucket edges of the size x members grid: powers of two.
SIZE_EDGES: tuple[int, ...] = tuple([1 << i for i in range(28)])  # 1, 2, 4 ... 2^27 messages
MEMBER_EDGES: tuple[int, ...] = tuple([1 << i for i in range(24)])  # 1, 2, 4 ... 2^23 members


def power_of_two_bucket(values: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    """Index i of the bucket [edges[i], edges[i+1]) of each value >= 1 (the last bucket is open)."""
    v = np.maximum(np.asarray(values, dtype=np.int64), 1)
    return np.minimum(np.floor(np.log2(v)).astype(np.int64), len(edges) - 2)
