"""Columns the mapping does not name, written as wide as production's: the filler (width, NULL
share, determinism, varchar length, JSON shape) and, on the simulated Mattermost world, rows
per page like production's through the CLI (sample -> calibrate -> generate)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from chat_simulator import build_world
from shape_pipeline import settings
from shape_pipeline.contracts import CalibratedConfig, ColumnLayout
from shape_pipeline.db import create_engine
from shape_pipeline.generation import widths
from shape_pipeline_tests.generation.test_targets import query
from shape_pipeline_tests.worlds.test_end_to_end import empty_schema, run_cli

END = datetime(2025, 6, 2, tzinfo=UTC)
SALT = "unmapped-widths-salt-0123456789abcdef"


def column(kind: sa.types.TypeEngine, *, nullable: bool = True, default: str | None = None) -> sa.Column:
    """A column as reflection gives it (a text default reads `'...'::text`)."""
    server_default = sa.text(f"'{default}'::text") if default is not None else None
    table = sa.Table("t", sa.MetaData(), sa.Column("c", kind, nullable=nullable, server_default=server_default))
    return table.c["c"]


def written(filler: widths.Filler, n: int = 20_000, seed: str = "s") -> pa.Array:
    keys = pa.table({"id": pa.array(np.arange(1, n + 1), pa.int64())})
    return widths.filler_encoder(filler, seed, "t", ("id",))(keys)


def test_text_filler_has_production_width_and_respects_varchar_length() -> None:
    filler = widths.filler_for(column(sa.Text, nullable=False, default=""), ColumnLayout(avg_width=75, null_frac=0.3))
    assert filler is not None and filler.value == "x" * 74  # 1 header byte on disk
    assert filler.null_frac == 0.0  # NOT NULL: never NULL, whatever production's share
    assert written(filler).null_count == 0
    long = widths.filler_for(column(sa.Text), ColumnLayout(avg_width=504))
    assert long is not None and len(long.value) == 500  # 4 header bytes past 126
    short = widths.filler_for(column(sa.String(26)), ColumnLayout(avg_width=75))
    assert short is not None and short.value == "x" * 26


def test_json_columns_get_valid_json_of_the_width() -> None:
    notify = widths.filler_for(column(sa.Text, nullable=False, default="{}"), ColumnLayout(avg_width=75))
    assert notify is not None and json.loads(notify.value) == {"x": "x" * 66} and len(notify.value) == 74
    files = widths.filler_for(column(sa.String(300), nullable=False, default="[]"), ColumnLayout(avg_width=21))
    assert files is not None and json.loads(files.value) == ["x" * 16]
    tight = widths.filler_for(column(sa.String(5), default="{}"), ColumnLayout(avg_width=60))
    assert tight is not None and tight.value == "{}"  # no room for a key: still valid JSON
    document = widths.filler_for(column(JSONB), ColumnLayout(avg_width=60, null_frac=0.5))
    assert document is not None and json.loads(document.value) == {"x": "x" * 46}  # jsonb's own bytes


def test_postgres_measures_the_width_production_had(make_pg_database: Callable[[str], str]) -> None:
    """Written and analyzed, each filler has the avg_width it was made for (text, JSON text, jsonb)."""
    url = make_pg_database("widths_measure")
    kinds = {"plain": (sa.Text, None), "settings": (sa.Text, "{}"), "document": (JSONB, None)}
    for width in (20, 75, 300):
        values = {}
        for name, (kind, default) in kinds.items():
            filler = widths.filler_for(column(kind(), default=default), ColumnLayout(avg_width=width))
            assert filler is not None
            values[name] = filler.value
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "DROP TABLE IF EXISTS w; CREATE TABLE w (plain text, settings text, document jsonb)"
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO w SELECT :plain, :settings, CAST(:document AS jsonb) FROM generate_series(1, 50)"
                    ),
                    values,
                )
                conn.exec_driver_sql("ANALYZE w")
                measured = dict(
                    conn.execute(sa.text("SELECT attname, avg_width FROM pg_stats WHERE tablename = 'w'")).all()
                )
        finally:
            engine.dispose()
        assert measured == dict.fromkeys(kinds, width), (width, measured)


def test_null_share_follows_production_and_is_deterministic() -> None:
    filler = widths.filler_for(column(sa.Text), ColumnLayout(avg_width=31, null_frac=0.25))
    assert filler is not None and filler.null_frac == 0.25
    first, again, other = written(filler), written(filler), written(filler, seed="other")
    assert abs(first.null_count / len(first) - 0.25) < 0.02
    assert first.equals(again) and not first.equals(other)
    assert set(first.drop_null().to_pylist()) == {"x" * 30}
    two_keys = pa.table({"a": pa.array([1, 1, 2, 2] * 5_000, pa.int64()), "b": pa.array(range(20_000), pa.int64())})
    members = widths.filler_encoder(filler, "s", "t", ("a", "b"))(two_keys)
    assert abs(members.null_count / 20_000 - 0.25) < 0.02


def test_fixed_width_columns_production_fills_get_zero() -> None:
    counts = widths.filler_for(column(sa.BigInteger), ColumnLayout(avg_width=8, null_frac=0.1))
    assert counts is not None and counts.value == 0 and counts.null_frac == 0.1
    assert written(counts).type == pa.int64()
    flag = widths.filler_for(column(sa.Boolean), ColumnLayout(avg_width=1))
    assert flag is not None and flag.value is False
    assert widths.filler_for(column(sa.BigInteger, default="0"), ColumnLayout(avg_width=8)) is None  # the server's
    assert widths.filler_for(column(sa.BigInteger, nullable=False), ColumnLayout(avg_width=8)) is None  # the user's
    assert widths.filler_for(column(sa.DateTime), ColumnLayout(avg_width=8)) is None  # no neutral value


def test_today_rule_stays_where_nothing_fits() -> None:
    assert widths.filler_for(column(sa.Text), ColumnLayout(avg_width=None)) is None
    assert widths.filler_for(column(sa.Text), ColumnLayout(avg_width=0, null_frac=1.0)) is None  # all NULL
    roles = column(sa.String(64), nullable=False, default="channel_user")
    assert widths.filler_for(roles, ColumnLayout(avg_width=13)) is None  # the default is as wide: kept
    root = column(sa.String(26), nullable=False, default="")  # '' in most rows, an id in replies
    assert widths.filler_for(root, ColumnLayout(avg_width=5)) is None  # stays '' where queries look for it
    metadata = sa.MetaData()
    sa.Table("parent", metadata, sa.Column("id", sa.Text, primary_key=True))
    child = sa.Table(
        "child",
        metadata,
        sa.Column("parent_id", sa.Text, sa.ForeignKey("parent.id")),
        sa.Column("kind", sa.Text),
        sa.CheckConstraint("kind IN ('a', 'b')"),
    )
    for name in ("parent_id", "kind"):  # a filler would break the key or the check
        assert widths.filler_for(child.c[name], ColumnLayout(avg_width=27)) is None


def rows_per_page(url: str, table: str) -> float:
    tuples, pages = query(url, "SELECT reltuples, relpages FROM pg_class WHERE oid = to_regclass(:t)", t=f'"{table}"')[
        0
    ]
    return float(tuples) / float(pages)


def test_mattermost_rows_are_as_wide_as_production(
    make_pg_database: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(settings.SALT, SALT)
    world = build_world("mattermost", 20_000, "unmapped-widths", END)
    production = make_pg_database("widths_prod")
    world.load(production)  # VACUUM (ANALYZE) included
    mapping = world.write_mapping(tmp_path / "mapping.yaml")
    shape_path, config_path = tmp_path / "shape.json", tmp_path / "config.json"
    code, _, err = run_cli(
        capsys,
        "sample",
        "--privacy",
        "suppression",
        "--database-url",
        production,
        "--mapping",
        str(mapping),
        "--as-of",
        END.date().isoformat(),
        "--window-days",
        "30",
        "--output",
        str(shape_path),
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
    )
    assert (code, err) == (0, ""), err
    shape = json.loads(shape_path.read_text())
    members = shape["physical_layout"]["tables"]["members"]["unmapped_columns"]
    assert members["NotifyProps"]["avg_width"] > 20
    code, _, err = run_cli(capsys, "calibrate", "--shape", str(shape_path), "--output", str(config_path))
    assert (code, err) == (0, ""), err
    config = CalibratedConfig.model_validate_json(config_path.read_text())
    assert config.unmapped_columns["members"]["NotifyProps"].avg_width == members["NotifyProps"]["avg_width"]

    development = make_pg_database("widths_dev")
    empty_schema(development, world)
    code, out, err = run_cli(
        capsys,
        "generate",
        "--config",
        str(config_path),
        "--database-url",
        development,
        "--mapping",
        str(mapping),
        "--target-messages",
        str(shape["totals"]["messages"]),
        "--seed",
        "widths",
        "--replace",
    )
    assert code == 0 and "Traceback" not in err, err
    note = [
        line for line in out.splitlines() if "ChannelMembers: not in the mapping, written with production's" in line
    ]
    assert len(note) == 1 and f"NotifyProps ({members['NotifyProps']['avg_width']} bytes, 0% NULL)" in note[0]
    wanted, got = rows_per_page(production, "ChannelMembers"), rows_per_page(development, "ChannelMembers")
    assert abs(got / wanted - 1) < 0.2, (wanted, got)
    # the app's JSON columns hold JSON (a cast fails on anything else)
    valid = query(
        development, """SELECT count(*) FILTER (WHERE "NotifyProps"::jsonb ? 'x'), count(*) FROM "ChannelMembers" """
    )
    assert valid[0][0] == valid[0][1] > 0
    files = query(development, """SELECT count(*) FROM "Posts" WHERE jsonb_typeof("FileIds"::jsonb) <> 'array'""")
    assert files == [(0,)]
    roles = query(development, """SELECT DISTINCT "Roles" FROM "ChannelMembers" """)
    assert roles == [("channel_user",)]  # its default is as wide as production's values: kept
