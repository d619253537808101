"""The HTML report: one self-contained page people can open from an alert or the Dagster UI.

Verdict at the top; then per test the production and synthetic distributions side by side
(matplotlib, inline SVG): bars for categories, lines for the hourly and weekly waves, log axes
for heavy tails; with the statistic, the tolerance, the verdict's reason and the recommendations.
Query plans get a side-by-side table (production tree | synthetic tree per query and rank, the
nodes where the shapes part in red, rows beyond the factor in amber); the physical layout a
table of every compared number.
"""

from __future__ import annotations

import html
import io
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global state, safe in Dagster's threads

from shape_pipeline.contracts import (
    PLAN_SHAPE_FIELDS,
    FidelityReport,
    PlanNode,
    QueryPlan,
    TestResult,
)
from shape_pipeline.fidelity.plans import comparison_of
from shape_pipeline.fidelity.render_console import statistic_lines
from shape_pipeline.workload.compare import PairComparison, log2_ratio, node_label

PROD, SYN = "#1f77b4", "#ff7f0e"
COLORS = {"PASS": "#2e7d32", "FAIL": "#c62828", "WARNING": "#ef6c00", "SKIPPED": "#757575"}
LINE_TESTS = {"hourly_pattern", "day_of_week_pattern"}
HEAVY_TAILS = {
    "messages_per_conversation",
    "inter_message_gaps",
    "messages_per_sender",
    "content_length",
    "conversations_per_user",
    "conversation_lifetime",
}


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "fidelity"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=(7.0, 3.0))
    return fig, fig.add_subplot()


def category_chart(prod: dict[str, float], syn: dict[str, float], *, lines: bool = False) -> str:
    """Shares side by side: bars (categories) or lines (hourly/weekly waves)."""
    labels = list(prod.keys() | syn.keys()) if not lines else list(prod.keys())
    if not lines:
        labels.sort(key=lambda k: -prod.get(k, 0.0))
    fig, ax = _figure()
    x = list(range(len(labels)))
    p = [prod.get(k, 0.0) for k in labels]
    s = [syn.get(k, 0.0) for k in labels]
    if lines:
        ax.plot(x, p, marker="o", color=PROD, label="production")
        ax.plot(x, s, marker="s", color=SYN, label="synthetic")
    else:
        ax.bar([i - 0.2 for i in x], p, width=0.4, color=PROD, label="production")
        ax.bar([i + 0.2 for i in x], s, width=0.4, color=SYN, label="synthetic")
    ax.set_xticks(x, labels, rotation=0 if len(labels) < 10 else 90)
    ax.set_ylabel("share")
    ax.legend()
    return _svg(fig)


def distribution_chart(prod: dict[str, Any], syn: dict[str, Any], *, log: bool) -> str | None:
    """Histogram shares per bucket (log x for heavy tails), else the percentiles (log y)."""
    fig, ax = _figure()
    ph, sh = prod.get("histogram"), syn.get("histogram")
    if ph and sh:
        edges = ph["edges"]
        for counts, color, label in ((ph["counts"], PROD, "production"), (sh["counts"], SYN, "synthetic")):
            total = sum(counts) or 1
            ax.stairs([c / total for c in counts], edges, color=color, label=label, linewidth=1.5)
        if log and edges[0] >= 0:
            ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("value (bucket)")
        ax.set_ylabel("share")
    elif prod.get("percentiles"):
        keys = list(prod["percentiles"].keys())
        levels = [int(k[1:]) for k in keys]
        ax.plot(levels, [prod["percentiles"][k] for k in keys], marker="o", color=PROD, label="production")
        syn_pct = syn.get("percentiles", {})
        if syn_pct:
            ax.plot(levels, [syn_pct.get(k) for k in keys], marker="s", color=SYN, label="synthetic")
        if log:
            ax.set_yscale("symlog", linthresh=1.0)
        ax.set_xlabel("percentile")
        ax.set_ylabel("value")
    else:
        return None
    ax.legend()
    return _svg(fig)


def grid_chart(prod: dict[str, Any], syn: dict[str, Any]) -> str:
    """Production and synthetic shares of a 2-D grid side by side, on one colour scale."""
    fig = Figure(figsize=(7.0, 3.2))
    p, s = np.asarray(prod["shares"]), np.asarray(syn["shares"])
    top = max(float(p.max(initial=0.0)), float(s.max(initial=0.0)), 1e-9)
    rows, cols = prod["row_edges"], prod["column_edges"]
    for n, (shares, label) in enumerate(((p, "production"), (s, "synthetic")), start=1):
        ax = fig.add_subplot(1, 2, n)
        image = ax.imshow(shares, origin="lower", aspect="auto", cmap="Blues", vmin=0.0, vmax=top)
        ax.set_title(label)
        ax.set_yticks(range(len(rows) - 1), [f"{r:g}" for r in rows[:-1]])
        ax.set_xticks(range(len(cols) - 1), [f"{c:g}" for c in cols[:-1]], rotation=90)
        ax.set_xlabel("members (from)")
        if n == 1:
            ax.set_ylabel("messages (from)")
    fig.colorbar(image, ax=fig.axes, label="share of conversations")
    return _svg(fig)


def chart_for(key: str, result: TestResult) -> str | None:
    if result.verdict == "SKIPPED" or key in ("integrity", "query_plans", "physical_layout"):
        return None
    if "grid" in result.production:
        return grid_chart(result.production["grid"], result.synthetic.get("grid", {}))
    if "daily_shares" in result.production:
        return category_chart(result.production["daily_shares"], result.synthetic.get("daily_shares", {}), lines=True)
    if "shares" in result.production:
        return category_chart(result.production["shares"], result.synthetic.get("shares", {}), lines=key in LINE_TESTS)
    if key == "members_per_conversation":
        worst = result.synthetic.get("worst_type")
        if not worst:
            return None
        return distribution_chart(result.production.get(worst, {}), result.synthetic.get(worst, {}), log=False)
    return distribution_chart(result.production, result.synthetic, log=key in HEAVY_TAILS)


def _section(number: int, key: str, result: TestResult) -> str:
    esc = html.escape
    color = COLORS[result.verdict]
    stats = "".join(f"<li>{esc(line)}</li>" for line in statistic_lines(result))
    tolerance = "" if result.tolerance is None else f"<p>Tolerance: {result.tolerance:g}</p>"
    recs = "".join(f"<li>{esc(r.text)}</li>" for r in result.recommendations)
    chart = chart_for(key, result)
    parts = [
        f'<section id="{esc(key)}"><h2>Test {number}: {esc(result.title)} '
        f'<span class="badge" style="background:{color}">{result.verdict}</span></h2>',
        f"<ul>{stats}</ul>",
        tolerance,
        f'<div class="chart">{chart}</div>' if chart else "",
        f"<h3>Recommendation</h3><ul>{recs}</ul>" if recs else "",
    ]
    if result.synthetic.get("share_errors"):
        parts.append(_share_table(result))
    if key == "query_plans":
        parts.append(plan_table(result))
    if key == "physical_layout":
        parts.append(layout_table(result))
    if key == "integrity" and result.synthetic.get("counts"):
        rows = "".join(f"<tr><td>{esc(k)}</td><td>{v:,}</td></tr>" for k, v in result.synthetic["counts"].items())
        parts.append(f"<table><tr><th>rule</th><th>breaches</th></tr>{rows}</table>")
    return "".join(parts) + "</section>"


def _tree(node: PlanNode, other: PlanNode | None, limit: float, depth: int = 0) -> list[str]:
    """One `div` per node, indented by depth; `diff` where the shapes part (or the node has no
    counterpart), `size` where only its rows are beyond the factor."""
    parted = (
        other is None
        or len(node.children) != len(other.children)
        or any(getattr(node, f) != getattr(other, f) for f in PLAN_SHAPE_FIELDS)
    )
    cls = "diff" if parted else ("size" if abs(log2_ratio(node.rows, other.rows)) > limit else "")  # type: ignore[union-attr]
    lines = [
        f'<div class="node {cls}" style="padding-left:{depth * 1.2:g}em">{html.escape(node_label(node))} '
        f'<span class="num">rows {node.rows:,}, blocks {node.shared_blocks:,}</span></div>'
    ]
    for i, child in enumerate(node.children):
        counterpart = other.children[i] if other is not None and i < len(other.children) else None
        lines += _tree(child, counterpart, limit, depth + 1)
    return lines


def _plan_cell(plan: QueryPlan | None, other: QueryPlan | None, limit: float) -> str:
    if plan is None:
        return "<td>(not run)</td>"
    return f'<td class="tree">{"".join(_tree(plan.plan, other.plan if other else None, limit))}</td>'


def _log2(value: float | None) -> str:
    return "" if value is None else f"{value:+.2f}"


def plan_table(result: TestResult) -> str:
    """Per (query, rank): production plan | synthetic plan, rows and blocks log2, times."""
    c = comparison_of(result)
    if c is None:
        return ""
    prod_plans, syn_plans = result.production.get("plans", {}), result.synthetic.get("plans", {})

    def plan(plans: dict, p: PairComparison) -> QueryPlan | None:
        raw = plans.get(p.query, {}).get(p.rank)
        return None if raw is None else QueryPlan.model_validate(raw)

    rows = []
    for p in c.pairs:
        prod, syn = plan(prod_plans, p), plan(syn_plans, p)
        verdict = "same shape" if p.shape_equal else "shape differs"
        cls = "within" if p.within else "off"
        ms = f"{'' if p.production_ms is None else f'{p.production_ms:.3g}'} / {'' if p.synthetic_ms is None else f'{p.synthetic_ms:.3g}'}"
        rows.append(
            f'<tr class="{cls}"><td>{html.escape(p.query)}</td><td>{html.escape(p.rank)}</td>'
            f"{_plan_cell(prod, syn, c.max_log2_ratio)}{_plan_cell(syn, prod, c.max_log2_ratio)}"
            f"<td>{verdict}<br>rows log2 {_log2(p.rows_log2_signed)}<br>blocks "
            f"{'' if p.production_blocks is None else f'{p.production_blocks:,}'} / "
            f"{'' if p.synthetic_blocks is None else f'{p.synthetic_blocks:,}'} (log2 {_log2(p.blocks_log2_signed)})"
            f"<br>ms {ms}</td></tr>"
        )
    return (
        f'<table class="plans"><tr><th>query</th><th>rank</th><th>production plan</th><th>synthetic plan</th>'
        f"<th>rows, blocks, ms (prod / synth; log2 synthetic over production, limit &plusmn;{c.max_log2_ratio:g})</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def layout_table(result: TestResult) -> str:
    """Every compared layout number, and every id format that differs."""
    esc = html.escape
    rows = [
        f'<tr class="off"><td>{esc(m["entity"])}</td><td>id format</td><td>{esc(m["production"])}</td>'
        f"<td>{esc(m['synthetic'])}</td><td>differs</td><td>equal</td></tr>"
        for m in result.synthetic.get("id_mismatches", [])
    ]
    for it in result.synthetic.get("items", []):
        where = it["entity"] if it["field"] is None else f"{it['entity']}.{it['field']}"
        rows.append(
            f'<tr class="{"off" if it["error"] > it["limit"] else "within"}"><td>{esc(where)}</td>'
            f"<td>{esc(it['measure'].replace('_', ' '))}</td><td>{it['production']:g}</td><td>{it['synthetic']:g}</td>"
            f"<td>{it['error']:.3f}</td><td>{it['limit']:g}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<table><tr><th>column</th><th>measure</th><th>production</th><th>synthetic</th><th>error</th>"
        f"<th>limit</th></tr>{''.join(rows)}</table>"
    )


def _share_table(result: TestResult) -> str:
    """Each share of a share test: production, synthetic, plain error and noise band."""
    prod, syn = result.production.get("shares", {}), result.synthetic.get("shares", {})
    errors, bands = result.synthetic["share_errors"], result.synthetic.get("noise_bands", {})
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{prod.get(k, 0.0):.2%}</td><td>{syn.get(k, 0.0):.2%}</td>"
        f"<td>{e:.1%}</td><td>&plusmn;{bands.get(k, 0.0):.1%}</td></tr>"
        for k, e in errors.items()
    )
    return (
        "<table><tr><th>share</th><th>production</th><th>synthetic</th><th>error</th>"
        f"<th>noise band</th></tr>{rows}</table>"
    )


def render_html(report: FidelityReport, *, shape_path: str | None = None) -> str:
    """The whole page as one string (no external files, scripts or fonts)."""
    esc = html.escape
    color = COLORS[report.overall_verdict]
    s = report.summary
    summary = "".join(f"<li>{esc(line)}</li>" for line in s.recommendations)
    sections = "".join(_section(n, k, r) for n, (k, r) in enumerate(report.tests.items(), start=1))
    rows = "".join(
        f'<tr><td><a href="#{esc(k)}">{esc(r.title)}</a></td>'
        f'<td style="color:{COLORS[r.verdict]}">{r.verdict}</td>'
        f"<td>{esc(r.statistic or '')}</td><td>{'' if r.effect_size is None else f'{r.effect_size:.3f}'}</td></tr>"
        for k, r in report.tests.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fidelity report: {report.overall_verdict}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}}
.verdict{{font-size:2em;color:#fff;background:{color};padding:.4em .8em;border-radius:.3em}}
.badge{{color:#fff;padding:.1em .5em;border-radius:.3em;font-size:.8em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}
section{{border-top:1px solid #ddd;margin-top:1.5em}} .chart svg{{max-width:100%;height:auto}}
table.plans{{display:block;overflow-x:auto}} .plans td{{vertical-align:top}} .tree{{font-family:monospace;font-size:.85em;white-space:nowrap}}
.node.diff{{background:#ffcdd2}} .node.size{{background:#ffe0b2}} .num{{color:#666}}
tr.off td:first-child{{border-left:4px solid #c62828}}
</style></head><body>
<h1>Fidelity validation</h1>
<p class="verdict">Overall verdict: {report.overall_verdict}</p>
<p>Validated {report.validation_timestamp:%Y-%m-%d %H:%M UTC} against the shape extracted
{"" if report.shape_extracted_at is None else f"{report.shape_extracted_at:%Y-%m-%d %H:%M UTC}"}
{f"({esc(shape_path)})" if shape_path else ""}; synthetic data: {esc(report.synthetic_source or "")};
tolerance {report.tolerance_threshold:g}. Passed {s.passed_tests}, warnings {s.warning_tests},
failed {s.failed_tests}, skipped {s.skipped_tests}.</p>
<table><tr><th>test</th><th>verdict</th><th>deciding statistic</th><th>value</th></tr>{rows}</table>
<h2>Recommendations</h2><ul>{summary}</ul>
{sections}
</body></html>
"""
