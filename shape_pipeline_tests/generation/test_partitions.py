"""Generation partitions staged one by one (any order), then published all or nothing, on a
real PostgreSQL (and SQLite): the same rows as the single-process load, nothing published from a
failed partition or from another plan's staging."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from shape_pipeline.console import silent
from shape_pipeline.contracts import PowerLawTailModel
from shape_pipeline.db import create_engine
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.files import write_model_atomic
from shape_pipeline.generation import staged_load
from shape_pipeline.generation.columns import ENTITIES
from shape_pipeline.generation.generate import PartitionedGeneration, generate_dataset
from shape_pipeline.generation.partitions import PARTITION_KEYS, partition_jobs, plan_jobs

TARGET = 12_000
SEED = "partitions"
KEYS = {"users": "id", "conversations": "id", "members": "conversation_id, user_id", "messages": "id"}


def checksums(url: str) -> dict[str, tuple[int, str | None]]:
    """Per table: (rows, md5 of every row as text in key order), computed in the database."""
    engine = create_engine(url)
    out = {}
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        for table, key in KEYS.items():
            if table not in tables:
                out[table] = (0, None)
                continue
            if conn.dialect.name == "postgresql":
                sql = f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY {key})) FROM {table} t"
                out[table] = tuple(conn.execute(sa.text(sql)).one())
            else:
                rows = conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY {key}")).all()
                out[table] = (len(rows), str(hash(tuple(map(tuple, rows)))))
    engine.dispose()
    return out


def staging_tables(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        if conn.dialect.name == "postgresql":
            schemas = inspector.get_schema_names()
            names = (
                inspector.get_table_names(schema=staged_load.STAGING_SCHEMA)
                if staged_load.STAGING_SCHEMA in schemas
                else []
            )
        else:
            names = [n for n in inspector.get_table_names() if n.startswith(staged_load.SQLITE_PREFIX)]
    engine.dispose()
    return [n for n in names if "manifest" not in n]


def parquet_tables(folder: Path) -> dict[str, object]:
    return {name: ds.dataset(folder / name).to_table() for name in ENTITIES}


def partitioned(config, url: str | None, parquet: Path | None, **options) -> PartitionedGeneration:  # noqa: ANN001
    return PartitionedGeneration(
        config,
        target_messages=TARGET,
        seed=options.pop("seed", SEED),
        database_url=url,
        parquet_dir=parquet,
        emit=silent,
        **options,
    )


@pytest.fixture(scope="module")
def config(config):  # noqa: ANN001 - short conversations: a small dataset spans every partition
    short = PowerLawTailModel(
        alpha=2.5,
        min=1,
        max=60,
        body_knots=[(0.5, 3.0), (0.75, 5.0), (0.9, 8.0), (0.95, 12.0)],
        tail_start=(0.95, 12.0),
    )
    generation = config.conversation_generation.model_copy(update={"messages_per_conversation": short})
    return config.model_copy(update={"conversation_generation": generation})


@pytest.fixture(scope="module")
def single(config, make_pg_database, tmp_path_factory):
    """The single-process load: the reference checksums and Parquet tables."""
    url = make_pg_database("part_single")
    parquet = tmp_path_factory.mktemp("single")
    generate_dataset(config, target_messages=TARGET, seed=SEED, database_url=url, parquet_dir=parquet, emit=silent)
    return checksums(url), parquet_tables(parquet), sorted(p.name for p in (parquet / "messages").iterdir())


def test_partitions_own_every_shard_once():
    for users, conversations in [(1, 1), (3, 7), (2, 8), (5, 1000), (1, 8 * 37 + 5)]:
        plan = SimpleNamespace(user_shards=users, conversation_shards=conversations)
        owned = [job for key in PARTITION_KEYS for job in partition_jobs(plan, key)]  # type: ignore[arg-type]
        expected = [("users", s) for s in range(users)] + [("conversations", s) for s in range(conversations)]
        assert owned == expected == plan_jobs(plan)  # type: ignore[arg-type]
        ranges = [partition_jobs(plan, k) for k in PARTITION_KEYS[1:]]  # type: ignore[arg-type]
        sizes = [len(r) for r in ranges]
        assert max(sizes) - min(sizes) <= 1  # contiguous and near-equal
    with pytest.raises(ShapePipelineError, match="unknown generation partition"):
        partition_jobs(SimpleNamespace(user_shards=1, conversation_shards=1), "conversations-99")  # type: ignore[arg-type]


def test_shuffled_partitions_publish_the_single_process_rows(config, single, make_pg_database, tmp_path):
    expected, expected_parquet, expected_parts = single
    url = make_pg_database("part_shuffled")
    parquet = tmp_path / "parquet"
    keys = list(PARTITION_KEYS)
    random.Random(7).shuffle(keys)
    with partitioned(config, url, parquet, chunk_messages=3_000) as gen:
        assert gen.plan.conversation_shards >= len(PARTITION_KEYS)  # every partition holds rows
        for key in keys:
            assert gen.missing()  # nothing published until the last partition is staged
            gen.stage([key])
        assert gen.missing() == []
        assert checksums(url)["messages"] == (0, None)  # staged, not published
        result = gen.publish()
    assert result is not None and result.rows["messages"] == TARGET
    assert checksums(url) == expected
    assert staging_tables(url) == []  # dropped at publish
    got = parquet_tables(parquet)
    assert all(got[name].equals(expected_parquet[name]) for name in ENTITIES)
    assert sorted(p.name for p in (parquet / "messages").iterdir()) == expected_parts
    assert [p.name for p in parquet.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_partitions_staged_by_workers_match(config, single, make_pg_database):
    url = make_pg_database("part_workers")
    with partitioned(config, url, None) as gen:
        gen.stage(PARTITION_KEYS, workers=2)
        assert gen.publish() is not None
    assert checksums(url) == single[0]


def test_failed_partition_leaves_the_target_untouched_and_rerun_completes(
    config, single, make_pg_database, monkeypatch
):
    url = make_pg_database("part_failed")
    generate_dataset(config, target_messages=3_000, seed="previous", database_url=url, emit=silent)
    before = checksums(url)
    assert before["messages"][0] == 3_000
    broken = "conversations-3"
    with partitioned(config, url, None, replace=True, chunk_messages=500) as gen:
        gen.stage([k for k in PARTITION_KEYS if k != broken])
        real, calls = staged_load.write_rows, []

        def fail_on_second_chunk(conn, table, rows, postgres):  # noqa: ANN001
            calls.append(table.name)
            if len(calls) == 2:
                raise RuntimeError("killed midway")
            real(conn, table, rows, postgres)

        monkeypatch.setattr(staged_load, "write_rows", fail_on_second_chunk)
        with pytest.raises(RuntimeError, match="killed midway"):
            gen.stage([broken])
        monkeypatch.setattr(staged_load, "write_rows", real)
        assert len(calls) == 2
        assert gen.missing() == [broken]
        assert checksums(url) == before
        with pytest.raises(ShapePipelineError, match=f"partition\\(s\\) {broken} not staged"):
            gen.publish()
        assert checksums(url) == before  # the refused publish changed nothing
        gen.stage([broken])
        assert gen.publish() is not None
        assert gen.publish() is None  # a second publisher finds it done
    assert checksums(url) == single[0]


HANG_AFTER_FIRST_WRITE = """
import os, sys, time
from shape_pipeline.generation import staged_load
real = staged_load.write_rows
def write_then_hang(conn, table, rows, postgres):
    real(conn, table, rows, postgres)
    open(os.environ["SP_TEST_WROTE"], "w").close()
    time.sleep(600)
staged_load.write_rows = write_then_hang
from shape_pipeline.cli import main
sys.exit(main())
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shape_pipeline", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_killed_partition_process_leaves_the_target_untouched_and_a_rerun_completes(
    config, single, make_pg_database, tmp_path
):
    """One machine per partition through the CLI; the process staging conversations-3 is
    killed (SIGKILL) in the middle of its staging transaction."""
    url = make_pg_database("part_killed")
    generate_dataset(config, target_messages=3_000, seed="previous", database_url=url, emit=silent)
    before = checksums(url)
    path = tmp_path / "calibrated-config.json"
    write_model_atomic(path, config)
    generate = [
        "generate",
        "--config",
        str(path),
        "--database-url",
        url,
        "--target-messages",
        str(TARGET),
        "--seed",
        SEED,
        "--replace",
    ]
    broken = "conversations-3"
    others = cli(*generate, *[a for k in PARTITION_KEYS if k != broken for a in ("--partition", k)])
    assert others.returncode == 0, others.stderr
    assert f"waiting for partition(s) {broken}" in others.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAPE_PIPELINE_PROD")}
    env["SP_TEST_WROTE"] = str(tmp_path / "wrote")
    hung = subprocess.Popen(
        [sys.executable, "-c", HANG_AFTER_FIRST_WRITE, *generate, "--partition", broken],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "wrote").exists() and hung.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (tmp_path / "wrote").exists(), "the partition never wrote its first rows"
    hung.kill()
    assert hung.wait(timeout=30) == -9
    assert checksums(url) == before
    rerun = cli(*generate, "--partition", broken)
    assert rerun.returncode == 0, rerun.stderr
    assert "Published" in rerun.stdout
    assert checksums(url) == single[0]
    assert staging_tables(url) == []


def test_refuses_nonempty_targets_without_replace(config, make_pg_database):
    url = make_pg_database("part_busy")
    generate_dataset(config, target_messages=2_000, seed="busy", database_url=url, emit=silent)
    before = checksums(url)
    with partitioned(config, url, None) as gen:
        gen.stage(PARTITION_KEYS)
        with pytest.raises(ShapePipelineError, match="already hold rows"):
            gen.publish()
    assert checksums(url) == before


def test_staging_of_another_plan_is_never_published(config, make_pg_database, tmp_path):
    url = make_pg_database("part_stale")
    parquet = tmp_path / "parquet"
    with partitioned(config, url, parquet, seed="plan-a") as a:
        a.stage(PARTITION_KEYS)
        assert a.missing() == []
    with partitioned(config, url, parquet, seed="plan-b") as b:
        assert b.fingerprint != a.fingerprint
        assert b.missing() == list(PARTITION_KEYS)
        b.stage([k for k in PARTITION_KEYS if k != "users"])  # plan-a's users stay staged
        assert b.missing() == ["users"]
        with pytest.raises(ShapePipelineError, match=r"partition\(s\) users not staged"):
            b.publish()
    assert checksums(url)["messages"] == (0, None)
    assert not (parquet / "messages").exists()


def test_sqlite_partitions_match_the_single_process_load(config, tmp_path):
    single_url, staged_url = f"sqlite:///{tmp_path / 'single.db'}", f"sqlite:///{tmp_path / 'staged.db'}"
    generate_dataset(config, target_messages=4_000, seed=SEED, database_url=single_url, emit=silent)
    keys = list(reversed(PARTITION_KEYS))
    with PartitionedGeneration(config, target_messages=4_000, seed=SEED, database_url=staged_url, emit=silent) as gen:
        for key in keys:
            gen.stage([key])
        assert gen.publish() is not None
    assert checksums(staged_url) == checksums(single_url)
    assert checksums(staged_url)["messages"][0] == 4_000
    assert staging_tables(staged_url) == []


def test_join_order_numbering_matches(config, make_pg_database):
    ordered = config.model_copy(update={"users_in_join_order": True})
    single_url, staged_url = make_pg_database("part_join_a"), make_pg_database("part_join_b")
    generate_dataset(ordered, target_messages=6_000, seed=SEED, database_url=single_url, emit=silent)
    with PartitionedGeneration(ordered, target_messages=6_000, seed=SEED, database_url=staged_url, emit=silent) as gen:
        gen.stage(PARTITION_KEYS)
        assert gen.publish() is not None
    assert checksums(staged_url) == checksums(single_url)
