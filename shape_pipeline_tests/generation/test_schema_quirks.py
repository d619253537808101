"""Real-schema quirks on the write side: OTHER and unnamed categories, NOT NULL DEFAULT '' columns."""

from __future__ import annotations

import pyarrow as pa
import pytest
import sqlalchemy as sa

from shape_pipeline.db import create_engine
from shape_pipeline.generation.categories import fold_shares
from shape_pipeline.generation.generate import generate_dataset
from shape_pipeline.generation.unset_values import UnsetRule, default_literal, unset_rule
from shape_pipeline_tests.generation.conftest import make_config
from shape_pipeline_tests.generation.test_targets import query

QUIRKY_DDL = """
CREATE TABLE "Users" ("Id" varchar(26) PRIMARY KEY, "Username" varchar(64) NOT NULL,
    "Nickname" varchar(64) NOT NULL DEFAULT '', "Position" varchar(128) NOT NULL DEFAULT 'none'::character varying,
    "Bio" text NOT NULL, "Theme" text NOT NULL, "Props" text NOT NULL DEFAULT '{}',
    "CreateAt" bigint NOT NULL, "DeleteAt" bigint NOT NULL DEFAULT 0);
CREATE TABLE "Channels" ("Id" varchar(26) PRIMARY KEY, "Type" varchar(1) NOT NULL,
    "DisplayName" varchar(64) NOT NULL DEFAULT '', "CreateAt" bigint NOT NULL,
    "Name" varchar(64) NOT NULL, "TeamId" varchar(26) NOT NULL DEFAULT '', UNIQUE ("Name", "TeamId"));
CREATE TABLE "ChannelMembers" ("ChannelId" varchar(26) NOT NULL, "UserId" varchar(26) NOT NULL,
    PRIMARY KEY ("ChannelId", "UserId"));
CREATE TABLE "Posts" ("Id" varchar(26) PRIMARY KEY, "ChannelId" varchar(26) NOT NULL,
    "UserId" varchar(26) NOT NULL, "Message" text NOT NULL DEFAULT '', "Type" varchar(26) NOT NULL DEFAULT '',
    "CreateAt" bigint NOT NULL);
"""

QUIRKY_MAPPING = """
users:
  table: Users
  id: Id
  username: Username
  display_name: Nickname
  created_at: {column: CreateAt, unit: epoch_ms}
  profile_fields: [Nickname, Position, Bio]
conversations:
  table: Channels
  id: Id
  type: {column: Type, values: {D: DIRECT_MESSAGE, P: GROUP_CHAT, O: CHANNEL}}
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
  type: {column: Type, values: {"": TEXT, image: IMAGE, file: FILE}OTHER_KEY}
  created_at: {column: CreateAt, unit: epoch_ms}
"""


def _config_with_other():
    config = make_config()
    msg = config.message_generation
    conv = config.conversation_generation
    return config.model_copy(
        update={
            "message_generation": msg.model_copy(
                update={
                    "type_distribution": {
                        "TEXT": 0.8,
                        "IMAGE": 0.1,
                        "FILE": 0.02,
                        "AUDIO": 0.01,
                        "VIDEO": 0.01,
                        "OTHER": 0.06,
                    }
                }
            ),
            "conversation_generation": conv.model_copy(
                update={"type_distribution": {"DIRECT_MESSAGE": 0.7, "GROUP_CHAT": 0.2, "CHANNEL": 0.05, "OTHER": 0.05}}
            ),
        }
    )


@pytest.fixture
def quirky(make_pg_database, tmp_path):
    url = make_pg_database("quirky")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(QUIRKY_DDL)
    engine.dispose()
    return url, tmp_path / "mapping.yaml"


def test_fold_shares_moves_unwritable_share_proportionally():
    shares, moved = fold_shares({"TEXT": 0.6, "IMAGE": 0.2, "OTHER": 0.2}, {"TEXT", "IMAGE"})
    assert moved == {"OTHER": 0.2}
    assert shares["OTHER"] == 0.0
    assert shares["TEXT"] == pytest.approx(0.75) and shares["IMAGE"] == pytest.approx(0.25)
    assert sum(shares.values()) == pytest.approx(1.0)
    even, _ = fold_shares({"A": 0.0, "B": 0.0, "OTHER": 1.0}, {"A", "B"})
    assert even == pytest.approx({"A": 0.5, "B": 0.5, "OTHER": 0.0})
    same, none = fold_shares({"A": 0.5, "B": 0.5}, {"A", "B"})
    assert same == {"A": 0.5, "B": 0.5} and none == {}


def test_default_literals_are_read_from_the_reflected_column(quirky):
    url, _ = quirky
    engine = create_engine(url)
    users = sa.Table("Users", sa.MetaData(), autoload_with=engine)
    engine.dispose()
    assert default_literal(users.c.Nickname) == ""
    assert default_literal(users.c.Position) == "none"
    assert default_literal(users.c.Props) == "{}"
    assert default_literal(users.c.DeleteAt) == 0
    assert unset_rule(users.c.Id) is not None and unset_rule(users.c.Username).value == ""
    assert unset_rule(users.c.Bio) == UnsetRule("", False)  # text without a default: ''
    nullable = sa.Column("x", sa.Text, nullable=True)
    assert unset_rule(nullable) is None


def test_unset_rule_leaves_an_all_unset_chunk_to_the_server_default():
    rule = UnsetRule("none", True)
    assert rule.apply(pa.array([None, None], pa.string())) is None
    assert rule.apply(pa.array(["a", None], pa.string())).to_pylist() == ["a", "none"]
    assert UnsetRule("", False).apply(pa.array([None], pa.string())).to_pylist() == [""]


def test_other_without_a_raw_value_moves_its_share_and_not_null_columns_get_their_unset_value(quirky):
    url, mapping = quirky
    mapping.write_text(QUIRKY_MAPPING.replace("OTHER_KEY", ""))
    lines: list[str] = []
    result = generate_dataset(
        _config_with_other(),
        target_messages=20_000,
        seed="quirks",
        database_url=url,
        mapping_path=mapping,
        emit=lines.append,
    )
    assert result.rows["messages"] == 20_000
    assert set(result.moved_shares) == {"messages.OTHER", "messages.AUDIO", "messages.VIDEO", "conversations.OTHER"}
    assert result.moved_shares["messages.OTHER"] == pytest.approx(0.06)
    warned = [line for line in lines if "⚠" in line]
    assert any("messages.type" in w and "OTHER 6.0%" in w and "8.0% of messages" in w for w in warned)
    assert any("Users.Theme" in w and "''" in w for w in warned)
    assert result.warnings == [w.split("⚠ ", 1)[1] for w in warned]
    kinds = dict(query(url, 'SELECT "Type", count(*) FROM "Posts" GROUP BY 1'))
    assert set(kinds) <= {"", "image", "file"}
    assert kinds[""] / 20_000 == pytest.approx(0.8 / 0.92, abs=0.03)  # TEXT grew in proportion
    assert {t for (t,) in query(url, 'SELECT DISTINCT "Type" FROM "Channels"')} <= {"D", "P", "O"}
    # NOT NULL profile columns: unset is '' (Nickname: DEFAULT ''), 'none' (Position), '' (Bio: no default).
    nick, pos, bio, theme = query(
        url,
        """SELECT avg(("Nickname" = '')::int), avg(("Position" = 'none')::int), avg(("Bio" = '')::int),
                  count(DISTINCT "Theme") FROM "Users" """,
    )[0]
    shares = make_config().user_generation.profile_field_probabilities
    assert float(nick) == pytest.approx(1 - shares["display_name"], abs=0.05)
    assert 0.3 < float(pos) < 0.7 and 0.0 < float(bio) < 1.0 and theme == 1
    assert query(url, """SELECT count(*) FROM "Channels" WHERE "Type" = 'D' AND "DisplayName" <> ''""") == [(0,)]
    # An uncovered NOT NULL column inside a UNIQUE constraint gets distinct values, not one constant.
    names, rows = query(url, 'SELECT count(DISTINCT "Name"), count(*) FROM "Channels"')[0]
    assert names == rows == result.rows["conversations"]
    assert any("Channels.Name: unique text" in w for w in warned)


def test_other_with_a_raw_value_in_the_mapping_is_written_as_that_value(quirky):
    url, mapping = quirky
    mapping.write_text(QUIRKY_MAPPING.replace("OTHER_KEY", ", other: system_generic"))
    result = generate_dataset(
        _config_with_other(),
        target_messages=20_000,
        seed="quirks",
        database_url=url,
        mapping_path=mapping,
        emit=None,
    )
    assert "messages.OTHER" not in result.moved_shares
    other = query(url, """SELECT count(*) FROM "Posts" WHERE "Type" = 'system_generic'""")[0][0]
    assert other / 20_000 == pytest.approx(0.06, rel=0.25)
