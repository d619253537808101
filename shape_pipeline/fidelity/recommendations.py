"""Computed recommendations: which config key, its current value, the suggested value, and why.

With the calibrated config the current values are the config's own; without it they are the
synthetic data's (as generated). Heavy tails use the Pareto tail relation of
`distributions.pareto_tail`: above the tail start (p_t, q_t), ln Q(u) = ln q_t +
ln((1 - p_t) / (1 - u)) / (alpha - 1), so moving Q(p) by a factor r at fixed q_t means
1 / (alpha' - 1) = 1 / (alpha - 1) + ln r / ln((1 - p_t) / (1 - p)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from shape_pipeline.contracts import (
    CalibratedConfig,
    NormalModel,
    PowerLawTailModel,
    QuantileSplineModel,
    Recommendation,
    TestResult,
)
from shape_pipeline.conventions import CONFIG_PLACEHOLDER, REPORT_PLACEHOLDER, SHAPE_PLACEHOLDER
from shape_pipeline.distributions import pareto_alpha, pareto_tail, quantile
from shape_pipeline.fidelity.integrity import CHECKS
from shape_pipeline.fidelity.layout import layout_recommendations
from shape_pipeline.fidelity.plans import plan_recommendations
from shape_pipeline.fidelity.statistics import DECIDING_PERCENTILES

ALL_PASS: tuple[str, ...] = (
    "Distributions match production shape within tolerance",
    "Dataset ready for Phase 2 performance testing",
)
INTEGRITY_FIXES: dict[str, str] = {
    "senders_not_members": "draw each message's sender from that conversation's members",
    "direct_messages_without_one_or_two_members": "give every direct message 1 member (a note to self) or 2",
    "messages_outside_window": "place messages inside calibration_metadata.window_start..window_end",
    "messages_before_conversation": "date messages after their conversation's created_at",
    "messages_without_conversation": "write every conversation its messages reference",
    "messages_without_sender": "write every user a message references",
    "members_without_conversation": "write every conversation a member row references",
    "members_without_user": "write every user a member row references",
}
_MIN_ALPHA, _MAX_ALPHA = 1.05, 10.0


@dataclass(frozen=True)
class Commands:
    """How to regenerate and re-validate (paths and redacted URLs only)."""

    config: str = CONFIG_PLACEHOLDER
    shape: str = SHAPE_PLACEHOLDER
    target: str = "--database-url URL"  # or "--parquet-dir DIR"
    output: str = REPORT_PLACEHOLDER
    validate_options: str = ""  # e.g. " --workload FILE --plan-log2-ratio 0.7"

    def lines(self) -> list[str]:
        replace = " --replace" if self.target.startswith("--database-url") else ""
        return [
            f"Regenerate: shape-pipeline generate --config {self.config} {self.target}{replace}",
            f"Re-validate: shape-pipeline validate --shape {self.shape} {self.target}{self.validate_options} --output {self.output}",
        ]


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _pct(syn: float, prod: float) -> str:
    return f"{(syn - prod) / max(abs(prod), 1.0) * 100:+.0f}%"


def _change(
    what: str, prod: float, syn: float, edit: str, *, key: str, cur: float, new: float, digits: int = 3
) -> Recommendation:
    """`what` is `syn` in the synthetic data vs `prod` in production: `edit`, which moves the
    config value at `key` from `cur` to `new` (both rounded to `digits`)."""
    return Recommendation(
        text=f"{what} is {_num(syn)} vs {_num(prod)} ({_pct(syn, prod)}): {edit}",
        config_key=key,
        current_value=round(cur, digits),
        suggested_value=round(new, digits),
    )


# --------------------------------------------------------------------------------------
# Categories
# --------------------------------------------------------------------------------------


def _category_recs(
    result: TestResult, key_prefix: str, current: dict[str, float] | None, limit: int = 3
) -> list[Recommendation]:
    prod: dict[str, float] = result.production.get("shares", {})
    syn: dict[str, float] = result.synthetic.get("shares", {})
    diffs = sorted(prod.keys() | syn.keys(), key=lambda k: -abs(syn.get(k, 0.0) - prod.get(k, 0.0)))
    recs: list[Recommendation] = []
    for cat in diffs[:limit]:
        p, s = prod.get(cat, 0.0), syn.get(cat, 0.0)
        if abs(s - p) < 0.005 and not (p == 0 and s > 0):
            continue
        cur = current.get(cat, s) if current is not None else s
        suggested = p
        why = f"synthetic share {s:.1%} vs production {p:.1%}"
        if current is not None and abs(cur - p) < 0.005 and s > 0:
            # The config already holds production's share: compensate the generator's bias.
            suggested = cur * p / s
            why += "; the config already holds the production share, so compensate the generator"
        if p == 0:
            why = f"production has no {cat} but the synthetic data has {s:.1%}"
        key = f"{key_prefix}.{cat}"
        recs.append(
            Recommendation(
                text=f"{key}: {why}: change {cur:.4f} to {suggested:.4f}",
                config_key=key,
                current_value=round(float(cur), 6),
                suggested_value=round(float(suggested), 6),
            )
        )
    return recs


def _indexed_recs(
    result: TestResult, key: str, labels: list[str], current: list[float] | None, limit: int = 3
) -> list[Recommendation]:
    prod: dict[str, float] = result.production.get("shares", {})
    syn: dict[str, float] = result.synthetic.get("shares", {})
    if current is not None and len(current) == len(labels):
        config_gap = 0.5 * sum(abs(current[i] - prod.get(labels[i], 0.0)) for i in range(len(labels)))
        if config_gap < 0.01:
            return [_wave_not_followed(result, key, labels, config_gap)]
    order = sorted(range(len(labels)), key=lambda i: -abs(syn.get(labels[i], 0) - prod.get(labels[i], 0)))
    recs = []
    for i in order[:limit]:
        p, s = prod.get(labels[i], 0.0), syn.get(labels[i], 0.0)
        if abs(s - p) < 0.002:
            continue
        cur = current[i] if current is not None else s
        suggested = p if current is None or abs(cur - p) >= 0.002 or s == 0 else cur * p / s
        recs.append(
            Recommendation(
                text=f"{key}[{i}] ({labels[i]}): synthetic share {s:.1%} vs production {p:.1%}: "
                f"change {cur:.4f} to {suggested:.4f}",
                config_key=f"{key}[{i}]",
                current_value=round(float(cur), 6),
                suggested_value=round(float(suggested), 6),
            )
        )
    return recs


def _wave_not_followed(result: TestResult, key: str, labels: list[str], config_gap: float) -> Recommendation:
    """The config already carries production's wave: the generator is what moved it."""
    prod: dict[str, float] = result.production.get("shares", {})
    syn: dict[str, float] = result.synthetic.get("shares", {})
    peak_p = max(labels, key=lambda k: prod.get(k, 0.0))
    peak_s = max(labels, key=lambda k: syn.get(k, 0.0))
    return Recommendation(
        text=(
            f"{key} already matches production (distance {config_gap:.3f}) but the synthetic data "
            f"peaks at {peak_s} instead of {peak_p}: keep the weights; the generator does not follow "
            "them (check that it places timestamps in UTC)"
        ),
        config_key=key,
        current_value=peak_s,
        suggested_value=peak_p,
    )


# --------------------------------------------------------------------------------------
# Numeric distributions
# --------------------------------------------------------------------------------------


def _worst(result: TestResult) -> tuple[str, float, float] | None:
    """(percentile key, production value, synthetic value) with the largest relative error."""
    errors = result.percentile_errors
    prod = result.production.get("percentiles", {})
    syn = result.synthetic.get("percentiles", {})
    keys = [k for k in errors if k in prod and k in syn]
    deciding = [k for k in keys if k in DECIDING_PERCENTILES and errors[k] > 0]
    keys = deciding or keys
    if not keys:
        return None
    k = max(keys, key=lambda key: errors[key])
    return k, float(prod[k]), float(syn[k])


def _level(key: str) -> float:
    return int(key[1:]) / 100.0


def _knot_value(knots: list[tuple[float, float]], level: float) -> float | None:
    for p, q in knots:
        if abs(p - level) < 1e-9:
            return float(q)
    return None


def _knot_rec(
    key: str, knots: list[tuple[float, float]] | None, model: object, metric: str, pk: str, prod: float, syn: float
) -> Recommendation:
    """Scale the knot at the failing percentile by production / synthetic."""
    ratio = prod / syn if syn > 0 else 1.0
    level = _level(pk)
    cur = _knot_value(knots or [], level)
    if cur is None and model is not None:
        cur = float(quantile(model, np.array([level]))[0])  # type: ignore[arg-type]
    cur = syn if cur is None else cur
    suggested = cur * ratio
    return _change(
        f"{metric} {pk}",
        prod,
        syn,
        f"set the {pk} knot of {key} from {_num(cur)} to about {_num(suggested)}",
        key=f"{key}.knots[p={level:g}]",
        cur=cur,
        new=suggested,
    )


def tail_alpha_suggestion(alpha: float, tail_start: tuple[float, float], level: float, ratio: float) -> float:
    """The alpha that moves Q(level) by `ratio` with the tail start fixed (see module doc)."""
    p_t, q_t = tail_start
    span = math.log((1.0 - p_t) / (1.0 - level))
    # The current model's exponent, read off the shared tail function itself.
    exponent = math.log(float(pareto_tail(tail_start, alpha, np.array([level]))[0]) / q_t) / span
    new_exponent = exponent + math.log(ratio) / span
    if new_exponent <= 0:
        return _MAX_ALPHA
    return float(min(max(1.0 + 1.0 / new_exponent, _MIN_ALPHA), _MAX_ALPHA))


def _alpha_rec(
    key: str, pk: str, prod: float, syn: float, alpha: float, tail_start: tuple[float, float], *, generated: bool
) -> Recommendation:
    """Move the tail's alpha so that Q(pk) goes from `syn` to `prod` with the tail start fixed:
    the config's alpha, or (`generated`) the one the synthetic tail behaves like."""
    new_alpha = tail_alpha_suggestion(alpha, tail_start, _level(pk), prod / syn)
    direction = "lower" if new_alpha < alpha else "raise"
    edit = (
        f"the generated tail behaves like alpha {alpha:.2f}: {direction} alpha to about {new_alpha:.2f}"
        if generated
        else f"{direction} alpha from {alpha:.2f} to about {new_alpha:.2f}"
    )
    return _change(
        f"messages_per_conversation {pk}",
        prod,
        syn,
        f"{edit} ({'heavier' if direction == 'lower' else 'lighter'} tail)",
        key=f"{key}.alpha",
        cur=alpha,
        new=new_alpha,
    )


def _messages_per_conversation_recs(result: TestResult, config: CalibratedConfig | None) -> list[Recommendation]:
    worst = _worst(result)
    if worst is None:
        return []
    pk, prod, syn = worst
    level = _level(pk)
    model: PowerLawTailModel | None = config.conversation_generation.messages_per_conversation if config else None
    key = "conversation_generation.messages_per_conversation"
    tail_start = None
    if model is not None:
        tail_start = model.tail_start or (0.0, float(max(model.min, 1)))
    if model is not None and tail_start is not None and level > tail_start[0] and syn > 0:
        return [_alpha_rec(key, pk, prod, syn, model.alpha, tail_start, generated=False)]
    if model is None and level >= 0.9:
        return _alpha_without_config(result, pk, prod, syn, key)
    return [_knot_rec(key, model.body_knots if model else None, model, "messages_per_conversation", pk, prod, syn)]


def _alpha_without_config(result: TestResult, pk: str, prod: float, syn: float, key: str) -> list[Recommendation]:
    """No config at hand: read the generated tail's alpha off the synthetic p90 and `pk`."""
    syn_p90 = result.synthetic.get("percentiles", {}).get("p90")
    level = _level(pk)
    current = pareto_alpha((0.90, syn_p90), (level, syn)) if syn_p90 and level > 0.9 else None
    if current is None or current <= 1.0:
        return [_knot_rec(key, None, None, "messages_per_conversation", pk, prod, syn)]
    return [_alpha_rec(key, pk, prod, syn, current, (0.90, float(syn_p90)), generated=True)]


def _content_length_recs(result: TestResult, config: CalibratedConfig | None) -> list[Recommendation]:
    prod, syn = result.production, result.synthetic
    pm, sm = prod.get("mean"), syn.get("mean")
    pmed, smed = prod.get("percentiles", {}).get("p50"), syn.get("percentiles", {}).get("p50")
    model = config.message_generation.content_length if config else None
    key = "message_generation.content_length"
    recs: list[Recommendation] = []
    if pmed is not None and smed and (result.median_error or 0) > (result.tolerance or 0) / 3:
        cur = model.median if model else smed
        new = cur * pmed / smed
        edit = (
            f"set {key}.median from {_num(cur)} to about {_num(new)} (mu = ln median = {math.log(max(new, 1e-9)):.3f})"
        )
        knots = "; scale its knots by the same factor" if model and model.knots else ""
        recs.append(_change("content_length median", pmed, smed, edit + knots, key=f"{key}.median", cur=cur, new=new))
    if (
        pm
        and sm
        and pmed
        and smed
        and pm > pmed
        and sm > smed
        and (result.mean_error or 0) > (result.tolerance or 0) / 3
    ):
        sigma_prod, sigma_syn = math.sqrt(2 * math.log(pm / pmed)), math.sqrt(2 * math.log(sm / smed))
        cur = model.sigma if model else sigma_syn
        new = cur * sigma_prod / sigma_syn
        edit = (
            f"the spread (sigma = sqrt(2 ln(mean/median))) is {sigma_syn:.3f} vs {sigma_prod:.3f}: "
            f"set {key}.sigma from {cur:.3f} to about {new:.3f}"
        )
        recs.append(_change("content_length mean", pm, sm, edit, key=f"{key}.sigma", cur=cur, new=new, digits=4))
    if not recs and (worst := _worst(result)) is not None:
        recs.append(_knot_rec(key, model.knots if model else None, model, "content_length", *worst))
    return recs


def _username_recs(result: TestResult, config: CalibratedConfig | None) -> list[Recommendation]:
    model: NormalModel | None = config.user_generation.username_length if config else None
    pm, sm = result.production.get("mean"), result.synthetic.get("mean")
    if pm is None or sm is None:
        worst = _worst(result)
        if worst is None:
            return []
        pm, sm = worst[1], worst[2]
    cur = model.mean if model else sm
    new = cur + (pm - sm)
    return [
        Recommendation(
            text=(
                f"username length mean is {sm:.2f} vs {pm:.2f}: set user_generation.username_length.mean "
                f"from {cur:.2f} to about {new:.2f}"
                + ("; drop or shift its knots too" if model and model.knots else "")
            ),
            config_key="user_generation.username_length.mean",
            current_value=round(cur, 3),
            suggested_value=round(new, 3),
        )
    ]


def _spline_recs(
    result: TestResult, key: str, model: QuantileSplineModel | PowerLawTailModel | None, metric: str
) -> list[Recommendation]:
    """Scale the failing percentile's knot (a spline's knots, or a heavy-tail model's body knots)."""
    worst = _worst(result)
    if worst is None:
        return []
    knots = model.knots if isinstance(model, QuantileSplineModel) else model.body_knots if model else None
    return [_knot_rec(key, knots, model, metric, *worst)]


def _members_recs(result: TestResult, config: CalibratedConfig | None) -> list[Recommendation]:
    kind = result.synthetic.get("worst_type")
    if not kind:
        return []
    sub = TestResult(
        title=result.title,
        verdict=result.verdict,
        tolerance=result.tolerance,
        percentile_errors={
            k.split(".", 1)[1]: v for k, v in result.percentile_errors.items() if k.startswith(f"{kind}.")
        },
        production=result.production.get(kind, {}),
        synthetic=result.synthetic.get(kind, {}),
    )
    model = config.conversation_generation.members_per_conversation.get(kind) if config else None
    key = f"conversation_generation.members_per_conversation.{kind}"
    return _spline_recs(sub, key, model, f"members per {kind} conversation")


def _trend_recs(result: TestResult) -> list[Recommendation]:
    """The 7-day block furthest from production: the daily weights must follow production's."""
    errors: dict[str, float] = result.synthetic.get("share_errors", {})
    if not errors:
        return []
    block = max(errors, key=lambda k: errors[k])
    p, s = result.production["shares"][block], result.synthetic["shares"][block]
    return [
        Recommendation(
            text=(
                f"messages per day: {block} hold {s:.1%} of the window's messages vs {p:.1%} in production: "
                "set message_generation.temporal.daily to production's daily shares (calibrate again from the shape)"
            ),
            config_key="message_generation.temporal.daily",
            current_value=round(float(s), 6),
            suggested_value=round(float(p), 6),
        )
    ]


def _integrity_recs(result: TestResult) -> list[Recommendation]:
    counts: dict[str, int] = result.synthetic.get("counts", {})
    return [
        Recommendation(
            text=f"{n:,} {CHECKS[k]}: the generator must {INTEGRITY_FIXES[k]}, then regenerate with --replace"
        )
        for k, n in counts.items()
        if n > 0
    ]


def _config_value(config: CalibratedConfig | None, path: str) -> Any:
    """The config's value at a dotted `path` (None without a config or where a part is None)."""
    value: Any = config
    for name in path.split("."):
        if value is None:
            return None
        value = getattr(value, name)
    return value


@dataclass(frozen=True)
class ConfigEdit:
    """A test whose recommendations edit the config value at `config_key` itself: its `kind`
    says how (shares of categories, indexed weights, the knots of a quantile model)."""

    test: str
    kind: Literal["shares", "weights", "knots"]
    config_key: str  # also the path of the current value in the calibrated config
    metric: str = ""  # how the knot recommendations name the metric

    def recommend(self, result: TestResult, config: CalibratedConfig | None) -> list[Recommendation]:
        current = _config_value(config, self.config_key)
        if self.kind == "shares":
            return _category_recs(
                result, self.config_key, current.model_dump() if isinstance(current, BaseModel) else current
            )
        if self.kind == "weights":
            labels = list(result.production.get("shares", {}).keys())
            return _indexed_recs(result, self.config_key, labels, current)
        return _spline_recs(result, self.config_key, current, self.metric)


CONFIG_EDITS: tuple[ConfigEdit, ...] = (
    ConfigEdit("conversation_types", "shares", "conversation_generation.type_distribution"),
    ConfigEdit("message_types", "shares", "message_generation.type_distribution"),
    ConfigEdit("recency", "shares", "conversation_generation.recency"),
    ConfigEdit("hourly_pattern", "weights", "message_generation.temporal.hourly"),
    ConfigEdit("day_of_week_pattern", "weights", "message_generation.temporal.day_of_week"),
    ConfigEdit("inter_message_gaps", "knots", "message_generation.inter_message_gap_seconds", "gap seconds"),
    ConfigEdit("messages_per_sender", "knots", "message_generation.messages_per_sender", "messages per sender"),
    ConfigEdit("conversations_per_user", "knots", "user_generation.conversations_per_user", "conversations per user"),
    ConfigEdit("conversation_lifetime", "knots", "conversation_generation.lifetime_seconds", "conversation lifetime"),
    ConfigEdit("top_sender_share", "knots", "conversation_generation.top_sender_share", "top sender permille"),
)
# Each test's recommendations: the config edits above, then those worked out their own way.
_RECS: dict[str, Callable[[TestResult, CalibratedConfig | None], list[Recommendation]]] = {
    **{edit.test: edit.recommend for edit in CONFIG_EDITS},
    "messages_per_conversation": _messages_per_conversation_recs,
    "content_length": _content_length_recs,
    "username_length": _username_recs,
    "members_per_conversation": _members_recs,
    "messages_per_day": lambda result, _: _trend_recs(result),
    "integrity": lambda result, _: _integrity_recs(result),
    "physical_layout": layout_recommendations,
    "query_plans": lambda result, _: plan_recommendations(result),
}


def recommend(key: str, result: TestResult, config: CalibratedConfig | None) -> list[Recommendation]:
    """Concrete edits for one WARNING or FAIL test (none for PASS and SKIPPED)."""
    if result.verdict in ("PASS", "SKIPPED"):
        return []
    recs = _RECS.get(key)
    return recs(result, config) if recs is not None else []


def summary_lines(tests: dict[str, TestResult], commands: Commands) -> list[str]:
    """The report's summary: the seed's two lines when nothing warns or fails, else every edit and the commands."""
    bad = [t for t in tests.values() if t.verdict in ("WARNING", "FAIL")]
    if not bad:
        return list(ALL_PASS)
    lines = [r.text for t in bad for r in t.recommendations]
    lines += [f"{t.title}: {t.verdict} ({t.reason})" for t in bad if not t.recommendations]
    return lines + commands.lines()
