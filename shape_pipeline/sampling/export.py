"""`sample_to_file`: one production extraction, from URL to audited shape file and audit log.

Shared by the `sample` command and the `shape_metrics` asset, which therefore print the same
lines. Order matters for privacy and for production: the salt, the audit log and the workload
file are checked before the database is touched; the physical layout and the workload's plans
are read after the aggregates and join the shape before the export audit, which runs on the
exact bytes before they are written; the file appears atomically or not at all.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from shape_pipeline import __version__, settings
from shape_pipeline.console import Emit, Reporter, fmt_int
from shape_pipeline.contracts import ShapeMetrics
from shape_pipeline.db import (
    check_connection,
    create_engine,
    parse_url,
    redact,
    short_reason,
)
from shape_pipeline.errors import DatabaseError, ShapePipelineError
from shape_pipeline.files import check_writable, model_json, write_text_atomic
from shape_pipeline.mapping import load_mapping
from shape_pipeline.sampling.audit import append_audit_entry, audit_export, check_salt_reuse
from shape_pipeline.sampling.extract import extract_frequencies
from shape_pipeline.sampling.phase2 import (
    Phase2,
    load_export_workload,
    read_phase2,
    require_postgres_for_workload,
)
from shape_pipeline.sampling.privacy import require_salt, salt_fingerprint
from shape_pipeline.sampling.shape import shape_from_frequencies
from shape_pipeline.workload.spec import DEFAULT_RUNS

APPLICATION_NAME = "shape-pipeline-sampler"
FILE_PREFIX = "shape-metrics-prod-"
SAFE_MIN_CELL_COUNT = 5  # smaller cells need --force-min-cell-count (and say so in the console and audit log)


@dataclass(frozen=True)
class SampleResult:
    """What one extraction produced (nothing in it identifies a person, a URL password or the salt)."""

    path: Path
    sha256: str
    shape: ShapeMetrics
    suppressed_cells: int
    merged_cells: int
    audit_log: Path
    salt_reused: bool
    database: str  # redacted URL
    seconds: float
    plan_pairs: int = 0  # (query, rank) pairs of the workload in the file
    layout_tables: int = 0  # tables in the physical layout


def parse_as_of(value: date | str | None, *, option: str = "--as-of") -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ShapePipelineError(f"{option}: expected a date YYYY-MM-DD, got '{value}'") from None


MAX_WINDOW_DAYS = 36_600  # about 100 years: more is a typo, and the window arithmetic overflows


def resolve_window(window_days: int, as_of: date | str | None, now: datetime) -> tuple[datetime, datetime]:
    """[end - window_days, end): end is 00:00 UTC of `as_of` (that day excluded), else now.

    Refuses a window that cannot be computed (more than `MAX_WINDOW_DAYS`, or starting before
    year 1) and an `as_of` after `now` (the window would reach into the future: an empty or
    partial shape).
    """
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise ShapePipelineError(
            f"--window-days: must be from 1 to {MAX_WINDOW_DAYS:,} (about 100 years), got {window_days:,}"
        )
    day = parse_as_of(as_of)
    now = now.astimezone(UTC)
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) if day else now
    if end > now:
        raise ShapePipelineError(
            f"--as-of: {day} is in the future (today is {now:%Y-%m-%d} UTC): the window would end "
            "after the extraction; leave --as-of out to end the window now"
        )
    try:
        return end - timedelta(days=window_days), end
    except OverflowError:
        raise ShapePipelineError(
            f"--as-of: {end.date().isoformat()} minus {window_days:,} days (--window-days) starts before year 1"
        ) from None


def default_output_path(folder: str | Path, extracted_at: datetime) -> Path:
    """`shape-metrics-prod-YYYYMMDD.json`; a second file on the same day gets `-HHMMSS`."""
    base = Path(folder)
    path = base / f"{FILE_PREFIX}{extracted_at:%Y%m%d}.json"
    if path.exists():
        path = base / f"{FILE_PREFIX}{extracted_at:%Y%m%d-%H%M%S}.json"
    return path


def _output_path(output: str | Path | None, output_dir: str | Path | None, extracted_at: datetime) -> Path:
    if output is not None and not Path(output).is_dir():
        return Path(output)
    return default_output_path(output or output_dir or Path.cwd(), extracted_at)


def sample_to_file(
    database_url: str,
    *,
    output: str | Path | None = None,
    output_dir: str | Path | None = None,
    mapping_path: str | Path | None = None,
    window_days: int = 30,
    as_of: date | str | None = None,
    min_cell_count: int = 10,
    salt: str | None = None,
    audit_log: str | Path | None = None,
    allow_salt_reuse: bool = False,
    force_min_cell_count: bool = False,
    statement_timeout_ms: int | None = 600_000,
    emit: Emit | None = None,
    now: datetime | None = None,
    workload_path: str | Path | None = None,
    workload_runs: int = DEFAULT_RUNS,
) -> SampleResult:
    """Extract the shape of one window and write it as an audited, exportable JSON file.

    `salt=None` reads `ANONYMIZATION_SALT`. `workload_path` (a YAML file, or "default" for the
    packaged workload) adds the plan shapes of its queries (PostgreSQL only); the physical
    layout is added on every PostgreSQL extraction. Every failure is one `ShapePipelineError`
    line and leaves no shape file and no audit-log entry behind.
    """
    out = Reporter("Sampler", emit)
    started = time.perf_counter()
    if min_cell_count < 1:
        raise ShapePipelineError(f"--min-cell-count: must be at least 1, got {min_cell_count}")
    if min_cell_count < SAFE_MIN_CELL_COUNT and not force_min_cell_count:
        raise ShapePipelineError(
            f"--min-cell-count: {min_cell_count} is below {SAFE_MIN_CELL_COUNT}: cells that small single out "
            "people; pass --force-min-cell-count to export them anyway"
        )
    url = parse_url(database_url)
    extracted_at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    window_start, window_end = resolve_window(window_days, as_of, extracted_at)
    check_writable(_output_path(output, output_dir, extracted_at), option="--output")
    key = require_salt(salt)
    fingerprint = salt_fingerprint(key)
    log_path = Path(audit_log or settings.default_audit_log())
    reused = check_salt_reuse(log_path, fingerprint, allow_reuse=allow_salt_reuse)
    mapping = load_mapping(mapping_path)
    workload = load_export_workload(workload_path)
    require_postgres_for_workload(url, workload)
    if workload_runs < 1:
        raise ShapePipelineError(f"--workload-runs: must be at least 1, got {workload_runs}")

    out.header("PRODUCTION SHAPE SAMPLING")
    if min_cell_count < SAFE_MIN_CELL_COUNT:
        out.warn(f"--min-cell-count {min_cell_count} is below {SAFE_MIN_CELL_COUNT} (forced): small cells can single out people")
    engine = create_engine(url, application_name=APPLICATION_NAME, must_exist=True, poolclass=sa.pool.NullPool)
    where = redact(engine.url)
    try:
        out.line(f"Connecting to {where}...")
        check_connection(engine)
        out.ok("Connected (read-only snapshot" + (f", statement_timeout {statement_timeout_ms} ms)" if statement_timeout_ms else ")"))
        out.line(f"Window: {window_start:%Y-%m-%d %H:%M} to {window_end:%Y-%m-%d %H:%M} UTC ({window_days} days)")
        out.line("Extracting aggregates (counts and lengths only)...")
        try:
            freq = extract_frequencies(
                engine, mapping, window_start=window_start, window_end=window_end,
                statement_timeout_ms=statement_timeout_ms,
            )
        except sa.exc.DBAPIError as exc:
            raise DatabaseError(f"sampling query failed on {where}: {short_reason(exc)}") from None
        out.ok(f"Extracted in {time.perf_counter() - started:.1f} s")
        out.detail(f"Users: {fmt_int(freq.users_total)}")
        out.detail(f"Conversations: {fmt_int(freq.conversations_total)}")
        out.detail(f"Messages: {fmt_int(freq.messages_total)}")
        if freq.messages_total == 0:
            out.warn("No messages in the window: the shape is empty (totals 0, no distributions)")
        if workload is not None:
            out.line(f"Running workload {workload.name} ({len(workload.pairs())} (query, rank) pairs, "
                     f"{workload_runs} runs each)...")
        phase2 = read_phase2(
            engine, mapping, workload=workload, window_end=window_end,
            statement_timeout_ms=statement_timeout_ms, runs=workload_runs, where=where,
        )
    finally:
        engine.dispose()
    _report_phase2(out, phase2, workload_runs)

    shape = shape_from_frequencies(
        freq, window_start=window_start, window_end=window_end,
        extracted_at=extracted_at, min_cell_count=min_cell_count,
    ).model_copy(update={"physical_layout": phase2.physical_layout, "query_plans": phase2.query_plans})
    privacy = shape.privacy
    assert privacy is not None  # min_cell_count is a number here
    out.ok(
        f"Small cells (< {min_cell_count}): {privacy.merged_cells} merged, "
        f"{privacy.suppressed_cells} suppressed; max rounded up to 2 significant digits",
        tag="Privacy",
    )
    text = model_json(shape)
    audit_export(text)
    out.ok("Export audit passed (contract and allow-list)", tag="Audit")

    path = _output_path(output, output_dir, extracted_at)
    write_text_atomic(path, text)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        append_audit_entry(log_path, {
            "time": extracted_at.isoformat(),
            "window_start": window_start.isoformat(),
            "window_end": window_end.isoformat(),
            "window_days": window_days,
            "min_cell_count": min_cell_count,
            "min_cell_count_forced": min_cell_count < SAFE_MIN_CELL_COUNT,
            "totals": shape.totals.model_dump() if shape.totals else None,
            "suppressed_cells": privacy.suppressed_cells,
            "merged_cells": privacy.merged_cells,
            "output": str(path.absolute()),
            "sha256": digest,
            "tool_version": __version__,
            "database": where,
            "salt_fingerprint": fingerprint,
            "salt_reused": reused,
            "workload": workload.name if workload else None,
            "workload_sha256": workload.fingerprint() if workload else None,
            "query_plan_pairs": phase2.plan_pairs,
            "physical_layout_tables": phase2.layout_tables,
        })
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise ShapePipelineError(f"{log_path}: cannot append to the audit log ({exc.strerror}); nothing was exported") from None
    out.ok(f"Written to {path} (sha256 {digest[:12]})", tag="Output")
    out.ok(f"Extraction recorded in {log_path}" + (" (salt reused: allowed)" if reused else ""), tag="Audit")
    return SampleResult(
        path=path, sha256=digest, shape=shape,
        suppressed_cells=privacy.suppressed_cells, merged_cells=privacy.merged_cells,
        audit_log=log_path, salt_reused=reused, database=where,
        seconds=time.perf_counter() - started,
        plan_pairs=phase2.plan_pairs, layout_tables=phase2.layout_tables,
    )


def _report_phase2(out: Reporter, phase2: Phase2, runs: int) -> None:
    """What ran, never a value: counts and the workload's name."""
    if phase2.physical_layout is not None:
        out.ok(f"Physical layout: {phase2.layout_tables} tables (pg_stats correlation and width, id formats)")
    if phase2.query_plans is not None:
        out.ok(
            f"Query plans: {phase2.plan_pairs} (query, rank) pairs of workload "
            f"{phase2.query_plans.workload}, {runs} runs each (plan shapes only)"
        )
