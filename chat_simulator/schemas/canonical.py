"""The project's canonical schema (exactly its columns), with 'SYSTEM' messages it does not name."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from chat_simulator.schemas.base import Schema, recode
from chat_simulator.world import LogicalWorld

CONVERSATION_TYPES = {"DIRECT": "DIRECT_MESSAGE", "GROUP": "GROUP_CHAT", "PRIVATE": "GROUP_CHAT", "OPEN": "CHANNEL"}
MESSAGE_TYPES = {
    "TEXT": "TEXT",
    "IMAGE": "IMAGE",
    "FILE": "FILE",
    "AUDIO": "AUDIO",
    "VIDEO": "VIDEO",
    "BOT": "TEXT",
    "JOIN": "SYSTEM",
    "LEAVE": "SYSTEM",
    "HEADER": "SYSTEM",
}


def metadata() -> sa.MetaData:
    """users, conversations, conversation_members, messages: the canonical columns, keys and indexes."""
    md = sa.MetaData()
    ts = sa.DateTime(timezone=True)
    sa.Table(
        "users",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("email", sa.String(255), nullable=False, unique=True),
        sa.Column("display_name", sa.String(128)),
        sa.Column("avatar_url", sa.Text),
        sa.Column("bio", sa.Text),
        sa.Column("created_at", ts, nullable=False),
    )
    sa.Table(
        "conversations",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("created_at", ts, nullable=False),
    )
    sa.Table(
        "conversation_members",
        md,
        sa.Column("conversation_id", sa.BigInteger, sa.ForeignKey("conversations.id"), primary_key=True),
        sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("joined_at", ts, nullable=False),
        sa.Index("ix_conversation_members_user", "user_id"),
    )
    sa.Table(
        "messages",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("conversation_id", sa.BigInteger, sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("sender_id", sa.BigInteger, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        sa.Index("ix_messages_sender", "sender_id"),
    )
    return md


def one_based(values: pa.ChunkedArray) -> pa.Array:
    """Serial ids start at 1."""
    return pc.add(values, 1)


def render(world: LogicalWorld, rng: np.random.Generator) -> dict[str, pa.Table]:
    """The logical world as canonical rows (soft-deleted rows stay: the schema has no such column)."""
    u, c, m, msg = world.users, world.conversations, world.members, world.messages
    return {
        "users": pa.table(
            {
                "id": one_based(u["id"]),
                "username": u["username"],
                "email": u["email"],
                "display_name": u["display_name"],
                "avatar_url": u["avatar_url"],
                "bio": u["bio"],
                "created_at": u["created_at"],
            }
        ),
        "conversations": pa.table(
            {
                "id": one_based(c["id"]),
                "type": recode(c["kind"], CONVERSATION_TYPES),
                "name": c["name"],
                "created_at": c["created_at"],
            }
        ),
        "conversation_members": pa.table(
            {
                "conversation_id": one_based(m["conversation_id"]),
                "user_id": one_based(m["user_id"]),
                "joined_at": m["joined_at"],
            }
        ),
        "messages": pa.table(
            {
                "id": one_based(msg["id"]),
                "conversation_id": one_based(msg["conversation_id"]),
                "sender_id": one_based(msg["sender_id"]),
                "type": recode(msg["kind"], MESSAGE_TYPES),
                "content": msg["content"],
                "created_at": msg["created_at"],
            }
        ),
    }


MAPPING_YAML = """\
# The canonical schema needs no mapping file; this one says the same. 'SYSTEM' messages are
# left unnamed on purpose: the sampler counts them as OTHER.
users:
  table: users
  id: id
  username: username
  email: email
  display_name: display_name
  created_at: created_at
  profile_fields: [display_name, avatar_url, bio]
conversations:
  table: conversations
  id: id
  type: {column: type, values: {DIRECT_MESSAGE: DIRECT_MESSAGE, GROUP_CHAT: GROUP_CHAT, CHANNEL: CHANNEL}}
  name: name
  created_at: created_at
members:
  table: conversation_members
  conversation_id: conversation_id
  user_id: user_id
  joined_at: joined_at
messages:
  table: messages
  id: id
  conversation_id: conversation_id
  sender_id: sender_id
  content: content
  type: {column: type, values: {TEXT: TEXT, IMAGE: IMAGE, FILE: FILE, AUDIO: AUDIO, VIDEO: VIDEO}, default: TEXT}
  created_at: created_at
"""

SCHEMA = Schema("canonical", metadata, render, MAPPING_YAML, dialects=("postgresql", "sqlite"))
