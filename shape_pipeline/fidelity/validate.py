"""The validator: extract the synthetic data's own shape, compare, decide, recommend, write.

The synthetic side is reduced to frequency tables by the sampler's own aggregate code
(`extract_frequencies`, same window as the shape file, same mapping) or, for a Parquet folder,
by Arrow group-bys with the same definitions. The comparison itself (`compare`) is pure.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from shape_pipeline.console import Emit, Reporter
from shape_pipeline.contracts import CalibratedConfig, FidelityReport, FidelitySummary, ShapeMetrics
from shape_pipeline.conventions import CONFIG_PLACEHOLDER, DEFAULT_TOLERANCE
from shape_pipeline.db import check_connection, create_engine, redact
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.fidelity import integrity, parquet_source
from shape_pipeline.fidelity.comparisons import Inputs, run_tests
from shape_pipeline.fidelity.database_source import (
    DatabaseFindings,
    parquet_findings,
    read_database_findings,
    wants_database,
    workload_for_shape,
)
from shape_pipeline.fidelity.integrity import IntegrityFindings
from shape_pipeline.fidelity.recommendations import Commands, recommend, summary_lines
from shape_pipeline.fidelity.render_console import render
from shape_pipeline.fidelity.verdict import overall
from shape_pipeline.files import (
    PathLike,
    check_writable,
    load_json_model,
    model_json,
    write_texts_atomic,
)
from shape_pipeline.mapping import load_mapping
from shape_pipeline.sampling.extract import extract_frequencies
from shape_pipeline.sampling.frequencies import FrequencyTables
from shape_pipeline.workload.compare import DEFAULT_MAX_LOG2_RATIO, check_log2_ratio
from shape_pipeline.workload.spec import Workload


def shape_window(shape: ShapeMetrics) -> tuple[datetime, datetime]:
    """The shape's window; a seed-form shape's window ends at `extracted_at`."""
    end = shape.window_end or shape.extracted_at
    start = shape.window_start or end - timedelta(days=shape.sample_window_days)
    return _utc(start), _utc(end)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_tolerance(tolerance: float) -> float:
    if not 0.0 < tolerance < 1.0:
        raise ShapePipelineError(f"--tolerance: {tolerance} must be between 0 and 1 (e.g. {DEFAULT_TOLERANCE:g})")
    return tolerance


def parquet_folder(parquet_dir: str | Path) -> Path:
    """The synthetic Parquet folder, refused in one line when it is missing or not a folder."""
    folder = Path(parquet_dir)
    if folder.exists() and not folder.is_dir():
        raise ShapePipelineError(f"--parquet-dir: {folder} is not a directory")
    if not folder.is_dir():
        raise ShapePipelineError(f"No such directory: {folder} (--parquet-dir)")
    return folder


def read_synthetic(
    shape: ShapeMetrics,
    *,
    database_url: str | None = None,
    mapping_path: str | Path | None = None,
    parquet_dir: str | Path | None = None,
) -> tuple[FrequencyTables, IntegrityFindings, str]:
    """(frequency tables, integrity findings, printable source) of the synthetic dataset."""
    if (database_url is None) == (parquet_dir is None):
        raise ShapePipelineError("give exactly one of --database-url and --parquet-dir")
    start, end = shape_window(shape)
    if parquet_dir is not None:
        folder = parquet_folder(parquet_dir)
        freq = parquet_source.frequencies_from_parquet(folder, window_start=start, window_end=end)
        found = integrity.check_parquet(folder, window_start=start, window_end=end)
        source = str(folder)
    else:
        mapping = load_mapping(mapping_path)
        engine = create_engine(database_url or "", must_exist=True)
        try:
            check_connection(engine)
            freq = extract_frequencies(engine, mapping, window_start=start, window_end=end)
            found = integrity.check_database(engine, mapping, window_start=start, window_end=end)
        finally:
            engine.dispose()
        source = redact(engine.url)
    if freq.messages_total == 0:
        raise ShapePipelineError(
            f"{source}: no messages between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC "
            "(the shape's window): nothing to validate (empty dataset, or generated for another window?)"
        )
    return freq, found, source


def compare(
    shape: ShapeMetrics,
    synthetic: FrequencyTables,
    found: IntegrityFindings | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    config: CalibratedConfig | None = None,
    commands: Commands | None = None,
    source: str | None = None,
    now: datetime | None = None,
    database: DatabaseFindings | None = None,
    plan_log2_ratio: float = DEFAULT_MAX_LOG2_RATIO,
) -> FidelityReport:
    """Run every test, attach recommendations, decide the overall verdict (pure).

    `database`: the synthetic database's plans and layout (`read_phase_two`); without it the
    query-plan and physical-layout tests are SKIPPED."""
    check_tolerance(tolerance)
    check_log2_ratio(plan_log2_ratio)
    tests = run_tests(Inputs(shape, synthetic, found, tolerance, database, plan_log2_ratio))
    for key, result in tests.items():
        result.recommendations = recommend(key, result, config)
    verdicts = [t.verdict for t in tests.values()]
    return FidelityReport(
        validation_timestamp=now or datetime.now(UTC),
        tolerance_threshold=tolerance,
        overall_verdict=overall(verdicts),
        shape_extracted_at=shape.extracted_at,
        synthetic_source=source,
        tests=tests,
        summary=FidelitySummary(
            passed_tests=verdicts.count("PASS"),
            failed_tests=verdicts.count("FAIL"),
            warning_tests=verdicts.count("WARNING"),
            skipped_tests=verdicts.count("SKIPPED"),
            recommendations=summary_lines(tests, commands or Commands()),
        ),
    )


def validate(
    shape: ShapeMetrics,
    *,
    database_url: str | None = None,
    mapping_path: str | Path | None = None,
    parquet_dir: str | Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    config: CalibratedConfig | None = None,
    commands: Commands | None = None,
    workload_path: str | Path | None = None,
    plan_log2_ratio: float = DEFAULT_MAX_LOG2_RATIO,
) -> FidelityReport:
    """Validate one synthetic dataset (database or Parquet folder) against a production shape.

    `workload_path`: the workload the shape's plans were made with (None: the shipped default);
    a file whose fingerprint differs is refused before any query."""
    check_tolerance(tolerance)
    check_log2_ratio(plan_log2_ratio)
    workload = workload_for_shape(shape, workload_path) if wants_database(shape, database_url) else None
    freq, found, source = read_synthetic(
        shape, database_url=database_url, mapping_path=mapping_path, parquet_dir=parquet_dir
    )
    return compare(
        shape,
        freq,
        found,
        tolerance=tolerance,
        config=config,
        commands=commands,
        source=source,
        database=read_phase_two(shape, database_url, mapping_path, workload),
        plan_log2_ratio=plan_log2_ratio,
    )


def read_phase_two(
    shape: ShapeMetrics, database_url: str | None, mapping_path: str | Path | None, workload: Workload | None
) -> DatabaseFindings:
    """The synthetic database's plans for the shape's workload (run with the shape's window end)
    and its physical layout, where the shape has them; see `database_source`."""
    if database_url is None:
        return parquet_findings()
    if shape.query_plans is None and shape.physical_layout is None:
        return DatabaseFindings()  # both tests skip for the shape's lack
    return read_database_findings(
        database_url,
        load_mapping(mapping_path),
        workload=workload,
        want_layout=shape.physical_layout is not None,
        window_end=shape_window(shape)[1],
    )


def validate_to_files(
    shape_path: str | Path,
    output_path: str | Path,
    *,
    database_url: str | None = None,
    mapping_path: str | Path | None = None,
    parquet_dir: str | Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    html_path: str | Path | None = None,
    config_path: str | Path | None = None,
    emit: Emit | None = None,
    workload_path: str | Path | None = None,
    plan_log2_ratio: float = DEFAULT_MAX_LOG2_RATIO,
) -> FidelityReport:
    """Read the shape (and config), validate, print the seed's console report, write JSON (+ HTML).

    Both paths are checked before any work; both files are rendered in full, then written as a
    pair (both or neither, see `write_texts_atomic`).
    """
    check_writable(output_path, option="--output")
    if html_path is not None:
        check_writable(html_path, option="--html")
    shape = load_json_model(shape_path, ShapeMetrics, what="shape metrics")
    config = load_json_model(config_path, CalibratedConfig, what="calibrated config") if config_path else None
    target = (
        f"--parquet-dir {parquet_dir}" if parquet_dir is not None else f"--database-url {redact(database_url or '')}"
    )
    if mapping_path and parquet_dir is None:
        target += f" --mapping {mapping_path}"
    options = f" --workload {workload_path}" if workload_path else ""
    if plan_log2_ratio != DEFAULT_MAX_LOG2_RATIO:
        options += f" --plan-log2-ratio {plan_log2_ratio:g}"
    commands = Commands(
        config=str(config_path or CONFIG_PLACEHOLDER),
        shape=str(shape_path),
        target=target,
        output=str(output_path),
        validate_options=options,
    )
    report = validate(
        shape,
        database_url=database_url,
        mapping_path=mapping_path,
        parquet_dir=parquet_dir,
        tolerance=tolerance,
        config=config,
        commands=commands,
        workload_path=workload_path,
        plan_log2_ratio=plan_log2_ratio,
    )
    render(report, emit)
    html = None
    if html_path is not None:
        from shape_pipeline.fidelity.report_html import render_html

        html = render_html(report, shape_path=str(shape_path))
    texts: dict[PathLike, str] = {output_path: model_json(report)}
    if html is not None and html_path is not None:
        texts[html_path] = html
    write_texts_atomic(texts)
    out = Reporter("Output", emit)
    out.ok(f"Written to {output_path}")
    if html_path is not None:
        out.ok(f"HTML report written to {html_path}")
    return report
