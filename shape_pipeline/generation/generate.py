"""`generate_dataset`: plan, generate shard by shard, load into a database and/or Parquet.

Generation runs in a background thread one or two chunks ahead of loading (numpy, Arrow and
the database driver release the GIL in their heavy parts), so drawing rows overlaps with COPY.
Chunk size only groups shards: the rows are the same whatever it is.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from shape_pipeline import db
from shape_pipeline.console import Emit, Reporter, fmt_int
from shape_pipeline.contracts import CalibratedConfig
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.generation import seeds, text
from shape_pipeline.generation.ahead import background
from shape_pipeline.generation.capacity import check_plannable
from shape_pipeline.generation.categories import describe_moves, fold_unwritable, type_shares
from shape_pipeline.generation.columns import ENTITIES, Chunk, concat_chunks
from shape_pipeline.generation.conversations import conversation_chunk
from shape_pipeline.generation.load import DatabaseSink, refuse_production
from shape_pipeline.generation.load_parquet import ParquetSink
from shape_pipeline.generation.plan import Plan, make_plan
from shape_pipeline.generation.users import user_chunk

DEFAULT_CHUNK_MESSAGES = 125_000
LOG_EVERY_S = 15.0


@dataclass
class GenerationResult:
    """What was generated and how fast (no URL passwords: destinations are redacted)."""

    rows: dict[str, int]
    seed: str
    seconds: float
    target_messages: int
    destinations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what was adapted to fit the target schema
    moved_shares: dict[str, float] = field(default_factory=dict)  # 'messages.OTHER' -> share moved

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def messages_per_second(self) -> float:
        return self.rows.get("messages", 0) / self.seconds if self.seconds > 0 else 0.0


def _make_shard(kind: str, shard: int, plan: Plan, pool: np.ndarray) -> Chunk:
    """One shard's rows; each shard draws from its own stream, so any process can make it."""
    return (user_chunk if kind == "users" else conversation_chunk)(plan, shard, pool)


_WORKER: dict[str, object] = {}  # inside a worker process only: its plan and text pool


def _start_worker(plan: Plan) -> None:
    _WORKER["plan"] = plan
    _WORKER["pool"] = text.build_pool(seeds.stream(plan.seed, seeds.TEXT), plan.content_style)


def _worker_shard(kind: str, shard: int) -> Chunk:
    return _make_shard(kind, shard, _WORKER["plan"], _WORKER["pool"])  # type: ignore[arg-type]


def _shards_in_order(plan: Plan, workers: int) -> Iterator[tuple[str, Chunk]]:
    """Every shard in plan order: in this process, or in `workers` processes kept a few shards
    ahead of the consumer (bounded memory; results come back in order, so rows are identical)."""
    jobs = [("users", s) for s in range(plan.user_shards)]
    jobs += [("conversations", s) for s in range(plan.conversation_shards)]
    if workers <= 1:
        pool = text.build_pool(seeds.stream(plan.seed, seeds.TEXT), plan.content_style)
        yield from ((kind, _make_shard(kind, shard, plan, pool)) for kind, shard in jobs)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(plan,)) as executor:
        pending: deque[tuple[str, Future[Chunk]]] = deque()
        for kind, shard in jobs:
            pending.append((kind, executor.submit(_worker_shard, kind, shard)))
            if len(pending) > 4 * workers:
                done_kind, future = pending.popleft()
                yield done_kind, future.result()
        while pending:
            done_kind, future = pending.popleft()
            yield done_kind, future.result()


def iter_chunks(plan: Plan, chunk_messages: int, workers: int = 1) -> Iterator[Chunk]:
    """Users first, then conversations with their members and messages, grouped into chunks.

    Shards are fixed units with their own random streams, so neither the grouping nor the
    number of worker processes changes anything in the rows.
    """
    group: list[Chunk] = []
    size, group_kind = 0, "users"
    for kind, chunk in _shards_in_order(plan, workers):
        if kind != group_kind and group:  # users are loaded before anything that refers to them
            yield concat_chunks(group)
            group, size = [], 0
        group_kind = kind
        group.append(chunk)
        size += chunk.tables["users"].num_rows if kind == "users" else chunk.messages
        if size >= chunk_messages:
            yield concat_chunks(group)
            group, size = [], 0
    if group:
        yield concat_chunks(group)


def encode_ahead(chunks: Iterator[Chunk], database: DatabaseSink | None) -> Iterator[tuple[Chunk, list]]:
    """Each chunk with its rows already encoded for the database (done in the generator thread)."""
    for chunk in chunks:
        yield chunk, database.encode(chunk) if database is not None else []


def generate_dataset(
    config: CalibratedConfig,
    *,
    target_messages: int,
    seed: str = seeds.DEFAULT_SEED,
    database_url: str | None = None,
    mapping_path: str | Path | None = None,
    replace: bool = False,
    parquet_dir: str | Path | None = None,
    production_url: str | None = None,
    content_style: Literal["filler", "pii_demo"] = "filler",
    chunk_messages: int = DEFAULT_CHUNK_MESSAGES,
    workers: int = 1,
    emit: Emit | None = print,
    progress: bool = False,
) -> GenerationResult:
    """Generate `target_messages` messages (and the users, conversations and members they imply)
    from `config` and `seed`, into a database and/or a Parquet folder, all or nothing."""
    if not database_url and not parquet_dir:
        raise ShapePipelineError("generate: give --database-url and/or --parquet-dir")
    if chunk_messages < 1:
        raise ShapePipelineError("chunk_messages must be at least 1")
    if workers < 1:
        raise ShapePipelineError("--workers: must be at least 1")
    check_plannable(target_messages, config=config, workers=workers)
    if database_url:
        db.parse_url(database_url)
        refuse_production(database_url, production_url)
    report = Reporter("Generator", emit)
    report.header("SYNTHETIC DATA GENERATION")
    started = time.perf_counter()
    database = DatabaseSink(database_url, mapping_path=mapping_path, replace=replace) if database_url else None
    parquet = ParquetSink(parquet_dir, replace=replace) if parquet_dir else None
    warnings: list[str] = []
    moved: dict[str, float] = {}
    try:
        extras = database.extra_profile_fields() if database else []
        if database is not None:
            config, moved = fold_unwritable(config, database.mapping)
            warnings += describe_moves(moved, type_shares(config))
        plan = make_plan(
            config, target_messages=target_messages, seed=seed, extra_profile_fields=extras, content_style=content_style
        )
        report.line(f"Seed: {seed}")
        report.detail(f"Users: {fmt_int(plan.users)}")
        report.detail(f"Conversations: {fmt_int(plan.conversations)}")
        report.detail(f"Members: {fmt_int(plan.members)}")
        report.detail(f"Messages: {fmt_int(plan.target_messages)}")
        destinations: list[str] = []
        if database is not None:
            database.open(plan)
            warnings += database.notes
            destinations.append(db.redact(database.url))
            report.detail(f"Ids: {database.describe_ids()}")
        for warning in warnings:
            report.warn(warning)
        if parquet is not None:
            parquet.open()
            destinations.append(str(parquet.directory))
        report.line(f"Writing to {', '.join(destinations)}")
        rows = dict.fromkeys(ENTITIES, 0)
        last_log = time.perf_counter()
        with tqdm(total=plan.target_messages, unit="msg", unit_scale=True, disable=not progress) as bar:
            for chunk, encoded in background(encode_ahead(iter_chunks(plan, chunk_messages, workers), database)):
                if database is not None:
                    database.write(encoded)
                if parquet is not None:
                    parquet.write(chunk)
                for name, count in chunk.rows().items():
                    rows[name] += count
                bar.update(chunk.messages)
                now = time.perf_counter()
                if now - last_log >= LOG_EVERY_S and rows["messages"]:
                    last_log = now
                    share = rows["messages"] / plan.target_messages
                    report.detail(
                        f"{fmt_int(rows['messages'])} / {fmt_int(plan.target_messages)} messages "
                        f"({share:.0%}), {fmt_int(sum(rows.values()) / (now - started))} rows/s"
                    )
        if database is not None:
            report.line("Writing rows in time order, adding keys and committing...")
            database.commit()
            if database.postgres:
                report.line("Analyzing tables...")
                problem = database.analyze()
                if problem:
                    report.warn(problem)
                    warnings.append(problem)
        if parquet is not None:
            parquet.commit()
    finally:
        if database is not None:
            database.close()
        if parquet is not None:
            parquet.close()
    result = GenerationResult(
        rows, seed, time.perf_counter() - started, plan.target_messages, destinations, warnings, moved
    )
    report.ok(
        f"Generated {fmt_int(result.total_rows)} rows in {result.seconds:.1f}s "
        f"({fmt_int(result.rows_per_second)} rows/s)"
    )
    report.blank()
    return result
