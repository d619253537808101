"""The epsilon ledger: the audit log's DP entries, summed over a rolling 365-day window."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shape_pipeline.audit_log import append_audit_entry
from shape_pipeline.errors import PrivacyError, ShapePipelineError
from shape_pipeline.privacy.budget import BUDGET_DAYS, BudgetCheck, check_budget, epsilon_spent
from shape_pipeline.privacy.defaults import DEFAULT_EPSILON_PER_EXTRACTION, DEFAULT_YEARLY_EPSILON

QUARTERS = [datetime(2026, month, 1, tzinfo=UTC) for month in (1, 4, 7, 10)]


def dp(time: datetime, epsilon: Any = DEFAULT_EPSILON_PER_EXTRACTION, **extra: Any) -> dict[str, Any]:
    return {"time": time.isoformat(), "privacy": "dp", "epsilon": epsilon, **extra}


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "extractions.jsonl"


def test_defaults_are_four_quarterly_extractions_over_a_rolling_year() -> None:
    assert DEFAULT_YEARLY_EPSILON == 4 * DEFAULT_EPSILON_PER_EXTRACTION == 8.0
    assert BUDGET_DAYS == 365


def test_empty_log_spends_nothing(log: Path) -> None:
    result = check_budget(log, 2.0, now=QUARTERS[0])
    assert result == BudgetCheck(spent=0.0, epsilon=2.0, budget=8.0, overridden=False)
    assert (result.after, result.remaining) == (2.0, 6.0)
    assert epsilon_spent([], now=QUARTERS[0]) == 0.0
    assert not log.exists()  # checking never writes the log


def test_four_quarterly_extractions_fit_and_the_fifth_is_refused(log: Path) -> None:
    for n, time in enumerate(QUARTERS):
        result = check_budget(log, 2.0, now=time)
        assert result.spent == pytest.approx(2.0 * n)
        assert not result.overridden
        append_audit_entry(log, dp(time))
    assert result.remaining == pytest.approx(0.0)

    with pytest.raises(PrivacyError) as refused:
        check_budget(log, 2.0, now=datetime(2026, 12, 1, tzinfo=UTC))
    message = str(refused.value)
    assert "\n" not in message
    assert str(log) in message
    assert "8 spent in the last 365 days" in message
    assert "+ 2 for this extraction" in message
    assert "budget 8" in message
    assert "2027-01-01" in message  # the 2026-01-01 extraction leaves the window
    assert "--epsilon-budget" in message and "--override-budget" in message


def test_frees_up_when_enough_of_the_oldest_entries_have_left(log: Path) -> None:
    for month, epsilon in ((1, 1.0), (2, 1.0), (3, 6.0)):
        append_audit_entry(log, dp(datetime(2026, month, 10, tzinfo=UTC), epsilon))
    with pytest.raises(PrivacyError, match="frees up on 2027-02-10"):  # both 1.0 entries must go
        check_budget(log, 2.0, now=datetime(2026, 6, 1, tzinfo=UTC))
    with pytest.raises(PrivacyError, match="never fits"):
        check_budget(log, 9.0, now=datetime(2026, 6, 1, tzinfo=UTC))


def test_entries_older_than_365_days_no_longer_count(log: Path) -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    append_audit_entry(log, dp(now - timedelta(days=BUDGET_DAYS), 8.0))
    append_audit_entry(log, dp(now - timedelta(days=400), 8.0))
    assert check_budget(log, 8.0, now=now).spent == 0.0

    inside = [dp(now - timedelta(days=BUDGET_DAYS - 1), 3.0), dp(now, 1.5)]
    assert epsilon_spent(inside, now=now) == pytest.approx(4.5)


def test_suppression_entries_cost_nothing(log: Path) -> None:
    now = QUARTERS[3]
    append_audit_entry(log, {"time": now.isoformat(), "privacy": "suppression", "epsilon": 100.0})
    append_audit_entry(log, {"time": now.isoformat(), "epsilon": 100.0})  # older entry: no key
    append_audit_entry(log, {"time": now.isoformat(), "privacy": "suppression"})
    append_audit_entry(log, dp(now, 2.5))
    assert check_budget(log, 2.0, now=now).spent == pytest.approx(2.5)


def test_override_passes_and_says_overridden(log: Path) -> None:
    for time in QUARTERS:
        append_audit_entry(log, dp(time))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    result = check_budget(log, 2.0, now=now, override=True)
    assert result.overridden
    assert (result.spent, result.after, result.remaining) == (8.0, 10.0, -2.0)
    # an override that was not needed is not reported as used
    assert not check_budget(log, 2.0, budget=10.0, now=now, override=True).overridden


@pytest.mark.parametrize(
    ("broken", "what"),
    [
        ({"epsilon": "two"}, "epsilon"),
        ({"epsilon": None}, "epsilon"),
        ({"epsilon": -2.0}, "epsilon"),
        ({"epsilon": True}, "epsilon"),
        ({"time": "last Tuesday"}, "time"),
        ({"time": None}, "time"),
    ],
)
def test_a_dp_entry_that_cannot_be_read_is_refused_naming_the_line(
    log: Path, broken: dict[str, Any], what: str
) -> None:
    append_audit_entry(log, {"time": QUARTERS[0].isoformat(), "privacy": "suppression"})
    append_audit_entry(log, {**dp(QUARTERS[0]), **broken})
    with pytest.raises(ShapePipelineError) as refused:
        check_budget(log, 2.0, now=QUARTERS[1])
    message = str(refused.value)
    assert f"{log}: line 2:" in message and f"readable {what}" in message
    assert "\n" not in message

    with pytest.raises(ShapePipelineError, match=f"audit log entry 1: .*readable {what}"):
        epsilon_spent([{**dp(QUARTERS[0]), **broken}], now=QUARTERS[1])


def test_an_unknown_privacy_mode_is_refused(log: Path) -> None:
    append_audit_entry(log, {**dp(QUARTERS[0]), "privacy": "DP"})
    with pytest.raises(ShapePipelineError, match=r"line 1: unknown privacy mode 'DP'"):
        check_budget(log, 2.0, now=QUARTERS[1])


@pytest.mark.parametrize("epsilon", [0.0, -1.0, math.nan, math.inf])
def test_epsilon_must_be_finite_and_positive(log: Path, epsilon: float) -> None:
    with pytest.raises(PrivacyError, match="epsilon of this extraction must be a finite number > 0"):
        check_budget(log, epsilon, now=QUARTERS[0])


@pytest.mark.parametrize("budget", [0.0, -8.0, math.nan, math.inf])
def test_budget_must_be_finite_and_positive(log: Path, budget: float) -> None:
    with pytest.raises(PrivacyError, match="budget.*--epsilon-budget.*finite number > 0"):
        check_budget(log, 2.0, budget=budget, now=QUARTERS[0])
