"""A tiny chat dataset with exactly known answers, in the canonical schema and in a mapped one.

The window is 2025-01-01T00:00Z <= t < 2025-01-31T00:00Z (30 days, `--as-of 2025-01-31`).
Canary PII (e-mail addresses, phone numbers, names, a raw enum value) is planted in every text
column; none of it may appear in a result row, an exported file, a log line or metadata.
The expected values the tests assert are worked out by hand in the comments below.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from shape_pipeline.mapping import canonical_metadata, load_mapping

WINDOW_START = datetime(2025, 1, 1, tzinfo=UTC)
WINDOW_END = datetime(2025, 1, 31, tzinfo=UTC)

CANARY_EMAIL = "alice.canary@example.com"
CANARY_PHONE = "555-0142"
CANARY_NAME = "Alice Canaryperson"
CANARY_CONTENT = f"email {CANARY_EMAIL} or call {CANARY_PHONE}"
CANARY_RAW_TYPE = "secret-alice-room"  # a raw conversation type the mapping does not name
CANARY_RAW_KIND = "weird-raw-kind"  # a raw message type the mapping does not name
CANARIES = (
    CANARY_EMAIL,
    CANARY_PHONE,
    CANARY_NAME,
    "Canaryperson",
    CANARY_RAW_TYPE,
    CANARY_RAW_KIND,
    "oscar_the_canary",
)


def _t(*args: int, micro: int = 0) -> datetime:
    return datetime(*args, tzinfo=UTC).replace(microsecond=micro)


# (id, username, display_name, avatar_url, bio, created_at)
USERS = [
    (1, "alice", CANARY_NAME, "https://img.example.org/alice.png", f"call {CANARY_PHONE}", _t(2024, 12, 1)),
    (2, "bob", "Bob Canaryperson", None, "likes tea", _t(2024, 12, 1)),
    (3, "carol", "Carol", None, "", _t(2024, 12, 1)),
    (4, "dave", "Dave", None, "a short bio", _t(2024, 12, 1)),
    (5, "eve", "", None, "a short bio", _t(2024, 12, 1)),
    (6, "frank", None, None, "a short bio", _t(2024, 12, 1)),
    (7, "grace", "Grace", "https://img.example.org/g.png", None, _t(2024, 12, 1)),
    (8, "heidi", "Heidi", "https://img.example.org/h.png", "a short bio", _t(2024, 12, 1)),
    (9, "ivan", "Ivan", None, None, _t(2024, 12, 1)),
    (10, "judy", "Judy", None, None, _t(2024, 12, 1)),
    (11, "mallory", "Mallory", None, None, _t(2024, 12, 1)),
    (12, "oscar_the_canary", "Oscar", None, None, _t(2025, 1, 30, 23, 59, 59)),
    (13, "trent", "Trent", None, None, _t(2025, 2, 5)),  # created after the window: not counted
]
# Users counted: 1..12. Username lengths 5,3,5,4,3,5,5,5,4,4,7,16 -> 3:2, 4:3, 5:5, 7:1, 16:1.
# display_name set (not null, not empty): 10 of 12; avatar_url: 3; bio: 6 (empty string is unset).

# (id, raw type, name)
CONVERSATIONS = [
    (1, "DIRECT_MESSAGE", "alice & bob"),
    (2, "GROUP_CHAT", "Canaryperson family"),
    (3, "CHANNEL", "announcements"),
    (4, "DIRECT_MESSAGE", "old dm"),  # only messages outside the window
    (5, CANARY_RAW_TYPE, "secret"),  # unknown raw type -> OTHER
]
MEMBERS = {1: [1, 2], 2: [1, 2, 3, 4], 3: list(range(1, 11)), 4: [5, 6], 5: [11, 12, 1]}

# (id, conversation, sender, raw type, content, created_at)
MESSAGES = [
    (1, 1, 1, "TEXT", "hi", _t(2025, 1, 1)),  # exactly window_start: inside; Wed (2) 00h
    (2, 1, 2, "TEXT", CANARY_CONTENT, _t(2025, 1, 1, 0, 0, 30)),  # gap 30
    (3, 1, 1, "IMAGE", "", _t(2025, 1, 1, 0, 1, 30, micro=900_000)),  # gap 60.9 -> 60
    (4, 2, 3, "TEXT", "hello world", _t(2025, 1, 6, 10)),  # Mon (0) 10h
    (5, 2, 4, "FILE", "report", _t(2025, 1, 6, 10)),  # same instant: gap 0
    (6, 2, 3, "TEXT", "x" * 100, _t(2025, 1, 6, 12)),  # gap 7200
    (7, 2, 1, "AUDIO", "ok", _t(2025, 1, 12, 23, 59, 59)),  # Sun (6) 23h; gap 561599
    (8, 3, 5, "VIDEO", "vid", _t(2025, 1, 30, 23, 59, 59, micro=999_000)),  # Thu (3) 23h, last inside
    (9, 5, 11, CANARY_RAW_KIND, "see you", _t(2025, 1, 15, 8)),  # unknown kind -> OTHER; Wed 08h
    (10, 5, 11, "TEXT", "yo", _t(2025, 1, 15, 8, 0, 5)),  # gap 5
    (11, 1, 1, "TEXT", "before", _t(2024, 12, 31, 23, 59, 59)),  # just before the window
    (12, 4, 5, "TEXT", "at end", _t(2025, 1, 31)),  # exactly window_end: outside
    (13, 4, 6, "TEXT", "long ago", _t(2024, 12, 15)),
]
# In the window: messages 1-10 in conversations 1, 2, 3, 5 (4 conversations).
# Messages per conversation: 3, 4, 1, 2. Per sender: u1 3, u2 1, u3 2, u4 1, u5 1, u11 2.
# Gaps: 30, 60, 0, 7200, 561599, 5. Content lengths: 2, len(CANARY_CONTENT), 0, 11, 6, 100, 2, 3, 7, 2.


def build_canonical(engine: sa.Engine) -> None:
    """The dataset in the canonical schema (the demo's and the generator's)."""
    md = canonical_metadata()
    md.create_all(engine)
    t = md.tables
    with engine.begin() as conn:
        conn.execute(
            t["users"].insert(),
            [
                dict(
                    id=i, username=u, email=f"{u}.canary@example.com", display_name=d, avatar_url=a, bio=b, created_at=c
                )
                for i, u, d, a, b, c in USERS
            ],
        )
        conn.execute(
            t["conversations"].insert(),
            [dict(id=i, type=ty, name=n, created_at=_t(2024, 11, 1)) for i, ty, n in CONVERSATIONS],
        )
        conn.execute(
            t["conversation_members"].insert(),
            [dict(conversation_id=c, user_id=u, joined_at=_t(2024, 11, 2)) for c, us in MEMBERS.items() for u in us],
        )
        conn.execute(
            t["messages"].insert(),
            [
                dict(id=i, conversation_id=c, sender_id=s, type=ty, content=x, created_at=at)
                for i, c, s, ty, x, at in MESSAGES
            ],
        )


MAPPING_YAML = """
users:
  table: User
  id: id
  username: handle
  email: email
  created_at: createdAt
  profile_fields: [displayName, avatarUrl, bio]
conversations:
  table: Conversation
  id: id
  type: {column: kind, values: {dm: DIRECT_MESSAGE, group: GROUP_CHAT, channel: CHANNEL}}
  created_at: {column: createdAt, unit: epoch_s}
members:
  table: ConversationParticipant
  conversation_id: conversationId
  user_id: userId
messages:
  table: Message
  id: id
  conversation_id: conversationId
  sender_id: user
  content: body
  type: {column: kind, values: {text: TEXT, image: IMAGE, file: FILE, audio: AUDIO, video: VIDEO}, default: TEXT}
  created_at: {column: sentAt, unit: epoch_ms}
"""

_RAW_CONV = {"DIRECT_MESSAGE": "dm", "GROUP_CHAT": "group", "CHANNEL": "channel"}
_RAW_MSG = {"TEXT": "text", "IMAGE": "image", "FILE": "file", "AUDIO": "audio", "VIDEO": "video"}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def write_mapping(folder: Path) -> Path:
    path = folder / "mapping.yaml"
    path.write_text(MAPPING_YAML, encoding="utf-8")
    load_mapping(path)  # the fixture itself must be a valid mapping
    return path


def build_mapped(engine: sa.Engine) -> None:
    """The same data in an app's own schema: quoted mixed-case names, a reserved word ("user"),
    varchar ids, epoch-second and epoch-millisecond times, lower-case raw enum values; the
    first message's kind is NULL (the mapping's default TEXT applies)."""
    md = sa.MetaData()
    user = sa.Table(
        "User",
        md,
        sa.Column("id", sa.String(20), primary_key=True),
        sa.Column("handle", sa.String(64)),
        sa.Column("email", sa.String(255)),
        sa.Column("displayName", sa.String(128)),
        sa.Column("avatarUrl", sa.Text),
        sa.Column("bio", sa.Text),
        sa.Column("createdAt", sa.DateTime(timezone=True)),
    )
    conv = sa.Table(
        "Conversation",
        md,
        sa.Column("id", sa.String(20), primary_key=True),
        sa.Column("kind", sa.String(40)),
        sa.Column("title", sa.Text),
        sa.Column("createdAt", sa.BigInteger),
    )
    part = sa.Table(
        "ConversationParticipant",
        md,
        sa.Column("conversationId", sa.String(20)),
        sa.Column("userId", sa.String(20)),
    )
    msg = sa.Table(
        "Message",
        md,
        sa.Column("id", sa.String(20), primary_key=True),
        sa.Column("conversationId", sa.String(20)),
        sa.Column("user", sa.String(20)),
        sa.Column("kind", sa.String(40)),
        sa.Column("body", sa.Text),
        sa.Column("sentAt", sa.BigInteger),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            user.insert(),
            [
                {
                    "id": f"usr_{u}",
                    "handle": u,
                    "email": f"{u}.canary@example.com",
                    "displayName": d,
                    "avatarUrl": a,
                    "bio": b,
                    "createdAt": c,
                }
                for _, u, d, a, b, c in USERS
            ],
        )
        conn.execute(
            conv.insert(),
            [
                {"id": f"cnv_{i}", "kind": _RAW_CONV.get(ty, ty), "title": n, "createdAt": 1_730_419_200}
                for i, ty, n in CONVERSATIONS
            ],
        )
        names = {i: u for i, u, *_ in USERS}
        conn.execute(
            part.insert(),
            [{"conversationId": f"cnv_{c}", "userId": f"usr_{names[u]}"} for c, us in MEMBERS.items() for u in us],
        )
        conn.execute(
            msg.insert(),
            [
                {
                    "id": f"msg_{i}",
                    "conversationId": f"cnv_{c}",
                    "user": f"usr_{names[s]}",
                    "kind": None if i == 1 else _RAW_MSG.get(ty, ty),
                    "body": x,
                    "sentAt": _ms(at),
                }
                for i, c, s, ty, x, at in MESSAGES
            ],
        )
