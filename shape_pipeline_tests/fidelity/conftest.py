"""Fixtures: a 'production' world and its shape (privacy rules on), shared by the fidelity tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from shape_pipeline.contracts import ShapeMetrics
from shape_pipeline.fidelity.parquet_source import frequencies_from_parquet
from shape_pipeline.files import write_model_atomic
from shape_pipeline.sampling.shape import shape_from_frequencies
from shape_pipeline_tests.fidelity.world import WINDOW_END, WINDOW_START, Knobs, draw, to_parquet

PRODUCTION = Knobs(seed=1)
# A synthetic draw from the same distributions. Its seed is one for which no chance p-value
# falls below 0.05: by the verdict rule about one faithful draw in five warns on some category.
FAITHFUL_SEED = 4


def shape_of(folder: Path, *, min_cell_count: int | None = 10) -> ShapeMetrics:
    freq = frequencies_from_parquet(folder, window_start=WINDOW_START, window_end=WINDOW_END)
    return shape_from_frequencies(
        freq,
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        extracted_at=WINDOW_END,
        min_cell_count=min_cell_count,
    )


@pytest.fixture(scope="session")
def production_shape(tmp_path_factory: pytest.TempPathFactory) -> ShapeMetrics:
    folder = to_parquet(draw(PRODUCTION), tmp_path_factory.mktemp("production"))
    return shape_of(folder)


@pytest.fixture(scope="session")
def shape_file(production_shape: ShapeMetrics, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("exchange") / "shape-metrics-prod-20251022.json"
    write_model_atomic(path, production_shape)
    return path


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`synthetic_dir(**knobs)`: a Parquet world drawn with those knob changes (cached)."""
    made: dict[tuple, Path] = {}

    def make(**changes: object) -> Path:
        key = tuple(sorted(changes.items()))
        if key not in made:
            knobs = Knobs(seed=FAITHFUL_SEED).with_(**changes)
            made[key] = to_parquet(draw(knobs), tmp_path_factory.mktemp("synthetic"))
        return made[key]

    return make
