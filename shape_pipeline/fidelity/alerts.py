"""Fidelity alerts through apprise: Slack, e-mail, Teams, a JSON webhook... from one URL list.

Destinations are apprise URLs in `SHAPE_PIPELINE_ALERT_URLS` (separated by spaces or commas,
e.g. `slack://T/B/C mailtos://user:pw@example.com json://alerts.example.com/hook`). A message
carries only test names, statistics, verdicts and recommendations: aggregates, never a row.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import apprise

from shape_pipeline import settings


@dataclass(frozen=True)
class FailedCheck:
    """One failed fidelity check evaluation, as the alert reports it."""

    name: str
    severity: str  # "ERROR" (a FAIL: the run fails) or "WARN" (a WARNING: the run stays green)
    verdict: str
    reason: str = ""
    statistic: str | None = None
    effect_size: float | None = None
    tolerance: float | None = None
    noise_band: float | None = None  # what sampling noise alone gives, in the statistic's unit
    recommendations: list[str] = field(default_factory=list)


def alert_urls(configured: str | None = None) -> list[str]:
    """The destinations: the resource's value if set, else `SHAPE_PIPELINE_ALERT_URLS`."""
    raw = configured or os.environ.get(settings.ALERT_URLS, "")
    return [u for u in raw.replace(",", " ").split() if u]


def compose(checks: Sequence[FailedCheck], *, run_id: str, report_path: str | None = None) -> tuple[str, str]:
    """(title, body) of one alert for all failed checks of one run."""
    errors = [c for c in checks if c.severity == "ERROR"]
    level = "FAIL" if errors else "WARNING"
    title = f"Fidelity {level}: {len(checks)} check(s) failed in run {run_id[:8]}"
    lines = [f"Synthetic dataset fidelity is {level} (run {run_id})."]
    for c in checks:
        stat = ""
        if c.statistic and c.effect_size is not None:
            stat = f" {c.statistic} {c.effect_size:.3f}"
            if c.tolerance is not None:
                stat += f" vs tolerance {c.tolerance:g}"
            if c.noise_band is not None:
                stat += f" (noise band {c.noise_band:.3f})"
        lines.append(f"- {c.name} [{c.severity}] {c.verdict}:{stat}. {c.reason}".rstrip())
        lines.extend(f"    -> {r}" for r in c.recommendations)
    if report_path:
        lines.append(f"Report: {report_path}")
    return title, "\n".join(lines)


def send(title: str, body: str, urls: Sequence[str]) -> bool:
    """Notify every destination; True if all accepted the message."""
    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            raise ValueError(f"{settings.ALERT_URLS}: not a valid apprise URL ({url.split('://')[0]}://...)")
    return bool(notifier.notify(title=title, body=body))
