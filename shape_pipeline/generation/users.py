"""Users: unique synthetic usernames of the drawn lengths, example-domain e-mails, profile fill rates."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shape_pipeline.generation import seeds, text
from shape_pipeline.generation.columns import Chunk, bools, ids, times
from shape_pipeline.generation.ids import uniform
from shape_pipeline.generation.plan import Plan
from shape_pipeline.generation.timeline import US, to_us

# Share of users with each profile field set, where the config does not say (documented).
DEFAULT_PROFILE_SHARES: dict[str, float] = {"display_name": 0.8, "avatar_url": 0.5, "bio": 0.3}
EXTRA_FIELD_SHARE = 0.5
ACCOUNT_AGE_DAYS = 365  # users sign up during the year before the window


def profile_share(plan: Plan, name: str) -> float:
    shares = plan.config.user_generation.profile_field_probabilities
    return float(shares.get(name, DEFAULT_PROFILE_SHARES.get(name, EXTRA_FIELD_SHARE)))


def created_us(plan: Plan, user_ids: np.ndarray) -> np.ndarray:
    """Sign-up times (µs) in the year before the window, growing with the id as an app's
    sequence would: id i in the i-th of n equal slices of the year, at a point within it that
    is a pure function of (seed, id), so time-ordered user ids can be made in any table."""
    n = plan.users
    within = uniform(plan.seed, "users.created_at", user_ids)
    age = (n - np.asarray(user_ids, dtype=np.float64) + within) / n
    return to_us(plan.window_start) - 1 - (age * ACCOUNT_AGE_DAYS * 86_400 * US).astype(np.int64)


def user_chunk(plan: Plan, shard: int, pool: np.ndarray) -> Chunk:
    """The users of one shard (ids are global: shard * USERS_PER_SHARD + 1 ...)."""
    rng = seeds.stream(plan.seed, seeds.USERS, shard)
    rows = plan.user_slice(shard)
    n = rows.stop - rows.start
    id_array = ids(rows.start, n)
    letters = text.name_letters() if plan.content_style == "pii_demo" else None
    names = text.usernames(plan.username_length[rows], plan.username_rank[rows], plan.username_suffix, rng, letters)
    email = text.join(names, "@" + text.EMAIL_DOMAIN)
    first, last = text.choose(text.invented_names(), rng, n), text.choose(text.invented_names(), rng, n)
    display = text.join(first, " ", last)
    avatar = text.join("https://" + text.EMAIL_DOMAIN + "/avatars/", pc.cast(id_array, pa.string()), ".png")
    bio_lengths = rng.integers(20, 161, n)
    bio = text.pool_text(pool, bio_lengths, rng)
    if plan.content_style == "pii_demo":
        contact = text.join(
            "Reach me at ",
            pc.utf8_lower(first),
            ".",
            pc.utf8_lower(last),
            "@" + text.DEMO_EMAIL_DOMAIN,
            " or ",
            text.phone_numbers(rng, n),
        )
        bio = pc.if_else(bools(rng.random(n) < 0.5), contact, bio)
    created = created_us(plan, np.arange(rows.start + 1, rows.stop + 1, dtype=np.int64))
    columns = {
        "id": id_array,
        "username": names,
        "email": email,
        "display_name": text.null_where(display, rng.random(n) >= profile_share(plan, "display_name")),
        "avatar_url": text.null_where(avatar, rng.random(n) >= profile_share(plan, "avatar_url")),
        "bio": text.null_where(bio, rng.random(n) >= profile_share(plan, "bio")),
        "created_at": times(created),
    }
    for name in plan.extra_profile_fields:
        if name in columns:
            continue
        value = text.pool_text(pool, rng.integers(8, 41, n), rng)
        columns[name] = text.null_where(value, rng.random(n) >= profile_share(plan, name))
    return Chunk({"users": pa.table(columns)})
