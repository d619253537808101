"""A Slack/Rocket.Chat-style schema: accounts, channels, channel_members, messages.

What makes it hard for a tool: uuid ids, timestamptz columns, text enums ('im', 'mpim',
'group', 'channel'; a NULL subtype for a plain message), jsonb columns, and NOT NULL columns
with defaults that a mapping never mentions (`tz text NOT NULL DEFAULT 'UTC'`,
`is_archived boolean NOT NULL DEFAULT false`, ...). System subtypes stay unnamed.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from chat_simulator import text
from chat_simulator.schemas.base import Schema, by_index, chance, constant, empty_for_null, recode
from chat_simulator.world import LogicalWorld

KINDS = {"DIRECT": "im", "GROUP": "mpim", "PRIVATE": "group", "OPEN": "channel"}
SUBTYPES: dict[str, str | None] = {
    "TEXT": None,
    "IMAGE": "image",
    "FILE": "file_share",
    "AUDIO": "audio_clip",
    "VIDEO": "video_clip",
    "BOT": "bot_message",
    "JOIN": "channel_join",
    "LEAVE": "channel_leave",
    "HEADER": "channel_topic",
}
TS = sa.DateTime(timezone=True)


def metadata() -> sa.MetaData:
    md = sa.MetaData()
    uuid = UUID(as_uuid=False)
    sa.Table(
        "accounts",
        md,
        sa.Column("id", uuid, primary_key=True),
        sa.Column("handle", sa.Text, nullable=False, unique=True),
        sa.Column("email", sa.Text),
        sa.Column("real_name", sa.Text),
        sa.Column("display_name", sa.Text, nullable=False, server_default=""),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("tz", sa.Text, nullable=False, server_default="UTC"),
        sa.Column("is_bot", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("profile", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created", TS, nullable=False),
        sa.Column("deleted_at", TS),
    )
    sa.Table(
        "channels",
        md,
        sa.Column("id", uuid, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("topic", sa.Text, nullable=False, server_default=""),
        sa.Column("purpose", sa.Text),
        sa.Column("is_archived", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("creator", uuid),
        sa.Column("created", TS, nullable=False),
        sa.CheckConstraint("kind IN ('im', 'mpim', 'group', 'channel')", name="channels_kind_check"),
    )
    sa.Table(
        "channel_members",
        md,
        sa.Column("channel", uuid, primary_key=True),
        sa.Column("account", uuid, primary_key=True),
        sa.Column("joined", TS, nullable=False),
        sa.Column("notifications", sa.Text, nullable=False, server_default="default"),
        sa.Index("channel_members_account_idx", "account"),
    )
    sa.Table(
        "messages",
        md,
        sa.Column("id", uuid, primary_key=True),
        sa.Column("channel", uuid, nullable=False),
        sa.Column("author", uuid, nullable=False),
        sa.Column("subtype", sa.Text),
        sa.Column("body", sa.Text, nullable=False, server_default=""),
        sa.Column("attachments", JSONB),
        sa.Column("reactions", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("thread_root", uuid),
        sa.Column("sent_at", TS, nullable=False),
        sa.Column("edited_at", TS),
        sa.Column("deleted_at", TS),
        sa.Index("messages_channel_sent_at_idx", "channel", "sent_at"),
        sa.Index("messages_author_idx", "author"),
    )
    return md


def render(world: LogicalWorld, rng: np.random.Generator) -> dict[str, pa.Table]:
    """The logical world as Slack-style rows."""
    u, c, m, msg = world.users, world.conversations, world.members, world.messages
    account_ids, channel_ids, message_ids = (text.uuid4s(rng, t.num_rows) for t in (u, c, msg))
    accounts = pa.table(
        {
            "id": account_ids,
            "handle": u["username"],
            "email": pc.if_else(u["is_bot"], pa.scalar(None, pa.string()), u["email"]),
            "real_name": u["display_name"],
            "display_name": empty_for_null(u["nickname"]),
            "title": empty_for_null(u["position"]),
            "tz": u["time_zone"],
            "is_bot": u["is_bot"],
            "profile": pc.if_else(
                pc.is_null(u["avatar_url"]), "{}", text.join('{"image_72":"', pc.fill_null(u["avatar_url"], ""), '"}')
            ),
            "created": u["created_at"],
            "deleted_at": u["deleted_at"],
        }
    )
    channels = pa.table(
        {
            "id": channel_ids,
            "kind": recode(c["kind"], KINDS),
            "name": c["name"],
            "topic": c["header"],
            "purpose": c["purpose"],
            "is_archived": pc.is_valid(c["archived_at"]),
            "creator": by_index(account_ids, c["creator_id"]),
            "created": c["created_at"],
        }
    )
    members = pa.table(
        {
            "channel": by_index(channel_ids, m["conversation_id"]),
            "account": by_index(account_ids, m["user_id"]),
            "joined": m["joined_at"],
            "notifications": constant("default", m.num_rows, pa.string()),
        }
    )
    n = msg.num_rows
    kind = msg["kind"]
    attachments = pc.case_when(
        pc.make_struct(pc.greater(msg["file_count"], 0), pc.equal(kind, "BOT")),
        text.join(
            '[{"kind":"',
            pc.utf8_lower(kind),
            '","name":"upload-',
            pc.cast(msg["id"], pa.string()),
            '","size":',
            pc.cast(pa.array(rng.integers(1_000, 9_000_000, n)), pa.string()),
            "}]",
        ),
        text.join('[{"color":"#36a64f","fallback":"', pc.utf8_slice_codeunits(msg["content"], 0, 40), '"}]'),
        pa.nulls(n, pa.string()),
    )
    reacted = chance(rng, n, 0.06)
    messages = pa.table(
        {
            "id": message_ids,
            "channel": by_index(channel_ids, msg["conversation_id"]),
            "author": by_index(account_ids, msg["sender_id"]),
            "subtype": recode(kind, SUBTYPES),
            "body": msg["content"],
            "attachments": attachments,
            "reactions": pc.if_else(pa.array(reacted), '[{"name":"thumbsup","count":2}]', "[]"),
            "thread_root": by_index(message_ids, msg["root_id"]),
            "sent_at": msg["created_at"],
            "edited_at": msg["edited_at"],
            "deleted_at": msg["deleted_at"],
        }
    )
    return {"accounts": accounts, "channels": channels, "channel_members": members, "messages": messages}


MAPPING_YAML = """\
# Slack/Rocket.Chat-style schema. A plain message has a NULL subtype (default: TEXT);
# 'channel_join', 'channel_leave' and 'channel_topic' are left unnamed (counted as OTHER);
# 'other:' tells the generator which raw value to write for OTHER.
users:
  table: accounts
  id: id
  username: handle
  email: email
  display_name: real_name
  created_at: created
  profile_fields: [real_name, display_name, title]
conversations:
  table: channels
  id: id
  type: {column: kind, values: {"im": DIRECT_MESSAGE, "mpim": GROUP_CHAT, "group": GROUP_CHAT, "channel": CHANNEL}}
  name: name
  created_at: created
members:
  table: channel_members
  conversation_id: channel
  user_id: account
  joined_at: joined
messages:
  table: messages
  id: id
  conversation_id: channel
  sender_id: author
  content: body
  type:
    column: subtype
    values: {"image": IMAGE, "file_share": FILE, "audio_clip": AUDIO, "video_clip": VIDEO, "bot_message": TEXT}
    default: TEXT
    other: channel_join
  created_at: sent_at
"""

SCHEMA = Schema("slack", metadata, render, MAPPING_YAML)
