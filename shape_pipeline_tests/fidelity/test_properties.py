"""The validator's own statistics over 20 seeds, not one picked seed.

"Production" and "synthetic" are drawn from the SAME known distribution with numpy, turned into
frequency tables and the production side into a shape (privacy rules on, as the sampler exports
it), then judged at tolerance 0.15. Seeds 0-19, each drawing both sides.

Percentiles (messages per conversation, log-normal median 45, sigma 1.0), measured:

| entities per side | faithful | x 1.1 | x 1.2 |
|---|---|---|---|
| 3,000 | 20 PASS | 2 PASS, 9 WARNING, 9 FAIL | 20 FAIL |
| 300,000 | 20 PASS | 3 PASS, 17 WARNING | 20 FAIL |

(sigma 1.2 at 3,000 warned 6 of 40 faithful draws and failed none.) At 3,000 entities noise
alone moves p50 by about 3% and p99 by about 10% (one standard error), so a 10% shift cannot
be told from 15% there: it passes only from some ten thousand entities up (asserted at 300,000).

Rare category (message types TEXT 85, IMAGE 10, FILE 3, AUDIO 1, VIDEO 1%; AUDIO scaled, TEXT
taking the difference), measured:

| messages per side | faithful | AUDIO x 1.1 | x 1.2 | x 0.5 |
|---|---|---|---|---|
| 300,000 | 17 PASS, 3 WARNING | 1 FAIL | 18 FAIL, 2 WARNING | 20 FAIL |
| 3,000,000 | 16 PASS, 4 WARNING | 20 WARNING | 20 FAIL | 20 FAIL |

The faithful warnings are the chi-square p-value rule (p < 0.05 warns 5% of faithful draws by
design, 7 of 40 here). AUDIO halved is a total variation distance of 0.005, which an absolute
bound passes; its relative error of 50% fails.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from shape_pipeline.contracts import MessageMetrics, ShapeMetrics
from shape_pipeline.fidelity.comparisons import (
    Inputs,
    check_message_types,
    check_messages_per_conversation,
)
from shape_pipeline.sampling.frequencies import Frequency, FrequencyTables
from shape_pipeline.sampling.shape import shape_from_frequencies

SEEDS = range(20)
TOLERANCE = 0.15
END = datetime(2025, 10, 22, tzinfo=UTC)
MEDIAN, SIGMA = 45.0, 1.0
TYPES = ("TEXT", "IMAGE", "FILE", "AUDIO", "VIDEO")
SHARES = np.array([0.85, 0.10, 0.03, 0.01, 0.01])


def _tables(values: np.ndarray) -> FrequencyTables:
    return FrequencyTables(
        conversations_total=len(values),
        messages_total=int(values.sum()),
        messages_per_conversation=Frequency.from_values(values),
    )


def percentile_verdicts(entities: int, scale: float) -> Counter[str]:
    """Verdicts of messages per conversation over the seeds, synthetic values x `scale`."""
    verdicts: Counter[str] = Counter()
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        production = np.ceil(rng.lognormal(np.log(MEDIAN), SIGMA, entities))
        synthetic = np.ceil(scale * rng.lognormal(np.log(MEDIAN), SIGMA, entities))
        shape = shape_from_frequencies(
            _tables(production),
            window_start=END - timedelta(days=30),
            window_end=END,
            extracted_at=END,
            min_cell_count=10,
        )
        verdicts[check_messages_per_conversation(Inputs(shape, _tables(synthetic), None, TOLERANCE)).verdict] += 1
    return verdicts


def rare_verdicts(messages: int, audio_factor: float) -> tuple[Counter[str], float]:
    """Verdicts of message types over the seeds with AUDIO x `audio_factor` in the synthetic
    draw, and the largest total variation distance seen."""
    shifted = SHARES.copy()
    shifted[3] *= audio_factor
    shifted[0] -= shifted[3] - SHARES[3]
    verdicts: Counter[str] = Counter()
    tvd = 0.0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        production = dict(zip(TYPES, rng.multinomial(messages, SHARES).tolist(), strict=True))
        synthetic = dict(zip(TYPES, rng.multinomial(messages, shifted).tolist(), strict=True))
        shape = ShapeMetrics(
            extracted_at=END, sample_window_days=30, messages=MessageMetrics(type_distribution=production)
        )
        result = check_message_types(Inputs(shape, FrequencyTables(message_types=synthetic), None, TOLERANCE))
        verdicts[result.verdict] += 1
        tvd = max(tvd, result.synthetic["total_variation_distance"])
    return verdicts, tvd


@pytest.mark.parametrize("entities", [3_000, 300_000])
def test_a_faithful_draw_never_fails_and_rarely_warns(entities: int) -> None:
    verdicts = percentile_verdicts(entities, 1.0)
    assert verdicts["FAIL"] == 0
    assert verdicts["WARNING"] <= 2  # measured: 0 of 20 at both sizes


@pytest.mark.parametrize("entities", [3_000, 300_000])
def test_a_twenty_percent_shift_always_fails(entities: int) -> None:
    assert percentile_verdicts(entities, 1.2) == Counter({"FAIL": len(SEEDS)})


def test_a_ten_percent_shift_passes() -> None:
    verdicts = percentile_verdicts(300_000, 1.1)
    assert verdicts["FAIL"] == 0 and verdicts["PASS"] + verdicts["WARNING"] == len(SEEDS)


@pytest.mark.parametrize("messages", [300_000, 3_000_000])
def test_a_faithful_rare_category_never_fails(messages: int) -> None:
    verdicts, _ = rare_verdicts(messages, 1.0)
    assert verdicts["FAIL"] == 0
    assert verdicts["WARNING"] <= 5  # measured: 3 and 4 of 20 (the p-value rule)


@pytest.mark.parametrize("messages", [300_000, 3_000_000])
def test_a_halved_rare_category_fails_though_its_absolute_distance_is_tiny(messages: int) -> None:
    verdicts, tvd = rare_verdicts(messages, 0.5)
    assert verdicts == Counter({"FAIL": len(SEEDS)})
    assert tvd < TOLERANCE / 10  # an absolute bound would have passed every one


def test_a_rare_category_is_judged_relative_at_scale() -> None:
    assert rare_verdicts(3_000_000, 1.2)[0] == Counter({"FAIL": len(SEEDS)})
    assert rare_verdicts(3_000_000, 1.1)[0]["FAIL"] == 0
