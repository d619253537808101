"""The validator's console output in the seed's style (`=== FIDELITY VALIDATION ===`, `[Test 1] ...`).

The CLI prints these lines; the Dagster asset sends the same lines to `context.log.info`.
"""

from __future__ import annotations

from shape_pipeline.console import Emit, Reporter, fmt_pct
from shape_pipeline.contracts import FidelityReport, TestResult
from shape_pipeline.fidelity.layout import off_items
from shape_pipeline.fidelity.plans import STATISTIC as PLANS_STATISTIC
from shape_pipeline.fidelity.plans import comparison_of
from shape_pipeline.workload.compare import comparison_lines

SHARE_STATISTICS = ("max_share_error", "max_weekly_share_error")


def statistic_lines(result: TestResult) -> list[str]:
    """The statistic lines of one test (without the `[Test N]` tag)."""
    lines: list[str] = []
    if result.chi_square_statistic is not None:
        p = f"{result.p_value:.3f}" if result.p_value is not None else "n/a"
        lines.append(f"Chi-Square: {result.chi_square_statistic:.2f}, p-value: {p}")
    tvd = result.synthetic.get("total_variation_distance")
    if result.statistic == "total_variation_distance" and result.effect_size is not None:
        tvd = result.effect_size
    if tvd is not None:
        lines.append(f"Total Variation Distance: {tvd:.3f} (tolerance {result.tolerance:.2f})")
    rare = result.synthetic.get("rare_share_errors")
    if rare:
        lines.append("Rare Category Errors: " + ", ".join(f"{k} {fmt_pct(v)}" for k, v in rare.items()))
    if result.ks_statistic is not None:
        lines.append(f"KS Statistic: {result.ks_statistic:.3f}")
    if result.max_percentile_error is not None:
        lines.append(f"Max Percentile Error: {fmt_pct(result.max_percentile_error)}")
    if result.mean_error is not None:
        lines.append(f"Mean Error: {fmt_pct(result.mean_error)}")
    if result.median_error is not None:
        lines.append(f"Median Error: {fmt_pct(result.median_error)}")
    errors = result.synthetic.get("share_errors")
    if result.statistic in SHARE_STATISTICS and errors:
        lines.append("Share Errors: " + ", ".join(f"{k.replace('_', ' ')} {fmt_pct(v)}" for k, v in errors.items()))
    if result.noise_band is not None:
        band = (
            f"{result.noise_band:.3f}"
            if result.statistic == "total_variation_distance" and not rare
            else fmt_pct(result.noise_band)
        )
        source = (
            "sampling noise at these sizes and the shape's DP noise"
            if "dp_noise" in result.synthetic
            else ("what sampling noise alone gives at these sizes")
        )
        lines.append(f"Noise Band: {band} ({source})")
    if result.statistic == "integrity_breaches":
        lines.append(f"Breaches: {int(result.effect_size or 0):,}")
    if result.statistic == PLANS_STATISTIC:
        lines.append(
            f"Plans Differing: {fmt_pct(result.effect_size or 0.0)} of {result.synthetic.get('count', 0)} "
            f"(query, rank) pairs (at most {fmt_pct(result.tolerance or 0.0, 0)} may warn)"
        )
        prod_ms, syn_ms = result.production.get("median_ms"), result.synthetic.get("median_ms")
        if prod_ms is not None and syn_ms is not None:
            lines.append(f"Median Time: production {prod_ms:.3g} ms, synthetic {syn_ms:.3g} ms (reported, not judged)")
    verdict = f"Verdict: {result.verdict}"
    if result.verdict != "PASS" and result.reason:
        verdict += f" ({result.reason})"
    lines.append(verdict)
    return lines


def detail_lines(result: TestResult) -> list[str]:
    """The tables under a test: the plan comparison, the layout items off their limits."""
    if result.statistic == PLANS_STATISTIC and (c := comparison_of(result)) is not None:
        return comparison_lines(c)
    lines = [
        f"{m['entity']} ids: synthetic {m['synthetic']} vs production {m['production']}"
        for m in result.synthetic.get("id_mismatches", [])
    ]
    lines += [
        f"{it['entity']}{'' if it['field'] is None else '.' + it['field']} {it['measure'].replace('_', ' ')}: "
        f"synthetic {it['synthetic']:g} vs production {it['production']:g} (limit {it['limit']:g})"
        for it in off_items(result)
    ]
    return lines


def render(report: FidelityReport, emit: Emit | None = None) -> None:
    """Every test, the summary and the recommendations, as the seed printed them."""
    out = Reporter("Test", emit)
    out.header("FIDELITY VALIDATION")
    for number, result in enumerate(report.tests.values(), start=1):
        tag = f"Test {number}"
        out.line(f"{result.title}...", tag=tag)
        for line in statistic_lines(result):
            out.detail(line, tag=tag)
        for line in detail_lines(result):
            out.detail(f"  {line}", tag=tag)
        out.blank()
    counted = [t for t in report.tests.values() if t.verdict != "SKIPPED"]
    s = report.summary
    out.header("VALIDATION SUMMARY")
    for line in (
        f"Overall Verdict: {report.overall_verdict}",
        f"Passed: {s.passed_tests}/{len(counted)} tests",
        f"Failed: {s.failed_tests}/{len(counted)} tests",
    ):
        out.emit(line)
    if s.warning_tests:
        out.emit(f"Warnings: {s.warning_tests}/{len(counted)} tests")
    if s.skipped_tests:
        out.emit(f"Skipped: {s.skipped_tests} tests (the shape lacks their metrics)")
    out.blank()
    out.emit("Recommendations:")
    for line in s.recommendations:
        out.emit(f"  • {line}")
    out.blank()
