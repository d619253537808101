"""Named dataset sizes (kept free of heavy imports: the CLI builds its parser from them)."""

from __future__ import annotations

from shape_pipeline.errors import ShapePipelineError

BANDS: dict[str, int] = {"dev": 500_000, "pilot": 5_000_000, "perf": 50_000_000}
DEFAULT_BAND = "dev"


def band_messages(band: str) -> int:
    """Messages of a named band (dev, pilot, perf)."""
    try:
        return BANDS[band]
    except KeyError:
        raise ShapePipelineError(
            f"--band: unknown band '{band}' (choose {', '.join(BANDS)})"
        ) from None
