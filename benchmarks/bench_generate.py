"""Generator benchmarks, ratios from one run (issue 4).

Config: the calibrator's fit of the shipped seed shape (`shape_pipeline/examples/shape-metrics-seed.json`).
In one run, each measurement in its own child process (peak RSS is the child's own maximum):
  1. PostgreSQL, canonical schema, N messages (default 5,000,000): `generate_dataset` wall time
     (plan, generation with the rows set aside by time bucket in Arrow files, each bucket sorted
     and COPYed into the tables in time order, keys and indexes, commit, VACUUM (ANALYZE))
     against the floor: the same rows prepared
     beforehand as files, then a raw server-side `COPY ... FROM 'file'` into bare tables, for
     CSV files and for the binary COPY files the generator itself streams (and each floor again
     with the same primary, unique and foreign keys added). Goal: at most 1.5x the floor.
  2. Peak RSS of the PostgreSQL load at 1,000,000 and at N messages: goal at most 1 GB, flat.
  3. Parquet only, N messages: goal at least 1,000,000 messages per second.

    .venv/bin/python benchmarks/bench_generate.py [--messages N] [--small M]
    .venv/bin/python benchmarks/bench_generate.py --workers-sweep [--messages N]   # issue 13: Parquet vs workers

The server comes from SHAPE_PIPELINE_TEST_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres); databases are created and dropped here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent

import common  # noqa: E402 - puts the repository on the import path

from shape_pipeline.calibration.calibrate import calibrate  # noqa: E402
from shape_pipeline.console import silent  # noqa: E402
from shape_pipeline.contracts import CalibratedConfig, ShapeMetrics  # noqa: E402
from shape_pipeline.db import create_engine  # noqa: E402
from shape_pipeline.files import load_json_model  # noqa: E402
from shape_pipeline.generation.columns import ENTITIES  # noqa: E402
from shape_pipeline.generation.generate import generate_dataset, iter_chunks  # noqa: E402
from shape_pipeline.generation.load_database import add_keys, bare_copy  # noqa: E402
from shape_pipeline.generation.load_postgres import encode_csv, encode_rows  # noqa: E402
from shape_pipeline.generation.plan import make_plan  # noqa: E402
from shape_pipeline.mapping import CANONICAL_MAPPING, canonical_metadata  # noqa: E402
from shape_pipeline.scratch_database import unique_name  # noqa: E402

SEED = "bench_generate"
SHAPE = HERE.parent / "shape_pipeline" / "examples" / "shape-metrics-seed.json"
TABLE = {e: CANONICAL_MAPPING.entities()[e].table for e in ENTITIES}


def bench_config() -> CalibratedConfig:
    return calibrate(load_json_model(SHAPE, ShapeMetrics, what="shape metrics"))


SERVER = common.scratch_server()


def new_database(label: str) -> str:
    return SERVER.create(unique_name(f"bench_gen_{label}"))


def drop_database(url: str) -> None:
    SERVER.drop(str(sa.make_url(url).database))


def child(task: dict) -> dict:
    """One measurement inside this (child) process; returns its figures and peak RSS."""
    config = bench_config()
    started = time.perf_counter()
    if task["kind"] == "postgres":
        result = generate_dataset(
            config, target_messages=task["messages"], seed=SEED, database_url=task["url"], emit=silent
        )
    else:
        result = generate_dataset(
            config,
            target_messages=task["messages"],
            seed=SEED,
            parquet_dir=task["dir"],
            emit=silent,
            workers=task.get("workers", 1),
        )
    return {
        "seconds": result.seconds,
        "wall": time.perf_counter() - started,
        "messages_per_second": result.messages_per_second,
        "rows": result.rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def in_child(task: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(task)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare_files(config: CalibratedConfig, messages: int, folder: Path) -> dict[str, list[Path]]:
    """The same rows the generator loads, as files (untimed): one CSV file per table, and the
    binary COPY encoding the generator itself streams (one file per chunk: each has a header)."""
    plan = make_plan(config, target_messages=messages, seed=SEED)
    tables = canonical_metadata().tables
    csv = {e: open(folder / f"{e}.csv", "wb") for e in ENTITIES}  # noqa: SIM115 - closed below
    files: dict[str, list[Path]] = {f"csv:{e}": [folder / f"{e}.csv"] for e in ENTITIES}
    try:
        for index, chunk in enumerate(iter_chunks(plan, 250_000)):
            for entity, table in chunk.tables.items():
                csv[entity].write(encode_csv(table))
                fmt, columns, data = encode_rows(tables[TABLE[entity]], table)
                path = folder / f"{entity}-{index:05d}.{fmt}"
                path.write_bytes(data)
                files.setdefault(f"{fmt}:{entity}", []).append(path)
                COLUMNS[path] = columns
    finally:
        for handle in csv.values():
            handle.close()
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)
    return files


COLUMNS: dict[Path, list[str]] = {}


def floor(files: dict[str, list[Path]], fmt: str) -> tuple[float, float]:
    """Seconds of a raw server-side COPY of the prepared files into bare tables, and with the keys."""
    url = new_database("floor")
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        md = canonical_metadata()
        with engine.begin() as conn:
            bare_copy(md).create_all(conn)
        with engine.begin() as conn:
            started = time.perf_counter()
            for entity in ENTITIES:
                for path in files.get(f"{fmt}:{entity}", []):
                    columns = f" ({', '.join(COLUMNS[path])})" if path in COLUMNS else ""
                    conn.exec_driver_sql(f"COPY {TABLE[entity]}{columns} FROM '{path}' (FORMAT {fmt})")
            copied = time.perf_counter() - started
            add_keys(conn, list(md.sorted_tables))
        return copied, time.perf_counter() - started
    finally:
        engine.dispose()
        drop_database(url)


def worker_counts() -> list[int]:
    """1, 2, 4, ... up to this machine's cores (and the core count itself)."""
    cores = os.cpu_count() or 1
    counts = [1 << i for i in range(cores.bit_length()) if 1 << i <= cores]
    return sorted({*counts, cores})


def workers_sweep(messages: int) -> int:
    """Parquet generation against the number of worker processes, each against 1 worker (the
    baseline, measured in the same run); the rows must not depend on the workers."""
    work = Path(tempfile.mkdtemp(prefix="bench_generate_workers_"))
    try:
        runs = {
            w: in_child({"kind": "parquet", "messages": messages, "dir": str(work / f"w{w}"), "workers": w})
            for w in worker_counts()
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = runs[1]
    print(f"=== PARQUET GENERATION AGAINST WORKERS ({messages:,} messages, {os.cpu_count()} cores) ===")
    for w, run in runs.items():
        same = "same rows" if run["rows"] == base["rows"] else f"rows differ: {run['rows']}"
        print(
            f"{w:>3} worker(s) {run['seconds']:8.1f} s   {run['messages_per_second']:>12,.0f} messages/s   "
            f"{base['seconds'] / run['seconds']:.2f}x 1 worker   peak RSS {run['peak_rss_mb']:.0f} MB   {same}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5_000_000)
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument(
        "--workers-sweep", action="store_true", help="only Parquet generation against 1, 2, 4 ... workers"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if args.workers_sweep:
        return workers_sweep(args.messages)
    n, small = args.messages, min(args.small, args.messages)
    work = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    try:
        print(f"Preparing the floor's CSV files ({n:,} messages)...", flush=True)
        files = prepare_files(bench_config(), n, work)
        copy_s, copy_keys_s = floor(files, "csv")
        binary_s, binary_keys_s = floor(files, "binary")
        runs = {}
        for size in dict.fromkeys([small, n]):
            url = new_database(f"gen{size}")
            try:
                runs[size] = in_child({"kind": "postgres", "messages": size, "url": url})
            finally:
                drop_database(url)
        parquet = in_child({"kind": "parquet", "messages": n, "dir": str(work / "parquet")})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    big = runs[n]
    print()
    print(f"=== GENERATOR BENCHMARK ({n:,} messages, {sum(big['rows'].values()):,} rows) ===")
    print(f"floor: raw COPY FROM CSV file    {copy_s:8.1f} s   (+ keys {copy_keys_s:.1f} s)")
    print(f"floor: raw COPY FROM binary file {binary_s:8.1f} s   (+ keys {binary_keys_s:.1f} s)")
    print(
        f"generate -> PostgreSQL           {big['seconds']:8.1f} s   "
        f"{big['seconds'] / copy_s:.2f}x CSV floor, {big['seconds'] / binary_s:.2f}x binary floor, "
        f"{big['seconds'] / binary_keys_s:.2f}x binary floor + keys (goal <= 1.5x)"
    )
    for size, run in runs.items():
        print(f"peak RSS at {size:>11,} messages {run['peak_rss_mb']:8.0f} MB (goal <= 1024 MB, flat)")
    print(
        f"Parquet only                     {parquet['seconds']:8.1f} s   "
        f"{parquet['messages_per_second']:,.0f} messages/s (goal >= 1,000,000); "
        f"peak RSS {parquet['peak_rss_mb']:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
