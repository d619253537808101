"""Who is in which conversation and who writes how much of it: membership and message allocation.

Both margins of the user x conversation table hold at once (methods.md "Joint skew"):
- Membership is a bipartite configuration model: every user has a target number of
  conversations (its degree), every conversation a member count; the users' degree "stubs" are
  shuffled onto the conversations' member slots, and a user who lands twice in one conversation
  swaps a stub with a random slot elsewhere (degrees stay exact) until members are distinct.
- Activity targets (stratified draws of messages per sender) go to users in the order of the
  load the membership gives them (`activity_by_load`), so the targets are reachable.
- Messages are allocated by iterative proportional fitting on that incidence: a weight per
  membership, scaled alternately so each conversation's weights add up to its message count and
  each user's to its activity target; then integers by largest remainder inside each conversation
  (conversation totals exact, user totals within rounding and what the membership allows).
Users with no activity target (lurkers) start at a negligible weight: they write only in a
conversation none of whose members is a sender. Every sender is a member by construction.
"""

from __future__ import annotations

import numpy as np

SWAP_ROUNDS = 60  # rounds of stub swaps before the last duplicates are replaced by other users
SWAP_CANDIDATES = 16  # random slots tried per duplicate and round
IPF_ITERATIONS = 40
RERANK_ROUNDS = 2  # measured: each round moves messages-per-sender p50 a few percent closer
LURKER_WEIGHT = 1e-9  # relative weight of a member with no activity target


def segment_index(sizes: np.ndarray) -> np.ndarray:
    """For items grouped by segment, the segment of each item (0, 0, 1, 2, 2, 2, ...)."""
    return np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)


def duplicate_positions(conv: np.ndarray, users: np.ndarray, n_users: int) -> np.ndarray:
    """Slots whose user already appears earlier (in sort order) in the same conversation."""
    key = conv * n_users + users
    order = np.argsort(key, kind="stable")
    return order[1:][key[order][1:] == key[order][:-1]]


def configuration_membership(rng: np.random.Generator, member_counts: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """User of each member slot (grouped by conversation), distinct within a conversation.

    `degrees` (conversations per user) must add up to the number of slots; each user then sits
    in exactly that many conversations, except where swaps could not separate a user from a
    conversation it already holds (huge rooms among few users): those slots go to other users.
    Stubs meet slots at random: assortative matchings (hot senders to busy rooms by activity or
    degree) were measured worse once activity follows the load (see `activity_by_load`).
    """
    slots = int(member_counts.sum())
    if int(degrees.sum()) != slots:
        raise ValueError("degrees must add up to the member slots")
    n_users = degrees.size
    users = np.repeat(np.arange(n_users, dtype=np.int64), degrees)[rng.permutation(slots)]
    conv = segment_index(member_counts)
    for _ in range(SWAP_ROUNDS):
        dup = duplicate_positions(conv, users, n_users)
        if dup.size == 0:
            return users
        partner = swap_partners(rng, conv, users, n_users, dup)
        _, first = np.unique(partner, return_index=True)  # one swap per partner slot
        keep = np.zeros(dup.size, dtype=bool)
        keep[first] = True
        keep &= (partner >= 0) & ~np.isin(partner, dup)
        a, b = dup[keep], partner[keep]
        users[a], users[b] = users[b], users[a]
    return replace_duplicates(rng, conv, users, n_users)


def rank_targets(rng: np.random.Generator, load: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Activity per user: the `targets`, largest first, to the users of largest `load` (ties at random)."""
    order = np.lexsort((rng.random(load.size), -load))
    activity = np.zeros(load.size, dtype=np.float64)
    ranked = np.sort(np.asarray(targets, dtype=np.float64))[::-1][: load.size]
    activity[order[: ranked.size]] = ranked
    return activity


def activity_by_load(
    rng: np.random.Generator,
    member_counts: np.ndarray,
    users: np.ndarray,
    message_counts: np.ndarray,
    n_users: int,
    targets: np.ndarray,
) -> np.ndarray:
    """Activity per user: the drawn `targets` handed out in the order of each user's load.

    The load starts as what a user would write if every conversation split its messages evenly
    among its members, then (RERANK_ROUNDS times) what IPF could give it. Handing the stratified
    targets out in that order keeps their distribution exact and asks IPF only for what the
    membership allows (hot senders are members of many or busy rooms); the members of least
    load write nothing (lurkers), non-members come last.
    """
    conv = segment_index(member_counts)
    member = np.bincount(users, minlength=n_users) > 0
    load = np.bincount(users, (message_counts / np.maximum(member_counts, 1))[conv], n_users)
    activity = rank_targets(rng, np.where(member, load, -1.0), targets)
    for _ in range(RERANK_ROUNDS):
        load = np.bincount(users, fit_weights(conv, users, message_counts, activity), n_users)
        activity = rank_targets(rng, np.where(member, load, -1.0), targets)
    return activity


def swap_partners(
    rng: np.random.Generator, conv: np.ndarray, users: np.ndarray, n_users: int, dup: np.ndarray
) -> np.ndarray:
    """For each duplicate slot, a random slot it can swap with (-1 if none of SWAP_CANDIDATES can):
    neither user may already be in the other's conversation."""
    keys = np.sort(conv * n_users + users)

    def holds(c: np.ndarray, u: np.ndarray) -> np.ndarray:
        key = c * n_users + u
        at = np.minimum(np.searchsorted(keys, key), keys.size - 1)
        return keys[at] == key

    candidates = rng.integers(0, users.size, (dup.size, SWAP_CANDIDATES))
    mine, theirs = users[dup][:, None], users[candidates]
    fits = ~holds(conv[candidates], mine) & ~holds(conv[dup][:, None], theirs)
    pick = np.argmax(fits, axis=1)
    return np.where(fits.any(axis=1), candidates[np.arange(dup.size), pick], -1)


def replace_duplicates(rng: np.random.Generator, conv: np.ndarray, users: np.ndarray, n_users: int) -> np.ndarray:
    """Last resort: duplicates become other members (drawn like stubs, in proportion to degree)
    until each conversation is distinct; uniformly drawn users if that does not settle it."""
    for round_ in range(10_000):
        dup = duplicate_positions(conv, users, n_users)
        if dup.size == 0:
            break
        pool = users[rng.integers(0, users.size, dup.size)]
        users[dup] = pool if round_ < SWAP_ROUNDS else rng.integers(0, n_users, dup.size)
    return users


def fit_weights(
    conv: np.ndarray, users: np.ndarray, counts: np.ndarray, activity: np.ndarray, iterations: int = IPF_ITERATIONS
) -> np.ndarray:
    """Weights per membership whose conversation sums are `counts` and user sums approach `activity`."""
    k, n = counts.size, activity.size
    active = activity > 0
    weight = np.where(active[users], activity[users], LURKER_WEIGHT * max(float(activity.max(initial=1.0)), 1.0))
    row_target = counts.astype(np.float64)
    for _ in range(iterations):
        weight *= (row_target / np.maximum(np.bincount(conv, weight, k), 1e-300))[conv]
        column = np.bincount(users, weight, n)
        scale = np.where(active & (column > 0), activity / np.maximum(column, 1e-300), 1.0)
        weight *= scale[users]
    weight *= (row_target / np.maximum(np.bincount(conv, weight, k), 1e-300))[conv]
    return weight


def round_within(conv: np.ndarray, weight: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Integers per membership adding up to each conversation's count (largest remainder)."""
    base = np.floor(weight).astype(np.int64)
    left = counts - np.bincount(conv, base, counts.size).astype(np.int64)
    order = np.lexsort((base - weight, conv))  # by conversation, largest fraction first
    starts = np.cumsum(np.bincount(conv, minlength=counts.size)) - np.bincount(conv, minlength=counts.size)
    rank = np.arange(order.size) - starts[conv[order]]
    base[order[rank < left[conv[order]]]] += 1
    return base


def allocate_messages(
    member_counts: np.ndarray, users: np.ndarray, counts: np.ndarray, activity: np.ndarray
) -> np.ndarray:
    """Messages written by each membership (grouped by conversation): IPF, then exact rows."""
    conv = segment_index(member_counts)
    return round_within(conv, fit_weights(conv, users, counts, activity), counts)


def order_senders(
    rng: np.random.Generator, members: np.ndarray, sent: np.ndarray, message_counts: np.ndarray
) -> np.ndarray:
    """Sender of each message of consecutive conversations, in a seeded random order per conversation."""
    senders = np.repeat(members, sent)
    conv = segment_index(message_counts)
    shuffled = rng.permutation(senders.size)
    # a stable sort of the shuffled conversation indexes (small integers: a radix sort) keeps
    # each conversation's messages together in random order
    small = conv.astype(np.int16 if message_counts.size < 2**15 else np.int64)
    return senders[shuffled[np.argsort(small[shuffled], kind="stable")]]
