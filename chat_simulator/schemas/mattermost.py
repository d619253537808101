"""A Mattermost-style schema: "Users", "Channels", "ChannelMembers", "Posts".

What makes it hard for a tool: quoted mixed-case names, varchar(26) random base-32 ids, epoch
milliseconds in bigint columns ("DeleteAt" 0 means not deleted), `NOT NULL DEFAULT ''` text
columns holding '' for unset, no join time on memberships, files shown by "FileIds" (not by
the type), and post types such as 'system_join_channel' that the mapping leaves unnamed.
"""

from __future__ import annotations

import hashlib
from typing import TypedDict, Unpack

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from chat_simulator import text
from chat_simulator.schemas.base import (
    Schema,
    by_index,
    chance,
    constant,
    empty_for_null,
    epoch_ms,
    recode,
)
from chat_simulator.world import LogicalWorld

CHANNEL_TYPES = {"DIRECT": "D", "GROUP": "G", "PRIVATE": "P", "OPEN": "O"}
POST_TYPES = {
    "TEXT": "",
    "IMAGE": "",
    "FILE": "",
    "AUDIO": "",
    "VIDEO": "",
    "BOT": "slack_attachment",
    "JOIN": "system_join_channel",
    "LEAVE": "system_leave_channel",
    "HEADER": "system_header_change",
}
NOTIFY = '{"desktop":"default","email":"default","mark_unread":"all","push":"default"}'


class _ColumnOptions(TypedDict, total=False):
    """The sa.Column keywords `_id` and `_ms` pass on."""

    primary_key: bool
    nullable: bool
    server_default: str


def _id(name: str, **kw: Unpack[_ColumnOptions]) -> sa.Column:
    return sa.Column(name, sa.String(26), **kw)


def _ms(name: str, **kw: Unpack[_ColumnOptions]) -> sa.Column:
    return sa.Column(name, sa.BigInteger, **kw)


def _text(name: str, length: int | None = None) -> sa.Column:
    return sa.Column(name, sa.String(length) if length else sa.Text, nullable=False, server_default="")


def metadata() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "Users",
        md,
        _id("Id", primary_key=True),
        _ms("CreateAt"),
        _ms("UpdateAt"),
        _ms("DeleteAt", nullable=False, server_default="0"),
        sa.Column("Username", sa.String(64), nullable=False, unique=True),
        sa.Column("Email", sa.String(128), nullable=False, unique=True),
        _text("Nickname", 64),
        _text("FirstName", 64),
        _text("LastName", 64),
        _text("Position", 128),
        sa.Column("Roles", sa.String(256), nullable=False, server_default="system_user"),
        sa.Column("Locale", sa.String(5), nullable=False, server_default="en"),
        sa.Column("Timezone", sa.Text),
        _text("Props"),
    )
    sa.Table(
        "Channels",
        md,
        _id("Id", primary_key=True),
        _ms("CreateAt"),
        _ms("UpdateAt"),
        _ms("DeleteAt", nullable=False, server_default="0"),
        sa.Column("TeamId", sa.String(26), nullable=False, server_default=""),
        sa.Column("Type", sa.String(1)),
        _text("DisplayName", 64),
        sa.Column("Name", sa.String(64), nullable=False),
        _text("Header", 1024),
        _text("Purpose", 250),
        _ms("LastPostAt"),
        _ms("TotalMsgCount"),
        _text("CreatorId", 26),
        sa.UniqueConstraint("Name", "TeamId"),
    )
    sa.Table(
        "ChannelMembers",
        md,
        _id("ChannelId", primary_key=True),
        _id("UserId", primary_key=True),
        sa.Column("Roles", sa.String(64), nullable=False, server_default="channel_user"),
        _ms("LastViewedAt"),
        _ms("MsgCount"),
        _ms("MentionCount"),
        sa.Column("NotifyProps", sa.Text, nullable=False, server_default="{}"),
        _ms("LastUpdateAt"),
        sa.Index("idx_channelmembers_user_id", "UserId"),
    )
    sa.Table(
        "Posts",
        md,
        _id("Id", primary_key=True),
        _ms("CreateAt"),
        _ms("UpdateAt"),
        _ms("EditAt", nullable=False, server_default="0"),
        _ms("DeleteAt", nullable=False, server_default="0"),
        sa.Column("IsPinned", sa.Boolean, nullable=False, server_default=sa.false()),
        _id("UserId"),
        _id("ChannelId"),
        _text("RootId", 26),
        _text("OriginalId", 26),
        _text("Message", 65535),
        _text("Type", 26),
        _text("Props"),
        _text("Hashtags", 1000),
        sa.Column("FileIds", sa.String(300), nullable=False, server_default="[]"),
        sa.Column("HasReactions", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Index("idx_posts_channel_id_create_at", "ChannelId", "CreateAt"),
        sa.Index("idx_posts_create_at", "CreateAt"),
        sa.Index("idx_posts_user_id", "UserId"),
        sa.Index("idx_posts_root_id", "RootId"),
    )
    return md


def channel_names(world: LogicalWorld, user_ids: pa.Array, channel_ids: pa.Array) -> pa.Array:
    """Direct channels are named 'a__b' by their members' ids (a self-note 'a__a'), group chats by a
    hash of their members, channels by their handle."""
    conv = world.members["conversation_id"].to_numpy()
    user = user_ids.take(world.members["user_id"]).to_pylist()
    kinds = world.conversations["kind"].to_pylist()
    names = world.conversations["name"].to_pylist()
    members: dict[int, list[str]] = {}
    for c, u in zip(conv.tolist(), user, strict=True):
        if kinds[c] in ("DIRECT", "GROUP"):
            members.setdefault(c, []).append(u)
    out: list[str] = []
    for c, kind in enumerate(kinds):
        ids = sorted(members.get(c, [])) or [channel_ids[c].as_py()]
        if kind == "DIRECT":
            out.append(f"{ids[0]}__{ids[-1]}")
        elif kind == "GROUP":
            out.append(hashlib.sha1(",".join(ids).encode()).hexdigest())
        else:
            out.append(names[c])
    return pa.array(out, pa.string())


def render(world: LogicalWorld, rng: np.random.Generator) -> dict[str, pa.Table]:
    """The logical world as Mattermost rows."""
    u, c, m, msg = world.users, world.conversations, world.members, world.messages
    user_ids = text.random_ids(rng, u.num_rows, 26, text.BASE32)
    channel_ids = text.random_ids(rng, c.num_rows, 26, text.BASE32)
    post_ids = text.random_ids(rng, msg.num_rows, 26, text.BASE32)
    team = text.random_ids(rng, 1, 26, text.BASE32)[0].as_py()
    created, deleted = epoch_ms(u["created_at"]), epoch_ms(u["deleted_at"], unset=0)
    users = pa.table(
        {
            "Id": user_ids,
            "CreateAt": created,
            "UpdateAt": pc.max_element_wise(created, deleted),
            "DeleteAt": deleted,
            "Username": u["username"],
            "Email": u["email"],
            "Nickname": empty_for_null(u["nickname"]),
            "FirstName": empty_for_null(u["first_name"]),
            "LastName": empty_for_null(u["last_name"]),
            "Position": empty_for_null(u["position"]),
            "Roles": pc.if_else(u["is_bot"], "system_user system_post_all", "system_user"),
            "Locale": constant("en", u.num_rows, pa.string()),
            "Timezone": text.join('{"automaticTimezone":"', u["time_zone"], '","useAutomaticTimezone":"true"}'),
            "Props": constant("", u.num_rows, pa.string()),
        }
    )
    kind = recode(c["kind"], CHANNEL_TYPES)
    is_channel = pc.is_in(kind, pa.array(["O", "P"]))
    created_c = epoch_ms(c["created_at"])
    channels = pa.table(
        {
            "Id": channel_ids,
            "CreateAt": created_c,
            "UpdateAt": created_c,
            "DeleteAt": epoch_ms(c["archived_at"], unset=0),
            "TeamId": pc.if_else(is_channel, team, ""),
            "Type": kind,
            "DisplayName": pc.if_else(is_channel, pc.utf8_capitalize(pc.replace_substring(c["name"], "-", " ")), ""),
            "Name": channel_names(world, user_ids, channel_ids),
            "Header": c["header"],
            "Purpose": empty_for_null(c["purpose"]),
            "LastPostAt": epoch_ms(c["last_post_at"], unset=0),
            "TotalMsgCount": c["message_count"],
            "CreatorId": empty_for_null(by_index(user_ids, c["creator_id"])),
        }
    )
    joined = epoch_ms(m["joined_at"])
    members = pa.table(
        {
            "ChannelId": by_index(channel_ids, m["conversation_id"]),
            "UserId": by_index(user_ids, m["user_id"]),
            "Roles": constant("channel_user", m.num_rows, pa.string()),
            "LastViewedAt": joined,
            "MsgCount": constant(0, m.num_rows, pa.int64()),
            "MentionCount": constant(0, m.num_rows, pa.int64()),
            "NotifyProps": constant(NOTIFY, m.num_rows, pa.string()),
            "LastUpdateAt": joined,
        }
    )
    return {
        "Users": users,
        "Channels": channels,
        "ChannelMembers": members,
        "Posts": posts(world, post_ids, user_ids, channel_ids, rng),
    }


def posts(
    world: LogicalWorld, post_ids: pa.Array, user_ids: pa.Array, channel_ids: pa.Array, rng: np.random.Generator
) -> pa.Table:
    """Posts: files in "FileIds", attachments and system details in "Props", '' where unset."""
    msg = world.messages
    n = msg.num_rows
    created, edited, deleted = (
        epoch_ms(msg["created_at"]),
        epoch_ms(msg["edited_at"], unset=0),
        epoch_ms(msg["deleted_at"], unset=0),
    )
    has_file = pc.greater(msg["file_count"], 0)
    files = text.join('["', text.random_ids(rng, n, 26, text.BASE32), '"]')
    kind = msg["kind"]
    props = pc.case_when(
        pc.make_struct(pc.equal(kind, "BOT"), pc.is_in(kind, pa.array(["JOIN", "LEAVE", "HEADER"]))),
        text.join(
            '{"attachments":[{"color":"#2389d7","text":"', pc.utf8_slice_codeunits(msg["content"], 0, 40), '"}]}'
        ),
        text.join('{"username":"', by_index(world.users["username"].combine_chunks(), msg["sender_id"]), '"}'),
        constant("", n, pa.string()),
    )
    return pa.table(
        {
            "Id": post_ids,
            "CreateAt": created,
            "UpdateAt": pc.max_element_wise(created, edited, deleted),
            "EditAt": edited,
            "DeleteAt": deleted,
            "IsPinned": pa.array(chance(rng, n, 0.002)),
            "UserId": by_index(user_ids, msg["sender_id"]),
            "ChannelId": by_index(channel_ids, msg["conversation_id"]),
            "RootId": empty_for_null(by_index(post_ids, msg["root_id"])),
            "OriginalId": constant("", n, pa.string()),
            "Message": msg["content"],
            "Type": recode(kind, POST_TYPES),
            "Props": props,
            "Hashtags": constant("", n, pa.string()),
            "FileIds": pc.if_else(has_file, files, "[]"),
            "HasReactions": pa.array(chance(rng, n, 0.06)),
        }
    )


MAPPING_YAML = """\
# Mattermost-style schema. Post types 'system_join_channel', 'system_leave_channel' and
# 'system_header_change' are left unnamed on purpose (the sampler counts them as OTHER);
# 'other:' tells the generator which raw value to write for OTHER. Files are marked by "FileIds", not by the type, so file posts count as TEXT.
users:
  table: Users
  id: Id
  username: Username
  email: Email
  display_name: Nickname
  created_at: {column: CreateAt, unit: epoch_ms}
  profile_fields: [Nickname, FirstName, LastName, Position]
conversations:
  table: Channels
  id: Id
  type: {column: Type, values: {"D": DIRECT_MESSAGE, "G": GROUP_CHAT, "P": GROUP_CHAT, "O": CHANNEL}}
  name: DisplayName
  created_at: {column: CreateAt, unit: epoch_ms}
members:
  table: ChannelMembers
  conversation_id: ChannelId
  user_id: UserId
messages:
  table: Posts
  id: Id
  conversation_id: ChannelId
  sender_id: UserId
  content: Message
  type: {column: Type, values: {"": TEXT, "slack_attachment": TEXT}, other: system_join_channel}
  created_at: {column: CreateAt, unit: epoch_ms}
"""

SCHEMA = Schema("mattermost", metadata, render, MAPPING_YAML)
