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
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from tqdm import tqdm

from shape_pipeline import db
from shape_pipeline.console import Emit, Reporter, fmt_int
from shape_pipeline.contracts import CalibratedConfig
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.generation import load_parquet, seeds, text
from shape_pipeline.generation.ahead import background
from shape_pipeline.generation.capacity import check_plannable
from shape_pipeline.generation.categories import describe_moves, fold_unwritable, type_shares
from shape_pipeline.generation.columns import ENTITIES, Chunk, concat_chunks
from shape_pipeline.generation.conversations import conversation_chunk
from shape_pipeline.generation.load_database import DatabaseSink, refuse_production
from shape_pipeline.generation.load_parquet import ParquetPartition, ParquetSink, write_parts
from shape_pipeline.generation.partitions import (
    PARTITION_KEYS,
    Job,
    fingerprint,
    ordered_keys,
    partition_jobs,
    partition_kind,
    plan_jobs,
)
from shape_pipeline.generation.plan import Plan, make_plan
from shape_pipeline.generation.schema_writer import extra_profile_fields
from shape_pipeline.generation.staged_load import KIND_ENTITIES, StagedDatabase
from shape_pipeline.generation.users import user_chunk
from shape_pipeline.mapping import SchemaMapping

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


@dataclass
class ShardRows:
    """One generated shard: its row counts, and its rows unless only files were wanted."""

    kind: str
    shard: int
    rows: dict[str, int]
    chunk: Chunk | None


def make_shard_rows(
    kind: str, shard: int, plan: Plan, pool: np.ndarray, parquet_folder: Path | None, keep: bool
) -> ShardRows:
    """Make one shard; write its Parquet parts into `parquet_folder` here (in the process that
    made it); keep its rows only if `keep` (a database needs them)."""
    chunk = _make_shard(kind, shard, plan, pool)
    if parquet_folder is not None:
        write_parts(parquet_folder, shard, chunk)
    return ShardRows(kind, shard, chunk.rows(), chunk if keep else None)


def text_pool(plan: Plan) -> np.ndarray:
    return text.build_pool(seeds.stream(plan.seed, seeds.TEXT), plan.content_style)


_WORKER: dict[str, Any] = {}  # inside a worker process only: its plan, text pool and settings


def _start_worker(plan: Plan, settings: dict | None = None) -> None:
    _WORKER["plan"] = plan
    _WORKER["pool"] = text_pool(plan)
    _WORKER["settings"] = settings or {}


def _worker_shard(kind: str, shard: int, parquet_folder: Path | None = None, keep: bool = True) -> ShardRows:
    return make_shard_rows(kind, shard, _WORKER["plan"], _WORKER["pool"], parquet_folder, keep)


def produce_shards(
    plan: Plan,
    jobs: list[Job],
    workers: int = 1,
    *,
    parquet_folder: Path | None = None,
    keep: bool = True,
    pool: np.ndarray | None = None,
) -> Iterator[ShardRows]:
    """The shards of `jobs` in order: in this process, or in `workers` processes kept a few
    shards ahead of the consumer (bounded memory; results come back in order, so rows are
    identical). Parquet parts are written where each shard is made."""
    if workers <= 1:
        pool = text_pool(plan) if pool is None else pool
        yield from (make_shard_rows(kind, shard, plan, pool, parquet_folder, keep) for kind, shard in jobs)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(plan,)) as executor:
        pending: deque[Future[ShardRows]] = deque()
        for kind, shard in jobs:
            pending.append(executor.submit(_worker_shard, kind, shard, parquet_folder, keep))
            if len(pending) > 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def iter_batches(shards: Iterator[ShardRows], chunk_messages: int) -> Iterator[tuple[dict[str, int], Chunk | None]]:
    """(row counts, rows) of groups of shards: users first, then conversations with their
    members and messages, grouped into chunks of about `chunk_messages` (shards without rows
    come one by one). Neither the grouping nor the number of workers changes anything in the rows."""
    group: list[Chunk] = []
    size, group_kind = 0, "users"
    for item in shards:
        if item.chunk is None:
            yield item.rows, None
            continue
        if item.kind != group_kind and group:  # users are loaded before anything that refers to them
            yield _grouped(group)
            group, size = [], 0
        group_kind = item.kind
        group.append(item.chunk)
        size += item.rows.get("users", 0) if item.kind == "users" else item.chunk.messages
        if size >= chunk_messages:
            yield _grouped(group)
            group, size = [], 0
    if group:
        yield _grouped(group)


def _grouped(group: list[Chunk]) -> tuple[dict[str, int], Chunk]:
    chunk = concat_chunks(group)
    return chunk.rows(), chunk


def iter_chunks(plan: Plan, chunk_messages: int, workers: int = 1) -> Iterator[Chunk]:
    """Users first, then conversations with their members and messages, grouped into chunks.

    Shards are fixed units with their own random streams, so neither the grouping nor the
    number of worker processes changes anything in the rows.
    """
    for _, chunk in iter_batches(produce_shards(plan, plan_jobs(plan), workers), chunk_messages):
        assert chunk is not None
        yield chunk


def encode_ahead(
    batches: Iterator[tuple[dict[str, int], Chunk | None]], database: DatabaseSink | None
) -> Iterator[tuple[dict[str, int], list]]:
    """Each batch's row counts with its rows already encoded for the database (done in the
    generator thread)."""
    for rows, chunk in batches:
        yield rows, database.encode(chunk) if database is not None and chunk is not None else []


def prepare_plan(
    config: CalibratedConfig,
    *,
    target_messages: int,
    seed: str,
    mapping: SchemaMapping | None,
    content_style: str = "filler",
) -> tuple[Plan, list[str], dict[str, float]]:
    """The plan for a target (its mapping, if a database): categories the target cannot write
    folded into others, the mapped extra profile fields. (plan, warnings, moved shares)."""
    warnings: list[str] = []
    moved: dict[str, float] = {}
    extras = extra_profile_fields(mapping) if mapping is not None else []
    if mapping is not None:
        config, moved = fold_unwritable(config, mapping)
        warnings += describe_moves(moved, type_shares(config))
    plan = make_plan(
        config, target_messages=target_messages, seed=seed, extra_profile_fields=extras, content_style=content_style
    )
    return plan, warnings, moved


def _report_plan(report: Reporter, plan: Plan) -> None:
    report.line(f"Seed: {plan.seed}")
    report.detail(f"Users: {fmt_int(plan.users)}")
    report.detail(f"Conversations: {fmt_int(plan.conversations)}")
    report.detail(f"Members: {fmt_int(plan.members)}")
    report.detail(f"Messages: {fmt_int(plan.target_messages)}")


_Database = TypeVar("_Database", DatabaseSink, StagedDatabase)


@dataclass(eq=False, repr=False)  # no repr: the URLs may hold passwords
class Generation:
    """A dataset to generate: `target_messages` messages (and the users, conversations and
    members they imply) from `config` and `seed`, into a database and/or a Parquet folder.
    What `generate_dataset` and `PartitionedGeneration` both take, and the setup they share."""

    config: CalibratedConfig
    _: KW_ONLY
    target_messages: int
    seed: str = seeds.DEFAULT_SEED
    database_url: str | None = None
    mapping_path: str | Path | None = None
    replace: bool = False
    parquet_dir: str | Path | None = None
    production_url: str | None = None
    content_style: Literal["filler", "pii_demo"] = "filler"
    chunk_messages: int = DEFAULT_CHUNK_MESSAGES
    emit: Emit | None = print

    def check(self, workers: int) -> None:
        """Refuse what can be refused before anything is planned, connected or created."""
        if not self.database_url and not self.parquet_dir:
            raise ShapePipelineError("generate: give --database-url and/or --parquet-dir")
        if self.chunk_messages < 1:
            raise ShapePipelineError("chunk_messages must be at least 1")
        if workers < 1:
            raise ShapePipelineError("--workers: must be at least 1")
        check_plannable(self.target_messages, config=self.config, workers=workers)
        if self.database_url:
            db.parse_url(self.database_url)
            refuse_production(self.database_url, self.production_url)

    def make_database(self, sink: type[_Database]) -> _Database | None:
        """The database destination as a `sink` (None without a database URL)."""
        if not self.database_url:
            return None
        return sink(self.database_url, mapping_path=self.mapping_path, replace=self.replace)

    def draw_plan(self, database: DatabaseSink | StagedDatabase | None) -> tuple[Plan, list[str], dict[str, float]]:
        """`prepare_plan` for this target: (plan, warnings, moved shares)."""
        return prepare_plan(
            self.config,
            target_messages=self.target_messages,
            seed=self.seed,
            mapping=database.mapping if database is not None else None,
            content_style=self.content_style,
        )


@dataclass(eq=False, repr=False, kw_only=True)
class SingleGeneration(Generation):
    """Generate `target_messages` messages (and the users, conversations and members they imply)
    from `config` and `seed`, into a database and/or a Parquet folder, all or nothing: the shards
    in this process or in `workers` processes, loaded as they come."""

    workers: int = 1
    progress: bool = False

    def run(self) -> GenerationResult:
        self.check(self.workers)
        report = Reporter("Generator", self.emit)
        report.header("SYNTHETIC DATA GENERATION")
        started = time.perf_counter()
        database = self.make_database(DatabaseSink)
        parquet = ParquetSink(self.parquet_dir, replace=self.replace) if self.parquet_dir else None
        try:
            plan, warnings, moved = self.draw_plan(database)
            _report_plan(report, plan)
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
            with tqdm(total=plan.target_messages, unit="msg", unit_scale=True, disable=not self.progress) as bar:
                shards = produce_shards(
                    plan,
                    plan_jobs(plan),
                    self.workers,
                    parquet_folder=parquet.staging if parquet is not None else None,
                    keep=database is not None,
                )
                for counts, encoded in background(encode_ahead(iter_batches(shards, self.chunk_messages), database)):
                    if database is not None:
                        database.write(encoded)
                    for name, count in counts.items():
                        rows[name] += count
                    bar.update(counts.get("messages", 0))
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
            rows, self.seed, time.perf_counter() - started, plan.target_messages, destinations, warnings, moved
        )
        report.ok(
            f"Generated {fmt_int(result.total_rows)} rows in {result.seconds:.1f}s "
            f"({fmt_int(result.rows_per_second)} rows/s)"
        )
        report.blank()
        return result


def generate_dataset(config: CalibratedConfig, **options: Any) -> GenerationResult:
    """Generate from `config` in this process (or `workers` processes), all or nothing. `options`
    are `SingleGeneration`'s fields (target_messages, seed, database_url, parquet_dir, workers,
    ...); an unknown one is refused."""
    return SingleGeneration(config, **options).run()


@dataclass
class StageResult:
    """What `PartitionedGeneration.stage` staged: rows per partition, wall time."""

    rows: dict[str, dict[str, int]]
    seconds: float


def _stage_partition(
    plan: Plan,
    pool: np.ndarray,
    key: str,
    fingerprint: str,
    layout: str,
    database: StagedDatabase | None,
    parquet_dir: str | Path | None,
    chunk_messages: int,
) -> dict[str, int]:
    """Generate partition `key` and stage it: into the database's staging tables (one
    transaction) and/or as a complete Parquet partition folder. Its row counts."""
    parquet = ParquetPartition(parquet_dir, fingerprint, key) if parquet_dir else None
    try:
        if parquet is not None:
            parquet.open()
        shards = produce_shards(
            plan,
            partition_jobs(plan, key),
            1,
            parquet_folder=parquet.folder if parquet is not None else None,
            keep=database is not None,
            pool=pool,
        )
        rows = dict.fromkeys(KIND_ENTITIES[partition_kind(key)], 0)

        def chunks() -> Iterator[Chunk]:
            for counts, chunk in iter_batches(shards, chunk_messages):
                for name, count in counts.items():
                    rows[name] += count
                if chunk is not None:
                    yield chunk

        if database is not None:
            database.stage(plan, key, fingerprint, layout, background(chunks()))
        else:
            for _ in chunks():
                pass
        if parquet is not None:
            parquet.commit(rows)
        return rows
    finally:
        if parquet is not None:
            parquet.close()


def _worker_stage(key: str) -> dict[str, int]:
    settings: dict[str, Any] = _WORKER["settings"]
    database = (
        StagedDatabase(settings["url"], mapping_path=settings["mapping_path"], replace=False)
        if settings["url"]
        else None
    )
    try:
        return _stage_partition(
            _WORKER["plan"],
            _WORKER["pool"],
            key,
            settings["fingerprint"],
            settings["layout"],
            database,
            settings["parquet_dir"],
            settings["chunk_messages"],
        )
    finally:
        if database is not None:
            database.close()


@dataclass(eq=False, repr=False, kw_only=True)
class PartitionedGeneration(Generation):
    """One dataset generated as partitions (generation/partitions.py), each staged on its own
    (any order, any process, re-runnable), then published all or nothing.

    The plan is drawn on construction (the same as `generate_dataset`'s); `fingerprint` ties
    staged partitions to this plan and target."""

    report: Reporter = field(init=False)
    database: StagedDatabase | None = field(init=False)
    plan: Plan = field(init=False)
    warnings: list[str] = field(init=False)
    moved: dict[str, float] = field(init=False)
    layout: str = field(init=False)
    fingerprint: str = field(init=False)
    destinations: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.check(1)
        self.report = Reporter("Generator", self.emit)
        self.database = self.make_database(StagedDatabase)
        try:
            self.plan, self.warnings, self.moved = self.draw_plan(self.database)
            self.layout = self.database.layout(self.plan) if self.database is not None else "parquet"
        except BaseException:
            self.close()
            raise
        if self.database is not None:
            self.warnings += self.database.notes
        self.fingerprint = fingerprint(self.plan, self.layout)
        self.destinations = [db.redact(self.database_url)] if self.database_url else []
        self.destinations += [str(self.parquet_dir)] if self.parquet_dir else []

    def close(self) -> None:
        if self.database is not None:
            self.database.close()

    def __enter__(self) -> PartitionedGeneration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stage(self, keys: list[str] | tuple[str, ...], workers: int = 1) -> StageResult:
        """Generate and stage partitions `keys` (in `workers` processes, each staging whole
        partitions: no rows cross processes). A partition that fails leaves what it staged
        before; the others are staged."""
        keys = ordered_keys(keys)
        started = time.perf_counter()
        self.report.line(
            f"Staging partition(s) {', '.join(keys)} of seed {self.plan.seed} "
            f"({fmt_int(self.plan.target_messages)} messages) into {', '.join(self.destinations)}"
        )
        rows: dict[str, dict[str, int]] = {}
        for key, counts in self._staged(keys, workers):
            rows[key] = counts
            self.report.detail(f"{key}: {fmt_int(sum(counts.values()))} rows staged")
        return StageResult(rows, time.perf_counter() - started)

    def _staged(self, keys: list[str], workers: int) -> Iterator[tuple[str, dict[str, int]]]:
        """(key, row counts) of each partition as it is staged: here, or in `workers` processes."""
        if workers <= 1 or len(keys) <= 1:
            pool = text_pool(self.plan)
            for key in keys:
                yield (
                    key,
                    _stage_partition(
                        self.plan,
                        pool,
                        key,
                        self.fingerprint,
                        self.layout,
                        self.database,
                        self.parquet_dir,
                        self.chunk_messages,
                    ),
                )
            return
        settings = {
            "url": self.database.url if self.database is not None else None,
            "mapping_path": self.database.mapping_path if self.database is not None else None,
            "fingerprint": self.fingerprint,
            "layout": self.layout,
            "parquet_dir": self.parquet_dir,
            "chunk_messages": self.chunk_messages,
        }
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            min(workers, len(keys)), mp_context=context, initializer=_start_worker, initargs=(self.plan, settings)
        ) as executor:
            futures = {key: executor.submit(_worker_stage, key) for key in keys}
            for key, future in futures.items():
                yield key, future.result()

    def missing(self) -> list[str]:
        """Partitions not staged (for this fingerprint) in some destination, in key order."""
        absent: set[str] = set()
        if self.database is not None:
            absent |= set(self.database.missing(self.fingerprint))
        if self.parquet_dir:
            staged = load_parquet.staged_partitions(self.parquet_dir, self.fingerprint)
            absent |= {k for k in PARTITION_KEYS if k not in staged}
        return [k for k in PARTITION_KEYS if k in absent]

    def publish(self) -> GenerationResult | None:
        """Publish every partition into the destinations (database: one transaction; Parquet:
        one swap). None if another run already published this fingerprint into the database."""
        started = time.perf_counter()
        rows = dict.fromkeys(ENTITIES, 0)
        warnings = list(self.warnings)
        if self.database is not None:
            self.report.line("Publishing the staged partitions in time order, adding keys and committing...")
            published = self.database.publish(self.plan, self.fingerprint, self.layout)
            if published.already:
                self.report.line("Already published by another run")
                return None
            rows = published.rows
            if published.warning:
                self.report.warn(published.warning)
                warnings.append(published.warning)
        if self.parquet_dir:
            parquet_rows = load_parquet.publish_partitions(
                self.parquet_dir, self.fingerprint, list(PARTITION_KEYS), replace=self.replace
            )
            rows = rows if self.database is not None else parquet_rows
        result = GenerationResult(
            rows,
            self.plan.seed,
            time.perf_counter() - started,
            self.plan.target_messages,
            list(self.destinations),
            warnings,
            self.moved,
        )
        self.report.ok(f"Published {fmt_int(result.total_rows)} rows in {result.seconds:.1f}s")
        return result
