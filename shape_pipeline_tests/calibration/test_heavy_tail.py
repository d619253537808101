"""Messages per conversation: the Pareto tail, its alpha, and what editing alpha does."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from shape_pipeline.calibration.calibrate import calibrate_file
from shape_pipeline.calibration.heavy_tail import (
    estimate_alpha,
    fit_messages_per_conversation,
    split_body_tail,
    tail_pair,
)
from shape_pipeline.calibration.knots import histogram_knots, merge_knots, round_up_2sig
from shape_pipeline.console import silent
from shape_pipeline.contracts import CalibratedConfig, Histogram, Percentiles
from shape_pipeline.distributions import discrete_percentile, quantile, sample
from shape_pipeline.files import load_json_model

from .shapes import SEED_SHAPE


def test_estimate_alpha_formula() -> None:
    assert estimate_alpha((0.95, 1200), (0.99, 5000)) == pytest.approx(1 + math.log(5) / math.log(5000 / 1200))
    with pytest.raises(ValueError):
        estimate_alpha((0.95, 10), (0.99, 10))


def _edit_alpha(path: Path, alpha: float) -> CalibratedConfig:
    """What a user does: edit the number in the JSON, then the generator reads the file."""
    data = json.loads(path.read_text())
    data["conversation_generation"]["messages_per_conversation"]["alpha"] = alpha
    path.write_text(json.dumps(data))
    return load_json_model(path, CalibratedConfig, what="calibrated config")


def test_editing_alpha_in_the_json_moves_the_tail(tmp_path: Path) -> None:
    out = tmp_path / "calibrated-config.json"
    fitted = calibrate_file(SEED_SHAPE, out, emit=silent).conversation_generation
    alpha = fitted.messages_per_conversation.alpha
    stats = {}
    for edited in (alpha - 0.3, alpha, alpha + 0.3):
        model = _edit_alpha(out, edited).conversation_generation.messages_per_conversation
        draws = sample(model, np.random.default_rng(7), 400_000)
        stats[edited] = (
            discrete_percentile(draws, 0.99),
            float((draws >= 5000).mean()),
            float(draws.mean()),
        )
        # the body below the tail's start does not move
        assert discrete_percentile(draws, 0.5) == pytest.approx(45, rel=0.05)
    heavier, fitted_stats, lighter = stats[alpha - 0.3], stats[alpha], stats[alpha + 0.3]
    for i in range(3):  # p99, share of huge rooms, mean: lower alpha -> heavier tail
        assert heavier[i] > fitted_stats[i] > lighter[i]
    assert fitted_stats[0] == pytest.approx(5000, rel=0.05)


def test_tail_passes_through_the_top_percentile_and_body_through_the_rest() -> None:
    pct = Percentiles(p25=5, p50=12, p75=40, p90=150, p99=2000, max=9000)
    model, notes = fit_messages_per_conversation(pct)
    assert notes == []
    assert model.tail_start == (0.9, 149.5)  # mid-step knot: ceil gives 150
    got = quantile(model, np.array([0.25, 0.5, 0.75, 0.9, 0.99]))
    assert got.tolist()[:4] == [5, 12, 40, 150]
    assert got[4] == pytest.approx(2000, rel=1e-3)


def test_plateau_at_the_top_stays_in_the_body() -> None:
    pct = Percentiles(p50=2, p75=3, p90=5, p95=8, p99=8, max=40)
    assert tail_pair(pct.knots()) == ((0.9, 5.0), (0.95, 8.0))
    body, start = split_body_tail(pct.knots())
    assert start == (0.99, 8.0) and body[-1] == (0.95, 8.0)
    model, _ = fit_messages_per_conversation(pct)
    got = quantile(model, np.array([0.5, 0.75, 0.9, 0.95, 0.99]))
    assert got.tolist() == [2, 3, 5, 8, 8]
    assert quantile(model, np.array([0.9999]))[0] > 8  # a tail above the plateau


def test_single_percentile_uses_default_alpha_and_says_so() -> None:
    model, notes = fit_messages_per_conversation(Percentiles(p50=45))
    assert model.alpha == 1.85
    assert notes and "alpha" in notes[0]
    assert "max" in notes[-1]  # no max either: an extrapolated cap, also noted
    assert quantile(model, np.array([0.5]))[0] == 45


def test_missing_max_is_extrapolated_and_rounded() -> None:
    model, notes = fit_messages_per_conversation(Percentiles(p50=45, p90=450, p99=5000))
    assert any("no max" in n for n in notes)
    assert model.max > 5000 and model.max == round_up_2sig(model.max)


def test_histogram_points_shape_the_body_without_moving_percentiles() -> None:
    hist = Histogram(edges=[1, 2, 4, 8, 16, 32, 64, 128, 256], counts=[100, 150, 200, 250, 150, 90, 40, 20])
    points = histogram_knots(hist)
    assert points[0] == (0.1, 1.0) and points[1] == (0.25, 3.0)
    pct = Percentiles(p50=10, p90=40, p99=200, max=255)
    model, _ = fit_messages_per_conversation(pct, hist)
    assert len(model.body_knots) > 2
    got = quantile(model, np.array([0.1, 0.25, 0.5, 0.9]))
    assert got.tolist() == [1, 3, 10, 40]
    assert model.min == 1


def test_merge_knots_drops_contradicting_histogram_points() -> None:
    merged = merge_knots([(0.5, 10.0), (0.9, 50.0)], [(0.3, 12.0), (0.5, 9.0), (0.7, 20.0), (0.95, 40.0)])
    assert merged == [(0.5, 10.0), (0.7, 20.0), (0.9, 50.0)]
