"""Fit errors: every exported percentile against the fitted model's own quantile function.

The model's value is measured with `distributions.quantile`, the same function the generator
samples with, so a reported error is the error the generated data will carry (up to sampling
noise), not the error of some idealised curve.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shape_pipeline.contracts import CalibratedConfig, FitError, Knot
from shape_pipeline.distributions import Model, quantile

GOAL = 0.05  # every percentile within 5% in the model (issue 3)
_BODY_POINTS, _TAIL_POINTS = 1 << 14, 1 << 12  # midpoints of E[X] = integral of Q(u) du
_TAIL_FROM, _TAIL_SPAN = 0.99, 32.0  # above u = 0.99, u = 1 - 0.01 e^-t for t in [0, 32]


def relative_error(fitted: float, target: float) -> float:
    """Signed (fitted - target) / target; a zero target is compared on an absolute scale of 1."""
    scale = abs(target) if target != 0 else 1.0
    return (fitted - target) / scale


def fit_error(metric: str, target: float, fitted: float, goal: float = GOAL) -> FitError:
    error = relative_error(fitted, target)
    return FitError(
        metric=metric,
        target=float(target),
        fitted=float(fitted),
        relative_error=round(error, 6),
        within_goal=bool(abs(error) <= goal + 1e-12),
    )


def percentile_key(p: float) -> str:
    """0.95 -> 'p95', 0.999 -> 'p99.9' (histogram CDF points keep their own level)."""
    text = f"{p * 100:.4f}".rstrip("0").rstrip(".")
    return f"p{text}"


def model_mean(model: Model) -> float:
    """E[X] as the integral of the quantile function.

    Midpoints on [0, 0.99], then a log-spaced grid towards u = 1 where a heavy tail keeps its
    mass (agrees with a 4-million-point uniform grid to about 1e-5).
    """
    body = (np.arange(_BODY_POINTS, dtype=np.float64) + 0.5) / _BODY_POINTS * _TAIL_FROM
    t = (np.arange(_TAIL_POINTS, dtype=np.float64) + 0.5) / _TAIL_POINTS * _TAIL_SPAN
    rest = 1.0 - _TAIL_FROM
    weights = rest * np.exp(-t) * (_TAIL_SPAN / _TAIL_POINTS)
    tail = quantile(model, 1.0 - rest * np.exp(-t))
    return float(np.mean(quantile(model, body)) * _TAIL_FROM + np.sum(tail * weights))


def percentile_errors(model: Model, targets: Sequence[Knot], goal: float = GOAL) -> list[FitError]:
    """One FitError per exported percentile (p, q): Q_model(p) against q."""
    if not targets:
        return []
    levels = np.array([p for p, _ in targets], dtype=np.float64)
    fitted = quantile(model, levels)
    return [fit_error(percentile_key(p), q, float(f), goal) for (p, q), f in zip(targets, fitted, strict=True)]


def model_errors(
    model: Model,
    targets: Sequence[Knot],
    *,
    mean: float | None = None,
    goal: float = GOAL,
) -> list[FitError]:
    """Percentile errors, plus the mean's error when the shape exported a mean."""
    errors = percentile_errors(model, targets, goal)
    if mean is not None:
        errors.append(fit_error("mean", mean, model_mean(model), goal))
    return errors


def named_models(config: CalibratedConfig) -> list[tuple[str, Model]]:
    """Every fitted numeric model of a config, under its config key (summary, metadata, warnings)."""
    conv, msg = config.conversation_generation, config.message_generation
    out: list[tuple[str, Model]] = [
        ("user_generation.username_length", config.user_generation.username_length),
        ("conversation_generation.messages_per_conversation", conv.messages_per_conversation),
        ("message_generation.content_length", msg.content_length),
        ("message_generation.inter_message_gap_seconds", msg.inter_message_gap_seconds),
        ("message_generation.messages_per_sender", msg.messages_per_sender),
    ]
    out += [
        (f"conversation_generation.members_per_conversation.{kind}", model)
        for kind, model in conv.members_per_conversation.items()
    ]
    optional: list[tuple[str, Model | None]] = [
        ("user_generation.conversations_per_user", config.user_generation.conversations_per_user),
        ("conversation_generation.top_sender_share", conv.top_sender_share),
        ("conversation_generation.lifetime_seconds", conv.lifetime_seconds),
    ]
    out += [(name, model) for name, model in optional if model is not None]
    return out
