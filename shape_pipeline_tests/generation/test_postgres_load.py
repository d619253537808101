"""Generation into a real PostgreSQL: integrity in SQL, statistics against the config, Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from shape_pipeline.console import silent
from shape_pipeline.db import create_engine
from shape_pipeline.distributions import quantile
from shape_pipeline.generation.generate import generate_dataset
from shape_pipeline.mapping import canonical_metadata
from shape_pipeline_tests.generation.conftest import WINDOW_END, WINDOW_START

TARGET = 300_000
MIN_TAIL = 50  # check a percentile p only when n * (1 - p) >= this many entities
LEVELS = (0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


@pytest.fixture(scope="module")
def loaded(config, make_pg_database, tmp_path_factory):
    url = make_pg_database("gen_stats")
    parquet = tmp_path_factory.mktemp("parquet")
    result = generate_dataset(
        config, target_messages=TARGET, seed="stats", database_url=url, parquet_dir=parquet, emit=silent
    )
    engine = create_engine(url)
    yield engine, parquet, result
    engine.dispose()


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def percentiles(engine, inner_sql: str, levels: list[float]) -> list[float]:
    """percentile_disc of column `v` of a subquery, computed in the database."""
    sql = f"SELECT percentile_disc(CAST(:p AS float8[])) WITHIN GROUP (ORDER BY v) FROM ({inner_sql}) s"
    return list(scalar(engine, sql, p=levels))


def checkable(n: int) -> list[float]:
    return [p for p in LEVELS if n * (1 - p) >= MIN_TAIL]


def assert_close(actual: list[float], expected: np.ndarray, tolerance: float, what: str) -> None:
    for a, e in zip(actual, expected, strict=True):
        assert abs(a - e) <= tolerance * max(e, 1.0), f"{what}: {actual} vs {expected.tolist()}"


def assert_percentiles(actual: list[float], model, levels: list[float], n: int, tolerance: float, what: str) -> None:  # noqa: ANN001
    """Each percentile within `tolerance` of the model's, beyond the sampling noise of n draws.

    The band is [Q(p - 3 se) * (1 - tol), Q(p + 3 se) * (1 + tol)], se = sqrt(p (1 - p) / n):
    with a few hundred conversations the sample median itself wanders more than 5%.
    """
    p = np.array(levels)
    se = 3 * np.sqrt(p * (1 - p) / n)
    low = quantile(model, np.clip(p - se, 1e-6, 1 - 1e-6)) * (1 - tolerance)
    high = quantile(model, np.clip(p + se, 1e-6, 1 - 1e-6)) * (1 + tolerance)
    for a, lo, hi, level in zip(actual, low, high, levels, strict=True):
        assert lo - 1 <= a <= hi + 1, f"{what} p{round(level * 100)}: {a} outside [{lo:.1f}, {hi:.1f}]"


def test_totals_and_canonical_keys(loaded):
    engine, _, result = loaded
    assert scalar(engine, "SELECT count(*) FROM messages") == TARGET
    assert result.rows["messages"] == TARGET
    for table, key in (("users", "users"), ("conversations", "conversations"), ("conversation_members", "members")):
        assert scalar(engine, f"SELECT count(*) FROM {table}") == result.rows[key]
    keys = scalar(
        engine,
        "SELECT count(*) FROM pg_constraint WHERE contype IN ('p', 'f', 'u') AND conrelid::regclass::text IN ('users','conversations','conversation_members','messages')",
    )
    assert keys == 4 + 4 + 2  # primary keys, foreign keys, unique username and e-mail


def test_integrity(loaded):
    engine, _, _ = loaded
    assert (
        scalar(
            engine,
            """SELECT count(*) FROM messages m LEFT JOIN conversation_members cm
        ON cm.conversation_id = m.conversation_id AND cm.user_id = m.sender_id WHERE cm.user_id IS NULL""",
        )
        == 0
    )
    assert (
        scalar(
            engine,
            "SELECT count(*) FROM messages WHERE created_at < :a OR created_at >= :b",
            a=WINDOW_START,
            b=WINDOW_END,
        )
        == 0
    )
    assert (
        scalar(
            engine,
            """SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
        WHERE m.created_at < c.created_at""",
        )
        == 0
    )
    assert (
        scalar(
            engine,
            """SELECT count(*) FROM (SELECT c.id FROM conversations c JOIN conversation_members m
        ON m.conversation_id = c.id WHERE c.type = 'DIRECT_MESSAGE' GROUP BY c.id HAVING count(*) <> 2) s""",
        )
        == 0
    )
    assert scalar(engine, "SELECT count(*) - count(DISTINCT username) FROM users") == 0
    assert scalar(engine, "SELECT count(*) FROM users WHERE email NOT LIKE '%@example.com'") == 0
    assert (
        scalar(
            engine,
            "SELECT count(*) FROM users u JOIN conversation_members m ON m.user_id = u.id WHERE u.created_at > m.joined_at",
        )
        == 0
    )


def test_content_is_varied_readable_text_of_exact_length(loaded):
    engine, _, _ = loaded
    distinct = scalar(
        engine, "SELECT count(DISTINCT content)::float / count(*) FROM messages WHERE length(content) >= 20"
    )
    assert distinct > 0.99
    words = scalar(
        engine,
        "SELECT count(DISTINCT w) FROM (SELECT regexp_split_to_table(content, '\\s+') w FROM messages LIMIT 20000) s",
    )
    assert words > 1000
    assert scalar(engine, "SELECT count(*) FROM messages WHERE content ~ '[^ -~]'") == 0  # printable ASCII


def test_distributions_match_the_config(loaded, config):
    engine, _, _ = loaded
    conv, msg, users = config.conversation_generation, config.message_generation, config.user_generation
    cases = [
        (conv.messages_per_conversation, "SELECT count(*) v FROM messages GROUP BY conversation_id", 0.05),
        (msg.content_length, "SELECT length(content) v FROM messages", 0.05),
        (users.username_length, "SELECT length(username) v FROM users", 0.05),
        (
            conv.members_per_conversation["GROUP_CHAT"],
            """SELECT count(*) v FROM conversation_members m
            JOIN conversations c ON c.id = m.conversation_id WHERE c.type = 'GROUP_CHAT' GROUP BY c.id""",
            0.05,
        ),
        # gaps come out of the activity clock (daily waves): approximate by design, see README
        (
            msg.inter_message_gap_seconds,
            """SELECT v FROM (SELECT floor(extract(epoch FROM created_at
            - lag(created_at) OVER (PARTITION BY conversation_id ORDER BY created_at, id))) v
            FROM messages) g WHERE v IS NOT NULL""",
            0.12,
        ),
    ]
    for model, sql, tolerance in cases:
        n = scalar(engine, f"SELECT count(*) FROM ({sql}) s")
        levels = checkable(n)
        assert len(levels) >= 3
        if model is msg.inter_message_gap_seconds:
            levels = [p for p in levels if p <= 0.95]
        got = percentiles(engine, sql, levels)
        assert_percentiles(got, model, levels, n, tolerance, sql.split()[1])


def test_shares_match_the_config(loaded, config):
    engine, _, _ = loaded
    with engine.connect() as conn:
        conv = dict(
            conn.execute(
                sa.text("SELECT type, count(*)::float / sum(count(*)) OVER () FROM conversations GROUP BY type")
            ).all()
        )
        msg = dict(
            conn.execute(
                sa.text("SELECT type, count(*)::float / sum(count(*)) OVER () FROM messages GROUP BY type")
            ).all()
        )
        hours = dict(
            conn.execute(
                sa.text("""SELECT extract(hour FROM created_at AT TIME ZONE 'UTC')::int,
            count(*)::float / sum(count(*)) OVER () FROM messages GROUP BY 1""")
            ).all()
        )
        days = dict(
            conn.execute(
                sa.text("""SELECT extract(isodow FROM created_at AT TIME ZONE 'UTC')::int - 1,
            count(*)::float / sum(count(*)) OVER () FROM messages GROUP BY 1""")
            ).all()
        )
        profile = conn.execute(
            sa.text(
                "SELECT avg((display_name IS NOT NULL)::int), avg((avatar_url IS NOT NULL)::int), avg((bio IS NOT NULL)::int) FROM users"
            )
        ).one()
    n_conv = scalar(engine, "SELECT count(*) FROM conversations")
    for name, share in config.conversation_generation.type_distribution.items():
        assert abs(conv.get(name, 0.0) - share) <= 0.01 + 3 * np.sqrt(share * (1 - share) / n_conv), (name, conv)
    for name, share in config.message_generation.type_distribution.items():
        assert abs(msg.get(name, 0.0) - share) <= 0.01, (name, msg)
    temporal = config.message_generation.temporal
    for hour, share in enumerate(temporal.hourly):
        assert abs(hours.get(hour, 0.0) - share) <= 0.01, (hour, hours.get(hour), share)
    for day, share in enumerate(temporal.day_of_week):
        # a few huge rooms hold much of a small dataset, so weekdays wander more than hours
        assert abs(days.get(day, 0.0) - share) <= 0.03, (day, days.get(day), share)
    expected = config.user_generation.profile_field_probabilities
    for got, name in zip(profile, ("display_name", "avatar_url", "bio"), strict=True):
        assert abs(float(got) - expected[name]) <= 0.01


def test_a_few_users_write_most_messages(loaded, config):
    engine, _, _ = loaded
    top = scalar(
        engine,
        """SELECT sum(n) FILTER (WHERE r <= c / 10)::float / sum(n) FROM (
        SELECT count(*) n, row_number() OVER (ORDER BY count(*) DESC) r, count(*) OVER () c
        FROM messages GROUP BY sender_id) s""",
    )
    assert top > 0.5
    senders = scalar(engine, "SELECT count(DISTINCT sender_id) FROM messages")
    got = percentiles(engine, "SELECT count(*) v FROM messages GROUP BY sender_id", [0.5, 0.9])
    expected = quantile(config.message_generation.messages_per_sender, np.array([0.5, 0.9]))
    assert senders > 1000
    assert_close(got, expected, 0.35, "messages per sender (approximate by design)")


def test_parquet_layout_matches_the_database(loaded):
    engine, parquet, result = loaded
    parquet = Path(parquet)
    md = canonical_metadata()
    for entity, table in (
        ("users", "users"),
        ("conversations", "conversations"),
        ("members", "conversation_members"),
        ("messages", "messages"),
    ):
        files = sorted((parquet / entity).glob("part-*.parquet"))
        assert files and files[0].name == "part-00000.parquet"
        dataset = ds.dataset(parquet / entity, format="parquet")
        assert dataset.count_rows() == result.rows[entity]
        assert dataset.schema.names == [c.name for c in md.tables[table].columns]
        for field in dataset.schema:
            if field.name.endswith("id"):
                assert str(field.type) == "int64"
            if field.name.endswith("_at"):
                assert str(field.type) == "timestamp[us, tz=UTC]"
    messages = ds.dataset(parquet / "messages", format="parquet").to_table(columns=["id", "type"])
    assert set(messages.column("type").unique().to_pylist()) <= {"TEXT", "IMAGE", "FILE", "AUDIO", "VIDEO"}
    first_ids = scalar(engine, "SELECT sum(id) FROM messages")
    assert first_ids == int(np.sum(messages.column("id").to_numpy()))
    assert not any(p.name.startswith(".") for p in parquet.iterdir())
