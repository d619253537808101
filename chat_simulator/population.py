"""Who lives in the world: people with heavy-tailed activity, their time zones, bots, leavers.

Activity is a log-normal weight (sigma 1.8) times "active in the window" (about 78 %); the
weight later scales both how many rooms a person joins and how often they speak in each, so a
few people write a large share and the median person little. Some accounts were deactivated
(soft-deleted), a few are bots. Profile columns are often unset, stored as NULL or as '' at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from chat_simulator import text
from chat_simulator.clock import DAY_MS, TIME_ZONES, Window

ACTIVITY_SIGMA = 1.8
ACTIVE_SHARE = 0.78
DELETED_SHARE = 0.03
MESSAGES_PER_USER = 40
BOT_NAMES = ("deploybot", "standupbot", "alertbot", "rssbot", "pollbot", "buildbot", "remindbot", "statusbot")
POSITIONS = ("Engineer", "Designer", "Support", "Sales", "Product Manager", "Intern", "Director", "Analyst")


@dataclass(frozen=True)
class People:
    """Users as numpy columns (index = logical user id) plus their Arrow profile table."""

    weight: np.ndarray  # activity weight, 0 for people silent in the window and for bots
    zone: np.ndarray  # index into clock.TIME_ZONES
    is_bot: np.ndarray
    created_ms: np.ndarray
    deleted_ms: np.ndarray  # -1 when not deleted
    table: pa.Table

    @property
    def count(self) -> int:
        return int(self.weight.size)


def bot_count(messages: int) -> int:
    """A few bots: two for small worlds, up to eight for a million messages."""
    return int(min(len(BOT_NAMES), 2 + messages // 150_000))


def people(messages: int, window: Window, rng: np.random.Generator) -> People:
    """About one person per `MESSAGES_PER_USER` messages, the last few of them bots."""
    bots = bot_count(messages)
    n = max(12, round(messages / MESSAGES_PER_USER)) + bots
    is_bot = np.zeros(n, dtype=bool)
    is_bot[n - bots :] = True
    weight = rng.lognormal(0.0, ACTIVITY_SIGMA, n) * (rng.random(n) < ACTIVE_SHARE)
    weight[is_bot] = 0.0
    shares = np.array([z[2] for z in TIME_ZONES])
    zone = rng.choice(len(TIME_ZONES), n, p=shares / shares.sum())
    # Most accounts predate the window (up to two years); 12 % sign up during it.
    newcomer = (rng.random(n) < 0.12) & ~is_bot
    created = window.start_ms - rng.integers(DAY_MS, 730 * DAY_MS, n)
    created[newcomer] = window.start_ms + rng.integers(0, window.end_ms - window.start_ms - DAY_MS, newcomer.sum())
    created[is_bot] = window.start_ms - 400 * DAY_MS + np.arange(bots) * DAY_MS
    deleted = np.full(n, -1, dtype=np.int64)
    gone = (rng.random(n) < DELETED_SHARE) & ~is_bot
    deleted[gone] = created[gone] + ((window.end_ms - created[gone]) * rng.random(gone.sum())).astype(np.int64)
    weight[(deleted >= 0) & (deleted < window.start_ms)] = 0.0
    order = np.argsort(created, kind="stable")  # ids follow sign-up order, as in a real app
    weight, zone, is_bot, created, deleted = weight[order], zone[order], is_bot[order], created[order], deleted[order]
    return People(weight, zone, is_bot, created, deleted, profiles(is_bot, zone, created, deleted, rng))


def profiles(
    is_bot: np.ndarray, zone: np.ndarray, created: np.ndarray, deleted: np.ndarray, rng: np.random.Generator
) -> pa.Table:
    """Usernames, e-mails and optional profile fields ('' or NULL when unset)."""
    n = is_bot.size
    first = text.pick(text.names(), rng, n)
    last = text.pick(text.names(), rng, n)
    import pyarrow.compute as pc

    handle = text.join(pc.utf8_lower(first), ".", pc.utf8_lower(last), text.base36(np.arange(n)))
    bot_handles = text.strings(
        [
            BOT_NAMES[i % len(BOT_NAMES)] + (str(i // len(BOT_NAMES)) if i >= len(BOT_NAMES) else "")
            for i in range(int(is_bot.sum()))
        ]
    )
    bot_rows = np.flatnonzero(is_bot)
    username = _place(handle, bot_rows, bot_handles)
    email = text.join(username, "@", text.pick(text.EMAIL_DOMAINS, rng, n))

    def optional(values: pa.Array, set_share: float) -> pa.Array:
        unset = rng.random(n) >= set_share
        return text.unset_as(values, unset, rng.random(n) < 0.5)

    full = text.join(first, " ", last)
    bios = text.join(
        "Hi, I am ", first, ". Call me at 555-01", pc.utf8_lpad(text.base36(rng.integers(0, 36, n)), 2, "0")
    )
    avatar = text.join("https://avatars.example.net/", username, ".png")
    return pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "username": username,
            "email": email,
            "first_name": optional(first, 0.62),
            "last_name": optional(last, 0.58),
            "nickname": optional(pc.utf8_lower(first), 0.2),
            "display_name": optional(full, 0.7),
            "position": optional(text.pick(POSITIONS, rng, n), 0.18),
            "bio": optional(bios, 0.25),
            "avatar_url": optional(avatar, 0.4),
            "time_zone": text.strings([z[0] for z in TIME_ZONES]).take(pa.array(zone)),
            "is_bot": pa.array(is_bot),
            "created_at": ms_timestamps(created),
            "deleted_at": ms_timestamps(deleted),
        }
    )


def _place(values: pa.Array, rows: np.ndarray, replacement: pa.Array) -> pa.Array:
    """`values` with `rows` replaced by `replacement` (in order)."""
    out = values.to_pylist()
    for row, value in zip(rows.tolist(), replacement.to_pylist(), strict=True):
        out[row] = value
    return pa.array(out, pa.string())


def ms_timestamps(values: np.ndarray) -> pa.Array:
    """Epoch milliseconds as UTC timestamps; -1 means NULL."""
    values = np.asarray(values, dtype=np.int64)
    return pa.array(values, pa.timestamp("ms", tz="UTC"), mask=values < 0)
