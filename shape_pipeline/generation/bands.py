"""Named dataset sizes (kept free of heavy imports: the CLI builds its parser from them).

The bands themselves are a convention (`shape_pipeline.conventions`); this module names them
for the generator and turns a band's name into its size.
"""

from __future__ import annotations

from shape_pipeline.conventions import BAND_NAMES, BANDS, DEFAULT_BAND
from shape_pipeline.errors import ShapePipelineError

__all__ = ["BANDS", "BAND_NAMES", "BANDS_HELP", "DEFAULT_BAND", "band_messages"]

BANDS_HELP = ", ".join(f"{name} = {size:,}" for name, size in BANDS.items()) + " messages"


def band_messages(band: str) -> int:
    """Messages of a named band (dev, pilot, perf)."""
    try:
        return BANDS[band]
    except KeyError:
        raise ShapePipelineError(f"--band: unknown band '{band}' (choose {', '.join(BANDS)})") from None
