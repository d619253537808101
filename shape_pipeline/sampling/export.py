"""`sample_to_file`: one production extraction, from URL to audited shape file and audit log.

Shared by the `sample` command and the `shape_metrics` asset, which therefore print the same
lines. Order matters for privacy and for production: the salt, the audit log and the workload
file are checked before the database is touched; the physical layout and the workload's plans
are read after the aggregates and join the shape before the export audit, which runs on the
exact bytes before they are written; the file appears atomically or not at all.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path

import sqlalchemy as sa

from shape_pipeline import __version__, settings
from shape_pipeline.audit_log import append_audit_entry
from shape_pipeline.console import Emit, Reporter, fmt_int
from shape_pipeline.contracts import PhysicalLayout, PrivacyReport, ShapeMetrics
from shape_pipeline.conventions import (
    DEFAULT_MIN_CELL_COUNT,
    DEFAULT_STATEMENT_TIMEOUT_MS,
    DEFAULT_WINDOW_DAYS,
    shape_file_name,
)
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
from shape_pipeline.privacy.budget import BudgetCheck, check_budget
from shape_pipeline.privacy.defaults import (
    DEFAULT_EPSILON_PER_EXTRACTION,
    DEFAULT_MAX_MESSAGES_PER_USER,
    DEFAULT_PRIVACY,
    DEFAULT_YEARLY_EPSILON,
    MAX_CONVERSATIONS_PER_USER,
    PRIVACY_MODES,
)
from shape_pipeline.privacy.dp import Budget
from shape_pipeline.sampling.audit import audit_export, check_salt_reuse
from shape_pipeline.sampling.bounded import (
    ContributionBound,
    extract_bounded,
    memberships_per_user,
    seed_from_salt,
)
from shape_pipeline.sampling.dp_shape import dp_memberships, dp_shape, family_specs
from shape_pipeline.sampling.extract import extract_frequencies
from shape_pipeline.sampling.frequencies import FrequencyTables
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
SAFE_MIN_CELL_COUNT = 5  # smaller cells need --force-min-cell-count (and say so in the console and audit log)


@dataclass(frozen=True)
class DpSettings:
    """DP mode's knobs: the extraction's epsilon, the yearly budget, and the contribution bounds."""

    epsilon: float = DEFAULT_EPSILON_PER_EXTRACTION
    yearly_budget: float = DEFAULT_YEARLY_EPSILON
    override_budget: bool = False
    max_messages_per_user: int = DEFAULT_MAX_MESSAGES_PER_USER
    max_conversations_per_user: int | None = None  # None: chosen from the noisy memberships (dp_memberships)


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
    path = base / shape_file_name(extracted_at)
    if path.exists():
        path = base / shape_file_name(extracted_at, with_time=True)
    return path


def _output_path(output: str | Path | None, output_dir: str | Path | None, extracted_at: datetime) -> Path:
    if output is not None and not Path(output).is_dir():
        return Path(output)
    return default_output_path(output or output_dir or Path.cwd(), extracted_at)


def _check_mode(privacy: str, dp: DpSettings, min_cell_count: int, force_min_cell_count: bool) -> None:
    """Refuse impossible settings before anything is read (one line naming the option)."""
    if privacy not in PRIVACY_MODES:
        raise ShapePipelineError(f"--privacy: must be one of {', '.join(PRIVACY_MODES)}, got '{privacy}'")
    if privacy == "dp":
        if not (math.isfinite(dp.epsilon) and dp.epsilon > 0):
            raise ShapePipelineError(f"--epsilon: must be a number above 0, got {dp.epsilon}")
        for option, value in (
            ("--max-messages-per-user", dp.max_messages_per_user),
            ("--max-conversations-per-user", dp.max_conversations_per_user or 1),
        ):
            if value < 1:
                raise ShapePipelineError(f"{option}: must be at least 1, got {value}")
        return
    if min_cell_count < 1:
        raise ShapePipelineError(f"--min-cell-count: must be at least 1, got {min_cell_count}")
    if min_cell_count < SAFE_MIN_CELL_COUNT and not force_min_cell_count:
        raise ShapePipelineError(
            f"--min-cell-count: {min_cell_count} is below {SAFE_MIN_CELL_COUNT}: cells that small single out "
            "people; pass --force-min-cell-count to export them anyway"
        )


@dataclass(frozen=True)
class _Extraction:
    """What the database gave, already private: the shape (before Phase 2) and console lines."""

    shape: ShapeMetrics
    privacy_line: str


def _suppressed_shape(
    engine: sa.Engine,
    mapping,
    min_cell_count: int,
    window: tuple[datetime, datetime],
    extracted_at: datetime,
    statement_timeout_ms: int | None,
) -> _Extraction:
    freq: FrequencyTables = extract_frequencies(
        engine,
        mapping,
        window_start=window[0],
        window_end=window[1],
        statement_timeout_ms=statement_timeout_ms,
    )
    shape = shape_from_frequencies(
        freq,
        window_start=window[0],
        window_end=window[1],
        extracted_at=extracted_at,
        min_cell_count=min_cell_count,
    )
    privacy = shape.privacy
    assert privacy is not None  # min_cell_count is a number here
    line = (
        f"Small cells (< {min_cell_count}): {privacy.merged_cells} merged, "
        f"{privacy.suppressed_cells} suppressed; max rounded up to 2 significant digits"
    )
    return _Extraction(shape, line)


def _dp_shape(
    engine: sa.Engine,
    mapping,
    dp: DpSettings,
    key: str,
    window: tuple[datetime, datetime],
    extracted_at: datetime,
    statement_timeout_ms: int | None,
) -> _Extraction:
    """Memberships first (they choose C unless it is given), then the three bounded passes."""
    fields = mapping.users.profile_fields
    specs = partial(family_specs, dp.max_messages_per_user, profile_fields=len(fields))
    budget = Budget(dp.epsilon, specs(MAX_CONVERSATIONS_PER_USER), dp.max_messages_per_user, MAX_CONVERSATIONS_PER_USER)
    memberships, chosen = dp_memberships(memberships_per_user(engine, mapping, statement_timeout_ms), budget)
    conversations = dp.max_conversations_per_user or chosen
    budget.rebound(specs(conversations), conversations)
    bound = ContributionBound(dp.max_messages_per_user, conversations, seed_from_salt(key))
    bounded = extract_bounded(
        engine,
        mapping,
        window_start=window[0],
        window_end=window[1],
        bound=bound,
        statement_timeout_ms=statement_timeout_ms,
    )
    shape = dp_shape(
        bounded,
        budget,
        conversations_per_user=memberships,
        profile_fields=fields,
        window_start=window[0],
        window_end=window[1],
        extracted_at=extracted_at,
    )
    line = (
        f"Differential privacy: epsilon {dp.epsilon:g} over {len(budget.spent)} statistic families "
        f"(OpenDP discrete Laplace), privacy unit one user, at most {bound.max_messages} messages and "
        f"{bound.max_conversations} conversations per user"
    )
    return _Extraction(shape, line)


def _without_counts(layout: PhysicalLayout | None) -> PhysicalLayout | None:
    """DP mode: table row counts are exact counts (a user added shows), so they are dropped;
    the rest of the layout (correlations, widths, rows per page) is planner statistics."""
    if layout is None:
        return None
    tables = {name: t.model_copy(update={"rows": None}) for name, t in layout.tables.items()}
    return layout.model_copy(update={"tables": tables})


def sample_to_file(
    database_url: str,
    *,
    output: str | Path | None = None,
    output_dir: str | Path | None = None,
    mapping_path: str | Path | None = None,
    window_days: int = DEFAULT_WINDOW_DAYS,
    as_of: date | str | None = None,
    privacy: str = DEFAULT_PRIVACY,
    dp: DpSettings | None = None,
    min_cell_count: int = DEFAULT_MIN_CELL_COUNT,
    salt: str | None = None,
    audit_log: str | Path | None = None,
    allow_salt_reuse: bool = False,
    force_min_cell_count: bool = False,
    statement_timeout_ms: int | None = DEFAULT_STATEMENT_TIMEOUT_MS,
    emit: Emit | None = None,
    now: datetime | None = None,
    workload_path: str | Path | None = None,
    workload_runs: int = DEFAULT_RUNS,
) -> SampleResult:
    """Extract the shape of one window and write it as an audited, exportable JSON file.

    `privacy="dp"` (the default): bounded user contributions and OpenDP noise, the epsilon
    checked against the yearly budget in the audit log first; `"suppression"`: small cells
    merged or suppressed with `min_cell_count`. `salt=None` reads `ANONYMIZATION_SALT`.
    `workload_path` (a YAML file, or "default" for the packaged workload) adds the plan
    shapes of its queries (PostgreSQL only); the physical layout is added on every PostgreSQL
    extraction. Every failure is one `ShapePipelineError` line and leaves no shape file and
    no audit-log entry behind.
    """
    out = Reporter("Sampler", emit)
    started = time.perf_counter()
    dp = dp or DpSettings()
    _check_mode(privacy, dp, min_cell_count, force_min_cell_count)
    url = parse_url(database_url)
    extracted_at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    window_start, window_end = resolve_window(window_days, as_of, extracted_at)
    check_writable(_output_path(output, output_dir, extracted_at), option="--output")
    key = require_salt(salt)
    fingerprint = salt_fingerprint(key)
    log_path = Path(audit_log or settings.default_audit_log())
    reused = check_salt_reuse(log_path, fingerprint, allow_reuse=allow_salt_reuse)
    spend: BudgetCheck | None = None
    if privacy == "dp":
        spend = check_budget(
            log_path, dp.epsilon, budget=dp.yearly_budget, now=extracted_at, override=dp.override_budget
        )
    mapping = load_mapping(mapping_path)
    workload = load_export_workload(workload_path)
    require_postgres_for_workload(url, workload)
    if workload_runs < 1:
        raise ShapePipelineError(f"--workload-runs: must be at least 1, got {workload_runs}")

    out.header("PRODUCTION SHAPE SAMPLING")
    if privacy == "suppression" and min_cell_count < SAFE_MIN_CELL_COUNT:
        out.warn(
            f"--min-cell-count {min_cell_count} is below {SAFE_MIN_CELL_COUNT} (forced): small cells can single out people"
        )
    if spend is not None and spend.overridden:
        out.warn(
            f"Epsilon budget overridden (--override-budget): {spend.after:g} spent in the last 365 days, "
            f"budget {spend.budget:g}; recorded in the audit log"
        )
    if privacy == "dp" and workload is not None:
        out.warn(
            "Query plans are not covered by the DP guarantee: they describe single ranked entities "
            "(plan shapes and sizes rounded to 2 significant digits)"
        )
    engine = create_engine(url, application_name=APPLICATION_NAME, must_exist=True, poolclass=sa.pool.NullPool)
    where = redact(engine.url)
    try:
        out.line(f"Connecting to {where}...")
        check_connection(engine)
        out.ok(
            "Connected (read-only snapshot"
            + (f", statement_timeout {statement_timeout_ms} ms)" if statement_timeout_ms else ")")
        )
        out.line(f"Window: {window_start:%Y-%m-%d %H:%M} to {window_end:%Y-%m-%d %H:%M} UTC ({window_days} days)")
        out.line("Extracting aggregates (counts and lengths only)...")
        window = (window_start, window_end)
        try:
            if privacy == "dp":
                extraction = _dp_shape(engine, mapping, dp, key, window, extracted_at, statement_timeout_ms)
            else:
                extraction = _suppressed_shape(
                    engine, mapping, min_cell_count, window, extracted_at, statement_timeout_ms
                )
        except sa.exc.DBAPIError as exc:
            raise DatabaseError(f"sampling query failed on {where}: {short_reason(exc)}") from None
        out.ok(f"Extracted in {time.perf_counter() - started:.1f} s")
        _report_totals(out, extraction.shape, privacy)
        if workload is not None:
            out.line(
                f"Running workload {workload.name} ({len(workload.pairs())} (query, rank) pairs, "
                f"{workload_runs} runs each)..."
            )
        phase2 = read_phase2(
            engine,
            mapping,
            workload=workload,
            window_end=window_end,
            statement_timeout_ms=statement_timeout_ms,
            runs=workload_runs,
            where=where,
        )
    finally:
        engine.dispose()
    _report_phase2(out, phase2, workload_runs)

    layout = _without_counts(phase2.physical_layout) if privacy == "dp" else phase2.physical_layout
    shape = extraction.shape.model_copy(update={"physical_layout": layout, "query_plans": phase2.query_plans})
    report = shape.privacy
    assert report is not None
    out.ok(extraction.privacy_line, tag="Privacy")
    text = model_json(shape)
    audit_export(text)
    out.ok("Export audit passed (contract and allow-list)", tag="Audit")

    path = _output_path(output, output_dir, extracted_at)
    write_text_atomic(path, text)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        append_audit_entry(
            log_path,
            {
                "time": extracted_at.isoformat(),
                "window_start": window_start.isoformat(),
                "window_end": window_end.isoformat(),
                "window_days": window_days,
                **_privacy_entry(privacy, report, min_cell_count, spend),
                "totals": shape.totals.model_dump() if shape.totals else None,
                "suppressed_cells": report.suppressed_cells,
                "merged_cells": report.merged_cells,
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
            },
        )
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise ShapePipelineError(
            f"{log_path}: cannot append to the audit log ({exc.strerror}); nothing was exported"
        ) from None
    out.ok(f"Written to {path} (sha256 {digest[:12]})", tag="Output")
    spent = f"; epsilon spent in the last 365 days: {spend.after:g} of {spend.budget:g}" if spend else ""
    out.ok(f"Extraction recorded in {log_path}" + (" (salt reused: allowed)" if reused else "") + spent, tag="Audit")
    return SampleResult(
        path=path,
        sha256=digest,
        shape=shape,
        suppressed_cells=report.suppressed_cells,
        merged_cells=report.merged_cells,
        audit_log=log_path,
        salt_reused=reused,
        database=where,
        seconds=time.perf_counter() - started,
        plan_pairs=phase2.plan_pairs,
        layout_tables=phase2.layout_tables,
    )


def _privacy_entry(privacy: str, report: PrivacyReport, min_cell_count: int, spend: BudgetCheck | None) -> dict:
    """The audit log's privacy fields: the mode, and the epsilon ledger (DP) or k (suppression)."""
    if privacy == "suppression":
        return {
            "privacy": "suppression",
            "min_cell_count": min_cell_count,
            "min_cell_count_forced": min_cell_count < SAFE_MIN_CELL_COUNT,
        }
    assert report.dp is not None and spend is not None
    return {
        "privacy": "dp",
        "epsilon": report.dp.epsilon,
        "epsilon_by_family": {name: f.epsilon for name, f in report.dp.families.items()},
        "max_messages_per_user": report.dp.max_messages_per_user,
        "max_conversations_per_user": report.dp.max_conversations_per_user,
        "epsilon_budget": spend.budget,
        "budget_override": spend.overridden,
    }


def _report_totals(out: Reporter, shape: ShapeMetrics, privacy: str) -> None:
    """The totals as exported (DP mode: the noisy ones; the exact counts are never printed)."""
    totals = shape.totals
    if totals is None:
        return
    noisy = " (noisy)" if privacy == "dp" else ""
    for name in ("users", "conversations", "messages"):
        value = getattr(totals, name)
        out.detail(f"{name.capitalize()}{noisy}: {fmt_int(value) if isinstance(value, int) else value}")
    if totals.messages == 0 and privacy == "dp":
        out.warn("The noisy message total is 0: an empty window, or too few messages to show at this epsilon")
    elif totals.messages == 0:
        out.warn("No messages in the window: the shape is empty (totals 0, no distributions)")


def _report_phase2(out: Reporter, phase2: Phase2, runs: int) -> None:
    """What ran, never a value: counts and the workload's name."""
    if phase2.physical_layout is not None:
        out.ok(f"Physical layout: {phase2.layout_tables} tables (pg_stats correlation and width, id formats)")
    if phase2.query_plans is not None:
        out.ok(
            f"Query plans: {phase2.plan_pairs} (query, rank) pairs of workload "
            f"{phase2.query_plans.workload}, {runs} runs each (plan shapes only)"
        )
