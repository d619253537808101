"""The physical schemas a simulated world can be rendered into."""

from __future__ import annotations

from chat_simulator.schemas import canonical, mattermost, slack
from chat_simulator.schemas.base import Schema

REGISTRY: dict[str, Schema] = {s.name: s for s in (canonical.SCHEMA, mattermost.SCHEMA, slack.SCHEMA)}
SCHEMAS: tuple[str, ...] = tuple(REGISTRY)


def schema(name: str) -> Schema:
    """The schema called `name` (one of `SCHEMAS`)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown schema {name!r} (choose from {', '.join(SCHEMAS)})") from None
