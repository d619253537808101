"""The external sort by time (issue 11): rows set aside by time bucket in the generator process,
each bucket sorted at commit; the spill folder never outlives the run."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from shape_pipeline.console import silent
from shape_pipeline.db import create_engine
from shape_pipeline.errors import DatabaseError
from shape_pipeline.generation import staging, time_buckets
from shape_pipeline.generation.generate import generate_dataset
from shape_pipeline.generation.id_formats import SEQUENTIAL
from shape_pipeline.generation.schema_writer import TableWriter
from shape_pipeline.generation.unset_values import UnsetRule
from shape_pipeline_tests.generation.test_targets import query
from shape_pipeline_tests.test_bad_outputs import ENV, assert_terminated, terminate_when

DAY = 86_400_000_000


def test_edges_cut_the_window_into_equal_buckets_of_the_planned_rows():
    edges = time_buckets.bucket_edges(0, 10 * DAY, 5 * time_buckets.ROWS_PER_BUCKET)
    assert edges.tolist() == [2 * DAY, 4 * DAY, 6 * DAY, 8 * DAY]
    assert time_buckets.bucket_edges(0, DAY, 10).size == 0  # a small table: one bucket


def test_split_keeps_every_row_in_its_bucket_and_in_order_within_it():
    edges = np.array([10, 20], dtype=np.int64)
    times = np.array([25, 3, 10, 19, -50, 99, 12], dtype=np.int64)  # before and after the window too
    table = pa.table({"t": times, "n": np.arange(7)})
    parts = time_buckets.split(table, times, edges)
    assert [(b, part["n"].to_pylist()) for b, part in parts] == [(0, [1, 4]), (1, [2, 3, 6]), (2, [0, 5])]
    ((bucket, whole),) = time_buckets.split(table.slice(2, 2), times[2:4], edges)  # all in one bucket
    assert bucket == 1 and whole["n"].to_pylist() == [2, 3]
    assert time_buckets.split(table.slice(0, 0), times[:0], edges) == []


def test_bucket_files_read_back_every_part_and_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    files = time_buckets.BucketFiles()
    assert files.folder.parent == tmp_path
    edges = np.array([100], dtype=np.int64)
    files.append("messages", pa.table({"t": [1, 150], "a": ["x", "y"]}), np.array([1, 150]), edges)
    files.append("messages", pa.table({"t": [2]}), np.array([2]), edges)  # a part without column `a`
    files.append("members", pa.table({"t": [3]}), np.array([3]), edges)
    assert files.buckets("messages") == [0, 1] and files.buckets("members") == [0]
    first = files.read("messages", 0)
    assert first.to_pydict() == {"t": [1, 2], "a": ["x", None]}
    assert files.buckets("messages") == [1]  # read once: its file is gone
    files.close()
    assert list(tmp_path.iterdir()) == []


def writer(id_type: sa.types.TypeEngine, unset: dict[str, UnsetRule] | None = None) -> TableWriter:
    table = sa.Table(
        "m", sa.MetaData(), sa.Column("id", id_type), sa.Column("note", sa.Text), sa.Column("at", sa.BigInteger)
    )
    return TableWriter(
        "messages", table, [(c, lambda t: t) for c in ("id", "note", "at")], unset or {}, SEQUENTIAL, "id"
    )


def test_a_bucket_is_sorted_by_time_then_key_and_message_ids_numbered_in_that_order():
    logical = pa.table({"created_at": pa.array([30, 10, 30, 20], pa.int64()), "id": pa.array([7, 9, 2, 5], pa.int64())})
    rows = pa.table({"id": pa.array(["7", "9", "2", "5"]), "note": ["d", "a", "c", "b"], "at": [30, 10, 30, 20]})
    staged = staging.with_order("messages", logical, rows)
    out = staging.in_time_order(writer(sa.String(26)), staged, numbered=100)
    assert out.column_names == ["id", "note", "at"]  # the order columns do not reach the table
    assert out.to_pydict() == {"id": ["101", "102", "103", "104"], "note": ["a", "b", "c", "d"], "at": [10, 20, 30, 30]}


def test_unset_values_are_filled_per_bucket_and_a_wholly_unset_column_is_left_to_the_server():
    rule = {"note": UnsetRule("", server_default=True)}
    logical = pa.table({"created_at": pa.array([1, 2], pa.int64()), "id": pa.array([1, 2], pa.int64())})
    mixed = pa.table({"id": pa.array([1, 2], pa.int64()), "note": ["x", None], "at": [1, 2]})
    out = staging.in_time_order(writer(sa.BigInteger(), rule), staging.with_order("messages", logical, mixed), 0)
    assert out["note"].to_pylist() == ["x", ""]
    unset = mixed.set_column(1, "note", pa.nulls(2, pa.string()))
    out = staging.in_time_order(writer(sa.BigInteger(), rule), staging.with_order("messages", logical, unset), 0)
    assert out.column_names == ["id", "at"]


def test_the_spill_folder_is_removed_after_a_load_and_after_a_failed_one(
    config, make_pg_database, tmp_path, monkeypatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made: list[time_buckets.BucketFiles] = []
    original = time_buckets.BucketFiles.__init__

    def recording(self: time_buckets.BucketFiles) -> None:
        original(self)
        made.append(self)

    monkeypatch.setattr(time_buckets.BucketFiles, "__init__", recording)
    generate_dataset(
        config, target_messages=5_000, seed="spill", database_url=make_pg_database("spill_ok"), emit=silent
    )
    assert len(made) == 1 and list(tmp_path.iterdir()) == []
    url = make_pg_database("spill_fail")
    engine = create_engine(url)
    with engine.begin() as conn:  # fails at commit, once every row has been set aside
        conn.exec_driver_sql("""CREATE TABLE users (id bigint PRIMARY KEY, username varchar(64) NOT NULL,
            email varchar(255) NOT NULL, display_name varchar(128), avatar_url text, bio text,
            created_at timestamptz NOT NULL CHECK (created_at > now()))""")
    engine.dispose()
    with pytest.raises(DatabaseError, match="users in time order failed"):
        generate_dataset(config, target_messages=5_000, seed="spill", database_url=url, emit=silent)
    assert len(made) == 2 and list(tmp_path.iterdir()) == []


def test_sigterm_while_rows_are_set_aside_removes_them(config, make_pg_database, tmp_path):
    config_path = tmp_path / "config.json"
    config_path.write_text(config.model_dump_json())
    spill = tmp_path / "tmp"
    spill.mkdir()
    url = make_pg_database("spill_sigterm")
    command = [
        sys.executable,
        "-m",
        "shape_pipeline",
        "generate",
        "--config",
        str(config_path),
        "--target-messages",
        "5000000",
        "--database-url",
        url,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**ENV, "TMPDIR": str(spill)}
    )
    code, err = terminate_when(process, lambda: any(spill.glob("shape-pipeline-sort-*/messages-*")))
    assert_terminated(code, err)
    assert list(spill.iterdir()) == []
    assert query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
