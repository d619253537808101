"""The verdict rule: decide on an effect size against the tolerance, never on a p-value alone.

For an effect size e (TVD, KS D, relative error) and tolerance t:
  FAIL     e > t;
  WARNING  2t/3 < e <= t (the top third of the band), or the p-value rejects (< 0.05) while
           e is inside the tolerance;
  PASS     otherwise.
A category with zero production mass that appears in the synthetic data, or any integrity
breach, is a FAIL whatever the numbers. Overall: FAIL if any test fails, WARNING if any warns;
SKIPPED tests do not count.
"""

from __future__ import annotations

from collections.abc import Iterable

from shape_pipeline.contracts import TestVerdict, Verdict

SIGNIFICANCE = 0.05
WARNING_FRACTION = 2.0 / 3.0  # the top third of the tolerance band warns


def decide(
    effect: float, tolerance: float, *, p_value: float | None = None
) -> tuple[Verdict, str]:
    """(verdict, reason) for one effect size; the reason says which side of which line it fell."""
    if effect > tolerance:
        return "FAIL", f"{effect:.3f} is above the tolerance {tolerance:.3f}"
    if effect > WARNING_FRACTION * tolerance:
        return "WARNING", (
            f"{effect:.3f} is in the top third of the tolerance band "
            f"({WARNING_FRACTION * tolerance:.3f}-{tolerance:.3f})"
        )
    if p_value is not None and p_value < SIGNIFICANCE:
        return "WARNING", (
            f"p-value {p_value:.3g} rejects equality although the effect size {effect:.3f} "
            f"is within the tolerance {tolerance:.3f}"
        )
    return "PASS", f"{effect:.3f} is within the tolerance {tolerance:.3f}"


def overall(verdicts: Iterable[TestVerdict]) -> Verdict:
    """FAIL if any test fails, WARNING if any warns, else PASS (SKIPPED ignored)."""
    seen = set(verdicts)
    if "FAIL" in seen:
        return "FAIL"
    if "WARNING" in seen:
        return "WARNING"
    return "PASS"
