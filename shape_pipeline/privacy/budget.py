"""The epsilon ledger: how much differential-privacy budget the audit log says is spent.

Each DP extraction spends its epsilon and epsilons add up (sequential composition), so the
audit log doubles as the ledger. The budget covers a rolling window of the last
`BUDGET_DAYS` days, not a calendar year: with a calendar year, a whole year's budget could
be spent on 31 December and again on 1 January.

A DP entry that cannot be read is an error, never skipped: skipping it would under-count
what was spent.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shape_pipeline.audit_log import numbered_audit_entries
from shape_pipeline.errors import PrivacyError, ShapePipelineError
from shape_pipeline.privacy.defaults import DEFAULT_YEARLY_EPSILON

BUDGET_DAYS: int = 365
"""The rolling window (days) that the budget covers."""

TOLERANCE: float = 1e-9
"""Float slack so that 4 x 2.0 fits in 8.0 exactly."""

DP = "dp"
NOT_DP = frozenset({"suppression"})  # plus entries without a "privacy" key (older entries)

_OPTIONS = "wait, raise --epsilon-budget, or pass --override-budget"


@dataclass(frozen=True)
class _Spend:
    time: datetime
    epsilon: float


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (the log writes UTC), so they compare with aware ones."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _fmt(value: float) -> str:
    return f"{value:g}"


def _parse_spend(entry: Mapping[str, Any], where: str) -> _Spend | None:
    """The time and epsilon of a DP entry, None for a non-DP entry; a DP entry that cannot be
    read raises (it would otherwise be silently free)."""
    privacy = entry.get("privacy")
    if privacy is None or privacy in NOT_DP:
        return None
    if privacy != DP:
        raise ShapePipelineError(
            f"{where}: unknown privacy mode {privacy!r} (expected 'dp' or 'suppression'); cannot tell what it spent"
        )
    epsilon = entry.get("epsilon")
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not math.isfinite(epsilon) or epsilon <= 0:
        raise ShapePipelineError(
            f"{where}: DP entry without a readable epsilon (expected a finite number > 0); "
            "cannot count the privacy budget"
        )
    raw_time = entry.get("time")
    try:
        time = _as_utc(datetime.fromisoformat(raw_time)) if isinstance(raw_time, str) else None
    except ValueError:
        time = None
    if time is None:
        raise ShapePipelineError(
            f"{where}: DP entry without a readable time (expected an ISO 8601 datetime); "
            "cannot count the privacy budget"
        )
    return _Spend(time, float(epsilon))


def _in_window(spends: Iterable[_Spend], now: datetime, days: int) -> list[_Spend]:
    """Spends after now - days, oldest first. Entries dated after `now` (clock skew) count too:
    leaving them out would under-count."""
    start = _as_utc(now) - timedelta(days=days)
    return sorted((s for s in spends if s.time > start), key=lambda s: s.time)


def epsilon_spent(entries: Iterable[Mapping[str, Any]], *, now: datetime, days: int = BUDGET_DAYS) -> float:
    """Sum of the epsilons of DP entries in the window (now - days, now]; entries dated after
    `now` count too (conservative).

    Errors name the entry by its 1-based position; `check_budget` names the log's line.
    """
    spends = (_parse_spend(entry, f"audit log entry {n}") for n, entry in enumerate(entries, 1))
    return math.fsum(s.epsilon for s in _in_window([s for s in spends if s], now, days))


@dataclass(frozen=True)
class BudgetCheck:
    """The outcome of `check_budget`, for the caller to report and log."""

    spent: float
    epsilon: float
    budget: float
    overridden: bool

    @property
    def after(self) -> float:
        """Spent in the window once this extraction is counted."""
        return self.spent + self.epsilon

    @property
    def remaining(self) -> float:
        """Budget left after this extraction (negative when an override overspent)."""
        return self.budget - self.after


def _read_spends(file: Path) -> list[_Spend]:
    """DP spends of the log, errors naming the file and line (a missing log is empty)."""
    spends = (_parse_spend(entry, f"{file}: line {number}") for number, entry in numbered_audit_entries(file))
    return [spend for spend in spends if spend is not None]


def _frees_up(window: list[_Spend], epsilon: float, budget: float, days: int) -> datetime | None:
    """When enough of the oldest spends leave the window for `epsilon` to fit; None if never."""
    if epsilon > budget + TOLERANCE:
        return None
    left = math.fsum(s.epsilon for s in window)
    for spend in window:  # oldest first; a spend at t leaves the window (now-days, now] at t+days
        left -= spend.epsilon
        if left + epsilon <= budget + TOLERANCE:
            return spend.time + timedelta(days=days)
    return None  # not reached: after dropping all spends, epsilon alone fits


def _positive_finite(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise PrivacyError(f"{what} must be a finite number > 0, got {value!r}")
    return float(value)


def check_budget(
    log_path: str | os.PathLike[str],
    epsilon: float,
    *,
    budget: float = DEFAULT_YEARLY_EPSILON,
    now: datetime,
    override: bool = False,
) -> BudgetCheck:
    """Refuse an extraction whose epsilon would take the last `BUDGET_DAYS` days over budget.

    `override=True` lets it through with `overridden=True`, for the caller to log.
    """
    epsilon = _positive_finite(epsilon, "the epsilon of this extraction")
    budget = _positive_finite(budget, "the epsilon budget (--epsilon-budget)")
    file = Path(log_path)
    window = _in_window(_read_spends(file), now, BUDGET_DAYS)
    spent = math.fsum(s.epsilon for s in window)
    over = spent + epsilon > budget + TOLERANCE
    if over and not override:
        free = _frees_up(window, epsilon, budget, BUDGET_DAYS)
        when = (
            f"enough budget frees up on {free.date().isoformat()} "
            f"({free.isoformat(timespec='seconds')}, when the oldest extractions leave the window)"
            if free is not None
            else "this epsilon alone exceeds the budget, so it never fits"
        )
        raise PrivacyError(
            f"epsilon budget exceeded (audit log {file}): {_fmt(spent)} spent in the last "
            f"{BUDGET_DAYS} days + {_fmt(epsilon)} for this extraction = {_fmt(spent + epsilon)} "
            f"> budget {_fmt(budget)}; {when}; {_OPTIONS}"
        )
    return BudgetCheck(spent=spent, epsilon=epsilon, budget=budget, overridden=over and override)
