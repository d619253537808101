"""The demo's fake *production* database, made from the shape shipped with the package.

The shipped example shape carries the seed's published numbers; calibrating it and generating
with PII-looking values (fake e-mails, phone numbers, names) gives a production stand-in whose
privacy the sampler must protect. Its window is moved to end today, so that sampling with the
default `--as-of now` finds it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

from shape_pipeline.console import Emit, silent
from shape_pipeline.contracts import CalibratedConfig, ShapeMetrics
from shape_pipeline.files import load_json_model

EXAMPLE_SHAPE = "shape-metrics-seed.json"
PRODUCTION_SEED = "demo-production-v1"
DEFAULT_PRODUCTION_MESSAGES = 300_000


def example_shape_path() -> Path:
    """The shape file shipped in `shape_pipeline/examples/` (the seed's published numbers)."""
    return Path(str(resources.files("shape_pipeline.examples").joinpath(EXAMPLE_SHAPE)))


def ending_today(config: CalibratedConfig, *, today: datetime | None = None) -> CalibratedConfig:
    """The same config with its window moved to end at today's midnight (UTC)."""
    meta = config.calibration_metadata
    end = (today or datetime.now(UTC)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=meta.production_sample_window_days)
    return config.model_copy(
        update={"calibration_metadata": meta.model_copy(update={"window_start": start, "window_end": end})}
    )


def demo_production_config(*, today: datetime | None = None) -> CalibratedConfig:
    from shape_pipeline.calibration.calibrate import calibrate

    shape = load_json_model(example_shape_path(), ShapeMetrics, what="shape metrics")
    return ending_today(calibrate(shape, source_path=example_shape_path()), today=today)


def build_demo_production(
    database_url: str,
    *,
    messages: int = DEFAULT_PRODUCTION_MESSAGES,
    replace: bool = True,
    emit: Emit = silent,
    today: datetime | None = None,
) -> int:
    """Create the fake production database at `database_url`; returns its message count."""
    from shape_pipeline.generation.generate import generate_dataset

    result = generate_dataset(
        demo_production_config(today=today),
        target_messages=messages,
        seed=PRODUCTION_SEED,
        database_url=database_url,
        replace=replace,
        content_style="pii_demo",
        emit=emit,
    )
    return int(result.rows["messages"])
