"""Where people talk: direct messages (some with one member: notes to self), small group chats,
and channels joined by preferential attachment.

Channels grow like a Simon process: join events arrive in rounds of geometrically growing
size; a small share of them opens a new channel, the rest pick an existing channel with
probability proportional to its size plus one, so big rooms get bigger and sizes end up
heavy-tailed. Everything is vectorized per round (about 25 rounds for a million joins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chat_simulator.clock import DAY_MS, HOUR_MS, Window
from chat_simulator.population import People

KINDS: tuple[str, ...] = ("DIRECT", "GROUP", "PRIVATE", "OPEN")
DIRECT, GROUP, PRIVATE, OPEN = range(4)
SELF_NOTE_SHARE = 0.22  # of direct messages: a member alone, notes to self
NEW_ROOM_SHARE = 0.05  # of channel joins: the joiner opens a new channel
LEAVE_SHARE = 0.03
ARCHIVED_SHARE = 0.04


@dataclass(frozen=True)
class Rooms:
    """Conversations (index = logical id) and memberships sorted by (conversation, user)."""

    kind: np.ndarray
    created_ms: np.ndarray
    archived_ms: np.ndarray  # -1 when open
    creator: np.ndarray  # -1 for direct messages and group chats
    member_conv: np.ndarray
    member_user: np.ndarray
    joined_ms: np.ndarray
    left_conv: np.ndarray  # people who left during the window (no longer members)
    left_user: np.ndarray
    left_joined_ms: np.ndarray
    left_ms: np.ndarray

    @property
    def count(self) -> int:
        return int(self.kind.size)

    def member_starts(self) -> np.ndarray:
        """Index of each conversation's first membership (and the total at the end)."""
        return np.searchsorted(self.member_conv, np.arange(self.count + 1))


def sociability(folk: People) -> np.ndarray:
    """How strongly someone is drawn into conversations (silent people still get a few)."""
    s = np.sqrt(folk.weight) + 0.15
    s[folk.is_bot] = 0.0
    return s / s.sum()


def direct_pairs(p: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct unordered pairs of distinct people, (count, 2), drawn by sociability."""
    draws = rng.choice(p.size, (int(count * 1.6) + 8, 2), p=p)
    draws = np.sort(draws[draws[:, 0] != draws[:, 1]], axis=1)
    _, first = np.unique(draws[:, 0] * p.size + draws[:, 1], return_index=True)
    return draws[np.sort(first)][:count]


def group_members(p: np.ndarray, groups: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Small private group chats of three to eight distinct people."""
    humans = int((p > 0).sum())
    sizes = np.minimum(2 + rng.geometric(0.45, groups), min(8, humans))
    return [rng.choice(p.size, size, replace=False, p=p) for size in sizes.tolist()]


def channel_joins(p: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(room, user) of every channel join, room 0 being the default room almost everyone is in."""
    n = p.size
    joins_per_user = np.where(p > 0, rng.geometric(np.clip(0.6 / (1 + np.log1p(p * n)), 0.08, 0.9)), 0)
    users = rng.permutation(np.repeat(np.arange(n), joins_per_user))
    sizes = np.ones(3, dtype=np.float64)
    rooms = np.empty(users.size, dtype=np.int64)
    done, batch = 0, 8
    while done < users.size:
        k = min(batch, users.size - done)
        new = rng.random(k) < NEW_ROOM_SHARE
        picked = rng.choice(sizes.size, k, p=(sizes + 1.0) / (sizes + 1.0).sum())
        picked[new] = sizes.size + np.arange(int(new.sum()))
        sizes = np.concatenate([sizes, np.zeros(int(new.sum()))])
        sizes += np.bincount(picked, minlength=sizes.size)
        rooms[done : done + k] = picked
        done += k
        batch = int(batch * 1.6) + 1
    default_users = np.flatnonzero((p > 0) & (rng.random(n) < 0.92))
    rooms = np.concatenate([np.zeros(default_users.size, dtype=np.int64), rooms + 1])
    users = np.concatenate([default_users, users])
    pairs = np.unique(rooms * n + users)
    return pairs // n, pairs % n


def skewed_between(low: np.ndarray, high: np.ndarray, power: float, rng: np.random.Generator) -> np.ndarray:
    """Times between low and high, crowded towards low (U ** power)."""
    span = np.maximum(high - low, 1)
    return low + (span * rng.random(low.size) ** power).astype(np.int64)


def rooms(folk: People, window: Window, rng: np.random.Generator) -> Rooms:
    """All conversations and memberships of the world."""
    p = sociability(folk)
    humans = int((p > 0).sum())
    pairs = direct_pairs(p, max(2, round(0.75 * humans)), rng)
    notes = rng.choice(
        p.size, min(humans, max(1, round(pairs.shape[0] * SELF_NOTE_SHARE / (1 - SELF_NOTE_SHARE)))), replace=False, p=p
    )
    groups = group_members(p, max(1, round(0.05 * humans)), rng)
    chan_room, chan_user = channel_joins(p, rng)
    chan_room, chan_user = with_bots(folk, chan_room, chan_user, rng)

    n_direct = pairs.shape[0] + notes.size
    n_rooms = int(chan_room.max()) + 1
    kind = np.concatenate(
        [
            np.full(n_direct, DIRECT),
            np.full(len(groups), GROUP),
            np.where(rng.random(n_rooms) < 0.3, PRIVATE, OPEN),
        ]
    )
    kind[n_direct + len(groups)] = OPEN  # the default room
    offset_room = n_direct + len(groups)
    conv = np.concatenate(
        [
            np.repeat(np.arange(pairs.shape[0]), 2),
            pairs.shape[0] + np.arange(notes.size),
            np.repeat(n_direct + np.arange(len(groups)), [g.size for g in groups]).astype(np.int64),
            offset_room + chan_room,
        ]
    )
    user = np.concatenate([pairs.reshape(-1), notes, *groups, chan_user]).astype(np.int64)

    # Conversations start after their first members signed up; channels long before the window.
    first_member = np.full(kind.size, window.start_ms - 800 * DAY_MS)
    private_chat = kind[conv] <= GROUP
    np.maximum.at(first_member, conv[private_chat], folk.created_ms[user[private_chat]])
    last_possible = np.full(kind.size, window.end_ms - HOUR_MS)
    gone_member = private_chat & (folk.deleted_ms[user] >= 0)
    np.minimum.at(last_possible, conv[gone_member], folk.deleted_ms[user[gone_member]])
    created = skewed_between(first_member, np.maximum(last_possible, first_member + 1), 3.0, rng)
    created[offset_room] = window.start_ms - 800 * DAY_MS
    creator = np.full(kind.size, -1, dtype=np.int64)
    order = np.lexsort((user, conv))
    conv, user = conv[order], user[order]
    lower = np.maximum(created[conv], folk.created_ms[user])
    joined = np.where(
        kind[conv] <= GROUP, lower, skewed_between(lower, np.full(conv.size, window.end_ms - HOUR_MS), 3.0, rng)
    )
    gone = folk.deleted_ms[user]
    alive = (gone < 0) | (lower < gone) | (kind[conv] <= GROUP)  # a chat keeps its deactivated members
    joined = np.where((gone >= 0) & (joined > gone) & (lower < gone), (lower + gone) // 2, joined)
    conv, user, joined = conv[alive], user[alive], joined[alive]
    firsts = np.searchsorted(conv, np.arange(kind.size))
    has_member = np.bincount(conv, minlength=kind.size) > 0
    creator[has_member & (kind > GROUP)] = user[firsts[has_member & (kind > GROUP)]]

    leaving = (kind[conv] > GROUP) & (rng.random(conv.size) < LEAVE_SHARE) & (joined < window.end_ms - 2 * HOUR_MS)
    leaving &= ~folk.is_bot[user]
    left = skewed_between(joined[leaving], np.full(int(leaving.sum()), window.end_ms - HOUR_MS), 1.0, rng)
    archived = np.full(kind.size, -1, dtype=np.int64)
    archive = (kind > GROUP) & (rng.random(kind.size) < ARCHIVED_SHARE)
    archive[offset_room] = False
    archived[archive] = np.maximum(created[archive], window.end_ms - 7 * DAY_MS) + rng.integers(
        0, 6 * DAY_MS, int(archive.sum())
    )
    return Rooms(
        kind,
        created,
        archived,
        creator,
        conv[~leaving],
        user[~leaving],
        joined[~leaving],
        conv[leaving],
        user[leaving],
        joined[leaving],
        left,
    )


def with_bots(
    folk: People, room: np.ndarray, user: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Each bot also sits in one to three of the biggest channels (the default room first)."""
    sizes = np.bincount(room)
    biggest = np.argsort(-sizes, kind="stable")[:6]
    bots = np.flatnonzero(folk.is_bot)
    extra_rooms = [biggest[: 1 + int(rng.integers(3))] for _ in bots.tolist()]
    room = np.concatenate([room, *extra_rooms])
    user = np.concatenate([user, np.repeat(bots, [r.size for r in extra_rooms])])
    return room, user
