"""The demo's fake *production* database, simulated by `chat_simulator`, never by our generator.

A validator checked against data its own generator made agrees with it by construction. The
demo therefore samples a world the project did not make: an agent-based simulation (heavy-tailed
users, bursts, bots, system messages the canonical types do not name) in the canonical schema,
with PII-looking values (fake e-mails, 555-01xx phone numbers, invented names in messages,
usernames, display names and bios) that the sampler must keep inside. Its six weeks end at
today's midnight (UTC), so sampling with the default `--as-of now` finds it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import sqlalchemy as sa

from shape_pipeline import db
from shape_pipeline.console import Emit, Reporter, fmt_int, silent
from shape_pipeline.errors import DatabaseError, ShapePipelineError

PRODUCTION_SEED = "demo-production-v1"
DEFAULT_PRODUCTION_MESSAGES = 300_000
SCHEMA = "canonical"


def ending_today(today: datetime | None = None) -> datetime:
    """Today's 00:00 UTC (or that of `today`): the end of the simulated weeks."""
    moment = (today or datetime.now(UTC)).astimezone(UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def build_demo_production(
    database_url: str,
    *,
    messages: int = DEFAULT_PRODUCTION_MESSAGES,
    replace: bool = True,
    emit: Emit = silent,
    today: datetime | None = None,
) -> int:
    """Create the fake production database at `database_url`; returns its message count.

    Existing tables of the canonical schema are refused unless `replace`, which drops them in
    the same transaction as the load.
    """
    from chat_simulator import TargetNotEmpty, build_world

    url = db.parse_url(database_url, option="--prod-url")
    engine = db.create_engine(url, option="--prod-url", poolclass=sa.pool.NullPool)
    try:
        db.check_connection(engine)
    finally:
        engine.dispose()
    out = Reporter("Production", emit)
    started = time.perf_counter()
    world = build_world(SCHEMA, messages, PRODUCTION_SEED, ending_today(today))
    try:
        counts = world.load(url.render_as_string(hide_password=False), replace=replace)
    except TargetNotEmpty as exc:
        raise ShapePipelineError(
            f"--prod-url: {db.redact(url)} already holds the chat tables ({str(exc).split(': ', 1)[-1]}); "
            "use --replace to drop them"
        ) from None
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(
            f"building the fake production in {db.redact(url)} failed: {db.short_reason(exc)}"
        ) from None
    out.ok(
        f"Fake production simulated: {fmt_int(counts['users'])} users, {fmt_int(counts['conversations'])} "
        f"conversations, {fmt_int(counts['messages'])} messages ({time.perf_counter() - started:.1f}s)"
    )
    return counts["messages"]
