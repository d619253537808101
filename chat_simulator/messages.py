"""What is said and when: bursty human conversation, bots on a cadence, and system messages.

Human messages follow a Hawkes process in its cluster form: background messages arrive by the
sender's local-time intensity (`clock`), and each message triggers Poisson(0.7) replies within
seconds to minutes (mean burst of about 3.3 messages, long silences in between). The sender of
each message is a member of its conversation, drawn by activity weight; in a two-person
conversation a reply usually comes from the other person. Bots post at a fixed period.
System messages record joins and leaves during the window and header changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chat_simulator import text
from chat_simulator.clock import Window, draw_times
from chat_simulator.population import People
from chat_simulator.rooms import DIRECT, GROUP, OPEN, PRIVATE, Rooms

KINDS: tuple[str, ...] = ("TEXT", "IMAGE", "FILE", "AUDIO", "VIDEO", "BOT", "JOIN", "LEAVE", "HEADER")
TEXT, IMAGE, FILE, AUDIO, VIDEO, BOT, JOIN, LEAVE, HEADER = range(len(KINDS))
HUMAN_KIND_SHARES = np.array([0.884, 0.07, 0.04, 0.0035, 0.0025])
BRANCHING = 0.7
OVERSAMPLE = 1.7  # more background messages than needed; the surplus is thinned away
BOT_SHARE = 0.05
EDITED_SHARE = 0.05
DELETED_SHARE = 0.015
PASTE_SHARE = 0.004
MAX_CONTENT = 16_000
KIND_FACTOR = {DIRECT: 1.0, GROUP: 1.0, PRIVATE: 0.7, OPEN: 0.5}


@dataclass(frozen=True)
class Events:
    """Messages as numpy columns before they are sorted and given ids."""

    conv: np.ndarray
    sender: np.ndarray
    time: np.ndarray
    kind: np.ndarray
    root: np.ndarray  # index of the thread's first message in the same Events, -1 if none

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        shifts = np.cumsum([0] + [p.conv.size for p in parts[:-1]])
        roots = [np.where(p.root >= 0, p.root + s, -1) for p, s in zip(parts, shifts, strict=True)]
        return Events(
            conv=np.concatenate([p.conv for p in parts]),
            sender=np.concatenate([p.sender for p in parts]),
            time=np.concatenate([p.time for p in parts]),
            kind=np.concatenate([p.kind for p in parts]),
            root=np.concatenate(roots),
        )


class Senders:
    """Draws a member of given conversations by activity weight (vectorized inverse CDF)."""

    def __init__(self, folk: People, rooms: Rooms) -> None:
        self.rooms = rooms
        self.starts = rooms.member_starts()
        self.weight = folk.weight[rooms.member_user]
        self.cum = np.concatenate([[0.0], np.cumsum(self.weight)])
        self.total = self.cum[self.starts[1:]] - self.cum[self.starts[:-1]]

    def draw(self, conv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Membership index of the sender of each message in `conv`."""
        lo, hi = self.starts[conv], self.starts[conv + 1] - 1
        x = self.cum[lo] + rng.random(conv.size) * self.total[conv]
        return np.clip(np.searchsorted(self.cum, x, side="right") - 1, lo, hi)

    def size(self, conv: np.ndarray) -> np.ndarray:
        return self.starts[conv + 1] - self.starts[conv]


def human_events(folk: People, rooms: Rooms, window: Window, target: int, rng: np.random.Generator) -> Events:
    """About `target` human messages in reply bursts (before media types are chosen)."""
    senders = Senders(folk, rooms)
    size = senders.size(np.arange(rooms.count))
    factor = np.array([KIND_FACTOR[k] for k in range(4)])[rooms.kind] * np.where(size == 1, 0.5, 1.0)
    rate = factor * senders.total / np.sqrt(np.maximum(size, 1))
    if target <= 0 or rate.sum() <= 0:
        return Events(*(np.zeros(0, np.int64) for _ in range(5)))
    immigrants = rng.multinomial(int(target * (1 - BRANCHING) * OVERSAMPLE) + 1, rate / rate.sum())
    conv = np.repeat(np.arange(rooms.count), immigrants)
    member = senders.draw(conv, rng)
    time = draw_times(window, folk.zone[rooms.member_user[member]], rng)
    parts = [(conv, member, time, np.arange(conv.size))]
    while parts[-1][0].size:
        p_conv, p_member, p_time, p_root = parts[-1]
        n_children = rng.poisson(BRANCHING, p_conv.size)
        c_conv, c_root = np.repeat(p_conv, n_children), np.repeat(p_root, n_children)
        parent = np.repeat(p_member, n_children)
        quick = rng.random(c_conv.size) < 0.7
        delay = rng.exponential(np.where(quick, 40_000.0, 360_000.0)).astype(np.int64) + 1_000
        c_time = np.repeat(p_time, n_children) + delay
        c_member = senders.draw(c_conv, rng)
        pair = senders.size(c_conv) == 2
        partner = np.where(pair, 2 * senders.starts[c_conv] + 1 - parent, c_member)
        other = pair & (rng.random(c_conv.size) < 0.65) & (senders.weight[partner] > 0)
        c_member[other] = partner[other]
        keep = c_time < window.end_ms
        parts.append((c_conv[keep], c_member[keep], c_time[keep], c_root[keep]))
    conv, member, time, root = (np.concatenate(column) for column in zip(*parts, strict=True))
    first = np.arange(conv.size) < parts[0][0].size
    root = np.where(first | (rng.random(conv.size) > 0.35), -1, root)
    user = rooms.member_user[member]
    possible = (time >= rooms.joined_ms[member]) & (time < window.end_ms)
    possible &= (folk.deleted_ms[user] < 0) | (time < folk.deleted_ms[user])
    possible &= (rooms.archived_ms[conv] < 0) | (time < rooms.archived_ms[conv])
    kept = np.flatnonzero(possible)
    if kept.size > target:
        kept = np.sort(rng.choice(kept, target, replace=False))
    position = np.full(conv.size, -1, dtype=np.int64)
    position[kept] = np.arange(kept.size)
    root = np.where(root >= 0, position[np.maximum(root, 0)], -1)[kept]
    return Events(conv[kept], user[kept], time[kept], np.full(kept.size, TEXT), root)


def bot_events(folk: People, rooms: Rooms, window: Window, target: int, rng: np.random.Generator) -> Events:
    """Bots post in their rooms at a regular period (a minute of jitter), together `target` posts."""
    bots = np.flatnonzero(folk.is_bot)
    parts: list[Events] = []
    for bot in bots.tolist():
        convs = rooms.member_conv[rooms.member_user == bot]
        posts = max(1, target // max(bots.size, 1))
        if convs.size == 0:
            continue
        period = (window.end_ms - window.start_ms) // posts
        start = window.start_ms + int(rng.integers(0, period))
        time = start + np.arange(posts) * period + rng.integers(-30_000, 30_000, posts)
        time = np.clip(time, window.start_ms, window.end_ms - 1)
        conv = convs[np.arange(posts) % convs.size]
        alive = (rooms.archived_ms[conv] < 0) | (time < rooms.archived_ms[conv])
        parts.append(
            Events(
                conv[alive],
                np.full(int(alive.sum()), bot),
                time[alive],
                np.full(int(alive.sum()), BOT),
                np.full(int(alive.sum()), -1),
            )
        )
    return Events.concat(parts) if parts else Events(*(np.zeros(0, np.int64) for _ in range(5)))


def system_events(rooms: Rooms, window: Window, rng: np.random.Generator) -> Events:
    """Joins and leaves inside the window, and a few channel header changes."""
    inside = (rooms.joined_ms >= window.start_ms) & (rooms.kind[rooms.member_conv] > GROUP)
    left_join = rooms.left_joined_ms >= window.start_ms
    left_leave = rooms.left_ms >= window.start_ms
    channels = np.flatnonzero((rooms.kind > GROUP) & (np.diff(rooms.member_starts()) > 0))
    changes = np.repeat(channels, rng.poisson(0.3, channels.size))
    starts = rooms.member_starts()
    member = starts[changes] + (rng.random(changes.size) * (starts[changes + 1] - starts[changes])).astype(np.int64)
    lower = np.maximum(rooms.joined_ms[member], window.start_ms)
    when = lower + (rng.random(changes.size) * (window.end_ms - lower)).astype(np.int64)
    conv = np.concatenate([rooms.member_conv[inside], rooms.left_conv[left_join], rooms.left_conv[left_leave], changes])
    user = np.concatenate(
        [rooms.member_user[inside], rooms.left_user[left_join], rooms.left_user[left_leave], rooms.member_user[member]]
    )
    time = np.concatenate([rooms.joined_ms[inside], rooms.left_joined_ms[left_join], rooms.left_ms[left_leave], when])
    kind = np.concatenate(
        [
            np.full(int(inside.sum() + left_join.sum()), JOIN),
            np.full(int(left_leave.sum()), LEAVE),
            np.full(changes.size, HEADER),
        ]
    )
    keep = (time < window.end_ms) & ((rooms.archived_ms[conv] < 0) | (time < rooms.archived_ms[conv]))
    return Events(conv[keep], user[keep], time[keep], kind[keep], np.full(int(keep.sum()), -1))


def events(folk: People, rooms: Rooms, window: Window, target: int, rng: np.random.Generator) -> Events:
    """All messages of the window, about `target` of them, in time order."""
    system = system_events(rooms, window, rng)
    bots = bot_events(folk, rooms, window, round(target * BOT_SHARE), rng)
    humans = human_events(folk, rooms, window, target - system.conv.size - bots.conv.size, rng)
    media = rng.choice(len(HUMAN_KIND_SHARES), humans.kind.size, p=HUMAN_KIND_SHARES / HUMAN_KIND_SHARES.sum())
    humans = Events(humans.conv, humans.sender, humans.time, media, humans.root)
    every = Events.concat([humans, bots, system])
    order = np.lexsort((every.conv, every.time))
    position = np.empty(order.size, dtype=np.int64)
    position[order] = np.arange(order.size)
    root = np.where(every.root >= 0, position[np.maximum(every.root, 0)], -1)
    return Events(every.conv[order], every.sender[order], every.time[order], every.kind[order], root[order])


def content_lengths(kind: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Heavy-tailed body lengths: log-normal text, rare long pastes, media mostly without caption."""
    n = kind.size
    length = np.ceil(rng.lognormal(np.log(38.0), 1.1, n))
    paste = rng.random(n) < PASTE_SHARE
    length[paste] = np.ceil(rng.lognormal(np.log(2500.0), 0.8, int(paste.sum())))
    media = (kind >= IMAGE) & (kind <= VIDEO)
    length[media] = np.where(
        rng.random(int(media.sum())) < 0.65, 0, np.ceil(rng.lognormal(np.log(18.0), 0.7, int(media.sum())))
    )
    bot = kind == BOT
    length[bot] = np.ceil(rng.lognormal(np.log(110.0), 0.35, int(bot.sum())))
    return np.clip(length, 0, MAX_CONTENT).astype(np.int64)


def contents(kind: np.ndarray, sender_names: pa.Array, rng: np.random.Generator) -> tuple[pa.Array, np.ndarray]:
    """Message bodies (system messages name their user) and the new header of header changes."""
    pool = text.prose_pool(rng)
    body = text.prose(pool, np.where(kind >= JOIN, 0, content_lengths(kind, rng)), rng)
    headers = text.prose(pool, rng.integers(12, 80, kind.size) * (kind == HEADER), rng)
    mention = text.join("@", sender_names)
    system = pc.case_when(
        pc.make_struct(pa.array(kind == JOIN), pa.array(kind == LEAVE), pa.array(kind == HEADER)),
        text.join(mention, " joined the channel."),
        text.join(mention, " left the channel."),
        text.join(mention, " updated the channel header to: ", headers),
        body,
    )
    return system, headers


def edits_and_deletes(
    kind: np.ndarray, time: np.ndarray, window: Window, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Epoch-ms edit and soft-delete times (-1 for none) of human messages."""
    human = kind <= VIDEO
    edited = np.where(
        human & (kind == TEXT) & (rng.random(kind.size) < EDITED_SHARE),
        time + rng.lognormal(np.log(90_000.0), 1.5, kind.size).astype(np.int64),
        -1,
    )
    deleted = np.where(
        human & (rng.random(kind.size) < DELETED_SHARE),
        time + rng.lognormal(np.log(600_000.0), 2.0, kind.size).astype(np.int64),
        -1,
    )
    edited[edited >= window.end_ms] = -1
    deleted[deleted >= window.end_ms] = -1
    return edited, deleted
