"""The simulated weeks: a window of whole hours and when people are awake to write.

Activity follows local time: a diurnal curve (nights quiet, office hours busy), quieter
weekends, mild growth over the window and a launch spike a few days before its end. Each time
zone has its own hourly intensity over the window in UTC; a message time is drawn by inverse
CDF over those hours plus a uniform offset inside the hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Relative activity by local hour, 00:00 .. 23:00.
DIURNAL = np.array(
    [
        0.06,
        0.04,
        0.03,
        0.03,
        0.04,
        0.08,
        0.2,
        0.45,
        0.8,
        1.0,
        1.0,
        0.95,
        0.75,
        0.85,
        0.95,
        1.0,
        0.9,
        0.7,
        0.5,
        0.45,
        0.45,
        0.38,
        0.25,
        0.12,
    ]
)
WEEKEND = 0.3
# Offsets from UTC in minutes and the share of users living there.
TIME_ZONES: tuple[tuple[str, int, float], ...] = (
    ("America/Los_Angeles", -480, 0.14),
    ("America/New_York", -300, 0.26),
    ("America/Sao_Paulo", -180, 0.05),
    ("UTC", 0, 0.05),
    ("Europe/London", 0, 0.1),
    ("Europe/Berlin", 60, 0.2),
    ("Asia/Kolkata", 330, 0.1),
    ("Asia/Tokyo", 540, 0.06),
    ("Australia/Sydney", 600, 0.04),
)


@dataclass(frozen=True)
class Window:
    """The simulated span [start, end) in epoch milliseconds, whole hours."""

    start_ms: int
    end_ms: int

    @classmethod
    def ending(cls, end: datetime, weeks: int) -> Window:
        """`weeks` weeks ending at `end` (naive means UTC), truncated to the hour."""
        end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
        end = end.replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(weeks=weeks)
        return cls(int(start.timestamp() * 1000), int(end.timestamp() * 1000))

    @property
    def hours(self) -> int:
        return (self.end_ms - self.start_ms) // HOUR_MS

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_ms / 1000, UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.end_ms / 1000, UTC)


def volume_trend(window: Window) -> np.ndarray:
    """Relative volume per hour of the window: +40 % growth and a launch spike 9 days before the end."""
    hours = np.arange(window.hours)
    growth = 1.0 + 0.4 * hours / max(window.hours - 1, 1)
    spike_at = window.hours - 9 * 24
    since = (hours - spike_at) / 24.0
    spike = np.where(since >= 0, 1.5 * np.exp(-np.clip(since, 0, None) / 1.5), 0.0)
    return growth * (1.0 + spike)


def zone_intensity(window: Window, offset_minutes: int) -> np.ndarray:
    """Hourly intensity over the window for people living at `offset_minutes` from UTC."""
    utc_hours = window.start_ms // HOUR_MS + np.arange(window.hours)
    local = utc_hours + offset_minutes / 60.0
    hour_of_day = np.floor(local).astype(np.int64) % 24
    weekday = (np.floor(local / 24).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (Mon = 0)
    return DIURNAL[hour_of_day] * np.where(weekday >= 5, WEEKEND, 1.0) * volume_trend(window)


def draw_times(window: Window, zone: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch-ms time per event, from the intensity of each event's time zone index."""
    times = np.empty(zone.size, dtype=np.int64)
    for index, (_, offset, _) in enumerate(TIME_ZONES):
        rows = np.flatnonzero(zone == index)
        if rows.size == 0:
            continue
        cdf = np.cumsum(zone_intensity(window, offset))
        hour = np.searchsorted(cdf, rng.random(rows.size) * cdf[-1], side="right")
        times[rows] = window.start_ms + hour * HOUR_MS + rng.integers(0, HOUR_MS, rows.size)
    return times
