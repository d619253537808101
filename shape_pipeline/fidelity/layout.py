"""The "Physical layout" test: the synthetic rows lie on disk, and their ids look, as production's.

Plans follow physical order and row width as much as distributions: a column whose `pg_stats`
correlation is near 1 makes index range scans cheap, wider ids make tables and indexes larger.
Compared per mapped entity, after ANALYZE on both sides:

- correlation of each mapped key and time column (ORDER_FIELDS, the time fields): absolute
  difference within CORRELATION_LIMIT (0.3; correlation runs from -1 to 1, and 0.59 against
  -0.03 is the grouped-by-conversation write order that flipped plans in the hidden check).
  Free text and categories are left out: their correlation is noise around 0 (a mostly-NULL
  name column moved by 0.25 between two faithful worlds) and no index range scan reads it;
- the size of messages (whole table, rows rounded to 2 significant digits: production's holds
  its history, not only the sampled window), avg_width of the same key and time columns and of
  message content, and rows per page of messages: plain relative error |s/p - 1| within the
  tolerance. Profile text and the app's
  unmapped columns (Mattermost's ChannelMembers.NotifyProps JSON, written as '' unless the
  mapping's `fill` gives a typical value) are left out: the generator does not model them;
- the id format (kind, length, alphabet, time-ordered): equal, or FAIL.

The worst item, measured against its own limit, decides through `verdict.decide` (FAIL above,
WARNING in the top third); any id format that differs is a FAIL whatever the numbers. Items
production has but the synthetic database lacks statistics for are listed; when none can be
compared at all, the synthetic database was never analyzed: FAIL, run VACUUM ANALYZE.
"""

from __future__ import annotations

from typing import Any

from shape_pipeline.contracts import (
    CalibratedConfig,
    IdFormat,
    PhysicalLayout,
    Recommendation,
    TestResult,
)
from shape_pipeline.fidelity.database_source import DatabaseFindings
from shape_pipeline.fidelity.verdict import WARNING_FRACTION, decide
from shape_pipeline.workload.spec import TIME_FIELDS

TITLE = "Physical layout (correlation, row width, id format)"
CORRELATION_LIMIT = 0.3
ID_FIELDS = ("kind", "length", "alphabet", "time_ordered")
ORDER_FIELDS = frozenset({"id", "conversation_id", "sender_id", "user_id"})  # keys an index orders


SIZED_TABLES = frozenset({"messages"})  # tables whose rows per page are judged


def orders_scans(entity: str, field: str) -> bool:
    """True for the columns whose correlation decides index range scans: keys and times."""
    return field in ORDER_FIELDS or f"{entity}.{field}" in TIME_FIELDS


def sizes_scans(entity: str, field: str) -> bool:
    """True for the columns whose width is judged: keys, times and message content."""
    return orders_scans(entity, field) or (entity, field) == ("messages", "content")


def describe_ids(ids: IdFormat | None) -> str:
    """'text, 26 characters, base32, random' / 'integer, time-ordered' / 'unknown'."""
    if ids is None:
        return "unknown"
    parts = [ids.kind if ids.uuid_version is None else f"uuid v{ids.uuid_version}"]
    if ids.length is not None:
        parts.append(f"{ids.length} characters")
    if ids.alphabet is not None:
        parts.append(ids.alphabet)
    if ids.time_ordered is not None:
        parts.append("time-ordered" if ids.time_ordered else "random order")
    return ", ".join(parts)


def _relative(syn: float, prod: float) -> float:
    return abs(syn / prod - 1.0)


def _item(
    entity: str, field: str | None, measure: str, prod: float, syn: float, error: float, limit: float
) -> dict[str, Any]:
    return {
        "entity": entity,
        "field": field,
        "measure": measure,
        "production": prod,
        "synthetic": syn,
        "error": error,
        "limit": limit,
    }


def layout_items(
    production: PhysicalLayout, synthetic: PhysicalLayout, tolerance: float, correlation_limit: float
) -> tuple[list[dict[str, Any]], list[dict[str, str]], list[str]]:
    """(numeric items, id format mismatches, names lacking synthetic statistics)."""
    items: list[dict[str, Any]] = []
    mismatches: list[dict[str, str]] = []
    missing: list[str] = []
    for entity, prod in production.tables.items():
        syn = synthetic.tables.get(entity)
        if syn is None:
            missing.append(entity)
            continue
        if prod.rows and entity in SIZED_TABLES and syn.rows is not None:
            # plans follow table size: production's table holds its history, not only the window
            err = _relative(syn.rows, prod.rows)
            items.append(_item(entity, None, "rows", prod.rows, syn.rows, err, tolerance))
        if prod.rows_per_page and entity in SIZED_TABLES:
            if syn.rows_per_page is None:
                missing.append(f"{entity} rows per page")
            else:
                err = _relative(syn.rows_per_page, prod.rows_per_page)
                items.append(
                    _item(entity, None, "rows_per_page", prod.rows_per_page, syn.rows_per_page, err, tolerance)
                )
        for field, pc in prod.columns.items():
            sc = syn.columns.get(field)
            if sc is None:
                missing.append(f"{entity}.{field}")
                continue
            if pc.correlation is not None and sc.correlation is not None and orders_scans(entity, field):
                err = abs(sc.correlation - pc.correlation)
                items.append(
                    _item(entity, field, "correlation", pc.correlation, sc.correlation, err, correlation_limit)
                )
            if pc.avg_width and sc.avg_width is not None and sizes_scans(entity, field):
                err = _relative(sc.avg_width, pc.avg_width)
                items.append(_item(entity, field, "avg_width", pc.avg_width, sc.avg_width, err, tolerance))
        if prod.ids is not None:
            fields = [f for f in ID_FIELDS if getattr(prod.ids, f) is not None]
            if syn.ids is None or any(getattr(prod.ids, f) != getattr(syn.ids, f) for f in fields):
                mismatches.append(
                    {"entity": entity, "production": describe_ids(prod.ids), "synthetic": describe_ids(syn.ids)}
                )
    return items, mismatches, missing


def _name(item: dict[str, Any]) -> str:
    where = item["entity"] if item["field"] is None else f"{item['entity']}.{item['field']}"
    return f"{where} {item['measure'].replace('_', ' ')}"


def physical_layout_result(
    production: PhysicalLayout | None,
    found: DatabaseFindings | None,
    *,
    tolerance: float,
    correlation_limit: float = CORRELATION_LIMIT,
) -> TestResult:
    """Compare production's layout with the synthetic database's (see the module docstring)."""
    if production is None:
        return TestResult(title=TITLE, verdict="SKIPPED", reason="the shape has no physical_layout")
    if found is None or found.unavailable or found.layout is None:
        reason = found.unavailable if found and found.unavailable else "the synthetic database's layout was not read"
        return TestResult(title=TITLE, verdict="SKIPPED", reason=reason)
    items, mismatches, missing = layout_items(production, found.layout, tolerance, correlation_limit)
    common: dict[str, Any] = {
        "title": TITLE,
        "production": {"layout": production.model_dump(mode="json")},
        "synthetic": {
            "layout": found.layout.model_dump(mode="json"),
            "items": items,
            "id_mismatches": mismatches,
            "not_analyzed": missing,
            "correlation_limit": correlation_limit,
        },
    }
    if mismatches:
        names = "; ".join(f"{m['entity']}: {m['synthetic']} vs {m['production']}" for m in mismatches)
        return TestResult(
            verdict="FAIL",
            statistic="id_format_mismatches",
            effect_size=float(len(mismatches)),
            tolerance=0.0,
            reason=f"id format differs from production's ({names})",
            **common,
        )
    if not items:
        if missing:
            return TestResult(
                verdict="FAIL",
                reason="the synthetic database has no statistics to compare (never analyzed? run VACUUM ANALYZE on it)",
                **common,
            )
        return TestResult(verdict="SKIPPED", reason="no layout statistic on both sides", **common)
    worst = max(items, key=lambda it: it["error"] / it["limit"])
    verdict, reason = decide(worst["error"], worst["limit"])
    statistic = "correlation_difference" if worst["measure"] == "correlation" else "relative_error"
    return TestResult(
        verdict=verdict,
        statistic=statistic,
        effect_size=worst["error"],
        tolerance=worst["limit"],
        reason=f"{_name(worst)}: {reason} ({worst['synthetic']:g} vs {worst['production']:g} in production)",
        **common,
    )


def off_items(result: TestResult) -> list[dict[str, Any]]:
    """The numeric items above the WARNING line of their limit, worst first."""
    items = result.synthetic.get("items", [])
    off = [it for it in items if it["error"] > WARNING_FRACTION * it["limit"]]
    return sorted(off, key=lambda it: -it["error"] / it["limit"])


def _item_advice(item: dict[str, Any]) -> Recommendation:
    entity, field, measure = item["entity"], item["field"], item["measure"]
    p, s = item["production"], item["synthetic"]
    head = f"{_name(item)} is {s:g} vs {p:g} in production"
    if measure == "correlation":
        why = (
            f"the synthetic rows lie in another physical order: write {entity} in the order the app inserts "
            "them (by creation time, interleaved across conversations), then VACUUM ANALYZE"
        )
    elif measure == "rows":
        why = (
            f"plans follow table size: generate --target-messages {p:.0f}, or sample the history the app's "
            "queries see (--window-days) so the shape's totals hold it"
        )
    elif measure == "rows_per_page":
        why = f"synthetic {entity} rows are {'narrower' if s > p else 'wider'}: compare the avg width of its columns and its id format"
    elif field == "id" or (field or "").endswith("_id"):
        why = f"ids are {'wider' if s > p else 'narrower'} than production's: make ids in production's format (id_formats in the calibrated config)"
    elif field == "content":
        why = "message texts have another mean length: check the content length test"
    else:
        why = f"the values are {'wider' if s > p else 'narrower'} than production's"
    return Recommendation(text=f"{head}: {why}", current_value=s, suggested_value=p)


def layout_recommendations(result: TestResult, config: CalibratedConfig | None) -> list[Recommendation]:
    """Id formats to set, the write order to follow, widths to check: computed from the items."""
    recs: list[Recommendation] = []
    for m in result.synthetic.get("id_mismatches", []):
        entity = m["entity"]
        configured = config.id_formats.get(entity) if config else None
        if configured is not None and describe_ids(configured) == m["production"]:
            tail = f"id_formats.{entity} already holds it: the generator does not follow it"
        else:
            tail = f"set id_formats.{entity} in the calibrated config to production's (calibrate again from the shape) and regenerate"
        recs.append(
            Recommendation(
                text=f"{entity} ids are {m['synthetic']} but {m['production']} in production: {tail}",
                config_key=f"id_formats.{entity}",
                current_value=m["synthetic"],
                suggested_value=m["production"],
            )
        )
    recs += [_item_advice(it) for it in off_items(result)[:5]]
    if not recs and result.synthetic.get("not_analyzed"):
        recs.append(
            Recommendation(
                text="run VACUUM ANALYZE on the synthetic database (the generator does it after loading), then validate again"
            )
        )
    return recs
