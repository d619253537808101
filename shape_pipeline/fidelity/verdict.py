"""The verdict rule: decide on an effect size against the tolerance, never on a p-value alone.

For an effect size e (TVD, KS D, plain relative error) and tolerance t:
  FAIL     e > t;
  WARNING  2t/3 < e <= t (the top third of the band), or the p-value rejects (< 0.05) while
           e is inside the tolerance;
  PASS     otherwise.
Sampling noise: where a test knows the error noise alone can give at its sizes (its noise band,
`statistics.percentile_noise_band` and `share_noise_band`), it also passes `unexplained`, the
largest error lying outside its own band. Inside noise a verdict is one step softer, never
more: a FAIL whose every error above the tolerance lies inside its band (unexplained <= t) is
a WARNING that says so, and a top-third WARNING whose errors above 2t/3 all lie inside their
bands is a PASS (at 3,000 entities p99 alone moves by 10-20% between two faithful draws; the
measured rates are in shape_pipeline_tests/fidelity/test_properties.py). The number reported
stays the plain error.
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
    effect: float,
    tolerance: float,
    *,
    p_value: float | None = None,
    unexplained: float | None = None,
    noise_band: float | None = None,
) -> tuple[Verdict, str]:
    """(verdict, reason) for one effect size; the reason says which side of which line it fell.

    `unexplained` (with the `noise_band` to quote) softens a FAIL that noise explains (sampling
    noise, and a DP shape's own noise).
    """
    if effect > tolerance:
        if unexplained is not None and unexplained <= tolerance:
            band = "" if noise_band is None else f" {noise_band:.3f}"
            return "WARNING", (
                f"{effect:.3f} is above the tolerance {tolerance:.3f} but inside the noise band{band} at these sizes"
            )
        return "FAIL", f"{effect:.3f} is above the tolerance {tolerance:.3f}"
    if effect > WARNING_FRACTION * tolerance and (unexplained is None or unexplained > WARNING_FRACTION * tolerance):
        return "WARNING", (
            f"{effect:.3f} is in the top third of the tolerance band "
            f"({WARNING_FRACTION * tolerance:.3f}-{tolerance:.3f})"
        )
    if p_value is not None and p_value < SIGNIFICANCE:
        return "WARNING", (
            f"p-value {p_value:.3g} rejects equality although the effect size {effect:.3f} "
            f"is within the tolerance {tolerance:.3f}"
        )
    noise = " (its top third lies inside the noise band)" if effect > WARNING_FRACTION * tolerance else ""
    return "PASS", f"{effect:.3f} is within the tolerance {tolerance:.3f}{noise}"


def overall(verdicts: Iterable[TestVerdict]) -> Verdict:
    """FAIL if any test fails, WARNING if any warns, else PASS (SKIPPED ignored)."""
    seen = set(verdicts)
    if "FAIL" in seen:
        return "FAIL"
    if "WARNING" in seen:
        return "WARNING"
    return "PASS"
